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
):
    """Pushes a blessed model to s3://models/<model_name>/<version>/ and emits its
    SeldonDeployment. An unblessed model is not pushed and the task says why.

    Example:
        push(model=..., blessing=..., model_name="penguins")

    Outputs:
        pushed_model: metadata `pushed`, `version`, `pushed_uri`, `sha256`.
        seldon_deployment: SeldonDeployment YAML that serves the pushed version.

    Args:
        model_name: Folder in the models bucket; versions count up from 1, never overwritten.
        serving_namespace: Namespace written into the SeldonDeployment.
    """
    from kfkit.executors import run_push

    run_push(model, blessing, model_name, serving_namespace, pushed_model, seldon_deployment)
