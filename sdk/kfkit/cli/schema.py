"""``kfkit schema show|diff|freeze|reset``: a model's reference schema (see kfkit.schemas)."""

from __future__ import annotations

from pathlib import Path

import click

from kfkit.cli._app import _emit_json, json_option, main, user_errors
from kfkit.tables import grid

model_option = click.option("--model", "model_name", required=True, metavar="NAME", help="The model's name.")


@main.group()
def schema() -> None:
    """A model's reference schema: the schema.pbtxt beside its latest pushed version, which
    validate checks new data against."""


def _store():
    from kfkit.storage import ObjectStore

    return ObjectStore.from_env()


@schema.command("show")
@model_option
@click.option("--version", default=None, help="A pushed version (default: the reference).")
@json_option
@user_errors
def schema_show(model_name: str, version: str | None, as_json: bool) -> None:
    """The reference schema (or a version's): each feature's type, presence, values or range."""
    from kfkit import schemas
    from kfkit.local_run import object_store_env

    with object_store_env():
        store = _store()
        text, version = schemas.schema_text(store, model_name, version)
        reset = schemas.read_reset(store, model_name)
    rows = schemas.describe(schemas.parse(text, f"{model_name} version {version}"))
    if as_json:
        _emit_json({"model_name": model_name, "version": version, "features": rows, "reset": reset})
        return
    click.echo(f"{model_name} version {version}: {len(rows)} features")
    body = [
        [
            r["feature"],
            r["type"],
            r["min_presence"],
            r.get("values", r.get("range", "")),
            r.get("drift_comparator"),
        ]
        for r in rows
    ]
    click.echo(grid(["FEATURE", "TYPE", "PRESENCE", "VALUES / RANGE", "DRIFT"], body))


@schema.command("diff")
@model_option
@click.option("--from", "from_version", required=True, help="A pushed version.")
@click.option("--to", "to_version", default=None, help="Another pushed version (default: the reference).")
@click.option("--file", "file", type=click.Path(dir_okay=False), help="Compare with a schema file instead.")
@json_option
@user_errors
def schema_diff(
    model_name: str, from_version: str, to_version: str | None, file: str | None, as_json: bool
) -> None:
    """What changed between two versions' schemas (or a version's and a file)."""
    from kfkit import schemas
    from kfkit.errors import KfkitError
    from kfkit.local_run import object_store_env

    with object_store_env():
        store = _store()
        old_text, from_version = schemas.schema_text(store, model_name, from_version)
        if file:
            if not Path(file).is_file():
                raise KfkitError(f"{file}: no such file")
            new_text, to_label = Path(file).read_text(), file
        else:
            new_text, to_label = schemas.schema_text(store, model_name, to_version)
    changes = schemas.diff(
        schemas.parse(old_text, f"version {from_version}"), schemas.parse(new_text, to_label)
    )
    if as_json:
        _emit_json({"from": from_version, "to": to_label, "changes": changes})
        return
    if not changes:
        click.echo(f"no change between version {from_version} and {to_label}")
        return
    rows = [
        [c["feature"], c["change"], {k: v for k, v in c.items() if k not in ("feature", "change")}]
        for c in changes
    ]
    click.echo(grid(["FEATURE", "CHANGE", "DETAIL"], rows))


@schema.command("freeze")
@model_option
@click.option("--version", default=None, help="A pushed version (default: the reference).")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="The schema file to write.")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@user_errors
def schema_freeze(model_name: str, version: str | None, out: str, force: bool) -> None:
    """Write the reference schema to a file to review and commit; run with schema_uri=FILE."""
    from kfkit import schemas
    from kfkit.local_run import object_store_env

    with object_store_env():
        version = schemas.freeze(_store(), model_name, Path(out), version, force)
    click.echo(
        f"wrote {out} (version {version}); review it, commit it, and run with --param schema_uri={out}"
    )


@schema.command("reset")
@model_option
@click.option("--yes", is_flag=True, help="Really reset (nothing happens without it).")
@json_option
@user_errors
def schema_reset(model_name: str, yes: bool, as_json: bool) -> None:
    """Stop checking new data against the schema and statistics of the versions pushed so far:
    the next run infers its schema from its own data (its lineage records the reset)."""
    from kfkit import schemas
    from kfkit.errors import KfkitError
    from kfkit.local_run import object_store_env

    if not yes:
        raise KfkitError(f"schema reset of {model_name}: nothing done; add --yes to reset the reference")
    with object_store_env():
        record = schemas.reset(_store(), model_name)
    if as_json:
        _emit_json(record)
    else:
        click.echo(
            f"{model_name}: new data is no longer checked against versions up to {record['after_version']}; "
            "the next run infers its schema"
        )
