"""The local SeaweedFS store shared by runs side by side: nobody stops it under another run."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from kfkit.local_store import LocalObjectStore

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
