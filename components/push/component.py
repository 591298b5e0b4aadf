"""The push component: its kfp declaration. The logic is ``executor.run``."""

from kfp import dsl
from kfp.dsl import Artifact, Input, Model, Output

from kfkit.images import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def push(
    model: Input[Model],
    blessing: Input[Artifact],
    model_name: str,
    pushed_model: Output[Model],
    deployment: Output[Artifact],
    serving_namespace: str = "kfkit-serving",
    deploy_strategy: str = "local",
    canary_traffic: int = 10,
    deploy_timeout: int = 600,
    serving_replicas: int = 1,
    serving_resources: dict = {},  # noqa: B006 - kfp defaults are values, not objects
    task_name: str = dsl.PIPELINE_TASK_NAME_PLACEHOLDER,
):
    """Pushes a blessed model to s3://models/<model_name>/<version>/ and hands it to a deploy
    target. An unblessed model is not pushed and the task says why.

    Example:
        push(model=..., blessing=..., model_name="penguins", deploy_strategy="canary")

    Outputs:
        pushed_model: metadata `pushed`, `version`, `pushed_uri`, `sha256`, `deployed`,
            `deploy_target`, `deploy_strategy`, `deploy_state`, `deploy_predictors`.
        deployment: The deploy target's manifest for the pushed version (a SeldonDeployment
            for Seldon Core), as YAML.

    Args:
        model: The trained model folder (from train).
        blessing: The gate: pushes only if its metadata says `blessed`.
        model_name: Folder in the models bucket; versions count up from 1, never overwritten.
        serving_namespace: Namespace the model is served in.
        deploy_strategy: "local" (record for `kfkit serve`, no cluster), "none", or
            "replace"/"canary"/"shadow" to the configured cluster (in-cluster or kubeconfig;
            with none configured, a local record). A failed rollout is rolled back.
        canary_traffic: Percent of requests the canary gets (1..99).
        deploy_timeout: Seconds to wait for the deployment to become available.
        serving_replicas: Replicas of the version rolled out (1..100); during a canary the
            serving version keeps its own.
        serving_resources: The model container's `cpu_request`, `cpu_limit`, `memory_request`,
            `memory_limit` (Kubernetes quantities, e.g. `{"memory_limit": "1Gi"}`); none by default.
        task_name: Filled in by the orchestrator (kfp's task-name placeholder); leave unset.
    """
    from kfkit.components.push.executor import run
    from kfkit.runtime import execute

    execute(push, locals(), run, gates=("blessing",))
