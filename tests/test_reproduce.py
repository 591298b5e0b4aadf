"""`kfkit reproduce RUN_ID`: a past penguins run re-run from its lineage, against the real local
object store, ML Metadata (SQLite) and kfp.local; one original run and one reproduction."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import PENGUINS, error_line, run_kfkit, run_pipeline

from kfkit.model_registry import existing_versions
from kfkit.reproduce import DiffRow, Reproduction, format_reproduction

MODEL = "penguins-reproduce"


@pytest.fixture(scope="module")
def original(store_env, tmp_path_factory) -> dict:
    """One training run on a local copy of the penguins CSV; the copy is the data it read."""
    csv = tmp_path_factory.mktemp("reproduce-data") / "penguins.csv"
    shutil.copyfile(PENGUINS, csv)
    proc, document = run_pipeline(store_env, f"data_uri={csv}", f"model_name={MODEL}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert document["outcome"] == "pushed", document
    return {"csv": csv, "run": document}


def _deployment_record(store_env: dict) -> bytes:
    return (Path(store_env["KFKIT_HOME"]) / "deployments" / f"{MODEL}.json").read_bytes()


def _run_ids(store_env: dict) -> list[str]:
    proc = run_kfkit(["runs", "list", "--limit", "200", "--json"], store_env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return [r["run_id"] for r in json.loads(proc.stdout)]


def test_reproduce_gives_the_same_fingerprint_splits_metrics_and_pushes_nothing(original, store_env, objects):
    versions, deployment = existing_versions(objects, MODEL), _deployment_record(store_env)
    run_id = original["run"]["run_id"]

    proc = run_kfkit(["reproduce", run_id, "--json"], store_env)

    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert result["reproduced"] is True and result["exit_code"] == 0
    assert result["original_run_id"] == run_id and result["run_id"] not in ("", run_id)
    rows = {r["item"]: r for r in result["rows"]}
    train = original["run"]["artifacts"]["ingest.train_split"]
    assert rows["dataset fingerprint"]["reproduced"] == original["run"]["dataset_fingerprint"]
    assert (rows["train rows"]["reproduced"], rows["eval rows"]["reproduced"]) == (
        train["train_rows"],
        train["eval_rows"],
    )
    metrics = original["run"]["metrics"]["evaluate"]
    assert {name: rows[f"metric {name}"]["reproduced"] for name in metrics} == metrics
    assert all(rows[f"metric {name}"]["same"] == "yes" for name in metrics)
    # Whether the model bytes are identical is said, either way, with the reason when not.
    model = rows["model sha256"]
    assert model["original"] == original["run"]["artifacts"]["train.model"]["sha256"]
    said = "identical bytes" if model["same"] == "yes" else "model.joblib bytes differ"
    assert model["note"].startswith(said), model
    assert result["model"]["manifest_differs_in"] == ["run_id"]  # the manifest names its run
    predictions = result["predictions"]
    assert predictions["rows"] == train["eval_rows"] == predictions["equal_labels"]
    assert predictions["max_abs_probability_difference"] <= 1e-9
    # The reproduced run is recorded, ran every task but push, and changed no version or deployment.
    assert result["run_id"] in _run_ids(store_env)
    assert result["summary"]["tasks"] == {
        "resolve-source": "SUCCEEDED",
        "ingest": "SUCCEEDED",
        "resolve-baseline": "SUCCEEDED",
        "validate": "SUCCEEDED",
        "train": "SUCCEEDED",
        "evaluate": "SUCCEEDED",
    }
    assert result["summary"]["pushed"] == {}
    assert existing_versions(objects, MODEL) == versions
    assert _deployment_record(store_env) == deployment

    # The table people read says the same, from the same result.
    fields = {k: v for k, v in result.items() if k != "exit_code"}
    table = format_reproduction(Reproduction(**{**fields, "rows": [DiffRow(**r) for r in result["rows"]]}))
    fingerprint_line = next(line for line in table.splitlines() if line.startswith("dataset fingerprint"))
    assert fingerprint_line.split()[-1] == "yes"
    assert table.endswith("reproduced: same data, splits, metrics and predictions")


def test_data_changed_since_the_run_is_refused_with_one_line_naming_the_file(original, store_env, objects):
    csv: Path = original["csv"]
    before = csv.read_text()
    lines = before.splitlines(keepends=True)
    assert ",39.1," in lines[1]
    runs = _run_ids(store_env)
    try:
        csv.write_text(lines[0] + lines[1].replace(",39.1,", ",39.2,", 1) + "".join(lines[2:]))
        proc = run_kfkit(["reproduce", original["run"]["run_id"]], store_env)
    finally:
        csv.write_text(before)

    line = error_line(proc)
    assert proc.returncode == 1
    assert line.startswith(f"kfkit: error: {csv}: changed since run {original['run']['run_id']}"), line
    assert _run_ids(store_env) == runs  # nothing ran


def test_an_unknown_run_id_is_one_line(store_env):
    proc = run_kfkit(["reproduce", "kfkit-training-19700101-000000-000000"], store_env)

    assert proc.returncode == 1
    assert "no run 'kfkit-training-19700101-000000-000000' in the metadata store" in error_line(proc)
