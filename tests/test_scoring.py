"""Batch scoring end to end: a model version pushed by a real training run, `kfkit score` and
`kfkit run-local --pipeline scoring` against the real local object store, ML Metadata (SQLite)
and kfp.local. Predictions equal the served model's answers, refused rows are rejected and
counted, lineage leads from the predictions to the batch and the model version, and a batch
scored twice by one version is written once."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import PENGUINS, error_line, run_kfkit, run_pipeline
from scoring_helpers import FEATURES, penguins_batch, push_penguins

from kfkit.model_registry import download
from kfkit.prediction_registry import RECORD_FILE, list_scored_batches, read_table, stored_file
from kfkit.serving.model import KfkitModel
from kfkit.storage import ObjectUri

MODEL = "penguins-scoring"
BAD = {(3, "bill_depth_mm"): "deep", (7, "body_mass_g"): "-inf", (11, "island"): "Atlantis"}
CLASSES = ["Adelie", "Chinstrap", "Gentoo"]


@pytest.fixture(scope="module")
def trained(store_env, tmp_path_factory) -> dict:
    """Version 1 of MODEL, pushed (and deployed locally) by a training run of the penguins data."""
    csv = tmp_path_factory.mktemp("scoring-train") / "penguins.csv"
    shutil.copyfile(PENGUINS, csv)
    proc, document = run_pipeline(store_env, f"data_uri={csv}", f"model_name={MODEL}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert document["outcome"] == "pushed" and document["pushed"]["push"]["version"] == "1", document
    return document


@pytest.fixture(scope="module")
def batch(tmp_path_factory) -> Path:
    return penguins_batch(tmp_path_factory.mktemp("scoring-batch"), BAD)


@pytest.fixture(scope="module")
def first_scoring(trained, batch, store_env) -> dict:
    proc = run_kfkit(
        ["score", str(batch), "--model", MODEL, "--key-column", "penguin_id", "--json"], store_env
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


@pytest.fixture
def in_store_env(store_env, monkeypatch) -> dict[str, str]:
    """This test process uses the session's store, state folder and model-signing keys."""
    for name, value in store_env.items():
        if name.startswith(("KFKIT_", "AWS_")):
            monkeypatch.setenv(name, value)
    return store_env


def _served(objects, tmp_path: Path, version: str, rows: pd.DataFrame) -> np.ndarray:
    """What the pushed version's server answers for these rows (one request)."""
    folder = download(objects, MODEL, version, tmp_path / f"v{version}")
    server = KfkitModel(folder)
    server.load()
    return server.predict(rows[FEATURES].astype(object).to_numpy(), FEATURES)


def test_score_writes_the_served_answers_and_rejects_what_the_server_refuses(
    first_scoring, batch, objects, in_store_env, tmp_path
):
    result = first_scoring
    assert (result["model_name"], result["model_version"]) == (MODEL, "1")  # the version serving now
    assert (result["rows"], result["rows_scored"], result["rows_rejected"]) == (344, 342, 2)
    assert result["rejected_by_reason"] == {"not a number": 2}
    assert sum(result["class_distribution"].values()) == 342 and result["written"] is True
    # validate's findings on the batch (the label absent: TFDV's SERVING environment) are reported,
    # and do not stop the scoring: text in a numeric column, an unknown island (scored, as the
    # server scores it), the id column the schema lacks.
    assert set(result["data_anomalies"]) == {"train:bill_depth_mm", "train:island", "train:penguin_id"}
    assert "Atlantis" in result["data_anomalies"]["train:island"]
    assert result["predictions_uri"] == f"s3://predictions/{MODEL}/1/{result['dataset_fingerprint']}/"

    predictions = read_table(objects, result["predictions_uri"], "predictions.parquet")
    rows = pd.read_csv(batch, dtype={"bill_depth_mm": object, "body_mass_g": object})
    scored = rows.drop(index=[3, 7])
    assert list(predictions["penguin_id"]) == list(scored["penguin_id"])
    assert list(predictions["row_number"]) == list(scored.index)
    served = _served(objects, tmp_path, "1", scored)
    assert np.array_equal(predictions[[f"probability_{c}" for c in CLASSES]].to_numpy(), served)
    assert list(predictions["prediction"]) == [CLASSES[i] for i in served.argmax(axis=1)]
    assert set(predictions["model_version"]) == {"1"}

    rejects = read_table(objects, result["predictions_uri"], "rejects.parquet")
    assert rejects[["row_number", "penguin_id", "column", "reason", "value"]].to_dict("records") == [
        {
            "row_number": 3,
            "penguin_id": "p003",
            "column": "bill_depth_mm",
            "reason": "not a number",
            "value": "deep",
        },
        {
            "row_number": 7,
            "penguin_id": "p007",
            "column": "body_mass_g",
            "reason": "not a number",
            "value": "-inf",
        },
    ]
    folder = ObjectUri.parse(result["predictions_uri"])
    record = json.loads(objects.get_bytes(folder.child(RECORD_FILE)))
    assert record["run_id"] == result["run_id"] and record["model_sha256"] == result["model_sha256"]
    # Each file under a name carrying its sha256; the record names them.
    sha = record["files"]["predictions.parquet"]
    assert result["predictions_object"] == str(folder.child(f"predictions-{sha}.parquet"))
    assert objects.sha256(result["predictions_object"]) == sha
    summary = objects.get_bytes(stored_file(folder, record, "summary.md")).decode()
    assert "| rejected | 2 |" in summary and "| not a number | 2 |" in summary


