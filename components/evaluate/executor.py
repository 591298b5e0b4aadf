"""Evaluate's logic: metrics on the eval split and a blessing by absolute thresholds.

Nothing is blessed by default: with no thresholds the model is not blessed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import pandas as pd

from kfkit.errors import KfkitError
from kfkit.model_folder import ModelManifest, feature_frame, load_verified_model

if TYPE_CHECKING:
    from kfkit.runtime import Task

# Direction of each metric: a threshold is a floor for these, a ceiling for the rest.
HIGHER_IS_BETTER = {"accuracy", "macro_f1", "roc_auc_ovr", "r2"}
LOWER_IS_BETTER = {"log_loss", "rmse", "mae"}
CLASSIFICATION_METRICS = ("accuracy", "macro_f1", "roc_auc_ovr", "log_loss")
REGRESSION_METRICS = ("rmse", "mae", "r2")


@dataclass
class Evaluation:
    metrics: dict[str, float]
    blessed: bool
    checks: dict[str, str]  # metric -> "0.97 >= 0.9 ok" / "... FAILED"
    confusion_matrix: list[list[int]] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)


def compute_metrics(model, manifest: ModelManifest, frame: pd.DataFrame) -> Evaluation:
    from sklearn import metrics as skm

    x = feature_frame(frame, manifest.features, "eval split")
    if manifest.problem_type == "regression":
        y = pd.to_numeric(frame[manifest.label_column]).astype("float64")
        predicted = model.predict(x)
        values = {
            "rmse": math.sqrt(skm.mean_squared_error(y, predicted)),
            "mae": skm.mean_absolute_error(y, predicted),
            "r2": skm.r2_score(y, predicted),
        }
        return Evaluation(metrics=_rounded(values), blessed=False, checks={})

    y = frame[manifest.label_column].astype(str)
    classes = list(manifest.classes)
    proba = model.predict_proba(x)
    predicted = [classes[i] for i in proba.argmax(axis=1)]
    values = {
        "accuracy": skm.accuracy_score(y, predicted),
        "macro_f1": skm.f1_score(y, predicted, average="macro", labels=classes, zero_division=0),
        "log_loss": skm.log_loss(y, proba, labels=classes),
    }
    if set(y) == set(classes):
        if len(classes) == 2:
            values["roc_auc_ovr"] = skm.roc_auc_score(y == classes[1], proba[:, 1])
        else:
            values["roc_auc_ovr"] = skm.roc_auc_score(y, proba, multi_class="ovr", labels=classes)
    matrix = skm.confusion_matrix(y, predicted, labels=classes).tolist()
    return Evaluation(
        metrics=_rounded(values), blessed=False, checks={}, confusion_matrix=matrix, classes=classes
    )


def _rounded(values: dict[str, float]) -> dict[str, float]:
    # Rounded so that metrics compare equal across runs and read well; 1e-9 is far below noise.
    return {k: round(float(v), 9) for k, v in values.items()}


def bless(evaluation: Evaluation, thresholds: dict[str, float], problem_type: str) -> Evaluation:
    allowed = CLASSIFICATION_METRICS if problem_type == "classification" else REGRESSION_METRICS
    unknown = sorted(set(thresholds) - set(allowed))
    if unknown:
        raise KfkitError(
            f"The 'thresholds' parameter of evaluate has unknown metric(s) {unknown}; "
            f"{problem_type} metrics are {', '.join(allowed)}"
        )
    checks = {}
    for metric, limit in sorted(thresholds.items()):
        value = evaluation.metrics.get(metric)
        if value is None:
            checks[metric] = f"not computed (needed {limit}) FAILED"
            continue
        if metric in HIGHER_IS_BETTER:
            ok, sign = value >= float(limit), ">="
        else:
            ok, sign = value <= float(limit), "<="
        checks[metric] = f"{value:.4f} {sign} {float(limit):g} {'ok' if ok else 'FAILED'}"
    evaluation.checks = checks
    evaluation.blessed = bool(checks) and all(c.endswith(" ok") for c in checks.values())
    return evaluation


def evaluate(model_dir: str, frame: pd.DataFrame, thresholds: dict[str, float]) -> Evaluation:
    model, manifest = load_verified_model(model_dir)
    evaluation = compute_metrics(model, manifest, frame)
    return bless(evaluation, thresholds, manifest.problem_type)


def blessing_reason(evaluation: Evaluation) -> str:
    if not evaluation.checks:
        return "no thresholds given: nothing is blessed by default"
    failed = [
        f"{m} {c.removesuffix(' FAILED')}" for m, c in evaluation.checks.items() if not c.endswith(" ok")
    ]
    return "all thresholds met" if not failed else "thresholds not met: " + "; ".join(failed)


def run(task: Task) -> None:
    from pathlib import Path

    from kfkit.runtime import write_skipped
    from kfkit.splits import read_split

    model, out = task.inputs["model"], task.outputs
    result = evaluate(
        model.path, read_split(task.inputs["eval_split"].path), dict(task.params["thresholds"] or {})
    )
    for name, value in result.metrics.items():
        out["metrics"].log_metric(name, value)
    if result.classes:
        out["classification_metrics"].log_confusion_matrix(result.classes, result.confusion_matrix)
    else:
        write_skipped(out["classification_metrics"], "regression: no confusion matrix")
    reason = blessing_reason(result)
    blessing = out["blessing"]
    blessing.metadata.update(
        {
            "blessed": result.blessed,
            "reason": reason,
            "checks": result.checks,
            "metrics": result.metrics,
            "model_sha256": model.metadata.get("sha256", ""),
            "dataset_fingerprint": model.metadata.get("training_data_fingerprint", ""),
        }
    )
    Path(blessing.path).parent.mkdir(parents=True, exist_ok=True)
    Path(blessing.path).write_text(("BLESSED" if result.blessed else "NOT_BLESSED") + "\n")
    shown = ", ".join(f"{k} {v:.4f}" for k, v in result.metrics.items())
    task.say(f"{shown}; {'blessed' if result.blessed else 'NOT blessed'}: {reason}")
