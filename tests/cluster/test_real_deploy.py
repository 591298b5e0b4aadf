"""push's and `kfkit deploy`'s rollouts against the real API server and the real Seldon Core v1
operator (v1.19.0): the flows tests/test_deploy.py and tests/test_deploy_strategy.py test fast on
kmock with a thread playing the operator. Here kfkit's own code (``kfkit.deploy.deploy`` as push
calls it, ``SeldonTarget``, the ``kfkit deploy`` CLI) acts with the pipeline runner's
TokenRequest token in the dev overlay's serving namespace; the operator makes the Deployments,
kcm/scheduler/KWOK make their pods Running (or leave them Pending when they ask for more than
the node has), and the operator writes the status kfkit waits for.

Each test uses its own model name, so the SeldonDeployments of one test never touch another's."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import run_kfkit

from kfkit import deploy, names
from kfkit.deploy import seldon
from kfkit.deploy.kube import SeldonTarget, custom_objects_api
from kfkit.deploy.request import DeploymentRequest
from kfkit.errors import KfkitError
from kfkit.images import SERVING_IMAGE

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

ROLLOUT_TIMEOUT = 60  # KWOK readies a pod in ~1 s; this only bounds a broken run
GONE_TIMEOUT = 60


@pytest.fixture(scope="module")
def runner_kubeconfig(control_plane, seldon_operator, dev_overlay) -> Path:
    """The pipeline runner's kubeconfig (TokenRequest token): what push runs with in a pod."""
    pipelines_ns, _ = dev_overlay
    return control_plane.token_kubeconfig(pipelines_ns, names.PIPELINE_RUNNER_SERVICE_ACCOUNT)


@pytest.fixture
def serving_ns(dev_overlay) -> str:
    return dev_overlay[1]


@pytest.fixture
def target(runner_kubeconfig, serving_ns) -> SeldonTarget:
    return SeldonTarget(
        api=custom_objects_api(f"kubeconfig:{runner_kubeconfig}"), namespace=serving_ns, poll_interval=0.3
    )


@pytest.fixture
def model(request, control_plane, serving_ns) -> Iterator[str]:
    """A model name of this test's own; its SeldonDeployment is deleted afterwards."""
    name = "rd-" + request.node.name.removeprefix("test_real_").replace("_", "-")[:30].rstrip("-")
    yield name
    control_plane.kubectl(
        "delete", "-n", serving_ns, "seldondeployment", name, "--ignore-not-found", "--wait=false"
    )


@pytest.fixture
def in_pod(monkeypatch, runner_kubeconfig) -> None:
    """push's environment in a pipeline task: in a pod, the runner's credentials."""
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBECONFIG", str(runner_kubeconfig))
    monkeypatch.delenv("KFKIT_DEPLOY_TARGET", raising=False)


def _request(model: str, version: str, namespace: str, **kwargs: Any) -> DeploymentRequest:
    return DeploymentRequest(model, version, f"s3://models/{model}/{version}", namespace=namespace, **kwargs)


def get_json(control_plane, *args: str) -> dict:
    return json.loads(control_plane.kubectl("get", *args, "-o", "json").stdout)


def sdep(control_plane, namespace: str, model: str) -> dict:
    return get_json(control_plane, "-n", namespace, "seldondeployment", seldon.resource_name(model))


def model_deployments(control_plane, namespace: str, model: str) -> dict[str, dict]:
    """The Deployments the operator made for ``model``'s SeldonDeployment (by owner)."""
    items = get_json(control_plane, "-n", namespace, "deployments")["items"]
    return {
        d["metadata"]["name"]: d
        for d in items
        if any(
            (o["kind"], o["name"]) == ("SeldonDeployment", seldon.resource_name(model))
            for o in d["metadata"].get("ownerReferences", [])
        )
    }


