"""Pushed models in the object store: ``s3://models/<model-name>/<version>/``.

A version is complete when its ``kfkit-model.json`` exists (push writes it last, after the
model, its companions and its signature ``kfkit-model.sig``). Every reader here
(:func:`latest_version`, :func:`resolve`, :func:`download`, :func:`download_companions`) ignores
or refuses a version without it: a push killed half-way is never served, never a baseline.
:func:`incomplete_versions` finds those leftovers for ``kfkit store gc``. Every download verifies
the signature against the trusted keys before it fetches anything else.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from kfkit import names, signing
from kfkit.errors import KfkitError
from kfkit.model_folder import (
    MANIFEST_FILE,
    SIGNATURE_FILE,
    ModelManifest,
    sha256_bytes,
    verified_manifest,
    verify_model_file,
)
from kfkit.storage import ObjectInfo, ObjectStore, ObjectUri

CLAIM_FILE = "kfkit-claim.json"  # first object of a version folder, created only if absent
# An incomplete version claimed by a process this machine cannot check (another machine, a pod)
# is only a leftover once its push has had this long to finish.
CLAIM_GRACE_SECONDS = 3600.0
REMOVED_FILE = "kfkit-removed.json"  # what `kfkit store gc` leaves of an incomplete version


def claim_record(run_id: str, sha256: str) -> dict:
    """What a push writes in its claim: whose it is, so gc can tell a live push from a dead one."""
    return {"run_id": run_id, "sha256": sha256, "host": socket.gethostname(), "pid": os.getpid(),
            "claimed_at": time.time()}  # fmt: skip


def version_folder(model_name: str, version: str | int) -> ObjectUri:
    # Every object path of a model is built here: the name rule keeps `..`, `/` and the like out.
    return ObjectUri(names.MODELS_BUCKET, f"{names.check_model_name(model_name)}/{version}/")


def existing_versions(store: ObjectStore, model_name: str) -> list[int]:
    """Every version number that has a folder, complete or not (never to be reused)."""
    prefix = ObjectUri(names.MODELS_BUCKET, f"{names.check_model_name(model_name)}/")
    return sorted(int(p) for p in store.list_prefixes(prefix) if p.isdigit())


def latest_version(store: ObjectStore, model_name: str) -> str | None:
    """The newest complete pushed version of a model, or None (none yet, or no models bucket)."""
    if not store.bucket_exists(names.MODELS_BUCKET):
        return None
    for candidate in reversed(existing_versions(store, model_name)):
        if store.exists(version_folder(model_name, candidate).child(MANIFEST_FILE)):
            return str(candidate)
    return None


def _require_complete(store: ObjectStore, model_name: str, version: str) -> ObjectUri:
    folder = version_folder(model_name, version)
    if not store.exists(folder.child(MANIFEST_FILE)):
        if store.list(folder):
            raise KfkitError(
                f"model {model_name} version {version} is incomplete (no {MANIFEST_FILE}): an interrupted "
                "push, never served; `kfkit store gc` lists it"
            )
        raise KfkitError(f"model {model_name} has no pushed version {version}")
    return folder


def resolve(store: ObjectStore, reference: str) -> tuple[str, str]:
    """``name`` or ``name:version`` -> (name, version); no version means the latest complete."""
    name, _, version = reference.partition(":")
    if version:
        _require_complete(store, name, version)
        return name, version
    latest = latest_version(store, name)
    if latest is None:
        raise KfkitError(f"model {name} has no pushed version in s3://{names.MODELS_BUCKET}/{name}/")
    return name, latest


def _fetch_verified_manifest(store: ObjectStore, folder: ObjectUri, target: Path) -> ModelManifest:
    """Fetch a version's manifest and signature, verify the signature against the trusted keys
    (before anything else of the version is fetched), and keep both in ``target``."""
    manifest_bytes = store.get_bytes(folder.child(MANIFEST_FILE))
    signature_uri = folder.child(SIGNATURE_FILE)
    signature = store.get_bytes(signature_uri) if store.exists(signature_uri) else None
    signing.verify_signature(manifest_bytes, signature, str(folder))
    target.mkdir(parents=True, exist_ok=True)
    (target / MANIFEST_FILE).write_bytes(manifest_bytes)
    if signature is not None:  # always, once verified
        (target / SIGNATURE_FILE).write_bytes(signature)
    return verified_manifest(target)


def download(store: ObjectStore, model_name: str, version: str, target: Path) -> Path:
    """Copy a pushed version to a local folder: its signature verified against the trusted keys,
    then the model's sha256 against its manifest."""
    folder = _require_complete(store, model_name, version)
    manifest = _fetch_verified_manifest(store, folder, target)
    (target / manifest.model_file).write_bytes(store.get_bytes(folder.child(manifest.model_file)))
    verify_model_file(target, manifest)
    return target


