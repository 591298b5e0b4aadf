"""kfkit's model server: Seldon Core's REST app behind ``RequestGuard``, on loopback by default.

``python -m kfkit.serving.app`` (in the serving environment or image) serves
``kfkit.serving.model.KfkitModel`` with Seldon 1.19's own public pieces, composed rather than
patched: ``seldon_core.wrapper.get_rest_microservice`` (the Flask app of Seldon's REST API),
``get_metrics_microservice`` (Prometheus) and ``get_grpc_server``. What kfkit adds around them:

- every REST request passes ``kfkit.serving.guard.RequestGuard`` first: a malformed request is a
  4xx with a JSON message, never a 500 (``--max-body-bytes`` bounds the body);
- each server binds ``--host`` (default 127.0.0.1): ``seldon-core-microservice`` binds 0.0.0.0 for
  REST and metrics and all interfaces for gRPC, with no flag or variable to change it;
- ``SkipEmptyMetrics`` skips Seldon's per-request write of an empty custom-metrics list to its
  ``multiprocessing.Manager`` (a round trip to another process, 0.2-0.3 ms of a 1 ms request);
- one supervising process: REST (a gunicorn arbiter and its workers), metrics and gRPC run as its
  children; SIGTERM, SIGINT or SIGHUP to it, or the exit of any child, stops all of them, and with
  ``--stop-with-parent`` so does the exit of the process that started it.

Ports default to Seldon's variables (``PREDICTIVE_UNIT_{HTTP,GRPC,METRICS}_SERVICE_PORT``, set by
the Seldon operator) and then 9000, 5000, 6000, as ``seldon-core-microservice`` does.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from gunicorn.app.base import BaseApplication
from seldon_core.gunicorn_utils import post_worker_init, worker_exit
from seldon_core.metrics import SeldonMetrics
from seldon_core.wrapper import get_grpc_server, get_metrics_microservice, get_rest_microservice

from kfkit.serving.guard import DEFAULT_MAX_BODY_BYTES, RequestGuard
from kfkit.serving.model import KfkitModel

logger = logging.getLogger("kfkit.serving.app")

HOST_ENV = "KFKIT_SERVING_HOST"
MAX_BODY_ENV = "KFKIT_SERVING_MAX_BODY_BYTES"
DEFAULT_HOST = "127.0.0.1"
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
STOP_GRACE_SECONDS = 5.0
# gunicorn kills a worker silent for this long; loading scikit-learn and the model on a busy
# machine took several seconds here.
WORKER_TIMEOUT_SECONDS = 120


class SkipEmptyMetrics(SeldonMetrics):
    """Seldon's metrics store, minus the update it makes after every request with no metrics.

    An empty update reads the worker's entry from the Manager process and writes it back
    unchanged: nothing to expose, two inter-process round trips.
    """

    def update(self, custom_metrics: list[dict[str, Any]], method: str) -> None:
        if custom_metrics:
            super().update(custom_metrics, method)


class GunicornServer(BaseApplication):
    """A WSGI app under gunicorn with kfkit's options (``bind`` among them), loaded per worker."""

    def __init__(self, load_app: Callable[[], Any], options: dict[str, Any]) -> None:
        self.load_app = load_app
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        return self.load_app()


def address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value else default


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m kfkit.serving.app", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--host",
        default=os.environ.get(HOST_ENV, DEFAULT_HOST),
        help=f"address every server binds (default ${HOST_ENV}, else {DEFAULT_HOST})",
    )
    parser.add_argument("--http-port", type=int, default=_env_int("PREDICTIVE_UNIT_HTTP_SERVICE_PORT", 9000))
    parser.add_argument(
        "--grpc-port",
        type=int,
        default=_env_int("PREDICTIVE_UNIT_GRPC_SERVICE_PORT", 5000),
        help="0: no gRPC server",
    )
    parser.add_argument(
        "--metrics-port", type=int, default=_env_int("PREDICTIVE_UNIT_METRICS_SERVICE_PORT", 6000)
    )
    parser.add_argument("--workers", type=int, default=_env_int("GUNICORN_WORKERS", 2))
    parser.add_argument("--threads", type=int, default=_env_int("GUNICORN_THREADS", 2))
    parser.add_argument(
        "--max-body-bytes",
        type=int,
        default=_env_int(MAX_BODY_ENV, DEFAULT_MAX_BODY_BYTES),
        help=f"larger request bodies get HTTP 413 (default ${MAX_BODY_ENV}, else {DEFAULT_MAX_BODY_BYTES})",
    )
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.add_argument(
        "--stop-with-parent", action="store_true", help="stop when the process that started this one exits"
    )
    args = parser.parse_args(argv)
    if args.max_body_bytes < 1:
        parser.error(f"--max-body-bytes must be at least 1, got {args.max_body_bytes}")
    return args


