"""Ingest's logic: read CSV or Parquet from the object store or a local path, fingerprint the
source bytes, and split rows deterministically into train and eval Parquet files.

Memory is bounded by a batch of rows, not by the table: the source is read twice as Arrow record
batches. The first pass decides each column's type, which depends on the whole column (a text
column is a number only if every value is one); the second converts each batch, hashes its rows
into the split and appends them to the two split files. An object-store source is first streamed
to a local temporary file, hashed on the way.

``ingest_to()`` writes the splits; ``ingest()`` returns them as DataFrames for small tables
(tests, notebooks); ``run()`` is what the component runs through :func:`kfkit.runtime.execute`."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import re
import tempfile
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from kfkit import settings
from kfkit.errors import KfkitError
from kfkit.local_cache import file_sha256, run_hash_memo
from kfkit.params import check_range
from kfkit.splits import SplitWriter, read_split
from kfkit.storage import ObjectStore, ObjectUri, is_object_uri
from kfkit.values import ISO_DATE_PATTERN, LEADING_ZERO_PATTERN, NUMBER_PATTERN, date_text, parse_datetime

if TYPE_CHECKING:
    from kfkit.runtime import Task

SUPPORTED_SUFFIXES = (".csv", ".parquet", ".pq")
# Read as missing: pandas' defaults (what ingest read before it read with Arrow) and "NA", as R
# and the penguins data write it.
NA_VALUES = [
    *("", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN"),
    *("<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"),
]
# Rows per batch: what bounds ingest's memory. KFKIT_INGEST_BATCH_ROWS overrides it; the split
# and the fingerprint do not depend on it.
BATCH_ROWS_ENV = "KFKIT_INGEST_BATCH_ROWS"
DEFAULT_BATCH_ROWS = 200_000
# A source of at most this many bytes (all its files) is read once: the first pass keeps its
# batches for the second (up to twice as many bytes of Arrow memory: Parquet decompresses), and a
# CSV is parsed whole by Arrow's multi-threaded reader (its streaming reader converts a block at a
# time: measured 1.7 times slower at 140 MB). A larger source is read twice, a batch at a time.
READ_ONCE_BYTES = 256 << 20
# eval_fraction meaning "no split" (a batch to score): every row in train_split, in the order
# read (files in name order), eval_split empty.
NO_SPLIT = 0.0
_SPLIT_BUCKETS = 10_000
_TRUE_TEXTS = pa.array(["True", "TRUE", "true"])
_BOOL_TEXTS = pa.array(["True", "TRUE", "true", "False", "FALSE", "false"])
_MICROS_PER_DAY = 86_400_000_000
_MISSING_HASH = np.uint64(np.iinfo(np.uint64).max)  # pandas' hash for a missing value
_COMBINE_PRIME = np.uint64(0x100000001B3)  # FNV-1's 64-bit prime: a row's column hashes in order
_CSV_CONVERSION_ERROR = re.compile(r"In CSV column #(\d+): CSV conversion error to (\w+)")


def batch_rows_setting() -> int:
    """The batch size in rows: KFKIT_INGEST_BATCH_ROWS, else DEFAULT_BATCH_ROWS."""
    return settings.batch_rows(BATCH_ROWS_ENV, DEFAULT_BATCH_ROWS)


@dataclass
class SourceFile:
    name: str  # URI or path, for messages and metadata
    sha256: str = ""  # of the bytes: a local file's at listing, an object's once downloaded
    etag: str = ""
    version_id: str | None = None
    is_object: bool = False  # from the object store (its etag names its content), else a local file
    path: Path | None = None  # the bytes on this machine (an object once downloaded)

    @property
    def is_csv(self) -> bool:
        return self.name.lower().endswith(".csv")


@dataclass
class IngestResult:
    train: pd.DataFrame
    eval: pd.DataFrame
    metadata: dict[str, Any]


def list_source(source_uri: str, store: ObjectStore | None = None) -> list[SourceFile]:
    """The CSV/Parquet files at a URI (object or prefix) or local path (file or folder) that
    ingest reads: objects with their etag and version id, not yet read; local files with the
    sha256 of their bytes (their only identity), read a chunk at a time. In a local run with the
    cache on, a local file's sha256 comes from the run's hash memo while the file's inode, size,
    mtime and ctime are the ones it was hashed at: run-local's cache plan, resolve_source and
    ingest then read a large source once between them, and an edited one again."""
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
        return [SourceFile(o.uri, "", o.etag, o.version_id, is_object=True) for o in objects]

    path = Path(source_uri)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in SUPPORTED_SUFFIXES)
        if not files:
            raise KfkitError(f"{source_uri}: no CSV or Parquet files in this folder")
    elif path.is_file():
        files = [path]
    else:
        raise KfkitError(f"{source_uri}: no such file or folder")
    memo = run_hash_memo()
    sha256 = memo.sha256 if memo is not None else file_sha256
    return [SourceFile(str(p), sha256(p), path=p) for p in files]


class _HashingWriter:
    """A binary file that hashes what is written to it: an object's fingerprint computed while
    it downloads, not by reading it again."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.digest = hashlib.sha256()

    def write(self, chunk: bytes) -> int:
        self.digest.update(chunk)
        return self.out.write(chunk)


