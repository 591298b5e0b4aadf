"""The resolve_source component: its kfp declaration. The logic is ``executor.run``."""

from kfp import dsl

from kfkit.images import BASE_IMAGE


@dsl.component(base_image=BASE_IMAGE, install_kfp_package=False)
def resolve_source(
    source_uri: str,
    source_identity: dsl.OutputPath(str),
    baseline_identity: dsl.OutputPath(str),
    schema_identity: dsl.OutputPath(str),
    model_name: str = "",
    deploy_strategy: str = "local",
    serving_namespace: str = "kfkit-serving",
    schema_uri: str = "",
    task_name: str = dsl.PIPELINE_TASK_NAME_PLACEHOLDER,
):
    """Resolves a run's live inputs to content identities, one string each, without reading the
    data: the source ingest will read, what resolve_baseline will read (the model's pushed
    versions and the version serving now) and validate's curated schema. Run it with caching
    off: its outputs are what the cache keys of the tasks after it follow (KFP keys a task on its
    input parameters' values).

    Example:
        resolve_source(source_uri="s3://raw/penguins/", model_name="penguins", deploy_strategy="auto")

    Outputs:
        source_identity: `sha256:<hex>` over each CSV/Parquet file's name and content tag (an
            object's etag, a local file's sha256): pass it to ingest.
        baseline_identity: `sha256:<hex>` over every object under s3://models/<model_name>/
            (pushed versions, schema resets) and the version the deploy target serves, or
            `none` when nothing was pushed: pass it to resolve_baseline.
        schema_identity: `sha256:<hex>` over the curated schema's URI and content tag (etag or
            sha256), or `none` without `schema_uri`: pass it to validate.

    Args:
        source_uri: s3:// or minio:// object or prefix, or a local file or folder path: the
            files ingest reads (the same selection).
        model_name: The model whose registry folder is resolved; empty: none
            (`baseline_identity` is `none`).
        deploy_strategy: push's deploy_strategy: which deploy target to ask which version
            serves, as resolve_baseline asks it.
        serving_namespace: Namespace the model is served in (push's serving_namespace).
        schema_uri: validate's curated schema (s3:// or local pbtxt), if any.
        task_name: Filled in by the orchestrator (kfp's task-name placeholder); leave unset.
    """
    from kfkit.components.resolve_source.executor import run
    from kfkit.runtime import execute

    execute(resolve_source, locals(), run)