def eventually(check: Callable[[], Any], timeout: float = GONE_TIMEOUT, what: str = "") -> Any:
    """``check()``'s first truthy value; the operator and kcm act asynchronously."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            assert value, f"not within {timeout} s: {what}"
            return value
        time.sleep(0.3)


def expected_deployment(obj: dict, predictor_name: str) -> str:
    (pred,) = [p for p in obj["spec"]["predictors"] if p["name"] == predictor_name]
    (name,) = seldon.operator_deployment_names(obj["metadata"]["name"], pred)
    return name


def assert_serves(deployment: dict, model: str, version: str, replicas: int = 1) -> None:
    """A Deployment of the operator running kfkit's server for ``model``'s ``version``."""
    spec = deployment["spec"]
    assert spec["replicas"] == replicas
    assert deployment["status"].get("availableReplicas") == replicas, deployment["status"]
    pod = spec["template"]["spec"]
    model_container = next(c for c in pod["containers"] if c["name"] == "model")
    assert model_container["image"] == SERVING_IMAGE
    # The storage initializer the operator adds downloads exactly this version.
    init_args = [a for c in pod.get("initContainers", []) for a in c.get("args", [])]
    assert f"s3://models/{model}/{version}" in init_args, init_args
    assert spec["template"]["metadata"]["labels"][seldon.VERSION_LABEL] == version


def operator_status(obj: dict) -> tuple[str, dict[str, int]]:
    status = obj.get("status") or {}
    return status.get("state", ""), {
        name: int(s.get("availableReplicas") or 0)
        for name, s in (status.get("deploymentStatus") or {}).items()
    }


def kfkit_cli(args: list[str], kubeconfig: Path, tmp_path: Path, store_env) -> subprocess.CompletedProcess:
    env = dict(store_env, KUBECONFIG=str(kubeconfig), KFKIT_HOME=str(tmp_path / "home"))
    env.pop("KFKIT_DEPLOY_TARGET", None)
    return run_kfkit(["deploy", *args], env, timeout=ROLLOUT_TIMEOUT + 30)


# ------------------------------------------------------------------ replace, rollback, never Available


def test_real_push_replace_v1_then_v2(
    control_plane, serving_ns, model, in_pod, runner_kubeconfig, tmp_path, store_env
):
    said: list[str] = []
    first = deploy.deploy(_request(model, "1", serving_ns), "replace", ROLLOUT_TIMEOUT, said.append)
    assert (first["deploy_target"], first["deploy_strategy"], first["deploy_state"]) == (
        "seldon",
        "replace",
        "Available",
    )
    obj = sdep(control_plane, serving_ns, model)
    v1 = expected_deployment(obj, "v1")
    assert operator_status(obj) == ("Available", {v1: 1})
    assert_serves(model_deployments(control_plane, serving_ns, model)[v1], model, "1")

    second = deploy.deploy(_request(model, "2", serving_ns), "replace", ROLLOUT_TIMEOUT, said.append)
    assert second["deploy_state"] == "Available"
    obj = sdep(control_plane, serving_ns, model)
    v2 = expected_deployment(obj, "v2")
    assert [p["name"] for p in obj["spec"]["predictors"]] == ["v2"]
    # The operator removes the replaced version's Deployment once the new one serves.
    made = eventually(
        lambda: (d := model_deployments(control_plane, serving_ns, model)) and set(d) == {v2} and d,
        what=f"the operator leaves only {v2}",
    )
    assert_serves(made[v2], model, "2")
    assert eventually(
        lambda: operator_status(sdep(control_plane, serving_ns, model)) == ("Available", {v2: 1})
    )
    assert any("waiting for Available" in line for line in said)

    status = kfkit_cli(
        ["status", "--model", model, "--namespace", serving_ns, "--json"],
        runner_kubeconfig,
        tmp_path,
        store_env,
    )
    assert status.returncode == 0, status.stderr
    shown = json.loads(status.stdout)
    assert shown["state"] == "Available" and shown["target"] == "seldon"
    assert [(p["name"], p["version"], p["traffic"]) for p in shown["predictors"]] == [("v2", "2", 100)]
    history = kfkit_cli(
        ["history", "--model", model, "--namespace", serving_ns, "--json"],
        runner_kubeconfig,
        tmp_path,
        store_env,
    )
    assert history.returncode == 0, history.stderr
    entries = json.loads(history.stdout)["history"]
    assert [(e["change"], e["predictors"]) for e in entries] == [("replace v2", "v1 100%")]


def test_real_cli_rollback_restores_the_previous_version(
    control_plane, serving_ns, model, target, runner_kubeconfig, tmp_path, store_env
):
    target.apply(_request(model, "1", serving_ns), ROLLOUT_TIMEOUT)
    first = sdep(control_plane, serving_ns, model)
    target.apply(_request(model, "2", serving_ns), ROLLOUT_TIMEOUT)

    proc = kfkit_cli(
        [
            "rollback",
            "--model",
            model,
            "--namespace",
            serving_ns,
            "--json",
            "--timeout",
            str(ROLLOUT_TIMEOUT),
        ],
        runner_kubeconfig,
        tmp_path,
        store_env,
    )
    assert proc.returncode == 0, proc.stderr
    shown = json.loads(proc.stdout)
    assert shown["state"] == "Available" and shown["history"] == 0
    assert [(p["name"], p["traffic"]) for p in shown["predictors"]] == [("v1", 100)]

    obj = sdep(control_plane, serving_ns, model)
    assert obj["spec"]["predictors"] == first["spec"]["predictors"]
    assert seldon.history(obj) == []
    v1 = expected_deployment(obj, "v1")
    made = eventually(
        lambda: (d := model_deployments(control_plane, serving_ns, model)) and set(d) == {v1} and d,
        what=f"the operator leaves only {v1}",
    )
    assert_serves(made[v1], model, "1")

    again = kfkit_cli(
        ["rollback", "--model", model, "--namespace", serving_ns], runner_kubeconfig, tmp_path, store_env
    )
    assert again.returncode == 1 and "Traceback" not in again.stderr
    assert "has no previous predictors to roll back to" in again.stderr.strip().splitlines()[-1]


def test_real_rollout_that_never_becomes_available_is_rolled_back(control_plane, serving_ns, model, target):
    """v2 asks for 64 CPUs, more than KWOK's node has: its pod stays Pending, the operator never
    reports it available, and kfkit restores v1 after the timeout."""
    target.apply(_request(model, "1", serving_ns), ROLLOUT_TIMEOUT)
    before = sdep(control_plane, serving_ns, model)
    v1 = expected_deployment(before, "v1")
    too_big = _request(model, "2", serving_ns, resources={"cpu_request": "64"})
    with pytest.raises(KfkitError) as info:
        target.apply(too_big, timeout=8)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(
        f"replace of SeldonDeployment {model} (v2 100%) failed: not Available after 8 s"
    )
    assert "predictor v2 not available yet" in message  # the operator's status, not a guess
    assert message.endswith("rolled back to v1 100%")

    after = sdep(control_plane, serving_ns, model)
    assert after["spec"]["predictors"] == before["spec"]["predictors"]
    assert seldon.history(after) == []
    # The operator tears down the version that never served and v1 serves throughout.
    made = eventually(
        lambda: (d := model_deployments(control_plane, serving_ns, model)) and set(d) == {v1} and d,
        what=f"the operator leaves only {v1}",
    )
    assert_serves(made[v1], model, "1")
    assert eventually(
        lambda: operator_status(sdep(control_plane, serving_ns, model)) == ("Available", {v1: 1})
    )


def test_real_first_rollout_that_never_becomes_available_is_deleted(control_plane, serving_ns, model, target):
    with pytest.raises(KfkitError, match=r"deleted it \(there was no previous deployment\)"):
        target.apply(_request(model, "1", serving_ns, resources={"cpu_request": "64"}), timeout=5)
    assert target.get(model) is None
    eventually(
        lambda: not model_deployments(control_plane, serving_ns, model), what="Deployments garbage-collected"
    )


# ------------------------------------------------------------------ resize in place (same version)


def rolled_out(deployment: dict) -> tuple[int, int, int, int]:
    """(spec.replicas, status.replicas, updatedReplicas, availableReplicas) of a Deployment."""
    status = deployment.get("status") or {}
    return (
        deployment["spec"]["replicas"],
        int(status.get("replicas") or 0),
        int(status.get("updatedReplicas") or 0),
        int(status.get("availableReplicas") or 0),
    )


def test_real_resize_that_cannot_schedule_is_rolled_back_to_the_previous_size(
    control_plane, serving_ns, model, target
):
    """v1 again with 2 replicas of 10 CPUs: the operator rewrites v1's own Deployment in place,
    one new pod fits KWOK's 16-CPU node and the second stays Pending. Seldon's status said
    Available for the previous spec right after the write (it carries no observedGeneration);
    kfkit waits on the Deployment instead, times out and restores the previous size."""
    target.apply(_request(model, "1", serving_ns), ROLLOUT_TIMEOUT)
    before = sdep(control_plane, serving_ns, model)
    v1 = expected_deployment(before, "v1")
    lines: list[str] = []
    target.progress = lines.append
    too_big = _request(model, "1", serving_ns, replicas=2, resources={"cpu_request": "10"})
    with pytest.raises(KfkitError) as info:
        target.apply(too_big, timeout=10)
    message = str(info.value)
    assert "\n" not in message
    # The last reason is the operator's (state Creating once it has rewritten the Deployment) or
    # the Deployment's own ("1 old replica pending termination"), whichever was read last.
    assert message.startswith(
        f"replace of SeldonDeployment {model} (v1 100%) failed: not Available after 10 s ("
    ), message
    assert message.endswith("; rolled back to v1 100%")
    assert not any(line.startswith(f"deploy: {model} Available") for line in lines), lines
    # The second pod of the resized Deployment really could not be scheduled (the scheduler says so).
    unschedulable = eventually(
        lambda: [
            e["message"]
            for e in get_json(control_plane, "-n", serving_ns, "events")["items"]
            if e.get("reason") == "FailedScheduling" and e["involvedObject"]["name"].startswith(f"{v1}-")
        ],
        what=f"a FailedScheduling event for a pod of {v1}",
    )
    assert any("Insufficient cpu" in m for m in unschedulable), unschedulable

    after = sdep(control_plane, serving_ns, model)
    assert after["spec"]["predictors"] == before["spec"]["predictors"]
    assert seldon.history(after) == []
    # The operator rewrites v1's Deployment back: 1 replica, no CPU request, Available.
    made = eventually(
        lambda: (d := model_deployments(control_plane, serving_ns, model)) and set(d) == {v1}
        and rolled_out(d[v1]) == (1, 1, 1, 1) and d,
        what=f"{v1} back to one available replica",
    )  # fmt: skip
    assert_serves(made[v1], model, "1")
    model_container = next(
        c for c in made[v1]["spec"]["template"]["spec"]["containers"] if c["name"] == "model"
    )
    assert "resources" not in model_container or not model_container["resources"].get("requests")
    assert eventually(
        lambda: operator_status(sdep(control_plane, serving_ns, model)) == ("Available", {v1: 1})
    )


def test_real_progress_deadline_exceeded_fails_the_wait_before_its_timeout(
    control_plane, serving_ns, model, target
):
    """The Deployment controller's own verdict on a stuck rollout, as ``kubectl rollout status``
    reads it: a predictor with ``progressDeadlineSeconds`` (Seldon copies it onto its Deployment)
    whose new pod cannot be scheduled is marked Progressing=False, ProgressDeadlineExceeded, by
    kube-controller-manager, and kfkit's wait fails on that at once instead of waiting out its
    own timeout (tested on kmock with a condition written by hand; this is the real one)."""
    target.apply(_request(model, "1", serving_ns), ROLLOUT_TIMEOUT)
    current = sdep(control_plane, serving_ns, model)
    v1 = expected_deployment(current, "v1")
    containers = current["spec"]["predictors"][0]["componentSpecs"][0]["spec"]["containers"]
    index = next(i for i, c in enumerate(containers) if c["name"] == "model")
    patch = [
        {"op": "add", "path": "/spec/predictors/0/progressDeadlineSeconds", "value": 2},
        {
            "op": "add",
            "path": f"/spec/predictors/0/componentSpecs/0/spec/containers/{index}/resources",
            "value": {"requests": {"cpu": "64"}},
        },
    ]
    control_plane.kubectl(
        "patch", "-n", serving_ns, "seldondeployment", seldon.resource_name(model),
        "--type", "json", "-p", json.dumps(patch),
    )  # fmt: skip
    eventually(
        lambda: (
            model_deployments(control_plane, serving_ns, model)[v1]["spec"].get("progressDeadlineSeconds")
            == 2
        ),
        what=f"the operator copies progressDeadlineSeconds onto {v1}",
    )
    started = time.monotonic()
    ok, reason, _ = target.wait(model, timeout=ROLLOUT_TIMEOUT)
    waited = time.monotonic() - started
    assert not ok
    assert reason.startswith(f"Deployment {v1}") and "ProgressDeadlineExceeded: ReplicaSet" in reason, reason
    assert reason.endswith("has timed out progressing."), reason
    assert waited < ROLLOUT_TIMEOUT / 2, f"failed after {waited:.0f} s: by the timeout, not the condition"
    (condition,) = [
        c
        for c in model_deployments(control_plane, serving_ns, model)[v1]["status"]["conditions"]
        if c["type"] == "Progressing"
    ]
    assert (condition["status"], condition["reason"]) == ("False", "ProgressDeadlineExceeded")


def test_real_resize_is_available_only_once_both_replicas_are(control_plane, serving_ns, model, target):
    """v1 again with 2 replicas (they fit): Available is reported only when v1's Deployment,
    rewritten by the operator, has both replicas updated and available and no old pod left;
    the Deployment is read at the moment kfkit says Available."""
    target.apply(_request(model, "1", serving_ns), ROLLOUT_TIMEOUT)
    v1 = expected_deployment(sdep(control_plane, serving_ns, model), "v1")
    at_available: list[dict] = []

    def progress(line: str) -> None:
        if line.startswith(f"deploy: {model} Available"):
            at_available.append(get_json(control_plane, "-n", serving_ns, "deployment", v1))

    target.progress = progress
    state = target.apply(_request(model, "1", serving_ns, replicas=2), ROLLOUT_TIMEOUT)
    assert state["state"] == "Available"
    (deployment,) = at_available
    assert rolled_out(deployment) == (2, 2, 2, 2)
    assert deployment["status"]["observedGeneration"] >= deployment["metadata"]["generation"] > 1
    assert_serves(deployment, model, "1", replicas=2)
    obj = sdep(control_plane, serving_ns, model)
    assert [(p["name"], p["replicas"]) for p in obj["spec"]["predictors"]] == [("v1", 2)]
    assert [e["change"] for e in seldon.history(obj)] == ["replace v1"]


# ------------------------------------------------------------------ canary, shadow, promote


def test_real_push_auto_replaces_first_then_canaries(control_plane, serving_ns, model, in_pod):
    """push's default deploy_strategy in a pod: replace when nothing serves, canary after."""
    said: list[str] = []
    first = deploy.deploy(_request(model, "1", serving_ns, traffic=20), "auto", ROLLOUT_TIMEOUT, said.append)
    second = deploy.deploy(_request(model, "2", serving_ns, traffic=20), "auto", ROLLOUT_TIMEOUT, said.append)
    assert (first["deploy_strategy"], second["deploy_strategy"]) == ("replace", "canary")
    assert second["deploy_state"] == "Available"
    obj = sdep(control_plane, serving_ns, model)
    assert [(p["name"], p["traffic"]) for p in obj["spec"]["predictors"]] == [("v1", 80), ("v2", 20)]
    assert any(f"deploy_strategy auto: replace ({model} has no deployment yet)" in line for line in said)


