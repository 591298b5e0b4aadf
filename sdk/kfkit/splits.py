"""The on-disk form of a Dataset artifact kfkit's components exchange: one Parquet file."""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

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
