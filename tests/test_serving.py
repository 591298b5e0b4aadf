"""Serving: kfkit's real model server answers exactly like the model does in process.

The server-starting tests run ``python -m kfkit.serving.app`` (Seldon Core's REST, metrics and
gRPC servers composed by kfkit) from the serving venv (``serving/.venv``, Python 3.12), the way
kfkit's serving image runs in a SeldonDeployment.
"""

from __future__ import annotations

import gc
import math
import re
import shutil
import signal
import socket
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import pytest
import sklearn
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

import kfkit
from kfkit.errors import KfkitError
from kfkit.model_folder import MODEL_FILE, Feature, ModelManifest, save_model
from kfkit.serving.model import FeatureError, KfkitModel, rows_to_frame
from kfkit.serving.server import (
    SERVER_MODULE,
    ServingProcess,
    ServingRequestError,
    group_alive,
    serving_venv,
    start_server,
)
from kfkit.signing import sign_folder

PENGUINS_CSV = Path(kfkit.__file__).parent / "data" / "penguins.csv"
LABEL = "species"
NUMERIC = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "year"]
CATEGORICAL = ["island", "sex"]
FEATURES = NUMERIC + CATEGORICAL


def _native(value: Any) -> Any:
    """A JSON-ready Python value: None for missing, numpy scalars as Python ones."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def _pipeline(estimator: Any, numeric: list[str], categorical: list[str]) -> Pipeline:
    numeric_steps = Pipeline([("impute", SimpleImputer()), ("scale", StandardScaler())])
    categorical_steps = Pipeline(
        [
            ("impute", SimpleImputer(strategy="most_frequent")),
            ("onehot", OneHotEncoder(handle_unknown="ignore")),
        ]
    )
    prep = ColumnTransformer(
        [("numeric", numeric_steps, numeric), ("categorical", categorical_steps, categorical)]
    )
    return Pipeline([("prep", prep), ("model", estimator)])


def _write_model_folder(
    folder: Path,
    model: Any,
    problem_type: str,
    label: str,
    numeric: list[str],
    categorical: list[str],
    classes: list[str],
) -> Path:
    save_model(
        folder,
        model,
        model_name="penguins",
        problem_type=problem_type,
        label_column=label,
        features=[Feature(name, "numeric") for name in numeric]
        + [Feature(name, "categorical") for name in categorical],
        estimator=type(model[-1]).__name__,
        classes=classes,
    )
    return folder


@pytest.fixture(scope="module")
def penguins() -> pd.DataFrame:
    frame = pd.read_csv(PENGUINS_CSV, na_values=["NA"], keep_default_na=True)
    frame[NUMERIC] = frame[NUMERIC].astype("float64")
    return frame


@pytest.fixture(scope="module")
def rows(penguins: pd.DataFrame) -> list[dict[str, Any]]:
    """Every penguin as a request row; some have missing (None) numeric and categorical values."""
    records = penguins[FEATURES].astype(object).to_dict("records")
    out = [{name: _native(value) for name, value in record.items()} for record in records]
    assert any(row["sex"] is None for row in out) and any(row["body_mass_g"] is None for row in out)
    return out


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory, penguins: pd.DataFrame) -> Path:
    """A real trained classifier written as a kfkit model folder."""
    model = _pipeline(LogisticRegression(max_iter=1000), NUMERIC, CATEGORICAL)
    model.fit(penguins[FEATURES], penguins[LABEL])
    folder = tmp_path_factory.mktemp("models") / "penguins" / "1"
    classes = [str(label) for label in model.classes_]
    return _write_model_folder(folder, model, "classification", LABEL, NUMERIC, CATEGORICAL, classes)


@pytest.fixture(scope="module")
def loaded(model_dir: Path) -> KfkitModel:
    model = KfkitModel(model_dir)
    model.load()
    return model


def _copy_folder(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


@pytest.fixture
def tampered_dir(model_dir: Path, tmp_path: Path) -> Path:
    """The same model folder with one byte of model.joblib changed."""
    folder = _copy_folder(model_dir, tmp_path / "tampered")
    data = bytearray((folder / MODEL_FILE).read_bytes())
    data[len(data) // 2] ^= 0x01
    (folder / MODEL_FILE).write_bytes(bytes(data))
    return folder


@pytest.fixture
def other_version_dir(model_dir: Path, tmp_path: Path) -> Path:
    """The same model, with a manifest that says another scikit-learn wrote it."""
    folder = _copy_folder(model_dir, tmp_path / "other-version")
    manifest = ModelManifest.read(folder)
    manifest.sklearn_version = "1.5.2"
    manifest.write(folder)
    sign_folder(folder)  # signed as if that version had trained it: the version check refuses it
    return folder


@pytest.fixture
def no_unpickling(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Record every joblib.load, to prove a refused model is never unpickled."""
    calls: list[Any] = []
    real_load = joblib.load

    def recording_load(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(joblib, "load", recording_load)
    return calls


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def server(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServingProcess]:
    log_path = tmp_path_factory.mktemp("serving-logs") / "seldon.log"
    with start_server(model_dir, workers=2, threads=2, log_path=log_path) as served:
        yield served
    # stop() must end the whole process group (gunicorn workers, gRPC, metrics), not the leader.
    assert not group_alive(served.pid), f"processes of group {served.pid} survived stop()"
    for port in (served.http_port, served.grpc_port, served.metrics_port):
        assert not _port_open(port), f"port {port} still answers after stop()"


# ---------------------------------------------------------------- rows_to_frame, in process


def test_rows_to_frame_gives_the_training_dtypes(rows: list[dict[str, Any]], loaded: KfkitModel):
    frame = rows_to_frame(rows, loaded.manifest)
    assert list(frame.columns) == FEATURES
    for name in NUMERIC:
        assert frame[name].dtype == np.float64, name
    for name in CATEGORICAL:
        assert frame[name].dtype == object, name
        present = frame[name].dropna()
        assert all(type(value) is str for value in present), name
    missing_sex = [i for i, row in enumerate(rows) if row["sex"] is None]
    assert missing_sex and all(frame["sex"].isna().iloc[missing_sex])
    assert all(isinstance(v, float) and math.isnan(v) for v in frame["sex"].iloc[missing_sex])
    assert frame["body_mass_g"].isna().sum() == sum(row["body_mass_g"] is None for row in rows)


def test_rows_to_frame_same_frame_from_dicts_lists_and_seldon_arrays(
    rows: list[dict[str, Any]], loaded: KfkitModel
):
    manifest = loaded.manifest
    expected = rows_to_frame(rows, manifest)
    names = list(reversed(FEATURES))  # any column order, matched by name
    lists = [[row[name] for name in names] for row in rows]
    pd.testing.assert_frame_equal(rows_to_frame(lists, manifest, names=names), expected)
    # Seldon hands predict() np.array(ndarray): object dtype when a row has a null, and
    # strings everywhere when a row mixes numbers and text without nulls.
    pd.testing.assert_frame_equal(rows_to_frame(np.array(lists), manifest, names), expected)
    complete = [row for row in rows if None not in row.values()]
    stringly = np.array([[row[name] for name in names] for row in complete])
    assert stringly.dtype.kind == "U"
    pd.testing.assert_frame_equal(rows_to_frame(stringly, manifest, names), rows_to_frame(complete, manifest))


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda row: {k: v for k, v in row.items() if k != "sex"}, ["'sex'", "missing"]),
        (lambda row: {**row, "colour": "blue"}, ["'colour'", "unknown"]),
        (
            lambda row: {("isle" if k == "island" else k): v for k, v in row.items()},
            ["'isle'", "'island'"],
        ),
    ],
    ids=["missing", "extra", "misnamed"],
)
def test_in_process_feature_mismatch_names_the_feature(
    rows: list[dict[str, Any]], loaded: KfkitModel, change: Any, named: list[str]
):
    bad = change(rows[0])
    with pytest.raises(FeatureError) as from_dicts:
        rows_to_frame([rows[1], bad], loaded.manifest)
    with pytest.raises(FeatureError) as from_predict:
        loaded.predict(np.array([list(bad.values())], dtype=object), list(bad))
    for error in (from_dicts, from_predict):
        for text in named:
            assert text in str(error.value)


