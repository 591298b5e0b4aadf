"""The ``kfkit`` command group and what every verb shares: one-line errors, progress on
stderr, one JSON document on stdout."""

from __future__ import annotations

import functools
import json
import sys
from typing import Any

import click

from kfkit.errors import KfkitError


def _fail(message: str, code: int = 1) -> None:
    click.echo(f"kfkit: error: {message}", err=True)
    sys.exit(code)


def user_errors(func):
    """A KfkitError becomes one line and exit 1; no traceback for problems the user can fix."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except KfkitError as exc:
            _fail(str(exc))

    return wrapper


def _progress(line: str) -> None:
    click.echo(line, err=True)


def _emit_json(document: Any) -> None:
    click.echo(json.dumps(document, indent=2, sort_keys=True, default=str))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kfkit")
def main() -> None:
    """kfkit: Kubeflow pipeline components for ingest, validate, train, evaluate and push."""


METADATA_URI_HELP = (
    "Metadata store: sqlite:///file, mysql://user@host:port/db (password from "
    "KFKIT_METADATA_MYSQL_PASSWORD) or grpc://host:port. Default: KFKIT_METADATA_URI, "
    "else SQLite under the state folder."
)

json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
metadata_uri_option = click.option("--metadata-uri", default=None, help=METADATA_URI_HELP)
