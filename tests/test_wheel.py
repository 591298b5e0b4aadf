"""The built wheel on its own: installed into a fresh virtual environment from the lock, a
user's pipeline file outside the checkout composes kfkit's components and runs locally.

Nothing may come from the checkout: the venv has no path to it, KFKIT_REPO is unset and the
working folder is a temporary one. Slow: building, installing (~1 min on a warm uv cache,
mostly compiling bytecode) and one run of six tasks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
import zipfile
from pathlib import Path

import pytest
from conftest import PENGUINS, REPO

from kfkit.images import BASE_IMAGE, VALIDATE_IMAGE

pytestmark = pytest.mark.slow

UV = REPO / ".tools" / "bin" / "uv"
COMPONENTS = ("ingest", "resolve_baseline", "validate", "train", "evaluate", "push")
COMPONENT_FILES = ("component.py", "executor.py", "component.yaml", "README.md")
# kfp names a component's second task in a pipeline <name>-2.
IMAGES = {
    "ingest": BASE_IMAGE,
    "resolve-baseline": BASE_IMAGE,
    "validate": VALIDATE_IMAGE,
    "train": BASE_IMAGE,
    "train-2": BASE_IMAGE,
    "evaluate": BASE_IMAGE,
    "evaluate-2": BASE_IMAGE,
}

MY_PIPELINE = """
from kfp import dsl

from kfkit.components import evaluate, ingest, resolve_baseline, train, validate


@dsl.pipeline(name="my-two-models")
def my_two_models(data_uri: str, model_name: str, label_column: str = "species"):
    data = ingest(source_uri=data_uri, label_column=label_column)
    baseline = resolve_baseline(model_name=model_name).outputs["baseline"]
    checked = validate(
        train_split=data.outputs["train_split"],
        eval_split=data.outputs["eval_split"],
        baseline=baseline,
    )
    for estimator in ("logistic_regression", "random_forest"):
        model = train(
            train_split=data.outputs["train_split"],
            schema=checked.outputs["schema"],
            anomalies=checked.outputs["anomalies"],
            statistics=checked.outputs["statistics"],
            model_name=model_name,
            estimator=estimator,
        )
        evaluate(
            model=model.outputs["model"],
            eval_split=data.outputs["eval_split"],
            train_split=data.outputs["train_split"],
            baseline=baseline,
            thresholds={"accuracy": 0.9},
        )
"""

WHERE = """
import json, kfkit, kfkit.catalog, kfkit.components, kfkit.pipelines
print(json.dumps({
    "kfkit": kfkit.__file__,
    "components": list(kfkit.components.__path__),
    "pipelines": list(kfkit.pipelines.__path__),
    "train": kfkit.catalog.component_folder("train").as_posix(),
    "compiled": kfkit.catalog.compiled_pipeline_path("training").as_posix(),
}))
"""


def _uv_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    # As the Makefile: no interpreter downloads, and bytecode compiled at install (else every
    # task of the run compiles TensorFlow's modules on import).
    env.update(UV_PYTHON_DOWNLOADS="never", UV_COMPILE_BYTECODE="1", UV_NO_PROGRESS="1")
    return env


def _uv(*args: str, cwd: Path = REPO, timeout: float = 900) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [str(UV), *args], cwd=cwd, env=_uv_env(), capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, f"uv {' '.join(args)}:\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    _uv("build", "--wheel", "-o", str(out))
    (built,) = out.glob("kfkit-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A fresh venv (the test interpreter's Python, i.e. the .venv's) with the locked runtime
    dependencies, the validate extra, and the wheel: no dev tools, no checkout."""
    folder = tmp_path_factory.mktemp("wheel-venv")
    reqs = folder / "reqs.txt"
    _uv("export", "--frozen", "--no-dev", "--no-emit-project", "--extra", "validate", "-o", str(reqs))
    venv = folder / "venv"
    _uv("venv", "--python", sys.executable, str(venv))
    _uv("pip", "install", "--python", str(venv / "bin" / "python"), "-r", str(reqs), str(wheel))
    return venv


