"""Baseline's logic: resolve, visibly and as an artifact, what a run is compared with.

Validation used to read a hidden reference schema from ``s3://kfkit/schemas/<model>/``; now the
comparison point is an input like any other: the version of the model that serves now, and the
schema it was trained against, which push keeps beside the model. A user's own pipeline can pass
any artifact in its place.

"Serves now" is asked of the deploy target push deploys to (``deploy_strategy``,
``serving_namespace``: ``kfkit.deploy.served_version``): after a rollback, or during a canary,
it is not the latest pushed version. A target that cannot tell (``none``, a target without
``served_version``, nothing deployed, a cluster out of reach, a served version missing from the
store) leaves the latest pushed version (a version is pushed only when its data and model were
blessed) in its place, and ``baseline_source`` says which of the two it is.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from kfkit import names
from kfkit.errors import KfkitError
from kfkit.model_folder import MANIFEST_FILE
from kfkit.model_registry import download, download_companions, latest_version, version_folder
from kfkit.schemas import read_reset
from kfkit.storage import ObjectStore

if TYPE_CHECKING:
    from kfkit.runtime import Task


SERVED, LATEST_PUSHED, REQUESTED = "served", "latest-pushed", "requested"


def choose_version(
    store: ObjectStore, model_name: str, deploy_strategy: str | None, serving_namespace: str = ""
) -> tuple[str | None, str, str]:
    """(version, ``baseline_source``, how it was found): the version the deploy target serves,
    else the latest pushed one (None: never pushed). ``deploy_strategy`` None: nobody to ask."""
    from kfkit import deploy

    latest = latest_version(store, model_name)
    if latest is None:
        return None, LATEST_PUSHED, f"model {model_name!r} has no pushed version yet: nothing to compare with"
    if deploy_strategy is None:
        return latest, LATEST_PUSHED, "no deploy target given: the latest pushed version stands in"
    served, how = deploy.served_version(model_name, deploy_strategy, serving_namespace)
    if served is not None and not store.exists(version_folder(model_name, served).child(MANIFEST_FILE)):
        served, how = None, f"{how}, which is not a pushed version in {version_folder(model_name, served)}"
    if served is None:
        return latest, LATEST_PUSHED, f"{how}: the latest pushed version {latest} stands in"
    if served != latest:
        how += f" (the latest pushed is {latest})"
    return served, SERVED, how


def find_baseline(
    model_name: str,
    folder: str,
    store: ObjectStore | None = None,
    deploy_strategy: str | None = None,
    serving_namespace: str = "",
    model_version: str = "",
) -> dict[str, Any]:
    """Download the serving version's (see ``choose_version``) manifest, companions and model
    file into ``folder`` (each verified by the sha256 its manifest records: evaluate scores that
    model on the new eval rows); the baseline's metadata (``found`` false when the model was
    never pushed; ``baseline_source`` and ``baseline_source_reason`` say how it was chosen).
    ``model_version``: that pushed version instead (a one-line error if it is not a complete one)."""
    store = store or ObjectStore.from_env()
    Path(folder).mkdir(parents=True, exist_ok=True)
    if model_version:
        check_model_version(model_version)
        version, source, how = model_version, REQUESTED, f"version {model_version} was asked for"
    else:
        version, source, how = choose_version(store, model_name, deploy_strategy, serving_namespace)
    if version is None:
        return {"found": False, "model_name": model_name, "reason": how}
    manifest = download_companions(store, model_name, version, Path(folder))
    download(store, model_name, version, Path(folder))  # the model file, verified by sha256
    found: dict[str, Any] = {}
    reset = read_reset(store, model_name)
    if reset is not None and int(version) <= int(reset["after_version"]):
        # `kfkit schema reset`: new data is not checked against this version's schema and
        # statistics (the model is still what a candidate must not be worse than).
        for name in (names.SCHEMA_FILE, names.TRAIN_STATISTICS_FILE):
            (Path(folder) / name).unlink(missing_ok=True)
        found["schema_reset"] = (
            f"reset after version {reset['after_version']} at {reset['at']} by {reset['by']}"
        )
    return found | {
        "found": True,
        "model_name": model_name,
        "version": version,
        "baseline_source": source,
        "baseline_source_reason": how,
        "uri": str(version_folder(model_name, version)),
        "sha256": manifest.sha256,
        "training_data_fingerprint": manifest.training_data_fingerprint,
        "label_column": manifest.label_column,  # what data to score lacks (validate's SERVING check)
        "run_id": manifest.run_id,
        "files": sorted(manifest.files),
        "model_file": manifest.model_file,
    }


def check_model_version(value: Any) -> None:
    """A pushed version number as text ("3"), or empty (not asked for)."""
    if value in ("", None):
        return
    if not isinstance(value, str) or not value.isdigit() or not value.isascii() or int(value) < 1:
        raise KfkitError(
            f"The 'model_version' parameter of resolve_baseline must be a pushed version number such as "
            f"'2', or empty for the version serving now. Got {value!r} instead."
        )


def check(params: dict[str, Any]) -> None:
    """The parameters alone, before any task runs."""
    from kfkit.deploy import check_deploy_strategy

    if "model_name" in params:
        names.check_model_name(params["model_name"])
    check_model_version(params.get("model_version"))
    if params.get("deploy_strategy") is not None:
        check_deploy_strategy(params["deploy_strategy"], "resolve_baseline")


def run(task: Task) -> None:
    out, p = task.outputs["baseline"], task.params
    out.metadata.update(
        find_baseline(
            p["model_name"],
            out.path,
            deploy_strategy=p.get("deploy_strategy"),
            serving_namespace=p.get("serving_namespace") or "",
            model_version=p.get("model_version") or "",
        )
    )
    if out.metadata["found"]:
        sources = {SERVED: "serving now", REQUESTED: "as asked"}
        source = sources.get(out.metadata["baseline_source"], "latest pushed")
        task.say(
            f"compares with {p['model_name']} version {out.metadata['version']} ({source}: "
            f"{out.metadata['baseline_source_reason']})"
        )
        if out.metadata.get("schema_reset"):
            task.say(f"its schema and statistics are not used: {out.metadata['schema_reset']}")
    else:
        task.say(out.metadata["reason"])
