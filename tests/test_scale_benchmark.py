"""The scale benchmark's generator and memory sampler (benchmarks/scale.py), on small tables: no
pipeline runs and no timings here (those live in the benchmark)."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from kfkit.components.ingest.executor import ingest

REPO = Path(__file__).resolve().parents[1]
ROWS = 2_000


def _load_scale():
    spec = importlib.util.spec_from_file_location("scale_benchmark", REPO / "benchmarks" / "scale.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


scale = _load_scale()


@pytest.fixture(scope="module")
def loans_csv(tmp_path_factory) -> Path:
    return scale.generate(ROWS, 11, "csv", tmp_path_factory.mktemp("loans"))


def pd_read(path: Path):
    """The table as a user would read it with pandas (money texts as numbers)."""
    import pandas as pd

    return pd.read_csv(path, thousands=",")


def test_table_has_the_loans_columns_and_types(loans_csv):
    table = pa_csv.read_csv(loans_csv)
    assert table.num_rows == ROWS
    assert table.column_names == scale.COLUMNS
    assert len(scale.COLUMNS) == 20
    types = dict(zip(table.column_names, table.schema.types, strict=True))
    money = re.compile(r"^\d{1,3}(,\d{3})*\.\d\d$")
    for name in scale.MONEY:
        assert types[name] == pa.string()
        texts = [t for t in table.column(name).to_pylist() if t]
        assert texts and all(money.match(t) for t in texts), name
    assert any("," in t for t in table.column("annual_inc").to_pylist() if t)  # "65,000.00"
    for name in set(scale.NUMERIC) - set(scale.MONEY):
        assert pa.types.is_floating(types[name]) or pa.types.is_integer(types[name]), name
    assert types["open_acc"] == pa.int64()
    assert types["issue_d"] == pa.date32()  # ISO dates, which Arrow reads as dates
    assert set(table.column("grade").to_pylist()) == set("ABCDEFG")
    for name, values in (
        ("home_ownership", scale.HOME_OWNERSHIP),
        ("purpose", scale.PURPOSES),
        ("addr_state", scale.STATES),
        ("verification_status", scale.VERIFICATION),
    ):
        assert set(table.column(name).to_pylist()) <= set(values), name
    assert set(table.column(scale.LABEL).to_pylist()) == set(scale.LABEL_VALUES)


def test_numeric_columns_miss_about_two_percent_and_the_others_none(loans_csv):
    frame = pd_read(loans_csv)
    numeric_missing = frame[scale.NUMERIC].isna().to_numpy().mean()
    assert 0.01 < numeric_missing < 0.03
    others = [c for c in scale.COLUMNS if c not in scale.NUMERIC]
    assert not frame[others].isna().any().any()


def test_the_label_depends_on_the_features(loans_csv):
    """A linear model (least squares, fitted on one half, scored on the other) beats always
    predicting the majority class, as the pipeline's gate requires."""
    frame = pd_read(loans_csv)
    label = (frame[scale.LABEL] == "Charged Off").to_numpy(dtype=float)
    assert 0.1 < label.mean() < 0.3
    numbers = frame[["int_rate", "dti", "annual_inc", "fico_range_low"]]
    numbers = numbers.fillna(numbers.median()).assign(annual_inc=lambda f: np.log(f["annual_inc"]))
    features = np.column_stack([np.ones(len(frame)), numbers.to_numpy()])
    half = len(frame) // 2
    weights = np.linalg.lstsq(features[:half], label[:half], rcond=None)[0]
    accuracy = ((features[half:] @ weights > 0.5) == (label[half:] == 1)).mean()
    majority = max(label[half:].mean(), 1 - label[half:].mean())
    assert accuracy > majority + 0.03


def test_same_seed_same_bytes_other_seed_other_bytes(loans_csv, tmp_path):
    again = scale.generate(ROWS, 11, "csv", tmp_path / "again")
    assert again.read_bytes() == loans_csv.read_bytes()
    other = scale.generate(ROWS, 12, "csv", tmp_path / "other")
    assert other.read_bytes() != loans_csv.read_bytes()


def test_generated_files_are_cached_by_rows_seed_and_format(tmp_path):
    first = scale.generate(300, 5, "csv", tmp_path)
    first.write_text("not regenerated")  # a cached file is used as it is
    assert scale.generate(300, 5, "csv", tmp_path).read_text() == "not regenerated"
    assert scale.generate(301, 5, "csv", tmp_path) != first
    assert scale.generate(300, 5, "parquet", tmp_path).suffix == ".parquet"
    assert not list(tmp_path.glob("*.partial"))


