"""The ``kfkit`` command line. Every verb has ``--help``; failures print one line on stderr
(``kfkit: error: ...``) and exit non-zero; ``--json`` prints one JSON document on stdout.

One module per group of verbs; importing them registers their commands on ``main``.
"""

from kfkit.cli import cluster, deploy, lineage, run, serve, store  # noqa: F401  (registers commands)
from kfkit.cli._app import main
from kfkit.cli.deploy import deployed_reference
from kfkit.cli.run import format_summary, load_config, parse_params
from kfkit.cli.serve import fetch_model

__all__ = ["deployed_reference", "fetch_model", "format_summary", "load_config", "main", "parse_params"]
