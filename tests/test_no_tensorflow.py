"""ingest, train, evaluate and push must not import TensorFlow (it costs seconds per task)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from conftest import PENGUINS, REPO

SCRIPT = textwrap.dedent(
    """
    import sys, tempfile
    from pathlib import Path
    from kfp.dsl import HTML, Artifact, ClassificationMetrics, Dataset, Markdown, Metrics, Model
    from tensorflow_metadata.proto.v0 import schema_pb2
    from google.protobuf import text_format
    from kfkit.components import evaluate, ingest, push, train

    work = Path(tempfile.mkdtemp())

    def artifact(kind, name, **metadata):
        return kind(name=name, uri=str(work / name), metadata=dict(metadata))

    train_split, eval_split = artifact(Dataset, "train_split"), artifact(Dataset, "eval_split")
    ingest.python_func(source_uri={penguins!r}, label_column="species", train_split=train_split,
                       eval_split=eval_split, eval_fraction=0.2, split_key="", task_name="ingest")
    schema = schema_pb2.Schema()
    for column in ("island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "sex",
                   "year", "species"):
        kind = schema_pb2.BYTES if column in ("island", "sex", "species") else schema_pb2.FLOAT
        schema.feature.add(name=column, type=kind)
    (work / "schema").mkdir()
    (work / "schema" / "schema.pbtxt").write_text(text_format.MessageToString(schema))

    (work / "statistics").mkdir()
    (work / "statistics" / "train.pb").write_bytes(b"")  # train copies it; it never parses it

    model = artifact(Model, "model")
    train.python_func(train_split=train_split, schema=artifact(Artifact, "schema"),
                      anomalies=artifact(Artifact, "a", blessed=True),
                      statistics=artifact(Artifact, "statistics"), model_name="m", model=model,
                      problem_type="classification", estimator="random_forest",
                      hyperparameters={{"n_estimators": 10}}, random_seed=0, run_id="run", task_name="train")
    blessing = artifact(Artifact, "blessing")
    evaluate.python_func(model=model, eval_split=eval_split, train_split=train_split,
                         baseline=artifact(Artifact, "baseline", found=False),
                         thresholds={{"accuracy": 0.5}}, report=artifact(Markdown, "report"),
                         html=artifact(HTML, "html"),
                         metrics=artifact(Metrics, "metrics"),
                         classification_metrics=artifact(ClassificationMetrics, "cm"), blessing=blessing,
                         task_name="evaluate")
    assert blessing.metadata["blessed"] is True, blessing.metadata
    # push without a store: not blessed, so it must decide without touching S3 or TensorFlow.
    push.python_func(model=model, blessing=artifact(Artifact, "nb", blessed=False), model_name="m",
                     pushed_model=artifact(Model, "pm"), deployment=artifact(Artifact, "d"),
                     serving_namespace="ns", deploy_strategy="local", canary_traffic=10, deploy_timeout=5,
                     task_name="push")
    loaded = sorted(m for m in sys.modules if m == "tensorflow" or m.startswith("tensorflow."))
    print("TF:", loaded)
    assert "tensorflow_data_validation" not in sys.modules
    """
)


def test_train_evaluate_push_do_not_import_tensorflow():
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(penguins=str(PENGUINS))],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "TF: []" in proc.stdout, proc.stdout


def test_validate_is_the_step_that_imports_tensorflow():
    # The positive control: the check above would see TensorFlow if a step imported it.
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from kfkit.components.validate import executor as v; v._tfdv(); "
            "print('tensorflow' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert proc.stdout.strip().endswith("True"), proc.stderr[-2000:]
