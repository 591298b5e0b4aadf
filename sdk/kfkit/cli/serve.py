"""``kfkit serve``: a pushed model behind seldon-core-microservice on this machine."""

from __future__ import annotations

from pathlib import Path

import click

from kfkit.cli._app import (
    main,
    user_errors,
)
from kfkit.cli.deploy import deployed_reference

# -- serve -----------------------------------------------------------------------------------


def fetch_model(reference: str) -> Path:
    """Download ``name[:version]`` from the object store into the state folder, verified."""
    from kfkit import model_registry
    from kfkit.settings import state_dir
    from kfkit.storage import ObjectStore

    objects = ObjectStore.from_env()
    name, version = model_registry.resolve(objects, deployed_reference(reference))
    return model_registry.download(objects, name, version, state_dir() / "models" / name / version)


@main.command("serve")
@click.option(
    "--model",
    "reference",
    required=True,
    metavar="NAME[:VERSION]",
    help="A pushed model; with no version, the locally deployed one (see `kfkit deploy`), else the latest.",
)
@click.option("--port", default=9000, show_default=True, type=int)
@user_errors
def serve_command(reference: str, port: int) -> None:
    """Serve a pushed model with seldon-core-microservice until interrupted."""
    import time

    from kfkit.local_run import object_store_env
    from kfkit.serving.server import start_server

    with object_store_env():
        folder = fetch_model(reference)
    server = start_server(folder, port=port)
    click.echo(f"serving {reference} from {folder} at {server.url} (Ctrl-C stops)", err=True)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