def test_in_process_bad_values_name_the_feature(rows: list[dict[str, Any]], loaded: KfkitModel):
    with pytest.raises(FeatureError, match="'bill_depth_mm' is numeric.*'deep'"):
        rows_to_frame([{**rows[0], "bill_depth_mm": "deep"}], loaded.manifest)
    with pytest.raises(FeatureError, match="row 0 has 6 values but there are 7"):
        rows_to_frame([[1.0] * 6], loaded.manifest, names=FEATURES)
    with pytest.raises(FeatureError, match="no rows"):
        rows_to_frame([], loaded.manifest)


def test_regression_answers_one_column_named_after_the_label(penguins: pd.DataFrame, tmp_path: Path):
    numeric = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "year"]
    train = penguins.dropna(subset=["body_mass_g"])
    model = _pipeline(LinearRegression(), numeric, CATEGORICAL)
    model.fit(train[numeric + CATEGORICAL], train["body_mass_g"])
    folder = _write_model_folder(
        tmp_path / "mass", model, "regression", "body_mass_g", numeric, CATEGORICAL, []
    )
    served = KfkitModel(folder)
    served.load()
    X = train[numeric + CATEGORICAL].head(5).astype(object).to_numpy()
    answer = served.predict(X, numeric + CATEGORICAL)
    assert answer.shape == (5, 1)
    assert served.class_names() == ["body_mass_g"]
    expected = model.predict(rows_to_frame(X, served.manifest, numeric + CATEGORICAL))
    assert answer[:, 0].tolist() == expected.tolist()


