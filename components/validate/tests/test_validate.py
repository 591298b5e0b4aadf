"""validate, called as kfp calls it, with real TFDV (slow: TensorFlow's import): the blessing
it emits, the report, and policy fail/warn on data that breaks a curated schema."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from conftest import PENGUINS, make_artifact, make_outputs
from kfp.dsl import Artifact, Dataset

from kfkit.components import validate as component
from kfkit.components.ingest.executor import ingest
from kfkit.splits import write_split

pytestmark = pytest.mark.slow


def splits(folder: Path, frame: pd.DataFrame | None = None):
    source = PENGUINS
    if frame is not None:
        folder.mkdir(parents=True, exist_ok=True)
        source = folder / "data.csv"
        frame.to_csv(source, index=False)
    result = ingest(str(source), "species")
    artifacts = []
    for name, part in (("train_split", result.train), ("eval_split", result.eval)):
        artifact = make_artifact(Dataset, folder, name, result.metadata)
        write_split(part, artifact.path)
        artifacts.append(artifact)
    return artifacts


def call(folder: Path, train_split, eval_split, **params):
    outputs = make_outputs(component, folder)
    baseline = params.pop("baseline", None) or make_artifact(Artifact, folder, "baseline", {"found": False})
    arguments = {"policy": "fail", "schema_uri": "", "task_name": "validate", **params}
    component.python_func(
        train_split=train_split, eval_split=eval_split, baseline=baseline, **outputs, **arguments
    )
    return outputs


def test_blesses_clean_data_against_a_curated_schema_and_rejects_text_in_a_number(tmp_path, capsys):
    learned = tmp_path / "learned"
    # Infer a schema from clean data with a curated schema file of its own making: TFDV writes it.
    first = call(learned, *splits(learned), schema_uri=str(_schema_of_clean(tmp_path)))
    assert first["anomalies"].metadata["blessed"] is True
    assert first["anomalies"].metadata["schema_source"] == "curated"
    assert "# Data validation" in Path(first["report"].path).read_text()
    assert (Path(first["statistics"].path) / "train.pb").is_file()

    frame = pd.read_csv(PENGUINS, na_values=["NA"])
    frame["bill_length_mm"] = frame["bill_length_mm"].astype(object)
    frame.loc[frame.index % 2 == 0, "bill_length_mm"] = "not measured"
    flooded = tmp_path / "flooded"
    warned = call(flooded, *splits(flooded, frame), schema_uri=str(_schema_of_clean(tmp_path)), policy="warn")
    assert warned["anomalies"].metadata["blessed"] is False
    assert "bill_length_mm" in warned["anomalies"].metadata["reason"]
    with pytest.raises(SystemExit) as exit_info:
        call(
            tmp_path / "failed",
            *splits(tmp_path / "failed", frame),
            schema_uri=str(_schema_of_clean(tmp_path)),
        )
    assert exit_info.value.code == 1
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("kfkit validate: error: data validation failed") and "bill_length_mm" in last


def _schema_of_clean(tmp_path: Path) -> Path:
    """A curated schema: TFDV's inference on the clean penguins, as a user would commit it."""
    target = tmp_path / "curated.pbtxt"
    if not target.exists():
        from kfkit.components.validate.executor import _schema_to_text, _tfdv, infer_schema

        train = ingest(str(PENGUINS), "species").train
        statistics = _tfdv().generate_statistics_from_dataframe(train)
        target.write_text(_schema_to_text(infer_schema(statistics, "species")))
    return target


def test_the_baselines_schema_is_checked_against_and_named(tmp_path):
    """No curated schema: the baseline's schema.pbtxt (a pushed version's) is the one used."""
    folder = tmp_path / "baseline"
    folder.mkdir()
    (folder / "schema.pbtxt").write_text(_schema_of_clean(tmp_path).read_text())
    uri = "s3://models/penguins/3/"
    baseline = make_artifact(Artifact, tmp_path, "baseline", {"found": True, "uri": uri})
    frame = pd.read_csv(PENGUINS, na_values=["NA"])
    frame["bill_length_mm"] = frame["bill_length_mm"].astype(object)
    frame.loc[frame.index % 2 == 0, "bill_length_mm"] = "not measured"
    out = call(tmp_path / "run", *splits(tmp_path / "run", frame), policy="warn", baseline=baseline)
    anomalies = out["anomalies"].metadata
    assert anomalies["schema_source"] == "baseline" and anomalies["schema_uri"] == uri + "schema.pbtxt"
    assert anomalies["blessed"] is False and "bill_length_mm" in anomalies["reason"]
    # No baseline found: the schema is inferred from this data.
    inferred = call(tmp_path / "first", *splits(tmp_path / "first", frame), policy="warn")
    assert inferred["anomalies"].metadata["schema_source"] == "inferred"
