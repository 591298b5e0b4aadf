"""score on a real pushed penguins model and the real object store: predictions equal the
server's answers, refused rows rejected with their reason, write-once publication."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import make_artifact, make_outputs
from kfp.dsl import Artifact, Dataset
from scoring_helpers import FEATURES, ingested, penguins_batch, push_penguins

from kfkit.components import score as component
from kfkit.components.resolve_baseline.executor import find_baseline
from kfkit.components.score.executor import score_table
from kfkit.errors import KfkitError
from kfkit.model_folder import sha256_file
from kfkit.prediction_registry import (
    RECORD_FILE,
    batch_folder,
    content_name,
    list_scored_batches,
    read_table,
    stored_file,
)
from kfkit.serving.model import KfkitModel

MODEL = "score-penguins"
BAD = {
    (5, "bill_length_mm"): "abc",  # text in a numeric feature
    (9, "flipper_length_mm"): "inf",  # infinity: the server refuses it too
    (12, "island"): "Atlantis",  # an unknown category: scored, as the server scores it
    (20, "body_mass_g"): "1e308",  # finite, but the scaler turns it into infinity
}


@pytest.fixture(scope="module")
def model(objects, tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("score-model")
    version = push_penguins(objects, folder / "train", MODEL)
    baseline = find_baseline(MODEL, str(folder / "baseline"), store=objects, model_version=version)
    return {"version": version, "folder": folder / "baseline", "metadata": baseline}


@pytest.fixture()
def store_environment(store_env, monkeypatch):
    for key, value in store_env.items():
        if key.startswith(("KFKIT_S3", "AWS_")):
            monkeypatch.setenv(key, value)


def _served(model_folder: Path, rows: pd.DataFrame) -> np.ndarray:
    server = KfkitModel(model_folder)
    server.load()
    return server.predict(rows[FEATURES].astype(object).to_numpy(), FEATURES)


def test_predictions_equal_the_servers_and_refused_rows_are_rejected(model, tmp_path):
    batch, metadata = ingested(penguins_batch(tmp_path / "data", BAD), tmp_path / "ingested")

    summary = score_table(
        model["folder"],
        batch,
        tmp_path / "out",
        key_column="penguin_id",
        model_version="1",
        dataset_fingerprint=metadata["dataset_fingerprint"],
    )

    assert (summary.rows, summary.rows_scored, summary.rows_rejected) == (344, 341, 3)
    assert summary.rejected_by_reason == {"not a number": 2, "out of range": 1}
    assert summary.rejected_by_column == {"bill_length_mm": 1, "body_mass_g": 1, "flipper_length_mm": 1}
    rejects = pq.read_table(tmp_path / "out" / "rejects.parquet").to_pandas()
    assert list(rejects["row_number"]) == [5, 9, 20]
    assert list(rejects["penguin_id"]) == ["p005", "p009", "p020"]
    assert list(rejects["reason"]) == ["not a number", "not a number", "out of range"]
    assert list(rejects["value"]) == ["abc", "inf", "1e+308"]
    assert "row 5 holds 'abc'" in rejects["message"][0]

    predictions = pq.read_table(tmp_path / "out" / "predictions.parquet").to_pandas()
    rows = pd.read_parquet(batch)
    scored = rows.drop(index=[5, 9, 20])
    assert list(predictions["row_number"]) == list(scored.index)
    assert list(predictions["penguin_id"]) == list(scored["penguin_id"])
    served = _served(model["folder"], scored)
    classes = ["Adelie", "Chinstrap", "Gentoo"]
    probabilities = predictions[[f"probability_{c}" for c in classes]].to_numpy()
    assert np.array_equal(probabilities, served)  # bit for bit
    assert list(predictions["prediction"]) == [classes[i] for i in served.argmax(axis=1)]
    assert predictions.loc[predictions["row_number"] == 12, "prediction"].size == 1  # Atlantis scored
    assert set(predictions["model_version"]) == {"1"} and set(predictions["model_name"]) == {MODEL}
    assert sum(summary.class_distribution.values()) == 341
    assert summary.class_distribution == predictions["prediction"].value_counts().sort_index().to_dict()
    assert summary.dataset_fingerprint == metadata["dataset_fingerprint"]
    markdown = (tmp_path / "out" / "summary.md").read_text()
    assert "| rejected | 3 |" in markdown and "| not a number | 2 |" in markdown


def test_the_same_without_the_fast_path_and_in_small_batches(model, tmp_path, monkeypatch):
    batch, _ = ingested(penguins_batch(tmp_path / "data", BAD), tmp_path / "ingested")
    score_table(model["folder"], batch, tmp_path / "fast", model_version="1")
    monkeypatch.setenv("KFKIT_SERVING_FAST_PATH", "0")

    slow = score_table(model["folder"], batch, tmp_path / "slow", model_version="1", batch_rows=7)

    assert slow.fast_path is False and slow.rows_rejected == 3
    for name in ("predictions.parquet", "rejects.parquet"):
        fast_table = pq.read_table(tmp_path / "fast" / name).to_pandas()
        slow_table = pq.read_table(tmp_path / "slow" / name).to_pandas()
        pd.testing.assert_frame_equal(fast_table, slow_table, check_exact=False, rtol=1e-12)


def test_a_batch_without_a_feature_column_is_one_line(model, tmp_path):
    path = tmp_path / "batch.parquet"
    complete, _ = ingested(penguins_batch(tmp_path / "d"), tmp_path / "i")
    pd.read_parquet(complete).drop(columns=["sex"]).to_parquet(path)
    with pytest.raises(KfkitError, match=r"lacks feature column\(s\) sex of model 'score-penguins'"):
        score_table(model["folder"], path, tmp_path / "out")
    with pytest.raises(KfkitError, match="key column 'nope' not found"):
        score_table(model["folder"], complete, tmp_path / "out", key_column="nope")


def _run_component(model: dict, batch: Path, metadata: dict, folder: Path) -> dict:
    inputs = {
        "batch": make_artifact(Dataset, batch.parent, batch.name, metadata),
        "baseline": make_artifact(Artifact, model["folder"].parent, model["folder"].name, model["metadata"]),
    }
    outputs = make_outputs(component, folder)
    component.python_func(**inputs, **outputs, key_column="penguin_id", task_name="score")
    return outputs


def test_the_component_publishes_once_and_never_overwrites(
    model, tmp_path, objects, store_environment, capsys
):
    batch, metadata = ingested(penguins_batch(tmp_path / "data", BAD), tmp_path / "ingested")
    where = batch_folder(MODEL, model["version"], metadata["dataset_fingerprint"])

    first = _run_component(model, batch, metadata, tmp_path / "first")

    meta = first["predictions"].metadata
    assert meta["written"] is True and meta["predictions_uri"] == str(where)
    assert (meta["model_name"], meta["model_version"]) == (MODEL, model["version"])
    assert meta["model_sha256"] == model["metadata"]["sha256"]
    assert meta["dataset_fingerprint"] == metadata["dataset_fingerprint"]
    assert (meta["rows"], meta["rows_scored"], meta["rows_rejected"]) == (344, 341, 3)
    stored = {info.uri: info.etag for info in objects.list(where)}
    record = json.loads(objects.get_bytes(where.child(RECORD_FILE)))
    # Each file under a name carrying its sha256 (copied from disk), the record naming them.
    local = {"predictions.parquet": first["predictions"], "rejects.parquet": first["rejects"]}
    local["summary.md"] = first["summary"]
    for name, artifact in local.items():
        assert record["files"][name] == sha256_file(artifact.path)
        assert record["objects"][name] == content_name(name, record["files"][name])
    assert sorted(u.rsplit("/", 1)[1] for u in stored) == sorted([RECORD_FILE, *record["objects"].values()])
    predictions = objects.get_bytes(stored_file(where, record, "predictions.parquet"))
    assert predictions == Path(first["predictions"].path).read_bytes()
    assert meta["predictions_object"] == str(stored_file(where, record, "predictions.parquet"))
    assert f"predictions written to {where}" in capsys.readouterr().out

    second = _run_component(model, batch, metadata, tmp_path / "second")

    assert second["predictions"].metadata["written"] is False
    assert "already scored" in capsys.readouterr().out
    assert {info.uri: info.etag for info in objects.list(where)} == stored
    fingerprint = metadata["dataset_fingerprint"]
    [listed] = [b for b in list_scored_batches(objects, MODEL) if b.dataset_fingerprint == fingerprint]
    assert listed.model_version == model["version"] and listed.record["rows_scored"] == 341


def test_other_content_at_the_path_is_never_overwritten(model, tmp_path, objects, store_environment):
    other = {(0, "bill_length_mm"): "41.5"}  # another batch: its own fingerprint, its own folder
    batch, metadata = ingested(penguins_batch(tmp_path / "data", other), tmp_path / "ingested")
    where = batch_folder(MODEL, model["version"], metadata["dataset_fingerprint"])
    # The name this batch's predictions take: score's output is the same bytes every time.
    score_table(model["folder"], batch, tmp_path / "local", "penguin_id", model["version"], "0" * 64)
    name = content_name("predictions.parquet", sha256_file(tmp_path / "local" / "predictions.parquet"))
    # An interrupted scoring (or anyone) left other bytes under that name.
    objects.put_bytes(where.child(name), b"left by an interrupted scoring")

    with pytest.raises(SystemExit):
        _run_component(model, batch, metadata, tmp_path / "out")

    assert objects.get_bytes(where.child(name)) == b"left by an interrupted scoring"
    assert not objects.exists(where.child(RECORD_FILE))
    # A record of another model at the path: refused, untouched.
    objects.delete(where.child(name))
    record = json.dumps({"model_sha256": "0" * 64, "run_id": "elsewhere"}).encode()
    objects.put_bytes(where.child(RECORD_FILE), record)
    with pytest.raises(SystemExit):
        _run_component(model, batch, metadata, tmp_path / "again")
    assert objects.get_bytes(where.child(RECORD_FILE)) == record
    assert [info.uri for info in objects.list(where)] == [str(where.child(RECORD_FILE))]


def test_an_interrupted_scorings_objects_with_the_same_bytes_are_reused(
    model, tmp_path, objects, store_environment
):
    other = {(1, "bill_depth_mm"): "17.5"}
    batch, metadata = ingested(penguins_batch(tmp_path / "data", other), tmp_path / "ingested")
    where = batch_folder(MODEL, model["version"], metadata["dataset_fingerprint"])
    score_table(model["folder"], batch, tmp_path / "local", "penguin_id", model["version"], "0" * 64)
    path = tmp_path / "local" / "predictions.parquet"
    name = content_name("predictions.parquet", sha256_file(path))
    objects.put_bytes(where.child(name), path.read_bytes())  # uploaded, then the scoring stopped
    etag = objects.stat(where.child(name)).etag

    outputs = _run_component(model, batch, metadata, tmp_path / "out")

    assert outputs["predictions"].metadata["written"] is True
    assert objects.stat(where.child(name)).etag == etag
    assert json.loads(objects.get_bytes(where.child(RECORD_FILE)))["objects"]["predictions.parquet"] == name


def test_a_folder_of_the_first_layout_still_reads(model, tmp_path, objects, store_environment, capsys):
    """Folders published before the files were named by their content: plain names, a record
    without `objects`. They are listed, read, and count as this batch's folder (nothing rewritten)."""
    other = {(2, "flipper_length_mm"): "190"}
    batch, metadata = ingested(penguins_batch(tmp_path / "data", other), tmp_path / "ingested")
    fingerprint = metadata["dataset_fingerprint"]
    where = batch_folder(MODEL, model["version"], fingerprint)
    summary = score_table(
        model["folder"], batch, tmp_path / "old", "penguin_id", model["version"], fingerprint
    )
    files = {}
    for name in ("predictions.parquet", "rejects.parquet", "summary.md"):  # the first layout's publish
        data = (tmp_path / "old" / name).read_bytes()
        files[name] = hashlib.sha256(data).hexdigest()
        assert objects.create_bytes(where.child(name), data)
    record = {**summary.to_dict(), "run_id": "first-layout", "files": files, "written_at": 0.0}
    assert objects.create_bytes(where.child(RECORD_FILE), json.dumps(record).encode(), "application/json")
    before = {info.uri: info.etag for info in objects.list(where)}

    [listed] = [b for b in list_scored_batches(objects, MODEL) if b.dataset_fingerprint == fingerprint]
    table = read_table(objects, listed.uri)
    outputs = _run_component(model, batch, metadata, tmp_path / "again")

    pd.testing.assert_frame_equal(table, pq.read_table(tmp_path / "old" / "predictions.parquet").to_pandas())
    assert outputs["predictions"].metadata["written"] is False
    assert outputs["predictions"].metadata["predictions_object"] == str(where.child("predictions.parquet"))
    assert "already scored" in (out := capsys.readouterr().out) and "(run first-layout)" in out
    assert {info.uri: info.etag for info in objects.list(where)} == before


