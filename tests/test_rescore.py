"""`kfkit rescore` end to end: version 1 of a penguins model trained, pushed and deployed locally by
a real training run, three batches scored by it with `kfkit score`, version 2 (a random forest:
other predictions) pushed beside it, then every batch rescored with version 2 as a candidate,
against the real local object store, ML Metadata and kfp.local."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from conftest import PENGUINS, run_kfkit, run_pipeline
from scoring_helpers import penguins_batch, push_penguins

from kfkit.prediction_registry import read_table
from kfkit.storage import ObjectUri

MODEL = "penguins-rescore"
BAD = {(5, "body_mass_g"): "heavy"}


@pytest.fixture(scope="module")
def in_store_env(store_env) -> dict[str, str]:
    """This test process uses the session's store, state folder and model-signing keys."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in store_env.items():
            if name.startswith(("KFKIT_", "AWS_")):
                patch.setenv(name, value)
        yield store_env


def _score(path: Path, env: dict[str, str]) -> dict:
    proc = run_kfkit(["score", str(path), "--model", MODEL, "--key-column", "penguin_id", "--json"], env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def history(in_store_env, objects, tmp_path_factory) -> dict:
    """Version 1 trained, pushed and deployed; three batches scored by it; version 2 pushed; the
    third batch's file changed since it was scored."""
    env = in_store_env
    csv = tmp_path_factory.mktemp("rescore-train") / "penguins.csv"
    shutil.copyfile(PENGUINS, csv)
    proc, document = run_pipeline(env, f"data_uri={csv}", f"model_name={MODEL}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert document["pushed"]["push"]["version"] == "1", document
    full = penguins_batch(tmp_path_factory.mktemp("rescore-full"), BAD)
    head = tmp_path_factory.mktemp("rescore-head") / "head.csv"
    pd.read_csv(full).head(200).to_csv(head, index=False)
    tail = tmp_path_factory.mktemp("rescore-tail") / "tail.csv"
    pd.read_csv(full).iloc[150:].to_csv(tail, index=False)
    scored = {name: _score(path, env) for name, path in (("full", full), ("head", head), ("tail", tail))}
    # The tail batch's file is edited after it was scored: its data is no longer what was scored.
    tail.write_text(tail.read_text().replace("Dream", "Torgersen", 1))
    version = push_penguins(objects, tmp_path_factory.mktemp("rescore-v2"), MODEL, estimator="random_forest")
    assert version == "2"
    return {"scored": scored, "tail": tail, "env": env}


def _listing(objects) -> dict[str, tuple[str, int]]:
    folder = ObjectUri("predictions", f"{MODEL}/")
    return {info.uri: (info.etag, info.size) for info in objects.list(folder)}


@pytest.fixture(scope="module")
def rescored(history, objects) -> dict:
    from kfkit.deploy.local import read_record

    deployed_before = read_record(MODEL)
    assert deployed_before and deployed_before["serving"]["version"] == "1"
    proc = run_kfkit(["rescore", "--model", f"{MODEL}:2", "--json"], history["env"], timeout=900)
    assert proc.returncode == 1, proc.stderr[-3000:]  # one batch failed, the others rescored
    return {"proc": proc, "result": json.loads(proc.stdout), "deployed_before": deployed_before}


def test_every_earlier_batch_gets_a_diff_with_the_counts_of_the_two_predictions_files(
    history, rescored, objects
):
    result = rescored["result"]
    assert (result["model_name"], result["model_version"]) == (MODEL, "2")
    by_fingerprint = {b["dataset_fingerprint"]: b for b in result["batches"]}
    assert len(by_fingerprint) == 3
    for name in ("full", "head"):
        first = history["scored"][name]
        diff = by_fingerprint[first["dataset_fingerprint"]]
        assert diff["status"] == "rescored", diff
        assert diff["compared_version"] == "1"
        assert diff["predictions_uri"] == f"s3://predictions/{MODEL}/2/{first['dataset_fingerprint']}/"
        # The expected counts, from the two stored predictions files alone.
        before = read_table(objects, first["predictions_uri"])
        after = read_table(objects, diff["predictions_uri"])
        joined = before.merge(after, on="row_number")
        changed = int((joined["prediction_x"] != joined["prediction_y"]).sum())
        assert (diff["rows_compared"], diff["rows_changed"]) == (len(joined), changed)
        assert diff["rows_compared"] == first["rows_scored"]
        assert set(after["model_version"]) == {"2"} and len(after) == first["rows_scored"]
        assert diff["classes_before"] == {k: int(v) for k, v in before["prediction"].value_counts().items()}
        assert diff["classes_after"] == {k: int(v) for k, v in after["prediction"].value_counts().items()}
        # The rows listed first are those whose probabilities moved most.
        moved = (joined.filter(like="probability_").filter(like="_y").to_numpy()) - (
            joined.filter(like="probability_").filter(like="_x").to_numpy()
        )
        largest = abs(moved).max(axis=1).max()
        assert diff["largest_changes"][0]["change"] == pytest.approx(largest)
        assert diff["largest_changes"][0]["penguin_id"].startswith("p")
        report = objects.get_bytes(ObjectUri.parse(diff["report_uri"])).decode()
        assert diff["report_uri"] == diff["predictions_uri"] + "rescore-from-1.md"
        assert f"| predictions changed | {changed} (" in report
        assert f"| rows compared (scored by both) | {len(joined)} |" in report
    assert changed > 0 or by_fingerprint[history["scored"]["full"]["dataset_fingerprint"]]["rows_changed"] > 0


def test_a_batch_whose_data_changed_is_one_line_naming_the_file_and_the_rest_go_on(history, rescored):
    tail = history["scored"]["tail"]
    [diff] = [
        b for b in rescored["result"]["batches"] if b["dataset_fingerprint"] == tail["dataset_fingerprint"]
    ]
    assert diff["status"] == "failed"
    assert "\n" not in diff["message"]
    assert diff["message"].startswith(
        f"batch {tail['dataset_fingerprint'][:12]}: {history['tail']}: changed since run {tail['run_id']}"
    )
    # A progress line per batch on stderr.
    lines = [line for line in rescored["proc"].stderr.splitlines() if line.startswith("batch ")]
    assert sum(": scoring with version 2" in line for line in lines) == 3
    assert any(str(history["tail"]) in line and "failed" in line for line in lines)


def test_a_candidate_version_changes_no_deployment(history, rescored):
    from kfkit.deploy.local import read_record

    assert read_record(MODEL) == rescored["deployed_before"]


def test_rescoring_again_writes_nothing_new(history, rescored, objects):
    before = _listing(objects)
    assert any(uri.endswith("rescore-from-1.md") for uri in before)

    proc = run_kfkit(["rescore", "--model", f"{MODEL}:2"], history["env"], timeout=900)

    assert proc.returncode == 1, proc.stderr[-3000:]  # the changed batch still fails
    assert _listing(objects) == before
    rows = [line.split() for line in proc.stdout.splitlines()]
    statuses = {
        row[0]: row[1] for row in rows if len(row) > 1 and row[1] in ("rescored", "skipped", "failed")
    }
    assert sorted(statuses.values()) == ["failed", "skipped", "skipped"]
    assert "1 of 3 batch(es) failed" in proc.stdout


# The loop as the README shows it (train, score, push a new version, rescore, reproduce), run from
# the repository root with a state folder of its own. `<run-id>` is the first training run's id,
# read from `kfkit runs list --json` as a user reads it from `kfkit runs list`.
README_LOOP = """\
.venv/bin/kfkit run-local --config configs/penguins.yaml --param data_uri=sdk/kfkit/data/penguins.csv
.venv/bin/kfkit score sdk/kfkit/data/penguins.csv --model penguins
.venv/bin/kfkit run-local --config configs/penguins.yaml --param data_uri=sdk/kfkit/data/penguins.csv \\
    --param 'hyperparameters={C: 10}'
.venv/bin/kfkit rescore --model penguins
.venv/bin/kfkit runs list
.venv/bin/kfkit reproduce <run-id>
"""


def test_the_readme_loop_runs_as_written(tmp_path):
    import os
    import shlex
    import subprocess

    from conftest import REPO

    readme = (REPO / "README.md").read_text()
    assert README_LOOP in readme, "README.md's loop block differs from the commands this test runs"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KFKIT_", "AWS_"))}
    env["KFKIT_HOME"] = str(tmp_path)

    def run(command: list[str]) -> subprocess.CompletedProcess:
        return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)

    outputs = []
    for line in README_LOOP.replace("\\\n", " ").splitlines():
        command = shlex.split(line)
        if command[-1] == "<run-id>":
            listed = json.loads(run([".venv/bin/kfkit", "runs", "list", "--json"]).stdout)
            trainings = [r["run_id"] for r in listed if r["pipeline"] == "kfkit-training"]
            command[-1] = trainings[-1]  # newest first: the first training run is the last
        proc = run(command)
        assert proc.returncode == 0, f"{line}\n{proc.stderr[-3000:]}"
        assert "Traceback" not in proc.stderr
        outputs.append(proc.stdout)
    first, scored, second, rescored, _, reproduced = outputs
    assert "pushed version 1 -> s3://models/penguins/1/" in first
    assert "s3://predictions/penguins/1/" in scored
    assert "pushed version 2 -> s3://models/penguins/2/" in second
    assert "model penguins version 2 (deploy target 'local' serves version 2)" in rescored
    [row] = [line.split() for line in rescored.splitlines() if " rescored " in f" {line} "]
    assert row[1:3] == ["rescored", "1"] and row[3] == "344"
    assert "rescore-from-1.md" in rescored and "all batches done" in rescored
    assert "reproduced: same data, splits, metrics and predictions" in reproduced
