"""kfkit push component: declaration only; the work is kfkit.executors.run_push."""

from kfp import dsl
from kfp.dsl import Artifact, Input, Model, Output

from kfkit.images import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def push(
    model: Input[Model],
    blessing: Input[Artifact],
    model_name: str,
    pushed_model: Output[Model],
    seldon_deployment: Output[Artifact],
    serving_namespace: str = "kfkit-serving",
    deploy_strategy: str = "local",
    canary_traffic: int = 10,
    deploy_timeout: int = 600,
):
    """Pushes a blessed model to s3://models/<model_name>/<version>/, emits its
    SeldonDeployment and deploys it. An unblessed model is not pushed and the task says why.

    Example:
        push(model=..., blessing=..., model_name="penguins", deploy_strategy="canary")

    Outputs:
        pushed_model: metadata `pushed`, `version`, `pushed_uri`, `sha256`, `deployed`,
            `deploy_target`, `deploy_strategy`, `deploy_state`, `deploy_predictors`.
        seldon_deployment: SeldonDeployment YAML that serves the pushed version.

    Args:
        model_name: Folder in the models bucket; versions count up from 1, never overwritten.
        serving_namespace: Namespace of the SeldonDeployment.
        deploy_strategy: "local" (record for `kfkit serve`, no cluster), "none", or
            "replace"/"canary"/"shadow" to the configured cluster (in-cluster or kubeconfig;
            with none configured, a local record). A failed rollout is rolled back.
        canary_traffic: Percent of requests the canary gets (1..99).
        deploy_timeout: Seconds to wait for the SeldonDeployment to become Available.
    """
    from kfkit.executors import run_push

    run_push(
        model,
        blessing,
        model_name,
        serving_namespace,
        pushed_model,
        seldon_deployment,
        deploy_strategy=deploy_strategy,
        canary_traffic=canary_traffic,
        deploy_timeout=deploy_timeout,
    )
