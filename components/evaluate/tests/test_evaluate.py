"""evaluate, called as kfp calls it: metrics, the blessing by thresholds, and a model that
was never trained."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import PENGUINS, make_artifact, write_schema
from kfp.dsl import Artifact, ClassificationMetrics, Dataset, Metrics, Model

from kfkit.components import evaluate as component
from kfkit.components.ingest.executor import ingest
from kfkit.components.train.executor import manifest_metadata, train
from kfkit.splits import write_split


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("evaluate")
    split = ingest(str(PENGUINS), "species")
    eval_split = make_artifact(Dataset, folder, "eval_split", split.metadata)
    write_split(split.eval, eval_split.path)
    schema = write_schema(split.train, folder / "schema")
    manifest = train(split.train, str(schema / "schema.pbtxt"), "species", "penguins", str(folder / "model"))
    model = make_artifact(Model, folder, "model", manifest_metadata(manifest))
    return model, eval_split


def call(model, eval_split, folder: Path, thresholds):
    outputs = {
        "metrics": make_artifact(Metrics, folder, "metrics"),
        "classification_metrics": make_artifact(ClassificationMetrics, folder, "classification_metrics"),
        "blessing": make_artifact(Artifact, folder, "blessing"),
    }
    component.python_func(
        model=model, eval_split=eval_split, thresholds=thresholds, task_name="evaluate", **outputs
    )
    return outputs


def test_blesses_only_when_every_threshold_is_met(trained, tmp_path):
    model, eval_split = trained
    met = call(model, eval_split, tmp_path / "met", {"accuracy": 0.9})
    assert met["blessing"].metadata["blessed"] is True
    assert met["metrics"].metadata["accuracy"] >= 0.9
    assert met["blessing"].metadata["model_sha256"] == model.metadata["sha256"]
    assert met["classification_metrics"].metadata["confusionMatrix"]["rows"]
    missed = call(model, eval_split, tmp_path / "missed", {"accuracy": 0.9999})
    assert missed["blessing"].metadata["blessed"] is False
    assert "thresholds not met: accuracy" in missed["blessing"].metadata["reason"]
    nothing = call(model, eval_split, tmp_path / "nothing", {})
    assert nothing["blessing"].metadata["blessed"] is False  # nothing is blessed by default


def test_a_model_that_was_not_trained_is_not_evaluated(trained, tmp_path, capsys):
    _, eval_split = trained
    model = make_artifact(Model, tmp_path, "model", {"skipped": True, "reason": "'anomalies' is not blessed"})
    outputs = call(model, eval_split, tmp_path / "out", {"accuracy": 0.5})
    for artifact in outputs.values():
        record = json.loads((Path(artifact.path) / "kfkit-skipped.json").read_text())
        assert "input 'model' was not produced: 'anomalies' is not blessed" in record["reason"]
    assert not outputs["blessing"].metadata.get("blessed")
    assert "kfkit evaluate: not run: input 'model' was not produced" in capsys.readouterr().out