def test_real_canary_then_cli_promote(
    control_plane, serving_ns, model, target, runner_kubeconfig, tmp_path, store_env
):
    target.apply(_request(model, "1", serving_ns), ROLLOUT_TIMEOUT)
    sized = _request(model, "2", serving_ns, strategy="canary", traffic=30, replicas=2)
    state = target.apply(sized, ROLLOUT_TIMEOUT)
    assert state["state"] == "Available" and state["candidate"] == "v2"

    obj = sdep(control_plane, serving_ns, model)
    assert [(p["name"], p["traffic"], p["replicas"]) for p in obj["spec"]["predictors"]] == [
        ("v1", 70, 1),
        ("v2", 30, 2),
    ]
    v1, v2 = expected_deployment(obj, "v1"), expected_deployment(obj, "v2")
    # Both versions serve side by side, each in its own Deployment with its own size.
    made = model_deployments(control_plane, serving_ns, model)
    assert set(made) == {v1, v2}
    assert_serves(made[v1], model, "1")
    assert_serves(made[v2], model, "2", replicas=2)
    assert operator_status(obj) == ("Available", {v1: 1, v2: 2})

    shown = kfkit_cli(
        ["status", "--model", model, "--namespace", serving_ns, "--json"],
        runner_kubeconfig,
        tmp_path,
        store_env,
    )
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["candidate"] == "v2"

    proc = kfkit_cli(
        ["promote", "--model", model, "--namespace", serving_ns, "--json", "--timeout", str(ROLLOUT_TIMEOUT)],
        runner_kubeconfig,
        tmp_path,
        store_env,
    )
    assert proc.returncode == 0, proc.stderr
    promoted = json.loads(proc.stdout)
    assert [(p["name"], p["traffic"]) for p in promoted["predictors"]] == [("v2", 100)]
    assert promoted["candidate"] is None and promoted["history"] == 2
    made = eventually(
        lambda: (d := model_deployments(control_plane, serving_ns, model)) and set(d) == {v2} and d,
        what=f"the operator leaves only {v2}",
    )
    assert_serves(made[v2], model, "2", replicas=2)
    history = kfkit_cli(
        ["history", "--model", model, "--namespace", serving_ns, "--json"],
        runner_kubeconfig,
        tmp_path,
        store_env,
    )
    assert [e["predictors"] for e in json.loads(history.stdout)["history"]] == ["v1 100%", "v1 70%, v2 30%"]

    again = kfkit_cli(
        ["promote", "--model", model, "--namespace", serving_ns], runner_kubeconfig, tmp_path, store_env
    )
    assert again.returncode == 1 and "has no canary or shadow to promote" in again.stderr


