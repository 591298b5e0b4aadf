"""``kfkit rescore --model NAME[:VERSION]``: every scored batch of a model, scored by one version."""

from __future__ import annotations

import sys

import click

from kfkit.cli._app import _emit_json, _progress, json_option, main, metadata_uri_option, user_errors


@main.command("rescore")
@click.option(
    "--model",
    "model",
    required=True,
    metavar="NAME[:VERSION]",
    help="The model and pushed version to rescore with; no version: the one serving now, else the latest.",
)
@metadata_uri_option
@json_option
@user_errors
def rescore_command(model: str, metadata_uri: str | None, as_json: bool) -> None:
    """Score every batch that any version of the model has scored (s3://predictions/<model>/) with
    the given version, and say per batch how its predictions differ from those of the most recent
    earlier version that scored it: rows compared, predictions changed, the class distribution
    before and after, and the rows where the two disagree most. The diff is written once as
    Markdown beside the new predictions (rescore-from-<earlier version>.md).

    A batch this version has scored already is skipped (nothing written). A batch's data is read
    again from where its scoring read it and must be the same content: one that is gone or
    changed since fails with one line naming the file or object, and the other batches go on.
    Each batch is scored as `kfkit score` scores it (the scoring pipeline, recorded in lineage).

    Nothing is pushed or deployed: rescoring with a candidate version is its backtest.

    Exit codes: 0 every batch rescored or skipped; 1 a batch failed (the table says which) or the
    model or version is unknown.
    """
    from kfkit.rescore import format_rescoring, rescore

    result = rescore(model, metadata_uri=metadata_uri, progress=_progress)
    if as_json:
        _emit_json(result.to_dict())
    else:
        click.echo(format_rescoring(result))
    sys.exit(result.exit_code)
