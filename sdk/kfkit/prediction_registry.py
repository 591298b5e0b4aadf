"""Scored batches in the object store: ``s3://predictions/<model>/<version>/<data fingerprint>/``.

One folder per (model version, batch content): the predictions, the rejected rows and the
summary, and last ``kfkit-predictions.json`` (what scored what: model sha256, data fingerprint,
row counts, each file's sha256 and object). Like a model version, a folder is written once and
never changed:

- a folder whose record exists is complete: the same batch scored again by the same version
  writes nothing (:func:`publish` says so); a record naming another model (sha256) is an error,
  and nothing is overwritten;
- each file is stored under a name carrying its sha256 (``predictions-<sha256>.parquet``), copied
  from disk by the client's multipart upload, so a file of any size costs a few 5 MiB parts of
  memory; the same name is the same bytes, so an object already there is reused after its bytes
  are checked (read a chunk at a time), and refused (one line naming it) when they differ;
- the record is created only if absent (S3 ``If-None-Match: *``), last: it is what makes the
  folder exist. A folder without a record is an interrupted scoring that nobody reads.

Folders of the first layout (files under their plain names, ``predictions.parquet``: their record
names no ``objects``) still read: :func:`stored_file` finds a file by the record in both.
:func:`list_scored_batches` lists the complete folders of a model, for re-scoring.
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kfkit import names
from kfkit.errors import KfkitError
from kfkit.model_folder import sha256_file
from kfkit.storage import ObjectStore, ObjectUri

if TYPE_CHECKING:
    import pandas as pd

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
    def predictions_uri(self) -> str:
        """The predictions object (named by its content) in the folder."""
        return str(stored_file(ObjectUri.parse(self.uri), self.record, PREDICTIONS_FILE))

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


def content_name(name: str, sha256: str) -> str:
    """The object name of a batch file with these bytes: ``predictions.parquet`` ->
    ``predictions-<sha256>.parquet``."""
    stem, dot, suffix = name.partition(".")
    return f"{stem}-{sha256}{dot}{suffix}"


def stored_file(folder: ObjectUri, record: dict[str, Any], name: str) -> ObjectUri:
    """Where a complete folder keeps its file ``name`` (:data:`BATCH_FILES`): the object its record
    names; a record of the first layout names none, and the file is under its plain name."""
    return folder.child(str((record.get("objects") or {}).get(name, name)))


def read_table(store: ObjectStore, folder: str | ObjectUri, name: str = PREDICTIONS_FILE) -> pd.DataFrame:
    """A complete folder's Parquet file (the predictions by default) as a DataFrame, downloaded to a
    temporary file a chunk at a time rather than held twice in memory."""
    import pandas as pd

    where = folder if isinstance(folder, ObjectUri) else ObjectUri.parse(folder)
    record = read_record(store, where)
    if record is None:
        raise KfkitError(f"{where}: no {RECORD_FILE}: not a complete folder of scored predictions")
    with tempfile.TemporaryDirectory(prefix="kfkit-predictions-") as local:
        path = Path(local) / name
        with open(path, "wb") as out:
            store.download(stored_file(where, record, name), out)
        return pd.read_parquet(path)


def publish(store: ObjectStore, local_folder: Path, record: dict[str, Any]) -> Published:
    """Copy ``local_folder``'s :data:`BATCH_FILES` to the batch folder named by ``record``
    (``model_name``, ``model_version``, ``dataset_fingerprint``), write-once, each under its
    content's name; then the record, completed with each file's sha256 and object, and the time."""
    folder = batch_folder(record["model_name"], record["model_version"], record["dataset_fingerprint"])
    earlier = read_record(store, folder)
    if earlier is not None:
        return _already(folder, earlier, record)
    store.ensure_bucket(PREDICTIONS_BUCKET)
    files, objects = {}, {}
    for name in BATCH_FILES:
        path = local_folder / name
        files[name] = sha256_file(path)
        objects[name] = content_name(name, files[name])
        uri = folder.child(objects[name])
        found = store.stat(uri)
        if found is None:
            # Unconditional: a concurrent scoring can only put the very same bytes under this name.
            store.upload_file(uri, path)
        elif found.size != path.stat().st_size or store.sha256(uri) != files[name]:
            raise KfkitError(
                f"{uri}: exists with other bytes than its name says and no {RECORD_FILE}; "
                "never overwritten: remove that folder's objects to score this batch again"
            )
    complete = {**record, "files": files, "objects": objects, "written_at": time.time()}
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