def test_real_shadow_gets_its_own_deployment_and_a_second_shadow_replaces_it(
    control_plane, serving_ns, model, target
):
    target.apply(_request(model, "1", serving_ns), ROLLOUT_TIMEOUT)
    target.apply(_request(model, "2", serving_ns, strategy="shadow"), ROLLOUT_TIMEOUT)
    obj = sdep(control_plane, serving_ns, model)
    main, shadow = obj["spec"]["predictors"]
    assert (main["name"], main["traffic"], "shadow" in main) == ("v1", 100, False)
    assert (shadow["name"], shadow["shadow"], "traffic" in shadow) == ("v2", True, False)
    v1, v2 = expected_deployment(obj, "v1"), expected_deployment(obj, "v2")
    made = model_deployments(control_plane, serving_ns, model)
    assert set(made) == {v1, v2}
    assert_serves(made[v2], model, "2")
    assert operator_status(obj) == ("Available", {v1: 1, v2: 1})

    target.apply(_request(model, "3", serving_ns, strategy="shadow"), ROLLOUT_TIMEOUT)
    obj = sdep(control_plane, serving_ns, model)
    assert [(p["name"], p.get("traffic"), bool(p.get("shadow"))) for p in obj["spec"]["predictors"]] == [
        ("v1", 100, False),
        ("v3", None, True),
    ]
    v3 = expected_deployment(obj, "v3")
    made = eventually(
        lambda: (d := model_deployments(control_plane, serving_ns, model)) and set(d) == {v1, v3} and d,
        what=f"the operator replaces {v2} with {v3}",
    )
    assert_serves(made[v3], model, "3")

    state = target.promote(model, ROLLOUT_TIMEOUT)
    assert [(p["name"], p["traffic"], p["shadow"]) for p in state["predictors"]] == [("v3", 100, False)]
    eventually(lambda: set(model_deployments(control_plane, serving_ns, model)) == {v3}, what=f"only {v3}")


