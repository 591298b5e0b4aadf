"""Baseline's logic: resolve, visibly and as an artifact, what a run is compared with.

Validation used to read a hidden reference schema from ``s3://kfkit/schemas/<model>/``; now the
comparison point is an input like any other: the latest pushed version of the model (a version
is pushed only when its data and model were blessed) and the schema it was trained against,
which push keeps beside the model. A user's own pipeline can pass any artifact in its place.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from kfkit import names
from kfkit.model_registry import download, download_companions, latest_version, version_folder
from kfkit.schemas import read_reset
from kfkit.storage import ObjectStore

if TYPE_CHECKING:
    from kfkit.runtime import Task


def find_baseline(model_name: str, folder: str, store: ObjectStore | None = None) -> dict[str, Any]:
    """Download the latest pushed version's manifest, companions and model file into ``folder``
    (each verified by the sha256 its manifest records: evaluate scores that model on the new
    eval rows); the baseline's metadata (``found`` false when the model was never pushed)."""
    store = store or ObjectStore.from_env()
    Path(folder).mkdir(parents=True, exist_ok=True)
    version = latest_version(store, model_name)
    if version is None:
        return {
            "found": False,
            "model_name": model_name,
            "reason": f"model {model_name!r} has no pushed version yet: nothing to compare with",
        }
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
        "uri": str(version_folder(model_name, version)),
        "sha256": manifest.sha256,
        "training_data_fingerprint": manifest.training_data_fingerprint,
        "run_id": manifest.run_id,
        "files": sorted(manifest.files),
        "model_file": manifest.model_file,
    }


def check(params: dict[str, Any]) -> None:
    """The parameters alone, before any task runs."""
    if "model_name" in params:
        names.check_model_name(params["model_name"])


def run(task: Task) -> None:
    out = task.outputs["baseline"]
    out.metadata.update(find_baseline(task.params["model_name"], out.path))
    if out.metadata["found"]:
        task.say(f"compares with {task.params['model_name']} version {out.metadata['version']}")
        if out.metadata.get("schema_reset"):
            task.say(f"its schema and statistics are not used: {out.metadata['schema_reset']}")
    else:
        task.say(out.metadata["reason"])
