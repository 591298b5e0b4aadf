"""Component logic: plain functions on local files and the object store, testable without
an orchestrator. ``components/<name>/component.py`` is the thin kfp wrapper around each."""
