"""The score component: its kfp declaration. The logic is ``executor.run``."""

from typing import Optional

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Markdown, Output

from kfkit.images import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def score(
    batch: Input[Dataset],
    baseline: Input[Artifact],
    predictions: Output[Dataset],
    rejects: Output[Dataset],
    summary: Output[Markdown],
    anomalies: Optional[Input[Artifact]] = None,
    key_column: str = "",
    task_name: str = dsl.PIPELINE_TASK_NAME_PLACEHOLDER,
):
    """Scores a batch with a pushed model version exactly as its server answers (the same
    verification, conversion and fast path), rejects the rows the server would refuse, and
    copies the results write-once to s3://predictions/<model>/<version>/<data fingerprint>/.

    Example:
        score(batch=ingest_task.outputs["train_split"], baseline=baseline_task.outputs["baseline"])

    Outputs:
        predictions: Parquet of the scored rows: `row_number` (position in the batch, from 0),
            the key column if asked for, `prediction`, `probability_<class>` per class
            (classification), `model_name`, `model_version`; metadata `model_name`,
            `model_version`, `model_sha256`, `dataset_fingerprint`, `rows`, `rows_scored`,
            `rows_rejected`, `rejected_by_reason`, `class_distribution`, `predictions_uri` (the
            batch folder), `predictions_object` (its predictions file, named by its sha256) and
            `written` (false: the same batch was already scored by this version; nothing new
            was written).
        rejects: Parquet of the rows not scored: `row_number`, the key column, `column`,
            `reason` (not a number, not a date, not a category, out of range), `value` and the
            server's `message`.
        summary: Markdown summary the KFP UI renders: rows scored and rejected by reason, the
            class distribution, where the predictions are.

    Args:
        batch: The rows to score (ingest's train_split with eval_fraction=0 and no label:
            every row, in the order read).
        baseline: The model version (resolve_baseline's output: its verified folder).
        anomalies: validate's verdict on the batch (optional): its anomalies and drift are
            reported in the summary and the predictions' metadata (`data_blessed`,
            `data_anomalies`); they do not stop the scoring.
        key_column: A column of the batch to carry into the predictions and rejects beside
            the row number (e.g. an id); empty: the row number alone.
        task_name: Filled in by the orchestrator (kfp's task-name placeholder); leave unset.
    """
    from kfkit.components.score.executor import run
    from kfkit.runtime import execute

    execute(score, locals(), run)
