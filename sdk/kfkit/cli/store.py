"""``kfkit store start|stop|env|upload|gc``: the local SeaweedFS object store and its leftovers."""

from __future__ import annotations

import shlex
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
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print one JSON object: endpoint, pid and env (as `kfkit store env`: holds credentials).",
)
@user_errors
def store_start(as_json: bool) -> None:
    """Start the local store (or report the running one) and create its buckets."""
    from kfkit.local_store import LocalObjectStore

    state = LocalObjectStore().start_kept()
    # The same environment as `kfkit store env` (it holds the store's credentials).
    info = {"endpoint": f"http://127.0.0.1:{state.s3_port}", "pid": state.pid, "env": state.config.to_env()}
    if as_json:
        _emit_json(info)
    else:
        click.echo(f"local object store at {info['endpoint']}")
        click.echo('use it from your own code: eval "$(kfkit store env)"')


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


def export_lines(env: dict[str, str]) -> str:
    """``export KEY=value`` lines, values shell-quoted, for ``eval`` in a POSIX shell."""
    return "\n".join(f"export {key}={shlex.quote(value)}" for key, value in env.items())


@store.command("env")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of export lines.")
@user_errors
def store_env(as_json: bool) -> None:
    """Print the environment that points a process at the running local store.

    The output holds the store's CREDENTIALS (access key and secret key) beside its endpoint:
    that is its purpose, like `minikube docker-env`. Keep it out of logs and shared files.

    Use it in a shell with eval "$(kfkit store env)"; --json prints one object instead.
    The store is the one under the state folder (KFKIT_HOME, default ./.kfkit): run this
    where `kfkit store start` ran.
    """
    from kfkit.errors import KfkitError
    from kfkit.local_store import LocalObjectStore

    state = LocalObjectStore().running()
    if state is None:
        raise KfkitError("no local object store is running; run `kfkit store start`")
    env = state.config.to_env()
    _emit_json(env) if as_json else click.echo(export_lines(env))


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


@store.command("gc")
@click.option("--yes", is_flag=True, help="Remove what is listed (without it: a dry run that only lists).")
@click.option(
    "--grace",
    default=3600.0,
    show_default=True,
    metavar="SECONDS",
    help="How old the claim of an incomplete version pushed from another machine must be before "
    "it counts as abandoned (a push from this machine counts once its process is gone).",
)
@click.option(
    "--cache",
    "whole_cache",
    is_flag=True,
    help="Also the whole local run cache (.kfkit/cache): safe to delete, later runs recompute.",
)
@click.option("--json", "as_json", is_flag=True)
@user_errors
def store_gc(yes: bool, grace: float, whole_cache: bool, as_json: bool) -> None:
    """Leftovers of killed runs: model versions claimed but never completed (no kfkit-model.json,
    so never served), warm-start folders (.kfkit/warm/run-*) of runs that are gone and cache
    entries a run was still writing (.kfkit/cache/tmp/*, older than --grace).

    Lists them (dry run) unless --yes. An incomplete version is replaced by a small
    kfkit-removed.json, so its number is never reused; one whose push may still run is listed
    but kept. With --cache, the local run cache as a whole too (`kfkit run-local` reuses its
    entries; deleting it only costs the next run the time to recompute).
    """
    import shutil

    from kfkit import model_registry
    from kfkit.local_cache import LocalCache, cache_dir
    from kfkit.local_run import object_store_env
    from kfkit.settings import state_dir
    from kfkit.storage import ObjectStore
    from kfkit.tables import grid
    from kfkit.warm_start import stale_run_folders

    with object_store_env():
        objects = ObjectStore.from_env()
        versions = model_registry.incomplete_versions(objects, grace_seconds=grace)
        folders = [(folder, why, "warm-folder") for folder, why in stale_run_folders(state_dir())]
        cache = LocalCache(cache_dir(state_dir()))
        folders += [(folder, why, "cache-tmp") for folder, why in cache.leftovers(grace_seconds=grace)]
        if whole_cache and cache.root.is_dir():
            folders.append((cache.root, "the local run cache (--cache): later runs recompute", "run-cache"))
        rows = [
            {"kind": "version", "where": leftover.uri, "objects": len(leftover.objects),
             "bytes": sum(info.size for info in leftover.objects), "why": leftover.why,
             "removable": leftover.stale, "removed": False}
            for leftover in versions
        ] + [
            {"kind": kind, "where": str(folder), "objects": sum(1 for _ in folder.rglob("*")),
             "bytes": sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()), "why": why,
             "removable": True, "removed": False}
            for folder, why, kind in folders
        ]  # fmt: skip
        if yes:
            for row, leftover in zip(rows, versions, strict=False):
                if leftover.stale:
                    model_registry.remove_incomplete(objects, leftover)
                    row["removed"] = True
            for row, (folder, _, _) in zip(rows[len(versions) :], folders, strict=True):
                shutil.rmtree(folder, ignore_errors=True)
                row["removed"] = not folder.exists()
    if as_json:
        _emit_json({"dry_run": not yes, "leftovers": rows})
        return
    if not rows:
        click.echo("nothing to collect")
        return
    state = {True: "removed", False: "kept"} if yes else {True: "would remove", False: "kept"}
    click.echo(
        grid(
            ["KIND", "WHERE", "OBJECTS", "BYTES", "ACTION", "WHY"],
            [
                [
                    r["kind"],
                    r["where"],
                    r["objects"],
                    r["bytes"],
                    state[r["removed"] if yes else r["removable"]],
                    r["why"],
                ]
                for r in rows
            ],
        )  # fmt: skip
    )
    if not yes and any(r["removable"] for r in rows):
        click.echo("dry run: `kfkit store gc --yes` removes them")
