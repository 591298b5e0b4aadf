"""kill -9 of a real `kfkit run-local` at every step of push: what is left is either whole or
ignored, the next run marks the killed one FAILED and pushes a whole version, and `kfkit store gc`
finds (then removes) the leftovers.

Push stops at each point through its documented test hook, ``KFKIT_TEST_PAUSE_AT`` (it prints
``paused at <point>`` and waits), so the kill lands exactly there; everything else is the real
pipeline, store, metadata and deploy record.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import KFKIT, PENGUINS, REPO, run_kfkit, run_pipeline

from kfkit.components.push.executor import PAUSE_ENV, PAUSE_POINTS
from kfkit.deploy.local import served_version
from kfkit.metadata import open_store
from kfkit.model_folder import MANIFEST_FILE
from kfkit.model_registry import REMOVED_FILE, download, existing_versions, latest_version, version_folder

MODEL = "penguins-crash"
pytestmark = pytest.mark.slow


def _kill_at(env: dict[str, str], point: str, seed: int) -> tuple[str, int]:
    """Start a run that pauses at ``point`` in push, SIGKILL its whole process group there;
    returns the killed run's id and pid."""
    victim = subprocess.Popen(
        [KFKIT, "run-local", "--config", "configs/penguins.yaml", "--param", f"data_uri={PENGUINS}",
         "--param", f"model_name={MODEL}", "--param", f"random_seed={seed}"],
        env={**env, PAUSE_ENV: point}, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True, start_new_session=True,
    )  # fmt: skip
    seen, deadline = [], time.monotonic() + 240
    try:
        while time.monotonic() < deadline:
            line = victim.stderr.readline()
            if not line:
                break
            seen.append(line)
            if f"paused at {point}" in line:
                store = open_store(env["KFKIT_METADATA_URI"])
                run_id = store.runs(limit=1)[0].run_id
                store.close()
                return run_id, victim.pid
        raise AssertionError(f"push never paused at {point}:\n{''.join(seen)[-3000:]}")
    finally:
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait()


def _lineage_versions(env: dict[str, str]) -> set[str]:
    """Versions of MODEL the lineage knows as pushed."""
    store = open_store(env["KFKIT_METADATA_URI"])
    try:
        found = store.find_artifacts("system.Model", equals={"pushed": True, "model_name": MODEL})
        return {str(artifact.properties["version"]) for artifact in found}
    finally:
        store.close()


def _gc(env: dict[str, str], *flags: str) -> list[dict]:
    proc = run_kfkit(["store", "gc", "--json", *flags], env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)["leftovers"]


def test_kill_9_at_every_step_of_push_leaves_nothing_half_served(store_env, objects, tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("KFKIT_HOME", str(home))  # this process verifies with the runs' trusted keys
    env = dict(store_env, KFKIT_HOME=str(home), KFKIT_METADATA_URI=f"sqlite://{tmp_path / 'crash.sqlite'}")
    proc, first = run_pipeline(env, f"data_uri={PENGUINS}", f"model_name={MODEL}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    base = int(first["pushed"]["push"]["version"])
    incomplete = []
    for seed, point in enumerate(PAUSE_POINTS, start=100):
        killed_run, killed_pid = _kill_at(env, point, seed)
        version = str(existing_versions(objects, MODEL)[-1])  # the killed push's claim
        complete = objects.exists(version_folder(MODEL, version).child(MANIFEST_FILE))
        serving = served_version(MODEL, home)
        # Whatever the point, what serves is a whole version, and it has lineage.
        assert objects.exists(version_folder(MODEL, serving).child(MANIFEST_FILE)), point
        assert serving in _lineage_versions(env), point
        if point in ("claimed", "uploaded"):
            assert not complete and latest_version(objects, MODEL) != version, point
            incomplete.append(version)
        else:
            assert complete, point
        # Recorded before deployed: from "recorded" on, the killed run's version has lineage.
        assert (version in _lineage_versions(env)) == (point in ("recorded", "deployed")), point
        assert (serving == version) == (point == "deployed"), point

        proc, after = run_pipeline(
            env, f"data_uri={PENGUINS}", f"model_name={MODEL}", f"random_seed={seed + 50}"
        )
        assert proc.returncode == 0, f"{point}: {proc.stderr[-3000:]}"
        assert (
            f"run {killed_run}: marked FAILED (aborted: the kfkit process (pid {killed_pid})" in proc.stderr
        )
        shown = json.loads(run_kfkit(["runs", "show", killed_run, "--json"], env).stdout)
        assert shown["state"] == "FAILED" and all(t["state"] != "RUNNING" for t in shown["tasks"]), point
        pushed = after["pushed"]["push"]["version"]
        assert int(pushed) == int(version) + 1, point  # a number once claimed is never reused
        assert served_version(MODEL, home) == pushed and pushed in _lineage_versions(env)
        download(objects, MODEL, pushed, tmp_path / f"download-{point}")  # whole: signature, sha256
    assert int(version) == base + 2 * len(PAUSE_POINTS) - 1  # the last killed push's claim

    # gc: the two incomplete versions (their pushes are dead) and the killed runs' warm folders.
    listed = _gc(env)
    mine = [r for r in listed if r["kind"] == "version" and f"/{MODEL}/" in r["where"]]
    assert sorted(r["where"] for r in mine) == sorted(str(version_folder(MODEL, v)) for v in incomplete)
    assert all(r["removable"] and not r["removed"] and "is gone" in r["why"] for r in mine)
    warm = [r for r in listed if r["kind"] == "warm-folder"]
    assert len(warm) == len(PAUSE_POINTS) and all(Path(r["where"]).is_dir() for r in warm)
    table = run_kfkit(["store", "gc"], env)
    assert table.returncode == 0 and "would remove" in table.stdout and "--yes" in table.stdout
    for v in incomplete:  # a dry run removed nothing
        assert objects.exists(version_folder(MODEL, v).child("kfkit-claim.json"))

    removed = _gc(env, "--yes")
    assert all(r["removed"] for r in removed if r["where"] in {m["where"] for m in mine + warm})
    for v in incomplete:
        left = [info.uri.rsplit("/", 1)[-1] for info in objects.list(version_folder(MODEL, v))]
        assert left == [REMOVED_FILE]  # the number stays taken, the bytes are gone
    assert not any(Path(r["where"]).exists() for r in warm)
    assert not [r for r in _gc(env) if f"/{MODEL}/" in r["where"] or r["kind"] == "warm-folder"]
    # The next push still takes a fresh number and everything keeps serving.
    assert latest_version(objects, MODEL) == served_version(MODEL, home)
