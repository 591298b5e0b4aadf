"""The train component: its kfp declaration. The logic is ``executor.run``."""

from typing import Optional

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Model, Output

from kfkit.images import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def train(
    train_split: Input[Dataset],
    schema: Input[Artifact],
    anomalies: Input[Artifact],
    statistics: Input[Artifact],
    model_name: str,
    model: Output[Model],
    problem_type: str = "classification",
    estimator: str = "logistic_regression",
    hyperparameters: Optional[dict] = None,
    random_seed: int = 42,
    max_train_rows: int = 1000000,
    run_id: str = "",
    task_name: str = dsl.PIPELINE_TASK_NAME_PLACEHOLDER,
):
    """Fits a scikit-learn Pipeline on the train split, only if validation blessed the data.

    Example:
        train(train_split=..., schema=..., anomalies=..., statistics=..., model_name="penguins",
              estimator="random_forest", hyperparameters={"n_estimators": 200})

    Outputs:
        model: Folder with model.joblib and kfkit-model.json (sha256, versions, features), and
            the companion files schema.pbtxt and (given `statistics`) train_statistics.pb.

    Args:
        train_split: The train rows (from ingest); its metadata names the label column.
        schema: The validated schema (from validate): each feature's `kfkit:<role>` annotation
            decides its use (identifiers and free text left out, dates as days since
            1970-01-01); without one, INT/FLOAT features are numeric, BYTES categorical.
        anomalies: The gate: trains only if its metadata says `blessed`.
        model_name: Name recorded in the model manifest.
        statistics: TFDV statistics of the splits (from validate); its train.pb is kept in the
            model folder as train_statistics.pb, what later runs are checked for drift against.
        problem_type: "classification" or "regression".
        estimator: logistic_regression, random_forest, hist_gradient_boosting or sgd (ridge
            instead of logistic_regression for regression). sgd (SGDClassifier with log_loss,
            SGDRegressor) streams the split in batches with partial_fit, max_iter passes
            (default 5): every row is used, memory follows the batch size.
        hyperparameters: Keyword arguments for the estimator.
        random_seed: Seed for every random choice, so runs repeat exactly (also the sample
            of max_train_rows).
        max_train_rows: Fit on a uniform sample of this many rows, drawn with random_seed, when
            the train split has more (the model manifest's train_sample records it); 0: all
            rows. Bounds memory for the estimators that fit in memory; sgd fits only its
            preprocessing on the sample (0: on 1,000,000 rows) and then streams every row.
        run_id: The pipeline run recorded in the manifest (pass dsl.PIPELINE_JOB_NAME_PLACEHOLDER;
            `kfkit run-local` records its own run id).
        task_name: Filled in by the orchestrator (kfp's task-name placeholder); leave unset.
    """
    from kfkit.components.train.executor import run
    from kfkit.runtime import execute

    execute(train, locals(), run, gates=("anomalies",))
