"""``kfkit score DATA --model NAME[:VERSION]``: a batch scored by a pushed model version."""

from __future__ import annotations

import click

from kfkit.cli._app import _emit_json, _progress, json_option, main, metadata_uri_option, user_errors


@main.command("score")
@click.argument("data")
@click.option(
    "--model",
    "model",
    required=True,
    metavar="NAME[:VERSION]",
    help="The model and pushed version to score with; no version: the one serving now, else the latest.",
)
@click.option("--key-column", default="", help="A column of the data to carry into the predictions (an id).")
@click.option("--no-cache", is_flag=True, help="Run every task (ingest too): nothing from the local cache.")
@metadata_uri_option
@json_option
@user_errors
def score_command(
    data: str, model: str, key_column: str, no_cache: bool, metadata_uri: str | None, as_json: bool
) -> None:
    """Score DATA (a CSV or Parquet file or folder, or an s3:// object or prefix) with a pushed
    model version: kfkit's scoring pipeline run on this machine, recorded in lineage like any run.

    Rows the model's server would refuse (text in a numeric feature, infinity, values out of the
    model's range) are rejected with the reason, not scored. The predictions (row number, the
    key column, prediction, class probabilities, model name and version) are written once to
    s3://predictions/<model>/<version>/<data fingerprint>/: the same data scored again by the
    same version writes nothing and says so. The batch is also validated against that version's
    schema and training statistics (label absent; drift measured): anomalies are reported in the
    summary, and do not stop the scoring.

    Exit codes: 0 scored (rejected rows included); 1 failed (an unknown model or version, a file
    that cannot be read, data without the model's features; one line says why).
    """
    from kfkit.scoring import format_scoring, score_batch

    result = score_batch(
        data,
        model,
        key_column=key_column,
        metadata_uri=metadata_uri,
        progress=_progress,
        use_cache=not no_cache,
    )
    if as_json:
        _emit_json(result.to_dict())
    else:
        click.echo(format_scoring(result))
