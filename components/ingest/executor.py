"""Ingest's logic: read CSV or Parquet from the object store or a local path, fingerprint the
source bytes, and split rows deterministically into train and eval Parquet files.

``ingest()`` is the plain function (testable on local files); ``run()`` is what the component
runs through :func:`kfkit.runtime.execute`."""

from __future__ import annotations

import datetime
import hashlib
import io
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from kfkit.errors import KfkitError
from kfkit.params import check_range
from kfkit.splits import write_split
from kfkit.storage import ObjectStore, ObjectUri, is_object_uri
from kfkit.values import date_texts, is_code, parse_number

if TYPE_CHECKING:
    from kfkit.runtime import Task

SUPPORTED_SUFFIXES = (".csv", ".parquet", ".pq")
# Read as missing, as R and the penguins data write it, beside pandas' defaults ("" and "NaN").
NA_VALUES = ["NA"]
_SPLIT_BUCKETS = 10_000


@dataclass
class SourceFile:
    name: str  # URI or path, for messages and metadata
    data: bytes
    etag: str = ""
    version_id: str | None = None
    is_object: bool = False  # from the object store (its etag names its content), else a local file


@dataclass
class IngestResult:
    train: pd.DataFrame
    eval: pd.DataFrame
    metadata: dict[str, Any]


def list_source(source_uri: str, store: ObjectStore | None = None) -> list[SourceFile]:
    """The CSV/Parquet files at a URI (object or prefix) or local path (file or folder) that
    ingest reads: objects with their etag and version id, not yet read; local files read
    (their bytes are their only identity)."""
    if not source_uri.strip():
        # An empty path would mean the working folder, scanned recursively: never what was meant.
        raise KfkitError(
            "The 'source_uri' parameter of ingest must name a file, folder or object. Got '' instead."
        )
    if is_object_uri(source_uri):
        if ".." in source_uri.split("://", 1)[1].split("/"):
            raise KfkitError(f"{source_uri}: '..' is not allowed in an object URI")
        store = store or ObjectStore.from_env()
        target = ObjectUri.parse(source_uri)
        objects = [o for o in store.list(target) if o.uri.lower().endswith(SUPPORTED_SUFFIXES)]
        if target.key and not target.key.endswith("/"):
            # An exact object, not a prefix that happens to match other keys.
            objects = [o for o in objects if o.uri == str(target)] or objects[:0]
            if not objects:
                info = store.stat(target)  # raises auth errors with a clear line
                if info is None:
                    raise KfkitError(f"{source_uri}: object does not exist")
                objects = [info]
        if not objects:
            raise KfkitError(f"{source_uri}: no CSV or Parquet objects under this prefix")
        return [SourceFile(o.uri, b"", o.etag, o.version_id, is_object=True) for o in objects]

    path = Path(source_uri)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in SUPPORTED_SUFFIXES)
        if not files:
            raise KfkitError(f"{source_uri}: no CSV or Parquet files in this folder")
    elif path.is_file():
        files = [path]
    else:
        raise KfkitError(f"{source_uri}: no such file or folder")
    return [SourceFile(str(p), p.read_bytes()) for p in files]


def read_source(source_uri: str, store: ObjectStore | None = None) -> list[SourceFile]:
    """All CSV/Parquet files at a URI (object or prefix) or local path (file or folder)."""
    files = list_source(source_uri, store)
    if any(f.is_object for f in files):
        store = store or ObjectStore.from_env()
    return [replace(f, data=store.get_bytes(f.name)) if f.is_object else f for f in files]


def source_identity(files: list[SourceFile]) -> str:
    """One string that changes exactly when the source's content does: sha256 over each file's
    name and content tag (an object's etag as the store reports it, a local file's sha256).
    Not the version id: a versioned bucket gives the same bytes uploaded again a new one, and
    the etag already names the content. resolve_source computes it before the run's tasks,
    ingest again on what it read: a pipeline passes it to ingest so that KFP's cache key
    follows the data."""
    tags = []
    for f in sorted(files, key=lambda f: f.name):
        tag = f"etag:{f.etag}" if f.is_object else f"sha256:{hashlib.sha256(f.data).hexdigest()}"
        tags.append(f"{f.name}\t{tag}\n")
    return "sha256:" + hashlib.sha256("".join(tags).encode()).hexdigest()


