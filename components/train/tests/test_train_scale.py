"""Train in bounded memory: a seeded sample of max_train_rows rows recorded in the manifest, and
sgd streamed over batches of the split with partial_fit, still a plain scikit-learn Pipeline."""

from __future__ import annotations

import hashlib
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from conftest import make_artifact
from kfp.dsl import Artifact, Dataset, Model

from kfkit.components import train as component
from kfkit.components.train.executor import (
    build_estimator,
    build_pipeline,
    check,
    features_from_schema,
    model_input,
    text_features,
    train,
)
from kfkit.errors import KfkitError
from kfkit.model_folder import feature_frame, load_verified_model
from kfkit.serving.model import KfkitModel
from kfkit.splits import iter_batches, read_sample, write_split

ROWS = 1200
SCHEMA = """
feature { name: "amount" type: FLOAT annotation { tag: "kfkit:numeric" } }
feature { name: "rate" type: FLOAT annotation { tag: "kfkit:numeric" } }
feature { name: "grade" type: BYTES annotation { tag: "kfkit:categorical" } }
feature { name: "issued" type: BYTES annotation { tag: "kfkit:date" } }
feature { name: "repaid" type: BYTES }
"""
FEATURES = ["amount", "rate", "grade", "issued"]


def loans(rows: int = ROWS, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    amount = rng.uniform(1000, 40000, rows).round(2)
    rate = rng.uniform(5, 25, rows)
    grade = rng.choice(["A", "B", "C", "D"], rows).astype(object)
    days = rng.integers(0, 900, rows)
    issued = np.datetime_as_string(np.datetime64("2021-01-01") + days).astype(object)
    score = -rate / 5 + (grade == "A") * 1.5 - amount / 40000 + rng.normal(0, 0.7, rows) + 2.5
    frame = pd.DataFrame({"amount": amount, "rate": rate, "grade": grade, "issued": issued})
    frame["repaid"] = np.where(score > 0, "yes", "no")
    frame.loc[::29, "rate"] = np.nan
    frame.loc[3::41, "grade"] = None
    return frame


@pytest.fixture()
def split(tmp_path) -> tuple[str, str]:
    path = str(tmp_path / "train.parquet")
    write_split(loans(), path)
    (tmp_path / "schema.pbtxt").write_text(SCHEMA)
    return path, str(tmp_path / "schema.pbtxt")


def fit(split, folder: Path, **params):
    path, schema = split
    return train(path, schema, "repaid", "loans", str(folder), **params)


def test_a_sample_is_exactly_max_train_rows_drawn_by_the_seed_and_recorded(split, tmp_path):
    path, schema = split
    columns = [*FEATURES, "repaid"]
    first = read_sample(path, columns, 500, seed=7)
    assert len(first) == 500 and len(first.drop_duplicates()) == 500
    # The same rows whatever the batch size, from the file or the same table in memory.
    pd.testing.assert_frame_equal(first, read_sample(path, columns, 500, seed=7, batch_rows=13))
    pd.testing.assert_frame_equal(first, read_sample(loans(), columns, 500, seed=7))
    assert not first.equals(read_sample(path, columns, 500, seed=8))

    manifest = fit(split, tmp_path / "a", max_train_rows=500, seed=7)
    assert manifest.train_sample == {
        "max_train_rows": 500,
        "rows": 500,
        "split_rows": ROWS,
        "seed": 7,
        "streamed_rows": 0,
    }
    # The manifest says enough to re-draw the rows: a model fitted on them is the same model.
    fitted, _ = load_verified_model(tmp_path / "a")
    redrawn = build_pipeline(
        manifest.features, build_estimator("classification", "logistic_regression", {}, 7)
    )
    redrawn.fit(model_input(first, manifest.features, "sample"), first["repaid"])
    coefficients = fitted.named_steps["estimator"].coef_
    np.testing.assert_array_equal(coefficients, redrawn.named_steps["estimator"].coef_)
    again = fit(split, tmp_path / "b", max_train_rows=500, seed=7)
    assert again.training_identity() == manifest.training_identity()
    fit(split, tmp_path / "c", max_train_rows=500, seed=8)
    other, _ = load_verified_model(tmp_path / "c")
    assert not np.array_equal(other.named_steps["estimator"].coef_, coefficients)


@pytest.mark.parametrize("max_train_rows", [0, ROWS, 10 * ROWS])
def test_no_cap_or_a_cap_above_the_split_fits_every_row_and_records_no_sample(
    split, tmp_path, max_train_rows
):
    manifest = fit(split, tmp_path / "m", max_train_rows=max_train_rows)
    assert manifest.train_sample == {}
    fitted, _ = load_verified_model(tmp_path / "m")
    whole = build_pipeline(
        manifest.features, build_estimator("classification", "logistic_regression", {}, 42)
    )
    whole.fit(model_input(loans(), manifest.features, "all"), loans()["repaid"])
    np.testing.assert_array_equal(fitted.named_steps["estimator"].coef_, whole.named_steps["estimator"].coef_)


@pytest.mark.parametrize("bad", [-1, 2.5, "1000", True, None])
def test_bad_max_train_rows_is_refused_before_any_task_runs(bad):
    params = {"problem_type": "classification", "estimator": "sgd", "max_train_rows": bad}
    if bad is None:
        check(params)  # absent: the component's default
        return
    with pytest.raises(KfkitError) as error:
        check(params)
    [line] = str(error.value).splitlines()
    assert line.startswith("The 'max_train_rows' parameter of train must be a whole number of rows")
    check({**params, "max_train_rows": 1000.0})  # kfp's float for an int parameter


def test_sgd_streams_every_row_in_batches_and_serves_like_any_model(split, tmp_path):
    path, _ = split
    assert len(list(iter_batches(path, FEATURES, 100))) == 12  # the batches it is fitted on
    manifest = fit(split, tmp_path / "sgd", estimator="sgd", batch_rows=100, max_train_rows=300)
    assert manifest.train_sample["streamed_rows"] == ROWS and manifest.train_sample["rows"] == 300
    assert manifest.hyperparameters["random_state"] == 42
    fitted, _ = load_verified_model(tmp_path / "sgd")
    estimator = fitted.named_steps["estimator"]
    assert type(estimator).__name__ == "SGDClassifier" and estimator.loss == "log_loss"
    assert estimator.t_ > ROWS * estimator.max_iter  # partial_fit saw every row, max_iter passes
    frame = loans(50, seed=11)
    proba = fitted.predict_proba(feature_frame(frame, manifest.features, "new rows"))
    assert proba.shape == (50, 2) and np.allclose(proba.sum(axis=1), 1)
    accuracy = (np.array(manifest.classes)[proba.argmax(axis=1)] == frame["repaid"]).mean()
    assert accuracy > 0.75  # it learned: the classes are close to balanced

    served = KfkitModel(tmp_path / "sgd")
    served.load()
    rows = frame[FEATURES].astype(object).where(frame[FEATURES].notna(), None).values.tolist()
    answer = served.predict(rows, FEATURES)
    np.testing.assert_allclose(answer, proba)
    assert served.class_names() == ["no", "yes"]


def test_sgd_regression_and_a_loss_without_probabilities(split, tmp_path):
    path, schema = split
    frame = loans()
    frame["repaid"] = frame["amount"] * 0.01 + frame["rate"].fillna(10)
    write_split(frame, path)
    manifest = train(
        path,
        schema,
        "repaid",
        "loans",
        str(tmp_path / "r"),
        problem_type="regression",
        estimator="sgd",
        batch_rows=256,
    )
    fitted, _ = load_verified_model(tmp_path / "r")
    assert type(fitted.named_steps["estimator"]).__name__ == "SGDRegressor"
    assert manifest.train_sample["streamed_rows"] == ROWS
    with pytest.raises(KfkitError, match="loss 'hinge' for sgd, which gives no class probabilities"):
        check({"problem_type": "classification", "estimator": "sgd", "hyperparameters": {"loss": "hinge"}})


def test_the_component_passes_max_train_rows_and_the_model_metadata_records_the_sample(
    split, tmp_path, capsys
):
    path, schema = split
    train_split = make_artifact(Dataset, tmp_path, "train_split", {"label_column": "repaid"})
    Path(train_split.path).parent.mkdir(parents=True, exist_ok=True)
    Path(train_split.path).write_bytes(Path(path).read_bytes())
    schema_artifact = make_artifact(Artifact, tmp_path, "schema")
    Path(schema_artifact.path).mkdir(parents=True)
    (Path(schema_artifact.path) / "schema.pbtxt").write_text(SCHEMA)
    statistics = make_artifact(Artifact, tmp_path, "statistics")
    Path(statistics.path).mkdir(parents=True)
    (Path(statistics.path) / "train.pb").write_bytes(b"statistics")
    model = make_artifact(Model, tmp_path, "model")
    component.python_func(
        train_split=train_split,
        schema=schema_artifact,
        anomalies=make_artifact(Artifact, tmp_path, "anomalies", {"blessed": True}),
        statistics=statistics,
        model=model,
        model_name="loans",
        random_seed=5,
        max_train_rows=400,
        task_name="train",
    )
    assert model.metadata["train_sample"] == {
        "max_train_rows": 400,
        "rows": 400,
        "split_rows": ROWS,
        "seed": 5,
        "streamed_rows": 0,
    }
    assert f"fitted on a sample of 400 of {ROWS} rows (seed 5)" in capsys.readouterr().out


def test_the_transformers_fitted_side_by_side_give_the_serial_fits_model_to_the_byte(split, tmp_path):
    """Train fits the numeric and categorical transformers in two threads; the saved model is
    the same bytes as a plain serial ``fit`` of the same pipeline (n_jobs is not left in it)."""
    path, schema = split
    manifest = fit(split, tmp_path / "model")
    features, _ = features_from_schema(schema, "repaid")
    rows = read_sample(path, [*FEATURES, "repaid"], ROWS, 42, 1000, dictionary=text_features(features))
    serial = build_pipeline(features, build_estimator("classification", "logistic_regression", {}, 42))
    serial.fit(model_input(rows, features, "train split"), rows["repaid"].astype(str))
    joblib.dump(serial, tmp_path / "serial.joblib")
    assert manifest.sha256 == hashlib.sha256((tmp_path / "serial.joblib").read_bytes()).hexdigest()
    assert load_verified_model(tmp_path / "model")[0].named_steps["preprocess"].n_jobs is None
