"""evaluate, called as kfp calls it: metrics, the blessing by thresholds and by the two
comparisons (a trivial model fitted on the train split, the version the model would replace),
the report, and a model that was never trained."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import PENGUINS, make_artifact, make_outputs, write_schema
from kfp.dsl import Artifact, Dataset, Model

from kfkit.components import evaluate as component
from kfkit.components.evaluate.executor import blessing_reason, evaluate
from kfkit.components.ingest.executor import ingest
from kfkit.components.train.executor import manifest_metadata, train
from kfkit.errors import KfkitError
from kfkit.model_folder import ModelManifest, feature_frame, load_verified_model
from kfkit.splits import write_split


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("evaluate")
    split = ingest(str(PENGUINS), "species")
    eval_split = make_artifact(Dataset, folder, "eval_split", split.metadata)
    write_split(split.eval, eval_split.path)
    train_split = make_artifact(Dataset, folder, "train_split", split.metadata)
    write_split(split.train, train_split.path)
    schema = write_schema(split.train, folder / "schema")
    manifest = train(split.train, str(schema / "schema.pbtxt"), "species", "penguins", str(folder / "model"))
    model = make_artifact(Model, folder, "model", manifest_metadata(manifest))
    return model, eval_split, train_split


def first_run(folder: Path) -> Artifact:
    """resolve_baseline's output for a model never pushed."""
    return make_artifact(Artifact, folder, "baseline", {"found": False, "reason": "no pushed version yet"})


def call(model, eval_split, folder: Path, thresholds, train_split, baseline=None, **params):
    baseline = baseline or first_run(folder)
    outputs = make_outputs(component, folder)
    component.python_func(
        model=model,
        eval_split=eval_split,
        train_split=train_split,
        baseline=baseline,
        thresholds=thresholds,
        task_name="evaluate",
        **params,
        **outputs,
    )
    return outputs


def test_blesses_only_when_every_threshold_is_met(trained, tmp_path):
    model, eval_split, train_split = trained
    met = call(model, eval_split, tmp_path / "met", {"accuracy": 0.9}, train_split)
    assert met["blessing"].metadata["blessed"] is True
    assert met["metrics"].metadata["accuracy"] >= 0.9
    assert met["blessing"].metadata["model_sha256"] == model.metadata["sha256"]
    assert met["classification_metrics"].metadata["confusionMatrix"]["rows"]
    # No model's log_loss is 0 (the penguins eval split can be scored without a mistake).
    missed = call(model, eval_split, tmp_path / "missed", {"accuracy": 0.9, "log_loss": 0.0}, train_split)
    assert missed["blessing"].metadata["blessed"] is False
    assert missed["blessing"].metadata["reason"].startswith("thresholds not met: log_loss")


def test_the_trivial_model_is_scored_and_every_check_recorded(trained, tmp_path, capsys):
    model, eval_split, train_split = trained
    out = call(model, eval_split, tmp_path / "out", {"accuracy": 0.9}, train_split)
    meta = out["blessing"].metadata
    trivial = meta["trivial_metrics"]
    # DummyClassifier(prior): the eval share of the train split's majority class, roc_auc 0.5.
    assert 0.3 < trivial["accuracy"] < 0.5 and trivial["roc_auc_ovr"] == 0.5
    assert trivial["log_loss"] > meta["metrics"]["log_loss"]
    assert meta["checks"]["vs trivial: accuracy"].startswith(
        f"candidate {meta['metrics']['accuracy']:.4f} vs trivial"
    )
    assert meta["checks"]["vs trivial: accuracy"].endswith(" ok")
    assert meta["checks"]["vs trivial: log_loss"].endswith(" ok")
    assert meta["checks"]["accuracy"].endswith(" ok")
    # No pushed version yet: said, not compared, not a failure.
    assert meta["checks"]["vs version"] == "no baseline version: nothing to compare with skipped"
    assert meta["baseline_version"] == "" and meta["baseline_metrics"] == {}
    report = Path(out["report"].path).read_text()
    assert "**blessed**" in report and "| metric | candidate | trivial |" in report
    assert "## Confusion matrix" in report and "| **Adelie** |" in report
    said = capsys.readouterr().out
    assert f"(trivial: accuracy {trivial['accuracy']:.4f}" in said and "; blessed: beats the trivial" in said


