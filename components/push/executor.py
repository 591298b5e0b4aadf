"""Push's logic: copy a blessed model folder to ``s3://models/<model-name>/<version>/``,
verify the upload by sha256, and hand the pushed version to a deploy target
(:mod:`kfkit.deploy`: which target serves it is not push's business).

Versions are integers counted up from 1 and never overwritten: a push first claims its
version by creating ``kfkit-claim.json`` only if absent (atomic in the store, so concurrent
pushes get distinct versions), ``kfkit-model.json`` is written last and marks a version
complete, and a version whose folder holds anything is never written to again.

The order is what makes a crash at any point safe: claim, upload every file, write the
manifest (readers ignore a version without it), record the pushed version in the lineage, and
only then hand it to the deploy target. A push killed before the manifest leaves an incomplete
folder that no reader uses and `kfkit store gc` removes; one killed later leaves a whole version
that is recorded before anything serves it.

``KFKIT_TEST_PAUSE_AT=<point>`` is a test hook, read only by the crash tests: push prints
``paused at <point>`` and waits there so that the test can kill it with SIGKILL. The points, in
order: ``claimed``, ``uploaded`` (every file but the manifest), ``complete``, ``recorded``
(lineage written, nothing deployed), ``deployed``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kfkit import names
from kfkit.errors import KfkitError
from kfkit.model_folder import MANIFEST_FILE, SIGNATURE_FILE, ModelManifest, sha256_bytes, verify_model_file
from kfkit.model_registry import CLAIM_FILE, claim_record, existing_versions, version_folder
from kfkit.storage import ObjectStore

if TYPE_CHECKING:
    from kfkit.runtime import Task

PAUSE_ENV = "KFKIT_TEST_PAUSE_AT"  # test hook: see the module docstring
PAUSE_POINTS = ("claimed", "uploaded", "complete", "recorded", "deployed")


def _pause_for_tests(point: str) -> None:
    """Stop at ``point`` until killed when the crash tests ask for it (never set otherwise)."""
    if os.environ.get(PAUSE_ENV) == point:
        print(f"kfkit push: paused at {point} ({PAUSE_ENV})", file=sys.stderr, flush=True)
        time.sleep(3600)


@dataclass
class PushResult:
    version: str
    uri: str
    sha256: str


def push(
    model_dir: str,
    model_name: str,
    store: ObjectStore | None = None,
    max_attempts: int = 5,
) -> PushResult:
    names.check_model_name(model_name)  # before anything is read or written
    store = store or ObjectStore.from_env()
    manifest = ModelManifest.read(model_dir)
    if manifest.model_name != model_name:
        raise KfkitError(f"{model_dir}: model was trained as '{manifest.model_name}', not '{model_name}'")
    model_bytes = verify_model_file(model_dir, manifest).read_bytes()
    companions = {}  # the model's companion files, verified like the model before anything is written
    for name, digest in manifest.files.items():
        companions[name] = (Path(model_dir) / name).read_bytes()
        if sha256_bytes(companions[name]) != digest:
            raise KfkitError(f"{model_dir}/{name}: sha256 does not match {MANIFEST_FILE}; nothing pushed")
    signature_path = Path(model_dir) / SIGNATURE_FILE  # travels with the version: readers verify it
    if not signature_path.is_file():
        raise KfkitError(f"{signature_path}: model is not signed; nothing pushed")
    signature = signature_path.read_bytes()
    manifest_bytes = (Path(model_dir) / MANIFEST_FILE).read_bytes()  # the exact bytes it signs
    if ModelManifest.from_dict(json.loads(manifest_bytes)) != manifest:
        raise KfkitError(f"{model_dir}/{MANIFEST_FILE}: changed while being pushed; nothing pushed")
    store.ensure_bucket(names.MODELS_BUCKET)

    for _ in range(max_attempts):
        version = str((existing_versions(store, model_name) or [0])[-1] + 1)
        folder = version_folder(model_name, version)
        if store.list(folder):
            continue  # another push took this version in the meantime: never overwrite
        # Claim the version atomically: of two pushes racing for it, exactly one creates the
        # claim; the other moves on to the next number.
        claim = json.dumps(claim_record(manifest.run_id, manifest.sha256)).encode()
        if not store.create_bytes(folder.child(CLAIM_FILE), claim, "application/json"):
            continue
        _pause_for_tests("claimed")
        model_uri = folder.child(manifest.model_file)
        store.put_bytes(model_uri, model_bytes)
        uploaded = sha256_bytes(store.get_bytes(model_uri))
        if uploaded != manifest.sha256:
            raise KfkitError(
                f"{model_uri}: uploaded bytes have sha256 {uploaded[:12]}..., expected "
                f"{manifest.sha256[:12]}...; version {version} left incomplete (no {MANIFEST_FILE})"
            )
        for name, data in companions.items():
            store.put_bytes(folder.child(name), data)
        store.put_bytes(folder.child(SIGNATURE_FILE), signature, "application/json")
        _pause_for_tests("uploaded")
        # Written last: a version folder without it is an interrupted push, not a model.
        store.put_bytes(folder.child(MANIFEST_FILE), manifest_bytes, "application/json")
        return PushResult(version, str(folder), manifest.sha256)
    raise KfkitError(f"s3://models/{model_name}/: could not claim a new version after {max_attempts} tries")


def check(params: dict) -> None:
    """The parameters alone, before any task runs."""
    from kfkit import deploy
    from kfkit.deploy.request import check_canary_traffic, check_serving_size

    if "model_name" in params:
        names.check_model_name(params["model_name"])
    if "deploy_strategy" in params:
        deploy.check_deploy_strategy(params["deploy_strategy"])
        if params["deploy_strategy"] == "canary" and "canary_traffic" in params:
            check_canary_traffic(params["canary_traffic"])
    if "serving_replicas" in params or "serving_resources" in params:
        check_serving_size(params.get("serving_replicas", 1), params.get("serving_resources", {}))


def unchanged_version(manifest: ModelManifest, model_name: str, store: ObjectStore) -> str | None:
    """The latest pushed version if it is this very model (same sha256, or same data,
    parameters and code), else None: pushing it again would only add a copy."""
    from kfkit.model_registry import latest_version

    version = latest_version(store, model_name)
    if version is None:
        return None
    pushed = ModelManifest.from_dict(
        json.loads(store.get_bytes(version_folder(model_name, version).child(MANIFEST_FILE)))
    )
    same = pushed.sha256 == manifest.sha256 or pushed.training_identity() == manifest.training_identity()
    return version if same else None


def run(task: Task) -> None:
    import yaml

    from kfkit import deploy
    from kfkit.deploy.request import check_canary_traffic, check_serving_size
    from kfkit.runtime import write_record

    p, model = task.params, task.inputs["model"]
    names.check_model_name(p["model_name"])
    strategy = p["deploy_strategy"]
    # Checked before anything is pushed: the strategy and the canary's share.
    deploy.check_deploy_strategy(strategy)
    if strategy == "canary":
        check_canary_traffic(p["canary_traffic"])
    check_serving_size(p["serving_replicas"], p["serving_resources"])
    store = ObjectStore.from_env()
    serving = unchanged_version(ModelManifest.read(model.path), p["model_name"], store)
    if serving is not None:
        # Same model as the latest version: nothing to push. Whether that version serves is the
        # deploy target's to say: after a rollback (or a push killed before its deploy) it does
        # not, and deploying it again here would undo someone's decision, so say so instead.
        served, how = deploy.served_version(p["model_name"], strategy, p["serving_namespace"])
        record = {
            "pushed": False,
            "unchanged": True,
            "model_name": p["model_name"],
            "version": serving,
            "serves": served == serving,
            "served_version": served or "",
        }
        write_record(task.outputs["pushed_model"], record, "kfkit-push.json")
        task.outputs["pushed_model"].metadata.update(record)
        write_record(task.outputs["deployment"], record, "kfkit-push.json")
        task.outputs["deployment"].metadata.update(record)
        same = f"unchanged: same data, parameters and code as version {serving}"
        if served == serving:
            task.say(f"{same}, which serves; nothing pushed")
        else:
            task.say(f"{same}; nothing pushed or deployed, and it does not serve ({how})")
        return
    result = push(model.path, p["model_name"], store=store)
    _pause_for_tests("complete")
    record = {
        "pushed": True,
        "model_name": p["model_name"],
        "version": result.version,
        "pushed_uri": result.uri,
        "sha256": result.sha256,
        "dataset_fingerprint": model.metadata.get("training_data_fingerprint", ""),
    }
    pushed_model = task.outputs["pushed_model"]
    write_record(pushed_model, record, "kfkit-push.json")  # the model itself lives at the URI
    pushed_model.metadata.update(record)
    # Lineage before deployment: a version that serves is always one the lineage knows.
    task.record_outputs("pushed_model")
    task.say(f"pushed {p['model_name']} version {result.version} to {result.uri}")
    _pause_for_tests("recorded")
    request = deploy.DeploymentRequest(
        model_name=p["model_name"],
        version=result.version,
        model_uri=result.uri.rstrip("/"),
        sha256=result.sha256,
        traffic=p["canary_traffic"],
        namespace=p["serving_namespace"],
        replicas=p["serving_replicas"],
        resources=p["serving_resources"],
    )
    # The manifest of the target the strategy deploys to (the local record for `local`).
    target = deploy.LOCAL if strategy == deploy.LOCAL else None
    deployment = task.outputs["deployment"]
    Path(deployment.path).parent.mkdir(parents=True, exist_ok=True)
    Path(deployment.path).write_text(yaml.safe_dump(deploy.manifest(request, target), sort_keys=False))
    deployment.metadata.update(
        {"model_name": p["model_name"], "version": result.version, "namespace": p["serving_namespace"]}
    )
    pushed_model.metadata.update(
        deploy.deploy(request, strategy, timeout=p["deploy_timeout"], progress=task.say)
    )
    _pause_for_tests("deployed")
