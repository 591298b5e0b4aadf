"""The evaluate component: its kfp declaration. The logic is ``executor.run``."""

from typing import Optional

from kfp import dsl
from kfp.dsl import Artifact, ClassificationMetrics, Dataset, Input, Metrics, Model, Output

from kfkit.images import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def evaluate(
    model: Input[Model],
    eval_split: Input[Dataset],
    metrics: Output[Metrics],
    classification_metrics: Output[ClassificationMetrics],
    blessing: Output[Artifact],
    thresholds: Optional[dict] = None,
    task_name: str = dsl.PIPELINE_TASK_NAME_PLACEHOLDER,
):
    """Scores the model on the eval split and blesses it by absolute thresholds.

    Example:
        evaluate(model=..., eval_split=..., thresholds={"accuracy": 0.9, "log_loss": 0.5})

    Outputs:
        metrics: accuracy, macro_f1, roc_auc_ovr, log_loss (or rmse, mae, r2).
        classification_metrics: Confusion matrix shown by the KFP UI.
        blessing: metadata `blessed` and the reason; the gate push reads.

    Args:
        model: The trained model folder (from train); skipped when train did not run.
        eval_split: The eval rows (from ingest).
        thresholds: Metric name to limit: a floor for accuracy, macro_f1, roc_auc_ovr, r2;
            a ceiling for log_loss, rmse, mae. Empty means nothing is blessed.
        task_name: Filled in by the orchestrator (kfp's task-name placeholder); leave unset.
    """
    from kfkit.components.evaluate.executor import run
    from kfkit.runtime import execute

    execute(evaluate, locals(), run)
