"""kfkit's pipelines (``pipelines/<name>.py``) and their compiled YAML (``pipelines/compiled/``).

In a checkout they sit at the repository's top level; the built wheel copies them here.
"""

from pathlib import Path

_CHECKOUT = Path(__file__).resolve().parents[3] / "pipelines"
if not (Path(__file__).parent / "compiled").is_dir() and _CHECKOUT.is_dir():
    __path__.append(str(_CHECKOUT))  # noqa: F821 - a package's __path__ is a module global
