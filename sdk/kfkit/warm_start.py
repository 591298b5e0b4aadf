"""Warm start for local runs: hide the import cost of each kfp task's fresh interpreter.

Under ``kfp.local.SubprocessRunner`` every task is a new ``python -m kfp.dsl.executor_main``
that imports its libraries from scratch: TensorFlow alone takes ~10 s here, scikit-learn ~3 s.
:func:`warm_interpreters` starts two fork servers (:mod:`kfkit.warm_server`) as the run begins,
one importing TFDV for validate and one importing the other tasks' libraries (never
TensorFlow), so the imports overlap with the object store's start and with ingest. While the
pipeline runs, ``sys.executable`` (which kfp.local substitutes for ``python3`` in each task's
command) points at a launcher (:mod:`kfkit.warm_launcher`) that has the task forked from the
right server. The compiled YAML, kfp.local, the per-task processes and their outputs are
unchanged; only where the imports happen moves.

``KFKIT_WARM_START=0`` turns it off; ``KFKIT_WARM_START_TIMEOUT`` (seconds, default 120) is how
long a task waits for its server to finish importing before running cold instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import kfkit.warm_launcher

WARM_START_ENV = "KFKIT_WARM_START"
TIMEOUT_ENV = "KFKIT_WARM_START_TIMEOUT"
_DEFAULT_READY_TIMEOUT_S = 120.0
OWNER_FILE = "owner.json"  # in each run's folder: the pid and host of the run that made it
_OWNERLESS_GRACE_S = 600.0  # a folder older than this with no owner file is a leftover
# Server profile (kfkit.warm_server.PROFILES) -> component functions it serves; "" routes
# every other function. Only validate may pay TensorFlow's import. ``routes_for`` derives
# the same from a compiled pipeline: every function whose image is the validate image.
ROUTES: dict[str, tuple[str, ...]] = {"validate": ("validate",), "tasks": ("",)}


def routes_for(spec: dict) -> dict[str, tuple[str, ...]]:
    """Profiles for one compiled pipeline: functions that run on the TensorFlow image go to
    the validate server, all others to the tasks server (from the executors' image and
    ``--function_to_execute`` argument in the spec)."""
    from kfkit.images import is_validate_image

    functions = []
    for executor in spec.get("deploymentSpec", {}).get("executors", {}).values():
        container = executor.get("container", {})
        args = list(container.get("args", []))
        if is_validate_image(container.get("image", "")) and "--function_to_execute" in args:
            functions.append(args[args.index("--function_to_execute") + 1])
    return {"validate": tuple(sorted(set(functions))), "tasks": ("",)}


_STOP_GRACE_S = 1.0
# AF_UNIX paths are limited to 108 bytes; the launcher's path lands in a `sh -c` script.
_MAX_SOCKET_PATH = 100
_SHELL_SAFE = re.compile(r"^[A-Za-z0-9_./+-]+$")


def enabled() -> bool:
    return os.environ.get(WARM_START_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


@dataclass
class WarmStart:
    """The running servers of one local run; ``python`` is the launcher (None: cold run)."""

    python: str | None = None
    folder: Path | None = None
    servers: dict[str, subprocess.Popen] = field(default_factory=dict)
    routes: dict[str, Path] = field(default_factory=dict)  # component function -> server socket
    default: Path | None = None  # the socket of every other function

    def drop(self, profile: str) -> None:
        """Stop ``profile``'s server and send its functions to the default server: for a run
        that turns out not to need it (``kfkit run-local``'s cache answers validate, so no
        task needs TensorFlow imported). The launcher reads its routes at each task's start."""
        server = self.servers.pop(profile, None)
        if server is None or self.folder is None or self.default is None:
            return
        _stop({profile: server})
        dropped = self.folder / f"{profile}.sock"
        self.routes = {function: path for function, path in self.routes.items() if path != dropped}
        write_launcher(self.folder, self.default, self.routes)

    @contextlib.contextmanager
    def as_sys_executable(self) -> Iterator[None]:
        """Point ``sys.executable`` at the launcher while kfp.local starts tasks. Only then:
        other code (the object store finds `weed` beside it) must see the real interpreter."""
        if self.python is None:
            yield
            return
        real = sys.executable
        sys.executable = self.python
        try:
            yield
        finally:
            sys.executable = real


def _run_folder(state: Path) -> Path:
    base = state / "warm"
    base.mkdir(parents=True, exist_ok=True)
    # One private folder per run (sockets, launcher); short, shell-safe, else under /tmp.
    longest = str(base / "run-12345678" / "validate.sock")
    if len(longest) <= _MAX_SOCKET_PATH and _SHELL_SAFE.match(longest):
        folder = Path(tempfile.mkdtemp(prefix="run-", dir=base))
    else:
        folder = Path(tempfile.mkdtemp(prefix="kfkit-warm-"))
    # Whose it is: a run killed with SIGKILL cannot remove it, and `kfkit store gc` must tell
    # a dead run's folder from a live one's.
    (folder / OWNER_FILE).write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
    return folder


