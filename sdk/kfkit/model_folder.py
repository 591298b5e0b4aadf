"""The model folder contract: ``<store>/<model-name>/<version>/{model.joblib,kfkit-model.json,
kfkit-model.sig}`` (the signature: :mod:`kfkit.signing`).

This module is imported by the serving process, which runs in a separate, smaller
environment (seldon-core, scikit-learn, numpy): it must only use the standard library at
import time.
"""

from __future__ import annotations

import hashlib
import json
import platform
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kfkit import signing
from kfkit.errors import KfkitError

MODEL_FILE = "model.joblib"
MANIFEST_FILE = signing.SIGNED_FILE
SIGNATURE_FILE = signing.SIGNATURE_FILE
FORMAT_VERSION = 1


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class Feature:
    name: str
    kind: str  # "numeric", "categorical" or "date" (days since 1970-01-01, see kfkit.values)


@dataclass
class ModelManifest:
    """What ``kfkit-model.json`` holds: enough to verify, load and explain a model."""

    model_name: str
    sha256: str
    sklearn_version: str
    python_version: str
    problem_type: str  # "classification" or "regression"
    label_column: str
    features: list[Feature]
    estimator: str
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    classes: list[str] = field(default_factory=list)
    training_data_fingerprint: str = ""
    run_id: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    # Companion files beside the model (name -> sha256): the evidence it was trained on, such
    # as ``schema.pbtxt``, the schema later data is validated against.
    files: dict[str, str] = field(default_factory=dict)
    # Columns of the training data left out of the model, and why (validate's schema roles:
    # "identifier: 4000 distinct values in 4000 rows"); serving accepts and ignores them.
    excluded_features: dict[str, str] = field(default_factory=dict)
    # The rows it was fitted on when not simply all of the train split (train's max_train_rows, a
    # streaming estimator): max_train_rows, rows, split_rows, seed, streamed_rows. Enough to draw
    # the same sample again (kfkit.splits.read_sample); empty when every row was fitted at once.
    train_sample: dict[str, int] = field(default_factory=dict)
    kfkit_version: str = ""  # the code that trained it, with sklearn_version
    format_version: int = FORMAT_VERSION
    model_file: str = MODEL_FILE

    @property
    def feature_names(self) -> list[str]:
        return [feature.name for feature in self.features]

    def training_identity(self) -> dict[str, Any]:
        """What decides the model: data (fingerprint), parameters and code. Two manifests with
        the same identity describe the same model, whatever bytes pickling produced."""
        identity = {
            "training_data_fingerprint": self.training_data_fingerprint,
            "problem_type": self.problem_type,
            "label_column": self.label_column,
            "features": [(f.name, f.kind) for f in self.features],
            "estimator": self.estimator,
            "hyperparameters": self.hyperparameters,
            "files": self.files,  # the schema (and statistics) it was validated against
            "sklearn_version": self.sklearn_version,
            "kfkit_version": self.kfkit_version,
        }
        if self.excluded_features:  # absent when empty: models from before keep their identity
            identity["excluded_features"] = self.excluded_features
        if self.train_sample:  # likewise
            identity["train_sample"] = self.train_sample
        return identity

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelManifest:
        data = dict(data)
        data["features"] = [Feature(**feature) for feature in data.get("features", [])]
        known = set(cls.__dataclass_fields__)
        return cls(**{key: value for key, value in data.items() if key in known})

    @classmethod
    def read(cls, folder: str | Path) -> ModelManifest:
        path = Path(folder) / MANIFEST_FILE
        try:
            return cls.from_dict(json.loads(path.read_text()))
        except FileNotFoundError:
            raise KfkitError(f"{path}: no model manifest ({MANIFEST_FILE}) in this folder") from None
        except (ValueError, TypeError) as exc:
            raise KfkitError(f"{path}: not a valid kfkit model manifest: {exc}") from None

    def write(self, folder: str | Path) -> Path:
        path = Path(folder) / MANIFEST_FILE
        path.write_text(self.to_json())
        return path


def current_python_version() -> str:
    return platform.python_version()


def verify_model_file(folder: str | Path, manifest: ModelManifest) -> Path:
    """Return the model file path once its sha256 matches the manifest; raise otherwise.

    Call this before unpickling: a joblib file runs code when loaded.
    """
    path = Path(folder) / manifest.model_file
    if not path.is_file():
        raise KfkitError(f"{path}: model file is missing")
    actual = sha256_file(path)
    if actual != manifest.sha256:
        raise KfkitError(_sha256_mismatch(path, actual, manifest.sha256))
    return path


def _sha256_mismatch(path: Path, actual: str, expected: str) -> str:
    return (
        f"{path}: sha256 {actual[:12]}... does not match {MANIFEST_FILE} "
        f"({expected[:12]}...); refusing to load a model that is not the one recorded"
    )


def check_sklearn_version(manifest: ModelManifest, installed: str) -> None:
    if manifest.sklearn_version != installed:
        raise KfkitError(
            f"model {manifest.model_name} was trained with scikit-learn "
            f"{manifest.sklearn_version} but {installed} is installed; a joblib model only "
            "loads safely in the version that wrote it"
        )