def _child_signals() -> None:
    """Children start with the default handlers, not the supervisor's."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_DFL)


def serve_rest(user_object: KfkitModel, metrics: SeldonMetrics, args: argparse.Namespace) -> None:
    _child_signals()
    flask_app = get_rest_microservice(user_object, metrics)

    def load() -> RequestGuard:
        user_object.load()  # in each worker, after the fork, as Seldon does
        return RequestGuard(flask_app, max_body_bytes=args.max_body_bytes)

    options = {
        "bind": address(args.host, args.http_port),
        "workers": args.workers,
        "threads": args.threads,
        "timeout": WORKER_TIMEOUT_SECONDS,
        "keepalive": 2,
        "loglevel": args.log_level.lower(),
        "post_worker_init": post_worker_init,
        "worker_exit": partial(worker_exit, seldon_metrics=metrics),
        "control_socket_disable": True,
        "proc_name": "kfkit-serving-rest",
    }
    logger.info("REST on %s: %s", options["bind"], options)
    GunicornServer(load, options).run()


def serve_metrics(metrics: SeldonMetrics, args: argparse.Namespace) -> None:
    _child_signals()
    flask_app = get_metrics_microservice(metrics)
    options = {
        "bind": address(args.host, args.metrics_port),
        "workers": 1,
        "timeout": WORKER_TIMEOUT_SECONDS,
        "loglevel": args.log_level.lower(),
        "post_worker_init": post_worker_init,
        "control_socket_disable": True,
        "proc_name": "kfkit-serving-metrics",
    }
    logger.info("metrics on %s", options["bind"])
    GunicornServer(lambda: flask_app, options).run()


def serve_grpc(user_object: KfkitModel, metrics: SeldonMetrics, args: argparse.Namespace) -> None:
    _child_signals()
    server = get_grpc_server(user_object, metrics)  # built after the fork, as gRPC requires
    user_object.load()
    bind = address(args.host, args.grpc_port)
    server.add_insecure_port(bind)
    server.start()
    logger.info("gRPC on %s", bind)
    server.wait_for_termination()


class _Stop(Exception):
    pass


def _raise_stop(signum: int, frame: Any) -> None:
    raise _Stop(signal.Signals(signum).name)


def supervise(children: list[multiprocessing.process.BaseProcess], stop_with_parent: bool) -> int:
    """Wait until a child exits, a stop signal arrives or (optionally) the parent exits; then
    stop every child. Returns the exit code: the failed child's, else 0."""
    parent = os.getppid()
    code = 0
    for sig in STOP_SIGNALS:
        signal.signal(sig, _raise_stop)
    try:
        while True:
            ended = multiprocessing.connection.wait([child.sentinel for child in children], timeout=1.0)
            if ended:
                child = next(c for c in children if c.sentinel in ended)
                child.join()
                logger.error("%s exited with code %s: stopping the model server", child.name, child.exitcode)
                code = child.exitcode if child.exitcode and child.exitcode > 0 else 1  # killed: 1
                break
            if stop_with_parent and os.getppid() != parent:
                logger.info("the process that started the model server exited: stopping")
                break
    except _Stop as stop:
        logger.info("%s: stopping the model server", stop)
    finally:
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)  # a second signal must not cut the cleanup short
        stop_children(children)
    return code


def stop_children(children: list[multiprocessing.process.BaseProcess]) -> None:
    """SIGTERM each child (gunicorn arbiters stop their workers), SIGKILL what outlives the grace."""
    for child in children:
        if child.is_alive():
            child.terminate()
    for child in children:
        child.join(STOP_GRACE_SECONDS)
        if child.is_alive():
            child.kill()
            child.join()


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level, format="%(asctime)s - %(name)s - %(levelname)s: %(message)s", stream=sys.stdout
    )
    user_object = KfkitModel()
    metrics = SkipEmptyMetrics(worker_id_func=os.getpid)  # starts Seldon's Manager process
    fork = multiprocessing.get_context("fork")  # the children share the objects built here
    children = [
        fork.Process(target=serve_metrics, args=(metrics, args), name="metrics server"),
        fork.Process(target=serve_rest, args=(user_object, metrics, args), name="REST server"),
    ]
    if args.grpc_port:
        children.append(
            fork.Process(target=serve_grpc, args=(user_object, metrics, args), name="gRPC server")
        )
    for child in children:
        child.start()
    code = supervise(children, args.stop_with_parent)
    sys.exit(code)


if __name__ == "__main__":
    main()