def stale_run_folders(state: Path) -> list[tuple[Path, str]]:
    """``<state>/warm/run-*`` folders whose run is gone (killed before it could remove them),
    with why; a folder of a live run, or one just being made, is left out."""
    from kfkit.local_store import pid_alive

    base, found = state / "warm", []
    for folder in sorted(base.glob("run-*")) if base.is_dir() else []:
        try:
            owner = json.loads((folder / OWNER_FILE).read_text())
        except (OSError, ValueError):
            if time.time() - folder.stat().st_mtime > _OWNERLESS_GRACE_S:
                found.append((folder, "no owner recorded"))
            continue
        pid = int(owner.get("pid") or 0)
        if owner.get("host") == socket.gethostname() and not pid_alive(pid):
            found.append((folder, f"its run (pid {pid}) is gone"))
    return found


def write_launcher(
    folder: Path,
    default_socket: Path,
    routes: dict[str, Path] | None = None,
    ready_timeout_s: float | None = None,
) -> Path:
    """Write the launcher that stands in for ``sys.executable``: a shell script running
    :mod:`kfkit.warm_launcher`, whose config routes component functions to server sockets."""
    if ready_timeout_s is None:
        ready_timeout_s = float(os.environ.get(TIMEOUT_ENV, _DEFAULT_READY_TIMEOUT_S))
    config = {
        "python": sys.executable,
        "routes": {function: str(path) for function, path in (routes or {}).items()},
        "default": str(default_socket),
        "ready_timeout_s": ready_timeout_s,
    }
    config_path = folder / "launcher.json"
    config_path.write_text(json.dumps(config, indent=2) + "\n")
    launcher = folder / "python"
    # -I -S: no site-packages, no user environment: the launcher starts in ~15 ms.
    launcher.write_text(
        "#!/bin/sh\n"
        f"exec {shlex.quote(sys.executable)} -IS {shlex.quote(kfkit.warm_launcher.__file__)} "
        f'{shlex.quote(str(config_path))} "$@"\n'
    )
    launcher.chmod(0o700)
    return launcher


def _stop(servers: dict[str, subprocess.Popen]) -> None:
    """SIGTERM each server's process group (the server and any task it forked), then SIGKILL."""
    for process in servers.values():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + _STOP_GRACE_S
    for process in servers.values():
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(max(0.0, deadline - time.monotonic()))
    for process in servers.values():
        # Also any forked task still alive after its server exited.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@contextlib.contextmanager
def warm_interpreters(state: Path, profiles: dict[str, tuple[str, ...]] | None = None) -> Iterator[WarmStart]:
    """Start the warm servers for one local run (unless disabled) and always stop them,
    on success, failure and Ctrl-C alike. Starting them never fails the run. ``profiles``
    (default :data:`ROUTES`) is for tests."""
    if not enabled():
        yield WarmStart()
        return
    warm = WarmStart()
    try:  # one try: servers started before a Ctrl-C during start-up are stopped too
        try:
            _start(warm, state, profiles or ROUTES)
        except Exception as exc:  # noqa: BLE001 - the optimisation must never fail the run
            print(f"kfkit warm start: not used ({exc.__class__.__name__}: {exc})", file=sys.stderr)
            _stop(warm.servers)
            warm.python = None
        yield warm
    finally:
        _stop(warm.servers)
        if warm.folder is not None:
            _keep_logs(warm.folder, state)
            shutil.rmtree(warm.folder, ignore_errors=True)


def _start(warm: WarmStart, state: Path, profiles: dict[str, tuple[str, ...]]) -> None:
    warm.folder = _run_folder(state)
    sockets = {profile: warm.folder / f"{profile}.sock" for profile in profiles}
    for profile, path in sockets.items():
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            # Bound here, before the server starts: tasks can connect at once (see warm_server).
            listener.bind(str(path))
            os.chmod(path, 0o600)
            listener.listen(16)
            command = [sys.executable, "-m", "kfkit.warm_server", "--fd", str(listener.fileno())]
            with open(warm.folder / f"{profile}.log", "wb") as log:
                warm.servers[profile] = subprocess.Popen(
                    [*command, "--socket", str(path), "--profile", profile],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    pass_fds=[listener.fileno()],
                    # Own process group: Ctrl-C reaches the tasks through the launcher, and
                    # stopping kills the server with every task it forked.
                    start_new_session=True,
                )
        finally:
            # Only the server holds it now: when the server dies, connecting fails at once
            # and launchers run their tasks cold.
            listener.close()
    routes = {f: sockets[p] for p, functions in profiles.items() for f in functions}
    # No default route: other functions go to a socket nobody listens on, i.e. run cold.
    warm.default = routes.pop("", warm.folder / "no-server.sock")
    warm.routes = routes
    warm.python = str(write_launcher(warm.folder, warm.default, routes))


def _keep_logs(folder: Path, state: Path) -> None:
    # The last run's server logs, for when a task unexpectedly ran cold.
    for log in folder.glob("*.log"):
        with contextlib.suppress(OSError):
            shutil.copyfile(log, state / "runs" / f"warm-{log.name}")
