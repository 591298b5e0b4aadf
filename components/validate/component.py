"""The validate component: its kfp declaration. The logic is ``executor.run``."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Markdown, Output

from kfkit.images import VALIDATE_IMAGE


@dsl.component(base_image=VALIDATE_IMAGE, install_kfp_package=False)
def validate(
    train_split: Input[Dataset],
    eval_split: Input[Dataset],
    baseline: Input[Artifact],
    statistics: Output[Artifact],
    schema: Output[Artifact],
    anomalies: Output[Artifact],
    report: Output[Markdown],
    policy: str = "fail",
    schema_uri: str = "",
    task_name: str = dsl.PIPELINE_TASK_NAME_PLACEHOLDER,
):
    """Checks both splits against a schema with TensorFlow Data Validation: a curated one, else
    the baseline's, else one inferred from the train split.

    Example:
        validate(train_split=..., eval_split=..., baseline=..., policy="fail")

    Outputs:
        statistics: TFDV statistics (train.pb, eval.pb).
        schema: The schema used (schema.pbtxt).
        anomalies: anomalies.pbtxt; metadata `blessed` is the gate train reads.
        report: Markdown report rendered by the KFP UI.

    Args:
        train_split: The train rows (from ingest); its metadata names the label column.
        eval_split: The eval rows (from ingest).
        baseline: What the data is compared with (from resolve_baseline): its
            schema.pbtxt, when its metadata says `found`, is the schema checked against.
        policy: "fail" ends the task on anomalies; "warn" continues unblessed.
        schema_uri: A curated schema (s3:// or local pbtxt) used instead of the baseline's.
        task_name: Filled in by the orchestrator (kfp's task-name placeholder); leave unset.
    """
    from kfkit.components.validate.executor import run
    from kfkit.runtime import execute

    execute(validate, locals(), run)
