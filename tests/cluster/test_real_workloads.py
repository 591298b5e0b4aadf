"""The plumbing push's rollouts will stand on, through the real controllers: a Deployment becomes
Available (kube-controller-manager makes its ReplicaSet and pods, kube-scheduler binds them to
KWOK's node, KWOK reports them Running and Ready); one asking more than the node has never does;
and the serving namespace's Pod Security admission refuses a pod mounting the host's files."""

from __future__ import annotations

import json
import time

import pytest

from .controlplane import FAKE_NODE

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def deployment(name: str, namespace: str, replicas: int, cpu: str = "100m") -> dict:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {
                            "name": "main",
                            "image": "example.invalid/never-pulled:1",
                            "resources": {"requests": {"cpu": cpu}},
                        }
                    ]
                },
            },
        },
    }


def get_json(control_plane, *args: str) -> dict:
    return json.loads(control_plane.kubectl("get", *args, "-o", "json").stdout)


def test_real_deployment_becomes_available_on_the_kwok_node(control_plane):
    control_plane.ensure_namespace("plumbing")
    control_plane.apply_objects([deployment("web", "plumbing", replicas=2)])
    control_plane.kubectl(
        "wait", "-n", "plumbing", "--for=condition=Available", "--timeout=60s", "deployment/web"
    )

    status = get_json(control_plane, "-n", "plumbing", "deployment", "web")["status"]
    assert status["availableReplicas"] == 2 and status["readyReplicas"] == 2
    pods = get_json(control_plane, "-n", "plumbing", "pods", "-l", "app=web")["items"]
    assert len(pods) == 2
    for pod in pods:
        assert pod["spec"]["nodeName"] == FAKE_NODE  # bound by the scheduler
        assert pod["status"]["phase"] == "Running" and pod["status"]["podIP"]  # played by KWOK
        owner = pod["metadata"]["ownerReferences"][0]
        assert owner["kind"] == "ReplicaSet" and owner["name"].startswith("web-")  # made by kcm

    # Scaling down deletes a pod for real (KWOK's pod-delete Stage releases it).
    control_plane.kubectl("scale", "-n", "plumbing", "deployment/web", "--replicas=1")
    deadline = time.monotonic() + 60
    while len(get_json(control_plane, "-n", "plumbing", "pods", "-l", "app=web")["items"]) != 1:
        assert time.monotonic() < deadline, "the scaled-down pod was never deleted"
        time.sleep(0.5)


def test_real_deployment_bigger_than_the_node_never_becomes_available(control_plane):
    """How a rollout that never becomes Available will be provoked for push: the scheduler leaves
    the pod Pending (the node has 16 CPUs)."""
    control_plane.ensure_namespace("plumbing")
    control_plane.apply_objects([deployment("too-big", "plumbing", replicas=1, cpu="64")])
    deadline = time.monotonic() + 60
    while True:
        pods = get_json(control_plane, "-n", "plumbing", "pods", "-l", "app=too-big")["items"]
        conditions = {c["type"]: c for c in (pods[0]["status"].get("conditions") or [])} if pods else {}
        if conditions.get("PodScheduled", {}).get("reason") == "Unschedulable":
            break
        assert time.monotonic() < deadline, f"never reported Unschedulable: {pods}"
        time.sleep(0.5)
    assert pods[0]["status"]["phase"] == "Pending" and not pods[0]["spec"].get("nodeName")
    status = get_json(control_plane, "-n", "plumbing", "deployment", "too-big")["status"]
    assert not status.get("availableReplicas")


def test_real_serving_namespace_enforces_pod_security_baseline(control_plane, dev_overlay):
    _, serving_ns = dev_overlay
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "privileged", "namespace": serving_ns},
        "spec": {
            "containers": [
                {"name": "main", "image": "busybox", "volumeMounts": [{"name": "host", "mountPath": "/host"}]}
            ],
            "volumes": [{"name": "host", "hostPath": {"path": "/"}}],  # baseline forbids hostPath
        },
    }
    proc = control_plane.kubectl("create", "-f", "-", input=json.dumps(pod), check=False)
    assert proc.returncode != 0 and 'violates PodSecurity "baseline' in proc.stderr, proc.stderr
