"""Train's logic: a scikit-learn Pipeline (impute + scale numeric, one-hot categorical, types from
the validated schema) around an estimator chosen by name. Writes the model folder
(``kfkit.model_folder``: model.joblib and its kfkit-model.json manifest). Never imports
TensorFlow: the schema is read with its protobuf only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from kfkit import feature_roles, names
from kfkit.errors import KfkitError
from kfkit.label_checks import check_label, class_names
from kfkit.model_folder import Feature, ModelManifest, feature_frame, save_model
from kfkit.params import check_choice
from kfkit.splits import DEFAULT_BATCH_ROWS, Split, iter_batches, read_sample, split_columns, split_rows

if TYPE_CHECKING:
    from kfkit.runtime import Task

SCHEMA_FILE = names.SCHEMA_FILE
ESTIMATORS: dict[str, dict[str, str]] = {
    "classification": {
        "logistic_regression": "sklearn.linear_model:LogisticRegression",
        "random_forest": "sklearn.ensemble:RandomForestClassifier",
        "hist_gradient_boosting": "sklearn.ensemble:HistGradientBoostingClassifier",
        "sgd": "sklearn.linear_model:SGDClassifier",
    },
    "regression": {
        "ridge": "sklearn.linear_model:Ridge",
        "random_forest": "sklearn.ensemble:RandomForestRegressor",
        "hist_gradient_boosting": "sklearn.ensemble:HistGradientBoostingRegressor",
        "sgd": "sklearn.linear_model:SGDRegressor",
    },
}
# Estimators fitted with ``partial_fit`` over batches of the split, so every row is used in
# memory bounded by the batch size; the others are fitted on the split in memory (or on a
# sample of ``max_train_rows`` rows).
STREAMING_ESTIMATORS = ("sgd",)
# Defaults that differ from scikit-learn's, and why.
_ESTIMATOR_DEFAULTS = {
    # lbfgs needs more than 100 iterations on scaled one-hot features to converge.
    "sklearn.linear_model:LogisticRegression": {"max_iter": 1000},
    # log_loss: evaluate and serving need class probabilities (the default hinge loss has none).
    # max_iter is the number of passes over the split (scikit-learn's meaning: epochs); a pass
    # over millions of rows is worth thousands over a small table, and there is no early stop.
    "sklearn.linear_model:SGDClassifier": {"loss": "log_loss", "max_iter": 5},
    "sklearn.linear_model:SGDRegressor": {"max_iter": 5},
}
# SGDClassifier losses with predict_proba.
_PROBABILISTIC_SGD_LOSSES = ("log_loss", "modified_huber")
# No max_train_rows (0) and a streaming estimator: its imputation medians, scaling and categories
# are fitted on a sample this large (a median from a million rows is exact enough; all rows would
# need the whole split in memory, which streaming is there to avoid).
STREAMING_PREPROCESSING_ROWS = 1_000_000


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
    params = {**_ESTIMATOR_DEFAULTS.get(choices[estimator], {}), **hyperparameters}
    valid = cls().get_params()
    unknown = sorted(set(params) - set(valid))
    if unknown:
        raise KfkitError(
            f"The 'hyperparameters' parameter of train has unknown key(s) {unknown} for "
            f"{estimator}; valid keys: {', '.join(sorted(valid))}"
        )
    if (
        estimator == "sgd"
        and problem_type == "classification"
        and params["loss"] not in _PROBABILISTIC_SGD_LOSSES
    ):
        raise KfkitError(
            f"The 'hyperparameters' parameter of train sets loss {params['loss']!r} for sgd, which "
            "gives no class probabilities (evaluate and serving need them); use "
            + " or ".join(_PROBABILISTIC_SGD_LOSSES)
        )
    if "random_state" in valid:
        params.setdefault("random_state", seed)
    return cls(**{name: as_declared(cls, name, value) for name, value in params.items()})


def as_declared(cls: type, name: str, value: Any) -> Any:
    """A whole float as an int where the estimator accepts it only as an integer for ``name``.

    kfp carries a dict parameter as a protobuf Struct, whose numbers are all floats, so
    ``{n_estimators: 200}`` arrives as 200.0. The estimator's declared constraints (scikit-learn's
    ``_parameter_constraints``, which it validates against) say whether an int is meant. Where
    both are accepted with different meanings, the float's own meaning wins when it is valid
    (``max_features: 1.0`` is the fraction 1.0, not 1 feature), else the int's
    (``min_samples_leaf: 20.0`` is no fraction in (0, 1): 20 samples).
    """
    from numbers import Integral

    if not isinstance(value, float) or not value.is_integer():
        return value
    intervals = [c for c in getattr(cls, "_parameter_constraints", {}).get(name, []) if hasattr(c, "type")]
    as_float = any(c.is_satisfied_by(value) for c in intervals if not issubclass(c.type, Integral))
    as_int = any(c.is_satisfied_by(int(value)) for c in intervals if issubclass(c.type, Integral))
    return int(value) if as_int and not as_float else value


def accepts_sparse(estimator: Any) -> bool:
    """Whether the estimator takes a sparse matrix: its own scikit-learn tag (linear models and
    forests do; HistGradientBoosting refuses with "Sparse data was passed")."""
    return bool(estimator.__sklearn_tags__().input_tags.sparse)


def build_pipeline(features: list[Feature], estimator):
    """Impute and scale numbers and dates (already days since 1970-01-01), impute and one-hot
    categories. The one-hot output is sparse where the estimator accepts it (scikit-learn's
    default, so those fitted models stay what they were) and dense where it does not. One-hot
    columns are float32, the dtype train gives the numeric ones (:func:`model_input`)."""
    import numpy as np
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    dense = not accepts_sparse(estimator)
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
        onehot = OneHotEncoder(handle_unknown="ignore", sparse_output=not dense, dtype=np.float32)
        transformers.append(
            (
                "categorical",
                Pipeline([("impute", SimpleImputer(strategy="most_frequent")), ("onehot", onehot)]),
                categorical,
            )
        )
    return Pipeline([("preprocess", ColumnTransformer(transformers)), ("estimator", estimator)])


def fit_in_parallel(model: Any, x: pd.DataFrame, y: pd.Series) -> None:
    """``model.fit(x, y)`` (a :func:`build_pipeline` Pipeline or its ``preprocess`` step) with the
    ColumnTransformer's numeric and categorical transformers fitted side by side in two threads:
    the medians' sorts run in numpy without the GIL while the categories are counted and
    encoded. Threads, not processes: the frame is shared, not copied. ``n_jobs`` is the
    ColumnTransformer's only for the fit and ``None`` again after it (a stored parameter would
    be in the saved model), so the fitted model is, to the byte, the one a serial fit gives."""
    import joblib

    preprocess = model.named_steps["preprocess"] if hasattr(model, "named_steps") else model
    preprocess.set_params(n_jobs=len(preprocess.transformers))
    try:
        with joblib.parallel_config(backend="threading"):
            model.fit(x, y)
    finally:
        preprocess.set_params(n_jobs=None)


def text_features(features: list[Feature]) -> list[str]:
    """Features read from the split as Arrow dictionaries (each distinct text once, not once per
    row): categories and dates, whose distinct values are few and each converted once."""
    return [f.name for f in features if f.kind in ("categorical", "date")]


def model_input(frame: pd.DataFrame, features: list[Feature], where: str) -> pd.DataFrame:
    """The features train fits on: :func:`feature_frame`, numbers and dates as float32.

    float32 halves the memory of the numeric block and is exact enough for a model's input: 7
    significant digits, so amounts keep their cents below 167,772.16 and dates (days since 1970,
    about 20,000) their time of day to 3 minutes. Where it is not exact: integers above 2**24
    (16,777,216) and amounts with cents above that bound are rounded; scaling, imputation medians
    and the models' arithmetic accumulate in float64 all the same. Labels stay as they are (a
    regression target in float64), and serving and evaluate pass float64, which the fitted model
    takes as it is."""
    return feature_frame(frame, features, where, number_dtype="float32")


def labels(frame: pd.DataFrame, label_column: str, problem_type: str) -> pd.Series:
    """The label as the estimator gets it: text classes (``str`` of each value), or float64."""
    y = frame[label_column]
    if problem_type == "regression":
        return pd.to_numeric(y, errors="raise").astype("float64")
    return class_names(y)


def split_classes(split: Split, label_column: str, batch_rows: int) -> list[str]:
    """Every class of the split's label (partial_fit must know them all at the first batch),
    reading the label column alone, batch by batch."""
    found: set[str] = set()
    for batch in iter_batches(split, [label_column], batch_rows):
        found.update(labels(batch, label_column, "classification").unique())
    return sorted(found)


@dataclass
class TrainSample:
    """Which rows the model saw, recorded in the manifest so that a rerun draws them again:
    ``rows`` of the split's ``split_rows``, drawn by :func:`kfkit.splits.read_sample` with
    ``seed``. For a streaming estimator the sample fits the preprocessing and every row the
    estimator (``streamed_rows``)."""

    max_train_rows: int
    rows: int
    split_rows: int
    seed: int
    streamed_rows: int = 0

    def as_manifest(self) -> dict[str, int]:
        # Empty when every row was fitted in memory: such a model's identity is what it was.
        if self.rows >= self.split_rows and not self.streamed_rows:
            return {}
        return asdict(self)


def check_max_train_rows(value: Any) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # kfp may carry an integer parameter as 1000000.0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise KfkitError(
            "The 'max_train_rows' parameter of train must be a whole number of rows, 0 for all rows. "
            f"Got {value!r} instead."
        )
    return value


def train(
    frame: Split,
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
    max_train_rows: int = 0,
    batch_rows: int = DEFAULT_BATCH_ROWS,
) -> ModelManifest:
    """``frame``: the train split, its Parquet file's path (read in bounded memory: only the
    model's columns, a sample or batches) or a DataFrame. ``statistics_path``: the train split's
    TFDV statistics (validate's ``train.pb``), kept in the model folder as
    ``train_statistics.pb`` so later runs are checked for drift against the data this version
    was trained on. ``max_train_rows`` (0: all): fit on a uniform sample of that many rows drawn
    with ``seed``; a streaming estimator (sgd) fits its preprocessing on that sample (0:
    ``STREAMING_PREPROCESSING_ROWS``) and then sees every row, ``batch_rows`` at a time."""
    hyperparameters = dict(hyperparameters or {})
    max_train_rows = check_max_train_rows(max_train_rows)
    features, excluded = features_from_schema(schema_path, label_column)
    model = build_pipeline(features, build_estimator(problem_type, estimator, hyperparameters, seed))
    columns = split_columns(frame)
    if label_column not in columns:
        raise KfkitError(f"train split: label column '{label_column}' not found")
    missing = [f.name for f in features if f.name not in columns]
    if missing:
        raise KfkitError(f"train split: feature column(s) {missing} missing")
    wanted = [*(f.name for f in features), label_column]
    streaming = estimator in STREAMING_ESTIMATORS
    total = split_rows(frame)
    size = max_train_rows or (STREAMING_PREPROCESSING_ROWS if streaming else total)
    text = text_features(features)
    sampled = read_sample(frame, wanted, min(size, total), seed, batch_rows, dictionary=text)
    sample = TrainSample(max_train_rows, len(sampled), total, seed)
    check_label(sampled[label_column], label_column, problem_type, "train split")
    x, y = model_input(sampled, features, "train split"), labels(sampled, label_column, problem_type)
    del sampled
    if problem_type == "classification" and y.nunique() < 2 and not streaming:
        raise KfkitError(f"train split: label '{label_column}' has fewer than two classes")
    try:
        if streaming:
            sample.streamed_rows = fit_streaming(
                model, x, y, frame, features, label_column, problem_type, batch_rows
            )
        else:
            fit_in_parallel(model, x, y)
    except (ValueError, TypeError) as exc:
        # scikit-learn's parameter validation already names the parameter and the range.
        raise KfkitError(f"train: {str(exc).splitlines()[0]}") from None
    del x, y
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
        train_sample=sample.as_manifest(),
    )


def fit_streaming(
    model: Any,
    x: pd.DataFrame,
    y: pd.Series,
    split: Split,
    features: list[Feature],
    label_column: str,
    problem_type: str,
    batch_rows: int,
) -> int:
    """Fit ``model``'s preprocessing on the sample (``x``, ``y``), then its estimator with
    ``partial_fit`` on every row of the split, batch by batch, ``max_iter`` passes. The result
    is the same scikit-learn Pipeline a whole-table fit gives. Returns the rows streamed."""
    import numpy as np

    preprocess, estimator = model.named_steps["preprocess"], model.named_steps["estimator"]
    fit_in_parallel(preprocess, x, y)
    extra: dict[str, Any] = {}
    if problem_type == "classification":
        classes = split_classes(split, label_column, batch_rows)
        if len(classes) < 2:
            raise KfkitError(f"train split: label '{label_column}' has fewer than two classes")
        extra["classes"] = np.array(classes, dtype=object)
    wanted = [*(f.name for f in features), label_column]
    streamed = 0
    for _ in range(estimator.max_iter):
        for batch in iter_batches(split, wanted, batch_rows, dictionary=text_features(features)):
            features_x = preprocess.transform(model_input(batch, features, "train split"))
            estimator.partial_fit(features_x, labels(batch, label_column, problem_type), **extra)
            streamed += len(batch)
    return streamed // estimator.max_iter


def manifest_metadata(manifest: ModelManifest) -> dict[str, Any]:
    """What the Model artifact records (and MLMD keeps): everything but the feature list's detail."""
    data = asdict(manifest)
    data["features"] = [f"{f['name']}:{f['kind']}" for f in data["features"]]
    data["trained"] = True
    return data


def check(params: dict[str, Any]) -> None:
    """The parameters alone, before any task runs: problem type, estimator and its
    hyperparameters against the estimator's own parameters, the model name, max_train_rows."""
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
    if params.get("max_train_rows") is not None:
        check_max_train_rows(params["max_train_rows"])


def run(task: Task) -> None:
    train_split, p = task.inputs["train_split"], task.params
    model = task.outputs["model"]
    manifest = train(
        train_split.path,
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
        max_train_rows=p.get("max_train_rows") or 0,
    )
    model.metadata.update(manifest_metadata(manifest))
    left_out = ", ".join(f"{name} ({why.split(':')[0]})" for name, why in manifest.excluded_features.items())
    task.say(
        f"{p['estimator']} on {len(manifest.features)} features"
        + (f" (left out: {left_out})" if left_out else "")
        + f", sha256 {manifest.sha256[:12]}"
    )
    if manifest.train_sample:
        drawn = manifest.train_sample
        task.say(
            f"fitted on a sample of {drawn['rows']} of {drawn['split_rows']} rows (seed {drawn['seed']})"
            + (f", then streamed all {drawn['streamed_rows']} rows" if drawn["streamed_rows"] else "")
        )
