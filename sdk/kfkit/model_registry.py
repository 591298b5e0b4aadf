"""Pushed models in the object store: ``s3://models/<model-name>/<version>/``.

A version is complete when its ``kfkit-model.json`` exists (push writes it last, after the
model, its companions and its signature ``kfkit-model.sig``). Every download verifies the
signature against the trusted keys before it fetches anything else.
"""

from __future__ import annotations

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
from kfkit.storage import ObjectStore, ObjectUri


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


def resolve(store: ObjectStore, reference: str) -> tuple[str, str]:
    """``name`` or ``name:version`` -> (name, version); no version means the latest complete."""
    name, _, version = reference.partition(":")
    if version:
        if not store.exists(version_folder(name, version).child(MANIFEST_FILE)):
            raise KfkitError(f"model {name} has no pushed version {version}")
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
    folder = version_folder(model_name, version)
    manifest = _fetch_verified_manifest(store, folder, target)
    (target / manifest.model_file).write_bytes(store.get_bytes(folder.child(manifest.model_file)))
    verify_model_file(target, manifest)
    return target


def download_companions(store: ObjectStore, model_name: str, version: str, target: Path) -> ModelManifest:
    """Copy a pushed version's manifest, signature and companion files (not the model) to a local
    folder: the signature verified first, then each file against the sha256 its manifest records."""
    folder = version_folder(model_name, version)
    manifest = _fetch_verified_manifest(store, folder, target)
    for name, digest in manifest.files.items():
        data = store.get_bytes(folder.child(name))
        if sha256_bytes(data) != digest:
            raise KfkitError(f"{folder.child(name)}: sha256 does not match the version's {MANIFEST_FILE}")
        (target / name).write_bytes(data)
    return manifest
