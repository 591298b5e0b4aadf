"""``kfkit store start|stop|upload``: the local SeaweedFS object store."""

from __future__ import annotations

from pathlib import Path

import click

from kfkit.cli._app import (
    _emit_json,
    main,
    user_errors,
)

# -- store -----------------------------------------------------------------------------------


@main.group()
def store() -> None:
    """The local object store (SeaweedFS S3 server on 127.0.0.1)."""


@store.command("start")
@click.option("--json", "as_json", is_flag=True)
@user_errors
def store_start(as_json: bool) -> None:
    """Start the local store (or report the running one) and create its buckets."""
    from kfkit.local_store import LocalObjectStore

    state = LocalObjectStore().start_kept()
    info = {"endpoint": f"http://127.0.0.1:{state.s3_port}", "pid": state.pid}
    _emit_json(info) if as_json else click.echo(f"local object store at {info['endpoint']}")


@store.command("stop")
@click.option("--json", "as_json", is_flag=True)
@user_errors
def store_stop(as_json: bool) -> None:
    """Stop the local store."""
    from kfkit.local_store import LocalObjectStore

    stopped = LocalObjectStore().stop()
    _emit_json({"stopped": stopped}) if as_json else click.echo(
        "stopped" if stopped else "no local store was running"
    )


@store.command("upload")
@click.argument("source", type=click.Path(exists=True, dir_okay=False))
@click.argument("uri")
@click.option("--json", "as_json", is_flag=True)
@user_errors
def store_upload(source: str, uri: str, as_json: bool) -> None:
    """Upload a local file to an s3:// URI (local store, or KFKIT_S3_ENDPOINT)."""
    from kfkit.local_run import object_store_env
    from kfkit.storage import ObjectStore, ObjectUri

    with object_store_env():
        objects = ObjectStore.from_env()
        target = ObjectUri.parse(uri)
        if not target.key or target.key.endswith("/"):
            target = target.child(Path(source).name)
        objects.ensure_bucket(target.bucket)
        info = objects.put_bytes(target, Path(source).read_bytes())
    _emit_json(info.__dict__) if as_json else click.echo(f"uploaded {source} -> {info.uri}")
