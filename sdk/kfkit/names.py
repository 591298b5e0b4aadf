"""Names shared by components, the pipeline and the local runner: one place, no string
literals repeated across modules (TFX keeps its standard_component_specs the same way)."""

PIPELINE_NAME = "kfkit-training"

# Task names in the training pipeline (kfp derives them from the component function names).
INGEST = "ingest"
VALIDATE = "validate"
TRAIN = "train"
EVALUATE = "evaluate"
PUSH = "push"
TASKS = (INGEST, VALIDATE, TRAIN, EVALUATE, PUSH)

# Output artifact names.
TRAIN_SPLIT = "train_split"
EVAL_SPLIT = "eval_split"
STATISTICS = "statistics"
SCHEMA = "schema"
ANOMALIES = "anomalies"
VALIDATION_REPORT = "report"
MODEL = "model"
METRICS = "metrics"
CLASSIFICATION_METRICS = "classification_metrics"
BLESSING = "blessing"
PUSHED_MODEL = "pushed_model"
SELDON_DEPLOYMENT = "seldon_deployment"

PROBLEM_TYPES = ("classification", "regression")
VALIDATION_POLICIES = ("fail", "warn")

# Buckets and layout in the object store.
MODELS_BUCKET = "models"
KFKIT_BUCKET = "kfkit"


def schema_uri_for(model_name: str) -> str:
    """Where the reference schema learned on a model's first run is kept."""
    return f"s3://{KFKIT_BUCKET}/schemas/{model_name}/schema.pbtxt"


# Kubernetes objects the pipeline reads in a cluster (manifests/pipelines/): the Secret with
# the object-store credentials in the components' env form, and kfkit's settings ConfigMap.
# The keys are the env variable names, so each map is key -> same name.
OBJECT_STORE_SECRET = "kfkit-object-store"
OBJECT_STORE_SECRET_KEYS = {
    key: key for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "KFKIT_S3_ENDPOINT")
}
SETTINGS_CONFIG_MAP = "kfkit-settings"
SETTINGS_CONFIG_MAP_KEYS = {
    key: key for key in ("KFKIT_MLMD_GRPC_HOST", "KFKIT_MLMD_GRPC_PORT", "KFKIT_SERVING_NAMESPACE")
}
# The ServiceAccount runs execute as (manifests/pipelines/serviceaccount.yaml).
PIPELINE_RUNNER_SERVICE_ACCOUNT = "kfkit-pipeline-runner"
