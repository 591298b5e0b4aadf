"""Evaluate's logic: metrics on the eval split, and a blessing by three comparisons.

1. **Trivial baseline**: a scikit-learn ``DummyClassifier(strategy="prior")`` (or
   ``DummyRegressor(strategy="mean")``) fitted on the train split's labels and scored on the same
   eval rows. The candidate must beat it on each of ``trivial_metrics`` (classification:
   accuracy and log_loss; regression: rmse) by ``trivial_margin``, a fraction of the trivial
   model's error (1 - accuracy, log_loss, rmse...). "prior", not "most_frequent": both predict
   the majority class (same accuracy), but "prior" predicts the class frequencies as
   probabilities, so its log_loss is the honest no-information one instead of infinite.
2. **Version it would replace**: the latest pushed version (resolve_baseline's ``baseline``,
   its model loaded with ``load_verified_model``: sha256, then scikit-learn version) scored on
   the same eval rows. The candidate may be worse by at most a per-metric tolerance (TFMA's
   change thresholds): absolute for accuracy, macro_f1, roc_auc_ovr, r2; a fraction of the
   version's value for log_loss, rmse, mae. No pushed version: nothing to compare with. A
   version that cannot score these rows (other features, label, classes or scikit-learn) is
   reported "not comparable", not an error.
3. **Absolute thresholds**, as before: a floor or ceiling per metric.
4. **Slice floors** (TFMA's slicing): the eval rows are sliced by each of ``slice_features``
   (a categorical column by value, missing values as their own slice; a numeric one into
   ``NUMERIC_SLICE_BINS`` quantile bins labelled by their ranges) and every slice is scored with
   the same metric code. The worst slice (lowest accuracy, highest rmse) is named; a floor in
   ``slice_floors`` is a minimum (a maximum for log_loss, rmse, mae) every slice of at least
   ``MIN_SLICE_ROWS`` rows must reach. Smaller slices are reported but never gate: their metrics
   are mostly noise.

Blessed means no check failed and at least one passed. The trivial comparison always runs, so
empty ``thresholds`` no longer means "never blessed": a model that beats the trivial baseline
and is not worse than the serving version is blessed (nothing is blessed without evidence).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from kfkit.errors import KfkitError, first_line
from kfkit.label_checks import class_names
from kfkit.model_folder import (
    MANIFEST_FILE,
    ModelManifest,
    check_sklearn_version,
    feature_frame,
    load_verified_model,
)
from kfkit.params import is_off
from kfkit.splits import DEFAULT_BATCH_ROWS, Split, iter_batches, read_columns, split_columns, split_rows

if TYPE_CHECKING:
    from kfkit.runtime import Task

# Direction of each metric: a threshold is a floor for these, a ceiling for the rest.
HIGHER_IS_BETTER = {"accuracy", "macro_f1", "roc_auc_ovr", "r2"}
LOWER_IS_BETTER = {"log_loss", "rmse", "mae"}
CLASSIFICATION_METRICS = ("accuracy", "macro_f1", "roc_auc_ovr", "log_loss")
REGRESSION_METRICS = ("rmse", "mae", "r2")

TRIVIAL_MODELS = {
    "classification": "DummyClassifier(strategy='prior')",
    "regression": "DummyRegressor(strategy='mean')",
}
# What the candidate must beat the trivial model on, unless ``trivial_metrics`` says otherwise:
# accuracy alone is the trap on imbalanced data only in the other direction (the majority class
# scores high), so it stays, and log_loss asks that the probabilities carry information too.
DEFAULT_TRIVIAL_METRICS = {"classification": ("accuracy", "log_loss"), "regression": ("rmse",)}
DEFAULT_TRIVIAL_MARGIN = 0.01
# Allowed degradation against the version being replaced: absolute for the bounded metrics,
# a fraction of the version's value for the unbounded ones (RELATIVE_TOLERANCE).
DEFAULT_TOLERANCES = {
    "accuracy": 0.01,
    "macro_f1": 0.01,
    "roc_auc_ovr": 0.01,
    "r2": 0.01,
    "log_loss": 0.05,
    "rmse": 0.02,
    "mae": 0.02,
}
RELATIVE_TOLERANCE = LOWER_IS_BETTER

OK, FAILED, SKIPPED = " ok", " FAILED", " skipped"

# Slices: fewer eval rows than this and a slice is reported, never gated (one mistake in 9
# rows moves accuracy by 0.11). A numeric column is cut into this many quantile bins, unless
# it has no more distinct values than that (then each value is a slice, like a category).
MIN_SLICE_ROWS = 10
NUMERIC_SLICE_BINS = 4
MISSING_SLICE = "(missing)"
# The metric that names the worst slice: the one a person reads first.
PRIMARY_METRIC = {"classification": "accuracy", "regression": "rmse"}


@dataclass
class Slice:
    """One value (or numeric range) of one slicing feature, scored on its eval rows."""

    feature: str
    value: str
    rows: int
    metrics: dict[str, float]

    @property
    def label(self) -> str:
        return f"{self.feature}={self.value}"

    @property
    def gates(self) -> bool:
        return self.rows >= MIN_SLICE_ROWS

    def as_metadata(self) -> dict[str, Any]:
        return {"feature": self.feature, "value": self.value, "rows": self.rows, "metrics": self.metrics}


@dataclass
class Evaluation:
    metrics: dict[str, float]
    blessed: bool
    checks: dict[str, str]  # name -> "0.97 >= 0.9 ok" / "... FAILED" / "... skipped"
    confusion_matrix: list[list[int]] = field(default_factory=list)
    classes: list[str] = field(default_factory=list)
    trivial_metrics: dict[str, float] = field(default_factory=dict)
    baseline_metrics: dict[str, float] = field(default_factory=dict)
    baseline_version: str = ""
    failures: list[str] = field(default_factory=list)  # one per failed comparison, for the reason
    passed: list[str] = field(default_factory=list)  # one per comparison that held
    # Binary classification: the positive class (the second in the model's order, as for
    # roc_auc) and scikit-learn's ROC and PR curves on the eval rows.
    positive_class: str = ""
    # At most CURVE_POINTS points each (see thinned).
    roc: dict[str, list[float]] = field(default_factory=dict)  # fpr, tpr, thresholds (finite)
    pr: dict[str, list[float]] = field(default_factory=dict)  # precision, recall
    # Slices of the eval rows (``slice_features``); the worst by PRIMARY_METRIC among those
    # with MIN_SLICE_ROWS rows or more (None: no slicing, or no slice that large).
    slices: list[Slice] = field(default_factory=list)
    worst_slice: Slice | None = None
    primary_metric: str = ""
    slice_floors: dict[str, float] = field(default_factory=dict)


# Points kept of a drawn ROC or PR curve. scikit-learn returns a point per distinct score (the PR
# curve) or per corner (ROC): hundreds of thousands on a 2M-row eval split, all of it stored in
# the run's metadata and the HTML report. A curve of this many points draws the same; the AUC
# itself is computed from every row.
CURVE_POINTS = 1000


def thinned(*curves: np.ndarray, limit: int = CURVE_POINTS) -> list[np.ndarray]:
    """The same points of each array (one curve's coordinates), at most ``limit``, evenly spaced
    along the curve and always keeping its first and last point."""
    length = len(curves[0])
    if length <= limit:
        return list(curves)
    keep = np.unique(np.linspace(0, length - 1, limit).round().astype(int))
    return [curve[keep] for curve in curves]


def finite_thresholds(thresholds: Any) -> list[float]:
    """scikit-learn's ROC thresholds start at +inf ("no row is positive"); metadata and KFP's
    UI need numbers: inf becomes the smallest number above every score (1.0 for probabilities
    below 1), which classifies the same way."""
    values = [float(t) for t in thresholds]
    top = max((t for t in values if math.isfinite(t)), default=1.0)
    above = 1.0 if top < 1.0 else float(np.nextafter(top, math.inf))
    return [t if math.isfinite(t) else above for t in values]


def _score(manifest: ModelManifest, y_true: pd.Series, output: np.ndarray) -> Evaluation:
    """Metrics of predictions ``output`` (regression: values; classification: probabilities
    with one column per ``manifest.classes``)."""
    from sklearn import metrics as skm

    if manifest.problem_type == "regression":
        y = pd.to_numeric(y_true).astype("float64")
        values = {
            "rmse": math.sqrt(skm.mean_squared_error(y, output)),
            "mae": skm.mean_absolute_error(y, output),
            "r2": skm.r2_score(y, output),
        }
        return Evaluation(metrics=_rounded(values), blessed=False, checks={})

    classes = list(manifest.classes)
    # The labels as integer codes: class i of the model is i, a label the model does not know
    # gets a code of its own past the classes. scikit-learn's metrics then sort integers, not
    # millions of strings (seconds per metric on a million rows); the numbers are the same.
    text = class_names(y_true).to_numpy()
    known = {c: i for i, c in enumerate(classes)}
    unknown = {c: len(classes) + i for i, c in enumerate(sorted(set(pd.unique(text)) - set(known)))}
    y = pd.Series(text).map({**known, **unknown}).to_numpy(dtype="int64")
    codes = list(range(len(classes)))
    predicted = output.argmax(axis=1)
    values = {
        "accuracy": skm.accuracy_score(y, predicted),
        "macro_f1": skm.f1_score(y, predicted, average="macro", labels=codes, zero_division=0),
        "log_loss": skm.log_loss(y, output, labels=codes),
    }
    if not unknown and len(set(pd.unique(y))) == len(classes):
        if len(classes) == 2:
            values["roc_auc_ovr"] = skm.roc_auc_score(y == 1, output[:, 1])
        else:
            values["roc_auc_ovr"] = skm.roc_auc_score(y, output, multi_class="ovr", labels=codes)
    matrix = skm.confusion_matrix(y, predicted, labels=codes).tolist()
    evaluation = Evaluation(
        metrics=_rounded(values), blessed=False, checks={}, confusion_matrix=matrix, classes=classes
    )
    if len(classes) == 2 and "roc_auc_ovr" in values:
        positive, score = y == 1, output[:, 1]
        fpr, tpr, thresholds = thinned(*skm.roc_curve(positive, score))
        precision, recall = thinned(*skm.precision_recall_curve(positive, score)[:2])
        evaluation.positive_class = classes[1]
        evaluation.roc = {
            "fpr": fpr.tolist(),
            "tpr": tpr.tolist(),
            "thresholds": finite_thresholds(thresholds),
        }
        evaluation.pr = {"precision": precision.tolist(), "recall": recall.tolist()}
    return evaluation


def predict(model, manifest: ModelManifest, frame: pd.DataFrame) -> np.ndarray:
    """What ``_score`` scores: predicted values (regression) or class probabilities."""
    x = feature_frame(frame, manifest.features, "eval split")
    if manifest.problem_type == "regression":
        return model.predict(x)
    return model.predict_proba(x)


def predict_split(
    model, manifest: ModelManifest, split: Split, batch_rows: int = DEFAULT_BATCH_ROWS
) -> np.ndarray:
    """:func:`predict` over the split ``batch_rows`` at a time, reading only the model's
    feature columns: memory follows the batch, plus one prediction per row."""
    present = set(split_columns(split))
    columns = [name for name in manifest.feature_names if name in present]
    if len(columns) < len(manifest.feature_names) or split_rows(split) == 0:
        # feature_frame says which columns are missing; an empty split predicts nothing
        return predict(model, manifest, read_columns(split, columns))
    text = [f.name for f in manifest.features if f.kind in ("categorical", "date")]
    batches = [predict(model, manifest, batch) for batch in iter_batches(split, columns, batch_rows, text)]
    return np.concatenate(batches)


def label_values(split: Split, label_column: str, where: str) -> pd.Series:
    """The split's label column alone."""
    if label_column not in split_columns(split):
        raise KfkitError(f"{where}: label column '{label_column}' missing")
    return read_columns(split, [label_column])[label_column]


def compute_metrics(
    model, manifest: ModelManifest, split: Split, batch_rows: int = DEFAULT_BATCH_ROWS
) -> Evaluation:
    output = predict_split(model, manifest, split, batch_rows)
    return _score(manifest, label_values(split, manifest.label_column, "eval split"), output)


def _number_label(value: float) -> str:
    return f"{value:.4g}"


def check_slice_column(feature: str, columns: list[str]) -> None:
    if feature not in columns:
        raise KfkitError(
            f"The 'slice_features' parameter of evaluate names '{feature}', which is not a column of "
            f"the eval split; its columns are {', '.join(columns)}"
        )


def slice_masks(frame: pd.DataFrame, feature: str) -> list[tuple[str, np.ndarray]]:
    """(label, row mask) per slice of ``feature``: each value of a categorical column (sorted),
    or NUMERIC_SLICE_BINS quantile bins of a numeric one, "[low, high]" for the first and
    "(low, high]" for the others; missing values last, as MISSING_SLICE."""
    check_slice_column(feature, [str(c) for c in frame.columns])
    column = frame[feature]
    missing = column.isna().to_numpy()
    present = column[~missing]
    out: list[tuple[str, np.ndarray]] = []
    numeric = pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
    if numeric and present.nunique() > NUMERIC_SLICE_BINS:
        values = column.to_numpy(dtype="float64")
        edges = np.unique(
            np.quantile(present.to_numpy(dtype="float64"), np.linspace(0, 1, NUMERIC_SLICE_BINS + 1))
        )
        # Bin i holds edges[i] < v <= edges[i + 1]; the first also holds the minimum.
        bins = np.searchsorted(edges[1:-1], values, side="left")
        for i in range(len(edges) - 1):
            mask = (bins == i) & ~missing
            opening = "[" if i == 0 else "("
            label = f"{opening}{_number_label(edges[i])}, {_number_label(edges[i + 1])}]"
            if mask.any():
                out.append((label, mask))
    else:
        labels = present.map(lambda v: _number_label(v) if numeric else str(v))
        text = pd.Series(MISSING_SLICE, index=column.index, dtype=object)
        text[~missing] = labels
        for label in sorted(set(labels)):
            out.append((label, (text == label).to_numpy() & ~missing))
    if missing.any():
        out.append((MISSING_SLICE, missing))
    return out


def score_slices(
    manifest: ModelManifest, frame: pd.DataFrame, output: np.ndarray, features: list[str]
) -> list[Slice]:
    """Every slice of every feature scored by ``_score`` on its own rows (metrics that a slice
    cannot have, e.g. r2 of one row, are left out)."""
    import warnings

    y = frame[manifest.label_column].reset_index(drop=True)
    slices = []
    for feature in features:
        for label, mask in slice_masks(frame, feature):
            with warnings.catch_warnings():
                # A slice of one class or a handful of rows: scikit-learn warns, the number is
                # dropped below or kept with its row count, which says how far to trust it.
                warnings.simplefilter("ignore")
                scored = _score(manifest, y[mask], output[mask]).metrics
            metrics = {k: v for k, v in scored.items() if math.isfinite(v)}
            slices.append(Slice(feature, label, int(mask.sum()), metrics))
    return slices


def worst_slice(slices: list[Slice], metric: str) -> Slice | None:
    """The gating slice (MIN_SLICE_ROWS rows or more) worst on ``metric``; the first on a tie."""
    scored = [s for s in slices if s.gates and metric in s.metrics]
    if not scored:
        return None
    return max(scored, key=lambda s: _loss(metric, s.metrics[metric]))


def trivial_metrics(
    manifest: ModelManifest, train_labels: pd.Series, eval_labels: pd.Series
) -> dict[str, float]:
    """The trivial model (no features: the label's prior or mean on the train split's labels)
    scored on the eval rows' labels with the candidate's metrics."""
    from sklearn.dummy import DummyRegressor

    if manifest.problem_type == "regression":
        no_features_train = np.zeros((len(train_labels), 1))
        no_features_eval = np.zeros((len(eval_labels), 1))
        y = pd.to_numeric(train_labels).astype("float64")
        dummy = DummyRegressor(strategy="mean").fit(no_features_train, y)
        return _score(manifest, eval_labels, dummy.predict(no_features_eval)).metrics
    # DummyClassifier(strategy="prior") learns each class's share of the train labels and predicts
    # it for every row: computed here from the class counts as it computes them (bincount over
    # the counts' sum), without building a million-row feature matrix for it to check.
    codes, names = pd.factorize(class_names(train_labels), sort=True)
    counts = np.bincount(codes, minlength=len(names))
    prior = counts / counts.sum()
    # Columns in the candidate's class order; a class the train split lacks has probability 0.
    columns = {str(name): np.full(len(eval_labels), share) for name, share in zip(names, prior, strict=True)}
    aligned = np.column_stack([columns.get(c, np.zeros(len(eval_labels))) for c in manifest.classes])
    return _score(manifest, eval_labels, aligned).metrics


def _rounded(values: dict[str, float]) -> dict[str, float]:
    # Rounded so that metrics compare equal across runs and read well; 1e-9 is far below noise.
    return {k: round(float(v), 9) for k, v in values.items()}


def _allowed(problem_type: str) -> tuple[str, ...]:
    return CLASSIFICATION_METRICS if problem_type == "classification" else REGRESSION_METRICS


def _check_names(parameter: str, names: Any, problem_type: str) -> None:
    allowed = _allowed(problem_type)
    unknown = sorted(set(names) - set(allowed))
    if unknown:
        raise KfkitError(
            f"The '{parameter}' parameter of evaluate has unknown metric(s) {unknown}; "
            f"{problem_type} metrics are {', '.join(allowed)}"
        )


def _loss(metric: str, value: float) -> float:
    """Every metric as an error, lower is better: 1 - accuracy, log_loss as it is."""
    return 1.0 - value if metric in HIGHER_IS_BETTER else value


def _from_loss(metric: str, loss: float) -> float:
    return 1.0 - loss if metric in HIGHER_IS_BETTER else loss


def _add(evaluation: Evaluation, name: str, text: str, ok: bool | None) -> None:
    evaluation.checks[name] = text + (SKIPPED if ok is None else OK if ok else FAILED)


def check_thresholds(evaluation: Evaluation, thresholds: dict[str, float], problem_type: str) -> None:
    _check_names("thresholds", thresholds, problem_type)
    failed = []
    for metric, limit in sorted(thresholds.items()):
        value = evaluation.metrics.get(metric)
        if value is None:
            text, ok = f"not computed (needed {limit})", False
        elif metric in HIGHER_IS_BETTER:
            ok, text = value >= float(limit), f"{value:.4f} >= {float(limit):g}"
        else:
            ok, text = value <= float(limit), f"{value:.4f} <= {float(limit):g}"
        _add(evaluation, metric, text, ok)
        if not ok:
            failed.append(f"{metric} {text}")
    if failed:
        evaluation.failures.append("thresholds not met: " + "; ".join(failed))
    elif thresholds:
        evaluation.passed.append("all thresholds met")


def check_slice_floors(evaluation: Evaluation, floors: dict[str, float], problem_type: str) -> None:
    """Every slice of MIN_SLICE_ROWS rows or more must reach each floor (a ceiling for
    log_loss, rmse, mae): the worst slice on that metric is what the check names."""
    _check_names("slice_floors", floors, problem_type)
    evaluation.slice_floors = {metric: float(limit) for metric, limit in floors.items()}
    failed = []
    for metric, limit in sorted(evaluation.slice_floors.items()):
        name = f"slice floor: {metric}"
        if not any(s.gates for s in evaluation.slices):
            _add(evaluation, name, f"no slice has {MIN_SLICE_ROWS} rows or more: nothing to gate", None)
            continue
        worst = worst_slice(evaluation.slices, metric)
        if worst is None:
            text, ok = f"not computed on any slice of {MIN_SLICE_ROWS} rows or more (needed {limit:g})", False
            _add(evaluation, name, text, ok)
            failed.append(f"{metric} {text}")
            continue
        value = worst.metrics[metric]
        sign = ">=" if metric in HIGHER_IS_BETTER else "<="
        ok = value >= limit if metric in HIGHER_IS_BETTER else value <= limit
        _add(
            evaluation,
            name,
            f"worst slice {worst.label}: {value:.4f} {sign} {limit:g} ({worst.rows} rows)",
            ok,
        )
        if not ok:
            breaching = [
                s
                for s in evaluation.slices
                if s.gates and metric in s.metrics and _loss(metric, s.metrics[metric]) > _loss(metric, limit)
            ]
            more = f", and {len(breaching) - 1} more slice(s)" if len(breaching) > 1 else ""
            word = "below the floor" if metric in HIGHER_IS_BETTER else "above the ceiling"
            failed.append(f"{worst.label} {metric} {value:.4f} {word} {limit:g} ({worst.rows} rows){more}")
    if failed:
        evaluation.failures.append("slice floors not met: " + "; ".join(failed))
    elif any(text.endswith(OK) for key, text in evaluation.checks.items() if key.startswith("slice floor")):
        evaluation.passed.append("every slice meets its floor")


def check_trivial(
    evaluation: Evaluation, trivial: dict[str, float], metrics: list[str], margin: float, problem_type: str
) -> None:
    """The candidate must remove at least ``margin`` of the trivial model's error on each metric."""
    _check_names("trivial_metrics", metrics, problem_type)
    if not 0 <= margin < 1:
        raise KfkitError(
            f"The 'trivial_margin' parameter of evaluate must be in [0, 1). Got {margin!r} instead."
        )
    evaluation.trivial_metrics = dict(trivial)
    failed = []
    for metric in metrics:
        name = f"vs trivial: {metric}"
        value, base = evaluation.metrics.get(metric), trivial.get(metric)
        if value is None or base is None:
            _add(evaluation, name, f"{metric} not computed for the candidate or the trivial model", False)
            failed.append(f"{metric} not computed")
            continue
        needed_loss = _loss(metric, base) * (1 - margin)
        ok = _loss(metric, value) <= needed_loss and _loss(metric, value) < _loss(metric, base)
        sign = ">=" if metric in HIGHER_IS_BETTER else "<="
        needs = f"needs {sign} {_from_loss(metric, needed_loss):.4f}"
        text = f"candidate {value:.4f} vs trivial {base:.4f} ({needs}: margin {margin:g} of its error)"
        _add(evaluation, name, text, ok)
        if not ok:
            failed.append(f"{metric} {value:.4f} vs trivial {base:.4f} ({needs})")
    if failed:
        model = TRIVIAL_MODELS[problem_type]
        evaluation.failures.append(f"does not beat the trivial baseline {model}: " + "; ".join(failed))
    else:
        evaluation.passed.append(f"beats the trivial baseline on {', '.join(metrics)}")


def merged_tolerances(tolerances: dict[str, Any] | None, problem_type: str) -> dict[str, float]:
    """The defaults for this problem type, overridden per metric; None switches a metric off."""
    given = dict(tolerances or {})
    _check_names("tolerances", given, problem_type)
    merged: dict[str, Any] = {m: DEFAULT_TOLERANCES[m] for m in _allowed(problem_type)}
    merged.update(given)
    out = {}
    for metric, tolerance in merged.items():
        if is_off(tolerance):
            continue
        if not isinstance(tolerance, int | float) or tolerance < 0:
            raise KfkitError(
                f"The 'tolerances' parameter of evaluate must map each metric to a number >= 0 "
                f'(or "off": not compared). Got {metric}: {tolerance!r} instead.'
            )
        out[metric] = float(tolerance)
    return out


def check_version(
    evaluation: Evaluation, version: str, baseline: dict[str, float], tolerances: dict[str, float]
) -> None:
    """The candidate may be worse than the version it replaces by at most each metric's tolerance."""
    evaluation.baseline_version = version
    evaluation.baseline_metrics = dict(baseline)
    failed = []
    for metric, tolerance in sorted(tolerances.items()):
        value, base = evaluation.metrics.get(metric), baseline.get(metric)
        if value is None or base is None:
            continue  # e.g. roc_auc_ovr when the eval rows lack a class: nothing to compare
        name = f"vs version {version}: {metric}"
        if metric in RELATIVE_TOLERANCE:
            worse = (value - base) / base if base else (math.inf if value > base else 0.0)
            change = f"{(value - base) / base:+.1%}" if base else f"{value - base:+.4f}"
            limit = f"{tolerance:.0%}" if tolerance * 100 == int(tolerance * 100) else f"{tolerance:.2%}"
        else:
            worse = base - value
            change, limit = f"{value - base:+.4f}", f"{tolerance:g}"
        ok = worse <= tolerance + 1e-12
        verdict = "within" if ok else "beyond"
        text = f"candidate {value:.4f} vs version {version} {base:.4f}: {change} {verdict} {limit}"
        _add(evaluation, name, text, ok)
        if not ok:
            failed.append(f"{metric} {value:.4f} vs {base:.4f} ({change} beyond {limit})")
    if failed:
        evaluation.failures.append(f"worse than version {version}: " + "; ".join(failed))
    else:
        evaluation.passed.append(f"not worse than version {version}")


def skip_version(evaluation: Evaluation, why: str, version: str = "") -> None:
    evaluation.baseline_version = version
    _add(evaluation, "vs version", why, None)
    evaluation.passed.append(why)


def score_baseline_version(
    folder: str | Path, candidate: ModelManifest, split: Split, batch_rows: int = DEFAULT_BATCH_ROWS
) -> tuple[dict[str, float] | None, str]:
    """The pushed version's metrics on the eval rows, or (None, why it is not comparable).

    Loaded only through ``load_verified_model``: a model whose bytes do not match its sha256
    is an error (the version was changed after push), not "not comparable"."""
    import sklearn

    folder = Path(folder)
    if not (folder / MANIFEST_FILE).is_file():
        return None, f"the baseline folder has no {MANIFEST_FILE}"
    manifest = ModelManifest.read(folder)
    if not (folder / manifest.model_file).is_file():
        return None, f"the baseline folder has no model file ({manifest.model_file})"
    if manifest.problem_type != candidate.problem_type:
        return None, f"it is a {manifest.problem_type} model, the candidate a {candidate.problem_type} one"
    if manifest.label_column != candidate.label_column:
        return None, f"it predicts '{manifest.label_column}', the candidate '{candidate.label_column}'"
    if manifest.problem_type == "classification" and set(manifest.classes) != set(candidate.classes):
        return (
            None,
            f"its classes {sorted(manifest.classes)} differ from the candidate's {sorted(candidate.classes)}",
        )
    try:
        check_sklearn_version(manifest, sklearn.__version__)
    except KfkitError as exc:
        return None, str(exc)
    model, manifest = load_verified_model(folder)  # sha256 mismatch: raises, the task fails
    try:
        return compute_metrics(model, manifest, split, batch_rows).metrics, ""
    except (KfkitError, ValueError, TypeError, KeyError) as exc:
        return None, f"it cannot score the eval rows: {first_line(exc)}"


def evaluate(
    model_dir: str,
    frame: Split,
    thresholds: dict[str, float],
    train_frame: Split,
    baseline_dir: str | None = None,
    baseline_meta: dict[str, Any] | None = None,
    trivial_metrics_to_beat: list[str] | None = None,
    trivial_margin: float = DEFAULT_TRIVIAL_MARGIN,
    tolerances: dict[str, Any] | None = None,
    slice_features: list[str] | None = None,
    slice_floors: dict[str, float] | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> Evaluation:
    """Score the candidate, the trivial model and the baseline version, and the candidate on
    each slice of ``slice_features``; bless by every check.

    ``frame``, ``train_frame``: the eval and train splits, each a Parquet file's path or a
    DataFrame. Models predict ``batch_rows`` eval rows at a time from the feature columns
    alone; besides the predictions only the label and slicing columns are read whole, and
    of the train split only its label.
    ``baseline_dir`` None: no baseline was given; ``baseline_meta``: its artifact's metadata
    (``found``, ``version``)."""
    check_slice_parameters(slice_features, slice_floors)
    model, manifest = load_verified_model(model_dir)
    problem_type = manifest.problem_type
    label = manifest.label_column
    columns = split_columns(frame)
    if label not in columns:
        raise KfkitError(f"eval split: label column '{label}' missing")
    for feature in slice_features or []:
        check_slice_column(feature, columns)
    eval_columns = read_columns(frame, list(dict.fromkeys([label, *(slice_features or [])])))
    output = predict_split(model, manifest, frame, batch_rows)
    evaluation = _score(manifest, eval_columns[label], output)
    evaluation.primary_metric = PRIMARY_METRIC[problem_type]
    if slice_features:
        evaluation.slices = score_slices(manifest, eval_columns, output, list(slice_features))
        evaluation.worst_slice = worst_slice(evaluation.slices, evaluation.primary_metric)
    wanted = list(trivial_metrics_to_beat or DEFAULT_TRIVIAL_METRICS[problem_type])
    train_labels = label_values(train_frame, label, "train split")
    check_trivial(
        evaluation,
        trivial_metrics(manifest, train_labels, eval_columns[label]),
        wanted,
        float(trivial_margin),
        problem_type,
    )
    allowed_tolerances = merged_tolerances(tolerances, problem_type)
    meta = dict(baseline_meta or {})
    if baseline_dir is None:
        skip_version(evaluation, "no baseline given: nothing to compare with")
    elif not meta.get("found"):
        skip_version(evaluation, "no baseline version: nothing to compare with")
    else:
        version = str(meta.get("version", "?"))
        scored, why = score_baseline_version(baseline_dir, manifest, frame, batch_rows)
        if scored is None:
            skip_version(evaluation, f"version {version} not comparable: {why}", version)
        else:
            check_version(evaluation, version, scored, allowed_tolerances)
    check_thresholds(evaluation, dict(thresholds), problem_type)
    if not thresholds:
        evaluation.passed.append("no thresholds given")
    if slice_floors:
        check_slice_floors(evaluation, dict(slice_floors), problem_type)
    verdicts = list(evaluation.checks.values())
    evaluation.blessed = not evaluation.failures and any(v.endswith(OK) for v in verdicts)
    return evaluation


def blessing_reason(evaluation: Evaluation) -> str:
    if evaluation.failures:
        return "; ".join(evaluation.failures)
    if not evaluation.blessed:
        return "no check passed: nothing is blessed without evidence"
    return "; ".join(evaluation.passed)


def worst_slice_sentence(evaluation: Evaluation) -> str:
    """ "Worst slice (lowest accuracy, 10 rows or more): color=red, accuracy 0.5500 (130 rows)"."""
    metric = evaluation.primary_metric
    which = "lowest" if metric in HIGHER_IS_BETTER else "highest"
    head = f"Worst slice ({which} {metric}, {MIN_SLICE_ROWS} rows or more)"
    worst = evaluation.worst_slice
    if worst is None:
        return f"{head}: none, no slice has {MIN_SLICE_ROWS} rows or more with {metric} computed"
    return f"{head}: {worst.label}, {metric} {worst.metrics[metric]:.4f} ({worst.rows} rows)"


def _breaches(evaluation: Evaluation, piece: Slice) -> bool:
    """A gating slice beyond one of its floors."""
    return piece.gates and any(
        metric in piece.metrics and _loss(metric, piece.metrics[metric]) > _loss(metric, limit)
        for metric, limit in evaluation.slice_floors.items()
    )


def slices_markdown(evaluation: Evaluation) -> list[str]:
    if not evaluation.slices:
        return []
    metrics = list(dict.fromkeys(m for piece in evaluation.slices for m in piece.metrics))
    lines = ["", "## Slices", "", f"**{worst_slice_sentence(evaluation)}**", ""]
    if evaluation.slice_floors:
        floors = ", ".join(f"{m} {v:g}" for m, v in sorted(evaluation.slice_floors.items()))
        lines += [f"Floors (every slice of {MIN_SLICE_ROWS} rows or more): {floors}.", ""]
    lines += [
        "| feature | value | rows | " + " | ".join(metrics) + " | note |",
        "|---|---|---|" + "---|" * len(metrics) + "---|",
    ]
    for piece in evaluation.slices:
        cells = [f"{piece.metrics[m]:.4f}" if m in piece.metrics else "" for m in metrics]
        note = "below a floor" if _breaches(evaluation, piece) else ""
        if not piece.gates:
            note = f"fewer than {MIN_SLICE_ROWS} rows: not gated"
        value = piece.value.replace("|", "\\|")
        lines.append(f"| {piece.feature} | {value} | {piece.rows} | " + " | ".join(cells) + f" | {note} |")
    return lines


def report_markdown(evaluation: Evaluation, reason: str) -> str:
    """A Markdown report the KFP UI renders: verdict, metrics side by side, checks, confusion matrix."""
    version = evaluation.baseline_version
    columns = ["candidate", "trivial"] + ([f"version {version}"] if evaluation.baseline_metrics else [])
    lines = [
        "# Model evaluation",
        "",
        f"**{'blessed' if evaluation.blessed else 'NOT blessed'}**: {reason}",
        "",
        "| metric | " + " | ".join(columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for metric, value in evaluation.metrics.items():
        row = [value, evaluation.trivial_metrics.get(metric)]
        if evaluation.baseline_metrics:
            row.append(evaluation.baseline_metrics.get(metric))
        lines.append(f"| {metric} | " + " | ".join("" if v is None else f"{v:.4f}" for v in row) + " |")
    lines += ["", "## Checks", "", "| check | result |", "|---|---|"]
    lines += [f"| {name} | {text} |" for name, text in evaluation.checks.items()]
    lines += slices_markdown(evaluation)
    if evaluation.classes:
        lines += [
            "",
            "## Confusion matrix (candidate; rows: true class, columns: predicted)",
            "",
            "| | " + " | ".join(evaluation.classes) + " |",
            "|---|" + "---|" * len(evaluation.classes),
        ]
        for cls, row in zip(evaluation.classes, evaluation.confusion_matrix, strict=True):
            lines.append(f"| **{cls}** | " + " | ".join(str(n) for n in row) + " |")
    return "\n".join(lines) + "\n"


def slices_html(page: Any, evaluation: Evaluation) -> None:
    """The slices on a ``kfkit.html_report.Page``: the worst named, one bar chart per charted
    metric (the primary one, and each with a floor) with the floor as a dashed line across every
    slice, gating slices beyond it in red, then every slice's metrics as a table."""
    page.heading("Slices")
    page.paragraph(worst_slice_sentence(evaluation), "verdict-bad" if evaluation.worst_slice else "")
    charted = [
        evaluation.primary_metric,
        *sorted(m for m in evaluation.slice_floors if m != evaluation.primary_metric),
    ]
    for metric in charted:
        floor = evaluation.slice_floors.get(metric)
        bound = "floor" if metric in HIGHER_IS_BETTER else "ceiling"
        page.heading(f"{metric} per slice" + ("" if floor is None else f" ({bound} {floor:g}: dashed)"), 3)
        groups = [(piece.label, {metric: piece.metrics.get(metric)}) for piece in evaluation.slices]
        over = [
            piece.label
            for piece in evaluation.slices
            if floor is not None
            and piece.gates
            and metric in piece.metrics
            and _loss(metric, piece.metrics[metric]) > _loss(metric, floor)
        ]
        marks = {} if floor is None else {piece.label: floor for piece in evaluation.slices}
        page.bars(groups, [metric], marks=marks, over=over, css=f"slices slices-{metric}")
    metrics = list(dict.fromkeys(m for piece in evaluation.slices for m in piece.metrics))
    page.table(
        ["feature", "value", "rows", *metrics, "note"],
        [
            [
                piece.feature,
                piece.value,
                piece.rows,
                *(piece.metrics.get(m) for m in metrics),
                "" if piece.gates else f"fewer than {MIN_SLICE_ROWS} rows: not gated",
            ]
            for piece in evaluation.slices
        ],
        [_breaches(evaluation, piece) for piece in evaluation.slices],
    )


def report_html(evaluation: Evaluation, reason: str) -> str:
    """One self-contained HTML page (KFP's HTML artifact): verdict, metrics of the candidate,
    the trivial model and the baseline version as grouped bars, the checks, the slices (when
    sliced), the confusion matrix as a heatmap, and for binary classification the ROC and
    precision-recall curves."""
    from kfkit.html_report import Page

    page = Page("Model evaluation")
    page.paragraph(
        f"{'blessed' if evaluation.blessed else 'NOT blessed'}: {reason}",
        "verdict-ok" if evaluation.blessed else "verdict-bad",
    )
    series = {"candidate": evaluation.metrics, "trivial model": evaluation.trivial_metrics}
    if evaluation.baseline_metrics:
        series[f"version {evaluation.baseline_version}"] = evaluation.baseline_metrics
    page.heading("Metrics on the eval split")
    page.paragraph(
        "Each metric on its own scale; "
        + ", ".join(m for m in evaluation.metrics if m in LOWER_IS_BETTER)
        + " lower is better, the others higher."
    )
    page.legend(list(series))
    page.bars(
        [
            (metric, {name: values.get(metric) for name, values in series.items()})
            for metric in evaluation.metrics
        ],
        list(series),
        scale_each_group=True,
        css="metrics",
    )
    page.table(
        ["metric", *series],
        [[metric, *(values.get(metric) for values in series.values())] for metric in evaluation.metrics],
    )
    page.heading("Checks")
    page.table(
        ["check", "result"],
        list(evaluation.checks.items()),
        [text.endswith(FAILED) for text in evaluation.checks.values()],
    )
    if evaluation.slices:
        slices_html(page, evaluation)
    if evaluation.classes:
        page.heading("Confusion matrix")
        page.paragraph("The candidate on the eval split; rows: true class, columns: predicted.")
        page.heatmap(evaluation.classes, evaluation.confusion_matrix, "true \\ predicted")
    if evaluation.roc:
        page.heading(f"ROC curve (positive class: {evaluation.positive_class})")
        auc = evaluation.metrics.get("roc_auc_ovr")
        if auc is not None:
            page.paragraph(f"Area under the curve {auc:.4f}; dashed: chance.")
        page.lines(
            [("candidate", evaluation.roc["fpr"], evaluation.roc["tpr"])],
            "false positive rate",
            "true positive rate",
            diagonal=True,
            css="roc",
        )
        page.heading(f"Precision-recall curve (positive class: {evaluation.positive_class})")
        page.lines(
            [("candidate", evaluation.pr["recall"], evaluation.pr["precision"])],
            "recall",
            "precision",
            css="pr",
        )
    return page.render()


def check_metric_map(parameter: str, value: Any, allow_null: bool = False) -> None:
    """``value`` maps metric names (of either problem type: the model says which at run time)
    to numbers; one line naming ``parameter`` otherwise."""
    known = (*CLASSIFICATION_METRICS, *REGRESSION_METRICS)
    if not isinstance(value, dict):
        raise KfkitError(f"The '{parameter}' parameter of evaluate must be a mapping. Got {value!r} instead.")
    unknown = sorted(set(value) - set(known))
    if unknown:
        raise KfkitError(
            f"The '{parameter}' parameter of evaluate has unknown metric(s) {unknown}; "
            f"metrics are {', '.join(known)}"
        )
    bad = {
        k: v
        for k, v in value.items()
        if not (is_off(v) and allow_null) and (isinstance(v, bool) or not isinstance(v, int | float))
    }
    if bad:
        raise KfkitError(
            f"The '{parameter}' parameter of evaluate must map metrics to numbers. Got {bad!r} instead."
        )


def check_slice_parameters(features: Any, floors: Any) -> None:
    """``slice_features`` a list of column names, ``slice_floors`` metric -> number, and floors
    only with something to slice. Whether the columns exist only the eval split can say."""
    if features is not None and (
        not isinstance(features, list) or not all(isinstance(f, str) and f for f in features)
    ):
        raise KfkitError(
            "The 'slice_features' parameter of evaluate must be a list of column names. "
            f"Got {features!r} instead."
        )
    if features and len(set(features)) != len(features):
        raise KfkitError(f"The 'slice_features' parameter of evaluate names a column twice: {features!r}")
    if floors is None:
        return
    check_metric_map("slice_floors", floors)
    if floors and not features:
        raise KfkitError(
            f"The 'slice_floors' parameter of evaluate ({', '.join(sorted(floors))}) needs "
            "'slice_features' to name the columns to slice by; it is empty"
        )


def check(params: dict[str, Any]) -> None:
    """The parameters alone, before any task runs: metric names (of either problem type: the
    model says which at run time), limits that are numbers, a margin in [0, 1)."""
    for parameter in ("thresholds", "tolerances"):
        value = params.get(parameter)
        if value is not None:
            # A null tolerance turns that metric's comparison off.
            check_metric_map(parameter, value, allow_null=parameter == "tolerances")
    check_slice_parameters(params.get("slice_features"), params.get("slice_floors"))
    margin = params.get("trivial_margin")
    if margin is not None and (
        isinstance(margin, bool) or not isinstance(margin, int | float) or not 0 <= margin < 1
    ):
        raise KfkitError(
            f"The 'trivial_margin' parameter of evaluate must be in [0, 1). Got {margin!r} instead."
        )


def run(task: Task) -> None:
    from kfkit.runtime import write_skipped

    model, out, p = task.inputs["model"], task.outputs, task.params
    baseline = task.inputs.get("baseline")
    result = evaluate(
        model.path,
        task.inputs["eval_split"].path,
        dict(p["thresholds"] or {}),
        train_frame=task.inputs["train_split"].path,
        baseline_dir=baseline.path if baseline is not None else None,
        baseline_meta=dict(baseline.metadata) if baseline is not None else None,
        trivial_metrics_to_beat=list(p.get("trivial_metrics") or []),
        trivial_margin=DEFAULT_TRIVIAL_MARGIN if p.get("trivial_margin") is None else p["trivial_margin"],
        tolerances=p.get("tolerances"),
        slice_features=list(p.get("slice_features") or []),
        slice_floors=dict(p.get("slice_floors") or {}),
    )
    for name, value in result.metrics.items():
        out["metrics"].log_metric(name, value)
    if result.slices:  # MLMD keeps them beside the metrics (lineage: which slice was worst)
        out["metrics"].metadata["slices"] = [piece.as_metadata() for piece in result.slices]
        out["metrics"].metadata["worst_slice"] = (
            result.worst_slice.as_metadata() if result.worst_slice else {}
        )
    if result.classes:
        out["classification_metrics"].log_confusion_matrix(result.classes, result.confusion_matrix)
        if result.roc:  # binary: KFP's UI draws it from the metadata
            out["classification_metrics"].log_roc_curve(
                result.roc["fpr"], result.roc["tpr"], result.roc["thresholds"]
            )
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
            "trivial_metrics": result.trivial_metrics,
            "baseline_metrics": result.baseline_metrics,
            "baseline_version": result.baseline_version,
            "model_sha256": model.metadata.get("sha256", ""),
            "dataset_fingerprint": model.metadata.get("training_data_fingerprint", ""),
        }
    )
    Path(blessing.path).parent.mkdir(parents=True, exist_ok=True)
    Path(blessing.path).write_text(("BLESSED" if result.blessed else "NOT_BLESSED") + "\n")
    Path(out["report"].path).parent.mkdir(parents=True, exist_ok=True)
    Path(out["report"].path).write_text(report_markdown(result, reason))
    Path(out["html"].path).parent.mkdir(parents=True, exist_ok=True)
    Path(out["html"].path).write_text(report_html(result, reason))
    shown = ", ".join(f"{k} {v:.4f}" for k, v in result.metrics.items())
    trivial = ", ".join(
        f"{k} {v:.4f}" for k, v in result.trivial_metrics.items() if k in ("accuracy", "log_loss", "rmse")
    )
    task.say(f"{shown} (trivial: {trivial}); {'blessed' if result.blessed else 'NOT blessed'}: {reason}")
    if result.slices:
        task.say(f"{len(result.slices)} slices; {worst_slice_sentence(result)}")