def test_metadata_and_health_describe_the_model(model_dir: Path, loaded: KfkitModel):
    metadata = KfkitModel(model_dir).init_metadata()  # before load(), as Seldon calls it
    assert metadata["name"] == "penguins"
    assert metadata["inputs"][0]["schema"]["names"] == FEATURES
    assert metadata["outputs"][0]["schema"]["names"] == ["Adelie", "Chinstrap", "Gentoo"]
    assert metadata["custom"]["sha256"] == loaded.manifest.sha256
    assert loaded.health_status()["sha256"] == loaded.manifest.sha256
    with pytest.raises(KfkitError, match="not loaded"):
        KfkitModel(model_dir).health_status()


# ------------------------------------------------------------- (c), (d) refusals, in process


def test_in_process_load_refuses_altered_model_before_unpickling(
    tampered_dir: Path, no_unpickling: list[Any]
):
    model = KfkitModel(tampered_dir)
    with pytest.raises(KfkitError, match="sha256") as error:
        model.load()
    assert "refusing to load" in str(error.value)
    assert no_unpickling == [], "the altered model.joblib was unpickled"
    assert model.model is None


def test_in_process_load_refuses_other_sklearn_version(other_version_dir: Path, no_unpickling: list[Any]):
    with pytest.raises(KfkitError) as error:
        KfkitModel(other_version_dir).load()
    message = str(error.value)
    assert "scikit-learn 1.5.2" in message and sklearn.__version__ in message
    assert no_unpickling == []


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: setattr(m, "classes", ["Adelie", "Gentoo", "Chinstrap"]), "predicts classes"),
        (lambda m: m.features.reverse(), "was fitted on features"),
        (lambda m: setattr(m, "problem_type", "ranking"), "problem_type 'ranking'"),
        (lambda m: setattr(m.features[0], "kind", "text"), "unknown kind"),
    ],
    ids=["classes", "features", "problem-type", "feature-kind"],
)
def test_load_refuses_a_manifest_that_describes_another_model(
    model_dir: Path, tmp_path: Path, edit: Any, message: str
):
    folder = _copy_folder(model_dir, tmp_path / "lying")
    manifest = ModelManifest.read(folder)
    edit(manifest)
    manifest.write(folder)
    sign_folder(folder)  # a signed manifest that still does not describe the pickled model
    model = KfkitModel(folder)
    with pytest.raises(KfkitError, match=message):
        model.load()
    assert model.model is None


