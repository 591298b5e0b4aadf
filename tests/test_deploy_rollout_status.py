"""A rollout is done when the operator's Deployments are, as ``kubectl rollout status`` says
(issue 16's resize defect): Seldon v1.19's operator writes no ``status.observedGeneration``, so
right after kfkit changes an existing predictor in place (same version, another size) the
SeldonDeployment's status can still say Available for the previous spec.

The fast half: ``deployment_rollout`` on plain Deployment objects, and rollouts on kmock's API
with ``OperatorStandIn`` (tests/test_deploy.py) playing the operator and the Deployment
controller. The real operator, scheduler and KWOK do the same in
tests/cluster/test_real_deploy.py."""

from __future__ import annotations

import copy
import dataclasses
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import test_deploy
from kubernetes import client
from test_deploy import MODEL, NAMESPACE, KmockApi, OperatorStandIn

from kfkit.deploy import seldon
from kfkit.deploy.kube import ROLLED_OUT, STALLED, WAITING, SeldonTarget, deployment_rollout
from kfkit.deploy.request import DeploymentRequest
from kfkit.errors import KfkitError

# test_deploy's fixtures: the kmock API server, and a SeldonTarget on it.
kube = test_deploy.kube
target = test_deploy.target

DEPLOYMENT = f"{MODEL}-v1-0-model"  # Seldon's name for v1's Deployment


def _rollout(version: str = "1", **kwargs: Any) -> DeploymentRequest:
    return DeploymentRequest(MODEL, version, f"s3://models/{MODEL}/{version}", "0" * 64, **kwargs)


def _predictor(replicas: int = 2, resources: dict[str, str] | None = None) -> dict[str, Any]:
    return seldon.predictor(MODEL, "1", f"s3://models/{MODEL}/1", replicas=replicas, resources=resources)


def _rolled_out_deployment(predictor: dict[str, Any]) -> dict[str, Any]:
    """A Deployment as the operator writes it for ``predictor`` and the controller finishes it."""
    replicas = predictor["replicas"]
    container = copy.deepcopy(predictor["componentSpecs"][0]["spec"]["containers"][0])
    return {
        "metadata": {"name": DEPLOYMENT, "generation": 3},
        "spec": {
            "replicas": replicas,
            "template": {
                "spec": {
                    "initContainers": [
                        {"name": "init", "args": [predictor["graph"]["modelUri"], "/mnt/models"]}
                    ],
                    "containers": [container, {"name": "seldon-container-engine", "image": "executor"}],
                }
            },
        },
        "status": {
            "observedGeneration": 3,
            "replicas": replicas,
            "updatedReplicas": replicas,
            "availableReplicas": replicas,
        },
    }


