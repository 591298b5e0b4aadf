"""Ingest logic on local files: deterministic split and fingerprint, clear errors."""

from __future__ import annotations

import hashlib
import json
import os
import time

import pandas as pd
import pytest
from conftest import PENGUINS

from kfkit.components.ingest.executor import ingest, ingest_to, list_source
from kfkit.components.resolve_source.executor import resolve
from kfkit.errors import KfkitError
from kfkit.local_cache import CACHE_DIR_ENV, ENABLED_ENV, HashMemo


def test_split_and_fingerprint_are_deterministic():
    first, second = ingest(str(PENGUINS), "species"), ingest(str(PENGUINS), "species")
    assert first.metadata["dataset_fingerprint"] == second.metadata["dataset_fingerprint"]
    pd.testing.assert_frame_equal(first.eval, second.eval)
    assert first.metadata["train_rows"] + first.metadata["eval_rows"] == 344
    assert 0.1 < first.metadata["eval_rows"] / 344 < 0.3


def test_same_row_lands_in_the_same_split_when_other_rows_change(tmp_path):
    frame = pd.read_csv(PENGUINS, na_values=["NA"]).reset_index(names="penguin_id")
    full = tmp_path / "full.csv"
    frame.to_csv(full, index=False)
    half = tmp_path / "half.csv"
    frame.iloc[::2].to_csv(half, index=False)
    ids_full = set(ingest(str(full), "species", split_key="penguin_id").eval["penguin_id"])
    ids_half = set(ingest(str(half), "species", split_key="penguin_id").eval["penguin_id"])
    assert ids_half == {i for i in ids_full if i % 2 == 0}


def test_fingerprint_changes_with_one_byte(tmp_path):
    data = PENGUINS.read_bytes()
    changed = tmp_path / "p.csv"
    changed.write_bytes(data.replace(b"39.1", b"39.2", 1))
    assert (
        ingest(str(changed), "species").metadata["dataset_fingerprint"]
        != ingest(str(PENGUINS), "species").metadata["dataset_fingerprint"]
    )


def test_parquet_with_dates_is_normalised(tmp_path):
    frame = pd.read_csv(PENGUINS, na_values=["NA"])
    frame["observed"] = pd.Timestamp("2008-11-01") + pd.to_timedelta(frame.index, unit="D")
    path = tmp_path / "p.parquet"
    frame.to_parquet(path)
    result = ingest(str(path), "species")
    assert result.metadata["source_format"] == "parquet"
    assert result.train["observed"].iloc[0].startswith("20")


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("", "file is empty"),
        ("species,island\n", "no data rows"),
        ("a,b\n1,2\n", "label column 'species' not found (columns: a, b)"),
        ("species,alcohol,alcohol\nred,1,2\n", "duplicate column name(s) ['alcohol'] in the header"),
        ("species,,colour\nred,1,2\n", "column(s) [2] of the header have no name"),
    ],
)
def test_bad_files_give_one_clear_error(tmp_path, content, expected):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(KfkitError, match=None) as info:
        ingest(str(path), "species")
    assert expected in str(info.value) and str(path) in str(info.value)


def test_missing_local_path_and_bad_fraction():
    with pytest.raises(KfkitError, match="no such file or folder"):
        ingest("/nonexistent/data.csv", "species")
    with pytest.raises(
        KfkitError, match="The 'eval_fraction' parameter of ingest must be a float in the range"
    ):
        ingest(str(PENGUINS), "species", eval_fraction=1.5)


def test_no_split_and_no_label_keep_every_row_in_the_order_read(tmp_path):
    """A batch to score: eval_fraction=0 and label_column="": rows with a missing species stay,
    every row is in the train split at its position in the file, the eval split is empty."""
    frame = pd.read_csv(PENGUINS, na_values=["NA"])
    frame.loc[[3, 10], "species"] = None
    path = tmp_path / "batch.csv"
    frame.to_csv(path, index=False)

    result = ingest(str(path), "", eval_fraction=0.0)

    assert result.metadata["rows"] == result.metadata["train_rows"] == 344
    assert result.metadata["eval_rows"] == 0 and len(result.eval) == 0
    assert result.metadata["rows_dropped_missing_label"] == 0
    assert list(result.eval.columns) == list(frame.columns)
    pd.testing.assert_series_equal(result.train["bill_length_mm"], frame["bill_length_mm"])
    assert result.train["species"].isna().sum() == 2
    # The fingerprint is the bytes', whatever the split.
    split = ingest(str(path), "species")
    assert result.metadata["dataset_fingerprint"] == split.metadata["dataset_fingerprint"]


def test_no_split_is_exactly_zero():
    from kfkit.components.ingest.executor import check

    check({"eval_fraction": 0.0})
    check({"eval_fraction": 0})
    with pytest.raises(KfkitError, match="must be a float in the range"):
        check({"eval_fraction": -0.1})
    with pytest.raises(KfkitError, match="must be a float in the range"):
        check({"eval_fraction": 1.0})