def test_model_dir_comes_from_env(monkeypatch: pytest.MonkeyPatch, model_dir: Path):
    monkeypatch.setenv("KFKIT_MODEL_DIR", str(model_dir))
    assert KfkitModel().model_dir == model_dir
    monkeypatch.delenv("KFKIT_MODEL_DIR")
    assert KfkitModel().model_dir == Path("/mnt/models")


# --------------------------------------------------- the real model server (slow)


@pytest.mark.slow
def test_served_predictions_equal_in_process_predictions(
    server: ServingProcess, rows: list[dict[str, Any]], loaded: KfkitModel, penguins: pd.DataFrame
):
    expected = loaded.model.predict_proba(rows_to_frame(rows, loaded.manifest))
    answer = server.predict(rows)
    assert answer["data"]["names"] == ["Adelie", "Chinstrap", "Gentoo"]
    assert answer["data"]["names"] == [str(label) for label in loaded.model.classes_]
    served = answer["data"]["ndarray"]
    assert len(served) == len(rows)
    for index, (got, want) in enumerate(zip(served, expected.tolist(), strict=True)):
        assert got == want, f"row {index}: served {got} != in process {want}"
    tags = answer["meta"]["tags"]
    assert tags["kfkit_model_sha256"] == loaded.manifest.sha256
    # The model is a real one, not a constant: it recognises most penguins.
    predicted = np.array(answer["data"]["names"])[np.argmax(served, axis=1)]
    assert (predicted == penguins[LABEL].to_numpy()).mean() > 0.95


@pytest.mark.slow
def test_served_single_rows_equal_in_process(
    server: ServingProcess, rows: list[dict[str, Any]], loaded: KfkitModel
):
    """One row per request: a row without nulls reaches predict() as strings (np.array of
    numbers and text), a row with a null as objects; both must give the in-process answer."""
    assert any(None in row.values() for row in rows)
    assert any(None not in row.values() for row in rows)
    for index, row in enumerate(rows):
        expected = loaded.model.predict_proba(rows_to_frame([row], loaded.manifest))
        answer = server.predict([row])
        assert answer["data"]["ndarray"] == expected.tolist(), f"row {index}"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda row: {k: v for k, v in row.items() if k != "sex"}, ["'sex'"]),
        (lambda row: {**row, "colour": "blue"}, ["'colour'"]),
        (
            lambda row: {("isle" if k == "island" else k): v for k, v in row.items()},
            ["'isle'", "'island'"],
        ),
    ],
    ids=["missing", "extra", "misnamed"],
)
def test_served_feature_mismatch_is_400_naming_the_feature(
    server: ServingProcess, rows: list[dict[str, Any]], change: Any, named: list[str]
):
    with pytest.raises(ServingRequestError) as error:
        server.predict([change(rows[0]), change(rows[1])])
    assert error.value.status == 400
    for text in named:
        assert text in error.value.info
    assert error.value.body["status"]["reason"] == "MICROSERVICE_BAD_DATA"
    assert server.predict([rows[0]])["data"]["names"]  # still serving after a bad request


@pytest.mark.slow
def test_served_wrong_count_or_no_names_is_400(server: ServingProcess):
    status, body = server.request(
        "POST", "/api/v1.0/predictions", {"data": {"names": FEATURES, "ndarray": [[1.0] * 6]}}
    )
    assert status == 400 and "6 values but there are 7" in body["status"]["info"]
    status, body = server.request("POST", "/api/v1.0/predictions", {"data": {"ndarray": [[1.0]]}})
    assert status == 400 and "no feature names" in body["status"]["info"]
    assert "'bill_length_mm'" in body["status"]["info"]


