"""train, called as kfp calls it: the gate, the model folder it writes, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import PENGUINS, make_artifact, write_schema
from kfp.dsl import Artifact, Dataset, Model

from kfkit.components import train as component
from kfkit.components.ingest.executor import ingest
from kfkit.model_folder import ModelManifest, load_verified_model
from kfkit.splits import write_split


@pytest.fixture()
def inputs(tmp_path):
    split = ingest(str(PENGUINS), "species")
    train_split = make_artifact(Dataset, tmp_path, "train_split", split.metadata)
    write_split(split.train, train_split.path)
    schema = make_artifact(Artifact, tmp_path, "schema")
    write_schema(split.train, Path(schema.path))
    return train_split, schema


def call(inputs, tmp_path, anomalies_metadata, **params):
    train_split, schema = inputs
    model = make_artifact(Model, tmp_path, "model")
    arguments = dict(
        model_name="penguins",
        problem_type="classification",
        estimator="logistic_regression",
        hyperparameters={},
        random_seed=42,
        run_id="run-7",
        task_name="train-2",
    )
    arguments.update(params)
    if "statistics" not in arguments:
        arguments["statistics"] = make_artifact(Artifact, tmp_path, "statistics")
        Path(arguments["statistics"].path).mkdir(parents=True, exist_ok=True)
        (Path(arguments["statistics"].path) / "train.pb").write_bytes(b"train split statistics")
    component.python_func(
        train_split=train_split,
        schema=schema,
        anomalies=make_artifact(Artifact, tmp_path, "anomalies", anomalies_metadata),
        model=model,
        **arguments,
    )
    return model


def test_trains_a_verified_model_folder_when_the_data_is_blessed(inputs, tmp_path, capsys):
    model = call(inputs, tmp_path, {"blessed": True})
    fitted, manifest = load_verified_model(model.path)
    assert manifest.run_id == "run-7" and manifest.model_name == "penguins"
    assert model.metadata["trained"] is True and model.metadata["sha256"] == manifest.sha256
    assert list(fitted.classes_) == sorted(pd.read_csv(PENGUINS)["species"].unique())
    assert "kfkit train-2: logistic_regression on" in capsys.readouterr().out


@pytest.mark.parametrize("blessing", [{"blessed": False, "reason": "2 anomalies: eval:bill: FLOAT"}, {}])
def test_closed_gate_trains_nothing_and_says_why(inputs, tmp_path, blessing, capsys):
    model = call(inputs, tmp_path, blessing)
    assert not (Path(model.path) / "model.joblib").exists()
    record = json.loads((Path(model.path) / "kfkit-skipped.json").read_text())
    assert record["skipped"] is True and model.metadata["skipped"] is True
    assert "'anomalies' is not blessed" in record["reason"]
    assert blessing.get("reason", "no blessing recorded") in record["reason"]
    assert "kfkit train-2: not run: 'anomalies' is not blessed" in capsys.readouterr().out
    with pytest.raises(Exception):  # noqa: B017 - no model: the manifest is missing
        ModelManifest.read(model.path)


def test_bad_estimator_is_one_line_and_exit_1(inputs, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        call(inputs, tmp_path, {"blessed": True}, estimator="svm")
    assert exit_info.value.code == 1
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("kfkit train-2: error: The 'estimator' parameter of train must be one of")


def test_whole_floats_from_kfp_become_ints_only_where_the_estimator_means_an_int():
    """kfp turns {n_estimators: 200} into 200.0; max_features 1.0 (a fraction) must stay a float."""
    from kfkit.components.train.executor import build_estimator

    forest = build_estimator(
        "classification", "random_forest", {"n_estimators": 200.0, "max_depth": 3.0, "max_features": 1.0}, 0
    )
    assert forest.n_estimators == 200 and isinstance(forest.n_estimators, int)
    assert forest.max_depth == 3 and isinstance(forest.max_depth, int)
    assert forest.max_features == 1.0 and isinstance(forest.max_features, float)
    linear = build_estimator("classification", "logistic_regression", {"C": 2.0, "max_iter": 500.0}, 0)
    assert isinstance(linear.C, float) and isinstance(linear.max_iter, int)


def test_a_whole_float_that_is_no_valid_fraction_is_the_int_it_means():
    """min_samples_leaf takes 20 samples or a fraction in (0, 1): kfp's 20.0 means 20 samples,
    0.5 stays the fraction; max_features 3.0 is 3 features (no fraction is above 1)."""
    from kfkit.components.train.executor import build_estimator

    hyperparameters = {"min_samples_leaf": 20.0, "min_samples_split": 0.5, "max_features": 3.0}
    forest = build_estimator("classification", "random_forest", hyperparameters, 0)
    assert forest.min_samples_leaf == 20 and isinstance(forest.min_samples_leaf, int)
    assert forest.min_samples_split == 0.5
    assert forest.max_features == 3 and isinstance(forest.max_features, int)
    forest._validate_params()  # scikit-learn's own check accepts what kfkit built


def test_the_train_splits_statistics_are_kept_beside_the_model(inputs, tmp_path, capsys):
    """validate's statistics/train.pb becomes the companion train_statistics.pb, by sha256:
    push uploads it and resolve_baseline downloads it for the next run's drift check."""
    from kfkit.model_folder import sha256_file

    statistics = make_artifact(Artifact, tmp_path, "statistics")
    Path(statistics.path).mkdir(parents=True)
    (Path(statistics.path) / "train.pb").write_bytes(b"the train split's statistics")
    (Path(statistics.path) / "eval.pb").write_bytes(b"the eval split's statistics")
    model = call(inputs, tmp_path, {"blessed": True}, statistics=statistics)
    kept = Path(model.path) / "train_statistics.pb"
    assert kept.read_bytes() == b"the train split's statistics"
    files = ModelManifest.read(model.path).files
    assert set(files) == {"schema.pbtxt", "train_statistics.pb"}
    assert files["train_statistics.pb"] == sha256_file(kept)
    # A statistics input without train.pb is one line, not a model without its statistics.
    empty = make_artifact(Artifact, tmp_path / "empty", "statistics")
    Path(empty.path).mkdir(parents=True)
    with pytest.raises(SystemExit):
        call(inputs, tmp_path / "empty", {"blessed": True}, statistics=empty)
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("kfkit train-2: error: ") and "no train split statistics" in line
