"""The interpreter kfp.local starts for each task during a warm local run (stdlib only).

kfp.local replaces ``python3`` in every task command with ``sys.executable``; during a warm
run :mod:`kfkit.warm_start` points that at a tiny shell script that runs this file with
``python -I -S`` (no site-packages: starts in milliseconds)::

    launcher.sh -> python -IS warm_launcher.py CONFIG.json -m kfp.dsl.executor_main ARGS...

It hands argv, working folder, environment and fds 0-2 to the warm server for the task's
component function (see :mod:`kfkit.warm_server` for the protocol), forwards signals to the
forked task, and exits with its status. Whenever the warm path is not available (not an
executor_main command, no server, server died or too slow to get ready) it ``exec``s the real
interpreter with the unchanged command: the optimisation never fails a run by itself.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import struct
import sys

_HEADER = struct.Struct("!Q")
_EXECUTOR_ARGS = ["-m", "kfp.dsl.executor_main"]


def _cold(python: str, argv: list[str], why: str | None) -> None:
    if why:
        # Visible in the task's log: a cold task is slower, never different.
        message = f"kfkit warm start: {why}; running this task in a cold interpreter"
        print(message, file=sys.stderr, flush=True)
    os.execv(python, [python, *argv])


def _function(argv: list[str]) -> str | None:
    for flag, value in zip(argv, argv[1:]):  # noqa: B905 - stdlib-only, any Python 3
        if flag == "--function_to_execute":
            return value
    return None


def _read_line(conn: socket.socket, buffer: bytearray) -> str | None:
    while b"\n" not in buffer:
        chunk = conn.recv(4096)
        if not chunk:
            return None
        buffer.extend(chunk)
    line, _, rest = bytes(buffer).partition(b"\n")
    buffer[:] = rest
    return line.decode()


def main(config_path: str, argv: list[str]) -> None:
    with open(config_path) as handle:
        config = json.load(handle)
    python = config["python"]
    if argv[:2] != _EXECUTOR_ARGS:
        _cold(python, argv, None)  # not a kfp task: nothing to warm
    function = _function(argv)
    path = config["routes"].get(function) or config["default"]
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(path)
        payload = json.dumps({"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ)}).encode()
        socket.send_fds(conn, [_HEADER.pack(len(payload))], [0, 1, 2])
        conn.sendall(payload)
        conn.settimeout(float(config["ready_timeout_s"]))
        buffer = bytearray()
        if _read_line(conn, buffer) != "ready":
            raise ConnectionError("the warm server went away before it was ready")
        conn.settimeout(None)
        # Committed from here on: the task starts in the server and only there.
        conn.sendall(b"go\n")
    except TimeoutError:
        conn.close()
        _cold(python, argv, f"the warm server was not ready within {config['ready_timeout_s']}s")
    except OSError as exc:
        conn.close()
        _cold(python, argv, f"no warm server for {function} ({exc.__class__.__name__}: {exc})")

    child: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        if child:
            try:
                os.kill(child[0], signum)
            except ProcessLookupError:
                pass

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, forward)
    while True:
        try:
            line = _read_line(conn, buffer)
        except OSError:
            line = None
        if line is None:
            print("kfkit warm start: the warm server stopped while running this task", file=sys.stderr)
            sys.exit(1)
        kind, _, value = line.partition(" ")
        if kind == "pid":
            child.append(int(value))
        elif kind == "exit":
            code = int(value)
            if code < 0:  # killed by a signal: end the same way, as the cold process would
                signal.signal(-code, signal.SIG_DFL)
                os.kill(os.getpid(), -code)
            sys.exit(code)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