def save_model(
    folder: str | Path,
    model: Any,
    companions: dict[str, str | Path] | None = None,
    **manifest_fields: Any,
) -> ModelManifest:
    """Write ``model.joblib``, copy each companion file in (name -> source path), and then
    ``kfkit-model.json`` (the sha256 of each, the scikit-learn and Python versions, and
    ``manifest_fields``). The one way kfkit writes a model folder."""
    import shutil

    import joblib
    import sklearn

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / MODEL_FILE
    joblib.dump(model, path)
    files = {}
    for name, source in (companions or {}).items():
        shutil.copyfile(source, folder / name)
        files[name] = sha256_file(folder / name)
    from kfkit import __version__

    manifest = ModelManifest(
        sha256=sha256_file(path),
        kfkit_version=__version__,
        sklearn_version=sklearn.__version__,
        python_version=current_python_version(),
        files=files,
        **manifest_fields,
    )
    manifest.write(folder)
    signing.sign_folder(folder)  # over the manifest's exact bytes, beside it
    return manifest


def verified_manifest(folder: str | Path) -> ModelManifest:
    """The folder's manifest, parsed from the very bytes whose signature by a trusted key was
    just verified (:mod:`kfkit.signing`); raises ``KfkitError`` otherwise."""
    manifest_bytes = signing.read_verified_manifest_bytes(folder)
    path = Path(folder) / MANIFEST_FILE
    try:
        return ModelManifest.from_dict(json.loads(manifest_bytes))
    except (ValueError, TypeError) as exc:
        raise KfkitError(f"{path}: not a valid kfkit model manifest: {exc}") from None


def load_verified_model(folder: str | Path) -> tuple[Any, ModelManifest]:
    """Verify the manifest's signature against the trusted keys, then the model's sha256, then
    the scikit-learn version, and only then unpickle. The one way kfkit loads a model.

    The model's bytes are read once: the bytes unpickled are the bytes whose sha256 was checked.
    """
    import io

    import joblib
    import sklearn

    manifest = verified_manifest(folder)
    path = Path(folder) / manifest.model_file
    if not path.is_file():
        raise KfkitError(f"{path}: model file is missing")
    data = path.read_bytes()
    actual = sha256_bytes(data)
    if actual != manifest.sha256:
        raise KfkitError(_sha256_mismatch(path, actual, manifest.sha256))
    check_sklearn_version(manifest, sklearn.__version__)
    return joblib.load(io.BytesIO(data)), manifest


def feature_frame(frame: Any, features: list[Feature], where: str, number_dtype: str = "float64") -> Any:
    """The model's input frame (a pandas DataFrame): manifest columns in order, numeric as float64
    (numeric text such as "16,800.00" read by :func:`kfkit.values.number_of`, as serving reads
    it), dates as days since 1970-01-01 (:func:`kfkit.values.days_since_epoch`).
    ``number_dtype``: "float32" gives numbers and dates rounded from those float64 values (what
    train fits on)."""
    import pandas as pd

    from kfkit.values import days_since_epoch, number_of

    missing = [f.name for f in features if f.name not in frame.columns]
    if missing:
        raise KfkitError(f"{where}: feature column(s) {missing} missing")
    # Built column by column and made a frame once: assigning into a frame column by column
    # rewrote its blocks each time (a second of a million-row train).
    out: dict[str, Any] = {}
    for feature in features:
        column = frame[feature.name]
        if feature.kind == "categorical":
            # Parquet gives None for a missing string; the imputers look for NaN.
            out[feature.name] = _as_objects(column)
            continue
        if feature.kind == "date":
            numbers = _converted(column, days_since_epoch, feature, where, "an ISO date")
        elif pd.api.types.is_numeric_dtype(column):
            numbers = column.astype("float64").to_numpy()  # a nullable Int64's NA as NaN too
        else:
            numbers = _converted(column, number_of, feature, where, "a number")
        out[feature.name] = numbers.astype(number_dtype, copy=False)
    return pd.DataFrame(out, index=frame.index)


def _as_objects(column: Any) -> Any:
    """A text column as an object array, NaN for a missing value; a pandas categorical (a split
    read with Arrow dictionaries) through its codes, each distinct text once."""
    import numpy as np
    import pandas as pd

    if isinstance(column.dtype, pd.CategoricalDtype):
        distinct = np.empty(len(column.cat.categories) + 1, dtype=object)
        distinct[:-1] = column.cat.categories.to_numpy(dtype=object)
        distinct[-1] = np.nan  # code -1 (missing) picks it
        return distinct[column.cat.codes.to_numpy()]
    values = column.to_numpy(dtype=object)
    return np.where(pd.isna(values), np.nan, values)


def _converted(column: Any, convert: Any, feature: Feature, where: str, expected: str) -> Any:
    """``column``'s values through ``convert`` as float64, NaN for missing; one line naming the
    first row that does not convert. Each distinct value is converted once (dates repeat)."""
    import math

    import numpy as np
    import pandas as pd

    codes, distinct = pd.factorize(column)  # missing values get code -1
    numbers = []
    for code, value in enumerate(distinct):
        number = convert(value)
        if number is None:
            row = int(np.argmax(codes == code))
            raise KfkitError(
                f"{where}: column '{feature.name}' is {feature.kind} but row {row} holds {value!r}, "
                f"not {expected}"
            )
        numbers.append(number)
    table = np.array([*numbers, math.nan], dtype="float64")  # code -1 picks the NaN
    return table[codes]
