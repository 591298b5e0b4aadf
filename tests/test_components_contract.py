"""One contract for every component folder (like scikit-learn's check_estimator), run over
whatever folders exist: a new component is checked the moment its folder is added.

Each folder holds its declaration, logic, compiled YAML (in sync), README (its tables generated
from the declaration and in sync), metadata.yaml, OWNERS and tests; the body goes through
kfkit's one execution path; the image is kfkit's, with nothing installed at task start, and
only the validate image carries TensorFlow."""

from __future__ import annotations

import datetime
import inspect
import re
from pathlib import Path

import pytest
import yaml
from conftest import REPO

from kfkit.catalog import PIPELINES, compile_all, component_folder, component_names, load_component
from kfkit.runtime import TASK_NAME, signature

COMPONENTS = component_names()


def test_the_components_are_found_from_their_folders():
    folders = sorted(p.parent.name for p in (REPO / "components").glob("*/component.py"))
    assert COMPONENTS == folders and {"ingest", "validate", "train", "evaluate", "push"} <= set(COMPONENTS)


def test_the_package_exports_every_component():
    import kfkit.components

    assert kfkit.components.__all__ == COMPONENTS
    for name in COMPONENTS:
        assert getattr(kfkit.components, name) is load_component(name)


def test_importing_a_components_logic_does_not_hide_the_component():
    import kfkit.components
    from kfkit.components.train.executor import run  # binds the folder package on its parent

    assert callable(run)
    assert kfkit.components.train.component_spec.name == "train"


@pytest.fixture(scope="module")
def fresh_compile(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("compiled")
    compile_all(out)
    return out


@pytest.mark.parametrize("name", COMPONENTS)
def test_component_yaml_and_readme_are_in_sync(fresh_compile, name):
    for file in ("component.yaml", "README.md"):
        committed = (component_folder(name) / file).read_text()
        assert committed == (fresh_compile / "components" / name / file).read_text(), (
            f"components/{name}/{file} is stale: run `kfkit compile`"
        )


@pytest.mark.parametrize("name", PIPELINES)
def test_pipeline_yaml_is_in_sync(fresh_compile, name):
    committed = (REPO / "pipelines" / "compiled" / f"{name}.yaml").read_text()
    assert committed == (fresh_compile / "pipelines" / "compiled" / f"{name}.yaml").read_text(), (
        f"pipelines/compiled/{name}.yaml is stale: run `kfkit compile`"
    )


@pytest.mark.parametrize("name", COMPONENTS)
def test_folder_holds_logic_declaration_docs_metadata_owners_and_tests(name):
    folder = component_folder(name)
    for file in ("component.py", "executor.py", "component.yaml", "README.md", "metadata.yaml", "OWNERS"):
        assert (folder / file).is_file(), f"components/{name}/{file} is missing"
    assert list((folder / "tests").glob("test_*.py")), f"components/{name}/tests/ has no tests"
    readme = (folder / "README.md").read_text()
    spec = load_component(name).component_spec
    for key in [*(spec.inputs or {}), *(spec.outputs or {})]:
        assert f"`{key}`" in readme, f"components/{name}/README.md does not document `{key}`"
    for section in ("## Parameters", "## Inputs", "## Outputs", "## Metadata", "## Failure modes"):
        assert section in readme, f"components/{name}/README.md lacks {section}"


@pytest.mark.parametrize("name", COMPONENTS)
def test_metadata_yaml_is_valid(name):
    data = yaml.safe_load((component_folder(name) / "metadata.yaml").read_text())
    assert data["name"] == name
    assert data["stability"] in ("alpha", "beta", "stable")
    pipelines = [d for d in data["dependencies"]["kubeflow"] if d["name"] == "Pipelines"]
    assert pipelines and re.match(r"^[<>=!~]=?\s*\d+\.\d+", pipelines[0]["version"])
    verified = data["lastVerified"]
    assert isinstance(verified, datetime.datetime | datetime.date), "lastVerified must be a timestamp"
    owners = yaml.safe_load((component_folder(name) / "OWNERS").read_text())
    assert owners["approvers"] and owners["reviewers"]


@pytest.mark.parametrize("name", COMPONENTS)
def test_body_is_the_one_execution_path_and_declares_its_task_name(name):
    component = load_component(name)
    body = inspect.getsource(component.python_func)
    assert re.search(r"^\s+execute\(" + name + r", locals\(\), run", body, re.M), body
    declared = signature(component)
    assert TASK_NAME in declared.parameters
    assert component.component_spec.inputs[TASK_NAME].default == "{{$.pipeline_task_name}}"
    # Logic imports inside the body only: lightweight components run the body alone.
    assert "from kfkit.components." + name + ".executor import run" in body


@pytest.mark.parametrize("name", COMPONENTS)
def test_component_runs_on_a_kfkit_image_without_installs_at_start(name):
    container = load_component(name).component_spec.implementation.container
    assert container.image.startswith("ghcr.io/kfkit/kfkit")
    assert "pip install" not in " ".join(container.command), "bake packages into the image"
    assert ("kfkit-validate" in container.image) == (name == "validate"), "only validate carries TensorFlow"


def test_images_install_from_the_lock_and_carry_the_component_folders():
    base = (REPO / "components" / "base" / "Dockerfile").read_text()
    validate = (REPO / "components" / "validate" / "Dockerfile").read_text()
    for text in (base, validate):
        assert "uv.lock" in text and "--frozen" in text
        assert "COPY components ./components" in text and "COPY pipelines ./pipelines" in text
    assert "--extra validate" in validate and "--extra validate" not in base
    # A Dockerfile that only relabels the base image is dead weight: only validate has one.
    assert sorted(p.parent.name for p in (REPO / "components").glob("*/Dockerfile")) == [
        "base",
        "serving",
        "validate",
    ]