def test_a_regression_model_scores_its_values(tmp_path):
    """A regression model's prediction is its value (no class probabilities), as its server answers."""
    from conftest import PENGUINS, write_schema

    from kfkit.components.ingest.executor import ingest
    from kfkit.components.train.executor import train

    split = ingest(str(PENGUINS), "body_mass_g")
    schema = write_schema(split.train, tmp_path / "schema")
    train(
        split.train, str(schema / "schema.pbtxt"), "body_mass_g", "score-mass", str(tmp_path / "model"),
        problem_type="regression", estimator="ridge",
    )  # fmt: skip
    batch, _ = ingested(penguins_batch(tmp_path / "data", {(2, "year"): "two thousand"}), tmp_path / "in")
    features = [f for f in FEATURES if f != "body_mass_g"] + ["species"]
    frame = pd.read_parquet(batch)
    frame["species"] = pd.read_csv(PENGUINS)["species"]  # the regression model's feature
    frame.to_parquet(batch)

    summary = score_table(tmp_path / "model", batch, tmp_path / "out", model_version="3")

    assert (summary.rows_scored, summary.rejected_by_reason) == (343, {"not a number": 1})
    assert (
        summary.class_distribution == {} and summary.prediction_range["min"] < summary.prediction_range["max"]
    )
    predictions = pq.read_table(tmp_path / "out" / "predictions.parquet").to_pandas()
    assert [c for c in predictions.columns if c.startswith("probability_")] == []
    server = KfkitModel(tmp_path / "model")
    server.load()
    scored = frame.drop(index=[2])
    served = server.predict(scored[features].astype(object).to_numpy(), features)[:, 0]
    assert np.array_equal(predictions["prediction"].to_numpy(), served)


