"""Train, evaluate and push logic must not import TensorFlow (it costs seconds per task)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from conftest import PENGUINS, REPO

SCRIPT = textwrap.dedent(
    """
    import sys, tempfile, types
    from pathlib import Path
    from tensorflow_metadata.proto.v0 import schema_pb2
    from google.protobuf import text_format
    from kfkit import executors
    from kfkit.steps import ingest, train, evaluate, push

    work = Path(tempfile.mkdtemp())
    result = ingest.ingest({penguins!r}, "species")
    schema = schema_pb2.Schema()
    for column in result.train.columns:
        kind = schema_pb2.BYTES if result.train[column].dtype == object else schema_pb2.FLOAT
        schema.feature.add(name=column, type=kind)
    (work / "schema").mkdir()
    (work / "schema" / "schema.pbtxt").write_text(text_format.MessageToString(schema))
    ingest.write_split(result.train, str(work / "train.parquet"))
    ingest.write_split(result.eval, str(work / "eval.parquet"))

    def artifact(name, **metadata):
        return types.SimpleNamespace(
            path=str(work / name), metadata=dict(metadata),
            log_metric=lambda k, v: None, log_confusion_matrix=lambda c, m: None,
        )

    split = artifact("train.parquet", label_column="species", dataset_fingerprint="f")
    model = artifact("model")
    executors.run_train(split, artifact("schema"), artifact("a", blessed=True), "m", "classification",
                        "random_forest", {{"n_estimators": 10}}, 0, "run", model)
    blessing = artifact("blessing")
    executors.run_evaluate(model, artifact("eval.parquet"), {{"accuracy": 0.5}}, artifact("metrics"),
                           artifact("cm"), blessing)
    assert blessing.metadata["blessed"] is True, blessing.metadata
    # push without a store: not blessed, so it must decide without touching S3 or TensorFlow.
    executors.run_push(model, artifact("nb", blessed=False), "m", "ns", artifact("pm"), artifact("sd"))
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
            "import sys, kfkit.steps.validate as v; v._tfdv(); print('tensorflow' in sys.modules)",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert proc.stdout.strip().endswith("True"), proc.stderr[-2000:]