def test_first_run_says_there_is_no_version_to_compare_with(trained, tmp_path):
    model, eval_split, train_split = trained
    baseline = make_artifact(
        Artifact, tmp_path, "baseline", {"found": False, "reason": "no pushed version yet"}
    )
    out = call(model, eval_split, tmp_path / "out", {"accuracy": 0.9}, train_split, baseline)
    meta = out["blessing"].metadata
    assert meta["blessed"] is True
    assert meta["checks"]["vs version"] == "no baseline version: nothing to compare with skipped"
    assert "no baseline version: nothing to compare with" in meta["reason"]


def test_unknown_metrics_and_bad_parameters_are_one_line(trained, tmp_path):
    model, eval_split, train_split = trained
    with pytest.raises(SystemExit):
        call(model, eval_split, tmp_path / "a", {}, train_split, tolerances={"precision": 0.1})
    folder = str(model.path)
    frame = pd.read_parquet(eval_split.path)
    train_frame = pd.read_parquet(train_split.path)
    with pytest.raises(KfkitError, match="'tolerances' parameter of evaluate has unknown metric"):
        evaluate(folder, frame, {}, train_frame, tolerances={"precision": 0.1})
    with pytest.raises(KfkitError, match="'trivial_metrics' parameter of evaluate has unknown metric"):
        evaluate(folder, frame, {}, train_frame, trivial_metrics_to_beat=["rmse"])
    with pytest.raises(KfkitError, match="'trivial_margin' parameter of evaluate must be in"):
        evaluate(folder, frame, {}, train_frame, trivial_margin=1.5)


def test_a_model_that_was_not_trained_is_not_evaluated(trained, tmp_path, capsys):
    _, eval_split, train_split = trained
    model = make_artifact(Model, tmp_path, "model", {"skipped": True, "reason": "'anomalies' is not blessed"})
    outputs = call(model, eval_split, tmp_path / "out", {"accuracy": 0.5}, train_split)
    for artifact in outputs.values():
        record = json.loads((Path(artifact.path) / "kfkit-skipped.json").read_text())
        assert "input 'model' was not produced: 'anomalies' is not blessed" in record["reason"]
    assert not outputs["blessing"].metadata.get("blessed")
    assert "kfkit evaluate: not run: input 'model' was not produced" in capsys.readouterr().out


# --- an imbalanced table (85% "no", 15% "yes"), generated here -------------------------------


def loans(rows: int, seed: int) -> pd.DataFrame:
    """debt_ratio carries most of the signal, income some, noise_a/noise_b none; exactly the
    top 15% of a noisy score default."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {name: rng.normal(size=rows) for name in ("debt_ratio", "income", "noise_a", "noise_b")}
    )
    score = 2.0 * frame["debt_ratio"] - frame["income"] + 0.5 * rng.normal(size=rows)
    frame["default"] = np.where(score >= np.quantile(score, 0.85), "yes", "no")
    return frame


@pytest.fixture(scope="module")
def imbalanced(tmp_path_factory):
    folder = tmp_path_factory.mktemp("loans")
    frame = loans(6000, seed=7)
    train_frame, eval_frame = frame.iloc[:4800], frame.iloc[4800:]
    artifacts = {}
    for name, part in (("train_split", train_frame), ("eval_split", eval_frame)):
        artifacts[name] = make_artifact(Dataset, folder, name, {"label_column": "default"})
        write_split(part, artifacts[name].path)

    def fit(name: str, columns: list[str], data: pd.DataFrame = train_frame, **hyperparameters) -> Model:
        schema = write_schema(data[[*columns, "default"]], folder / f"schema-{name}")
        manifest = train(
            data,
            str(schema / "schema.pbtxt"),
            "default",
            "loans",
            str(folder / name),
            hyperparameters=hyperparameters,
        )
        return make_artifact(Model, folder, name, manifest_metadata(manifest))

    models = {
        "good": fit("good", ["debt_ratio", "income"]),
        "weaker": fit("weaker", ["debt_ratio"]),  # beats the trivial model, far worse than "good"
        "noise": fit("noise", ["noise_a", "noise_b"]),  # no signal at all
        # Trained on a column the eval rows do not have: cannot score them.
        "other_features": fit(
            "other_features", ["debt_ratio", "credit_score"], train_frame.assign(credit_score=1.0)
        ),
    }
    return artifacts, models, eval_frame


def version(model: Model, number: str = "3") -> Artifact:
    """A model folder as resolve_baseline hands it over: the version's files, `found: true`."""
    return Artifact(name="baseline", uri=model.uri, metadata={"found": True, "version": number})