def fingerprint(files: list[SourceFile]) -> str:
    """sha256 of the source bytes; for several files, of their names' and digests' list."""
    if len(files) == 1:
        return hashlib.sha256(files[0].data).hexdigest()
    lines = "".join(
        f"{Path(f.name).name}\t{hashlib.sha256(f.data).hexdigest()}\n"
        for f in sorted(files, key=lambda f: f.name)
    )
    return hashlib.sha256(lines.encode()).hexdigest()


def parse_file(source: SourceFile) -> pd.DataFrame:
    if not source.data.strip():
        raise KfkitError(f"{source.name}: file is empty")
    try:
        if source.name.lower().endswith(".csv"):
            frame = pd.read_csv(io.BytesIO(source.data), na_values=NA_VALUES)
        else:
            frame = pd.read_parquet(io.BytesIO(source.data))
    except pd.errors.EmptyDataError:
        raise KfkitError(f"{source.name}: file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise KfkitError(f"{source.name}: cannot parse: {str(exc).strip().splitlines()[-1]}") from None
    except Exception as exc:  # noqa: BLE001 - pyarrow raises many types for corrupt Parquet
        raise KfkitError(f"{source.name}: cannot read as Parquet: {exc}") from None
    if frame.empty:
        raise KfkitError(f"{source.name}: no data rows (header only)")
    _check_header(source, frame)
    return frame


def _check_header(source: SourceFile, frame: pd.DataFrame) -> None:
    """Duplicate or empty column names are errors, not silently renamed (pandas reads a second
    `alcohol` as `alcohol.1` and an empty name as `Unnamed: 2`)."""
    import csv

    if source.name.lower().endswith(".csv"):
        first = source.data.split(b"\n", 1)[0].decode("utf-8", errors="replace").rstrip("\r")
        header = next(csv.reader([first]))
    else:
        header = [str(c) for c in frame.columns]
    empty = [i + 1 for i, name in enumerate(header) if not name.strip()]
    if empty:
        raise KfkitError(f"{source.name}: column(s) {empty} of the header have no name")
    seen, duplicates = set(), []
    for name in header:
        if name in seen and name not in duplicates:
            duplicates.append(name)
        seen.add(name)
    if duplicates:
        raise KfkitError(f"{source.name}: duplicate column name(s) {duplicates} in the header")


def normalise(frame: pd.DataFrame) -> pd.DataFrame:
    """Types TFDV accepts, the same whatever the file format: dates become one ISO text form
    (TFDV 1.16 refuses Arrow date types; a Parquet date and a CSV "2024-01-05" read alike), a text
    column whose every value is a number ("16,800.00", " 42 ") becomes float64 as a CSV reader
    would have made it, other text columns hold only str or missing (a column mixing numbers and
    text stays text, and so does one of codes with leading zeros such as "02134"). Missing is NaN
    in every column, as pandas reads it from a CSV (Parquet gives None), so rows hash alike."""
    frame = frame.copy()
    for column in frame.columns:
        series = frame[column]
        if pd.api.types.is_datetime64_any_dtype(series):
            frame[column] = _normalise_objects(series)
        elif pd.api.types.is_bool_dtype(series):
            frame[column] = series.astype("int64")
        elif series.dtype == object:
            frame[column] = _normalise_objects(series)
    return frame


def _normalise_objects(series: pd.Series) -> pd.Series:
    """Each distinct value is looked at once (a million rows often hold a few thousand dates),
    the result spread back over the rows with NaN for missing."""
    codes, distinct = pd.factorize(series)  # missing values get code -1
    values = list(distinct)
    converted: list[Any] | None = None
    if any(isinstance(v, datetime.date) for v in values):  # Parquet date or timestamp values
        converted = date_texts(values)
    if converted is None:
        values = [str(v) for v in values]
        numbers = _numbers(values)
        if numbers is not None:
            return pd.Series(np.array([*numbers, math.nan])[codes], index=series.index, dtype="float64")
        converted = date_texts(values) if values else None
    table = np.array([*(values if converted is None else converted), math.nan], dtype=object)
    return pd.Series(table[codes], index=series.index, dtype=object)


def _numbers(texts: list[str]) -> list[float] | None:
    """Every text as a number, or None (one is text, or a code with a leading zero)."""
    numbers = []
    for text in texts:
        number = parse_number(text)
        if number is None:
            return None
        numbers.append(number)
    if not numbers or any(is_code(text) for text in texts):
        return None
    return numbers


def _missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def split_mask(frame: pd.DataFrame, eval_fraction: float, split_key: str = "") -> pd.Series:
    """True for rows in the eval split: a hash of the key column (or of the whole row) so
    that the same rows land in the same split on every run and every machine."""
    keyed = frame[[split_key]] if split_key else frame
    hashes = pd.util.hash_pandas_object(keyed.astype(str), index=False)
    return (hashes % _SPLIT_BUCKETS) < int(round(eval_fraction * _SPLIT_BUCKETS))


def ingest(
    source_uri: str,
    label_column: str,
    eval_fraction: float = 0.2,
    split_key: str = "",
    store: ObjectStore | None = None,
    expected_identity: str = "",
) -> IngestResult:
    check_range("ingest", "eval_fraction", eval_fraction, 0.0, 1.0)
    files = read_source(source_uri, store)
    identity = source_identity(files)
    if expected_identity and identity != expected_identity:
        # KFP cached (or not) this task under the identity resolve_source saw: data that changed
        # since would be trained on under the wrong key.
        raise KfkitError(
            f"{source_uri}: the data changed between resolve_source and ingest (content identity "
            f"{expected_identity[:19]} then {identity[:19]}); run the pipeline again"
        )
    frames = [parse_file(f) for f in files]
    columns = list(frames[0].columns)
    for source, frame in zip(files[1:], frames[1:], strict=True):
        if list(frame.columns) != columns:
            raise KfkitError(
                f"{source.name}: columns {list(frame.columns)} differ from {files[0].name}'s {columns}"
            )
    frame = normalise(pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0])
    where = source_uri if len(files) > 1 else files[0].name
    if label_column not in frame.columns:
        raise KfkitError(f"{where}: label column '{label_column}' not found (columns: {', '.join(columns)})")
    if split_key and split_key not in frame.columns:
        raise KfkitError(f"{where}: split key column '{split_key}' not found")
    missing_label = int(frame[label_column].isna().sum())
    if missing_label == len(frame):
        raise KfkitError(f"{where}: label column '{label_column}' is empty in every row")
    # A row without a label can be neither trained on nor scored.
    frame = frame[frame[label_column].notna()].reset_index(drop=True)

    in_eval = split_mask(frame, eval_fraction, split_key)
    train, evaluation = frame[~in_eval].reset_index(drop=True), frame[in_eval].reset_index(drop=True)
    if train.empty or evaluation.empty:
        raise KfkitError(
            f"{where}: {len(frame)} rows give an empty {'train' if train.empty else 'eval'} split "
            f"at eval_fraction={eval_fraction}; more rows are needed"
        )
    metadata: dict[str, Any] = {
        "source_uri": source_uri,
        "source_files": len(files),
        "source_format": "csv" if files[0].name.lower().endswith(".csv") else "parquet",
        "dataset_fingerprint": fingerprint(files),
        "source_identity": identity,
        "rows": len(frame),
        "columns": len(frame.columns),
        "rows_dropped_missing_label": missing_label,
        "label_column": label_column,
        "eval_fraction": eval_fraction,
        "split_key": split_key,
        "train_rows": len(train),
        "eval_rows": len(evaluation),
    }
    if len(files) == 1:
        metadata["source_etag"] = files[0].etag
        metadata["source_version_id"] = files[0].version_id or ""
    return IngestResult(train=train, eval=evaluation, metadata=metadata)


def check(params: dict[str, Any]) -> None:
    """The parameters alone, before any task runs (kfkit run-local calls it for every task)."""
    source = params.get("source_uri")
    if isinstance(source, str) and not source.strip():
        raise KfkitError(
            "The 'source_uri' parameter of ingest must name a file, folder or object. Got '' instead."
        )
    if "eval_fraction" in params:
        check_range("ingest", "eval_fraction", params["eval_fraction"], 0.0, 1.0)


def run(task: Task) -> None:
    p = task.params
    result = ingest(
        p["source_uri"],
        p["label_column"],
        p["eval_fraction"],
        p["split_key"],
        expected_identity=p.get("source_identity") or "",
    )
    for name, split, frame in (("train_split", "train", result.train), ("eval_split", "eval", result.eval)):
        artifact = task.outputs[name]
        write_split(frame, artifact.path)
        artifact.metadata.update(result.metadata)
        artifact.metadata.update({"split": split, "split_rows": len(frame)})
    m = result.metadata
    task.say(
        f"{m['rows']} rows x {m['columns']} columns from {p['source_uri']} "
        f"-> train {m['train_rows']}, eval {m['eval_rows']}; fingerprint {m['dataset_fingerprint'][:12]}"
    )