def download_companions(store: ObjectStore, model_name: str, version: str, target: Path) -> ModelManifest:
    """Copy a pushed version's manifest, signature and companion files (not the model) to a local
    folder: the signature verified first, then each file against the sha256 its manifest records."""
    folder = _require_complete(store, model_name, version)
    manifest = _fetch_verified_manifest(store, folder, target)
    for name, digest in manifest.files.items():
        data = store.get_bytes(folder.child(name))
        if sha256_bytes(data) != digest:
            raise KfkitError(f"{folder.child(name)}: sha256 does not match the version's {MANIFEST_FILE}")
        (target / name).write_bytes(data)
    return manifest


@dataclass
class IncompleteVersion:
    """A claimed version folder without its manifest, and whether its push is certainly over."""

    model_name: str
    version: str
    uri: str
    objects: list[ObjectInfo]
    stale: bool  # the push that claimed it is dead (or past the grace period): safe to remove
    why: str


def _claim_state(store: ObjectStore, folder: ObjectUri, now: float, grace: float) -> tuple[bool, str]:
    try:
        claim = json.loads(store.get_bytes(folder.child(CLAIM_FILE)))
    except (KfkitError, ValueError):
        return True, "no readable claim"
    from kfkit.local_store import pid_alive

    pid, host = int(claim.get("pid") or 0), claim.get("host")
    age = now - float(claim.get("claimed_at") or 0)
    if host == socket.gethostname() and pid:
        if pid_alive(pid):
            return False, f"push still running (pid {pid})"
        return True, f"the push (pid {pid}, run {claim.get('run_id') or '?'}) is gone"
    if age >= grace:
        return True, f"claimed {age / 3600:.1f} h ago by run {claim.get('run_id') or '?'}"
    return False, f"claimed {age:.0f} s ago by {host or 'an unknown machine'}: may still be running"


def incomplete_versions(
    store: ObjectStore, grace_seconds: float = CLAIM_GRACE_SECONDS
) -> list[IncompleteVersion]:
    """Every version folder of every model that has no manifest, oldest model and version first."""
    if not store.bucket_exists(names.MODELS_BUCKET):
        return []
    found, now = [], time.time()
    for model_name in store.list_prefixes(ObjectUri(names.MODELS_BUCKET, "")):
        try:
            names.check_model_name(model_name)
        except KfkitError:
            continue  # not a folder push writes
        for version in existing_versions(store, model_name):
            folder = version_folder(model_name, version)
            objects = store.list(folder)
            kept = {info.uri.rsplit("/", 1)[-1] for info in objects}
            if MANIFEST_FILE in kept or kept == {REMOVED_FILE}:
                continue  # complete, or already collected
            stale, why = _claim_state(store, folder, now, grace_seconds)
            found.append(IncompleteVersion(model_name, str(version), str(folder), objects, stale, why))
    return found


def remove_incomplete(store: ObjectStore, leftover: IncompleteVersion) -> None:
    """Replace an incomplete version's objects by one small tombstone: the number stays taken
    (push never reuses a version number, and a claim could still be read by a slow push), the
    bytes go. Written first, so an interrupted gc leaves a folder that still counts as claimed."""
    tombstone = version_folder(leftover.model_name, leftover.version).child(REMOVED_FILE)
    record = {"removed_at": time.time(), "why": leftover.why, "objects": [i.uri for i in leftover.objects]}
    store.put_bytes(tombstone, json.dumps(record).encode(), "application/json")
    for info in leftover.objects:
        if info.uri != str(tombstone):
            store.delete(info.uri)
