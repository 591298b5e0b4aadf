"""Ingest reads in batches: the split, the fingerprint and the column types do not depend on the
batch size or the file format, and the type of a column is decided by all of its values."""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import PENGUINS

from kfkit.components.ingest.executor import BATCH_ROWS_ENV, ingest, normalise
from kfkit.errors import KfkitError
from kfkit.values import parse_number

ROWS = 3000


def loans(rows: int = ROWS, seed: int = 3) -> pd.DataFrame:
    """Numbers with missing values, money as text, categories, a date, an integer, a label."""
    rng = np.random.default_rng(seed)
    income = rng.normal(50_000, 12_000, rows).round(2)
    income[rng.random(rows) < 0.05] = np.nan
    return pd.DataFrame(
        {
            "income": income,
            "loan_amnt": [f"{v:,.2f}" for v in rng.uniform(500, 40_000, rows)],  # "16,800.00"
            "grade": rng.choice(["A", "B", "C", "D"], rows).astype(object),
            "issue_d": [dt.date(2015, 1, 1) + dt.timedelta(days=int(d)) for d in rng.integers(0, 2000, rows)],
            "term": rng.integers(12, 72, rows),
            "verified": rng.random(rows) < 0.5,
            "defaulted": rng.choice(["yes", "no"], rows).astype(object),
        }
    )


@pytest.fixture(scope="module")
def loans_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("loans")
    frame = loans()
    frame.loc[7::97, "grade"] = None
    csv, parquet = folder / "loans.csv", folder / "loans.parquet"
    frame.assign(issue_d=[d.isoformat() for d in frame["issue_d"]]).to_csv(csv, index=False)
    frame.to_parquet(parquet)
    return csv, parquet


@pytest.fixture(params=["read once", "streamed twice"])
def read_mode(request, monkeypatch):
    """Both ways ingest reads: a small source once (kept between the passes; a CSV parsed whole),
    a large one streamed in both passes (here every source counts as large)."""
    if request.param == "streamed twice":
        monkeypatch.setattr(sys.modules[ingest.__module__], "READ_ONCE_BYTES", 0)
    return request.param


