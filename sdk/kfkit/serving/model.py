"""The model class that ``seldon-core-microservice`` serves: ``kfkit.serving.model.KfkitModel``.

Seldon Core v1's Python wrapper imports this class by name, builds one instance in its main
process, and calls ``load()`` in every gunicorn worker (and gRPC worker) after forking. Each
REST request ``{"data": {"names": [...], "ndarray": [[...], ...]}}`` reaches ``predict`` as
a numpy array plus the names; the answer is ``predict_proba`` with the model's classes as
``data.names`` (classification) or the predicted value named after the label (regression).

``rows_to_frame`` is the one conversion from request rows to the DataFrame the model was
trained on; in-process callers use it too, so a served prediction equals a local one.

Runs in the serving environment (seldon-core, scikit-learn, numpy, pandas); seldon-core is
imported only to raise its HTTP error, so the module also works in kfkit's own environment.
"""

from __future__ import annotations

import gc
import json
import math
import numbers
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sklearn  # noqa: F401  # ~3 s: import once before Seldon forks, not in every worker

from kfkit.errors import KfkitError
from kfkit.model_folder import ModelManifest, load_verified_model
from kfkit.serving.finite import OutOfRangeError, predict_checked
from kfkit.values import days_since_epoch, parse_number

MODEL_DIR_ENV = "KFKIT_MODEL_DIR"
FAST_PATH_ENV = "KFKIT_SERVING_FAST_PATH"
# Where Seldon's storage initializer puts the model folder (modelUri) in a cluster.
DEFAULT_MODEL_DIR = "/mnt/models"
NUMERIC = "numeric"
CATEGORICAL = "categorical"
DATE = "date"  # sent as an ISO date text, given to the model as days since 1970-01-01
CLASSIFICATION = "classification"
REGRESSION = "regression"


class FeatureError(KfkitError):
    """Request rows whose features do not fit the model: the caller's mistake (HTTP 400)."""


def _quoted(names: Iterable[str]) -> str:
    return ", ".join(repr(name) for name in names)


def check_feature_names(names: Sequence[str], manifest: ModelManifest) -> None:
    """Refuse names that are missing, unknown or repeated, naming each offending feature.

    A misnamed feature shows up as one unknown and one missing name, so both are reported.
    Columns the model was trained without (``manifest.excluded_features``: an id, free text)
    may be sent, and are ignored.
    """
    expected = manifest.feature_names
    expected_set = set(expected) | set(manifest.excluded_features)
    given_set = set(names)
    seen: set[str] = set()
    duplicates = []
    for name in names:
        if name in seen and name not in duplicates:
            duplicates.append(name)
        seen.add(name)
    missing = [name for name in expected if name not in given_set]
    unknown = [name for name in names if name not in expected_set]
    problems = []
    if missing:
        problems.append(f"missing feature(s) {_quoted(missing)}")
    if unknown:
        problems.append(f"unknown feature(s) {_quoted(unknown)}")
    if duplicates:
        problems.append(f"repeated feature(s) {_quoted(duplicates)}")
    if problems:
        raise FeatureError(
            f"features do not match model {manifest.model_name!r}: {'; '.join(problems)} "
            f"(got {len(names)}, expected {len(expected)}: {_quoted(expected)})"
        )


def _is_missing(value: Any) -> bool:
    if value is None or value is pd.NA:
        return True
    return isinstance(value, float | np.floating) and math.isnan(value)


def _to_float(value: Any, feature: str, row: int) -> float:
    """Finite numbers, numeric strings (Seldon turns a mixed-type ndarray into strings), or null.

    Infinity, "inf", "nan" and numbers beyond float range (an integer of 400 digits) are refused:
    the model cannot compute with them, and NaN here would silently mean "missing".
    """
    if _is_missing(value):
        return math.nan
    number: float | None = math.nan
    if not isinstance(value, bool | np.bool_):
        if isinstance(value, numbers.Real):
            try:
                number = float(value)
            except OverflowError:  # an integer beyond float range
                number = math.nan
        elif isinstance(value, str):
            number = parse_number(value)  # "16,800.00" as ingest reads it
    if number is not None and math.isfinite(number):
        return number
    shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
    raise FeatureError(
        f"feature {feature!r} is numeric but row {row} holds {shown}: send a finite number, or "
        "null for a missing value"
    )


