"""The on-disk form of a Dataset artifact kfkit's components exchange: one Parquet file."""

from __future__ import annotations

from pathlib import Path

import pandas as pd


def write_split(frame: pd.DataFrame, path: str) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)


def read_split(path: str) -> pd.DataFrame:
    return pd.read_parquet(path)
