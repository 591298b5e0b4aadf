"""majority_baseline, called as kfp calls it: the baseline and the model on a tiny eval split,
a model that was never trained, a split without its label column, and the README in sync."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pandas as pd
import pytest
from conftest import make_artifact, write_schema
from kfp.dsl import Dataset, Metrics, Model

from kfkit.catalog import readme_with_tables
from kfkit.components.train.executor import manifest_metadata, train
from kfkit.splits import write_split

FOLDER = Path(__file__).resolve().parents[1]


def _load_component():
    spec = importlib.util.spec_from_file_location("majority_baseline_component", FOLDER / "component.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.majority_baseline


component = _load_component()


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A classifier that separates x < 5 ('a') from x >= 5 ('b') perfectly."""
    folder = tmp_path_factory.mktemp("majority-baseline")
    frame = pd.DataFrame({"x": [float(i) for i in range(10)] * 3, "label": (["a"] * 5 + ["b"] * 5) * 3})
    schema = write_schema(frame, folder / "schema")
    manifest = train(frame, str(schema / "schema.pbtxt"), "label", "tiny", str(folder / "model"))
    return make_artifact(Model, folder, "model", manifest_metadata(manifest))


def eval_split(folder: Path, frame: pd.DataFrame, label_column: str = "label"):
    split = make_artifact(Dataset, folder, "eval_split", {"label_column": label_column})
    write_split(frame, split.path)
    return split


def call(model, split, folder: Path):
    metrics = make_artifact(Metrics, folder, "metrics")
    component.python_func(model=model, eval_split=split, metrics=metrics, task_name="majority-baseline")
    return metrics


def test_baseline_is_the_majority_share_and_lift_is_what_the_model_adds(model, tmp_path, capsys):
    # Three 'a' and two 'b': always saying 'a' is right 3 times in 5; the model, 5 in 5.
    frame = pd.DataFrame({"x": [0.0, 1.0, 2.0, 8.0, 9.0], "label": ["a", "a", "a", "b", "b"]})
    metrics = call(model, eval_split(tmp_path, frame), tmp_path)
    assert metrics.metadata == {"baseline_accuracy": 0.6, "model_accuracy": 1.0, "lift": 0.4}
    assert "kfkit majority-baseline: majority class 'a' of 5 rows" in capsys.readouterr().out


def test_the_model_is_scored_on_the_same_rows_as_the_baseline(model, tmp_path):
    # Mostly 'b' now, and one row the model gets wrong (x=1 labelled 'b'): 4 of 5 for both.
    frame = pd.DataFrame({"x": [1.0, 6.0, 7.0, 8.0, 2.0], "label": ["b", "b", "b", "b", "a"]})
    metrics = call(model, eval_split(tmp_path, frame), tmp_path)
    assert metrics.metadata == {"baseline_accuracy": 0.8, "model_accuracy": 0.8, "lift": 0.0}


def test_a_model_that_was_not_trained_gives_a_skipped_record(tmp_path, capsys):
    frame = pd.DataFrame({"x": [0.0, 9.0], "label": ["a", "b"]})
    reason = "'anomalies' is not blessed"
    skipped = make_artifact(Model, tmp_path, "model", {"skipped": True, "reason": reason})
    metrics = call(skipped, eval_split(tmp_path, frame), tmp_path)
    record = json.loads((Path(metrics.path) / "kfkit-skipped.json").read_text())
    assert record["skipped"] is True
    assert "input 'model' was not produced: 'anomalies' is not blessed" in record["reason"]
    assert metrics.metadata["skipped"] is True and "baseline_accuracy" not in metrics.metadata
    assert "kfkit majority-baseline: not run: input 'model' was not produced" in capsys.readouterr().out


def test_a_split_without_its_label_column_fails_with_one_line(model, tmp_path, capsys):
    frame = pd.DataFrame({"x": [0.0, 9.0], "label": ["a", "b"]})
    with pytest.raises(SystemExit) as exited:
        call(model, eval_split(tmp_path, frame, label_column="species"), tmp_path)
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert "kfkit majority-baseline: error: eval split: label column 'species' not among" in err
    assert "Traceback" not in err


def test_readme_tables_are_generated_from_the_declaration_and_in_sync():
    readme = (FOLDER / "README.md").read_text()
    assert readme == readme_with_tables(readme, component, "majority_baseline/README.md"), (
        "README.md is stale: refresh its generated section with kfkit.catalog.readme_with_tables"
    )
    for name in ("model", "eval_split", "metrics", "task_name"):
        assert f"`{name}`" in readme