def test_chunks_write_one_header_and_every_row(tmp_path, monkeypatch):
    monkeypatch.setattr(scale, "CHUNK_ROWS", 700)
    path = scale.generate(ROWS, 11, "csv", tmp_path)
    table = pa_csv.read_csv(path)
    assert table.num_rows == ROWS
    assert path.read_text().count("loan_status") == 1
    assert pa.types.is_floating(table.schema.field("int_rate").type)  # no header line among the rows
    parquet = pq.read_table(scale.generate(ROWS, 11, "parquet", tmp_path))
    assert parquet.num_rows == ROWS
    assert parquet.num_columns == 20


def test_kfkit_ingest_reads_csv_and_parquet_as_the_same_table(loans_csv, tmp_path):
    parquet = scale.generate(ROWS, 11, "parquet", tmp_path)
    from_csv = ingest(str(loans_csv), scale.LABEL)
    from_parquet = ingest(str(parquet), scale.LABEL)
    assert from_csv.metadata["rows"] == ROWS
    assert from_csv.metadata["columns"] == 20
    train = from_csv.train
    for name in scale.MONEY:  # quoted money texts become numbers
        assert train[name].dtype == np.float64, name
    assert train["issue_d"].dtype == object
    assert re.match(r"^\d{4}-\d\d-\d\d$", train["issue_d"].dropna().iloc[0])
    assert list(from_parquet.train.columns) == list(train.columns)
    assert from_parquet.metadata["rows"] == ROWS
    assert dict(from_parquet.train.dtypes) == dict(train.dtypes)


def test_tree_memory_counts_grandchildren():
    """A grandchild holding 150 MB shows in the tree's resident and proportional memory."""
    holder = (
        "import sys; b = bytearray(150 * 2**20); b[::4096] = b'x' * len(range(0, len(b), 4096)); "
        "print('ready', flush=True); sys.stdin.read()"
    )
    parent = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {holder!r}])"
    proc = subprocess.Popen(
        [sys.executable, "-c", parent], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        assert scale.tree_rss(proc.pid) > 150 * 2**20
        assert scale.tree_pss(proc.pid) > 150 * 2**20
    finally:
        proc.stdin.close()
        proc.wait(timeout=30)


def test_results_keep_earlier_runs_below_the_newest(tmp_path):
    results = tmp_path / "scale.md"
    scale.add_to_results("## first run\n", results)
    scale.add_to_results("## second run\n", results)
    text = results.read_text()
    assert text.startswith(scale.RESULTS_HEADER)
    assert text.count(scale.RESULTS_HEADER) == 1
    assert text.index("## second run") < text.index("## first run")


def _size_result(path: Path, rows: int, task_seconds: dict, rss_gb: float, status: str = "SUCCEEDED"):
    tasks = dict.fromkeys(task_seconds, status)
    summary = {"status": status, "outcome": "pushed", "tasks": tasks, "seconds": sum(task_seconds.values())}
    peak = scale.Peak(int(rss_gb * scale.GB), "ingest", {task: int(rss_gb * scale.GB) for task in tasks})
    run = scale.PipelineRun(summary, summary["seconds"] + 5, peak, peak, task_seconds)
    arrow = scale.Floor(2.0, 3.0, scale.GB, {"every_run_seconds": [2.0, 2.0, 2.1]})
    tfdv = scale.Floor(10.0, 20.0, scale.GB, {"import_seconds": 9.0})
    return scale.SizeResult(rows, path, None, arrow, tfdv, run)


def test_report_sets_each_size_against_the_issue_targets(loans_csv):
    results = [
        _size_result(loans_csv, 1_000_000, {"ingest": 5.0, "validate": 9.0, "train": 4.0}, 1.5),
        _size_result(loans_csv, 10_000_000, {"ingest": 50.0, "validate": 60.0, "train": 40.0}, 4.5),
    ]
    text = scale.report(results, {"label_column": "loan_status"}, "csv", 7, "test machine")
    assert "| ingest / Arrow parse (target <= 3) | 2.5 | 25.0 |" in text
    assert "ingest 2.5x (meets <= 3x) the Arrow parse; validate 4.5x (misses <= 4x); pipeline 18.0 s " in text
    assert "(misses <= 15 s)" in text
    assert "peak 4.5 GB (misses <= 4 GB) (sum of RSS)" in text
    assert "`label_column=loan_status`" in text
