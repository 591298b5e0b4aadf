"""Names shared across kfkit's library, pipelines and manifests: one place, no string
literals repeated across modules. Component input and output names are declared once, in
each component's kfp signature (``components/<name>/component.py``)."""

PIPELINE_NAME = "kfkit-training"

PROBLEM_TYPES = ("classification", "regression")
VALIDATION_POLICIES = ("fail", "warn")

# Where pushed models live in the object store: s3://models/<model-name>/<version>/.
MODELS_BUCKET = "models"
# Companion files train keeps in the model folder (push uploads them beside the model,
# resolve_baseline downloads them): the schema the training data was validated against and
# the TFDV statistics of the train split, what later data is checked for drift against.
SCHEMA_FILE = "schema.pbtxt"
TRAIN_STATISTICS_FILE = "train_statistics.pb"


# The Kubernetes Secret the pipeline's tasks read in a cluster (manifests/pipelines/): the
# object-store credentials in the components' env form. The keys are the env variable names,
# so the map is key -> same name.
OBJECT_STORE_SECRET = "kfkit-object-store"
OBJECT_STORE_SECRET_KEYS = {
    key: key for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "KFKIT_S3_ENDPOINT")
}
# The ServiceAccount runs execute as (manifests/pipelines/serviceaccount.yaml).
PIPELINE_RUNNER_SERVICE_ACCOUNT = "kfkit-pipeline-runner"