def test_a_model_no_better_than_the_majority_class_is_not_blessed(imbalanced, tmp_path):
    artifacts, models, eval_frame = imbalanced
    majority = (eval_frame["default"] == "no").mean()
    out = call(
        models["noise"], artifacts["eval_split"], tmp_path, {"accuracy": 0.8}, artifacts["train_split"]
    )
    meta = out["blessing"].metadata
    # The absolute threshold alone would bless it: that was the bug.
    assert meta["metrics"]["accuracy"] >= 0.8 and meta["checks"]["accuracy"].endswith(" ok")
    assert meta["trivial_metrics"]["accuracy"] == pytest.approx(majority)
    assert meta["blessed"] is False
    assert meta["reason"].startswith(
        "does not beat the trivial baseline DummyClassifier(strategy='prior'): accuracy"
    )
    assert meta["checks"]["vs trivial: accuracy"].endswith(" FAILED")
    assert "**NOT blessed**: does not beat the trivial baseline" in Path(out["report"].path).read_text()


def test_a_real_model_beats_the_trivial_one_with_no_thresholds_and_is_blessed(imbalanced, tmp_path):
    """Documented: empty thresholds no longer mean 'never blessed'; the comparisons decide."""
    artifacts, models, _ = imbalanced
    out = call(
        models["good"],
        artifacts["eval_split"],
        tmp_path,
        {},
        artifacts["train_split"],
        version(models["good"]),
    )
    meta = out["blessing"].metadata
    assert meta["blessed"] is True
    assert meta["reason"] == (
        "beats the trivial baseline on accuracy, log_loss; not worse than version 3; no thresholds given"
    )
    assert not any(name in meta["checks"] for name in ("accuracy", "log_loss"))  # no threshold checks


def test_a_model_worse_than_the_version_it_replaces_is_not_blessed(imbalanced, tmp_path):
    artifacts, models, _ = imbalanced
    out = call(
        models["weaker"],
        artifacts["eval_split"],
        tmp_path,
        {"accuracy": 0.8},
        artifacts["train_split"],
        version(models["good"]),
    )
    meta = out["blessing"].metadata
    assert meta["checks"]["vs trivial: accuracy"].endswith(" ok")  # it does beat the trivial model
    assert meta["checks"]["accuracy"].endswith(" ok")  # and meets the threshold
    assert meta["blessed"] is False
    assert meta["reason"].startswith("worse than version 3: accuracy ")
    assert meta["baseline_version"] == "3"
    drop = meta["baseline_metrics"]["accuracy"] - meta["metrics"]["accuracy"]
    assert drop > 0.01
    assert meta["checks"]["vs version 3: accuracy"].endswith(f"{-drop:+.4f} beyond 0.01 FAILED")
    assert meta["checks"]["vs version 3: log_loss"].endswith(" FAILED")
    report = Path(out["report"].path).read_text()
    assert "| metric | candidate | trivial | version 3 |" in report
    # Loosened: with tolerances wide enough (and log_loss not compared) the same model is blessed.
    loose = call(
        models["weaker"],
        artifacts["eval_split"],
        tmp_path / "loose",
        {"accuracy": 0.8},
        artifacts["train_split"],
        version(models["good"]),
        tolerances={"accuracy": 0.5, "macro_f1": 0.5, "roc_auc_ovr": 0.5, "log_loss": "off"},
    )
    assert loose["blessing"].metadata["blessed"] is True
    assert "vs version 3: log_loss" not in loose["blessing"].metadata["checks"]


