"""The evaluate component: its kfp declaration. The logic is ``executor.run``."""

from typing import Optional

from kfp import dsl
from kfp.dsl import HTML, Artifact, ClassificationMetrics, Dataset, Input, Markdown, Metrics, Model, Output

from kfkit.images import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def evaluate(
    model: Input[Model],
    eval_split: Input[Dataset],
    train_split: Input[Dataset],
    baseline: Input[Artifact],
    metrics: Output[Metrics],
    classification_metrics: Output[ClassificationMetrics],
    blessing: Output[Artifact],
    report: Output[Markdown],
    html: Output[HTML],
    thresholds: Optional[dict] = None,
    trivial_metrics: Optional[list] = None,
    trivial_margin: float = 0.01,
    tolerances: Optional[dict] = None,
    slice_features: Optional[list] = None,
    slice_floors: Optional[dict] = None,
    task_name: str = dsl.PIPELINE_TASK_NAME_PLACEHOLDER,
):
    """Scores the model on the eval split and blesses it only if it beats a trivial model, is
    not worse than the version it would replace, meets the absolute thresholds and, when sliced,
    its worst slice meets the slice floors.

    Example:
        evaluate(model=..., eval_split=..., train_split=..., baseline=..., thresholds={"accuracy": 0.9})

    Outputs:
        metrics: accuracy, macro_f1, roc_auc_ovr, log_loss (or rmse, mae, r2); when sliced
            also `slices` (each {feature, value, rows, metrics}) and `worst_slice`.
        classification_metrics: Confusion matrix shown by the KFP UI; for binary
            classification also the ROC curve (at most 1,000 of its points; thresholds
            finite: +inf logged as 1.0).
        blessing: metadata `blessed`, the reason and every check; the gate push reads.
        report: Markdown report: candidate vs trivial model vs baseline version, checks,
            verdict, slices, confusion matrix.
        html: The same as one self-contained HTML page with inline SVG charts (no scripts, no
            network), rendered by the KFP UI: metrics as grouped bars, the confusion matrix as a
            heatmap, ROC and precision-recall curves for binary classification, and the
            primary metric per slice against its floor.

    Args:
        model: The trained model folder (from train); skipped when train did not run.
        eval_split: The eval rows (from ingest).
        train_split: The train rows (from ingest): the trivial model (DummyClassifier
            strategy prior, DummyRegressor strategy mean) is fitted on its labels.
        baseline: The version the model would replace (from resolve_baseline, with its model
            file): scored on the same eval rows. `found` false: nothing to compare with.
        thresholds: Metric name to limit: a floor for accuracy, macro_f1, roc_auc_ovr, r2;
            a ceiling for log_loss, rmse, mae. Empty: only the two comparisons decide.
        trivial_metrics: Metrics the model must beat the trivial model on. Empty: accuracy and
            log_loss (classification), rmse (regression).
        trivial_margin: Fraction of the trivial model's error (1 - accuracy, log_loss, rmse, ...)
            the model must remove on each of trivial_metrics; 0 means strictly better.
        tolerances: Metric name to the degradation allowed against the baseline version,
            absolute for accuracy, macro_f1, roc_auc_ovr, r2, a fraction of the version's value
            for log_loss, rmse, mae; "off" (or null) switches a metric off. Merged over the defaults 0.01
            (accuracy, macro_f1, roc_auc_ovr, r2), 0.05 (log_loss), 0.02 (rmse, mae).
        slice_features: Eval split columns to slice by: each value of a categorical column
            (missing values as their own slice), 4 quantile bins of a numeric one. Every slice
            is scored and the worst (lowest accuracy, highest rmse) named. Empty: no slices.
        slice_floors: Metric name to the minimum (a maximum for log_loss, rmse, mae) every
            slice of 10 rows or more must reach; smaller slices are reported, never gate.
            Empty: slices are reported only.
        task_name: Filled in by the orchestrator (kfp's task-name placeholder); leave unset.
    """
    from kfkit.components.evaluate.executor import run
    from kfkit.runtime import execute

    execute(evaluate, locals(), run)
