"""The ``kfkit`` command line. Every verb has ``--help``; failures print one line on stderr
(``kfkit: error: ...``) and exit non-zero; ``--json`` prints one JSON document on stdout.

One module per group of verbs; importing them registers their commands on ``main``. The
library (``kfkit.*`` outside ``kfkit.cli``) never imports the CLI.
"""

from kfkit.cli import (  # noqa: F401  (registers commands)
    cluster,
    deploy,
    keys,
    lineage,
    reproduce,
    rescore,
    run,
    schema,
    score,
    serve,
    store,
)
from kfkit.cli._app import main

__all__ = ["main"]
