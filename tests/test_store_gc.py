"""`kfkit store gc`: incomplete versions and warm-start folders of dead runs, listed (dry run by
default), removed with --yes; live pushes and runs, and complete versions, are never touched."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

from conftest import run_kfkit

from kfkit.model_folder import MANIFEST_FILE
from kfkit.model_registry import CLAIM_FILE, REMOVED_FILE, latest_version, resolve, version_folder

MODEL = "gc-leftovers"


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def _claim(objects, version: int, **who) -> None:
    record = {"run_id": f"run-{version}", "sha256": "0" * 64, "claimed_at": time.time(), **who}
    objects.put_bytes(version_folder(MODEL, version).child(CLAIM_FILE), json.dumps(record).encode())


def _gc(env, *flags) -> list[dict]:
    proc = run_kfkit(["store", "gc", "--json", *flags], env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    document = json.loads(proc.stdout)
    assert document["dry_run"] == ("--yes" not in flags)
    return [
        row for row in document["leftovers"] if f"/{MODEL}/" in row["where"] or row["kind"] == "warm-folder"
    ]


def test_gc_lists_then_removes_only_what_dead_runs_left(store_env, objects, tmp_path):
    env = dict(store_env, KFKIT_HOME=str(tmp_path / "home"))
    host, dead = socket.gethostname(), _dead_pid()
    objects.ensure_bucket("models")
    _claim(objects, 1, host=host, pid=dead)
    objects.put_bytes(version_folder(MODEL, 1).child(MANIFEST_FILE), b"{}")  # complete: never listed
    _claim(objects, 2, host=host, pid=dead)  # killed after its claim
    objects.put_bytes(version_folder(MODEL, 2).child("model.joblib"), b"half a model")
    _claim(objects, 3, host=host, pid=dead)
    _claim(objects, 4, host=host, pid=os.getpid())  # a push still running here
    _claim(objects, 5, host="another-machine", pid=1)  # someone else's, claimed just now
    warm = tmp_path / "home" / "warm"
    for name, pid in (("run-dead", dead), ("run-live", os.getpid())):
        (warm / name).mkdir(parents=True)
        (warm / name / "owner.json").write_text(json.dumps({"pid": pid, "host": host}))
        (warm / name / "tasks.sock").write_text("")

    listed = {row["where"]: row for row in _gc(env)}
    folder = {v: str(version_folder(MODEL, v)) for v in range(1, 6)}
    assert set(listed) == {folder[2], folder[3], folder[4], folder[5], str(warm / "run-dead")}
    assert [listed[folder[v]]["removable"] for v in (2, 3, 4, 5)] == [True, True, False, False]
    assert listed[folder[2]]["objects"] == 2 and listed[folder[2]]["bytes"] > len(b"half a model")
    assert f"(pid {dead}, run run-2) is gone" in listed[folder[2]]["why"]
    assert "may still be running" in listed[folder[5]]["why"]
    table = run_kfkit(["store", "gc"], env)
    assert table.returncode == 0 and "would remove" in table.stdout and "kept" in table.stdout
    assert objects.exists(version_folder(MODEL, 2).child("model.joblib"))  # dry run

    removed = {row["where"]: row for row in _gc(env, "--yes")}
    assert [removed[folder[v]]["removed"] for v in (2, 3, 4, 5)] == [True, True, False, False]
    for v in (2, 3):
        left = [info.uri.rsplit("/", 1)[-1] for info in objects.list(version_folder(MODEL, v))]
        assert left == [REMOVED_FILE]
    assert objects.exists(version_folder(MODEL, 4).child(CLAIM_FILE))
    assert not (warm / "run-dead").exists() and (warm / "run-live").is_dir()
    assert {row["where"] for row in _gc(env)} == {folder[4], folder[5]}
    # Another machine's claim counts once it is older than --grace.
    assert [row["removable"] for row in _gc(env, "--grace", "0") if row["where"] == folder[5]] == [True]

    # The readers never saw anything but version 1, and name the leftover when asked for it.
    assert latest_version(objects, MODEL) == "1"
    proc = run_kfkit(["serve", "--model", f"{MODEL}:2"], env)
    assert proc.returncode == 1 and "version 2 is incomplete (no kfkit-model.json)" in proc.stderr
    assert resolve(objects, MODEL) == (MODEL, "1")