def test_a_model_as_good_as_or_better_than_the_version_is_blessed(imbalanced, tmp_path):
    artifacts, models, _ = imbalanced
    for name, baseline in (("equal", models["good"]), ("better", models["weaker"])):
        out = call(
            models["good"],
            artifacts["eval_split"],
            tmp_path / name,
            {"accuracy": 0.8},
            artifacts["train_split"],
            version(baseline, "7"),
        )
        meta = out["blessing"].metadata
        assert meta["blessed"] is True, meta["reason"]
        assert "not worse than version 7" in meta["reason"]
        assert meta["checks"]["vs version 7: accuracy"].endswith(" ok")
        if name == "equal":
            assert meta["baseline_metrics"] == meta["metrics"]
            assert meta["checks"]["vs version 7: accuracy"].endswith("+0.0000 within 0.01 ok")


def test_a_version_that_cannot_score_the_rows_is_reported_not_comparable(imbalanced, tmp_path):
    artifacts, models, _ = imbalanced
    out = call(
        models["good"],
        artifacts["eval_split"],
        tmp_path,
        {"accuracy": 0.8},
        artifacts["train_split"],
        version(models["other_features"], "2"),
    )
    meta = out["blessing"].metadata
    assert meta["checks"]["vs version"] == (
        "version 2 not comparable: it cannot score the eval rows: eval split: feature column(s) "
        "['credit_score'] missing skipped"
    )
    assert meta["blessed"] is True and meta["baseline_metrics"] == {} and meta["baseline_version"] == "2"
    assert "version 2 not comparable" in meta["reason"]


def test_a_version_without_model_file_or_of_another_scikit_learn_is_not_comparable(imbalanced, tmp_path):
    artifacts, models, eval_frame = imbalanced
    train_frame = pd.read_parquet(artifacts["train_split"].path)
    schema_only = tmp_path / "schema_only"
    schema_only.mkdir()
    (schema_only / "kfkit-model.json").write_text(Path(models["good"].path, "kfkit-model.json").read_text())
    old = tmp_path / "old"
    old.mkdir()
    manifest = ModelManifest.read(models["good"].path)
    manifest.sklearn_version = "0.24.2"
    manifest.write(old)
    (old / "model.joblib").write_bytes(Path(models["good"].path, "model.joblib").read_bytes())
    for folder, why in (
        (schema_only, "has no model file (model.joblib)"),
        (old, "trained with scikit-learn 0.24.2"),
    ):
        result = evaluate(
            models["good"].path, eval_frame, {}, train_frame, str(folder), {"found": True, "version": "5"}
        )
        assert why in result.checks["vs version"] and result.checks["vs version"].endswith(" skipped")
        assert result.baseline_metrics == {}


def test_a_version_whose_model_bytes_changed_is_an_error(imbalanced, tmp_path):
    artifacts, models, eval_frame = imbalanced
    tampered = tmp_path / "tampered"
    tampered.mkdir()
    for name in ("kfkit-model.json", "kfkit-model.sig"):  # a signed manifest, another model's bytes
        (tampered / name).write_bytes(Path(models["weaker"].path, name).read_bytes())
    (tampered / "model.joblib").write_bytes(Path(models["good"].path, "model.joblib").read_bytes())
    train_frame = pd.read_parquet(artifacts["train_split"].path)
    with pytest.raises(KfkitError, match="sha256 .* does not match"):
        evaluate(
            models["good"].path, eval_frame, {}, train_frame, str(tampered), {"found": True, "version": "5"}
        )


