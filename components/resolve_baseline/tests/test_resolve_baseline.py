"""baseline against the real object store: nothing pushed yet, then the latest pushed version
with its schema, verified by sha256; the version the local deploy target serves (after a
rollback, during a canary), and the latest pushed version standing in when it cannot tell."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import PENGUINS, make_artifact, write_schema
from kfp.dsl import Artifact

import kfkit.deploy
from kfkit import schemas
from kfkit.components import resolve_baseline as component
from kfkit.components.ingest.executor import ingest
from kfkit.components.push.executor import push
from kfkit.components.resolve_baseline.executor import check, find_baseline
from kfkit.components.train.executor import train
from kfkit.deploy.local import LocalTarget
from kfkit.deploy.request import DeploymentRequest
from kfkit.errors import KfkitError
from kfkit.model_folder import ModelManifest, load_verified_model
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


def test_the_latest_pushed_version_and_its_schema(
    objects, tmp_path, store_environment, local_deployments, capsys
):
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
    assert out.metadata["baseline_source"] == "latest-pushed"  # nothing deployed: it cannot be "served"
    assert f"compares with baseline-test version {second} (latest pushed: " in capsys.readouterr().out


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


# --- the version serving now, asked of the deploy target ------------------------------------


@pytest.fixture()
def local_deployments(tmp_path, monkeypatch) -> LocalTarget:
    """The local deploy target's records in a folder of this test (``KFKIT_HOME``)."""
    monkeypatch.setenv("KFKIT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("KFKIT_DEPLOY_TARGET", raising=False)
    return LocalTarget()


def _deploy(target: LocalTarget, model_name: str, version: str, strategy: str = "replace") -> None:
    uri = str(version_folder(model_name, version))
    target.apply(DeploymentRequest(model_name, version, uri, strategy=strategy), 0)


def test_after_a_rollback_the_baseline_is_the_version_serving_not_the_latest(
    objects, tmp_path, local_deployments
):
    model = "baseline-rollback"
    first = _pushed(tmp_path / "one", model, objects)
    second = _pushed(tmp_path / "two", model, objects)
    _deploy(local_deployments, model, first)
    _deploy(local_deployments, model, second)
    local_deployments.rollback(model)
    assert local_deployments.served_version(model) == first

    found = find_baseline(model, str(tmp_path / "b"), store=objects, deploy_strategy="local")
    assert found["found"] is True and found["version"] == first
    assert found["baseline_source"] == "served"
    assert found["baseline_source_reason"] == (
        f"deploy target 'local' serves version {first} (the latest pushed is {second})"
    )
    # What is downloaded is that version, verified: evaluate compares with the serving model.
    _, manifest = load_verified_model(tmp_path / "b")
    assert (
        manifest.sha256 == found["sha256"]
        and manifest.sha256 == ModelManifest.read(tmp_path / "one/model").sha256
    )

    # A canary of the latest does not make it the serving version.
    _deploy(local_deployments, model, second, "canary")
    assert (
        find_baseline(model, str(tmp_path / "c"), store=objects, deploy_strategy="local")["version"] == first
    )


def test_when_the_target_cannot_tell_the_latest_pushed_stands_in_and_says_so(
    objects, tmp_path, local_deployments, monkeypatch
):
    model = "baseline-fallback"
    first = _pushed(tmp_path / "one", model, objects)
    second = _pushed(tmp_path / "two", model, objects)
    # Nothing deployed locally yet.
    found = find_baseline(model, str(tmp_path / "a"), store=objects, deploy_strategy="local")
    assert (found["version"], found["baseline_source"]) == (second, "latest-pushed")
    assert found["baseline_source_reason"] == (
        f"deploy target 'local' serves no version of {model}: the latest pushed version {second} stands in"
    )
    # deploy_strategy none: no target to ask, even with a local record.
    _deploy(local_deployments, model, first)
    found = find_baseline(model, str(tmp_path / "b"), store=objects, deploy_strategy="none")
    assert (found["version"], found["baseline_source"]) == (second, "latest-pushed")
    assert found["baseline_source_reason"].startswith("deploy_strategy 'none' deploys nowhere")
    # A served version the store does not have (another store's record) is not trusted.
    _deploy(local_deployments, model, "7")
    found = find_baseline(model, str(tmp_path / "c"), store=objects, deploy_strategy="local")
    assert (found["version"], found["baseline_source"]) == (second, "latest-pushed")
    assert (
        "serves version 7, which is not a pushed version in s3://models/" in found["baseline_source_reason"]
    )
    # A target that has no served_version method: the same fallback, said.
    kfkit.deploy.register("no-answer", lambda context: object())
    monkeypatch.setenv("KFKIT_DEPLOY_TARGET", "no-answer")
    try:
        found = find_baseline(model, str(tmp_path / "d"), store=objects, deploy_strategy="replace")
    finally:
        kfkit.deploy.unregister("no-answer")
    assert found["baseline_source"] == "latest-pushed"
    assert found["baseline_source_reason"].startswith(
        "deploy target 'no-answer' cannot tell which version serves"
    )


def test_a_schema_reset_still_applies_to_the_serving_version(objects, tmp_path, local_deployments):
    model = "baseline-reset-served"
    first = _pushed(tmp_path / "one", model, objects)
    _pushed(tmp_path / "two", model, objects)
    _deploy(local_deployments, model, first)
    schemas.reset(objects, model)  # after the latest: neither version's schema is used
    found = find_baseline(model, str(tmp_path / "b"), store=objects, deploy_strategy="local")
    assert found["version"] == first and found["baseline_source"] == "served"
    assert found["schema_reset"].startswith("reset after version 2")
    assert not (tmp_path / "b" / "schema.pbtxt").exists() and (tmp_path / "b" / "model.joblib").is_file()


def test_the_deploy_strategy_is_checked_before_any_task():
    with pytest.raises(KfkitError, match="deploy_strategy"):
        check({"model_name": "penguins", "deploy_strategy": "blue-green"})
    check({"model_name": "penguins", "deploy_strategy": "canary", "serving_namespace": "x"})


def test_an_asked_version_is_that_version_or_one_line(objects, tmp_path, local_deployments):
    model = "baseline-asked"
    first = _pushed(tmp_path / "one", model, objects)
    second = _pushed(tmp_path / "two", model, objects)
    _deploy(local_deployments, model, second)

    found = find_baseline(
        model, str(tmp_path / "b"), store=objects, deploy_strategy="local", model_version=first
    )

    assert found["version"] == first and found["baseline_source"] == "requested"
    _, manifest = load_verified_model(tmp_path / "b")
    assert manifest.sha256 == ModelManifest.read(tmp_path / "one/model").sha256
    with pytest.raises(KfkitError, match=f"^model {model} has no pushed version 99$"):
        find_baseline(model, str(tmp_path / "c"), store=objects, model_version="99")
    objects.put_bytes(version_folder(model, 7).child("model.joblib"), b"half a push")
    with pytest.raises(KfkitError, match=f"^model {model} version 7 is incomplete"):
        find_baseline(model, str(tmp_path / "d"), store=objects, model_version="7")
    for bad in ("v2", "0", "-1", "latest"):
        with pytest.raises(KfkitError, match="'model_version' parameter of resolve_baseline"):
            check({"model_name": model, "model_version": bad})
    check({"model_name": model, "model_version": ""})