def test_plainly_typed_columns_are_converted_at_once_to_the_servers_values(model, tmp_path):
    """Numbers in number columns and text in text columns: converted a column at a time, the same
    answers as the server's; a batch holding a value the server refuses goes row by row."""
    clean, _ = ingested(penguins_batch(tmp_path / "clean"), tmp_path / "clean-in")
    summary = score_table(model["folder"], clean, tmp_path / "clean-out")
    assert (summary.batches, summary.batches_row_by_row, summary.rows_scored) == (1, 0, 344)
    predictions = pq.read_table(tmp_path / "clean-out" / "predictions.parquet").to_pandas()
    served = _served(model["folder"], pd.read_parquet(clean))
    assert np.array_equal(
        predictions[[c for c in predictions.columns if c.startswith("probability_")]], served
    )

    refused = {(20, "body_mass_g"): "1e308", (40, "body_mass_g"): "-inf"}  # still a float column
    mixed, _ = ingested(penguins_batch(tmp_path / "mixed", refused), tmp_path / "mixed-in")
    assert str(pq.read_schema(mixed).field("body_mass_g").type) == "double"

    summary = score_table(model["folder"], mixed, tmp_path / "mixed-out", batch_rows=16)

    assert (summary.batches, summary.batches_row_by_row) == (22, 2)  # rows 16-31 and 32-47
    assert summary.rejected_by_reason == {"not a number": 1, "out of range": 1}
    predictions = pq.read_table(tmp_path / "mixed-out" / "predictions.parquet").to_pandas()
    scored = pd.read_parquet(mixed).drop(index=[20, 40])
    assert list(predictions["row_number"]) == list(scored.index)
    served = _served(model["folder"], scored)
    probabilities = predictions[[c for c in predictions.columns if c.startswith("probability_")]].to_numpy()
    assert np.allclose(probabilities, served, rtol=1e-12, atol=0)


def test_a_large_file_is_published_from_disk_in_parts(objects, tmp_path):
    """Past one 5 MiB part the client uploads in parts from the file (memory holds a few parts, not
    the file): the object is the file's bytes, under its content's name."""
    from kfkit.prediction_registry import publish

    folder = tmp_path / "batch"
    folder.mkdir()
    (folder / "predictions.parquet").write_bytes(np.random.default_rng(3).bytes(12 << 20))
    (folder / "rejects.parquet").write_bytes(b"")
    (folder / "summary.md").write_text("# a large batch\n")
    record = {"model_name": MODEL, "model_version": "77", "model_sha256": "1" * 64}
    record["dataset_fingerprint"] = hashlib.sha256(b"a large batch").hexdigest()

    published = publish(objects, folder, record)

    uri = published.predictions_uri
    assert published.written and uri.endswith(
        f"predictions-{sha256_file(folder / 'predictions.parquet')}.parquet"
    )
    assert objects.stat(uri).etag.endswith("-3")  # three parts: 5 + 5 + 2 MiB
    assert objects.sha256(uri) == sha256_file(folder / "predictions.parquet")
    assert publish(objects, folder, record).written is False