# ------------------------------------------------------------------ a concurrent writer's 409


class ConcurrentWriter:
    """kfkit's own ``CustomObjectsApi`` (the runner's token), except that right after each of
    the next ``writes`` reads of the SeldonDeployment another client (kubectl as the admin)
    annotates it: the real API server then refuses kfkit's merge patch, which carries the
    resourceVersion it read, with 409 Conflict."""

    def __init__(self, api: Any, control_plane, namespace: str) -> None:
        self._api = api
        self._control_plane = control_plane
        self._namespace = namespace
        self.writes = 0
        self.written = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._api, name)

    def get_namespaced_custom_object(self, *args: Any, **kwargs: Any) -> Any:
        found = self._api.get_namespaced_custom_object(*args, **kwargs)
        if self.writes > 0:
            self.writes -= 1
            self.written += 1
            self._control_plane.kubectl(
                "annotate", "--overwrite", "-n", self._namespace, "seldondeployment",
                found["metadata"]["name"], f"other-writer={self.written}",
            )  # fmt: skip
        return found


def test_real_conflict_from_a_concurrent_writer_is_retried(
    control_plane, serving_ns, model, runner_kubeconfig
):
    writer = ConcurrentWriter(
        custom_objects_api(f"kubeconfig:{runner_kubeconfig}"), control_plane, serving_ns
    )
    lines: list[str] = []
    target = SeldonTarget(api=writer, namespace=serving_ns, progress=lines.append, poll_interval=0.3)
    target.apply(_request(model, "1", serving_ns), ROLLOUT_TIMEOUT)

    writer.writes = 2
    state = target.apply(_request(model, "2", serving_ns, strategy="canary", traffic=10), ROLLOUT_TIMEOUT)
    assert writer.written == 2
    # At least the two provoked (the operator's own status writes may add one more).
    assert sum("(resourceVersion conflict); retrying" in line for line in lines) >= 2
    assert state["state"] == "Available"
    obj = sdep(control_plane, serving_ns, model)
    # Both writers' changes survive: the other writer's annotation and kfkit's canary.
    assert obj["metadata"]["annotations"]["other-writer"] == "2"
    assert [(p["name"], p["traffic"]) for p in obj["spec"]["predictors"]] == [("v1", 90), ("v2", 10)]
    assert len(seldon.history(obj)) == 1  # the retried change was recorded once

    # Without retries left, the server's 409 is one clear line and nothing changed.
    target.conflict_retries = 0
    writer.writes = 1
    with pytest.raises(KfkitError) as info:
        target.apply(_request(model, "3", serving_ns, strategy="canary", traffic=10), timeout=5)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(
        f"Kubernetes API refused to canary SeldonDeployment in namespace '{serving_ns}'"
    )
    assert "HTTP 409: Operation cannot be fulfilled" in message and "the object has been modified" in message
    after = sdep(control_plane, serving_ns, model)
    assert after["spec"]["predictors"] == obj["spec"]["predictors"]
