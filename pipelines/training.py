"""The kfkit training pipeline: ingest -> validate (against the baseline) -> train -> evaluate
(against a trivial model and the baseline version) -> push.

Validate checks the schema, drift against the baseline's training statistics (which train
keeps beside the model it trains) and train/eval skew; ``drift_thresholds`` and
``skew_thresholds`` loosen single features (feature -> threshold). The baseline is the version
the deploy target serves now (``deploy_strategy``), else the latest pushed one. Evaluate slices
its metrics by ``slice_features`` and refuses a model whose worst slice misses ``slice_floors``.

The same definition runs under ``kfp.local`` (``kfkit run-local``) and in Kubeflow
Pipelines. Gates (no training on unblessed data, no push of an unblessed model) live inside
the components, because kfp.local refuses ``dsl.If``.

Caching in a cluster follows content, not names: resolve_source (never cached) resolves
``data_uri`` and the model's registry folder to content identities, which ingest and
resolve_baseline take as parameters; KFP's cache key of every task after them follows. An
unchanged rerun reuses ingest to evaluate, new data reruns from ingest, a new pushed version
from resolve_baseline; push is never cached. No task gets the run name. Each task's image,
resources, retries, timeout and caching come from :mod:`kfkit.task_settings`
(``kfkit compile --resources/--image-registry/--image-tag``).

In a cluster every task reads the object-store credentials from the Kubernetes Secret
``kfkit-object-store`` (shipped in ``manifests/pipelines/``) through kfp-kubernetes: the
compiled YAML names the Secret and its keys, never a value, and no credential is a pipeline
parameter. kfp.local ignores this platform config; ``kfkit run-local`` passes the same
variables from its own environment instead.

Models are signed: train reads its private key from the Secret ``kfkit-model-signing`` and the
tasks that load models (resolve_baseline, evaluate) trust the public keys in the ConfigMap
``kfkit-trusted-model-keys``, both mounted as files (``kfkit.platform``). Locally kfkit uses a
key pair of its own under the state folder.
"""

from kfp import dsl

from kfkit import names
from kfkit.components import evaluate, ingest, push, resolve_baseline, resolve_source, train, validate
from kfkit.platform import use_model_signing_key, use_object_store, use_trusted_model_keys
from kfkit.task_settings import configure_task


@dsl.pipeline(
    name=names.PIPELINE_NAME,
    description="Ingest, validate (TFDV), train (scikit-learn), evaluate and push a model.",
)
def training(
    data_uri: str,
    label_column: str = "species",
    model_name: str = "penguins",
    problem_type: str = "classification",
    estimator: str = "logistic_regression",
    hyperparameters: dict = {},  # noqa: B006 - kfp pipeline defaults are values, not objects
    thresholds: dict = {"accuracy": 0.9},  # noqa: B006
    trivial_margin: float = 0.01,
    tolerances: dict = {},  # noqa: B006 - empty: evaluate's defaults (0.01 accuracy, ...)
    slice_features: list = [],  # noqa: B006 - eval split columns to slice the metrics by
    slice_floors: dict = {},  # noqa: B006 - metric -> what the worst slice must reach
    eval_fraction: float = 0.2,
    split_key: str = "",
    validation_policy: str = "fail",
    schema_uri: str = "",
    drift_thresholds: dict = {},  # noqa: B006 - feature -> threshold; 1 or null turns one off
    skew_thresholds: dict = {},  # noqa: B006
    keep_features: list = [],  # noqa: B006 - identifiers or free text to use as features anyway
    beam_options: list = [],  # noqa: B006 - validate's statistics as a Beam pipeline (never credentials)
    random_seed: int = 42,
    max_train_rows: int = 1000000,  # train on a seeded sample past this many rows; 0: all rows
    serving_namespace: str = "kfkit-serving",
    deploy_strategy: str = "auto",
    serving_replicas: int = 1,
    serving_resources: dict = {},  # noqa: B006 - cpu_request, cpu_limit, memory_request, memory_limit
):
    # Uncached: the content identities every cache key after it follows (the data, the registry).
    source_task = use_object_store(
        resolve_source(
            source_uri=data_uri,
            model_name=model_name,
            deploy_strategy=deploy_strategy,
            serving_namespace=serving_namespace,
            schema_uri=schema_uri,
        )
    )
    ingest_task = use_object_store(
        ingest(
            source_uri=data_uri,
            label_column=label_column,
            eval_fraction=eval_fraction,
            split_key=split_key,
            source_identity=source_task.outputs["source_identity"],
        )
    )
    baseline_task = use_trusted_model_keys(
        use_object_store(
            resolve_baseline(
                model_name=model_name,
                deploy_strategy=deploy_strategy,
                serving_namespace=serving_namespace,
                baseline_identity=source_task.outputs["baseline_identity"],
            )
        )
    )
    validate_task = use_object_store(
        validate(
            train_split=ingest_task.outputs["train_split"],
            eval_split=ingest_task.outputs["eval_split"],
            baseline=baseline_task.outputs["baseline"],
            policy=validation_policy,
            schema_uri=schema_uri,
            schema_identity=source_task.outputs["schema_identity"],
            drift_thresholds=drift_thresholds,
            skew_thresholds=skew_thresholds,
            keep_features=keep_features,
            problem_type=problem_type,
            beam_options=beam_options,
        )
    )
    train_task = use_model_signing_key(
        use_object_store(
            train(
                train_split=ingest_task.outputs["train_split"],
                schema=validate_task.outputs["schema"],
                anomalies=validate_task.outputs["anomalies"],
                statistics=validate_task.outputs["statistics"],
                model_name=model_name,
                problem_type=problem_type,
                estimator=estimator,
                hyperparameters=hyperparameters,
                random_seed=random_seed,
                max_train_rows=max_train_rows,
                # No run_id: the run name would change train's cache key on every run. KFP's
                # lineage links the model to the run that trained it.
            )
        )
    )
    evaluate_task = use_trusted_model_keys(
        use_object_store(
            evaluate(
                model=train_task.outputs["model"],
                eval_split=ingest_task.outputs["eval_split"],
                train_split=ingest_task.outputs["train_split"],
                baseline=baseline_task.outputs["baseline"],
                thresholds=thresholds,
                trivial_margin=trivial_margin,
                tolerances=tolerances,
                slice_features=slice_features,
                slice_floors=slice_floors,
            )
        )
    )
    push_task = use_object_store(
        push(
            model=train_task.outputs["model"],
            blessing=evaluate_task.outputs["blessing"],
            model_name=model_name,
            serving_namespace=serving_namespace,
            deploy_strategy=deploy_strategy,
            serving_replicas=serving_replicas,
            serving_resources=serving_resources,
        )
    )
    # Image, resources, retries, timeout and caching of each task: kfkit.task_settings.
    for task in (
        source_task,
        ingest_task,
        baseline_task,
        validate_task,
        train_task,
        evaluate_task,
        push_task,
    ):
        configure_task(task)
