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