def _to_days(value: Any, feature: str, row: int) -> float:
    """An ISO date (or date-time) text as days since 1970-01-01, as training turned it; null as NaN."""
    if _is_missing(value):
        return math.nan
    days = days_since_epoch(value)
    if days is None:
        raise FeatureError(
            f"feature {feature!r} is a date but row {row} holds {value!r}: send an ISO date such as "
            "'2024-01-31' (or '2024-01-31T12:00:00'), or null for a missing value"
        )
    return days


def _to_category(value: Any, feature: str, row: int) -> Any:
    """Strings as they are, other scalars as their str() (as Seldon does), null as NaN."""
    if _is_missing(value):
        return np.nan
    if isinstance(value, str | numbers.Number | np.bool_):
        return str(value)
    raise FeatureError(
        f"feature {feature!r} is categorical but row {row} holds {value!r}: send a string, or "
        "null for a missing value"
    )


def rows_to_columns(
    rows: Sequence[Mapping[str, Any]] | Sequence[Sequence[Any]] | np.ndarray,
    manifest: ModelManifest,
    names: Sequence[str] | None = None,
) -> dict[str, list[Any]]:
    """Check request rows against the manifest and convert each feature's values (numeric:
    float with NaN for missing; categorical: str with NaN for missing), in manifest order.
    Raises ``FeatureError`` naming the offending feature."""
    if isinstance(rows, np.ndarray):
        if rows.ndim != 2:
            raise FeatureError(
                f"expected a 2-D array of rows of feature values, got shape {list(rows.shape)}"
            )
        rows = list(rows)
    if isinstance(rows, str | bytes | Mapping) or not isinstance(rows, Sequence):
        raise FeatureError(
            f"expected a list of rows (send data.ndarray with data.names), got {type(rows).__name__}"
        )
    if len(rows) == 0:
        raise FeatureError("no rows to predict")

    columns: list[list[Any]]
    if names is None:
        columns = _columns_from_dicts(rows, manifest)
    else:
        names = [str(name) for name in names]
        check_feature_names(names, manifest)
        columns = _columns_from_lists(rows, names, manifest)

    converted: dict[str, list[Any]] = {}
    for feature, values in zip(manifest.features, columns, strict=True):
        if feature.kind == NUMERIC:
            converted[feature.name] = [_to_float(v, feature.name, i) for i, v in enumerate(values)]
        elif feature.kind == CATEGORICAL:
            converted[feature.name] = [_to_category(v, feature.name, i) for i, v in enumerate(values)]
        elif feature.kind == DATE:
            converted[feature.name] = [_to_days(v, feature.name, i) for i, v in enumerate(values)]
        else:
            raise KfkitError(
                f"model {manifest.model_name!r}: feature {feature.name!r} has unknown kind "
                f"{feature.kind!r} (expected {NUMERIC!r}, {CATEGORICAL!r} or {DATE!r})"
            )
    return converted


def columns_to_frame(columns: dict[str, list[Any]], manifest: ModelManifest) -> pd.DataFrame:
    """The DataFrame the model was fitted on, from ``rows_to_columns``' checked values."""
    data = {
        feature.name: pd.Series(
            columns[feature.name], dtype=object if feature.kind == CATEGORICAL else "float64"
        )
        for feature in manifest.features
    }
    return pd.DataFrame(data, columns=manifest.feature_names)


