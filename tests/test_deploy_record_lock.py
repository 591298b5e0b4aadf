"""The local deployment record under concurrent writers: real processes, one lock, no lost history."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time

from kfkit.deploy.local import LocalTarget, read_record, record_path
from kfkit.deploy.request import DeploymentRequest

WRITERS = 8

# One deploy of one version, started as its own interpreter; every writer waits for the same
# go-file so that all eight read-modify-write the record at once.
_WRITER = """
import os, sys, time
from pathlib import Path
from kfkit.deploy.local import LocalTarget
from kfkit.deploy.request import DeploymentRequest
version, go = sys.argv[1], Path(sys.argv[2])
while not go.exists():
    time.sleep(0.005)
LocalTarget().apply(DeploymentRequest(model_name="locked", version=version,
                                      model_uri=f"s3://models/locked/{version}", sha256=version * 4))
"""


def test_eight_concurrent_deploys_keep_every_history_entry(tmp_path):
    env = dict(os.environ, KFKIT_HOME=str(tmp_path))
    first = DeploymentRequest(model_name="locked", version="100", model_uri="s3://models/locked/100")
    LocalTarget(root=tmp_path).apply(first)  # so each of the eight adds one history entry
    go = tmp_path / "go"
    writers = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(n), str(go)], env=env, stderr=subprocess.PIPE)
        for n in range(1, WRITERS + 1)
    ]
    time.sleep(2)  # every interpreter has imported kfkit and polls for the go-file
    go.touch()
    for writer in writers:
        _, stderr = writer.communicate(timeout=120)
        assert writer.returncode == 0, stderr.decode()[-2000:]

    path = record_path("locked", tmp_path)
    record = json.loads(path.read_text())  # valid JSON, whole
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    history = record["history"]
    changes = [entry["change"] for entry in history]
    assert sorted(changes) == sorted(f"replace v{n}" for n in range(1, WRITERS + 1))
    # A chain with no gap: each entry's "before" is what the previous change made serving,
    # and what serves now is the last writer's version.
    assert history[0]["serving"]["version"] == "100"
    for previous, entry in zip(history, history[1:], strict=False):
        assert entry["serving"]["version"] == previous["change"].removeprefix("replace v")
    assert record["serving"]["version"] == history[-1]["change"].removeprefix("replace v")
    assert record["last_change"]["change"] == history[-1]["change"]
    assert not [p.name for p in path.parent.iterdir() if p.name.startswith(".")]  # no temp file left


def test_a_writer_killed_while_holding_the_lock_does_not_block_the_next(tmp_path):
    """flock dies with its holder: kill -9 inside the lock, and the next deploy goes through."""
    env = dict(os.environ, KFKIT_HOME=str(tmp_path))
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom kfkit.deploy.local import record_lock\n"
            "with record_lock('locked'):\n    print('locked', flush=True)\n    time.sleep(600)\n",
        ],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "locked"
    holder.kill()
    holder.wait()
    request = DeploymentRequest(model_name="locked", version="1", model_uri="s3://models/locked/1")
    LocalTarget(root=tmp_path).apply(request)
    assert read_record("locked", tmp_path)["serving"]["version"] == "1"