def test_regression_against_the_mean(tmp_path):
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"x": rng.normal(size=600), "noise": rng.normal(size=600)})
    frame["y"] = 3 * frame["x"] + rng.normal(size=600)
    train_frame, eval_frame = frame.iloc[:480], frame.iloc[480:]
    results = {}
    for name, columns in (("signal", ["x"]), ("noise", ["noise"])):
        schema = write_schema(train_frame[[*columns, "y"]], tmp_path / f"schema-{name}")
        train(
            train_frame, str(schema / "schema.pbtxt"), "y", "r", str(tmp_path / name), "regression", "ridge"
        )
        results[name] = evaluate(str(tmp_path / name), eval_frame, {}, train_frame)
    assert results["signal"].blessed is True
    assert results["signal"].trivial_metrics["rmse"] == pytest.approx(
        float(np.sqrt(((eval_frame["y"] - train_frame["y"].mean()) ** 2).mean())), rel=1e-6
    )
    assert results["noise"].blessed is False
    assert blessing_reason(results["noise"]).startswith(
        "does not beat the trivial baseline DummyRegressor(strategy='mean'): rmse"
    )


def test_the_html_report_and_kfp_roc_curve_of_a_binary_model(imbalanced, tmp_path):
    import math
    import re

    from sklearn.metrics import roc_curve

    artifacts, models, eval_frame = imbalanced
    out = call(
        models["good"],
        artifacts["eval_split"],
        tmp_path,
        {},
        artifacts["train_split"],
        version(models["weaker"]),
    )
    meta = out["blessing"].metadata
    page = Path(out["html"].path).read_text()
    assert "<script" not in page.lower() and "http" not in page
    for heading in (
        "Metrics on the eval split",
        "Checks",
        "Confusion matrix",
        "ROC curve (positive class: yes)",
    ):
        assert f"<h2>{heading}" in page
    # Grouped bars: one per metric for the candidate, the trivial model and version 3.
    chart = page[page.index('class="chart bars metrics"') :]
    chart = chart[: chart.index("</svg>")]
    assert chart.count('class="bar s0"') == len(meta["metrics"]) == 4
    assert chart.count('class="bar s1"') == len(meta["trivial_metrics"])
    assert chart.count('class="bar s2"') == len(meta["baseline_metrics"])
    assert f"accuracy candidate: {meta['metrics']['accuracy']:.4g}" in chart
    # The confusion matrix, cell by cell.
    cells = [int(v) for v in re.findall(r'<td class="cell"[^>]*>(\d+)</td>', page)]
    matrix = out["classification_metrics"].metadata["confusionMatrix"]["rows"]
    assert cells == [n for row in matrix for n in row["row"]] and sum(cells) == len(eval_frame)
    # ROC: the page's curve and KFP's have scikit-learn's points; thresholds are all finite.
    roc = out["classification_metrics"].metadata["confidenceMetrics"]
    fitted, manifest = load_verified_model(models["good"].path)
    scores = fitted.predict_proba(feature_frame(eval_frame, manifest.features, "eval"))[
        :, manifest.classes.index("yes")
    ]
    fpr, tpr, _ = roc_curve(eval_frame["default"] == "yes", scores)
    assert [p["falsePositiveRate"] for p in roc] == pytest.approx(fpr.tolist())
    assert [p["recall"] for p in roc] == pytest.approx(tpr.tolist())
    assert all(math.isfinite(p["confidenceThreshold"]) for p in roc) and roc[0]["confidenceThreshold"] == 1.0
    assert roc[0]["recall"] == 0.0 and roc[-1]["recall"] == 1.0
    polylines = re.findall(r'<polyline class="curve s0 ?" points="([^"]*)"', page)
    assert len(polylines) == 2 and len(polylines[0].split()) == len(roc)
    assert 'class="chart lines roc"' in page and 'class="chart lines pr"' in page


def test_a_multiclass_model_has_no_roc_curve_but_a_heatmap(trained, tmp_path):
    model, eval_split, train_split = trained
    out = call(model, eval_split, tmp_path, {"accuracy": 0.9}, train_split)
    page = Path(out["html"].path).read_text()
    assert "confidenceMetrics" not in out["classification_metrics"].metadata
    assert "ROC curve" not in page and page.count('<td class="cell"') == 9  # 3 penguin species
    assert page.count('class="bar s2"') == 0  # first run: no version to compare with
