"""What the compiled pipeline asks of a cluster: per-task resources, retries, timeouts, caching
and images, their defaults in git, and `kfkit compile`'s overrides (flags, environment, a
resources file) through the real CLI."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from conftest import REPO, error_line, run_kfkit

from kfkit import __version__
from kfkit.images import ImageSettings, image_settings
from kfkit.task_settings import DEFAULTS, NEVER_CACHED
from kfkit.warm_start import routes_for

COMPILED = REPO / "pipelines" / "compiled" / "training.yaml"
REGISTRY = "registry.example.com:5000/ml"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KFKIT_")}
    return {**env, **extra}


def _documents(path: Path) -> tuple[dict, dict]:
    spec, platform = yaml.safe_load_all(path.read_text())
    return spec, platform


def _by_component(spec: dict, platform: dict) -> dict[str, dict]:
    """Per kfkit component: its task, container and Kubernetes executor config."""
    k8s = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    found = {}
    for task in spec["root"]["dag"]["tasks"].values():
        component = spec["components"][task["componentRef"]["name"]]
        label = component["executorLabel"]
        name = task["componentRef"]["name"].removeprefix("comp-").replace("-", "_")
        found[name] = {
            "task": task,
            "container": spec["deploymentSpec"]["executors"][label]["container"],
            "kubernetes": k8s.get(label, {}),
        }
    return found


def test_the_compiled_pipeline_in_git_carries_the_default_settings_of_every_task():
    tasks = _by_component(*_documents(COMPILED))
    # The scoring pipeline's own task (score); its other tasks are checked in the training one's.
    scoring = _by_component(*_documents(COMPILED.with_name("scoring.yaml")))
    assert set(tasks) | set(scoring) == set(DEFAULTS)
    for name, settings in DEFAULTS.items():
        found = tasks.get(name) or scoring[name]
        task, container, k8s = found["task"], found["container"], found["kubernetes"]
        resources = container["resources"]
        assert resources["resourceCpuRequest"] == settings.cpu_request, name
        assert resources["resourceMemoryRequest"] == settings.memory_request, name
        assert resources["resourceMemoryLimit"] == settings.memory_limit, name
        assert int(k8s["activeDeadlineSeconds"]) == settings.timeout_seconds > 0, name
        retry = task.get("retryPolicy", {})
        assert retry.get("maxRetryCount", 0) == settings.retries, name
        if settings.retries:
            assert retry["backoffDuration"] == "30s" and retry["backoffFactor"] == 2.0
        assert task["cachingOptions"].get("enableCache", False) == (name not in NEVER_CACHED), name
        image = "kfkit-validate" if name == "validate" else "kfkit"
        assert container["image"] == f"ghcr.io/kfkit/{image}:{__version__}", name
    # The heavy tasks get more: TensorFlow's validate and train hold the data in memory.
    assert (
        tasks["validate"]["container"]["resources"]["memoryLimit"]
        > tasks["ingest"]["container"]["resources"]["memoryLimit"]
    )
    assert {n for n, s in DEFAULTS.items() if s.retries} == {
        "resolve_source",
        "ingest",
        "resolve_baseline",
    }


def test_kfkit_compile_with_no_flags_makes_the_files_in_git(tmp_path):
    proc = run_kfkit(["compile", "--out", str(tmp_path)], _env())
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "pipelines/compiled/training.yaml").read_text() == COMPILED.read_text()
    assert (tmp_path / "components/ingest/component.yaml").read_text() == (
        REPO / "components/ingest/component.yaml"
    ).read_text()


def test_registry_tag_and_resources_from_the_command_line(tmp_path):
    resources = tmp_path / "resources.yaml"
    resources.write_text("tasks:\n  train: {memory_limit: 16Gi, retries: 1, timeout_seconds: 60}\n")
    proc = run_kfkit(
        [
            "compile",
            "--out",
            str(tmp_path / "out"),
            "--image-registry",
            REGISTRY + "/",
            "--image-tag",
            "2026.12",
            "--resources",
            str(resources),
        ],
        _env(KFKIT_IMAGE_REGISTRY="ignored.example.com"),  # the flag wins
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    tasks = _by_component(*_documents(tmp_path / "out/pipelines/compiled/training.yaml"))
    for name, found in tasks.items():
        image = "kfkit-validate" if name == "validate" else "kfkit"
        assert found["container"]["image"] == f"{REGISTRY}/{image}:2026.12", name
    train = tasks["train"]
    assert train["container"]["resources"]["resourceMemoryLimit"] == "16Gi"
    assert train["container"]["resources"]["resourceMemoryRequest"] == DEFAULTS["train"].memory_request
    assert train["task"]["retryPolicy"]["maxRetryCount"] == 1
    assert train["kubernetes"]["activeDeadlineSeconds"] == "60"
    # run-local's warm start still sends validate to the server that pre-imported TensorFlow.
    spec, _ = _documents(tmp_path / "out/pipelines/compiled/training.yaml")
    assert routes_for(spec)["validate"] == ("validate",)
    # A component's own YAML still names the published images: only the pipeline is retargeted.
    assert "ghcr.io/kfkit/kfkit:" in (tmp_path / "out/components/train/component.yaml").read_text()


def test_the_environment_names_the_registry_and_tag_when_no_flag_does(tmp_path):
    proc = run_kfkit(
        ["compile", "--out", str(tmp_path)], _env(KFKIT_IMAGE_REGISTRY=REGISTRY, KFKIT_IMAGE_TAG="rc1")
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    images = {
        found["container"]["image"]
        for found in _by_component(*_documents(tmp_path / "pipelines/compiled/training.yaml")).values()
    }
    assert images == {f"{REGISTRY}/kfkit:rc1", f"{REGISTRY}/kfkit-validate:rc1"}


def test_the_example_resources_file_compiles(tmp_path):
    proc = run_kfkit(["compile", "--out", str(tmp_path), "--resources", "configs/resources.yaml"], _env())
    assert proc.returncode == 0, proc.stderr[-2000:]
    train = _by_component(*_documents(tmp_path / "pipelines/compiled/training.yaml"))["train"]
    assert train["container"]["resources"]["resourceMemoryLimit"] == "16Gi"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("tasks:\n  trian: {retries: 1}\n", "tasks.trian: unknown component"),
        ("tasks:\n  train: {memory: 1Gi}\n", "tasks.train.memory: unknown setting"),
        ("tasks:\n  train: {retries: -1}\n", "tasks.train.retries: expected a whole number >= 0"),
        ("tasks:\n  push: {caching: true}\n", "tasks.push.caching: push is never cached"),
        ("tasks:\n  train: {memory_limit: lots}\n", "resources.yaml: tasks.train: Invalid memory string"),
        ("train: {retries: 1}\n", "expected one key, `tasks:`"),
    ],
)
def test_a_wrong_resources_file_is_one_line(tmp_path, content, expected):
    resources = tmp_path / "resources.yaml"
    resources.write_text(content)
    proc = run_kfkit(["compile", "--out", str(tmp_path / "out"), "--resources", str(resources)], _env())
    assert expected in error_line(proc)


def test_image_settings_precedence_and_checks():
    assert image_settings(environ={}) == ImageSettings()
    env = {"KFKIT_IMAGE_REGISTRY": "env.example.com/kfkit/", "KFKIT_IMAGE_TAG": "env"}
    assert image_settings(environ=env) == ImageSettings("env.example.com/kfkit", "env")
    assert image_settings("flag.example.com", None, env) == ImageSettings("flag.example.com", "env")
    from kfkit.errors import KfkitError

    with pytest.raises(KfkitError, match="KFKIT_IMAGE_TAG: 'a b' is not a valid image tag"):
        image_settings(environ={"KFKIT_IMAGE_TAG": "a b"})
    with pytest.raises(KfkitError, match="--image-registry: 'Bad Registry' is not a valid image registry"):
        image_settings("Bad Registry", environ={})
    # Only kfkit's own images are renamed.
    assert ImageSettings("r.example.com", "t").image("python:3.11") == "python:3.11"
