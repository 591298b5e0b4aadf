"""The on-disk form of a Dataset artifact kfkit's components exchange: one Parquet file."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq


def write_split(frame: pd.DataFrame, path: str) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)


def read_split(path: str) -> pd.DataFrame:
    return pd.read_parquet(path)


class SplitWriter:
    """A split written batch by batch (a row group per batch), in the file format
    :func:`write_split` writes and :func:`read_split` reads: memory bounded by a batch, not by
    the split. Use as a context manager; the file holds the schema even when no row came."""

    def __init__(self, path: str, schema: pa.Schema) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.rows = 0
        # Dictionary pages and compression for text only: numbers hardly compress, and both
        # cost more time than they save space there (measured: writing 1M rows x 20 columns
        # took a third of the time).
        text = [field.name for field in schema if pa.types.is_string(field.type)]
        compression = {field.name: "snappy" if field.name in text else "none" for field in schema}
        self._writer = pq.ParquetWriter(path, schema, use_dictionary=text, compression=compression)

    def write(self, table: pa.Table) -> None:
        if table.num_rows:
            self._writer.write_table(table)
            self.rows += table.num_rows

    def close(self) -> None:
        self._writer.close()

    def __enter__(self) -> SplitWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


# -- Reading a split in bounded memory: batches of rows, or a seeded sample, of chosen columns --
# A split here is its Parquet file's path, or a DataFrame already in memory (tests, small tables):
# both give the same rows for the same arguments.

DEFAULT_BATCH_ROWS = 100_000
Split = str | pd.DataFrame


def split_rows(split: Split) -> int:
    """The number of rows of a split (a file's from its Parquet footer: no data is read)."""
    import pyarrow.parquet as pq

    if isinstance(split, pd.DataFrame):
        return len(split)
    return pq.ParquetFile(split).metadata.num_rows


def split_columns(split: Split) -> list[str]:
    """The column names of a split (a file's from its Parquet footer)."""
    import pyarrow.parquet as pq

    if isinstance(split, pd.DataFrame):
        return [str(c) for c in split.columns]
    return list(pq.ParquetFile(split).schema_arrow.names)


def _parquet(path: str, columns: list[str], dictionary: Sequence[str]) -> Any:
    import pyarrow.parquet as pq

    from kfkit.errors import KfkitError

    parquet = pq.ParquetFile(path, read_dictionary=[c for c in dictionary if c in columns])
    missing = [c for c in columns if c not in parquet.schema_arrow.names]
    if missing:
        raise KfkitError(f"{path}: column(s) {missing} missing from the split")
    return parquet


def iter_batches(
    split: Split, columns: list[str], batch_rows: int = DEFAULT_BATCH_ROWS, dictionary: Sequence[str] = ()
) -> Iterator[pd.DataFrame]:
    """The split's rows in order, ``batch_rows`` at a time, only ``columns``: memory follows the
    batch size (and the file's row groups), not the file. ``dictionary``: text columns read as
    pandas categoricals, each distinct string stored once instead of once per row."""
    if isinstance(split, pd.DataFrame):
        for start in range(0, len(split), batch_rows):
            yield split[columns].iloc[start : start + batch_rows].reset_index(drop=True)
        return
    for batch in _parquet(split, columns, dictionary).iter_batches(batch_size=batch_rows, columns=columns):
        yield batch.to_pandas()


def sample_row_numbers(total: int, size: int, seed: int) -> np.ndarray:
    """``size`` distinct row numbers of ``total``, uniform and sorted, decided by ``seed`` alone."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(total, size=size, replace=False))


def read_sample(
    split: Split,
    columns: list[str],
    size: int,
    seed: int,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    dictionary: Sequence[str] = (),
) -> pd.DataFrame:
    """A uniform sample of ``size`` rows (all rows if the split has no more), only ``columns``,
    in the split's row order. Which rows is decided by ``seed`` and the split's row count alone
    (:func:`sample_row_numbers`), so a seed draws the same rows whatever ``batch_rows`` is, from
    a file or a frame. Memory: the sample plus one batch."""
    import pyarrow as pa

    total = split_rows(split)
    if isinstance(split, pd.DataFrame) and size < total:
        return split[columns].iloc[sample_row_numbers(total, size, seed)].reset_index(drop=True)
    if size >= total:
        return read_columns(split, columns, dictionary)
    parquet = _parquet(split, columns, dictionary)
    wanted = sample_row_numbers(total, size, seed)
    pieces, start = [], 0
    for batch in parquet.iter_batches(batch_size=batch_rows, columns=columns):
        low, high = np.searchsorted(wanted, [start, start + batch.num_rows])
        if high > low:
            pieces.append(batch.take(pa.array(wanted[low:high] - start)))
        start += batch.num_rows
    return pa.Table.from_batches(pieces).to_pandas()


def read_columns(split: Split, columns: list[str], dictionary: Sequence[str] = ()) -> pd.DataFrame:
    """Every row of the split, only ``columns``."""
    if isinstance(split, pd.DataFrame):
        return split[columns].reset_index(drop=True)
    return _parquet(split, columns, dictionary).read(columns=columns).to_pandas()


# -- Reading a split in Arrow, never whole: record batches, or one column --
# A split (:data:`Split`) is its Parquet file's path, or a DataFrame already in memory.

# Rows per Arrow record batch: at 20 columns a batch is a few megabytes, and TFDV's per-batch
# overhead is already small against its per-row work.
ARROW_BATCH_ROWS = 65_536


def arrow_batches(split: Split, batch_rows: int = ARROW_BATCH_ROWS) -> Iterator[pa.RecordBatch]:
    """The split's rows as Arrow record batches, no pandas copy of a file: memory follows the batch
    size (and the file's row groups), not the file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if isinstance(split, pd.DataFrame):
        yield from pa.Table.from_pandas(split, preserve_index=False).to_batches(max_chunksize=batch_rows)
    else:
        yield from pq.ParquetFile(split).iter_batches(batch_size=batch_rows)


def arrow_schema(split: Split) -> pa.Schema:
    """The split's column names and Arrow types (a file's from its Parquet footer: no data read)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if isinstance(split, pd.DataFrame):
        return pa.Schema.from_pandas(split, preserve_index=False)
    return pq.read_schema(split)


def arrow_column(split: Split, name: str) -> pa.ChunkedArray | None:
    """One column's values in every row (None: the split has no such column)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if name not in arrow_schema(split).names:
        return None
    if isinstance(split, pd.DataFrame):
        return pa.Table.from_pandas(split[[name]], preserve_index=False).column(0)
    return pq.ParquetFile(split).read(columns=[name]).column(0)
