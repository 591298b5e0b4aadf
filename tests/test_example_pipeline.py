"""The example of adding a component (pipelines/examples/majority_baseline/): its pipeline runs
through the real CLI with every task recording its lineage, and nothing outside its folder
(and this test) had to change to add it."""

from __future__ import annotations

import json
import subprocess

import pytest
from conftest import REPO, run_kfkit

EXAMPLE = "pipelines/examples/majority_baseline"
TASKS = (
    "ingest",
    "resolve-baseline",
    "validate",
    "train",
    "train-2",
    "evaluate",
    "evaluate-2",
    "majority-baseline",
    "majority-baseline-2",
)


@pytest.fixture(scope="module")
def run(store_env):
    proc = run_kfkit(
        [
            "run-local",
            "--pipeline",
            f"{EXAMPLE}/pipeline.py",
            "--param",
            "data_uri=sdk/kfkit/data/penguins.csv",
            "--param",
            "model_name=penguins-baseline",
            "--json",
        ],
        store_env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


@pytest.mark.slow
def test_the_example_runs_every_task_and_the_models_beat_the_baseline(run):
    assert run["status"] == "SUCCEEDED", run.get("error")
    assert run["tasks"] == {task: "SUCCEEDED" for task in TASKS}
    assert set(run["metrics"]) == {"evaluate", "evaluate-2", "majority-baseline", "majority-baseline-2"}
    # The two baselines are one number (the same eval rows); each is well below its model.
    # majority-baseline follows train -> evaluate, majority-baseline-2 train-2 -> evaluate-2.
    for baseline, evaluated in (("majority-baseline", "evaluate"), ("majority-baseline-2", "evaluate-2")):
        metrics = run["metrics"][baseline]
        assert 0.3 < metrics["baseline_accuracy"] < 0.6  # Adelie's share of the penguins
        assert metrics["model_accuracy"] == run["metrics"][evaluated]["accuracy"]
        assert metrics["baseline_accuracy"] + 0.3 < metrics["model_accuracy"]
        assert metrics["lift"] == pytest.approx(metrics["model_accuracy"] - metrics["baseline_accuracy"])


@pytest.mark.slow
def test_every_task_recorded_its_own_lineage(run, store_env):
    proc = run_kfkit(["runs", "show", run["run_id"], "--json"], store_env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    shown = json.loads(proc.stdout)
    assert {t["task"]: t["state"] for t in shown["tasks"]} == {task: "COMPLETE" for task in TASKS}
    outputs = {(a["task"], a["name"]) for a in shown["artifacts"]}
    assert {("majority-baseline", "metrics"), ("majority-baseline-2", "metrics")} <= outputs


def test_adding_the_example_touched_only_its_folder():
    folder = REPO / EXAMPLE
    component = folder / "components" / "majority_baseline"
    for path in (
        folder / "README.md",
        folder / "pipeline.py",
        component / "component.py",
        component / "README.md",
        component / "metadata.yaml",
        component / "OWNERS",
        component / "tests" / "test_majority_baseline.py",
    ):
        assert path.is_file(), f"{path.relative_to(REPO)} is missing"
    # Tracked and new files alike, outside the example's folder and this test (the project
    # README points readers at the example; nothing that runs it needs that).
    names = ["-e", "majority_baseline", "-e", "majority-baseline"]
    outside = [".", f":!{EXAMPLE}", ":!tests/test_example_pipeline.py", ":!README.md"]
    found = subprocess.run(
        ["git", "grep", "--untracked", "-l", "-i", *names, "--", *outside],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert found.returncode in (0, 1), found.stderr  # 1: no match
    assert found.stdout.split() == [], "kfkit files that name the example: " + found.stdout
