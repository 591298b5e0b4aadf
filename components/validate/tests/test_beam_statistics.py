"""Validate's statistics read the splits in Arrow batches: the same numbers as TFDV on the whole
DataFrame, and the same again when they run as a Beam pipeline on the DirectRunner in
multi-processing mode (worker processes that import TFDV themselves). With real TFDV and Beam."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import make_artifact, make_outputs
from kfp.dsl import Artifact, Dataset
from tensorflow_metadata.proto.v0 import statistics_pb2

from kfkit.components import validate as component
from kfkit.components.validate.executor import beam_pipeline_options, check, split_statistics
from kfkit.errors import KfkitError
from kfkit.splits import write_split

MULTI_PROCESSING = ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]


def loans(rows: int, seed: int = 3) -> pd.DataFrame:
    """Numbers with missing values, integers, categories, ISO dates, a row identifier and a label,
    as ingest writes them (text as str, missing as NaN)."""
    rng = np.random.default_rng(seed)
    income = rng.normal(60_000, 15_000, rows)
    income[rng.random(rows) < 0.05] = np.nan
    grade = rng.choice(list("ABCDEFG"), rows).astype(object)
    grade[rng.random(rows) < 0.03] = np.nan
    days = pd.date_range("2020-01-01", periods=300).strftime("%Y-%m-%d").to_numpy(dtype=object)
    return pd.DataFrame(
        {
            "loan_id": np.arange(rows) + 10_000,
            "income": income,
            "age": rng.integers(21, 70, rows),
            "grade": grade,
            "home": rng.choice(["RENT", "OWN", "MORTGAGE"], rows).astype(object),
            "issued": days[rng.integers(0, len(days), rows)],
            "default": rng.choice(["yes", "no"], rows, p=[0.2, 0.8]).astype(object),
        }
    )


def features(statistics) -> dict[str, statistics_pb2.FeatureNameStatistics]:
    return {f.path.step[0]: f for f in statistics.datasets[0].features}


def assert_same_statistics(found, expected) -> None:
    """Feature by feature: counts and missing exactly; mean, std, min, max, median and the
    equal-width histogram within float tolerance (sums merge in another order); top values and
    distinct counts exactly."""
    assert found.datasets[0].num_examples == expected.datasets[0].num_examples
    found, expected = features(found), features(expected)
    assert sorted(found) == sorted(expected)
    for name, want in expected.items():
        got = found[name]
        assert got.type == want.type, name
        if want.HasField("num_stats"):
            got_num, want_num = got.num_stats, want.num_stats
            assert got_num.common_stats.num_non_missing == want_num.common_stats.num_non_missing, name
            assert got_num.common_stats.num_missing == want_num.common_stats.num_missing, name
            assert got_num.num_zeros == want_num.num_zeros, name
            for field in ("mean", "std_dev", "min", "max", "median"):
                want_value = getattr(want_num, field)
                assert getattr(got_num, field) == pytest.approx(want_value, rel=1e-9), (name, field)
            got_buckets, want_buckets = got_num.histograms[0].buckets, want_num.histograms[0].buckets
            for got_bucket, want_bucket in zip(got_buckets, want_buckets, strict=True):
                got_edges = (got_bucket.low_value, got_bucket.high_value, got_bucket.sample_count)
                want_edges = (want_bucket.low_value, want_bucket.high_value, want_bucket.sample_count)
                assert got_edges == pytest.approx(want_edges), name
        else:
            got_text, want_text = got.string_stats, want.string_stats
            assert got_text.common_stats.num_non_missing == want_text.common_stats.num_non_missing, name
            assert got_text.common_stats.num_missing == want_text.common_stats.num_missing, name
            assert got_text.unique == want_text.unique, name
            assert got_text.avg_length == pytest.approx(want_text.avg_length), name
            top = {(v.value, v.frequency) for v in got_text.top_values}
            assert top == {(v.value, v.frequency) for v in want_text.top_values}, name


def write_splits(folder: Path, frame: pd.DataFrame) -> dict:
    meta = {"label_column": "default", "dataset_fingerprint": "f" * 64}
    cut = len(frame) * 4 // 5
    splits = {}
    for name, part in (("train_split", frame.iloc[:cut]), ("eval_split", frame.iloc[cut:])):
        splits[name] = make_artifact(Dataset, folder, name, meta)
        write_split(part.reset_index(drop=True), splits[name].path)
    return splits


def call(folder: Path, splits: dict, **params) -> dict:
    outputs = make_outputs(component, folder)
    baseline = make_artifact(Artifact, folder, "baseline", {"found": False, "reason": "never pushed"})
    arguments = {"policy": "warn", "schema_uri": "", "task_name": "validate", **params}
    component.python_func(**splits, baseline=baseline, **outputs, **arguments)
    return outputs


def read_statistics(outputs: dict, split: str):
    data = (Path(outputs["statistics"].path) / f"{split}.pb").read_bytes()
    return statistics_pb2.DatasetFeatureStatisticsList.FromString(data)


def test_batched_statistics_are_tfdv_statistics_of_the_whole_dataframe(tmp_path):
    from kfkit.components.validate.executor import _tfdv

    frame = loans(3000).assign(never_filled=None)  # a column of no values is a feature too
    write_split(frame, str(tmp_path / "split.parquet"))
    # 7 batches of 450 rows (the last one short): each merged into the running statistics.
    batched = split_statistics({"train": str(tmp_path / "split.parquet")}, batch_rows=450)
    assert_same_statistics(batched["train"], _tfdv().generate_statistics_from_dataframe(frame))


# Not marked slow: 18 s on a quiet 2-core machine (55 s when other jobs load it), most of it
# the two Beam workers importing TFDV; one pipeline serves both splits so they start once.
def test_beam_multi_processing_gives_the_in_process_statistics(tmp_path):
    splits = write_splits(tmp_path / "splits", loans(2500))
    in_process = call(tmp_path / "in_process", splits, problem_type="classification")
    on_beam = call(tmp_path / "beam", splits, problem_type="classification", beam_options=MULTI_PROCESSING)
    for split in ("train", "eval"):
        assert_same_statistics(read_statistics(on_beam, split), read_statistics(in_process, split))
    # The verdict and the roles built on those statistics agree too.
    for key in ("blessed", "anomalies", "feature_roles", "skew"):
        assert on_beam["schema"].metadata[key] == in_process["schema"].metadata[key], key
    assert in_process["schema"].metadata["feature_roles"]["loan_id"] == "identifier"
    assert in_process["schema"].metadata["feature_roles"]["issued"] == "date"


@pytest.mark.parametrize(
    ("beam_options", "expected"),
    [
        ("--s3_secret_access_key=abc", "must be a list of Beam pipeline options"),
        (["direct_num_workers=2", "s3_secret_access_key=abc"], "item 1 (starting 'direct_num_workers')"),
        (["--runner=FlinkRunner", "s3_secret_access_key=abc"], "item 2 (starting 's3_secret_access_key')"),
        (["--runner=FlinkRunner --flink_master=x"], "is not one option"),
        (["--runner=FlinkRunner", "--flink_master=flink:8081", "--environment_type=LOOPBACK"], None),
        (["--s3_secret_access_key=abc"], "credentials must not go through a pipeline parameter"),
        (["--s3_access_key_id=abc"], "credentials must not go through a pipeline parameter"),
    ],
)
def test_check_refuses_malformed_beam_options_and_credentials(beam_options, expected):
    if expected is None:
        check({"beam_options": beam_options})
        return
    with pytest.raises(KfkitError) as error:
        check({"beam_options": beam_options})
    message = str(error.value)
    assert expected in message and "beam_options" in message and "\n" not in message
    assert "abc" not in message  # a refused secret is not echoed back


def test_beam_refuses_unknown_options_and_bad_values_in_one_line():
    with pytest.raises(KfkitError) as unknown:
        beam_pipeline_options(["--direct_running_mod=multi_processing"])
    assert "Beam does not know" in str(unknown.value) and "direct_running_mod" in str(unknown.value)
    with pytest.raises(KfkitError) as bad:
        beam_pipeline_options(["--direct_running_mode=everywhere"])
    assert "invalid choice: 'everywhere'" in str(bad.value) and "\n" not in str(bad.value)
    options = beam_pipeline_options(MULTI_PROCESSING).get_all_options()
    assert options["direct_running_mode"] == "multi_processing" and options["direct_num_workers"] == 2


def test_free_text_words_and_characters_are_counted_as_pandas_counts_them():
    import pyarrow as pa

    from kfkit.feature_roles import decide_role

    # Leading and trailing whitespace, runs of spaces and empty texts: Arrow's whitespace split
    # alone would count empty words at both ends and one word in an empty text.
    texts = [f"  a long  description, number {i}  " for i in range(30)] + ["", "   "] * 5
    role = decide_role("notes", pa.chunked_array([texts]))
    words = pd.Series(texts).str.split().str.len().median()
    chars = pd.Series(texts).str.len().median()
    assert role.role == "free_text"
    assert role.evidence == f"32 distinct values in 40 rows, median {words:g} words, {chars:g} characters"