def test_split_and_fingerprint_are_the_same_for_every_batch_size_and_both_formats(loans_files, read_mode):
    csv, parquet = loans_files
    results = {
        (path.suffix, batch_rows): ingest(str(path), "defaulted", batch_rows=batch_rows)
        for path in (csv, parquet)
        for batch_rows in (7, 1000, 1_000_000)
    }
    reference = results[(".csv", 1_000_000)]
    assert 0 < len(reference.eval) < len(reference.train)
    for (suffix, batch_rows), result in results.items():
        pd.testing.assert_frame_equal(result.train, reference.train, obj=f"{suffix} train at {batch_rows}")
        pd.testing.assert_frame_equal(result.eval, reference.eval, obj=f"{suffix} eval at {batch_rows}")
        path = csv if suffix == ".csv" else parquet
        assert result.metadata["dataset_fingerprint"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert reference.train.dtypes.astype(str).to_dict() == {
        "income": "float64",
        "loan_amnt": "float64",
        "grade": "object",
        "issue_d": "object",
        "term": "int64",
        "verified": "int64",
        "defaulted": "object",
    }
    assert reference.train["issue_d"].str.fullmatch(r"\d{4}-\d{2}-\d{2}").all()


def test_the_split_of_the_bundled_penguins_is_pinned():
    """The split changed once, when ingest began to read in batches: a row's hash now mixes the
    bits of its normalised values (a text's own pandas hash) where it hashed each value's Python
    text. These rows pin it; a change here changes every trained model's eval set."""
    result = ingest(str(PENGUINS), "species")
    assert (result.metadata["train_rows"], result.metadata["eval_rows"]) == (277, 67)
    assert result.eval["bill_length_mm"].head(8).tolist() == pytest.approx(
        [40.3, math.nan, 39.2, 37.8, 36.6, 42.5, 40.9, 44.1], nan_ok=True
    )


def test_a_csv_column_is_typed_by_all_its_values_not_the_first_block(tmp_path, read_mode):
    """Arrow guesses a CSV column's type from its first block (at least a MiB): a later value
    that does not fit makes the column text, or a number read as text ("1,200.00")."""
    rows = 40_000  # about 1.4 MB: more than one block
    frame = pd.DataFrame(
        {
            "code": np.arange(rows).astype(object),
            "amount": np.round(np.linspace(1, 999, rows), 2).astype(object),
            "late": np.full(rows, "", dtype=object),
            "label": np.where(np.arange(rows) % 3 == 0, "a", "b"),
        }
    )
    frame.loc[rows - 1, ["code", "amount", "late"]] = ["A-17", "1,200.00", "2024-01-05"]
    path = tmp_path / "late.csv"
    frame.to_csv(path, index=False)
    result = ingest(str(path), "label", batch_rows=5000)
    both = pd.concat([result.train, result.eval])
    assert both["code"].dtype == object and "A-17" in set(both["code"]) and "17" in set(both["code"])
    assert both["amount"].dtype == "float64" and 1200.0 in set(both["amount"])
    assert both["late"].dropna().tolist() == ["2024-01-05"]


def test_numbers_written_as_text_read_as_parse_number_reads_them():
    texts = ["+5", " 42 ", "$1,200.50", "-€3", ".5", "1e3", "16,800.00", None]
    out = normalise(pd.DataFrame({"n": texts}))["n"]
    assert out.dtype == "float64"
    expected = [math.nan if t is None else parse_number(t) for t in texts]
    np.testing.assert_array_equal(out.to_numpy(), np.array(expected, dtype=float))


def test_bools_are_integers_and_with_a_missing_value_floats():
    out = normalise(pd.DataFrame({"all": [True, False, True], "some": ["true", None, "False"]}))
    assert out["all"].dtype == "int64" and out["all"].tolist() == [1, 0, 1]
    assert out["some"].dtype == "float64" and out["some"].isna().tolist() == [False, True, False]
    assert out["some"].dropna().tolist() == [1.0, 0.0]


def test_timestamps_with_fractions_read_as_one_text_form():
    moments = pd.to_datetime(["2024-01-05 10:30:00.250", "2024-01-06", None]).tz_localize("Europe/Paris")
    out = normalise(pd.DataFrame({"at": moments}))["at"]
    assert out.tolist()[:2] == ["2024-01-05T09:30:00.250000", "2024-01-05T23:00:00.000000"]
    assert out.isna().tolist() == [False, False, True]


def test_a_bad_batch_size_setting_is_one_line(monkeypatch):
    monkeypatch.setenv(BATCH_ROWS_ENV, "lots")
    with pytest.raises(KfkitError, match=f"{BATCH_ROWS_ENV}='lots': expected a positive number of rows"):
        ingest(str(PENGUINS), "species")


def test_an_object_is_streamed_and_fingerprinted_like_the_same_local_file(objects):
    objects.ensure_bucket("raw")
    objects.put_bytes("s3://raw/streaming/penguins.csv", PENGUINS.read_bytes())
    remote = ingest("s3://raw/streaming/penguins.csv", "species", store=objects)
    local = ingest(str(PENGUINS), "species")
    assert remote.metadata["dataset_fingerprint"] == hashlib.sha256(PENGUINS.read_bytes()).hexdigest()
    assert remote.metadata["dataset_fingerprint"] == local.metadata["dataset_fingerprint"]
    assert remote.metadata["source_etag"]
    pd.testing.assert_frame_equal(remote.eval, local.eval)


def test_a_row_shorter_than_the_header_is_one_line_naming_it(tmp_path):
    path = tmp_path / "short.csv"
    path.write_text('a,b,species\n1,"two\nlines",x\n1,2\n3,4,y\n')
    with pytest.raises(KfkitError) as info:
        ingest(str(path), "species")
    assert str(info.value) == f"{path}: cannot parse: Expected 3 fields in line 4, saw 2"


def test_parquet_types_read_as_the_same_table_in_csv_would(tmp_path):
    """Narrow integers and floats, a category and NaN written as a value (not as missing): the
    types a CSV of the same table gives, and pandas' stored index is no column."""
    frame = pd.DataFrame(
        {
            "count": np.arange(100, dtype="int32"),
            "ratio": np.array([0.5, np.nan, 1.5, 2.0] * 25, dtype="float32"),
            "colour": pd.Categorical(["red", "blue", None, "red"] * 25),
            "species": ["a", "b"] * 50,
        },
        index=pd.Index(range(100, 200), name="row"),
    )
    path = tmp_path / "typed.parquet"
    frame.to_parquet(path)
    result = ingest(str(path), "species")
    both = pd.concat([result.train, result.eval])
    assert both.dtypes.astype(str).to_dict() == {
        "count": "int64",
        "ratio": "float64",
        "colour": "object",
        "species": "object",
    }
    assert both["ratio"].isna().sum() == 25 and both["colour"].isna().sum() == 25


@pytest.mark.parametrize("change", ["other rows", "header only"])
def test_data_changed_since_resolve_source_is_refused_before_a_row_is_written(tmp_path, change):
    """The changed identity is what ingest reports, before writing any split, and ahead of the
    parse error the change causes (a header-only file)."""
    from kfkit.components.ingest.executor import ingest_to, list_source, source_identity

    data = tmp_path / "penguins.csv"
    data.write_bytes(PENGUINS.read_bytes())
    resolved = source_identity(list_source(str(data)))
    lines = PENGUINS.read_bytes().splitlines(keepends=True)
    data.write_bytes(b"".join(lines[:-3]) if change == "other rows" else lines[0])
    train, evaluation = tmp_path / "out" / "train", tmp_path / "out" / "eval"
    with pytest.raises(KfkitError, match="the data changed between resolve_source and ingest"):
        ingest_to(str(data), "species", str(train), str(evaluation), expected_identity=resolved)
    assert not train.exists() and not evaluation.exists()
    data.write_bytes(PENGUINS.read_bytes())  # back as it was: the same identity, ingested
    metadata = ingest_to(str(data), "species", str(train), str(evaluation), expected_identity=resolved)
    assert metadata["source_identity"] == resolved
    assert metadata["dataset_fingerprint"] == hashlib.sha256(PENGUINS.read_bytes()).hexdigest()