def test_lineage_leads_from_the_predictions_to_the_batch_and_the_model_version(
    first_scoring, trained, in_store_env
):
    from kfkit.metadata import open_store

    store = open_store()
    found = store.find_artifacts(
        "system.Dataset", equals={"predictions_uri": first_scoring["predictions_uri"]}
    )
    [predictions] = [a for a in found if a.name == "predictions"]
    assert predictions.properties["model_sha256"] == first_scoring["model_sha256"]
    assert predictions.properties["dataset_fingerprint"] == first_scoring["dataset_fingerprint"]
    assert (predictions.properties["rows"], predictions.properties["rows_rejected"]) == (344, 2)
    [producer] = store.producers([predictions.id])[predictions.id]
    [task] = store.tasks([producer])
    assert task.task_name == "score"
    inputs = {a.id: a for a in store.artifacts([i for ids in task.input_artifacts.values() for i in ids])}
    batch = inputs[task.input_artifacts["batch"][0]]
    baseline = inputs[task.input_artifacts["baseline"][0]]
    assert inputs[task.input_artifacts["anomalies"][0]].properties["blessed"] in (False, 0)
    assert batch.properties["dataset_fingerprint"] == first_scoring["dataset_fingerprint"]
    assert (baseline.properties["version"], baseline.properties["sha256"]) == (
        "1",
        first_scoring["model_sha256"],
    )
    # The same sha256 as the model the training run trained and pushed as version 1.
    assert trained["pushed"]["push"]["sha256"] == first_scoring["model_sha256"]
    assert store.runs_of_tasks([producer])[producer].run_id == first_scoring["run_id"]
    store.close()


def test_the_same_batch_and_version_again_writes_nothing(first_scoring, batch, store_env, objects):
    folder = ObjectUri.parse(first_scoring["predictions_uri"])
    before = {info.uri: (info.etag, info.size) for info in objects.list(folder)}

    proc = run_kfkit(["score", str(batch), "--model", f"{MODEL}:1"], store_env)

    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "(already scored by this version: nothing new written)" in proc.stdout
    assert {info.uri: (info.etag, info.size) for info in objects.list(folder)} == before
    table = dict(
        line.split(None, 1) for line in proc.stdout.splitlines() if line and not line.startswith(" ")
    )
    assert table["scored"] == "342" and table["rejected"].startswith("2 (not a number: 2)")


def test_an_asked_version_scores_into_its_own_folder(
    first_scoring, batch, store_env, objects, in_store_env, tmp_path
):
    version = push_penguins(objects, tmp_path / "forest", MODEL, estimator="random_forest")
    assert version == "2"

    proc = run_kfkit(
        ["run-local", "--pipeline", "scoring", "--param", f"data_uri={batch}",
         "--param", f"model_name={MODEL}", "--param", "model_version=2", "--json"],
        store_env,
    )  # fmt: skip

    assert proc.returncode == 0, proc.stderr[-2000:]
    document = json.loads(proc.stdout)
    scored = document["scored"]["score"]
    assert (scored["model_version"], scored["rows_scored"], scored["written"]) == ("2", 342, True)
    assert scored["predictions_uri"] == f"s3://predictions/{MODEL}/2/{first_scoring['dataset_fingerprint']}/"
    predictions = read_table(objects, scored["predictions_uri"], "predictions.parquet")
    rows = pd.read_csv(batch, dtype={"bill_depth_mm": object, "body_mass_g": object}).drop(index=[3, 7])
    served = _served(objects, tmp_path, "2", rows)
    assert np.array_equal(predictions[[f"probability_{c}" for c in CLASSES]].to_numpy(), served)
    listed = {(b.model_version, b.dataset_fingerprint) for b in list_scored_batches(objects, MODEL)}
    assert listed == {
        ("1", first_scoring["dataset_fingerprint"]),
        ("2", first_scoring["dataset_fingerprint"]),
    }


def test_a_bad_model_or_file_is_one_line(trained, batch, store_env, tmp_path):
    assert error_line(run_kfkit(["score", str(batch), "--model", f"{MODEL}:9"], store_env)) == (
        f"kfkit: error: resolve-baseline: model {MODEL} has no pushed version 9"
    )
    assert error_line(run_kfkit(["score", str(tmp_path / "nope.csv"), "--model", MODEL], store_env)) == (
        f"kfkit: error: {tmp_path / 'nope.csv'}: no such file or folder"
    )
    assert "must be a pushed version number" in error_line(
        run_kfkit(["score", str(batch), "--model", f"{MODEL}:latest"], store_env)
    )
    no_sex = tmp_path / "no_sex.csv"
    pd.read_csv(batch).drop(columns=["sex"]).to_csv(no_sex, index=False)
    line = error_line(run_kfkit(["score", str(no_sex), "--model", MODEL], store_env))
    assert (
        line.startswith("kfkit: error: score: ") and f"lacks feature column(s) sex of model '{MODEL}'" in line
    )
