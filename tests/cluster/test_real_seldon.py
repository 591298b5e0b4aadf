"""Push's first rollout against the real Seldon Core v1 operator (its controller and validating
webhook, v1.19.0): kfkit's own client (kfkit.deploy.kube.SeldonTarget) with the pipeline runner's
token creates the SeldonDeployment in the dev overlay's serving namespace; the operator makes the
Deployments and Services with its own names, the pods pass the namespace's PodSecurity and run on
KWOK's node, and the status the operator writes is what kfkit waits for."""

from __future__ import annotations

import json

import pytest

from kfkit import names
from kfkit.deploy import seldon
from kfkit.deploy.kube import SeldonTarget, custom_objects_api
from kfkit.deploy.request import DeploymentRequest

from .controlplane import FAKE_NODE

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


@pytest.fixture(scope="module")
def push_target(control_plane, seldon_operator, dev_overlay) -> SeldonTarget:
    pipelines_ns, serving_ns = dev_overlay
    token = control_plane.token_kubeconfig(pipelines_ns, names.PIPELINE_RUNNER_SERVICE_ACCOUNT)
    return SeldonTarget(
        api=custom_objects_api(f"kubeconfig:{token}"), namespace=serving_ns, poll_interval=0.5
    )


def get_json(control_plane, *args: str) -> dict:
    return json.loads(control_plane.kubectl("get", *args, "-o", "json").stdout)


def test_real_first_rollout_becomes_available_through_the_operator(control_plane, push_target):
    serving_ns = push_target.namespace
    status = push_target.apply(DeploymentRequest("penguins", "1", "s3://models/penguins/1"), timeout=120)
    assert status["state"] == "Available", status

    sdep = get_json(control_plane, "-n", serving_ns, "seldondeployment", seldon.resource_name("penguins"))
    assert sdep["status"]["state"] == "Available"
    (predictor,) = sdep["spec"]["predictors"]
    expected = seldon.operator_deployment_names(sdep["metadata"]["name"], predictor)
    deployments = {
        d["metadata"]["name"]: d for d in get_json(control_plane, "-n", serving_ns, "deployments")["items"]
    }
    # kfkit's idea of the operator's names holds for the real operator.
    made = [name for name in expected if name in deployments]
    assert made, f"operator made {sorted(deployments)}, kfkit expects one of {expected}"
    deployment = deployments[made[0]]
    owner = deployment["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"]) == ("SeldonDeployment", sdep["metadata"]["name"])
    assert sdep["status"]["deploymentStatus"][made[0]]["availableReplicas"] >= 1

    pods = get_json(control_plane, "-n", serving_ns, "pods")["items"]
    assert pods and all(
        p["spec"]["nodeName"] == FAKE_NODE and p["status"]["phase"] == "Running" for p in pods
    )
    containers = {c["name"] for c in pods[0]["spec"]["containers"]}
    assert "seldon-container-engine" in containers  # the executor the operator adds

    services = {s["metadata"]["name"] for s in get_json(control_plane, "-n", serving_ns, "services")["items"]}
    assert f"{sdep['metadata']['name']}-{predictor['name']}" in services


def test_real_operator_webhook_refuses_a_single_predictor_with_partial_traffic(control_plane, push_target):
    """Seldon's validating webhook, called by the API server (registered by URL, as upstream's
    install registers it by Service): the checks kfkit's own plan mirrors are enforced for real."""
    from kubernetes.client.exceptions import ApiException

    manifest = seldon.seldon_deployment(
        "webhook-probe", "1", "s3://models/webhook-probe/1", push_target.namespace
    )
    manifest["spec"]["predictors"][0]["traffic"] = 50
    with pytest.raises(ApiException) as refused:
        push_target.api.create_namespaced_custom_object(
            seldon.GROUP, seldon.VERSION, push_target.namespace, seldon.PLURAL, manifest
        )
    assert "admission webhook" in refused.value.body and "Traffic must sum be 100" in refused.value.body