def test_the_wheel_ships_the_component_folders_and_the_compiled_pipeline(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {f"kfkit/components/{c}/{f}" for c in COMPONENTS for f in COMPONENT_FILES}
    expected |= {"kfkit/pipelines/compiled/training.yaml", "kfkit/pipelines/training.py"}
    assert expected <= names, sorted(expected - names)
    # Not shipped: the components' tests (they need the checkout's conftest.py) and the image
    # build files (their build context is the repository).
    unwanted = sorted(
        n
        for n in names
        if "/tests/" in n
        or n.endswith("/Dockerfile")
        or n.startswith(("kfkit/components/base/", "kfkit/components/serving/"))
    )
    assert unwanted == []


def _user_env(venv: Path, store_env: dict[str, str], home: Path) -> dict[str, str]:
    """A user's shell with the venv activated and the session's store from `kfkit store env`."""
    env = {k: v for k, v in store_env.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.pop("KFKIT_REPO", None)
    env.update(KFKIT_HOME=str(home), VIRTUAL_ENV=str(venv), PATH=f"{venv / 'bin'}{os.pathsep}{env['PATH']}")
    return env


def test_a_users_pipeline_runs_from_the_installed_wheel(venv, store_env, tmp_path):
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    assert not work.resolve().is_relative_to(REPO)
    env = _user_env(venv, store_env, home)
    assert "KFKIT_REPO" not in env and env["KFKIT_S3_ENDPOINT"].startswith("http://127.0.0.1:")
    site = next((venv / "lib").glob("python3.*/site-packages"))

    # kfkit, its components and its compiled pipelines all come from the venv.
    proc = subprocess.run(
        [str(venv / "bin" / "python"), "-c", WHERE], cwd=work, env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    where = json.loads(proc.stdout)
    assert where == {
        "kfkit": str(site / "kfkit" / "__init__.py"),
        "components": [str(site / "kfkit" / "components")],
        "pipelines": [str(site / "kfkit" / "pipelines")],
        "train": str(site / "kfkit" / "components" / "train"),
        "compiled": str(site / "kfkit" / "pipelines" / "compiled" / "training.yaml"),
    }

    (work / "my_pipeline.py").write_text(MY_PIPELINE)
    # kfp.local replaces "python3" in every argument of a task's command, parameters included,
    # so a data path inside the venv (lib/python3.11/...) would be mangled: copy the data out.
    data = work / "penguins.csv"
    data.write_bytes(PENGUINS.read_bytes())
    model_name = f"wheel-{uuid.uuid4().hex[:8]}"  # never pushed: no baseline yet
    proc = subprocess.run(
        [
            str(venv / "bin" / "kfkit"),
            "run-local",
            "--pipeline",
            "my_pipeline.py",
            "--json",
            "--param",
            f"data_uri={data}",
            "--param",
            f"model_name={model_name}",
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert summary["status"] == "SUCCEEDED", summary["error"]
    assert summary["pipeline"] == "my-two-models"
    assert summary["tasks"] == {task: "SUCCEEDED" for task in IMAGES}
    assert set(summary["metrics"]) == {"evaluate", "evaluate-2"}
    for task in ("evaluate", "evaluate-2"):
        assert summary["metrics"][task]["accuracy"] >= 0.9 and summary["blessed"][task] is True
    assert summary["pushed"] == {}
    assert not [key for key in (*summary["tasks"], *summary["artifacts"]) if "push" in key]
    # Its state went to KFKIT_HOME; with no pushed version, the schema was inferred.
    assert Path(summary["log"]).parent == home / "runs" and not (work / ".kfkit").exists()
    assert summary["validation"]["validate"]["schema_source"] == "inferred"
    assert summary["artifacts"]["resolve-baseline.baseline"]["found"] == 0  # MLMD keeps False as 0
    assert str(REPO) not in Path(summary["log"]).read_text()

    # The lineage the tasks recorded, read back by the installed CLI.
    proc = subprocess.run(
        [str(venv / "bin" / "kfkit"), "runs", "show", summary["run_id"], "--json"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    run = json.loads(proc.stdout)
    assert run["state"] == "SUCCEEDED"
    assert {t["task"]: (t["state"], t["image"]) for t in run["tasks"]} == {
        task: ("COMPLETE", image) for task, image in IMAGES.items()
    }
