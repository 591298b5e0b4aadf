"""kfkit validate component: declaration only; the work is kfkit.executors.run_validate."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Markdown, Output

from kfkit.images import VALIDATE_IMAGE


@dsl.component(base_image=VALIDATE_IMAGE, install_kfp_package=False)
def validate(
    train_split: Input[Dataset],
    eval_split: Input[Dataset],
    model_name: str,
    statistics: Output[Artifact],
    schema: Output[Artifact],
    anomalies: Output[Artifact],
    report: Output[Markdown],
    policy: str = "fail",
    schema_uri: str = "",
):
    """Checks both splits against a schema with TensorFlow Data Validation.

    Example:
        validate(train_split=..., eval_split=..., model_name="penguins", policy="fail")

    Outputs:
        statistics: TFDV statistics (train.pb, eval.pb).
        schema: The schema used (schema.pbtxt).
        anomalies: anomalies.pbtxt; metadata `blessed` gates train and push.
        report: Markdown report rendered by the KFP UI.

    Args:
        model_name: Whose reference schema (learned on its first blessed run) to check against.
        policy: "fail" ends the task on anomalies; "warn" continues unblessed.
        schema_uri: A curated schema (s3:// or local pbtxt) used instead of the reference.
    """
    from kfkit.executors import run_validate

    run_validate(
        train_split, eval_split, model_name, policy, schema_uri, statistics, schema, anomalies, report
    )
