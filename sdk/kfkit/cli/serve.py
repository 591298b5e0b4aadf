"""``kfkit serve``: a pushed model behind kfkit's model server (Seldon's REST API) on this machine."""

from __future__ import annotations

from pathlib import Path

import click

from kfkit.cli._app import (
    main,
    user_errors,
)
from kfkit.cli.deploy import deployed_reference
from kfkit.errors import KfkitError
from kfkit.serving.guard import DEFAULT_MAX_BODY_BYTES

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
@click.option(
    "--port", default=9000, show_default=True, type=int, help="HTTP port (gRPC and metrics: free ports)."
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address every port (HTTP, gRPC, metrics) listens on; 0.0.0.0 exposes the model to the network.",
)
@click.option(
    "--max-body-bytes",
    default=DEFAULT_MAX_BODY_BYTES,
    show_default=True,
    type=click.IntRange(min=1),
    help="Larger request bodies are refused with HTTP 413.",
)
@user_errors
def serve_command(reference: str, port: int, host: str, max_body_bytes: int) -> None:
    """Serve a pushed model (Seldon's REST API, checked requests) until interrupted.

    SIGINT (Ctrl-C), SIGTERM and SIGHUP stop the server and every process it started.
    """
    import signal
    import time

    from kfkit.local_run import object_store_env
    from kfkit.serving.server import start_server

    with object_store_env():
        folder = fetch_model(reference)

    def stop_on(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # unwinds into the finally below, which stops the server

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, stop_on)
    server = start_server(folder, port=port, host=host, max_body_bytes=max_body_bytes)
    click.echo(
        f"serving {reference} from {folder} at {server.url} (listening on {host}; Ctrl-C stops)", err=True
    )
    try:
        while server.running():
            time.sleep(0.5)
        raise KfkitError(
            f"the model server stopped (code {server.process.returncode}); log: {server.log_path}"
        )
    except KeyboardInterrupt:
        pass
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)  # a second signal must not cut the stop short
        server.stop()
