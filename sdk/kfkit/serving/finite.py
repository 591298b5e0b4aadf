"""Refuse request values a model cannot compute with, the same way on every prediction path.

A finite but huge number (``1e308``) passes the request checks, then the fitted scaler turns it
into infinity. scikit-learn's estimator refuses that with a ``ValueError`` (which a server would
answer as a 500), while the numpy replay in ``fast_path.py`` would compute on and answer ``NaN``
(which is not JSON). Both paths instead check the preprocessed features and the prediction here,
with the same message, so a value out of range is the caller's mistake (HTTP 400) in both.

Standard library, numpy and scikit-learn only: this runs in the serving environment too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from kfkit.errors import KfkitError

PREPROCESSING = "preprocessing"
PREDICTION = "prediction"
FLOAT32_MAX = float(np.finfo(np.float32).max)
_REASONS = {
    PREPROCESSING: "its preprocessing turns them into numbers beyond +-3.4e38",
    PREDICTION: "its prediction is not a finite number",
}


class OutOfRangeError(KfkitError):
    """Request values the model turns into infinity or NaN: the caller's mistake (HTTP 400)."""


def _largest_numeric(columns: Mapping[str, Sequence[Any]], row: int) -> str:
    """The row's numeric value of largest magnitude, to point at the likely culprit."""
    best: tuple[float, str, float] | None = None
    for name, values in columns.items():
        value = values[row]
        if isinstance(value, float) and math.isfinite(value):
            if best is None or abs(value) > best[0]:
                best = (abs(value), name, value)
    return f"; largest: {best[1]!r} = {best[2]!r}" if best else ""


def check_finite(values: Any, columns: Mapping[str, Sequence[Any]], stage: str) -> None:
    """Raise ``OutOfRangeError`` naming the first row of ``values`` out of range for ``stage``.

    ``stage`` is ``PREPROCESSING`` (features the estimator receives: within float32's range,
    because tree ensembles cast their input to float32 and refuse what overflows there) or
    ``PREDICTION`` (finite). ``columns`` are the request's converted input values
    (``rows_to_columns``), used only for the message.
    """
    sparse = hasattr(values, "tocoo")  # a scipy sparse matrix: only its stored values can be bad
    matrix = values.tocoo() if sparse else None
    array = np.asarray(matrix.data if sparse else values, dtype=np.float64)
    if stage == PREPROCESSING:
        with np.errstate(invalid="ignore"):
            finite = np.abs(array) <= FLOAT32_MAX  # False for inf and NaN too
    else:
        finite = np.isfinite(array)
    if finite.all():
        return
    if sparse:
        row = int(matrix.row[~finite].min())
    else:
        row = int(np.nonzero(~finite.reshape(finite.shape[0], -1).all(axis=1))[0][0])
    raise OutOfRangeError(
        f"row {row}: values out of the range the model can compute with ({_REASONS[stage]})"
        f"{_largest_numeric(columns, row)}; send numbers of the size the model was trained on"
    )


def predict_checked(
    model: Any, frame: Any, classify: bool, columns: Mapping[str, Sequence[Any]]
) -> np.ndarray:
    """``predict_proba`` (classification) or ``predict`` as one column, with both checks.

    A scikit-learn ``Pipeline`` runs as its preprocessing then its final estimator: exactly what
    ``Pipeline.predict_proba`` does, with the check in between where scikit-learn would raise.
    """
    from sklearn.pipeline import Pipeline

    estimator = model
    features = frame
    if isinstance(model, Pipeline) and len(model.steps) > 1:
        features = model[:-1].transform(frame)
        check_finite(features, columns, PREPROCESSING)
        estimator = model[-1]
    if classify:
        answer = estimator.predict_proba(features)
    else:
        answer = np.asarray(estimator.predict(features), dtype="float64").reshape(-1, 1)
    check_finite(answer, columns, PREDICTION)
    return answer
