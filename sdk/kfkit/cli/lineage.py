"""``kfkit lineage model|dataset`` and ``kfkit runs list|show|compare`` (ML Metadata)."""

from __future__ import annotations

from typing import Any

import click

from kfkit.cli._app import (
    _emit_json,
    json_option,
    main,
    metadata_uri_option,
    user_errors,
)
from kfkit.tables import grid, key_values

# -- lineage and runs (ML Metadata) ----------------------------------------------------------


def _open_metadata(uri: str | None):
    from kfkit.metadata import open_store

    return open_store(uri)


def _when(seconds: float | None) -> str:
    import time

    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds)) if seconds else "-"


@main.group()
def lineage() -> None:
    """What produced a model, and what a dataset fed (from ML Metadata)."""


@lineage.command("model")
@click.argument("reference", metavar="MODEL[:VERSION]")
@metadata_uri_option
@json_option
@user_errors
def lineage_model(reference: str, metadata_uri: str | None, as_json: bool) -> None:
    """The run, data, validation, parameters, image, metrics and push behind a model
    version (no version: the latest pushed one)."""
    from kfkit.metadata.lineage import model_lineage

    found = model_lineage(_open_metadata(metadata_uri), reference)
    if as_json:
        _emit_json(found)
        return
    model, run, validation, training = (
        found["model"],
        found["run"] or {},
        found["validation"],
        found["training"],
    )
    rows: list[tuple[str, Any]] = [
        ("model", f"{model['name']}:{model['version']}"),
        ("pushed to", model["uri"]),
        ("sha256", model["sha256"]),
        ("pushed at", _when(model["pushed_at"])),
        ("run", run.get("run_id")),
        ("pipeline", run.get("pipeline")),
        ("dataset fingerprint", found["dataset_fingerprint"]),
    ]
    for dataset in found["datasets"]:
        rows.append((f"  {dataset['name']}", f"{dataset['rows']} rows  {dataset['uri']}"))
    if found["datasets"]:
        rows.append(("  source", found["datasets"][0]["source_uri"]))
    rows.append(
        (
            "data validation",
            ("blessed" if validation.get("blessed") else "NOT blessed")
            + f" against the {validation.get('schema_source')} schema",
        )
    )
    for label, key in (
        ("reference schema", "schema_uri"),
        ("schema", "schema_artifact_uri"),
        ("statistics", "statistics_uri"),
    ):
        if validation.get(key):
            rows.append((f"  {label}", validation[key]))
    rows.append(("training", f"{training.get('estimator')}  image {training.get('image')}"))
    for name, value in sorted((training.get("parameters") or {}).items()):
        rows.append((f"  {name}", value))
    for name, value in sorted(found["metrics"].items()):
        rows.append((f"metric {name}", value))
    blessing = found["blessing"]
    rows.append(
        (
            "evaluation",
            ("blessed: " if blessing.get("blessed") else "NOT blessed: ") + str(blessing.get("reason")),
        )
    )
    click.echo(key_values(rows))


@lineage.command("dataset")
@click.argument("fingerprint")
@metadata_uri_option
@json_option
@user_errors
def lineage_dataset(fingerprint: str, metadata_uri: str | None, as_json: bool) -> None:
    """Everything downstream of the data with FINGERPRINT (a unique prefix of 6+ hex
    digits works): runs, trained models and pushed versions."""
    from kfkit.metadata.lineage import dataset_lineage

    found = dataset_lineage(_open_metadata(metadata_uri), fingerprint)
    if as_json:
        _emit_json(found)
        return
    click.echo(
        key_values([("dataset fingerprint", found["dataset_fingerprint"]), ("runs", len(found["runs"]))])
    )
    click.echo()
    click.echo(
        grid(
            ["RUN", "PIPELINE", "CREATED"],
            [(r["run_id"], r["pipeline"], _when(r["created"])) for r in found["runs"]],
        )
    )
    click.echo()
    pushes = [(p["model_name"], p["version"], p["uri"], p["run_id"]) for p in found["pushes"]]
    click.echo(grid(["MODEL", "VERSION", "PUSHED TO", "RUN"], pushes) if pushes else "pushed: nothing")


@main.group()
def runs() -> None:
    """Recorded pipeline runs (from ML Metadata)."""


def _metric_columns(rows: list[dict[str, Any]]) -> list[str]:
    return sorted({m for r in rows for m in r["metrics"]})


@runs.command("list")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=1))
@metadata_uri_option
@json_option
@user_errors
def runs_list(limit: int, metadata_uri: str | None, as_json: bool) -> None:
    """The newest runs with their state, metrics and pushed version."""
    from kfkit.metadata.lineage import list_runs

    rows = list_runs(_open_metadata(metadata_uri), limit=limit)
    if as_json:
        _emit_json(rows)
        return
    metrics = _metric_columns(rows)
    body = [
        [r["run_id"], _when(r["created"]), r["state"], r["seconds"]]
        + [r["metrics"].get(m) for m in metrics]
        + [f"{r['pushed']['model_name']}:{r['pushed']['version']}" if r["pushed"] else None]
        for r in rows
    ]
    click.echo(
        grid(["RUN", "CREATED", "STATE", "SECONDS", *metrics, "PUSHED"], body) if rows else "no runs recorded"
    )


@runs.command("show")
@click.argument("run_id")
@metadata_uri_option
@json_option
@user_errors
def runs_show(run_id: str, metadata_uri: str | None, as_json: bool) -> None:
    """One run: parameters, tasks, metrics, artifacts."""
    from kfkit.metadata.lineage import show_run

    shown = show_run(_open_metadata(metadata_uri), run_id)
    if as_json:
        _emit_json(shown)
        return
    rows: list[tuple[str, Any]] = [
        ("run", shown["run_id"]),
        ("pipeline", shown["pipeline"]),
        ("created", _when(shown["created"])),
        ("state", shown["state"]),
        ("seconds", shown["seconds"]),
    ]
    rows += [(f"param {k}", v) for k, v in sorted(shown["parameters"].items())]
    rows += [(f"metric {k}", v) for k, v in sorted(shown["metrics"].items())]
    if shown["pushed"]:
        rows.append(
            (
                "pushed",
                f"{shown['pushed']['model_name']}:{shown['pushed']['version']} -> {shown['pushed']['uri']}",
            )
        )
    click.echo(key_values(rows))
    click.echo()
    click.echo(
        grid(
            ["TASK", "STATE", "IMAGE", "ERROR"],
            [(t["task"], t["state"], t["image"], t.get("error")) for t in shown["tasks"]],
        )
    )


@runs.command("compare")
@click.argument("run_ids", nargs=-1, required=True)
@metadata_uri_option
@json_option
@user_errors
def runs_compare(run_ids: tuple[str, ...], metadata_uri: str | None, as_json: bool) -> None:
    """Parameters and metrics of several runs side by side (* marks rows that differ)."""
    from kfkit.metadata.lineage import compare_runs

    compared = compare_runs(_open_metadata(metadata_uri), list(run_ids))
    if as_json:
        _emit_json(compared)
        return
    ids = [r["run_id"] for r in compared["runs"]]
    body = []
    for section in ("parameters", "metrics"):
        for key, values in compared[section].items():
            mark = "*" if f"{section}.{key}" in compared["differs"] else " "
            body.append(
                [f"{mark} {section[:-1] if section == 'parameters' else 'metric'} {key}"]
                + [values[i] for i in ids]
            )
    body.append(["  state"] + [r["state"] for r in compared["runs"]])
    click.echo(grid(["", *ids], body))
