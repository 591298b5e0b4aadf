"""The resolve_baseline component: its kfp declaration. The logic is ``executor.run``."""

from kfp import dsl
from kfp.dsl import Artifact, Output

from kfkit.images import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def resolve_baseline(
    model_name: str,
    baseline: Output[Artifact],
    deploy_strategy: str = "local",
    serving_namespace: str = "kfkit-serving",
    baseline_identity: str = "",
    model_version: str = "",
    task_name: str = dsl.PIPELINE_TASK_NAME_PLACEHOLDER,
):
    """Finds what a new run is compared with: the version of the model serving now (asked of
    the deploy target; else the latest pushed version), with the schema its training data was
    validated against, that data's statistics and the model file.

    Example:
        resolve_baseline(model_name="penguins")

    Outputs:
        baseline: Folder with the version's kfkit-model.json, its companion files (schema.pbtxt,
            train_statistics.pb) and its model file, each verified by sha256; metadata `found`,
            `version`, `uri`, `baseline_source` ("served", or "latest-pushed" when the deploy
            target cannot tell) and `baseline_source_reason`. For a model never pushed,
            `found` is false and the folder is empty.

    Args:
        model_name: The model whose pushed versions are looked up in s3://models/<model_name>/.
        deploy_strategy: push's deploy_strategy, which says which deploy target to ask which
            version serves: "local" the local record, "replace"/"canary"/"shadow" the
            configured target (a cluster's SeldonDeployment), "none" nobody (latest pushed).
        serving_namespace: Namespace the model is served in (push's serving_namespace).
        baseline_identity: What resolve_source resolved this baseline to (the registry folder's
            content and the version serving now): only so that KFP's cache key of this task (and
            of the tasks comparing with its baseline) changes exactly when a version is pushed,
            deployed or rolled back, or the schema reset; not read.
        model_version: A pushed version number ("3") to use instead: that version or a one-line
            error when it was never pushed or is incomplete (the deploy target is not asked).
            Empty: the version serving now, else the latest pushed one.
        task_name: Filled in by the orchestrator (kfp's task-name placeholder); leave unset.
    """
    from kfkit.components.resolve_baseline.executor import run
    from kfkit.runtime import execute

    execute(resolve_baseline, locals(), run)