def _changed(deployment: dict[str, Any], change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    changed = copy.deepcopy(deployment)
    change(changed)
    return changed


def _model_container(deployment: dict[str, Any]) -> dict[str, Any]:
    return deployment["spec"]["template"]["spec"]["containers"][0]


SIZED = _predictor(2, {"cpu_request": "500m", "memory_limit": "1Gi"})
DONE = _rolled_out_deployment(SIZED)


@pytest.mark.parametrize(
    ("deployment", "state", "why"),
    [
        (DONE, ROLLED_OUT, "2 of 2 updated replicas available"),
        # The same quantities written another way are the same request.
        (
            _changed(
                DONE,
                lambda d: _model_container(d).update(
                    resources={"requests": {"cpu": "0.5"}, "limits": {"memory": "1024Mi"}}
                ),
            ),
            ROLLED_OUT,
            "2 of 2",
        ),  # fmt: skip
        (None, WAITING, "not created by the operator yet"),
        # Not rewritten by the operator yet: fully rolled out, but on the previous spec.
        (
            _changed(DONE, lambda d: d["spec"].update(replicas=1)),
            WAITING,
            "not yet rewritten by the operator (replicas 1, wants 2)",
        ),
        (
            _changed(DONE, lambda d: _model_container(d).pop("resources")),
            WAITING,
            "container model resources {}, wants {'requests': {'cpu': '500m'}, 'limits': {'memory': '1Gi'}}",
        ),
        (
            _changed(DONE, lambda d: _model_container(d).update(image="kfkit-serving:old")),
            WAITING,
            f"container model image kfkit-serving:old, wants {seldon.SERVING_IMAGE}",
        ),
        (
            _changed(
                DONE, lambda d: d["spec"]["template"]["spec"]["initContainers"][0].update(args=["s3://x/0"])
            ),
            WAITING,
            f"does not download s3://models/{MODEL}/1",
        ),
        # Rewritten; what `kubectl rollout status` waits for, in its order.
        (
            _changed(DONE, lambda d: d["metadata"].update(generation=4)),
            WAITING,
            "generation 4 not yet observed by the Deployment controller",
        ),
        (
            _changed(DONE, lambda d: d["status"].update(updatedReplicas=1, availableReplicas=1)),
            WAITING,
            "1 of 2 replicas updated",
        ),
        (
            _changed(DONE, lambda d: d["status"].update(replicas=3)),
            WAITING,
            "1 old replica pending termination",
        ),
        (
            _changed(DONE, lambda d: d["status"].update(availableReplicas=1)),
            WAITING,
            "1 of 2 updated replicas available",
        ),
        (
            _changed(
                DONE,
                lambda d: d["status"].update(
                    availableReplicas=1,
                    conditions=[
                        {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"},
                        {
                            "type": "Progressing",
                            "status": "False",
                            "reason": "ProgressDeadlineExceeded",
                            "message": 'ReplicaSet "x" has timed out progressing.',
                        },
                    ],
                ),
            ),
            STALLED,
            'ProgressDeadlineExceeded: ReplicaSet "x" has timed out progressing.',
        ),  # fmt: skip
    ],
    ids=[
        "rolled-out",
        "same-quantities",
        "absent",
        "old-replicas",
        "old-resources",
        "old-image",
        "old-model-uri",
        "generation-unobserved",
        "not-all-updated",
        "old-pod-left",
        "not-all-available",
        "deadline-exceeded",
    ],
)
def test_deployment_rollout_is_kubectl_rollout_status_on_the_spec_kfkit_wrote(
    deployment: dict[str, Any] | None, state: str, why: str
):
    found_state, found_why = deployment_rollout(deployment, SIZED)
    assert found_state == state
    assert why in found_why


def test_shrinking_back_waits_for_the_resources_to_go():
    """A rollback to a predictor without resources is not done while the Deployment still asks
    for the resized ones (the check compares all of them, not only those kfkit sets now)."""
    state, why = deployment_rollout(DONE, _predictor(2))
    assert (state, why.split(" (")[0]) == (WAITING, "not yet rewritten by the operator")


# ------------------------------------------------------------------ on kmock's API


def _deployment(kube: KmockApi) -> dict[str, Any]:
    apps = client.AppsV1Api(kube.api().api_client)
    return json.loads(apps.read_namespaced_deployment(DEPLOYMENT, NAMESPACE, _preload_content=False).data)


def _until(check: Callable[[], Any], what: str, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.02)
    return value


def test_resize_in_place_waits_for_the_deployment_on_kmock_api(kube: KmockApi, target: SeldonTarget):
    """v1 again with 2 replicas: the SeldonDeployment's status keeps saying Available (for the
    previous spec) while the rewritten Deployment has 1 of 2 replicas available; kfkit reports
    Available only once the Deployment has both."""
    operator = OperatorStandIn(kube.api(), held={"v1"})
    lines: list[str] = []
    target.progress = lines.append
    with operator:
        target.apply(_rollout("1"), timeout=20)
        done: dict[str, Any] = {}
        resize = threading.Thread(
            target=lambda: done.update(state=target.apply(_rollout("1", replicas=2), timeout=60)), daemon=True
        )
        resize.start()
        waiting = f"deploy: waiting for {DEPLOYMENT}: 1 of 2 updated replicas available"
        _until(lambda: waiting in lines, f"the line {waiting!r} in {lines}")
        assert resize.is_alive() and not done, "reported Available while 1 of 2 replicas is"
        obj = test_deploy._read(kube)
        assert obj["spec"]["predictors"][0]["replicas"] == 2
        assert obj["status"]["state"] == "Available"  # what the old check trusted
        assert obj["status"]["deploymentStatus"] == {DEPLOYMENT: {"replicas": 1, "availableReplicas": 1}}

        operator.release()
        resize.join(30)
        assert not resize.is_alive()
        deployment = _deployment(kube)
    assert done["state"]["state"] == "Available"
    assert deployment["spec"]["replicas"] == 2
    assert (deployment["status"]["updatedReplicas"], deployment["status"]["availableReplicas"]) == (2, 2)
    assert lines[-1] == f"deploy: {MODEL} Available: v1 100%"


def test_resize_that_never_rolls_out_is_rolled_back_on_kmock_api(kube: KmockApi, target: SeldonTarget):
    with OperatorStandIn(kube.api(), held={"v1"}):
        target.apply(_rollout("1"), timeout=20)
        before = test_deploy._read(kube)
        with pytest.raises(KfkitError) as info:
            target.apply(_rollout("1", replicas=2, resources={"cpu_request": "2"}), timeout=3)
        message = str(info.value)
        assert "\n" not in message
        assert message == (
            f"replace of SeldonDeployment {MODEL} (v1 100%) failed: not Available after 3 s "
            f"({DEPLOYMENT}: 1 of 2 updated replicas available); rolled back to v1 100%"
        )
        after = test_deploy._read(kube)
        assert after["spec"]["predictors"] == before["spec"]["predictors"]
        # The stand-in operator rewrites the Deployment back to the previous size.
        _until(lambda: _deployment(kube)["spec"]["replicas"] == 1, "Deployment back to 1 replica")
        assert "resources" not in _model_container(_deployment(kube))


def test_deployment_past_its_progress_deadline_fails_the_rollout_on_kmock_api(
    kube: KmockApi, target: SeldonTarget
):
    with OperatorStandIn(kube.api(), stalled={"v1"}):
        target.apply(_rollout("1"), timeout=20)
        with pytest.raises(KfkitError) as info:
            target.apply(dataclasses.replace(_rollout("1"), replicas=3), timeout=60)
    message = str(info.value)
    assert "\n" not in message and "not Available after" not in message  # did not wait for the timeout
    assert message == (
        f"replace of SeldonDeployment {MODEL} (v1 100%) failed: Deployment {DEPLOYMENT}: "
        f'ProgressDeadlineExceeded: ReplicaSet "{DEPLOYMENT}-5d8f" has timed out progressing.; '
        "rolled back to v1 100%"
    )
    assert test_deploy._read(kube)["spec"]["predictors"][0]["replicas"] == 1


def test_seldon_status_still_listing_a_removed_predictors_deployment_is_not_ready():
    """After a promote or a replace the operator deletes the Deployment of the predictor that
    went, and drops it from its status, only once it is done with the new spec: until then its
    status (which may say Available) describes the previous spec."""
    promoted = seldon.seldon_deployment(MODEL, "2", f"s3://models/{MODEL}/2")
    one_replica = {"replicas": 1, "availableReplicas": 1}
    promoted["status"] = {
        "state": "Available",
        "deploymentStatus": {f"{MODEL}-v1-0-model": one_replica, f"{MODEL}-v2-0-model": one_replica},
    }
    assert SeldonTarget.ready(promoted) == (
        False,
        f"state Available, Deployment {MODEL}-v1-0-model of a removed predictor not yet deleted",
    )
    del promoted["status"]["deploymentStatus"][f"{MODEL}-v1-0-model"]
    assert SeldonTarget.ready(promoted) == (True, "Available")
