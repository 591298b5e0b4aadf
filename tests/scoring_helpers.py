"""A pushed penguins model and batches to score, for the scoring tests (components/score/tests,
tests/test_scoring*.py): real ingest, train and push, against the session's object store."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from conftest import PENGUINS, write_schema

from kfkit.components.ingest.executor import ingest, ingest_to
from kfkit.components.push.executor import push
from kfkit.components.train.executor import train
from kfkit.storage import ObjectStore

FEATURES = ["island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "sex", "year"]


def push_penguins(
    objects: ObjectStore, folder: Path, model_name: str, estimator: str = "logistic_regression"
) -> str:
    """Train on the penguins data and push: the new version's number."""
    split = ingest(str(PENGUINS), "species")
    schema = write_schema(split.train, folder / "schema")
    train(
        split.train,
        str(schema / "schema.pbtxt"),
        "species",
        model_name,
        str(folder / "model"),
        estimator=estimator,
        dataset_fingerprint=split.metadata["dataset_fingerprint"],
    )
    return push(str(folder / "model"), model_name, store=objects).version


def penguins_batch(folder: Path, bad: dict[tuple[int, str], str] | None = None) -> Path:
    """The penguins rows without their label and with an id, as a CSV to score; ``bad``: (row,
    column) -> text written in place of the value."""
    frame = pd.read_csv(PENGUINS, na_values=["NA"]).drop(columns=["species"])
    frame.insert(0, "penguin_id", [f"p{i:03d}" for i in range(len(frame))])
    frame = frame.astype(object)
    for (row, column), text in (bad or {}).items():
        frame.loc[row, column] = text
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "batch.csv"
    frame.to_csv(path, index=False)
    return path


def ingested(csv: Path, out: Path) -> tuple[Path, dict]:
    """The batch as the scoring pipeline's ingest writes it: no label, no split."""
    metadata = ingest_to(
        str(csv), "", str(out / "batch.parquet"), str(out / "empty.parquet"), eval_fraction=0.0
    )
    return out / "batch.parquet", metadata
