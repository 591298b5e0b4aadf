"""The on-disk form of a Dataset artifact kfkit's components exchange: one Parquet file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    import pyarrow as pa


def write_split(frame: pd.DataFrame, path: str) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)


def read_split(path: str) -> pd.DataFrame:
    return pd.read_parquet(path)


# -- Reading a split in Arrow, never whole: record batches, or one column --
# A split here is its Parquet file's path, or a DataFrame already in memory (tests, small tables).
Split = str | pd.DataFrame

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
