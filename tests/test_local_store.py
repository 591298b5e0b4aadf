"""The local SeaweedFS store shared by runs side by side: nobody stops it under another run.
And `kfkit store env`, which points the user's own processes at it."""

from __future__ import annotations

import json
import shlex
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from conftest import KFKIT, error_line, run_kfkit

import kfkit.local_store as local_store_module
from kfkit.cli.store import export_lines
from kfkit.errors import KfkitError
from kfkit.local_store import LocalObjectStore
from kfkit.net import free_ports

HOLD = """
import sys, time
from kfkit.local_store import LocalObjectStore
store = LocalObjectStore(root=__import__("pathlib").Path(sys.argv[1]))
with store.lease() as (state, started):
    print(state.s3_port, started, flush=True)
    while not __import__("os").path.exists(sys.argv[2]):
        time.sleep(0.05)
"""


def _hold(root: Path, release: Path) -> tuple[subprocess.Popen, str]:
    """A process holding a lease on the store until ``release`` exists."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(root), str(release)], stdout=subprocess.PIPE, text=True
    )
    return proc, proc.stdout.readline().strip()


def test_the_last_run_out_stops_the_store_it_started(tmp_path):
    store = LocalObjectStore(root=tmp_path)
    first, first_line = _hold(tmp_path, tmp_path / "release-first")
    second, second_line = _hold(tmp_path, tmp_path / "release-second")
    port_first, started_first = first_line.split()
    port_second, started_second = second_line.split()
    assert (started_first, started_second) == ("True", "False") and port_first == port_second
    (tmp_path / "release-first").touch()
    first.wait(timeout=30)
    assert store.running() is not None, "stopped under the second run"
    (tmp_path / "release-second").touch()
    second.wait(timeout=30)
    assert store.running() is None


def test_a_killed_run_does_not_keep_the_store_up(tmp_path):
    store = LocalObjectStore(root=tmp_path)
    killed, _ = _hold(tmp_path, tmp_path / "never")
    killed.kill()
    killed.wait()
    with store.lease() as (_, started):
        assert started is False  # the store the killed run started is still up and reused
    assert store.running() is None


def test_a_store_started_by_the_user_stays_up(tmp_path):
    store = LocalObjectStore(root=tmp_path)
    store.start_kept()
    try:
        with store.lease() as (_, started):
            assert started is False
        time.sleep(0.1)
        assert store.running() is not None
    finally:
        store.stop()


def _busy_port() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


def test_a_port_taken_before_weed_binds_it_is_retried_on_fresh_ports(tmp_path, monkeypatch):
    """Another process can take one of weed's ten ports between kfkit's check and weed's bind
    (it happened in CI): the store starts on fresh ports instead of failing the run."""
    busy = _busy_port()
    calls = []

    def first_call_has_a_busy_port(count, taken=frozenset()):
        ports = free_ports(count, taken)
        if not calls:
            ports[3] = busy.getsockname()[1]  # the filer's: weed checks it, refuses to start
        calls.append(ports)
        return ports

    monkeypatch.setattr(local_store_module, "free_ports", first_call_has_a_busy_port)
    store = LocalObjectStore(root=tmp_path)
    try:
        state = store.start()
        assert len(calls) == 2 and busy.getsockname()[1] not in calls[1]
        assert state.s3_port == calls[1][0] and store.running() == state
    finally:
        store.stop()
        busy.close()


def test_a_store_that_never_gets_its_ports_says_which_one(tmp_path, monkeypatch):
    busy = _busy_port()
    port = busy.getsockname()[1]

    def always_busy(count, taken=frozenset()):
        ports = free_ports(count, taken)
        ports[3] = port
        return ports

    monkeypatch.setattr(local_store_module, "free_ports", always_busy)
    store = LocalObjectStore(root=tmp_path)
    try:
        with pytest.raises(KfkitError) as raised:
            store.start()
    finally:
        busy.close()
    message = str(raised.value)
    assert "could not bind its ports in 3 attempts" in message and f"port {port}" in message, message
    assert "\n" not in message and store.running() is None and not store.state_path.exists()


def test_free_ports_stay_out_of_the_ephemeral_range():
    """Outgoing connections take local ports from the kernel's ephemeral range; a server's
    port picked there can be lost before the server binds it."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = free_ports(50)
    assert len(set(ports)) == 50 and all(port < low for port in ports), ports


# -- kfkit store env -------------------------------------------------------------------------

PUT = """
import sys
from kfkit.storage import ObjectStore
ObjectStore.from_env().put_bytes(sys.argv[1], sys.argv[2].encode())
"""


def _without_store(env: dict[str, str], local_store) -> dict[str, str]:
    """The session's environment (KFKIT_HOME included) minus the store's variables."""
    return {k: v for k, v in env.items() if k not in local_store.config.to_env()}


def test_store_env_points_a_shell_at_the_running_store(store_env, local_store, objects):
    env = _without_store(store_env, local_store)
    uri = f"s3://kfkit/store-env/{uuid.uuid4().hex}.txt"
    script = f'eval "$({shlex.quote(KFKIT)} store env)" && {shlex.quote(sys.executable)} -c "$1" "$2" hello'
    proc = subprocess.run(
        ["bash", "-c", script, "-", PUT, uri], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert objects.get_bytes(uri) == b"hello"  # written through the eval'd environment


def test_store_env_prints_exports_and_json_of_the_store_config(store_env, local_store):
    env = _without_store(store_env, local_store)
    expected = local_store.config.to_env()
    assert {"KFKIT_S3_ENDPOINT", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= set(expected)

    proc = run_kfkit(["store", "env"], env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert all(line.startswith("export ") for line in lines), proc.stdout
    assert dict(shlex.split(line)[1].split("=", 1) for line in lines) == expected

    proc = run_kfkit(["store", "env", "--json"], env, timeout=60)
    assert proc.returncode == 0 and json.loads(proc.stdout) == expected

    proc = run_kfkit(["store", "start", "--json"], env, timeout=60)  # reports the running store
    info = json.loads(proc.stdout)
    assert info["env"] == expected and info["endpoint"] == expected["KFKIT_S3_ENDPOINT"]
    assert LocalObjectStore(root=Path(env["KFKIT_HOME"])).running() is not None


def test_store_env_without_a_running_store_is_one_line(tmp_path, store_env):
    env = {**store_env, "KFKIT_HOME": str(tmp_path)}
    proc = run_kfkit(["store", "env"], env, timeout=60)
    assert proc.returncode == 1 and proc.stdout == ""
    assert error_line(proc) == "kfkit: error: no local object store is running; run `kfkit store start`"
    assert not (tmp_path / "store" / "store.json").exists()  # asking never starts one


def test_export_lines_quote_values_for_the_shell():
    value = "a b'c\"$HOME`x`;d"
    proc = subprocess.run(
        ["bash", "-c", 'eval "$1" && printf %s "$X"', "-", export_lines({"X": value})],
        capture_output=True,
        text=True,
        timeout=10,
    )
    assert proc.returncode == 0 and proc.stdout == value