@pytest.mark.slow
def test_served_metadata_and_health(server: ServingProcess, loaded: KfkitModel):
    assert server.health()["jsonData"]["sha256"] == loaded.manifest.sha256
    metadata = server.metadata()
    assert metadata["inputs"][0]["schema"]["names"] == FEATURES
    assert metadata["outputs"][0]["schema"]["names"] == ["Adelie", "Chinstrap", "Gentoo"]


@pytest.mark.slow
def test_start_server_refuses_altered_model(tampered_dir: Path, tmp_path: Path):
    log_path = tmp_path / "tampered.log"
    with pytest.raises(KfkitError) as error:
        start_server(tampered_dir, log_path=log_path, timeout=60)
    message = str(error.value)
    assert "exited during start" in message
    assert "sha256" in message and "refusing to load" in message
    assert str(log_path) in message


@pytest.mark.slow
def test_start_server_refuses_other_sklearn_version(other_version_dir: Path, tmp_path: Path):
    with pytest.raises(KfkitError) as error:
        start_server(other_version_dir, log_path=tmp_path / "version.log", timeout=60)
    message = str(error.value)
    assert "exited during start" in message
    assert "trained with scikit-learn 1.5.2" in message


def test_start_server_refuses_a_busy_port_at_once(model_dir: Path):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(KfkitError, match=f"port {port} is in use"):
            start_server(model_dir, port=port, timeout=5)


def test_stop_ends_a_group_whose_leader_ignores_sigterm(tmp_path: Path):
    """stop() escalates to SIGKILL for the whole group after the grace period."""
    import sys

    code = (
        "import signal, subprocess, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)']); "
        "print('ready', flush=True); time.sleep(60)"
    )
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, start_new_session=True)
    assert process.stdout is not None and process.stdout.readline().strip() == b"ready"
    served = ServingProcess(process, tmp_path, 0, 0, 0, tmp_path / "none.log")
    served.stop(grace=0.3)
    assert process.returncode == -signal.SIGKILL
    assert not group_alive(process.pid)
    served.stop()  # a second stop is harmless
    if process.stdout:
        process.stdout.close()


def test_kfkit_layout_is_served_through_the_proven_fast_path(
    loaded: KfkitModel, model_dir: Path, monkeypatch
):
    """The exact-equality tests above therefore cover the fast path; the switch turns it off."""
    assert loaded.fast is not None
    monkeypatch.setenv("KFKIT_SERVING_FAST_PATH", "0")
    plain = KfkitModel(model_dir)
    plain.load()
    assert plain.fast is None


# ------------------------------- kfkit's server: Seldon's public apps composed, not patched


@pytest.mark.slow
def test_served_by_kfkits_server_with_seldons_metrics_endpoint(server: ServingProcess):
    """The process is kfkit's server module from the serving venv, and Seldon's Prometheus
    endpoint answers on the metrics port."""
    server.predict([{name: None for name in FEATURES}])
    with urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=10) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
    assert server.process.args[:3] == [str(serving_venv() / "bin" / "python"), "-m", SERVER_MODULE]


@pytest.mark.slow
def test_workers_and_threads_reach_gunicorn(server: ServingProcess):
    """``workers=2, threads=2`` (start_server's defaults) as gunicorn reports them: two threaded
    (gthread) REST workers, not one sync worker."""
    log = server.log_text()
    config = re.search(r"REST on 127\.0\.0\.1:\d+: (\{.*\})", log)
    assert config, log[-2000:]
    assert "'workers': 2" in config.group(1) and "'threads': 2" in config.group(1)
    assert "Using worker: gthread" in log
    assert len(re.findall(r"Booting worker with pid: \d+", log)) >= 3  # 2 REST + the metrics server


def test_load_freezes_what_the_worker_keeps_out_of_garbage_collection(model_dir: Path):
    """A full collection over scikit-learn and pandas stalled one request in ~70 ms every few
    seconds; load() freezes the long-lived objects so collections skip them."""
    gc.unfreeze()
    try:
        KfkitModel(model_dir).load()
        assert gc.get_freeze_count() > 10_000
    finally:
        gc.unfreeze()
