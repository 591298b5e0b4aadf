"""evaluate's slices on a generated table where the model is fine overall and bad on one region:
the worst slice named with its metrics, a floor that refuses it, numeric quantile bins, slices too
small to gate, the slice chart in the HTML report, and the parameters checked before any task."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import make_artifact, make_outputs, write_schema
from kfp.dsl import Artifact, Dataset, Model

from kfkit.components import evaluate as component
from kfkit.components.evaluate.executor import MIN_SLICE_ROWS, blessing_reason, check, evaluate
from kfkit.components.train.executor import manifest_metadata, train
from kfkit.errors import KfkitError
from kfkit.splits import write_split

REGIONS = ("north", "south", "east", "west")


def regions(rows: int, seed: int) -> pd.DataFrame:
    """``approved`` is ``x > 0`` (plus a little noise) everywhere but in "west", where it is a coin
    toss the features cannot explain, and in "tiny" (a handful of rows), where it is reversed.
    A few rows have no region at all."""
    rng = np.random.default_rng(seed)
    region = rng.choice(REGIONS, size=rows, p=[0.3, 0.3, 0.28, 0.12]).astype(object)
    # "tiny": 1% of the first 80% (the train split below), exactly 6 rows of the last 20%.
    train_rows = int(rows * 0.8)
    region[rng.choice(train_rows, size=train_rows // 100, replace=False)] = "tiny"
    region[train_rows + rng.choice(rows - train_rows, size=6, replace=False)] = "tiny"
    x = rng.normal(size=rows)
    approved = x + 0.2 * rng.normal(size=rows) > 0
    west = region == "west"
    approved[west] = rng.random(west.sum()) < 0.5
    approved[region == "tiny"] = x[region == "tiny"] < 0
    region[rng.choice(np.flatnonzero(region != "tiny"), size=rows // 60, replace=False)] = None
    return pd.DataFrame(
        {
            "x": x,
            "noise": rng.normal(size=rows),
            "region": region,
            "approved": np.where(approved, "yes", "no"),
        }
    )


@pytest.fixture(scope="module")
def sliced(tmp_path_factory):
    folder = tmp_path_factory.mktemp("slices")
    frame = regions(5000, seed=11)
    train_frame, eval_frame = frame.iloc[:4000], frame.iloc[4000:].reset_index(drop=True)
    artifacts = {}
    for name, part in (("train_split", train_frame), ("eval_split", eval_frame)):
        artifacts[name] = make_artifact(Dataset, folder, name, {"label_column": "approved"})
        write_split(part, artifacts[name].path)
    schema = write_schema(train_frame, folder / "schema")
    manifest = train(train_frame, str(schema / "schema.pbtxt"), "approved", "regions", str(folder / "model"))
    model = make_artifact(Model, folder, "model", manifest_metadata(manifest))
    return model, artifacts, train_frame, eval_frame


def call(sliced, folder: Path, **params) -> dict:
    model, artifacts, _, _ = sliced
    outputs = make_outputs(component, folder)
    component.python_func(
        model=model,
        eval_split=artifacts["eval_split"],
        train_split=artifacts["train_split"],
        baseline=make_artifact(Artifact, folder, "baseline", {"found": False, "reason": "never pushed"}),
        thresholds={},
        task_name="evaluate",
        **params,
        **outputs,
    )
    return outputs


def accuracy(frame: pd.DataFrame, model_dir: str) -> float:
    from kfkit.model_folder import feature_frame, load_verified_model

    fitted, manifest = load_verified_model(model_dir)
    predicted = fitted.predict(feature_frame(frame, manifest.features, "eval"))
    return float((predicted == frame["approved"]).mean())


def test_the_worst_slice_is_named_with_its_metrics_and_no_floor_still_blesses(sliced, tmp_path, capsys):
    model, _, _, eval_frame = sliced
    out = call(sliced, tmp_path, slice_features=["region"])
    blessing, metrics = out["blessing"].metadata, out["metrics"].metadata
    assert blessing["blessed"] is True and metrics["accuracy"] > 0.85  # fine overall
    by_value = {s["value"]: s for s in metrics["slices"]}
    assert set(by_value) == {*REGIONS, "tiny", "(missing)"}
    assert all(s["feature"] == "region" for s in metrics["slices"])
    assert sum(s["rows"] for s in metrics["slices"]) == len(eval_frame)
    # Each slice's metrics are the model's on exactly those rows.
    west_rows = eval_frame[eval_frame["region"] == "west"]
    assert by_value["west"]["rows"] == len(west_rows) >= MIN_SLICE_ROWS
    assert by_value["west"]["metrics"]["accuracy"] == pytest.approx(accuracy(west_rows, model.path), abs=1e-9)
    missing_rows = eval_frame[eval_frame["region"].isna()]
    assert by_value["(missing)"]["rows"] == len(missing_rows) > 0
    # "tiny" is worse still (reversed labels) but too small to be the worst slice.
    assert by_value["tiny"]["rows"] < MIN_SLICE_ROWS
    assert by_value["tiny"]["metrics"]["accuracy"] < by_value["west"]["metrics"]["accuracy"] < 0.7
    worst = metrics["worst_slice"]
    assert (worst["feature"], worst["value"]) == ("region", "west") and worst == by_value["west"]
    for key in ("accuracy", "macro_f1", "log_loss", "roc_auc_ovr"):
        assert key in worst["metrics"]
    sentence = (
        f"Worst slice (lowest accuracy, {MIN_SLICE_ROWS} rows or more): region=west, "
        f"accuracy {worst['metrics']['accuracy']:.4f} ({worst['rows']} rows)"
    )
    report = Path(out["report"].path).read_text()
    assert "## Slices" in report and f"**{sentence}**" in report
    assert f"| region | tiny | {by_value['tiny']['rows']} |" in report and "not gated" in report
    assert sentence in Path(out["html"].path).read_text()
    assert sentence in capsys.readouterr().out
    assert not any(name.startswith("slice floor") for name in blessing["checks"])


def test_a_floor_the_worst_slice_misses_refuses_the_model_naming_it(sliced, tmp_path):
    out = call(sliced, tmp_path, slice_features=["region"], slice_floors={"accuracy": 0.8})
    blessing, metrics = out["blessing"].metadata, out["metrics"].metadata
    west = metrics["worst_slice"]
    assert blessing["blessed"] is False
    assert blessing["reason"] == (
        f"slice floors not met: region=west accuracy {west['metrics']['accuracy']:.4f} below the floor 0.8 "
        f"({west['rows']} rows)"
    )
    assert blessing["checks"]["slice floor: accuracy"] == (
        f"worst slice region=west: {west['metrics']['accuracy']:.4f} >= 0.8 ({west['rows']} rows) FAILED"
    )
    # The other checks held: the floor alone refused it.
    assert [k for k, v in blessing["checks"].items() if v.endswith("FAILED")] == ["slice floor: accuracy"]
    report = Path(out["report"].path).read_text()
    assert "**NOT blessed**: slice floors not met: region=west" in report
    assert re.search(r"\| region \| west \| \d+ \|.* below a floor \|", report)


def test_slices_too_small_do_not_gate(sliced):
    model, _, train_frame, eval_frame = sliced
    # Without west, only "tiny" misses the floor, and it has fewer than MIN_SLICE_ROWS rows.
    without_west = eval_frame[eval_frame["region"] != "west"].reset_index(drop=True)
    result = evaluate(
        model.path, without_west, {}, train_frame, slice_features=["region"], slice_floors={"accuracy": 0.8}
    )
    tiny = next(s for s in result.slices if s.value == "tiny")
    assert tiny.rows < MIN_SLICE_ROWS and tiny.metrics["accuracy"] < 0.8
    assert result.blessed is True and "every slice meets its floor" in blessing_reason(result)
    assert result.worst_slice is not None and result.worst_slice.value != "tiny"
    assert result.checks["slice floor: accuracy"].endswith(" ok")
    # A floor on a lower-is-better metric is a ceiling, and names the slice the same way.
    ceiling = evaluate(
        model.path, eval_frame, {}, train_frame, slice_features=["region"], slice_floors={"log_loss": 0.5}
    )
    assert ceiling.blessed is False
    assert blessing_reason(ceiling).startswith("slice floors not met: region=west log_loss ")
    assert "above the ceiling 0.5" in blessing_reason(ceiling)


def test_a_numeric_feature_is_sliced_into_quantile_bins(sliced):
    model, _, train_frame, eval_frame = sliced
    result = evaluate(model.path, eval_frame, {}, train_frame, slice_features=["noise"])
    edges = np.quantile(eval_frame["noise"], [0, 0.25, 0.5, 0.75, 1])
    assert [s.value for s in result.slices] == [
        f"[{edges[0]:.4g}, {edges[1]:.4g}]",
        f"({edges[1]:.4g}, {edges[2]:.4g}]",
        f"({edges[2]:.4g}, {edges[3]:.4g}]",
        f"({edges[3]:.4g}, {edges[4]:.4g}]",
    ]
    counts = [s.rows for s in result.slices]
    assert sum(counts) == len(eval_frame) and max(counts) - min(counts) <= 1  # quartiles of distinct values
    low = eval_frame[eval_frame["noise"] <= edges[1]]
    assert result.slices[0].rows == len(low)
    assert result.slices[0].metrics["accuracy"] == pytest.approx(accuracy(low, model.path), abs=1e-9)
    # Two slicing features: both reported, the worst across them named.
    both = evaluate(model.path, eval_frame, {}, train_frame, slice_features=["noise", "region"])
    assert {s.feature for s in both.slices} == {"noise", "region"} and both.worst_slice.value == "west"


def test_the_html_report_draws_the_slice_chart_with_the_floor(sliced, tmp_path):
    out = call(sliced, tmp_path, slice_features=["region"], slice_floors={"accuracy": 0.8})
    slices = out["metrics"].metadata["slices"]
    page = Path(out["html"].path).read_text()
    assert "<script" not in page.lower() and "<h2>Slices</h2>" in page
    assert "<h3>accuracy per slice (floor 0.8: dashed)</h3>" in page
    chart = page[page.index('class="chart bars slices slices-accuracy"') :]
    chart = chart[: chart.index("</svg>")]
    bars = re.findall(r'<rect class="bar s0( over)?"[^>]*>(<title>[^<]*</title>)', chart)
    assert len(bars) == len(slices)  # one bar per slice
    assert chart.count('<line class="mark"') == len(slices)  # the floor across every slice
    # Only west is red: tiny misses the floor too, but does not gate.
    over = [title for flag, title in bars if flag]
    west = next(s for s in slices if s["value"] == "west")
    assert over == [f"<title>region=west accuracy: {west['metrics']['accuracy']:.4g}</title>"]
    assert "region=tiny accuracy" in chart


def test_slice_parameters_are_checked_before_any_task_and_columns_at_run_time(sliced):
    with pytest.raises(
        KfkitError, match=r"'slice_floors' parameter of evaluate has unknown metric\(s\) \['recall'\]"
    ):
        check({"slice_features": ["region"], "slice_floors": {"recall": 0.8}})
    with pytest.raises(
        KfkitError, match="'slice_floors' parameter of evaluate .accuracy. needs 'slice_features'"
    ):
        check({"slice_features": [], "slice_floors": {"accuracy": 0.8}})
    with pytest.raises(KfkitError, match="'slice_floors' parameter of evaluate must map metrics to numbers"):
        check({"slice_features": ["region"], "slice_floors": {"accuracy": "high"}})
    with pytest.raises(
        KfkitError, match="'slice_features' parameter of evaluate must be a list of column names"
    ):
        check({"slice_features": "region"})
    check({"slice_features": ["region"], "slice_floors": {"accuracy": 0.8, "rmse": 2}})  # either problem type
    model, _, train_frame, eval_frame = sliced
    with pytest.raises(KfkitError) as caught:
        evaluate(model.path, eval_frame, {}, train_frame, slice_features=["regoin"])
    assert str(caught.value) == (
        "The 'slice_features' parameter of evaluate names 'regoin', which is not a column of the eval "
        "split; its columns are x, noise, region, approved"
    )
    with pytest.raises(
        KfkitError, match=r"'slice_floors' parameter of evaluate has unknown metric\(s\) \['rmse'\]"
    ):
        evaluate(model.path, eval_frame, {}, train_frame, slice_features=["region"], slice_floors={"rmse": 1})


def test_a_regression_model_s_worst_slice_has_the_highest_rmse(tmp_path):
    rng = np.random.default_rng(5)
    rows = 1500
    frame = pd.DataFrame({"x": rng.normal(size=rows), "shop": rng.choice(["a", "b", "c"], size=rows)})
    # Shop c's sales are far noisier: the model is as good there as it can be, and still worst.
    noise = np.where(frame["shop"] == "c", 3.0, 0.3) * rng.normal(size=rows)
    frame["sales"] = 2 * frame["x"] + noise
    train_frame, eval_frame = frame.iloc[:1200], frame.iloc[1200:].reset_index(drop=True)
    schema = write_schema(train_frame, tmp_path / "schema")
    train(
        train_frame,
        str(schema / "schema.pbtxt"),
        "sales",
        "sales",
        str(tmp_path / "m"),
        "regression",
        "ridge",
    )
    result = evaluate(
        str(tmp_path / "m"), eval_frame, {}, train_frame, slice_features=["shop"], slice_floors={"rmse": 1.0}
    )
    assert [s.value for s in result.slices] == ["a", "b", "c"]
    assert result.worst_slice.value == "c" and result.worst_slice.metrics["rmse"] > 2
    assert max(result.slices, key=lambda s: s.metrics["rmse"]) is result.worst_slice
    assert result.blessed is False
    assert blessing_reason(result).startswith("slice floors not met: shop=c rmse ")
    assert "above the ceiling 1" in blessing_reason(result)