def download(source: SourceFile, store: ObjectStore, folder: Path, index: int) -> SourceFile:
    """An object streamed into ``folder`` (its name keeps the suffix that says its format)."""
    path = folder / f"{index:05d}-{Path(source.name).name}"
    with path.open("wb") as out:
        writer = _HashingWriter(out)
        store.download(source.name, writer)
    return replace(source, sha256=writer.digest.hexdigest(), path=path)


def read_source(
    source_uri: str, store: ObjectStore | None = None, folder: Path | None = None
) -> list[SourceFile]:
    """All CSV/Parquet files at a URI or local path, each readable at its ``path``: objects are
    downloaded into ``folder`` (required for an object-store source)."""
    files = list_source(source_uri, store)
    if any(f.is_object for f in files):
        if folder is None:
            raise ValueError("read_source needs a folder to download objects into")
        store = store or ObjectStore.from_env()
        files = [download(f, store, folder, i) if f.is_object else f for i, f in enumerate(files)]
    return files


def source_identity(files: list[SourceFile]) -> str:
    """One string that changes exactly when the source's content does: sha256 over each file's
    name and content tag (an object's etag as the store reports it, a local file's sha256).
    Not the version id: a versioned bucket gives the same bytes uploaded again a new one, and
    the etag already names the content. resolve_source computes it before the run's tasks,
    ingest again on what it read: a pipeline passes it to ingest so that KFP's cache key
    follows the data."""
    tags = []
    for f in sorted(files, key=lambda f: f.name):
        tag = f"etag:{f.etag}" if f.is_object else f"sha256:{f.sha256}"
        tags.append(f"{f.name}\t{tag}\n")
    return "sha256:" + hashlib.sha256("".join(tags).encode()).hexdigest()


def fingerprint(files: list[SourceFile]) -> str:
    """sha256 of the source bytes; for several files, of their names' and digests' list."""
    if len(files) == 1:
        return files[0].sha256
    lines = "".join(f"{Path(f.name).name}\t{f.sha256}\n" for f in sorted(files, key=lambda f: f.name))
    return hashlib.sha256(lines.encode()).hexdigest()


# -- reading ------------------------------------------------------------------------------


def _is_blank(path: Path) -> bool:
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            if chunk.strip():
                return False
    return True


def header(source: SourceFile) -> list[str]:
    """The column names of one file, checked: duplicate or empty names are errors, not silently
    renamed (pandas read a second `alcohol` as `alcohol.1` and an empty name as `Unnamed: 2`)."""
    assert source.path is not None
    if _is_blank(source.path):
        raise KfkitError(f"{source.name}: file is empty")
    if source.is_csv:
        with source.path.open("rb") as f:
            first = f.readline(1 << 20).decode("utf-8", errors="replace").rstrip("\r\n")
        names = next(csv.reader([first]))
    else:
        names = _parquet_columns(source, _parquet_file(source))
    empty = [i + 1 for i, name in enumerate(names) if not name.strip()]
    if empty:
        raise KfkitError(f"{source.name}: column(s) {empty} of the header have no name")
    seen, duplicates = set(), []
    for name in names:
        if name in seen and name not in duplicates:
            duplicates.append(name)
        seen.add(name)
    if duplicates:
        raise KfkitError(f"{source.name}: duplicate column name(s) {duplicates} in the header")
    return names


def _parquet_file(source: SourceFile) -> pq.ParquetFile:
    try:
        # A buffered stream: a column chunk is read a MiB at a time, not whole (a file written as
        # one row group would otherwise be read whole, whatever the batch size).
        return pq.ParquetFile(source.path, buffer_size=1 << 20)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises many types for corrupt Parquet
        raise KfkitError(f"{source.name}: cannot read as Parquet: {exc}") from None


def _parquet_columns(source: SourceFile, parquet: pq.ParquetFile) -> list[str]:
    """The data columns, without the index pandas stores as columns (it read them as the index)."""
    schema = parquet.schema_arrow
    index = {c for c in (schema.pandas_metadata or {}).get("index_columns", []) if isinstance(c, str)}
    return [name for name in schema.names if name not in index]


