"""The resolve_baseline component: its kfp declaration. The logic is ``executor.run``."""

from kfp import dsl
from kfp.dsl import Artifact, Output

from kfkit.images import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def resolve_baseline(
    model_name: str,
    baseline: Output[Artifact],
    registry_identity: str = "",
    task_name: str = dsl.PIPELINE_TASK_NAME_PLACEHOLDER,
):
    """Finds what a new run is compared with: the latest pushed version of the model, with
    the schema its training data was validated against, that data's statistics and the model file.

    Example:
        resolve_baseline(model_name="penguins")

    Outputs:
        baseline: Folder with the version's kfkit-model.json, its companion files (schema.pbtxt,
            train_statistics.pb) and its model file, each verified by sha256; metadata `found`,
            `version`, `uri`. For a model never pushed,
            `found` is false and the folder is empty.

    Args:
        model_name: The model whose pushed versions are looked up in s3://models/<model_name>/.
        registry_identity: The registry folder's content identity from resolve_source: only so
            that KFP's cache key of this task (and of the tasks comparing with its baseline)
            changes exactly when a version is pushed or the schema reset; not read.
        task_name: Filled in by the orchestrator (kfp's task-name placeholder); leave unset.
    """
    from kfkit.components.resolve_baseline.executor import run
    from kfkit.runtime import execute

    execute(resolve_baseline, locals(), run)
