"""The ingest component: its kfp declaration. The logic is ``executor.run``."""

from kfp import dsl
from kfp.dsl import Dataset, Output

from kfkit.images import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def ingest(
    source_uri: str,
    label_column: str,
    train_split: Output[Dataset],
    eval_split: Output[Dataset],
    eval_fraction: float = 0.2,
    split_key: str = "",
    source_identity: str = "",
    task_name: str = dsl.PIPELINE_TASK_NAME_PLACEHOLDER,
):
    """Reads a CSV or Parquet table and splits it deterministically into train and eval.

    Example:
        ingest(source_uri="s3://raw/penguins/", label_column="species")

    Outputs:
        train_split: Parquet Dataset of the train rows.
        eval_split: Parquet Dataset of the eval rows.

    Args:
        source_uri: s3:// or minio:// object or prefix, or a local file or folder path.
        label_column: Column to predict; rows where it is missing are dropped. Empty: the data
            has no label (a batch to score): no row is dropped.
        eval_fraction: Share of rows in the eval split, in (0, 1); 0: no split (a batch to
            score): every row in train_split in the order read (files in name order), so a
            row's position there is its row number, and eval_split empty.
        split_key: Column whose value decides the split (e.g. an id); default the whole row.
        source_identity: The source's content identity from resolve_source (its objects' etags,
            or sha256 of local files). It makes KFP's cache key of this task, and so of every
            task after it, change exactly when the data does; ingest refuses data whose identity
            differs (changed between the two tasks). Empty: no check.
        task_name: Filled in by the orchestrator (kfp's task-name placeholder); leave unset.
    """
    from kfkit.components.ingest.executor import run
    from kfkit.runtime import execute

    execute(ingest, locals(), run)
