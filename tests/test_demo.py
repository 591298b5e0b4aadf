"""`make run`'s job end to end: store, upload, pipeline, the model server, predictions,
and nothing left running afterwards. Slow (~35 s)."""

from __future__ import annotations

import json
import os
import re
import subprocess

import pytest
from conftest import REPO, run_kfkit

pytestmark = pytest.mark.slow


def _processes_under(path: str) -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if path in line and "ps -eo" not in line]


def test_demo_serves_predictions_and_stops_everything(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KFKIT_", "AWS_"))}
    env.update(KFKIT_HOME=str(tmp_path), KFKIT_REPO=str(REPO))
    proc = run_kfkit(["demo", "--rows", "9"], env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "status               SUCCEEDED" in proc.stdout
    rows = re.findall(r"^\s*\d+\s+(\w+)\s+(\w+)\s+([0-9.]+)$", proc.stdout, re.M)
    assert len(rows) == 9
    assert {truth for truth, _, _ in rows} == {"Adelie", "Chinstrap", "Gentoo"}
    assert all(0.0 <= float(p) <= 1.0 for _, _, p in rows)
    correct = int(re.search(r"^(\d+)/9 correct", proc.stdout, re.M).group(1))
    assert correct == sum(truth == predicted for truth, predicted, _ in rows) >= 7
    assert _processes_under(str(tmp_path)) == []

    # After `make run`, the lineage of the served model answers from the metadata store.
    lineage = run_kfkit(["lineage", "model", "penguins", "--json"], env)
    assert lineage.returncode == 0, lineage.stderr
    found = json.loads(lineage.stdout)
    fingerprint = re.search(r"^dataset fingerprint\s+([0-9a-f]{64})$", proc.stdout, re.M).group(1)
    version, uri = re.search(
        r"^\s+push\s+SUCCEEDED .*pushed version (\d+) -> (\S+)$", proc.stdout, re.M
    ).groups()
    assert found["dataset_fingerprint"] == fingerprint
    assert (found["model"]["version"], found["model"]["uri"]) == (version, uri)
    assert found["validation"]["blessed"] is True
    assert found["training"]["parameters"]["estimator"] == "logistic_regression"
    assert found["metrics"]["accuracy"] >= 0.9
