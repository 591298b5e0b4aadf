"""Train's logic: a scikit-learn Pipeline (impute + scale numeric, one-hot categorical, types from
the validated schema) around an estimator chosen by name. Writes the model folder
(``kfkit.model_folder``: model.joblib and its kfkit-model.json manifest). Never imports
TensorFlow: the schema is read with its protobuf only.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from kfkit import feature_roles, names
from kfkit.errors import KfkitError
from kfkit.label_checks import check_label
from kfkit.model_folder import Feature, ModelManifest, feature_frame, save_model
from kfkit.params import check_choice

if TYPE_CHECKING:
    from kfkit.runtime import Task

SCHEMA_FILE = names.SCHEMA_FILE
ESTIMATORS: dict[str, dict[str, str]] = {
    "classification": {
        "logistic_regression": "sklearn.linear_model:LogisticRegression",
        "random_forest": "sklearn.ensemble:RandomForestClassifier",
        "hist_gradient_boosting": "sklearn.ensemble:HistGradientBoostingClassifier",
    },
    "regression": {
        "ridge": "sklearn.linear_model:Ridge",
        "random_forest": "sklearn.ensemble:RandomForestRegressor",
        "hist_gradient_boosting": "sklearn.ensemble:HistGradientBoostingRegressor",
    },
}
# Defaults that differ from scikit-learn's, and why.
_ESTIMATOR_DEFAULTS = {
    # lbfgs needs more than 100 iterations on scaled one-hot features to converge.
    "logistic_regression": {"max_iter": 1000},
}


def features_from_schema(schema_path: str, label_column: str) -> tuple[list[Feature], dict[str, str]]:
    """The model's features in schema order, and the features left out with why.

    Each feature's role is the one validate recorded in the schema (``kfkit:<role>`` tags, see
    :mod:`kfkit.feature_roles`): identifiers and free text are left out, dates become days,
    the rest numeric or categorical. A feature without a role tag (a schema written before
    roles, or by hand) is numeric for INT/FLOAT and categorical for BYTES."""
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    try:
        schema = text_format.Parse(Path(schema_path).read_text(), schema_pb2.Schema())
    except text_format.ParseError as exc:
        raise KfkitError(f"{schema_path}: not a valid TFDV schema: {exc}") from None
    roles = feature_roles.schema_roles(schema)
    features, excluded = [], {}
    for feature in schema.feature:
        if feature.name == label_column:
            continue
        role = roles.get(feature.name)
        if role is None:
            kind = "categorical" if feature.type == schema_pb2.BYTES else "numeric"
        elif role.excluded:
            excluded[feature.name] = role.describe()
            continue
        else:
            kind = role.role
        features.append(Feature(feature.name, kind))
    if not features:
        left_out = f" (left out: {', '.join(excluded)})" if excluded else ""
        raise KfkitError(f"{schema_path}: schema has no features besides the label{left_out}")
    return features, excluded


def build_estimator(problem_type: str, estimator: str, hyperparameters: dict[str, Any], seed: int):
    import importlib

    check_choice("train", "problem_type", problem_type, names.PROBLEM_TYPES)
    choices = ESTIMATORS[problem_type]
    check_choice("train", "estimator", estimator, tuple(choices))
    module, cls_name = choices[estimator].split(":")
    cls = getattr(importlib.import_module(module), cls_name)
    params = {**_ESTIMATOR_DEFAULTS.get(estimator, {}), **hyperparameters}
    valid = cls().get_params()
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise KfkitError(
            f"The 'hyperparameters' parameter of train has unknown key(s) {unknown} for "
            f"{estimator}; valid keys: {', '.join(sorted(valid))}"
        )
    if "random_state" in valid:
        params.setdefault("random_state", seed)
    return cls(**{name: as_declared(cls, name, value) for name, value in params.items()})


def as_declared(cls: type, name: str, value: Any) -> Any:
    """A whole float as an int where the estimator accepts only integers for ``name``.

    kfp carries a dict parameter as a protobuf Struct, whose numbers are all floats, so
    ``{n_estimators: 200}`` arrives as 200.0. The estimator's declared constraints (scikit-learn's
    ``_parameter_constraints``, which it validates against) say whether an int is meant; where
    both an int and a float are accepted with different meanings (``max_features``: 1 feature or
    the fraction 1.0), the value stays as given.
    """
    from numbers import Integral

    if not isinstance(value, float) or not value.is_integer():
        return value
    intervals = [c for c in getattr(cls, "_parameter_constraints", {}).get(name, []) if hasattr(c, "type")]
    takes_int = any(issubclass(c.type, Integral) for c in intervals)
    takes_float = any(not issubclass(c.type, Integral) for c in intervals)
    return int(value) if takes_int and not takes_float else value


def build_pipeline(features: list[Feature], estimator):
    """Impute and scale numbers and dates (already days since 1970-01-01), impute and one-hot
    categories. HistGradientBoosting refuses sparse input ("Sparse data was passed"), so for it
    the one-hot output is dense; the others keep scikit-learn's sparse default, so their fitted
    models stay what they were."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    dense = isinstance(estimator, HistGradientBoostingClassifier | HistGradientBoostingRegressor)
    numeric = [f.name for f in features if f.kind in ("numeric", "date")]
    categorical = [f.name for f in features if f.kind == "categorical"]
    transformers = []
    if numeric:
        transformers.append(
            (
                "numeric",
                Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]),
                numeric,
            )
        )
    if categorical:
        transformers.append(
            (
                "categorical",
                Pipeline(
                    [
                        ("impute", SimpleImputer(strategy="most_frequent")),
                        ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=not dense)),
                    ]
                ),
                categorical,
            )
        )
    return Pipeline([("preprocess", ColumnTransformer(transformers)), ("estimator", estimator)])


