"""Scored batches in the object store: ``s3://predictions/<model>/<version>/<data fingerprint>/``.

One folder per (model version, batch content): the predictions, the rejected rows and the
summary, and last ``kfkit-predictions.json`` (what scored what: model sha256, data fingerprint,
row counts, each file's sha256). Like a model version, a folder is written once and never
changed:

- a folder whose record exists is complete: the same batch scored again by the same version
  writes nothing (:func:`publish` says so); a record naming another model (sha256) is an error,
  and nothing is overwritten;
- every object is created only if absent (S3 ``If-None-Match: *``), the record last: a folder
  without a record is an interrupted scoring that nobody reads; its files are reused when they
  hold the same bytes, and refused (one line naming the object) when they do not.

:func:`list_scored_batches` lists the complete folders of a model, for re-scoring.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kfkit import names
from kfkit.errors import KfkitError
from kfkit.model_folder import sha256_bytes
from kfkit.storage import ObjectStore, ObjectUri

PREDICTIONS_BUCKET = "predictions"
RECORD_FILE = "kfkit-predictions.json"
PREDICTIONS_FILE = "predictions.parquet"
REJECTS_FILE = "rejects.parquet"
SUMMARY_FILE = "summary.md"
BATCH_FILES = (PREDICTIONS_FILE, REJECTS_FILE, SUMMARY_FILE)
_FINGERPRINT = re.compile(r"^[0-9a-f]{64}$")


def batch_folder(model_name: str, version: str | int, fingerprint: str) -> ObjectUri:
    """Where the predictions of one model version for one batch (its dataset fingerprint) live."""
    if not str(version).isdigit():
        raise KfkitError(f"model version must be a pushed version number, got {version!r}")
    if not _FINGERPRINT.match(fingerprint or ""):
        raise KfkitError(f"dataset fingerprint must be 64 hex digits (ingest's sha256), got {fingerprint!r}")
    return ObjectUri(PREDICTIONS_BUCKET, f"{names.check_model_name(model_name)}/{version}/{fingerprint}/")


@dataclass
class Published:
    """What :func:`publish` did: ``written`` False when the folder was already complete."""

    uri: str
    written: bool
    record: dict[str, Any]  # the folder's record: ours when written, the earlier one otherwise

    @property
    def message(self) -> str:
        if self.written:
            return f"predictions written to {self.uri}"
        return (
            f"already scored: {self.uri} holds this batch's predictions by this version "
            f"(run {self.record.get('run_id') or '?'}); nothing new written"
        )


def read_record(store: ObjectStore, folder: ObjectUri) -> dict[str, Any] | None:
    """A batch folder's record, or None when the folder is not complete."""
    uri = folder.child(RECORD_FILE)
    if not store.exists(uri):
        return None
    try:
        return json.loads(store.get_bytes(uri))
    except ValueError:
        raise KfkitError(f"{uri}: not a JSON record of scored predictions") from None


def publish(store: ObjectStore, local_folder: Path, record: dict[str, Any]) -> Published:
    """Copy ``local_folder``'s :data:`BATCH_FILES` to the batch folder named by ``record``
    (``model_name``, ``model_version``, ``dataset_fingerprint``), write-once; then the record,
    completed with each file's sha256 and the time."""
    folder = batch_folder(record["model_name"], record["model_version"], record["dataset_fingerprint"])
    earlier = read_record(store, folder)
    if earlier is not None:
        return _already(folder, earlier, record)
    store.ensure_bucket(PREDICTIONS_BUCKET)
    files = {}
    for name in BATCH_FILES:
        data = (local_folder / name).read_bytes()
        files[name] = sha256_bytes(data)
        uri = folder.child(name)
        if not store.create_bytes(uri, data) and sha256_bytes(store.get_bytes(uri)) != files[name]:
            raise KfkitError(
                f"{uri}: exists with other content and no {RECORD_FILE} (an interrupted scoring?); "
                "never overwritten: remove that folder's objects to score this batch again"
            )
    complete = {**record, "files": files, "written_at": time.time()}
    data = json.dumps(complete, indent=2, sort_keys=True).encode()
    if not store.create_bytes(folder.child(RECORD_FILE), data, "application/json"):
        # Another scoring of the same batch by the same version finished first.
        return _already(folder, read_record(store, folder) or {}, record)
    return Published(str(folder), True, complete)


def _already(folder: ObjectUri, earlier: dict[str, Any], record: dict[str, Any]) -> Published:
    if earlier.get("model_sha256") != record["model_sha256"]:
        raise KfkitError(
            f"{folder}: holds predictions of a model with sha256 {str(earlier.get('model_sha256'))[:12]}, "
            f"not {record['model_sha256'][:12]} (version {record['model_version']} was replaced?); "
            "never overwritten"
        )
    return Published(str(folder), False, earlier)


@dataclass
class ScoredBatch:
    model_name: str
    model_version: str
    dataset_fingerprint: str
    uri: str
    record: dict[str, Any]


def list_scored_batches(store: ObjectStore, model_name: str) -> list[ScoredBatch]:
    """Every complete batch folder of a model, by any version: oldest version first, then by
    fingerprint. Folders without a record (interrupted) are left out."""
    root = ObjectUri(PREDICTIONS_BUCKET, f"{names.check_model_name(model_name)}/")
    if not store.bucket_exists(PREDICTIONS_BUCKET):
        return []
    found = []
    for version in sorted((v for v in store.list_prefixes(root) if v.isdigit()), key=int):
        for fingerprint in sorted(store.list_prefixes(root.child(f"{version}/"))):
            if not _FINGERPRINT.match(fingerprint):
                continue
            folder = batch_folder(model_name, version, fingerprint)
            record = read_record(store, folder)
            if record is not None:
                found.append(ScoredBatch(model_name, version, fingerprint, str(folder), record))
    return found
