"""A warm-interpreter fork server for kfp.local tasks (like gunicorn's preload, Spark's
Python daemon): pre-import a task's heavy modules once, then fork one child per task.

Every kfp task still runs ``kfp.dsl.executor_main`` as ``__main__`` in its own process, with
its own argv, working folder, environment and stdin/stdout/stderr (handed over by
:mod:`kfkit.warm_launcher` with SCM_RIGHTS); it only skips the imports this server already
did. Run as ``python -m kfkit.warm_server --fd N --socket PATH --profile validate|tasks``; started
and stopped by :mod:`kfkit.warm_start`.

Protocol on the Unix socket, one connection per task:

1. launcher -> server: 8-byte payload length, with fds 0, 1, 2 attached; then the JSON
   payload ``{"argv": [...], "cwd": ..., "env": {...}}``.
2. server -> launcher: ``ready\\n`` once it can fork (after its imports, or between them).
3. launcher -> server: ``go\\n``. Only now does the task start; a launcher that gave up
   waiting (and runs the task in a cold interpreter instead) never sends it, so a task can
   never run twice.
4. server -> launcher: ``pid <n>\\n`` after the fork, ``exit <code>\\n`` when the child ends
   (negative: killed by that signal). If the launcher disappears, the child is killed.

Fork safety: the server only imports, it never runs TensorFlow ops, Beam pipelines or
thread pools itself, so it is single-threaded in Python when it forks. The native threads
that exist by then (seen with gdb after importing TFDV: the idle OpenBLAS thread servers of
numpy's and of scipy's OpenBLAS, and pyarrow's jemalloc background thread; none of
TensorFlow's) belong to libraries with pthread_atfork handlers. Tests compare every output of
a forked run with a cold one, byte for byte.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import selectors
import signal
import socket
import struct
import sys
import time
from dataclasses import dataclass, field

# The modules each profile pre-imports, in order. The cheap ones that every task needs come
# first: the server answers waiting tasks between imports, so ingest need not wait for sklearn.
PROFILES: dict[str, list[str]] = {
    # Only validate may pay TensorFlow's import (~10 s): this server serves validate only.
    "validate": [
        "kfp.dsl.executor",
        "pandas",
        "pyarrow.parquet",
        "kfkit.runtime",
        "kfkit.metadata.mlmd_store",
        "ml_metadata.metadata_store.metadata_store",
        "kfkit.storage",
        "tensorflow_data_validation",
        "kfkit.components.validate.executor",
    ],
    # Tests and debugging: only what every task imports.
    "bare": ["kfp.dsl.executor"],
    # ingest, train, evaluate, push: never TensorFlow (checked after the imports).
    "tasks": [
        "kfp.dsl.executor",
        "pandas",
        "pyarrow.parquet",
        "kfkit.runtime",
        "kfkit.metadata.mlmd_store",
        "ml_metadata.metadata_store.metadata_store",
        "kfkit.storage",
        "kfkit.components.ingest.executor",
        "kfkit.components.resolve_baseline.executor",
        "yaml",
        "tensorflow_metadata.proto.v0.schema_pb2",
        "joblib",
        "sklearn.pipeline",
        "sklearn.compose",
        "sklearn.impute",
        "sklearn.preprocessing",
        "sklearn.linear_model",
        "sklearn.ensemble",
        "sklearn.metrics",
        "kfkit.components.train.executor",
        "kfkit.components.evaluate.executor",
        "kfkit.components.push.executor",
    ],
}
# Component functions a profile may start before its imports are done (see Server.poll).
# resolve_source is a run's first task and needs nothing past kfkit.storage: it waited 1.9-2.5 s
# for scikit-learn's import at the start of every run with the local cache on.
EARLY: dict[str, frozenset[str]] = {"tasks": frozenset({"resolve_source", "ingest", "resolve_baseline"})}
EXECUTOR_MODULE = "kfp.dsl.executor_main"
_HEADER = struct.Struct("!Q")
_MAX_PAYLOAD = 64 * 1024 * 1024
_REQUEST_TIMEOUT_S = 10.0


@dataclass
class _Client:
    conn: socket.socket
    payload: dict
    fds: list[int]
    pid: int | None = None
    pidfd: int | None = None
    said_ready: bool = False
    buffer: bytes = field(default=b"")


def _recv_exact(conn: socket.socket, size: int) -> bytes:
    chunks, got = [], 0
    while got < size:
        chunk = conn.recv(min(size - got, 1 << 20))
        if not chunk:
            raise ConnectionError("launcher closed the connection mid-request")
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _read_request(conn: socket.socket) -> tuple[dict, list[int]]:
    # Only the user who started the server may have it run code.
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    if uid != os.getuid():
        raise PermissionError(f"connection from uid {uid} refused")
    conn.settimeout(_REQUEST_TIMEOUT_S)
    header, fds, _flags, _addr = socket.recv_fds(conn, _HEADER.size, 3)
    if len(header) != _HEADER.size or len(fds) != 3:
        for fd in fds:
            os.close(fd)
        raise ConnectionError("malformed request header")
    (size,) = _HEADER.unpack(header)
    if size > _MAX_PAYLOAD:
        raise ConnectionError("request too large")
    payload = json.loads(_recv_exact(conn, size))
    conn.settimeout(None)
    return payload, fds


def _run_child(payload: dict, fds: list[int], server_fds: list[int]) -> None:
    """In the forked child: become the task's process, run executor_main, exit. Never returns."""
    code = 1
    try:
        # The task must not hold the server's sockets, pidfds or epoll fd.
        for fd in server_fds:
            with contextlib.suppress(OSError):
                os.close(fd)
        # Die with the server: a task must not outlive the run that started it.
        _set_parent_death_signal()
        # The server's only handler; SIGINT and SIGPIPE are as Python set them at startup.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        for fd in fds:
            if fd > 2:
                os.close(fd)
        os.chdir(payload["cwd"])
        os.environ.clear()
        os.environ.update(payload["env"])  # putenv too: native code sees the task's environment
        argv = payload["argv"]
        # What `python -m kfp.dsl.executor_main ARGS` sets up: sys.path[0] is the working folder.
        sys.path[0] = os.getcwd()
        sys.argv = [EXECUTOR_MODULE, *argv[2:]]
        # A fresh process has fresh random state; `random` reseeds itself at fork, numpy does not.
        if "numpy" in sys.modules:
            sys.modules["numpy"].random.seed()
        import runpy

        try:
            runpy.run_module(EXECUTOR_MODULE, run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as exc:
            code = _exit_code(exc.code)
        except KeyboardInterrupt:
            code = 128 + signal.SIGINT
        except BaseException:  # noqa: BLE001 - report like an uncaught exception would
            import traceback

            traceback.print_exc()
            code = 1
        import atexit

        atexit._run_exitfuncs()  # what interpreter shutdown would run (logging's flush, ...)
    except BaseException:  # noqa: BLE001 - the child must never return into the server loop
        try:
            import traceback

            traceback.print_exc()
        finally:
            code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001
                pass
        os._exit(code)


def _exit_code(value: object) -> int:
    # sys.exit semantics: None -> 0, int -> itself, anything else is printed and gives 1.
    if value is None:
        return 0
    if isinstance(value, int):
        return value & 0xFF
    print(value, file=sys.stderr)
    return 1


def _set_parent_death_signal() -> None:
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


class Server:
    def __init__(
        self,
        listen_fd: int,
        socket_path: str,
        modules: list[str],
        forbidden: tuple[str, ...],
        early: frozenset[str],
    ) -> None:
        self.socket_path = socket_path
        self.modules = modules
        self.early = early
        self.forbidden = forbidden
        self.selector = selectors.DefaultSelector()
        self.clients: dict[int, _Client] = {}  # by conn fd
        self.warm = False
        self.stopping = False
        # Bound and listening before this process started (kfkit.warm_start passes the fd):
        # a task that connects early waits in the backlog and is served between or after the
        # imports, instead of finding no socket and running cold.
        self.listener = socket.socket(fileno=listen_fd)
        self.listener.setblocking(False)
        self.selector.register(self.listener, selectors.EVENT_READ, "listener")

    def warm_up(self) -> None:
        for module in self.modules:
            self.poll(0)
            # A task forked early (ingest) runs while the rest is imported: pause until it ends
            # rather than compete with it for the CPU (2 cores, the other importing TensorFlow).
            while any(c.pid is not None for c in self.clients.values()):
                self.poll(None)
            started = time.perf_counter()
            importlib.import_module(module)
            _log(f"imported {module} in {time.perf_counter() - started:.2f}s")
        leaked = sorted(m for m in self.forbidden if m in sys.modules)
        if leaked:
            # Fail loudly: launchers then run these tasks cold, which is correct, only slower.
            raise SystemExit(f"kfkit warm server: forbidden module(s) imported: {leaked}")
        self.warm = True
        _log("warm")

    def serve_forever(self) -> None:
        while not self.stopping:
            self.poll(None)

    def poll(self, timeout: float | None) -> None:
        self._announce()  # before blocking: the imports may have just finished
        for key, _events in self.selector.select(timeout):
            if self.stopping:
                return
            if key.data == "listener":
                self._accept()
            elif key.data[0] == "conn":
                self._on_conn(key.data[1])
            elif key.data[0] == "pidfd":
                self._on_child_exit(key.data[1])
        self._announce()

    def _announce(self) -> None:
        # Between imports a task that needs no more than what is imported may start (ingest
        # need not wait for sklearn); the others wait for the whole profile. A task that starts
        # early imports the rest itself, as a cold process would.
        for client in list(self.clients.values()):
            early = _function(client.payload["argv"]) in self.early
            if not client.said_ready and client.pid is None and (self.warm or early):
                self._say(client, "ready")
                client.said_ready = True

    def _accept(self) -> None:
        try:
            conn, _ = self.listener.accept()
        except BlockingIOError:
            return
        try:
            payload, fds = _read_request(conn)
        except (OSError, ValueError, ConnectionError) as exc:
            _log(f"refused a request: {exc}")
            conn.close()
            return
        client = _Client(conn, payload, fds)
        self.clients[conn.fileno()] = client
        self.selector.register(conn, selectors.EVENT_READ, ("conn", conn.fileno()))

    def _on_conn(self, key: int) -> None:
        client = self.clients.get(key)
        if client is None:
            return  # dropped earlier in the same select round
        try:
            data = client.conn.recv(64)
        except OSError:
            data = b""
        if not data:
            # The launcher is gone (timed out and ran cold, or was killed): so must its task be.
            if client.pid is not None:
                try:
                    os.kill(client.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                # The pidfd still reaps it; the connection is finished.
                self.selector.unregister(client.conn)
            else:
                self._drop(client)
            return
        client.buffer += data
        if client.pid is None and b"go\n" in client.buffer:
            self._fork(client)

    def _fork(self, client: _Client) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        server_fds = [self.listener.fileno(), self.selector.fileno()]
        for other in self.clients.values():
            server_fds.append(other.conn.fileno())
            if other.pidfd is not None:
                server_fds.append(other.pidfd)
        pid = os.fork()
        if pid == 0:
            _run_child(client.payload, client.fds, server_fds)
        for fd in client.fds:
            os.close(fd)
        client.fds = []
        client.pid = pid
        client.pidfd = os.pidfd_open(pid)
        self.selector.register(client.pidfd, selectors.EVENT_READ, ("pidfd", client.conn.fileno()))
        self._say(client, f"pid {pid}")
        _log(f"forked {pid} for {_function(client.payload['argv'])}")

    def _on_child_exit(self, key: int) -> None:
        client = self.clients.get(key)
        if client is None or client.pid is None:
            return
        _, status = os.waitpid(client.pid, 0)
        code = os.waitstatus_to_exitcode(status)
        _log(f"child {client.pid} exited {code}")
        self._say(client, f"exit {code}")
        self._drop(client)

    def _say(self, client: _Client, line: str) -> None:
        try:
            client.conn.sendall(line.encode() + b"\n")
        except OSError:
            pass  # the launcher is gone; _on_conn sees the EOF

    def _drop(self, client: _Client) -> None:
        for obj in (client.conn, client.pidfd):
            if obj is None:
                continue
            try:
                self.selector.unregister(obj)
            except (KeyError, ValueError):
                pass
        if client.pidfd is not None:
            os.close(client.pidfd)
        for fd in client.fds:
            os.close(fd)
        self.clients.pop(client.conn.fileno(), None)
        client.conn.close()

    def stop(self, *_args: object) -> None:
        """SIGTERM: kill running tasks, remove the socket, exit."""
        self.stopping = True
        for client in list(self.clients.values()):
            if client.pid is not None:
                try:
                    os.kill(client.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        try:
            os.unlink(self.socket_path)
        except FileNotFoundError:
            pass
        os._exit(0)


def _log(message: str) -> None:
    # Wall-clock stamps line up with kfp.local's run log when a task waited or ran cold.
    print(f"{time.strftime('%H:%M:%S')}.{int(time.time() * 1000) % 1000:03d} {message}", flush=True)


def _function(argv: list[str]) -> str:
    for flag, value in zip(argv, argv[1:], strict=False):
        if flag == "--function_to_execute":
            return value
    return "?"


def main(args: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fd", type=int, required=True, help="the listening Unix socket, inherited")
    parser.add_argument("--socket", required=True, help="its path, removed when stopping")
    parser.add_argument("--profile", choices=sorted(PROFILES), required=True)
    options = parser.parse_args(args)
    # kfp's task command sets its own private runtime switch for the task; the server does not
    # touch kfp's private variables, so its pre-import is kfp's full dsl (a superset: a forked
    # task runs the same executor code, and the import happens while the run starts).
    # What kfkit.components.validate.executor sets before importing TFDV.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if not hasattr(os, "pidfd_open"):  # Linux >= 5.3; without it, launchers run every task cold
        raise SystemExit("kfkit warm server: os.pidfd_open is not available here")
    forbidden = () if options.profile == "validate" else ("tensorflow", "tensorflow_data_validation")
    early = EARLY.get(options.profile, frozenset())
    server = Server(options.fd, options.socket, PROFILES[options.profile], forbidden, early)
    signal.signal(signal.SIGTERM, server.stop)
    # Die with the kfkit process that started this server (it kills us too; this covers SIGKILL).
    _set_parent_death_signal()
    if os.getppid() == 1:
        server.stop()
    server.warm_up()
    server.serve_forever()


if __name__ == "__main__":
    main()
