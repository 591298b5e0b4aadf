"""Push: copy a blessed model folder to ``s3://models/<model-name>/<version>/``, verify the
upload by sha256, build the SeldonDeployment that serves it, and deploy it (``deploy``).

Versions are integers counted up from 1 and never overwritten: a push first claims its
version by creating ``kfkit-claim.json`` only if absent (atomic in the store, so concurrent
pushes get distinct versions), ``kfkit-model.json`` is written last and marks a version
complete, and a version whose folder holds anything is never written to again.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kfkit import names
from kfkit.deploy.seldon import seldon_deployment
from kfkit.errors import KfkitError
from kfkit.model_folder import MANIFEST_FILE, ModelManifest, sha256_bytes, verify_model_file
from kfkit.model_registry import existing_versions, version_folder
from kfkit.storage import ObjectStore

CLAIM_FILE = "kfkit-claim.json"  # first object of a version folder, created only if absent


@dataclass
class PushResult:
    version: str
    uri: str
    sha256: str
    deployment: dict[str, Any]


def push(
    model_dir: str,
    model_name: str,
    store: ObjectStore | None = None,
    namespace: str = "kfkit-serving",
    max_attempts: int = 5,
) -> PushResult:
    store = store or ObjectStore.from_env()
    manifest = ModelManifest.read(model_dir)
    if manifest.model_name != model_name:
        raise KfkitError(f"{model_dir}: model was trained as '{manifest.model_name}', not '{model_name}'")
    model_bytes = verify_model_file(model_dir, manifest).read_bytes()
    store.ensure_bucket(names.MODELS_BUCKET)

    for _ in range(max_attempts):
        version = str((existing_versions(store, model_name) or [0])[-1] + 1)
        folder = version_folder(model_name, version)
        if store.list(folder):
            continue  # another push took this version in the meantime: never overwrite
        # Claim the version atomically: of two pushes racing for it, exactly one creates the
        # claim; the other moves on to the next number.
        claim = json.dumps({"run_id": manifest.run_id, "sha256": manifest.sha256}).encode()
        if not store.create_bytes(folder.child(CLAIM_FILE), claim, "application/json"):
            continue
        model_uri = folder.child(manifest.model_file)
        store.put_bytes(model_uri, model_bytes)
        uploaded = sha256_bytes(store.get_bytes(model_uri))
        if uploaded != manifest.sha256:
            raise KfkitError(
                f"{model_uri}: uploaded bytes have sha256 {uploaded[:12]}..., expected "
                f"{manifest.sha256[:12]}...; version {version} left incomplete (no {MANIFEST_FILE})"
            )
        # Written last: a version folder without it is an interrupted push, not a model.
        store.put_bytes(folder.child(MANIFEST_FILE), manifest.to_json().encode(), "application/json")
        deployment = seldon_deployment(model_name, version, str(folder).rstrip("/"), namespace)
        return PushResult(version, str(folder), manifest.sha256, deployment)
    raise KfkitError(f"s3://models/{model_name}/: could not claim a new version after {max_attempts} tries")


def write_deployment(deployment: dict[str, Any], path: str) -> None:
    import yaml

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(yaml.safe_dump(deployment, sort_keys=False))


def write_record(path: str, record: dict[str, Any], file_name: str = "kfkit-push.json") -> None:
    """A small JSON file as an artifact's content: KFP's launcher uploads every output, so
    each must exist even when it only records what happened."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / file_name).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")


def write_skipped(path: str, reason: str) -> None:
    write_record(path, {"skipped": True, "reason": reason}, "kfkit-skipped.json")


LOCAL = "local"
NONE = "none"
DEPLOY_STRATEGIES = (LOCAL, NONE, "replace", "canary", "shadow")


def check_deploy_strategy(strategy: str) -> None:
    """Checked before anything is pushed, in scikit-learn's one shape of parameter error."""
    if strategy not in DEPLOY_STRATEGIES:
        raise KfkitError(
            f"The 'deploy_strategy' parameter of push must be one of "
            f"{', '.join(repr(s) for s in DEPLOY_STRATEGIES)}. Got {strategy!r} instead."
        )


def deploy(
    result: PushResult,
    model_name: str,
    strategy: str,
    namespace: str = "kfkit-serving",
    canary_traffic: int = 10,
    timeout: float = 600.0,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Deploy a pushed version; a small record of where it went and how.

    ``none``: nothing deployed. ``local``: a local deployment record (what ``kfkit serve``
    serves), never a cluster. ``replace``/``canary``/``shadow``: the SeldonDeployment in the
    configured cluster (in-cluster service account or kubeconfig), waiting until Available and
    rolled back automatically otherwise; with no cluster configured, a local record with the
    same strategy.
    """
    from kfkit.deploy.target import Rollout, cluster_config, get_target

    check_deploy_strategy(strategy)
    if strategy == NONE:
        return {"deployed": False, "deploy_target": NONE}
    say = progress or (lambda line: None)
    config = None if strategy == LOCAL else cluster_config()
    if strategy != LOCAL and config is None:
        say(f"no Kubernetes cluster configured (no in-cluster service account, no kubeconfig): "
            f"recording a local {strategy} deployment instead")  # fmt: skip
    rollout = Rollout(
        model_name=model_name,
        version=result.version,
        model_uri=result.uri.rstrip("/"),
        sha256=result.sha256,
        strategy="replace" if strategy == LOCAL else strategy,
        traffic=canary_traffic,
    )
    target = get_target(namespace, progress=say, config=config)
    state = target.apply(rollout, timeout)
    return {
        "deployed": True,
        "deploy_target": "local" if config is None else "seldon",
        "deploy_strategy": rollout.strategy,
        "deploy_state": state.get("state"),
        "deploy_predictors": json.dumps(state.get("predictors", []), sort_keys=True),
    }