class _NotThisType(Exception):
    """Arrow guessed a CSV column's type from its first block and a later value is no such value."""

    def __init__(self, column: str) -> None:
        self.column = column


def _csv_block_bytes(path: Path, batch_rows: int, streaming: bool) -> int:
    """Bytes for about ``batch_rows`` rows, from the first MiB's rows; at most 2 MiB when
    streaming: Arrow's streaming reader reads ahead many blocks (measured at 3M rows: 513 MB of
    Arrow memory with 28 MB blocks, 320 MB with 8 MiB, 83 MB with 2 MiB, and faster), so its
    blocks are small and :func:`_rebatch` joins them into batches. A file read whole is cut into
    blocks of nine tenths of that, so that most come under ``batch_rows`` as they are (the rows'
    lengths vary) and :func:`_sliced` need not cut them."""
    with path.open("rb") as f:
        head = f.read(1 << 20)
    row_bytes = len(head) / max(head.count(b"\n"), 1)
    if streaming:
        return int(min(max(batch_rows * row_bytes, 1 << 20), 2 << 20))
    return int(min(max(0.9 * batch_rows * row_bytes, 1 << 20), 64 << 20))


def batches(
    source: SourceFile, names: list[str], text_columns: set[str], batch_rows: int
) -> Iterator[pa.RecordBatch]:
    """One file as record batches of at most ``batch_rows`` rows. ``text_columns`` are read as
    text; the other columns of a CSV take the type Arrow infers from the first block."""
    assert source.path is not None
    if source.is_csv:
        yield from _csv_batches(source, names, text_columns, batch_rows)
        return
    parquet = _parquet_file(source)
    try:
        for batch in parquet.iter_batches(batch_size=batch_rows, columns=names):
            if text_columns:
                batch = pa.RecordBatch.from_arrays(
                    [
                        _as_text(c, n) if n in text_columns else c
                        for n, c in zip(names, batch.columns, strict=True)
                    ],
                    names=names,
                )
            yield batch
    except (pa.ArrowException, OSError) as exc:
        raise KfkitError(f"{source.name}: cannot read as Parquet: {exc}") from None


def _csv_batches(
    source: SourceFile, names: list[str], text_columns: set[str], batch_rows: int
) -> Iterator[pa.RecordBatch]:
    assert source.path is not None
    streaming = source.path.stat().st_size > READ_ONCE_BYTES
    read_options = pacsv.ReadOptions(block_size=_csv_block_bytes(source.path, batch_rows, streaming))
    # Quoted values may hold newlines (pandas read them; measured: no slower here).
    parse_options = pacsv.ParseOptions(newlines_in_values=True)
    convert_options = pacsv.ConvertOptions(
        column_types={name: pa.string() for name in text_columns},
        null_values=NA_VALUES,
        strings_can_be_null=True,
    )
    try:
        if streaming:
            stream = pacsv.open_csv(source.path, read_options, parse_options, convert_options)
            schema, reader = stream.schema, iter(stream)
        else:
            whole = pacsv.read_csv(source.path, read_options, parse_options, convert_options)
            schema, reader = whole.schema, iter(whole.to_batches())
        if any(pa.types.is_binary(t) or pa.types.is_large_binary(t) for t in schema.types):
            raise pa.ArrowInvalid("invalid UTF-8 text")  # Arrow's guess for it: said as pandas says it below
        # A file read whole is in memory already: its blocks are cut, not joined (joining copies
        # every column: measured 0.13-0.19 s at 1M rows).
        yield from _rebatch(reader, batch_rows) if streaming else _sliced(reader, batch_rows)
    except pa.ArrowInvalid as exc:
        conversion = _CSV_CONVERSION_ERROR.match(str(exc))
        if conversion and conversion.group(2) != "string":
            raise _NotThisType(names[int(conversion.group(1))]) from None
        raise _csv_parse_error(source, exc) from None


def _rebatch(parts: Iterator[pa.RecordBatch], batch_rows: int) -> Iterator[pa.RecordBatch]:
    """Batches of ``batch_rows`` rows (the last one shorter) from a reader's blocks of any size."""
    pending: list[pa.RecordBatch] = []
    rows = 0
    for part in parts:
        while part.num_rows:
            piece = part.slice(0, batch_rows - rows)
            pending.append(piece)
            rows += piece.num_rows
            part = part.slice(piece.num_rows)
            if rows == batch_rows:
                yield _one_batch(pending)
                pending, rows = [], 0
    if rows:
        yield _one_batch(pending)