def train(
    frame: pd.DataFrame,
    schema_path: str,
    label_column: str,
    model_name: str,
    model_dir: str,
    problem_type: str = "classification",
    estimator: str = "logistic_regression",
    hyperparameters: dict[str, Any] | None = None,
    seed: int = 42,
    dataset_fingerprint: str = "",
    run_id: str = "",
    statistics_path: str | None = None,
) -> ModelManifest:
    """``statistics_path``: the train split's TFDV statistics (validate's ``train.pb``), kept
    in the model folder as ``train_statistics.pb`` so later runs are checked for drift
    against the data this version was trained on."""
    hyperparameters = dict(hyperparameters or {})
    features, excluded = features_from_schema(schema_path, label_column)
    model = build_pipeline(features, build_estimator(problem_type, estimator, hyperparameters, seed))
    if label_column not in frame.columns:
        raise KfkitError(f"train split: label column '{label_column}' not found")
    check_label(frame[label_column], label_column, problem_type, "train split")
    x = feature_frame(frame, features, "train split")
    y = frame[label_column]
    if problem_type == "classification":
        y = y.astype(str)
        if y.nunique() < 2:
            raise KfkitError(f"train split: label '{label_column}' has fewer than two classes")
    else:
        y = pd.to_numeric(y, errors="raise").astype("float64")
    try:
        model.fit(x, y)
    except (ValueError, TypeError) as exc:
        # scikit-learn's parameter validation already names the parameter and the range.
        raise KfkitError(f"train: {str(exc).splitlines()[0]}") from None
    companions: dict[str, str | Path] = {SCHEMA_FILE: schema_path}  # what later data is validated against
    if statistics_path is not None:
        if not Path(statistics_path).is_file():
            raise KfkitError(f"{statistics_path}: no train split statistics in the statistics input")
        companions[names.TRAIN_STATISTICS_FILE] = statistics_path  # what later data is compared with
    return save_model(
        model_dir,
        model,
        companions=companions,
        model_name=model_name,
        problem_type=problem_type,
        label_column=label_column,
        features=features,
        excluded_features=excluded,
        estimator=estimator,
        hyperparameters={
            k: v
            for k, v in model.named_steps["estimator"].get_params().items()
            if k in hyperparameters or k == "random_state"
        },
        classes=[str(c) for c in getattr(model, "classes_", [])],
        training_data_fingerprint=dataset_fingerprint,
        run_id=run_id,
    )


def manifest_metadata(manifest: ModelManifest) -> dict[str, Any]:
    """What the Model artifact records (and MLMD keeps): everything but the feature list's detail."""
    data = asdict(manifest)
    data["features"] = [f"{f['name']}:{f['kind']}" for f in data["features"]]
    data["trained"] = True
    return data


def check(params: dict[str, Any]) -> None:
    """The parameters alone, before any task runs: problem type, estimator and its
    hyperparameters against the estimator's own parameters, the model name."""
    from kfkit import names

    if "model_name" in params:
        names.check_model_name(params["model_name"])
    if {"problem_type", "estimator"} <= set(params):
        hyperparameters = params.get("hyperparameters") or {}
        if not isinstance(hyperparameters, dict):
            raise KfkitError(
                "The 'hyperparameters' parameter of train must be a mapping. "
                f"Got {hyperparameters!r} instead."
            )
        build_estimator(params["problem_type"], params["estimator"], hyperparameters, 0)


def run(task: Task) -> None:
    from kfkit.splits import read_split

    train_split, p = task.inputs["train_split"], task.params
    model = task.outputs["model"]
    manifest = train(
        read_split(train_split.path),
        schema_path=f"{task.inputs['schema'].path}/schema.pbtxt",
        label_column=train_split.metadata["label_column"],
        model_name=p["model_name"],
        model_dir=model.path,
        problem_type=p["problem_type"],
        estimator=p["estimator"],
        hyperparameters=p["hyperparameters"] or {},
        seed=p["random_seed"],
        dataset_fingerprint=train_split.metadata.get("dataset_fingerprint", ""),
        run_id=task.run_id,
        statistics_path=f"{task.inputs['statistics'].path}/train.pb",
    )
    model.metadata.update(manifest_metadata(manifest))
    left_out = ", ".join(f"{name} ({why.split(':')[0]})" for name, why in manifest.excluded_features.items())
    task.say(
        f"{p['estimator']} on {len(manifest.features)} features"
        + (f" (left out: {left_out})" if left_out else "")
        + f", sha256 {manifest.sha256[:12]}"
    )
