"""Names shared across kfkit's library, pipelines and manifests: one place, no string
literals repeated across modules. Component input and output names are declared once, in
each component's kfp signature (``components/<name>/component.py``)."""

import re

from kfkit.errors import KfkitError

PIPELINE_NAME = "kfkit-training"

# A model name is a DNS-1123 label, as Kubernetes and Seldon need for the objects named after it:
# one rule everywhere, checked before anything is written, so two names never share one record.
_MODEL_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def check_model_name(name: str) -> str:
    """``name`` if it is a valid model name; one line saying what is wrong otherwise."""
    if not isinstance(name, str) or not _MODEL_NAME.match(name):
        raise KfkitError(
            f"The 'model_name' parameter must be a DNS-1123 label: 1 to 63 characters of lowercase "
            f"a-z, 0-9 and '-', starting and ending with a letter or digit (e.g. 'penguins'). "
            f"Got {name!r} instead."
        )
    return name


def parse_model_reference(reference: str) -> tuple[str, str]:
    """``NAME`` or ``NAME:VERSION`` -> (name, version, "" when none): the name by the model-name
    rule, the version a pushed version number."""
    name, _, version = reference.partition(":")
    check_model_name(name)
    if version and not (version.isdigit() and version.isascii() and int(version) > 0):
        raise KfkitError(
            f"model {reference}: the version after ':' must be a pushed version number such as "
            f"{name}:2 (or no version for the one serving now)"
        )
    return name, version


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
# The pod label every compiled kfkit task carries, valued with its component ("train"): the
# pipelines namespace's NetworkPolicy (manifests/pipelines/networkpolicy.yaml) selects kfkit's
# task pods by it without touching the other pods of that namespace (KFP's own, in `kubeflow`).
TASK_POD_LABEL = "kfkit.io/component"

# The ServiceAccount runs execute as (manifests/pipelines/serviceaccount.yaml).
PIPELINE_RUNNER_SERVICE_ACCOUNT = "kfkit-pipeline-runner"
