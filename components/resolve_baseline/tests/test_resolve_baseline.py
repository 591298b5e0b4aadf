"""baseline against the real object store: nothing pushed yet, then the latest pushed version
with its schema, verified by sha256."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import PENGUINS, make_artifact, write_schema
from kfp.dsl import Artifact

from kfkit.components import resolve_baseline as component
from kfkit.components.ingest.executor import ingest
from kfkit.components.push.executor import push
from kfkit.components.resolve_baseline.executor import find_baseline
from kfkit.components.train.executor import train
from kfkit.errors import KfkitError
from kfkit.model_folder import load_verified_model
from kfkit.model_registry import version_folder


@pytest.fixture()
def store_environment(store_env, monkeypatch):
    for key, value in store_env.items():
        if key.startswith(("KFKIT_S3", "AWS_")):
            monkeypatch.setenv(key, value)


def _pushed(tmp_path: Path, model_name: str, objects) -> str:
    split = ingest(str(PENGUINS), "species")
    schema = write_schema(split.train, tmp_path / "schema")
    train(split.train, str(schema / "schema.pbtxt"), "species", model_name, str(tmp_path / "model"))
    return push(str(tmp_path / "model"), model_name, store=objects).version


def test_a_model_never_pushed_has_no_baseline(objects, tmp_path):
    found = find_baseline("never-pushed-model", str(tmp_path / "b"), store=objects)
    assert found["found"] is False and "no pushed version yet" in found["reason"]
    assert list((tmp_path / "b").iterdir()) == []


def test_the_latest_pushed_version_and_its_schema(objects, tmp_path, store_environment, capsys):
    first = _pushed(tmp_path / "one", "baseline-test", objects)
    second = _pushed(tmp_path / "two", "baseline-test", objects)
    assert int(second) == int(first) + 1
    out = make_artifact(Artifact, tmp_path, "baseline")
    component.python_func(model_name="baseline-test", baseline=out, task_name="resolve-baseline")
    assert out.metadata["found"] is True and out.metadata["version"] == second
    assert out.metadata["uri"] == str(version_folder("baseline-test", second))
    assert (Path(out.path) / "schema.pbtxt").read_text() == (tmp_path / "two/schema/schema.pbtxt").read_text()
    # The model file too, loadable only through the verified path evaluate uses.
    assert (Path(out.path) / "model.joblib").read_bytes() == (
        tmp_path / "two/model/model.joblib"
    ).read_bytes()
    _, manifest = load_verified_model(out.path)
    assert manifest.sha256 == out.metadata["sha256"] and out.metadata["model_file"] == "model.joblib"
    assert f"compares with baseline-test version {second}" in capsys.readouterr().out


def test_a_changed_companion_file_is_refused(objects, tmp_path):
    version = _pushed(tmp_path, "baseline-tampered", objects)
    objects.put_bytes(version_folder("baseline-tampered", version).child("schema.pbtxt"), b"feature {}")
    with pytest.raises(KfkitError, match="schema.pbtxt: sha256 does not match"):
        find_baseline("baseline-tampered", str(tmp_path / "b"), store=objects)


def test_a_changed_model_file_is_refused(objects, tmp_path):
    version = _pushed(tmp_path, "baseline-tampered-model", objects)
    objects.put_bytes(
        version_folder("baseline-tampered-model", version).child("model.joblib"), b"not a model"
    )
    with pytest.raises(KfkitError, match="model.joblib: sha256 .* does not match"):
        find_baseline("baseline-tampered-model", str(tmp_path / "b"), store=objects)
