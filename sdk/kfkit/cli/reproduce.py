"""``kfkit reproduce RUN_ID``: re-run a past training run from its lineage and diff the two."""

from __future__ import annotations

import sys

import click

from kfkit.cli._app import _emit_json, _progress, json_option, main, metadata_uri_option, user_errors


@main.command("reproduce")
@click.argument("run_id")
@metadata_uri_option
@json_option
@user_errors
def reproduce_command(run_id: str, metadata_uri: str | None, as_json: bool) -> None:
    """Re-run the training run RUN_ID (see `kfkit runs list`) with the same data and parameters
    under a new run id, caching off, and print how it compares with the original: source,
    dataset fingerprint, train/eval rows, each metric, model sha256, both models' predictions on
    the eval split, scikit-learn/kfkit versions and task images.

    The data is checked first: a source file or object that is gone or whose content changed
    since the run (sha256 of a file, etag of an object) is refused with one line naming it, and
    nothing runs.

    The reproduced run never pushes a version or touches a deployment: it runs kfkit's compiled
    training pipeline without its push task. It validates and evaluates against the same
    baseline as the original (the model version it compared with, or none), not the version
    serving now: that baseline is imported in place of resolve-baseline.

    Exit codes: 0 reproduced (same fingerprint, splits and metrics, and the same predictions:
    identical model bytes, or probabilities within 1e-9 and every label equal); 2 the data,
    splits, metrics or predictions differ (rows marked NO; a changed image or scikit-learn
    version is marked too, but alone decides nothing); 1 refused (unknown run, failed run,
    another pipeline, changed or missing data) or the reproduced run failed. The result is also
    kept in the state folder as runs/<new run id>.reproduction.json.
    """
    from kfkit.reproduce import format_reproduction, reproduce

    result = reproduce(run_id, metadata_uri=metadata_uri, progress=_progress)
    if as_json:
        _emit_json(result.to_dict())
    else:
        click.echo(format_reproduction(result))
    sys.exit(result.exit_code)
