"""Drift against the baseline's training statistics and train/eval skew, on generated data
(a loans-like table): called as kfp calls validate, with real TFDV (slow)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import make_artifact, make_outputs
from kfp.dsl import Artifact, Dataset

from kfkit.components import validate as component
from kfkit.splits import write_split

pytestmark = pytest.mark.slow

INCOME_SD = 15_000.0


def loans(rows: int = 4000, seed: int = 1, income_shift_sd: float = 0.0, remap_grades: bool = False):
    """A loans-like table: numeric amount, income, age; categorical grade, home; label default."""
    rng = np.random.default_rng(seed)
    grade = rng.choice(list("ABCDEFG"), rows, p=[0.18, 0.28, 0.25, 0.15, 0.08, 0.04, 0.02])
    if remap_grades:
        grade = np.where(np.isin(grade, ["B", "C"]), "A", grade)
    return pd.DataFrame(
        {
            "loan_amount": rng.lognormal(9.5, 0.6, rows),
            "income": rng.normal(60_000, INCOME_SD, rows) + income_shift_sd * INCOME_SD,
            "age": rng.integers(21, 70, rows),
            "grade": grade,
            "home": rng.choice(["RENT", "OWN", "MORTGAGE"], rows, p=[0.4, 0.15, 0.45]),
            "default": rng.choice(["yes", "no"], rows, p=[0.15, 0.85]),
        }
    )


def call(
    folder: Path,
    train: pd.DataFrame,
    evaluation: pd.DataFrame,
    baseline=None,
    split_meta_label="default",
    **params,
):
    split_meta = {"label_column": split_meta_label, "dataset_fingerprint": "f" * 64}
    splits = {}
    for name, frame in (("train_split", train), ("eval_split", evaluation)):
        splits[name] = make_artifact(Dataset, folder, name, split_meta)
        write_split(frame, splits[name].path)
    outputs = make_outputs(component, folder)
    baseline = baseline or make_artifact(
        Artifact, folder, "baseline", {"found": False, "reason": "never pushed"}
    )
    arguments = {"policy": "warn", "schema_uri": "", "task_name": "validate", **params}
    component.python_func(**splits, baseline=baseline, **outputs, **arguments)
    return outputs


def split(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    return frame.iloc[: len(frame) * 4 // 5].reset_index(drop=True), frame.iloc[
        len(frame) * 4 // 5 :
    ].reset_index(drop=True)


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    """As resolve_baseline hands over version 1 of 'loans': the schema and the train split's
    statistics train kept beside the model (train_statistics.pb), metadata `found`."""
    root = tmp_path_factory.mktemp("baseline-run")
    first = call(root, *split(loans(seed=1)))
    assert first["anomalies"].metadata["blessed"] is True
    folder = root / "resolved"
    artifact = make_artifact(
        Artifact,
        folder,
        "baseline",
        {"found": True, "model_name": "loans", "version": "1", "uri": "s3://models/loans/1"},
    )
    Path(artifact.path).mkdir(parents=True)
    shutil.copyfile(Path(first["schema"].path) / "schema.pbtxt", Path(artifact.path) / "schema.pbtxt")
    shutil.copyfile(Path(first["statistics"].path) / "train.pb", Path(artifact.path) / "train_statistics.pb")
    return artifact


def test_a_numeric_column_shifted_by_three_sd_is_drift_naming_feature_and_distance(
    baseline, tmp_path, capsys
):
    out = call(tmp_path, *split(loans(seed=2, income_shift_sd=3)), baseline=baseline)
    meta = out["anomalies"].metadata
    assert meta["blessed"] is False
    assert set(meta["anomalies"]) == {"drift:income"}  # only the shifted column, no skew
    text = meta["anomalies"]["drift:income"]
    assert "loans version 1" in text and "Jensen-Shannon divergence 0.7" in text and "threshold 0.2" in text
    assert meta["drift"]["income"] > 0.7 and all(v < 0.2 for k, v in meta["drift"].items() if k != "income")
    assert meta["drift_baseline"] == "loans version 1"
    report = Path(out["report"].path).read_text()
    assert "## Drift against the baseline" in report
    assert f"| income | Jensen-Shannon divergence | {meta['drift']['income']:.4f} | 0.2 | DRIFTED |" in report
    assert "| grade | L-infinity distance |" in report and "| ok |" in report
    anomalies_text = (Path(out["anomalies"].path) / "anomalies.pbtxt").read_text()
    assert 'key: "drift:income"' in anomalies_text and "drift_skew_info" in anomalies_text
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        call(tmp_path / "fail", *split(loans(seed=2, income_shift_sd=3)), baseline=baseline, policy="fail")
    assert exit_info.value.code == 1
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("kfkit validate: error: data validation failed (1 anomaly")
    assert "drift:income: drifted from loans version 1's training data: Jensen-Shannon divergence 0.7" in line


def test_a_remapped_categorical_is_drift(baseline, tmp_path):
    meta = call(tmp_path, *split(loans(seed=3, remap_grades=True)), baseline=baseline)["anomalies"].metadata
    assert set(meta["anomalies"]) == {"drift:grade"}
    assert "L-infinity distance 0.5" in meta["anomalies"]["drift:grade"]
    assert meta["anomalies"]["drift:grade"].endswith("(most changed value: A)")
    assert meta["drift"]["grade"] > 0.5


def test_skew_between_train_and_eval_is_caught_on_a_first_run(tmp_path):
    train, evaluation = split(loans(seed=4))
    evaluation = evaluation.assign(income=evaluation["income"] + 3 * INCOME_SD)
    out = call(tmp_path, train, evaluation)
    meta = out["anomalies"].metadata
    assert set(meta["anomalies"]) == {"skew:income"}
    assert "Jensen-Shannon divergence 0.7" in meta["anomalies"]["skew:income"]
    assert meta["skew"]["income"] > 0.7 and meta["drift"] == {}
    report = Path(out["report"].path).read_text()
    assert "first run of this model: no baseline, nothing to compare with" in report.lower()
    assert "| income | Jensen-Shannon divergence |" in report and "| SKEWED |" in report


def test_an_unchanged_rerun_and_a_fresh_sample_are_not_drift(baseline, tmp_path):
    same = call(tmp_path / "same", *split(loans(seed=1)), baseline=baseline)["anomalies"].metadata
    assert same["blessed"] is True and same["anomalies"] == {}
    assert set(same["drift"]) == {"loan_amount", "income", "age", "grade", "home", "default"}
    assert all(v == 0.0 for v in same["drift"].values())
    fresh = call(tmp_path / "fresh", *split(loans(seed=5)), baseline=baseline)["anomalies"].metadata
    assert fresh["blessed"] is True and 0 < max(fresh["drift"].values()) < 0.1


def test_an_override_loosens_one_feature_and_off_turns_it_off(baseline, tmp_path):
    shifted = split(loans(seed=2, income_shift_sd=3))
    loose = call(tmp_path / "loose", *shifted, baseline=baseline, drift_thresholds={"income": 0.9})
    assert loose["anomalies"].metadata["blessed"] is True
    assert "| income | Jensen-Shannon divergence | 0.7" in Path(loose["report"].path).read_text()
    off = call(tmp_path / "off", *shifted, baseline=baseline, drift_thresholds={"income": "off"})
    assert off["anomalies"].metadata["blessed"] is True
    assert off["anomalies"].metadata["drift"]["income"] > 0.7  # still measured and recorded
    assert "| 0.2 | DRIFTED |" not in Path(off["report"].path).read_text()
    assert "| off | off |" in Path(off["report"].path).read_text()
    # Loosening income does not loosen grade.
    both = loans(seed=2, income_shift_sd=3, remap_grades=True)
    meta = call(tmp_path / "both", *split(both), baseline=baseline, drift_thresholds={"income": 1})[
        "anomalies"
    ].metadata
    assert set(meta["anomalies"]) == {"drift:grade"}


@pytest.mark.parametrize("parameter", ["drift_thresholds", "skew_thresholds"])
def test_an_unknown_feature_in_the_overrides_is_one_line(baseline, tmp_path, capsys, parameter):
    with pytest.raises(SystemExit) as exit_info:
        call(tmp_path, *split(loans(seed=1)), baseline=baseline, **{parameter: {"incme": 0.5}})
    assert exit_info.value.code == 1
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line == (
        f"kfkit validate: error: The '{parameter}' parameter of validate must map features of the "
        "schema (loan_amount, income, age, grade, home, default) to thresholds. "
        "Got unknown feature(s) ['incme'] instead."
    )


def _section(page: str, feature: str) -> str:
    start = page.rindex("<section", 0, page.index(f'id="feature-{feature}"'))
    return page[start : page.index("</section>", start)]


def _standard_bucket_count(path: Path) -> dict[str, int]:
    from tensorflow_metadata.proto.v0 import statistics_pb2

    stats = statistics_pb2.DatasetFeatureStatisticsList.FromString(path.read_bytes())
    counts = {}
    for feature in stats.datasets[0].features:
        for histogram in feature.num_stats.histograms:
            if histogram.type == histogram.STANDARD:
                counts[feature.path.step[0]] = len(histogram.buckets)
    return counts


def test_the_html_report_draws_each_split_and_marks_the_drifted_feature(baseline, tmp_path):
    out = call(tmp_path, *split(loans(seed=2, income_shift_sd=3)), baseline=baseline)
    page = Path(out["html"].path).read_text()
    assert "<script" not in page.lower() and "http" not in page
    assert "<h2>Drift against the baseline</h2>" in page and "<h2>Features</h2>" in page
    # One histogram bar per TFDV bucket, for train (s0), eval (s1) and the baseline's data (s2).
    train = _standard_bucket_count(Path(out["statistics"].path) / "train.pb")
    evaluation = _standard_bucket_count(Path(out["statistics"].path) / "eval.pb")
    before = _standard_bucket_count(Path(baseline.path) / "train_statistics.pb")
    income = _section(page, "income")
    assert 'class="feature anomaly"' in income and "drift:income: drifted from loans version 1" in income
    assert income.count('class="bar s0"') == train["income"] > 1
    assert income.count('class="bar s1"') == evaluation["income"]
    assert income.count('class="bar s2"') == before["income"]
    assert "loans version 1 train" in page
    assert 'class="feature"' in _section(page, "age")  # not highlighted
    # Categorical: one bar per value and split.
    grade = _section(page, "grade")
    assert grade.count('class="bar s0"') == grade.count('class="bar s2"') == 7
    # Drift chart: one bar per feature, only income beyond its (dashed) threshold.
    drift = page[page.index('class="chart bars drift"') :]
    drift = drift[: drift.index("</svg>")]
    features = len(out["anomalies"].metadata["drift"])
    assert drift.count("<rect") == features == 6 and drift.count('class="mark"') == features
    assert drift.count('class="bar s0 over"') == 1 and "income distance: 0.7" in drift


def _scoring_baseline(baseline, folder: Path, label_column: str):
    """The same version as resolve_baseline hands it over in the scoring pipeline: with the
    label column its manifest names."""
    return make_artifact(
        Artifact, Path(baseline.path).parent, "baseline", {**baseline.metadata, "label_column": label_column}
    )


def test_a_batch_to_score_is_checked_without_its_label_and_drift_is_reported(baseline, tmp_path, capsys):
    """No label and no eval rows (ingest's scoring mode): TFDV's SERVING environment, where the
    label is not expected; drift reported, and with policy warn the task goes on."""
    batch = loans(seed=2).drop(columns=["default"])
    empty = batch.iloc[:0]
    scoring = _scoring_baseline(baseline, tmp_path, "default")

    clean = call(tmp_path / "clean", batch, empty, baseline=scoring, split_meta_label="")

    meta = clean["anomalies"].metadata
    assert meta["blessed"] is True and meta["anomalies"] == {} and meta["skew"] == {}
    assert set(meta["drift"]) == {"loan_amount", "income", "age", "grade", "home"}
    assert sorted(p.name for p in Path(clean["statistics"].path).iterdir()) == ["train.pb"]
    # Without the SERVING environment the missing label is an anomaly of the batch.
    unlabelled = call(tmp_path / "plain", batch, empty, baseline=baseline, split_meta_label="")
    assert "train:default" in unlabelled["anomalies"].metadata["anomalies"]

    capsys.readouterr()
    shifted = loans(seed=2, income_shift_sd=3).drop(columns=["default"])
    drifted = call(tmp_path / "drift", shifted, shifted.iloc[:0], baseline=scoring, split_meta_label="")
    assert set(drifted["anomalies"].metadata["anomalies"]) == {"drift:income"}
    assert "NOT blessed (policy warn: reported, the batch is still scored)" in capsys.readouterr().out
