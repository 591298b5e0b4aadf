"""push's deploy_strategy in a cluster and out of it: ``auto`` (the pipeline's default) is the
local record on a laptop and a SeldonDeployment rollout in a pod (replace first, canary after),
and nothing inside a pod is ever recorded locally, where it would vanish with the pod.

"In a pod" is what Kubernetes tells every container: ``KUBERNETES_SERVICE_HOST``. The cluster
is kmock's Kubernetes API emulator (tests/test_deploy.py's helpers), Seldon's operator the
stand-in there. kmock stays for fast unit tests; the real-operator version is
tests/cluster/test_real_deploy.py."""

from __future__ import annotations

import pytest
import test_deploy
import yaml
from conftest import REPO
from test_deploy import NAMESPACE, KmockApi, OperatorStandIn

from kfkit import deploy
from kfkit.deploy import seldon
from kfkit.deploy.request import DeploymentRequest
from kfkit.errors import KfkitError

MODEL = "penguins"  # the model OperatorStandIn plays the operator for


# test_deploy's fixture: the kmock API server, started and stopped around each test.
kube = test_deploy.kube


@pytest.fixture
def in_pod(monkeypatch, kube, tmp_path) -> KmockApi:
    """A pipeline task's environment: in a pod, the cluster reachable (kubeconfig to kmock:
    the emulator cannot mint a service-account token)."""
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBECONFIG", str(kube.kubeconfig(tmp_path / "kubeconfig")))
    monkeypatch.delenv("KFKIT_DEPLOY_TARGET", raising=False)
    return kube


def _request(version: str) -> DeploymentRequest:
    return DeploymentRequest(
        MODEL, version, f"s3://models/{MODEL}/{version}", "0" * 64, traffic=20, namespace=NAMESPACE
    )


def _predictors(kube: KmockApi) -> list[tuple[str, int]]:
    found = kube.api().get_namespaced_custom_object(
        seldon.GROUP, seldon.VERSION, NAMESPACE, seldon.PLURAL, seldon.resource_name(MODEL)
    )
    return [(p["name"], p["traffic"]) for p in found["spec"]["predictors"]]


def test_auto_outside_a_pod_is_the_local_record_even_with_a_kubeconfig(monkeypatch, kube, tmp_path):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(kube.kubeconfig(tmp_path / "kubeconfig")))
    assert deploy.resolve_strategy("auto", _request("1")) == ("local", "not in a pod")


def test_auto_in_a_pod_replaces_first_then_canaries(in_pod):
    assert deploy.resolve_strategy("auto", _request("1"))[0] == "replace"
    said: list[str] = []
    with OperatorStandIn(in_pod.api()):
        first = deploy.deploy(_request("1"), "auto", timeout=30, progress=said.append)
        assert first["deploy_target"] == "seldon" and first["deploy_strategy"] == "replace"
        assert _predictors(in_pod) == [("v1", 100)]
        second = deploy.deploy(_request("2"), "auto", timeout=30, progress=said.append)
    assert second["deploy_strategy"] == "canary"
    assert sorted(_predictors(in_pod)) == [("v1", 80), ("v2", 20)]
    assert any("deploy_strategy auto: replace (penguins has no deployment yet)" in line for line in said)
    assert any("deploy_strategy auto: canary" in line for line in said)


def test_local_in_a_pod_is_an_error_not_a_file_in_the_pod(in_pod):
    with pytest.raises(KfkitError, match="'local', but this task runs in a pod") as info:
        deploy.deploy(_request("1"), "local", timeout=5)
    assert "\n" not in str(info.value)


def test_a_rollout_in_a_pod_without_a_cluster_is_an_error_not_a_local_record(monkeypatch, tmp_path):
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))  # and no service-account token here
    monkeypatch.delenv("KFKIT_DEPLOY_TARGET", raising=False)
    monkeypatch.setenv("KFKIT_HOME", str(tmp_path / "home"))
    with pytest.raises(KfkitError, match="runs in a pod but no Kubernetes cluster configured"):
        deploy.deploy(_request("1"), "replace", timeout=5)
    assert not (tmp_path / "home").exists()


def test_the_pipeline_and_push_take_auto():
    spec = next(yaml.safe_load_all((REPO / "pipelines/compiled/training.yaml").read_text()))
    assert spec["root"]["inputDefinitions"]["parameters"]["deploy_strategy"]["defaultValue"] == "auto"
    from kfkit.components.push.executor import check

    check({"deploy_strategy": "auto"})  # accepted before any task runs
    with pytest.raises(KfkitError, match="'auto', 'local', 'none', 'replace', 'canary', 'shadow'"):
        check({"deploy_strategy": "rolling"})
