"""Evaluate predicts in batches from the split file, reading only the columns it needs: the
metrics, slices, trivial model and baseline version's scores are those of one whole-table pass."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from kfkit.components.evaluate.executor import _score, evaluate, predict, predict_split
from kfkit.components.train.executor import train
from kfkit.model_folder import load_verified_model
from kfkit.splits import write_split

SCHEMA = """
feature { name: "size" type: FLOAT annotation { tag: "kfkit:numeric" } }
feature { name: "colour" type: BYTES annotation { tag: "kfkit:categorical" } }
feature { name: "sold" type: BYTES }
"""


def table(rows: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    size = rng.uniform(10, 100, rows)
    colour = rng.choice(["red", "green", "blue"], rows).astype(object)
    score = size / 30 + (colour == "red") * 1.2 + rng.normal(0, 1, rows)
    label = np.where(score > 3.2, "high", np.where(score > 1.8, "mid", "low"))
    frame = pd.DataFrame({"size": size, "colour": colour, "sold": label, "note": "unused"})
    frame.loc[::17, "size"] = np.nan
    return frame


@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    folder = tmp_path_factory.mktemp("batches")
    (folder / "schema.pbtxt").write_text(SCHEMA)
    paths = {}
    for name, rows, seed in (("train", 600, 1), ("eval", 203, 2)):
        paths[name] = str(folder / f"{name}.parquet")
        write_split(table(rows, seed), paths[name])
    for name, params in (("candidate", {}), ("version", {"hyperparameters": {"C": 0.01}})):
        train(paths["train"], str(folder / "schema.pbtxt"), "sold", "m", str(folder / name), **params)
    return folder, paths


def test_batched_predictions_and_metrics_equal_the_whole_table(splits):
    folder, paths = splits
    model, manifest = load_verified_model(folder / "candidate")
    whole = predict(model, manifest, pd.read_parquet(paths["eval"]))
    np.testing.assert_array_equal(predict_split(model, manifest, paths["eval"], batch_rows=7), whole)

    common = dict(
        thresholds={"accuracy": 0.5},
        baseline_dir=str(folder / "version"),
        baseline_meta={"found": True, "version": "3"},
        slice_features=["colour", "size"],
    )
    tiny = evaluate(
        str(folder / "candidate"), paths["eval"], train_frame=paths["train"], batch_rows=7, **common
    )
    frames = evaluate(
        str(folder / "candidate"),
        pd.read_parquet(paths["eval"]),
        train_frame=pd.read_parquet(paths["train"]),
        batch_rows=10**6,
        **common,
    )
    assert asdict(tiny) == asdict(frames)
    assert tiny.baseline_version == "3" and tiny.baseline_metrics and len(tiny.slices) == 3 + 4 + 1


def test_integer_coded_labels_score_like_scikit_learn_on_the_class_names(splits):
    """_score codes the labels as integers for speed; the numbers are those of the names."""
    folder, paths = splits
    model, manifest = load_verified_model(folder / "candidate")
    frame = pd.read_parquet(paths["eval"])
    output = predict(model, manifest, frame)
    scored = _score(manifest, frame["sold"], output)
    classes = manifest.classes
    predicted = np.array(classes)[output.argmax(axis=1)]
    assert scored.metrics == {
        "accuracy": round(skm.accuracy_score(frame["sold"], predicted), 9),
        "macro_f1": round(skm.f1_score(frame["sold"], predicted, average="macro", labels=classes), 9),
        "log_loss": round(skm.log_loss(frame["sold"], output, labels=classes), 9),
        "roc_auc_ovr": round(skm.roc_auc_score(frame["sold"], output, multi_class="ovr", labels=classes), 9),
    }
    assert scored.confusion_matrix == skm.confusion_matrix(frame["sold"], predicted, labels=classes).tolist()
