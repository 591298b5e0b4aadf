"""Push against the real SeaweedFS store: concurrent pushes of one model never share or
overwrite a version (the claim is an S3 conditional create)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from kfkit.components.push import executor as push
from kfkit.model_folder import MANIFEST_FILE, Feature, ModelManifest, sha256_bytes
from kfkit.model_registry import existing_versions, version_folder
from kfkit.signing import sign_folder
from kfkit.storage import ObjectStore


def _model_folder(path, run_id: str, model_name: str = "racing") -> str:
    """A model folder with distinct bytes per run (push never unpickles: it checks sha256)."""
    path.mkdir(parents=True)
    data = f"model bytes of {run_id}".encode()
    (path / "model.joblib").write_bytes(data)
    manifest = ModelManifest(
        model_name=model_name,
        sha256=sha256_bytes(data),
        sklearn_version="1.9.1",
        python_version="3.11",
        problem_type="classification",
        label_column="species",
        features=[Feature(name="bill_length_mm", kind="numeric")],
        estimator="logistic_regression",
        run_id=run_id,
        training_data_fingerprint=f"data of {run_id}",  # another model, not an unchanged one
    )
    (path / MANIFEST_FILE).write_text(manifest.to_json())
    sign_folder(path)  # push carries the signature; readers verify it
    return str(path)


def test_create_bytes_refuses_an_existing_object(objects: ObjectStore):
    objects.ensure_bucket("kfkit")
    uri = "s3://kfkit/tests/create-once"
    assert objects.create_bytes(uri, b"first") is True
    assert objects.create_bytes(uri, b"second") is False
    assert objects.get_bytes(uri) == b"first"


@pytest.mark.parametrize("pushes", [6])
def test_concurrent_pushes_get_distinct_versions_and_overwrite_nothing(objects, tmp_path, pushes):
    folders = [_model_folder(tmp_path / f"run-{n}", f"run-{n}") for n in range(pushes)]
    with ThreadPoolExecutor(pushes) as pool:
        results = list(
            pool.map(
                lambda folder: push.push(folder, "racing", store=objects, max_attempts=pushes + 1), folders
            )
        )
    versions = sorted(int(r.version) for r in results)
    assert versions == list(range(1, pushes + 1))
    assert existing_versions(objects, "racing") == versions
    for result, folder in zip(results, folders, strict=True):
        # Each version holds exactly the bytes of the push that claimed it.
        stored = objects.get_bytes(version_folder("racing", result.version).child("model.joblib"))
        assert sha256_bytes(stored) == result.sha256 == ModelManifest.read(folder).sha256


def test_closed_gate_pushes_nothing_and_says_why(objects, tmp_path, capsys):
    from conftest import make_artifact
    from kfp.dsl import Artifact, Model

    from kfkit.components import push as component

    model = make_artifact(Model, tmp_path, "model")
    _model_folder(tmp_path / "model", "gated")
    before = existing_versions(objects, "racing")
    outputs = {
        "pushed_model": make_artifact(Model, tmp_path, "pushed"),
        "deployment": make_artifact(Artifact, tmp_path, "d"),
    }
    blessing = make_artifact(
        Artifact, tmp_path, "blessing", {"blessed": False, "reason": "thresholds not met: accuracy"}
    )
    component.python_func(
        model=model,
        blessing=blessing,
        model_name="racing",
        serving_namespace="kfkit-serving",
        deploy_strategy="local",
        canary_traffic=10,
        deploy_timeout=60,
        task_name="push",
        **outputs,
    )
    assert existing_versions(objects, "racing") == before
    assert outputs["pushed_model"].metadata["skipped"] is True
    assert (
        "'blessing' is not blessed: thresholds not met: accuracy"
        in outputs["pushed_model"].metadata["reason"]
    )
    assert "kfkit push: not run: 'blessing' is not blessed" in capsys.readouterr().out


def test_unchanged_model_that_does_not_serve_says_so_and_deploys_nothing(
    objects, local_store, tmp_path, monkeypatch, capsys
):
    """After a rollback, rerunning the rolled-back-from model is 'unchanged' (nothing pushed), but
    it does not serve: push says which version does and leaves the rollback in place."""
    from conftest import make_artifact
    from kfp.dsl import Artifact, Model

    from kfkit.components import push as component
    from kfkit.deploy.local import LocalTarget, served_version

    for key, value in local_store.config.to_env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("KFKIT_HOME", str(tmp_path / "home"))
    blessing = make_artifact(Artifact, tmp_path, "blessing", {"blessed": True})

    def run_push(folder_name: str, run_id: str, fresh: bool = True) -> dict:
        model = make_artifact(Model, tmp_path, folder_name)
        if fresh:
            _model_folder(tmp_path / folder_name, run_id, "rolled")
        outputs = {
            "pushed_model": make_artifact(Model, tmp_path, f"pushed-{run_id}-{fresh}"),
            "deployment": make_artifact(Artifact, tmp_path, f"deployment-{run_id}-{fresh}"),
        }
        component.python_func(
            model=model,
            blessing=blessing,
            model_name="rolled",
            serving_namespace="kfkit-serving",
            deploy_strategy="local",
            canary_traffic=10,
            deploy_timeout=60,
            task_name="push",
            **outputs,
        )
        return dict(outputs["pushed_model"].metadata)

    assert run_push("model-a", "a")["version"] == "1"
    assert run_push("model-b", "b")["version"] == "2"
    LocalTarget().rollback("rolled")
    assert served_version("rolled") == "1"
    capsys.readouterr()

    again = run_push("model-b", "b", fresh=False)  # model b once more: the same bytes as version 2
    assert again["unchanged"] is True and again["version"] == "2"
    assert again["serves"] is False and again["served_version"] == "1"
    said = capsys.readouterr().out
    assert "nothing pushed or deployed, and it does not serve (deploy target 'local' serves version 1)" in (
        said
    )
    assert existing_versions(objects, "rolled") == [1, 2]
    assert served_version("rolled") == "1"  # the rollback stands