def test_component_writes_both_splits_with_their_metadata(tmp_path):
    from conftest import make_artifact
    from kfp.dsl import Dataset

    from kfkit.components import ingest as component
    from kfkit.splits import read_split

    train_split = make_artifact(Dataset, tmp_path, "train_split")
    eval_split = make_artifact(Dataset, tmp_path, "eval_split")
    component.python_func(
        source_uri=str(PENGUINS),
        label_column="species",
        train_split=train_split,
        eval_split=eval_split,
        eval_fraction=0.2,
        split_key="",
        task_name="ingest-2",
    )
    rows = len(read_split(train_split.path)) + len(read_split(eval_split.path))
    assert rows == 344 == train_split.metadata["rows"]
    assert train_split.metadata["split"] == "train" and eval_split.metadata["split"] == "eval"
    assert train_split.metadata["dataset_fingerprint"] == eval_split.metadata["dataset_fingerprint"]
    assert eval_split.metadata["split_rows"] == len(read_split(eval_split.path))


def test_component_bad_input_is_one_line_and_exit_1(tmp_path, capsys):
    from conftest import make_artifact
    from kfp.dsl import Dataset

    from kfkit.components import ingest as component

    with pytest.raises(SystemExit) as exit_info:
        component.python_func(
            source_uri=str(PENGUINS),
            label_column="no_such_column",
            train_split=make_artifact(Dataset, tmp_path, "train_split"),
            eval_split=make_artifact(Dataset, tmp_path, "eval_split"),
            eval_fraction=0.2,
            split_key="",
            task_name="ingest",
        )
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("kfkit ingest: error: ") and "no_such_column" in err[0]


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("", "The 'source_uri' parameter of ingest must name a file, folder or object. Got '' instead."),
        ("   ", "must name a file, folder or object"),
        ("s3://raw/../secrets/data.csv", "'..' is not allowed in an object URI"),
    ],
)
def test_source_uris_that_are_no_source_are_refused_before_reading(uri, expected):
    with pytest.raises(KfkitError) as info:
        ingest(uri, "species")
    assert expected in str(info.value)


def test_a_quoted_comma_in_a_header_is_one_name_not_a_duplicate(tmp_path):
    from pathlib import Path

    from kfkit.components.ingest.executor import list_source, parse_file

    path = tmp_path / "quoted.csv"
    path.write_bytes(b'species,"a,b",a\nred,1,2\n')
    [source] = list_source(str(path))
    assert source.path == Path(path)
    frame = parse_file(source)
    assert list(frame.columns) == ["species", "a,b", "a"]


def test_a_large_source_is_hashed_once_in_a_cached_run_and_again_once_edited(tmp_path, monkeypatch):
    """In a local run with the cache on, ingest takes the source's sha256 from the run's hash memo
    (written by resolve_source's hashing) while the file is unchanged; a source edited in place,
    same size and modification time put back, is hashed again and refused as changed data."""
    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "cache"))
    monkeypatch.delenv(ENABLED_ENV, raising=False)
    source = tmp_path / "large.csv"
    rows = HashMemo.MIN_BYTES // 8 + 1  # 8 bytes a row: a source large enough for a memo
    source.write_text("amount,label\n" + "".join(f"{i % 9973:5d},{'ab'[i % 2]}\n" for i in range(rows)))
    time.sleep(HashMemo.SETTLED_S * 2)  # settled, as a source written before the run is
    real = hashlib.sha256(source.read_bytes()).hexdigest()
    identity = resolve(str(source))["source_identity"]
    [memo_file] = list((tmp_path / "cache" / "hashes").iterdir())
    assert json.loads(memo_file.read_text())["sha256"] == real
    splits = (str(tmp_path / "train.parquet"), str(tmp_path / "eval.parquet"))
    assert ingest_to(str(source), "label", *splits, expected_identity=identity)["dataset_fingerprint"] == real
    # The memo answers while the file is unchanged: a planted value comes back, so it was not read.
    memo_file.write_text(json.dumps({**json.loads(memo_file.read_text()), "sha256": "planted"}))
    assert list_source(str(source))[0].sha256 == "planted"

    status = source.stat()
    with open(source, "r+b") as handle:
        handle.seek(len("amount,label\n"))
        handle.write(b"7")
    os.utime(source, ns=(status.st_atime_ns, status.st_mtime_ns))
    assert (source.stat().st_size, source.stat().st_mtime_ns) == (status.st_size, status.st_mtime_ns)
    with pytest.raises(KfkitError, match="the data changed between resolve_source and ingest"):
        ingest_to(str(source), "label", *splits, expected_identity=identity)
    assert list_source(str(source))[0].sha256 == hashlib.sha256(source.read_bytes()).hexdigest() != real