def _sliced(parts: Iterator[pa.RecordBatch], batch_rows: int) -> Iterator[pa.RecordBatch]:
    """Each part as it is, or cut into even batches of at most ``batch_rows`` rows (no copy)."""
    for part in parts:
        pieces = -(-part.num_rows // batch_rows)
        size = -(-part.num_rows // max(pieces, 1))
        for start in range(0, part.num_rows, size or 1):
            yield part.slice(start, size)


def _one_batch(parts: list[pa.RecordBatch]) -> pa.RecordBatch:
    if len(parts) == 1:
        return parts[0]
    return pa.Table.from_batches(parts).combine_chunks().to_batches()[0]


def _csv_parse_error(source: SourceFile, exc: Exception) -> KfkitError:
    """One line for a CSV that does not parse. pandas' message names the line ("Expected 3
    fields in line 3, saw 5") where Arrow's does not: the file is parsed again by pandas, a chunk
    at a time, to say where. Only on this error path."""
    try:
        for _ in pd.read_csv(source.path, dtype=str, chunksize=100_000):
            pass
    except (pd.errors.ParserError, UnicodeDecodeError) as pandas_exc:
        return KfkitError(f"{source.name}: cannot parse: {str(pandas_exc).strip().splitlines()[-1]}")
    except Exception:  # noqa: BLE001 - pandas has nothing better to say: see below
        pass
    short = _first_short_row(source)
    if short:
        return KfkitError(f"{source.name}: cannot parse: {short}")
    return KfkitError(f"{source.name}: cannot parse: {str(exc).strip().splitlines()[-1]}")


def _first_short_row(source: SourceFile) -> str:
    """Where a row has fewer fields than the header (pandas filled them with missing values;
    Arrow refuses the row, and so does ingest now), read a row at a time."""
    assert source.path is not None
    with source.path.open(newline="", encoding="utf-8", errors="replace") as f:
        records = csv.reader(f)
        width = len(next(records, []))
        for record in records:
            if record and len(record) < width:
                return f"Expected {width} fields in line {records.line_num}, saw {len(record)}"
    return ""


def _as_text(array: pa.Array, column: str) -> pa.Array:
    try:
        return pc.cast(array, pa.string())
    except pa.ArrowException:
        raise KfkitError(
            f"column '{column}' holds {array.type} values, which are no number, date or text"
        ) from None


# -- column types ---------------------------------------------------------------------------


def _source_kind(data_type: pa.DataType) -> str:
    if pa.types.is_null(data_type):
        return ""
    if pa.types.is_integer(data_type):
        return "int"
    if pa.types.is_floating(data_type) or pa.types.is_decimal(data_type):
        return "float"
    if pa.types.is_boolean(data_type):
        return "bool"
    if pa.types.is_date(data_type) or pa.types.is_timestamp(data_type):
        return "date"
    return "text"


def _every(mask: pa.Array) -> bool:
    return bool(pc.all(mask, min_count=0).as_py())


def _some(mask: pa.Array) -> bool:
    return bool(pc.any(mask, min_count=0).as_py())


def _nan_as_missing(array: pa.Array) -> pa.Array:
    """NaN as missing (pandas counted it so); a CSV reader gives none, a Parquet writer may."""
    if pa.types.is_floating(array.type):
        nan = pc.is_nan(array)
        if _some(nan):
            return pc.if_else(nan, pa.scalar(None, array.type), array)
    return array


def _utc_micros(array: pa.Array) -> pa.Array:
    """A date or timestamp array as microseconds since the epoch, UTC (a zone-less timestamp
    read as UTC, as :func:`kfkit.values.parse_datetime` reads it)."""
    if pa.types.is_date(array.type):
        days = pc.cast(array, pa.date32()).view(pa.int32()).cast(pa.int64())
        return pc.multiply(days, _MICROS_PER_DAY)
    if array.type.tz is not None:  # the values are UTC already; only the label goes
        array = array.cast(pa.timestamp(array.type.unit))
    return pc.cast(array, pa.timestamp("us"), safe=False).cast(pa.int64())


class ColumnType:
    """What decides one column's normalised type, gathered batch by batch over the whole column
    (of every file): the Arrow kind its values come in, whether any is missing, and for text what
    every value seen could still be (tracked no more once it is known to be text); for dates
    whether all fall at midnight and whether any has a fraction of a second."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.source = ""  # int, float, bool, date or text; "" while only missing values came
        self.mixed = False  # kinds differ between files: read again as text
        self.has_missing = False
        self.text_could_be = {"bool", "number", "date"}
        self.date_only = True
        self.fraction = False

    def observe(self, array: pa.Array) -> None:
        array = _nan_as_missing(array)
        if array.null_count:
            self.has_missing = True
        kind = _source_kind(array.type)
        if not kind or array.null_count == len(array):
            return
        if self.source and kind != self.source:
            if {kind, self.source} == {"int", "float"}:
                kind = "float"
            else:
                self.mixed = True
        self.source = kind
        if kind == "date":
            micros = _utc_micros(array).drop_null().to_numpy()
            self.date_only = self.date_only and not (micros % _MICROS_PER_DAY).any()
            self.fraction = self.fraction or bool((micros % 1_000_000).any())
        elif kind == "text" and self.text_could_be:
            # Distinct values first: finding them is hashing, several times cheaper than the
            # number pattern (measured at 1M rows: 14 ms against 100 ms a column), and money
            # columns repeat (1,562 amounts in 1M loans; 90,132 balances): a column of all
            # distinct texts pays the hashing on top, about a seventh more.
            self._observe_text(pc.unique(_as_text(array, self.name).drop_null()))

    def _observe_text(self, distinct: pa.Array) -> None:
        """Each candidate is checked column-wise on the batch's distinct values."""
        could_be = self.text_could_be
        if "bool" in could_be and not _every(pc.is_in(distinct, value_set=_BOOL_TEXTS)):
            could_be.discard("bool")
        if "number" in could_be and (
            not _every(pc.match_substring_regex(distinct, NUMBER_PATTERN))
            or _some(pc.match_substring_regex(distinct, LEADING_ZERO_PATTERN))
        ):
            could_be.discard("number")
        if "date" in could_be:
            if not _every(pc.match_substring_regex(distinct, ISO_DATE_PATTERN)):
                could_be.discard("date")
                return
            for text in distinct.to_pylist():
                moment = parse_datetime(text)
                if moment is None:  # "2024-02-30": the shape of a date, not a date
                    could_be.discard("date")
                    return
                moment = moment.astimezone(dt.UTC)
                self.date_only = self.date_only and moment.time() == dt.time(0)
                self.fraction = self.fraction or bool(moment.microsecond)

    @property
    def kind(self) -> str:
        """int, float, date or text: what the column becomes (int and bool as int64, or float64
        when a value is missing, as a CSV reader makes them)."""
        if not self.source:
            return "float"  # only missing values: NaN, as pandas read such a CSV column
        if self.source == "text":
            for candidate, kind in (("bool", "int"), ("number", "float"), ("date", "date")):
                if candidate in self.text_could_be:
                    return kind
            return "text"
        if self.source in {"int", "bool"}:
            return "float" if self.has_missing else "int"
        return self.source

    @property
    def arrow_type(self) -> pa.DataType:
        return {"int": pa.int64(), "float": pa.float64()}.get(self.kind, pa.string())

    def convert(self, array: pa.Array) -> pa.Array:
        """One batch of the column in its normalised type."""
        array = _nan_as_missing(array)
        kind, target = self.kind, self.arrow_type
        if pa.types.is_null(array.type):
            return pa.nulls(len(array), target)
        if self.source == "text" and kind == "int":  # "True"/"false" texts
            return pc.cast(pc.utf8_lower(array), pa.bool_()).cast(target)
        if self.source == "text" and kind == "float":
            # "16,800.00", " 42 ", "-$3": what parse_number reads (every value matched its pattern
            # in the first pass), column-wise. Most such columns only group thousands: a literal
            # replace is several times faster than the pattern that also drops signs and spaces.
            # Each distinct text converted once, spread back over the rows: money repeats (at 1M
            # rows 22 ms a column against 70 ms for replacing and casting every value).
            encoded = pc.dictionary_encode(_as_text(array, self.name))
            try:
                numbers = pc.cast(pc.replace_substring(encoded.dictionary, ",", ""), target)
            except pa.ArrowInvalid:
                plain = pc.replace_substring_regex(
                    encoded.dictionary, pattern=r"^\s*\+|[\s,$€£¥]", replacement=""
                )
                numbers = pc.cast(plain, target)
            return pc.take(numbers, encoded.indices)
        if kind == "date":
            return self._date_texts(array)
        if kind == "text":
            return _as_text(array, self.name)
        return pc.cast(array, target)

    def _date_texts(self, array: pa.Array) -> pa.Array:
        """Each distinct value formatted once (a million rows often hold a few thousand dates),
        spread back over the rows."""
        if _source_kind(array.type) == "date":
            encoded = pc.dictionary_encode(_utc_micros(array))
            moments = pc.cast(encoded.dictionary, pa.timestamp("us"))
            unit = "us" if self.fraction else "s"
            fmt = "%Y-%m-%d" if self.date_only else "%Y-%m-%dT%H:%M:%S"
            texts = pc.strftime(pc.cast(moments, pa.timestamp(unit), safe=False), format=fmt)
        else:
            encoded = pc.dictionary_encode(_as_text(array, self.name))
            texts = pa.array(
                [
                    date_text(parse_datetime(text).astimezone(dt.UTC), self.date_only, self.fraction)  # type: ignore[union-attr]
                    for text in encoded.dictionary.to_pylist()
                ],
                pa.string(),
            )
        return pc.take(texts, encoded.indices)


def column_types(frame_or_batches: Any, names: list[str]) -> dict[str, ColumnType]:
    types = {name: ColumnType(name) for name in names}
    for batch in frame_or_batches:
        for name, column in zip(names, batch.columns, strict=True):
            types[name].observe(column)
    return types


def normalise(frame: pd.DataFrame) -> pd.DataFrame:
    """Types TFDV accepts, the same whatever the file format: dates become one ISO text form
    (TFDV 1.16 refuses Arrow date types; a Parquet date and a CSV "2024-01-05" read alike), a text
    column whose every value is a number ("16,800.00", " 42 ") becomes float64 as a CSV reader
    would have made it, other text columns hold only str or missing (a column mixing numbers and
    text stays text, and so does one of codes with leading zeros such as "02134"); integers and
    bools become int64 (float64 when a value is missing). The whole frame at once: ingest does the
    same batch by batch."""
    table = pa.Table.from_pandas(frame, preserve_index=False).combine_chunks()
    names = [str(n) for n in table.column_names]
    batch = table.to_batches()[0] if table.num_rows else pa.RecordBatch.from_pylist([], schema=table.schema)
    types = column_types([batch], names)
    converted = [types[n].convert(c) for n, c in zip(names, batch.columns, strict=True)]
    return pa.Table.from_arrays(converted, names=names).to_pandas()


# -- the split --------------------------------------------------------------------------------


def _value_bits(array: pa.Array) -> np.ndarray:
    """Each value of a normalised column as 64 bits that name it: a number's own bits (a missing
    one as NaN's), a text's pandas fixed-key hash, computed once per distinct text (no Python
    string per row), missing text as pandas hashes it."""
    if pa.types.is_string(array.type):
        encoded = pc.dictionary_encode(array)
        distinct = pd.util.hash_array(encoded.dictionary.to_numpy(zero_copy_only=False), categorize=False)
        codes = pc.fill_null(encoded.indices, len(distinct)).to_numpy()
        return np.append(distinct, _MISSING_HASH)[codes]
    if pa.types.is_floating(array.type):
        return pc.fill_null(array, np.nan).to_numpy(zero_copy_only=False).view(np.uint64)
    return array.to_numpy(zero_copy_only=False).view(np.uint64)


def _one_chunk(column: pa.ChunkedArray) -> pa.Array:
    """The column as one array: its only chunk as it is (combining copies even one chunk)."""
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


def eval_rows(table: pa.Table, eval_fraction: float, split_key: str = "") -> np.ndarray:
    """True for rows in the eval split: a hash of the key column (or of the whole row) so that
    the same row lands in the same split on every run and machine, whatever other rows come,
    whatever the batch size, and alike for one table as CSV or Parquet (their columns are
    normalised to the same types first)."""
    names = [split_key] if split_key else table.column_names
    rows = np.zeros(table.num_rows, dtype=np.uint64)
    with np.errstate(over="ignore"):  # uint64 arithmetic wraps, as a hash means it to
        for name in names:
            # In place: no two temporary arrays of the table's length per column.
            rows *= _COMBINE_PRIME
            rows ^= _value_bits(_one_chunk(table.column(name)))
    rows = pd.util.hash_array(rows)  # pandas' fixed-key mix: the buckets come from the low digits
    return (rows % _SPLIT_BUCKETS) < int(round(eval_fraction * _SPLIT_BUCKETS))


def split_mask(frame: pd.DataFrame, eval_fraction: float, split_key: str = "") -> pd.Series:
    """:func:`eval_rows` of a normalised DataFrame."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    return pd.Series(eval_rows(table, eval_fraction, split_key), index=frame.index)


# -- ingest -----------------------------------------------------------------------------------


@dataclass
class _FirstPass:
    types: dict[str, ColumnType]
    text_columns: set[str]  # read as text in both passes
    rows: int
    missing_label: int
    kept: list[list[pa.RecordBatch]] | None  # each file's batches, for a source read once


def _first_pass(files: list[SourceFile], names: list[str], label_column: str, batch_rows: int) -> _FirstPass:
    """Every file read once to decide the column types. A CSV column Arrow typed from its first
    block that later holds other values, or that files type differently, is read again as text."""
    text_columns: set[str] = set()
    while True:
        types = {name: ColumnType(name) for name in names}
        rows = missing_label = kept_bytes = 0
        size = sum(source.path.stat().st_size for source in files if source.path is not None)
        kept: list[list[pa.RecordBatch]] | None = [] if size <= READ_ONCE_BYTES else None
        try:
            for source in files:
                file_rows = 0
                if kept is not None:
                    kept.append([])
                for batch in batches(source, names, text_columns, batch_rows):
                    if kept is not None:
                        kept_bytes += batch.nbytes
                        kept = None if kept_bytes > 2 * READ_ONCE_BYTES else kept
                    if kept is not None:
                        kept[-1].append(batch)
                    for name, column in zip(names, batch.columns, strict=True):
                        types[name].observe(column)
                    if label_column in names:
                        label = _nan_as_missing(batch.column(names.index(label_column)))
                        missing_label += label.null_count
                    file_rows += batch.num_rows
                if not file_rows:
                    raise KfkitError(f"{source.name}: no data rows (header only)")
                rows += file_rows
        except _NotThisType as retry:
            text_columns.add(retry.column)
            continue
        mixed = {name for name, t in types.items() if t.mixed}
        if not mixed:
            return _FirstPass(types, text_columns, rows, missing_label, kept)
        text_columns |= mixed


def _write_split_rows(
    table: pa.Table, in_eval: pa.Array, train: SplitWriter, evaluation: SplitWriter
) -> None:
    evaluation.write(table.filter(in_eval))
    train.write(table.filter(pc.invert(in_eval)))


def ingest_to(
    source_uri: str,
    label_column: str,
    train_path: str,
    eval_path: str,
    eval_fraction: float = 0.2,
    split_key: str = "",
    store: ObjectStore | None = None,
    expected_identity: str = "",
    batch_rows: int | None = None,
) -> dict[str, Any]:
    """Read the source, write the train and eval splits (Parquet) to the two paths, and return
    the artifacts' metadata. Memory is bounded by ``batch_rows`` (default
    :func:`batch_rows_setting`)."""
    check_eval_fraction(eval_fraction)
    batch_rows = batch_rows or batch_rows_setting()
    listed = list_source(source_uri, store)
    identity = source_identity(listed)
    if expected_identity and identity != expected_identity:
        # KFP cached (or not) this task under the identity resolve_source saw: data that changed
        # since would be trained on under the wrong key.
        raise KfkitError(
            f"{source_uri}: the data changed between resolve_source and ingest (content identity "
            f"{expected_identity[:19]} then {identity[:19]}); run the pipeline again"
        )
    with tempfile.TemporaryDirectory(prefix="kfkit-ingest-") as folder:
        if any(f.is_object for f in listed):
            store = store or ObjectStore.from_env()
            files = [download(f, store, Path(folder), i) if f.is_object else f for i, f in enumerate(listed)]
        else:
            files = listed
        return _ingest_files(
            source_uri,
            files,
            identity,
            label_column,
            train_path,
            eval_path,
            eval_fraction,
            split_key,
            batch_rows,
        )


def _ingest_files(
    source_uri: str,
    files: list[SourceFile],
    identity: str,
    label_column: str,
    train_path: str,
    eval_path: str,
    eval_fraction: float,
    split_key: str,
    batch_rows: int,
) -> dict[str, Any]:
    names = header(files[0])
    for source in files[1:]:
        other = header(source)
        if other != names:
            raise KfkitError(f"{source.name}: columns {other} differ from {files[0].name}'s {names}")
    first = _first_pass(files, names, label_column, batch_rows)
    where = source_uri if len(files) > 1 else files[0].name
    if label_column and label_column not in names:
        raise KfkitError(f"{where}: label column '{label_column}' not found (columns: {', '.join(names)})")
    if split_key and split_key not in names:
        raise KfkitError(f"{where}: split key column '{split_key}' not found")
    if label_column and first.missing_label == first.rows:
        raise KfkitError(f"{where}: label column '{label_column}' is empty in every row")

    schema = pa.schema([(name, first.types[name].arrow_type) for name in names])
    with (
        SplitWriter(train_path, schema) as train,
        SplitWriter(eval_path, schema) as evaluation,
        ThreadPoolExecutor(1) as writing,
    ):
        # A batch is written by a thread (Arrow lets go of the GIL) while the next one is converted
        # and hashed; one at a time, so memory stays bounded by two batches.
        written: Future[None] | None = None
        for index, source in enumerate(files):
            again = batches(source, names, first.text_columns, batch_rows)
            for batch in again if first.kept is None else first.kept[index]:
                table = pa.Table.from_arrays(
                    [first.types[n].convert(c) for n, c in zip(names, batch.columns, strict=True)],
                    schema=schema,
                )
                # A row without a label can be neither trained on nor evaluated. Without a label
                # column (data to score) no row is dropped, so row i of the split is row i read.
                if label_column and table.column(label_column).null_count:
                    table = table.filter(pc.is_valid(table.column(label_column)))
                if eval_fraction == NO_SPLIT:
                    in_eval = pa.array(np.zeros(table.num_rows, dtype=bool))
                else:
                    in_eval = pa.array(eval_rows(table, eval_fraction, split_key))
                if written is not None:
                    written.result()
                written = writing.submit(_write_split_rows, table, in_eval, train, evaluation)
        if written is not None:
            written.result()
    rows = train.rows + evaluation.rows
    if eval_fraction == NO_SPLIT:
        pass  # every row is in train_split, in the order read; eval_split is empty by request
    elif not train.rows or not evaluation.rows:
        raise KfkitError(
            f"{where}: {rows} rows give an empty {'train' if not train.rows else 'eval'} split "
            f"at eval_fraction={eval_fraction}; more rows are needed"
        )
    metadata: dict[str, Any] = {
        "source_uri": source_uri,
        "source_files": len(files),
        "source_format": "csv" if files[0].is_csv else "parquet",
        "dataset_fingerprint": fingerprint(files),
        "source_identity": identity,
        "rows": rows,
        "columns": len(names),
        "rows_dropped_missing_label": first.missing_label,
        "label_column": label_column,
        "eval_fraction": eval_fraction,
        "split_key": split_key,
        "train_rows": train.rows,
        "eval_rows": evaluation.rows,
    }
    if len(files) == 1:
        metadata["source_etag"] = files[0].etag
        metadata["source_version_id"] = files[0].version_id or ""
    return metadata


def ingest(
    source_uri: str,
    label_column: str,
    eval_fraction: float = 0.2,
    split_key: str = "",
    store: ObjectStore | None = None,
    expected_identity: str = "",
    batch_rows: int | None = None,
) -> IngestResult:
    """:func:`ingest_to` with the splits read back as DataFrames: for tables that fit in memory."""
    with tempfile.TemporaryDirectory(prefix="kfkit-splits-") as folder:
        train_path, eval_path = str(Path(folder) / "train.parquet"), str(Path(folder) / "eval.parquet")
        metadata = ingest_to(
            source_uri,
            label_column,
            train_path,
            eval_path,
            eval_fraction,
            split_key,
            store,
            expected_identity,
            batch_rows,
        )
        return IngestResult(train=read_split(train_path), eval=read_split(eval_path), metadata=metadata)


def parse_file(source: SourceFile) -> pd.DataFrame:
    """One local file as read, before :func:`normalise`: for small files (tests, notebooks)."""
    names = header(source)
    first = _first_pass([source], names, "", batch_rows_setting())
    table = pa.Table.from_batches(list(batches(source, names, first.text_columns, batch_rows_setting())))
    return table.to_pandas()


def check_eval_fraction(value: Any) -> None:
    """``eval_fraction`` in (0, 1), or exactly :data:`NO_SPLIT`."""
    if isinstance(value, int | float) and not isinstance(value, bool) and value == NO_SPLIT:
        return
    check_range("ingest", "eval_fraction", value, 0.0, 1.0)


def check(params: dict[str, Any]) -> None:
    """The parameters alone, before any task runs (kfkit run-local calls it for every task)."""
    source = params.get("source_uri")
    if isinstance(source, str) and not source.strip():
        raise KfkitError(
            "The 'source_uri' parameter of ingest must name a file, folder or object. Got '' instead."
        )
    if "eval_fraction" in params:
        check_eval_fraction(params["eval_fraction"])


def run(task: Task) -> None:
    p = task.params
    outputs = {"train": task.outputs["train_split"], "eval": task.outputs["eval_split"]}
    metadata = ingest_to(
        p["source_uri"],
        p["label_column"],
        outputs["train"].path,
        outputs["eval"].path,
        p["eval_fraction"],
        p["split_key"],
        expected_identity=p.get("source_identity") or "",
    )
    for split, artifact in outputs.items():
        artifact.metadata.update(metadata)
        artifact.metadata.update({"split": split, "split_rows": metadata[f"{split}_rows"]})
    m = metadata
    task.say(
        f"{m['rows']} rows x {m['columns']} columns from {p['source_uri']} "
        f"-> train {m['train_rows']}, eval {m['eval_rows']}; fingerprint {m['dataset_fingerprint'][:12]}"
    )