def rows_to_frame(
    rows: Sequence[Mapping[str, Any]] | Sequence[Sequence[Any]] | np.ndarray,
    manifest: ModelManifest,
    names: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Build the DataFrame the model was fitted on from request rows; the one conversion path.

    ``rows`` is a list of dicts keyed by feature name, or (with ``names``) a 2-D list or array
    whose columns ``names`` labels, in any order. The frame has the manifest's features in
    manifest order: numeric ones float64 with NaN for missing, categorical ones object dtype
    holding str with NaN for missing. Raises ``FeatureError`` naming the offending feature.
    """
    return columns_to_frame(rows_to_columns(rows, manifest, names), manifest)


def _columns_from_dicts(rows: Sequence[Any], manifest: ModelManifest) -> list[list[Any]]:
    for index, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise FeatureError(
                f"row {index} is a {type(row).__name__}, not a mapping of feature name to value; "
                "pass names= for rows given as lists"
            )
        try:
            check_feature_names([str(key) for key in row], manifest)
        except FeatureError as exc:
            raise FeatureError(f"row {index}: {exc}") from None
    return [[row[name] for row in rows] for name in manifest.feature_names]


def _columns_from_lists(rows: Sequence[Any], names: list[str], manifest: ModelManifest) -> list[list[Any]]:
    width = len(names)
    for index, row in enumerate(rows):
        if isinstance(row, str | bytes | Mapping) or not isinstance(row, Sequence | np.ndarray):
            raise FeatureError(f"row {index} is a {type(row).__name__}, not a list of values")
        if len(row) != width:
            raise FeatureError(f"row {index} has {len(row)} values but there are {width} feature names")
    positions = {name: position for position, name in enumerate(names)}
    return [[row[positions[name]] for row in rows] for name in manifest.feature_names]


def _http_error(message: str, status_code: int) -> Exception:
    """Seldon's own exception, so the microservice answers ``status_code`` and not a 500."""
    try:
        from seldon_core.flask_utils import SeldonMicroserviceException
    except ImportError:  # in-process use, outside the serving environment
        return FeatureError(message) if status_code < 500 else KfkitError(message)
    reason = "MICROSERVICE_BAD_DATA" if status_code < 500 else "MICROSERVICE_INTERNAL_ERROR"
    return SeldonMicroserviceException(message, status_code=status_code, reason=reason)


def default_model_dir() -> str:
    """``$KFKIT_MODEL_DIR``, else ``/mnt/models`` where Seldon's storage initializer writes."""
    return os.environ.get(MODEL_DIR_ENV) or DEFAULT_MODEL_DIR


class KfkitModel:
    """A verified kfkit model folder, served by Seldon Core v1's Python wrapper.

    Construction is cheap (Seldon builds the object before forking workers); ``load`` checks
    the sha256 and scikit-learn version before unpickling, and checks that the fitted model
    agrees with its manifest, so a wrong model never answers a request.
    """

    def __init__(self, model_dir: str | os.PathLike[str] | None = None) -> None:
        self.model_dir = Path(model_dir if model_dir else default_model_dir())
        self.model: Any = None
        self.manifest: ModelManifest | None = None
        self.fast: Any = None  # a proven FastPredictor, or None

    def load(self) -> None:
        """Verify and unpickle the model (Seldon calls this in each worker after forking)."""
        model, manifest = load_verified_model(self.model_dir)
        _check_model_matches_manifest(model, manifest, self.model_dir)
        self.model, self.manifest = model, manifest
        # A numpy replay of the preprocessing, used only if it answers bit for bit like the
        # pipeline on probe rows (fast_path.py); KFKIT_SERVING_FAST_PATH=0 turns it off.
        self.fast = None
        if os.environ.get(FAST_PATH_ENV, "1") != "0":
            from kfkit.serving.fast_path import FastPredictor

            self.fast = FastPredictor.build(model, manifest, manifest.problem_type == CLASSIFICATION)
        # Everything alive now (scikit-learn, pandas, the model) lives as long as the worker.
        # Without freezing, each full collection walks it all: 70-80 ms stalls of a single
        # request every few seconds, measured here. Frozen objects are never scanned again.
        gc.collect()
        gc.freeze()

    def _loaded(self) -> tuple[Any, ModelManifest]:
        if self.model is None or self.manifest is None:
            raise _http_error(f"model from {self.model_dir} is not loaded", 503)
        return self.model, self.manifest

    def predict(
        self,
        X: Any,
        features_names: Iterable[str] | None = None,
        meta: dict[str, Any] | None = None,
    ) -> np.ndarray:
        """Class probabilities (classification) or predicted values, one row per input row.

        Features are matched by name, so ``data.names`` is required; a mismatch is an HTTP 400
        that names the feature.
        """
        model, manifest = self._loaded()
        names = [str(name) for name in features_names] if features_names is not None else []
        if not names:
            raise _http_error(
                f'request has no feature names: send {{"data": {{"names": [...], '
                f'"ndarray": [[...]]}}}} with the features of model {manifest.model_name!r}: '
                f"{_quoted(manifest.feature_names)}",
                400,
            )
        try:
            columns = rows_to_columns(X, manifest, names=names)
            if self.fast is not None:
                return self.fast.predict(columns)
            frame = columns_to_frame(columns, manifest)
            return predict_checked(model, frame, manifest.problem_type == CLASSIFICATION, columns)
        except (FeatureError, OutOfRangeError) as exc:
            raise _http_error(str(exc), 400) from None

    def class_names(self) -> list[str]:
        """Names of the output columns: the classes in the model's order, or the label."""
        if self.model is None or self.manifest is None:
            return []
        if self.manifest.problem_type == CLASSIFICATION:
            return [str(label) for label in self.model.classes_]
        return [self.manifest.label_column]

    def tags(self) -> dict[str, str]:
        """Put the model's identity in every response's meta.tags: provenance per prediction."""
        if self.manifest is None:
            return {}
        return {
            "kfkit_model_name": self.manifest.model_name,
            "kfkit_model_sha256": self.manifest.sha256,
        }

    def health_status(self) -> dict[str, str]:
        """Healthy only once a verified model is loaded; says which one."""
        _, manifest = self._loaded()
        return {
            "status": "ok",
            "model_name": manifest.model_name,
            "sha256": manifest.sha256,
            "problem_type": manifest.problem_type,
        }

    def init_metadata(self) -> dict[str, Any]:
        """Seldon model metadata, from the manifest (called before ``load``, no unpickling)."""
        manifest = self.manifest or ModelManifest.read(self.model_dir)
        if manifest.problem_type == CLASSIFICATION:
            outputs = [str(label) for label in manifest.classes]
        else:
            outputs = [manifest.label_column]
        features = [{"name": f.name, "kind": f.kind} for f in manifest.features]
        return {
            "name": manifest.model_name,
            "versions": [f"sha256:{manifest.sha256[:12]}"],
            "platform": "kfkit-sklearn",
            "inputs": [
                {
                    "messagetype": "ndarray",
                    "schema": {"names": manifest.feature_names, "shape": [len(features)]},
                }
            ],
            "outputs": [{"messagetype": "ndarray", "schema": {"names": outputs, "shape": [len(outputs)]}}],
            "custom": {
                "sha256": manifest.sha256,
                "sklearn_version": manifest.sklearn_version,
                "python_version": manifest.python_version,
                "problem_type": manifest.problem_type,
                "label_column": manifest.label_column,
                "estimator": manifest.estimator,
                "features": json.dumps(features),
                "run_id": manifest.run_id,
                "training_data_fingerprint": manifest.training_data_fingerprint,
            },
        }


def _check_model_matches_manifest(model: Any, manifest: ModelManifest, folder: Path) -> None:
    """Refuse a manifest that describes another model than the pickled one."""
    where = f"{folder}: model {manifest.model_name!r}"
    if manifest.problem_type not in (CLASSIFICATION, REGRESSION):
        raise KfkitError(
            f"{where} has problem_type {manifest.problem_type!r}; expected "
            f"{CLASSIFICATION!r} or {REGRESSION!r}"
        )
    kinds = {feature.name: feature.kind for feature in manifest.features}
    unknown = {name: kind for name, kind in kinds.items() if kind not in (NUMERIC, CATEGORICAL, DATE)}
    if unknown:
        raise KfkitError(
            f"{where} has features of unknown kind {unknown}; expected {NUMERIC!r}, {CATEGORICAL!r} "
            f"or {DATE!r}"
        )
    fitted_names = getattr(model, "feature_names_in_", None)
    if fitted_names is not None and list(fitted_names) != manifest.feature_names:
        raise KfkitError(
            f"{where} was fitted on features {_quoted(fitted_names)} but its manifest lists "
            f"{_quoted(manifest.feature_names)}"
        )
    if manifest.problem_type == CLASSIFICATION:
        if not hasattr(model, "predict_proba") or not hasattr(model, "classes_"):
            raise KfkitError(f"{where} is a classifier without predict_proba and classes_")
        classes = [str(label) for label in model.classes_]
        if manifest.classes and [str(label) for label in manifest.classes] != classes:
            raise KfkitError(f"{where} predicts classes {classes} but its manifest lists {manifest.classes}")
