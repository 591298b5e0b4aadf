"""One contract for every component folder (like scikit-learn's check_estimator): compiled
YAML in sync with its Python, a README naming every parameter, input and output, a Dockerfile
installing from the lock file, and only validate's image carrying TensorFlow."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import REPO

from kfkit.catalog import PIPELINES, compile_all, component_names, load_component

COMPONENTS = component_names(REPO)


def test_the_five_components_exist():
    assert COMPONENTS == ["evaluate", "ingest", "push", "train", "validate"]


@pytest.fixture(scope="module")
def fresh_compile(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("compiled")
    compile_all(REPO, out)
    return out


@pytest.mark.parametrize("name", COMPONENTS)
def test_component_yaml_is_in_sync(fresh_compile, name):
    committed = (REPO / "components" / name / "component.yaml").read_text()
    assert committed == (fresh_compile / "components" / name / "component.yaml").read_text(), (
        f"components/{name}/component.yaml is stale: run `kfkit compile`"
    )


@pytest.mark.parametrize("name", PIPELINES)
def test_pipeline_yaml_is_in_sync(fresh_compile, name):
    committed = (REPO / "pipelines" / "compiled" / f"{name}.yaml").read_text()
    assert committed == (fresh_compile / "pipelines" / "compiled" / f"{name}.yaml").read_text(), (
        f"pipelines/compiled/{name}.yaml is stale: run `kfkit compile`"
    )


@pytest.mark.parametrize("name", COMPONENTS)
def test_readme_documents_every_parameter_input_and_output(name):
    readme = (REPO / "components" / name / "README.md").read_text()
    spec = load_component(name, REPO).component_spec
    for key in [*(spec.inputs or {}), *(spec.outputs or {})]:
        assert f"`{key}`" in readme, f"components/{name}/README.md does not document `{key}`"
    for section in ("## Parameters", "## Inputs", "## Outputs", "## Metadata", "## Failure modes"):
        assert section in readme, f"components/{name}/README.md lacks {section}"


@pytest.mark.parametrize("name", COMPONENTS)
def test_component_runs_on_a_kfkit_image_without_installs_at_start(name):
    spec = load_component(name, REPO).component_spec
    container = spec.implementation.container
    assert container.image.startswith("ghcr.io/kfkit/kfkit")
    command = " ".join(container.command)
    assert "pip install" not in command, "packages must be baked into the image, not installed at task start"


def _images_from(dockerfile: Path) -> str:
    text = dockerfile.read_text()
    base = re.search(r"^FROM (\S+)$", text, re.M).group(1)
    if base.startswith("ghcr.io/kfkit/kfkit:"):
        text += (REPO / "components" / "base" / "Dockerfile").read_text()
    return text


@pytest.mark.parametrize("name", COMPONENTS)
def test_dockerfile_installs_from_the_lock_and_only_validate_has_tensorflow(name):
    text = _images_from(REPO / "components" / name / "Dockerfile")
    assert "uv.lock" in text and "--frozen" in text
    has_tf_extra = "--extra validate" in text
    assert has_tf_extra == (name == "validate")
    image = load_component(name, REPO).component_spec.implementation.container.image
    assert ("kfkit-validate" in image) == (name == "validate")
