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


# Rows per Arrow record batch when a split is read in pieces: at 20 columns a batch is a few
# megabytes, and TFDV's per-batch overhead is already small against its per-row work.
SPLIT_BATCH_ROWS = 65_536


class SplitReader:
    """A split read in Arrow record batches or one column at a time, never whole: from its
    Parquet file (``path``), or from a DataFrame already in memory (callers that built one)."""

    def __init__(self, source: str | pd.DataFrame, batch_rows: int = SPLIT_BATCH_ROWS) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.path = source if isinstance(source, str) else None
        self.batch_rows = batch_rows
        self._file = pq.ParquetFile(source) if isinstance(source, str) else None
        self._table = None if isinstance(source, str) else pa.Table.from_pandas(source, preserve_index=False)

    @property
    def columns(self) -> list[str]:
        return self._file.schema_arrow.names if self._file is not None else self._table.column_names

    @property
    def num_rows(self) -> int:
        return self._file.metadata.num_rows if self._file is not None else self._table.num_rows

    def batches(self) -> Iterator[pa.RecordBatch]:
        if self._file is not None:
            yield from self._file.iter_batches(batch_size=self.batch_rows)
        else:
            yield from self._table.to_batches(max_chunksize=self.batch_rows)

    def column_type(self, name: str) -> pa.DataType | None:
        """One column's Arrow type, from the file's schema (None: the split has no such column)."""
        schema = self._file.schema_arrow if self._file is not None else self._table.schema
        return schema.field(name).type if name in schema.names else None

    def column(self, name: str) -> pa.ChunkedArray | None:
        """One column's values (None: the split has no such column)."""
        if name not in self.columns:
            return None
        if self._file is not None:
            return self._file.read(columns=[name]).column(0)
        return self._table.column(name)
