"""The kfkit scoring pipeline: a batch of new rows scored by a pushed model version.

resolve_source -> ingest (no split, no label: every row in the order read) -> resolve_baseline
(the version asked for, else the version serving now, else the latest pushed) -> validate ->
score. Score
loads that version as its server does (signature, sha256, scikit-learn version), rejects the rows
the server would refuse (with the reason, counted), and writes the predictions write-once to
``s3://predictions/<model>/<version>/<data fingerprint>/``. Nothing is pushed or deployed.

validate checks the batch against that version's schema and training statistics in TFDV's
``SERVING`` environment (the label absent) and measures drift; with ``validation_policy`` "warn"
(the default here) it reports and does not block: its anomalies go into score's summary and the
predictions' metadata, and the rows the server would refuse are rejected by score one by one.
"fail" stops the run on any anomaly instead.

The same definition runs under ``kfp.local`` (``kfkit run-local --pipeline scoring`` or ``kfkit
score``) and in Kubeflow Pipelines. In a cluster the tasks read the object-store credentials
from the Secret ``kfkit-object-store`` and the tasks that load models trust the public keys in
the ConfigMap ``kfkit-trusted-model-keys``, as in the training pipeline. Each task's image,
resources, retries, timeout and caching come from :mod:`kfkit.task_settings`; score is never
cached (it publishes, and says whether the batch was already scored).
"""

from kfp import dsl

from kfkit.components import ingest, resolve_baseline, resolve_source, score, validate
from kfkit.platform import use_object_store, use_trusted_model_keys
from kfkit.task_settings import configure_task

PIPELINE_NAME = "kfkit-scoring"


@dsl.pipeline(
    name=PIPELINE_NAME,
    description="Score a batch with a pushed model version; predictions written once to s3://predictions/.",
)
def scoring(
    data_uri: str,
    model_name: str = "penguins",
    model_version: str = "",  # a pushed version number; empty: the version serving now
    key_column: str = "",  # a column of the data to carry into the predictions (an id)
    serving_namespace: str = "kfkit-serving",
    deploy_strategy: str = "auto",  # which deploy target says which version serves now
    validation_policy: str = "warn",  # warn: anomalies and drift reported, the batch still scored
    drift_thresholds: dict = {},  # noqa: B006 - feature -> threshold; 1 or null turns one off
):
    # Uncached: the content identities every cache key after it follows (the data, the registry).
    source_task = use_object_store(
        resolve_source(
            source_uri=data_uri,
            model_name=model_name,
            deploy_strategy=deploy_strategy,
            serving_namespace=serving_namespace,
        )
    )
    ingest_task = use_object_store(
        ingest(
            source_uri=data_uri,
            label_column="",
            eval_fraction=0.0,
            source_identity=source_task.outputs["source_identity"],
        )
    )
    baseline_task = use_trusted_model_keys(
        use_object_store(
            resolve_baseline(
                model_name=model_name,
                model_version=model_version,
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
            drift_thresholds=drift_thresholds,
        )
    )
    score_task = use_trusted_model_keys(
        use_object_store(
            score(
                batch=ingest_task.outputs["train_split"],
                baseline=baseline_task.outputs["baseline"],
                anomalies=validate_task.outputs["anomalies"],
                key_column=key_column,
            )
        )
    )
    for task in (source_task, ingest_task, baseline_task, validate_task, score_task):
        configure_task(task)
