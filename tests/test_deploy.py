"""Deploying: SeldonDeployment manifests, Seldon's rules, rollouts against a Kubernetes API.

No cluster and no Seldon operator run here. The Kubernetes API is kmock's
``KubernetesEmulator`` (PyPI ``kmock``) served over HTTP on 127.0.0.1 and reached with the real
``kubernetes`` client, so every request is real HTTP with Kubernetes' paths and verbs; tests
that use it say ``on_kmock_api`` in their name. kmock stores objects and applies merge patches
but does not keep ``metadata.resourceVersion``: ``ResourceVersionEmulator`` adds the API
server's optimistic-concurrency check (409 Conflict on a stale resourceVersion) so the retry
path is exercised over HTTP. The operator's part (its Deployments, and ``status`` through the
status subresource) and the Deployment controller's are played by ``OperatorStandIn``.
kmock stays for fast unit tests; the real-operator version is tests/cluster/test_real_deploy.py.
"""

from __future__ import annotations

import ast
import asyncio
import copy
import dataclasses
import hashlib
import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kmock
import pytest
import yaml
from click.testing import CliRunner
from conftest import run_kfkit
from kubernetes import client

import kfkit.deploy
from kfkit.deploy import registry, request, seldon
from kfkit.deploy import target as target_module
from kfkit.deploy.kube import SeldonTarget
from kfkit.deploy.local import LocalTarget, read_record, record_path, served_version
from kfkit.deploy.request import DeploymentRequest
from kfkit.deploy.target import TargetContext, cluster_config
from kfkit.errors import KfkitError

NAMESPACE = "serving-test"
MODEL = "penguins"
SECRET_WORDS = ("AWS_SECRET_ACCESS_KEY", "secret_access_key", "password", "RCLONE_CONFIG_S3_SECRET")


class ResourceVersionEmulator(kmock.KubernetesEmulator):
    """kmock's emulator plus the API server's resourceVersion precondition (kmock lacks it).

    Every create sets resourceVersion "1" and every patch increments it; a patch carrying
    another resourceVersion than the stored one is refused with 409 Conflict. ``conflicts``
    simulates that many concurrent writers: before the next patch, another client changes
    the object (annotation ``other-writer``), so the patch's resourceVersion is stale.
    """

    conflicts = 0

    async def _handle(self, request: Any) -> Any:
        if request.resource is not None and isinstance(request.data, dict):
            if request.action == kmock.action.CREATE:
                request.data.setdefault("metadata", {})["resourceVersion"] = "1"
            elif request.action == kmock.action.UPDATE and request.name is not None:
                key = (request.resource, request.namespace, request.name)
                if key in self.objects and not self.objects[key].deleted:
                    stored_obj = self.objects[key]
                    stored = str(stored_obj.get("metadata", {}).get("resourceVersion", "0"))
                    if self.conflicts > 0 and request.subresource is None:
                        self.conflicts -= 1
                        stored = str(int(stored) + 1)
                        stored_obj.patch(
                            {"metadata": {"resourceVersion": stored, "annotations": {"other-writer": "yes"}}}
                        )
                    sent = (request.data.get("metadata") or {}).get("resourceVersion")
                    if sent is not None and str(sent) != stored:
                        raise kmock.KubernetesError(
                            status=409,
                            reason="Conflict",
                            message="the object has been modified; please apply your changes to the "
                            "latest version and try again",
                        )
                    request.data.setdefault("metadata", {})["resourceVersion"] = str(int(stored) + 1)
        return await super()._handle(request)


class KmockApi:
    """kmock's Kubernetes API emulator served on 127.0.0.1 from an event loop in a thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

        async def start() -> tuple[Any, Any]:
            handler = ResourceVersionEmulator()
            # Listed before any exists (OperatorStandIn's clean-up): kmock must know the resource.
            handler.resources["apps/v1/deployments"] = {}
            await handler.__aenter__()
            server = kmock.Server(handler)
            await server.__aenter__()
            return handler, server

        self.handler, self.server = asyncio.run_coroutine_threadsafe(start(), self.loop).result(30)
        self.url = str(self.server.url).rstrip("/")

    def api(self) -> client.CustomObjectsApi:
        configuration = client.Configuration()
        configuration.host = self.url
        return client.CustomObjectsApi(client.ApiClient(configuration))

    def kubeconfig(self, path: Path) -> Path:
        path.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "kmock", "cluster": {"server": self.url}}],
                    "users": [{"name": "tester", "user": {"token": "not-a-secret"}}],
                    "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "tester"}}],
                    "current-context": "kmock",
                }
            )
        )
        return path

    def close(self) -> None:
        async def stop() -> None:
            await self.server.__aexit__(None, None, None)
            await self.handler.__aexit__(None, None, None)

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


class OperatorStandIn:
    """Plays, on kmock, the two controllers a real cluster runs (tests/cluster/ runs the real ones):
    Seldon's operator and Kubernetes' Deployment controller.

    As the operator: for every predictor's componentSpec it creates or rewrites in place the
    Deployment ``<sdep>-<predictor>-<index>-<containers>`` (Seldon's ``GetDeploymentName``, short
    names only here) with the predictor's replicas, kfkit's containers (image, resources) beside
    an executor, and a storage initializer downloading the model URI; it deletes the Deployments
    of predictors that are gone; it writes the SeldonDeployment's ``status`` (``state``,
    ``deploymentStatus``) through the status subresource. It bumps ``metadata.generation`` on a
    spec change, which the API server does and kmock does not. As the Deployment controller: it
    reports every Deployment observed and its replicas updated and available.

    ``broken`` predictors never get an available replica (state ``Creating``, or ``Failed`` with
    ``fail``). ``held`` predictors are a change in place that has not finished: once their
    Deployment is rewritten (generation > 1) it reports one available replica of its
    ``spec.replicas``, and the SeldonDeployment's status is left as it was, still Available for
    the previous spec (Seldon v1.19's status carries no observedGeneration, so right after a
    write it can say exactly that), until ``release()``. ``stalled`` predictors, once rewritten,
    report the Progressing condition ProgressDeadlineExceeded.
    """

    def __init__(
        self,
        api: client.CustomObjectsApi,
        broken: set[str] | None = None,
        fail: bool = False,
        held: set[str] | None = None,
        stalled: set[str] | None = None,
    ):
        self.api = api
        self.apps = client.AppsV1Api(api.api_client)
        self.broken = broken or set()
        self.fail = fail
        self.held = held or set()
        self.stalled = stalled or set()
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> OperatorStandIn:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.thread.join(10)

    def release(self) -> None:
        """The held changes finish: their Deployments become fully available."""
        self.held = set()

    def _run(self) -> None:
        name = seldon.resource_name(MODEL)
        while not self._stop.is_set():
            try:
                obj = self.api.get_namespaced_custom_object(
                    seldon.GROUP, seldon.VERSION, NAMESPACE, seldon.PLURAL, name
                )
            except client.ApiException:
                obj = None
            wanted: dict[str, tuple[dict[str, Any], int]] = {}
            for pred in obj["spec"]["predictors"] if obj else []:
                for index, spec in enumerate(pred["componentSpecs"]):
                    containers = "-".join(c["name"] for c in spec["spec"]["containers"])
                    wanted[f"{name}-{pred['name']}-{index}-{containers}"] = (pred, index)
            listed = self.apps.list_namespaced_deployment(NAMESPACE, _preload_content=False)
            for item in json.loads(listed.data)["items"]:
                if item["metadata"]["name"] not in wanted:  # the operator's clean-up, or GC
                    self.apps.delete_namespaced_deployment(
                        item["metadata"]["name"], NAMESPACE, _preload_content=False
                    )
            statuses = {dep: self._reconcile(dep, pred, index) for dep, (pred, index) in wanted.items()}
            changing = [  # a held change in place leaves the previous status there
                dep
                for dep, (pred, _) in wanted.items()
                if pred["name"] in self.held and statuses[dep]["observedGeneration"] > 1
            ]
            if obj is not None and not changing:
                self._write_status(obj, statuses, {pred["name"] for pred, _ in wanted.values()})
            time.sleep(0.02)

    def _reconcile(self, dep: str, pred: dict[str, Any], index: int) -> dict[str, Any]:
        """The Deployment for ``pred``'s componentSpec written as the operator would; its status."""
        containers = [
            {key: c[key] for key in ("name", "image", "resources") if key in c}
            for c in pred["componentSpecs"][index]["spec"]["containers"]
        ]
        selector = {"seldon-deployment-id": seldon.resource_name(MODEL), "seldon-app": dep}
        spec = {
            "replicas": pred.get("replicas", 1),
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": {**selector, **(pred.get("labels") or {})}},
                "spec": {
                    "initContainers": [
                        {
                            "name": "model-model-initializer",
                            "image": "seldonio/rclone-storage-initializer:1.19.0",
                            "args": [pred["graph"]["modelUri"], "/mnt/models"],
                        }
                    ],
                    "containers": [
                        *containers,
                        {"name": "seldon-container-engine", "image": "seldonio/seldon-core-executor:1.19.0"},
                    ],
                },
            },
        }
        try:
            found = json.loads(
                self.apps.read_namespaced_deployment(dep, NAMESPACE, _preload_content=False).data
            )
        except client.ApiException:
            found = None
        if found is None:
            generation = 1
            body = {"metadata": {"name": dep, "namespace": NAMESPACE, "generation": 1}, "spec": spec}
            self.apps.create_namespaced_deployment(NAMESPACE, body, _preload_content=False)
            found = {"status": {}}
        else:
            generation = int(found["metadata"]["generation"])
            if found["spec"] != spec:
                generation += 1
                change = {"metadata": {"generation": generation}, "spec": spec}
                self.apps.patch_namespaced_deployment(dep, NAMESPACE, change, _preload_content=False)
        replicas = spec["replicas"]
        available = replicas
        conditions: list[dict[str, str]] = []
        if pred["name"] in self.broken:
            available = 0
        elif generation > 1 and pred["name"] in self.held | self.stalled:
            available = min(1, replicas)
            if pred["name"] in self.stalled:
                conditions = [
                    {
                        "type": "Progressing",
                        "status": "False",
                        "reason": "ProgressDeadlineExceeded",
                        "message": f'ReplicaSet "{dep}-5d8f" has timed out progressing.',
                    }
                ]
        status = {
            "observedGeneration": generation,
            "replicas": replicas,
            "updatedReplicas": replicas,
            "availableReplicas": available,
            "conditions": conditions,
        }
        if found.get("status") != status:
            self.apps.patch_namespaced_deployment_status(
                dep, NAMESPACE, {"status": status}, _preload_content=False
            )
        return status

    def _write_status(
        self, obj: dict[str, Any], statuses: dict[str, dict[str, Any]], names: set[str]
    ) -> None:
        components = {
            dep: {"replicas": s["replicas"], "availableReplicas": s["availableReplicas"]}
            for dep, s in statuses.items()
        }
        state = "Available"
        if names & self.broken:
            state = "Failed" if self.fail else "Creating"
        elif any(s["availableReplicas"] < s["replicas"] for s in statuses.values()):
            state = "Creating"
        status: dict[str, Any] = {"state": state, "deploymentStatus": components}
        if state == "Failed":
            status["description"] = "container model: CrashLoopBackOff"
        if obj.get("status") != status:
            # A merge patch keeps keys it does not name: the operator's status update drops the
            # Deployments it deleted, so name them with null here.
            gone = set((obj.get("status") or {}).get("deploymentStatus") or {}) - set(components)
            status = {**status, "deploymentStatus": {**components, **dict.fromkeys(gone)}}
            self.api.patch_namespaced_custom_object_status(
                seldon.GROUP, seldon.VERSION, NAMESPACE, seldon.PLURAL, obj["metadata"]["name"],
                {"status": status},
            )  # fmt: skip


@pytest.fixture
def kube() -> Iterator[KmockApi]:
    api = KmockApi()
    try:
        yield api
    finally:
        api.close()


@pytest.fixture
def target(kube: KmockApi) -> SeldonTarget:
    return SeldonTarget(kube.api(), NAMESPACE, poll_interval=0.05)


def _rollout(version: str, strategy: str = "replace", traffic: int = 10) -> DeploymentRequest:
    return DeploymentRequest(MODEL, version, f"s3://models/{MODEL}/{version}", "0" * 64, strategy, traffic)


def _read(kube: KmockApi) -> dict[str, Any]:
    return kube.api().get_namespaced_custom_object(
        seldon.GROUP, seldon.VERSION, NAMESPACE, seldon.PLURAL, seldon.resource_name(MODEL)
    )


def _shares(obj: dict[str, Any]) -> list[tuple[str, Any]]:
    return [(p["name"], "shadow" if p.get("shadow") else p["traffic"]) for p in obj["spec"]["predictors"]]


def _check_predictor(pred: dict[str, Any], version: str) -> None:
    """Every field kfkit sets on a predictor, one by one."""
    assert pred["name"] == f"v{version}"
    assert pred["replicas"] == 1
    assert pred["labels"] == {
        "app.kubernetes.io/name": MODEL,
        "app.kubernetes.io/managed-by": "kfkit",
        "kfkit.io/model-version": version,
    }
    assert pred["graph"] == {
        "name": "model",
        "type": "MODEL",
        "modelUri": f"s3://models/{MODEL}/{version}",
        "envSecretRefName": seldon.STORAGE_SECRET,
        "children": [],
    }
    (component,) = pred["componentSpecs"]
    assert "metadata" not in component  # the operator then names the Deployment <sdep>-v<N>-0-model
    (container,) = component["spec"]["containers"]
    assert container["name"] == "model"
    assert container["image"] == seldon.SERVING_IMAGE
    assert {"name": "OMP_NUM_THREADS", "value": "1"} in container["env"]
    assert {"name": "KFKIT_MODEL_DIR", "value": "/mnt/models"} in container["env"]
    # Pod Security Standards "restricted" and a read-only root (tests/test_manifests.py checks each control).
    assert container["securityContext"] == seldon.MODEL_CONTAINER_SECURITY_CONTEXT
    assert component["spec"]["securityContext"] == seldon.POD_SECURITY_CONTEXT
    text = json.dumps(pred)
    assert not any(word in text for word in SECRET_WORDS)


def _history_predictors(obj: dict[str, Any]) -> list[list[tuple[str, Any]]]:
    return [
        [(p["name"], "shadow" if p.get("shadow") else p["traffic"]) for p in entry["predictors"]]
        for entry in seldon.history(obj)
    ]


# ------------------------------------------------------------------ Seldon's rules, no server


def _pred(name: str, traffic: int | None = None, shadow: bool = False) -> dict[str, Any]:
    return seldon.predictor(MODEL, name.lstrip("v"), "s3://m/x", traffic=traffic or 0, shadow=shadow)


@pytest.mark.parametrize(
    ("predictors", "message"),
    [
        ([_pred("v1", 90), _pred("v2", 20)], "traffic of non-shadow predictors must sum to 100, got 110"),
        ([_pred("v1", 50)], "must sum to 100, got 50 (v1=50)"),
        ([_pred("v1", 100), _pred("v2", shadow=True), _pred("v3", shadow=True)], "at most one shadow"),
        ([_pred("v2", shadow=True)], "shadow predictor 'v2' cannot be alone"),
        ([_pred("v1", 100), _pred("v1", 0)], "predictor names must be unique"),
        ([_pred("v1", 150), _pred("v2", -50)], "traffic must be an integer in 0..100"),
        ([], "needs at least one predictor"),
    ],
)
def test_seldon_rules_are_refused_with_one_line(predictors: list[dict[str, Any]], message: str):
    with pytest.raises(KfkitError) as info:
        seldon.check_predictors(predictors, "SeldonDeployment penguins")
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_rules_hold_for_every_strategy_output():
    current = seldon.seldon_deployment(MODEL, "1", "s3://models/penguins/1")
    new = seldon.predictor(MODEL, "2", "s3://models/penguins/2")
    for strategy in ("replace", "canary", "shadow"):
        predictors, _ = seldon.plan(current, strategy, new, 25)
        seldon.check_predictors(predictors)
    assert _shares({"spec": {"predictors": seldon.plan(current, "canary", new, 25)[0]}}) == [
        ("v1", 75),
        ("v2", 25),
    ]
    with pytest.raises(KfkitError, match="canary traffic must be an integer percentage in 1..99"):
        seldon.plan(current, "canary", new, 100)
    with pytest.raises(KfkitError, match="does not exist yet"):
        seldon.plan(None, "canary", new, 10)
    with pytest.raises(KfkitError, match="unknown deploy strategy 'blue-green'"):
        seldon.plan(current, "blue-green", new)


def test_manifest_names_the_secret_and_holds_no_credential():
    deployment = seldon.seldon_deployment(MODEL, "3", "s3://models/penguins/3")
    assert deployment["apiVersion"] == "machinelearning.seldon.io/v1"
    assert deployment["kind"] == "SeldonDeployment"
    _check_predictor(deployment["spec"]["predictors"][0], "3")
    assert deployment["spec"]["predictors"][0]["traffic"] == 100


# ------------------------------------------------------------------ rollouts on kmock's API


def test_create_on_kmock_api(kube: KmockApi, target: SeldonTarget):
    with OperatorStandIn(kube.api()):
        state = target.apply(_rollout("1"), timeout=20)
    obj = _read(kube)
    assert obj["apiVersion"] == "machinelearning.seldon.io/v1"
    assert obj["kind"] == "SeldonDeployment"
    assert obj["metadata"]["name"] == MODEL
    assert obj["metadata"]["namespace"] == NAMESPACE
    assert obj["metadata"]["labels"] == {
        "app.kubernetes.io/name": MODEL,
        "app.kubernetes.io/managed-by": "kfkit",
    }
    assert obj["metadata"]["annotations"][seldon.HISTORY_ANNOTATION] == "[]"
    assert seldon.CANDIDATE_ANNOTATION not in obj["metadata"]["annotations"]
    assert obj["spec"]["name"] == MODEL
    assert obj["spec"]["protocol"] == "seldon"
    (pred,) = obj["spec"]["predictors"]
    _check_predictor(pred, "1")
    assert pred["traffic"] == 100 and "shadow" not in pred
    assert obj["status"]["state"] == "Available"
    assert state["state"] == "Available" and state["target"] == "seldon"
    assert [(p["name"], p["version"], p["traffic"]) for p in state["predictors"]] == [("v1", "1", 100)]


def test_canary_on_kmock_api(kube: KmockApi, target: SeldonTarget):
    with OperatorStandIn(kube.api()):
        target.apply(_rollout("1"), timeout=20)
        before = _read(kube)
        state = target.apply(_rollout("2", "canary", 20), timeout=20)
    obj = _read(kube)
    assert _shares(obj) == [("v1", 80), ("v2", 20)]
    old, new = obj["spec"]["predictors"]
    _check_predictor(old, "1")
    _check_predictor(new, "2")
    assert obj["metadata"]["annotations"][seldon.CANDIDATE_ANNOTATION] == "v2"
    # History holds exactly the predictors that served before, unchanged.
    (entry,) = seldon.history(obj)
    assert entry["predictors"] == before["spec"]["predictors"]
    assert entry["change"] == "canary v2"
    assert state["candidate"] == "v2" and state["history"] == 1


def test_canary_sizes_only_the_new_version_on_kmock_api(kube: KmockApi, target: SeldonTarget):
    """push's serving_replicas and serving_resources size the version rolled out; the version
    serving beside a canary keeps its own size."""
    sized = dataclasses.replace(
        _rollout("2", "canary", 20), replicas=3, resources={"cpu_request": "250m", "memory_limit": "1Gi"}
    )
    with OperatorStandIn(kube.api()):
        target.apply(_rollout("1"), timeout=20)
        target.apply(sized, timeout=20)
    old, new = _read(kube)["spec"]["predictors"]
    _check_predictor(old, "1")
    assert "resources" not in old["componentSpecs"][0]["spec"]["containers"][0]
    assert new["replicas"] == 3
    assert new["componentSpecs"][0]["spec"]["containers"][0]["resources"] == {
        "requests": {"cpu": "250m"},
        "limits": {"memory": "1Gi"},
    }
    # The manifest push writes for lineage says the same.
    manifest = target.manifest(sized)
    (pred,) = manifest["spec"]["predictors"]
    assert pred["replicas"] == 3 and pred["componentSpecs"][0]["spec"]["containers"][0]["resources"]


@pytest.mark.parametrize(
    ("replicas", "resources", "message"),
    [
        (0, {}, "The 'serving_replicas' parameter of push must be an integer in 1..100. Got 0 instead."),
        (True, {}, "The 'serving_replicas' parameter of push must be an integer in 1..100. Got True"),
        (101, {}, "The 'serving_replicas' parameter of push must be an integer in 1..100. Got 101"),
        (1, "1Gi", "The 'serving_resources' parameter of push must be a mapping such as"),
        (1, {"gpu": "1"}, "The 'serving_resources' parameter of push has an unknown key 'gpu'"),
        (1, {"cpu_request": "lots"}, "cpu_request must be a positive Kubernetes quantity such as"),
        (1, {"cpu_limit": "-1"}, "cpu_limit must be a positive Kubernetes quantity such as"),
        (1, {"memory_limit": True}, "memory_limit must be a positive Kubernetes quantity such as"),
        (1, {"cpu_request": "2", "cpu_limit": "500m"}, "cpu_request '2' is above cpu_limit '500m'"),
    ],
)
def test_serving_size_is_refused_with_one_line(replicas: Any, resources: Any, message: str):
    with pytest.raises(KfkitError, match=re.escape(message)):
        dataclasses.replace(_rollout("1"), replicas=replicas, resources=resources)


def test_promote_on_kmock_api(kube: KmockApi, target: SeldonTarget):
    with OperatorStandIn(kube.api()):
        target.apply(_rollout("1"), timeout=20)
        target.apply(_rollout("2", "canary", 10), timeout=20)
        canary = _read(kube)
        target.promote(MODEL, timeout=20)
    obj = _read(kube)
    (pred,) = obj["spec"]["predictors"]
    _check_predictor(pred, "2")
    assert pred["traffic"] == 100
    assert seldon.CANDIDATE_ANNOTATION not in obj["metadata"]["annotations"]
    assert _history_predictors(obj) == [[("v1", 100)], [("v1", 90), ("v2", 10)]]
    assert seldon.history(obj)[-1]["predictors"] == canary["spec"]["predictors"]
    with pytest.raises(KfkitError, match="has no canary or shadow to promote"):
        target.promote(MODEL, timeout=1)


def test_shadow_on_kmock_api(kube: KmockApi, target: SeldonTarget):
    with OperatorStandIn(kube.api()):
        target.apply(_rollout("1"), timeout=20)
        target.apply(_rollout("2", "shadow"), timeout=20)
    obj = _read(kube)
    main, shadow = obj["spec"]["predictors"]
    _check_predictor(main, "1")
    _check_predictor(shadow, "2")
    assert main["traffic"] == 100 and "shadow" not in main
    assert shadow["shadow"] is True and "traffic" not in shadow
    assert obj["metadata"]["annotations"][seldon.CANDIDATE_ANNOTATION] == "v2"
    # A second shadow replaces the first (Seldon allows one), it is not added.
    with OperatorStandIn(kube.api()):
        target.apply(_rollout("3", "shadow"), timeout=20)
    assert _shares(_read(kube)) == [("v1", 100), ("v3", "shadow")]


def test_rollback_on_kmock_api(kube: KmockApi, target: SeldonTarget):
    assert target.served_version(MODEL) is None  # resolve_baseline then falls back to the latest
    with OperatorStandIn(kube.api()):
        target.apply(_rollout("1"), timeout=20)
        first = _read(kube)
        target.apply(_rollout("2", "canary", 10), timeout=20)
        assert target.served_version(MODEL) == "1"  # a canary's stable version serves
        target.promote(MODEL, timeout=20)
        assert target.served_version(MODEL) == "2"
        target.rollback(MODEL, timeout=20)
        assert _shares(_read(kube)) == [("v1", 90), ("v2", 10)]
        assert target.served_version(MODEL) == "1"
        state = target.rollback(MODEL, timeout=20)
    obj = _read(kube)
    assert obj["spec"]["predictors"] == first["spec"]["predictors"]
    assert seldon.history(obj) == []
    assert state["predictors"][0]["name"] == "v1" and state["history"] == 0
    with pytest.raises(KfkitError, match="has no previous predictors to roll back to"):
        target.rollback(MODEL, timeout=1)


def test_rollout_that_never_becomes_available_is_rolled_back_on_kmock_api(
    kube: KmockApi, target: SeldonTarget
):
    with OperatorStandIn(kube.api()):
        target.apply(_rollout("1"), timeout=20)
    before = _read(kube)
    with OperatorStandIn(kube.api(), broken={"v2"}):
        started = time.monotonic()
        with pytest.raises(KfkitError) as info:
            target.apply(_rollout("2", "canary", 10), timeout=1.5)
        elapsed = time.monotonic() - started
    message = str(info.value)
    assert "\n" not in message
    assert "canary of SeldonDeployment penguins (v1 90%, v2 10%) failed: not Available after 1.5 s" in message
    assert message.endswith("rolled back to v1 100%")
    assert elapsed < 10
    after = _read(kube)
    assert after["spec"]["predictors"] == before["spec"]["predictors"]
    assert seldon.history(after) == seldon.history(before) == []
    assert seldon.CANDIDATE_ANNOTATION not in after["metadata"]["annotations"]


def test_failed_rollout_is_rolled_back_at_once_on_kmock_api(kube: KmockApi, target: SeldonTarget):
    with OperatorStandIn(kube.api()):
        target.apply(_rollout("1"), timeout=20)
    with OperatorStandIn(kube.api(), broken={"v2"}, fail=True):
        started = time.monotonic()
        with pytest.raises(KfkitError, match="state Failed: container model: CrashLoopBackOff; rolled back"):
            target.apply(_rollout("2"), timeout=60)
        assert time.monotonic() - started < 20  # did not wait for the timeout
    assert _shares(_read(kube)) == [("v1", 100)]


def test_first_rollout_that_fails_is_deleted_on_kmock_api(kube: KmockApi, target: SeldonTarget):
    with OperatorStandIn(kube.api(), broken={"v1"}):
        with pytest.raises(KfkitError, match="deleted it \\(there was no previous deployment\\)"):
            target.apply(_rollout("1"), timeout=1)
    assert target.get(MODEL) is None


def test_conflict_is_retried_with_resource_version_on_kmock_api(kube: KmockApi, target: SeldonTarget):
    lines: list[str] = []
    target.progress = lines.append
    with OperatorStandIn(kube.api()):
        target.apply(_rollout("1"), timeout=20)
        kube.handler.conflicts = 2
        target.apply(_rollout("2", "canary", 10), timeout=20)
    obj = _read(kube)
    # Both writers' changes survive: the other writer's annotation and our canary.
    assert obj["metadata"]["annotations"]["other-writer"] == "yes"
    assert _shares(obj) == [("v1", 90), ("v2", 10)]
    assert sum("(resourceVersion conflict); retrying" in line for line in lines) == 2
    # Without retries left, the conflict is one clear line.
    target.conflict_retries = 0
    kube.handler.conflicts = 1
    with pytest.raises(
        KfkitError, match="refused to canary SeldonDeployment .* HTTP 409: the object has been"
    ):
        target.apply(_rollout("3", "canary", 10), timeout=5)


def test_invalid_plan_is_refused_before_anything_is_sent_on_kmock_api(kube: KmockApi, target: SeldonTarget):
    with pytest.raises(KfkitError, match="does not exist yet: deploy it with strategy 'replace'"):
        target.apply(_rollout("1", "canary"), timeout=1)
    assert target.get(MODEL) is None


# ------------------------------------------------------------------ the CLI on kmock's API


def test_deploy_cli_on_kmock_api(kube: KmockApi, target: SeldonTarget, tmp_path: Path, store_env):
    env = dict(store_env)
    env["KUBECONFIG"] = str(kube.kubeconfig(tmp_path / "kubeconfig"))
    env["KFKIT_HOME"] = str(tmp_path / "home")
    common = ["--model", MODEL, "--namespace", NAMESPACE, "--json"]
    with OperatorStandIn(kube.api()):
        target.apply(_rollout("1"), timeout=20)
        target.apply(_rollout("2", "canary", 30), timeout=20)
        proc = run_kfkit(["deploy", "status", *common], env, timeout=60)
        assert proc.returncode == 0, proc.stderr
        status = json.loads(proc.stdout)
        assert status["target"] == "seldon" and status["state"] == "Available"
        assert [(p["name"], p["traffic"]) for p in status["predictors"]] == [("v1", 70), ("v2", 30)]
        assert status["candidate"] == "v2"

        proc = run_kfkit(["deploy", "history", *common], env, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert [e["predictors"] for e in json.loads(proc.stdout)["history"]] == ["v1 100%"]

        proc = run_kfkit(["deploy", "promote", *common, "--timeout", "20"], env, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert [(p["name"], p["traffic"]) for p in json.loads(proc.stdout)["predictors"]] == [("v2", 100)]

        proc = run_kfkit(["deploy", "rollback", *common, "--timeout", "20"], env, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert _shares(_read(kube)) == [("v1", 70), ("v2", 30)]

    proc = run_kfkit(["deploy", "status", "--model", "absent", "--namespace", NAMESPACE], env, timeout=60)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        f"kfkit: error: no SeldonDeployment absent in namespace '{NAMESPACE}'"
    )


def test_deploy_cli_unreachable_api_is_one_line(tmp_path: Path, store_env):
    env = dict(store_env)
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:9"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
        "current-context": "c",
    }
    (tmp_path / "kubeconfig").write_text(yaml.safe_dump(kubeconfig))
    env["KUBECONFIG"] = str(tmp_path / "kubeconfig")
    proc = run_kfkit(["deploy", "status", "--model", MODEL], env, timeout=120)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("kfkit: error: cannot reach the Kubernetes API at http://127.0.0.1:9")


# ------------------------------------------------------------------ the local record


def test_local_target_records_canary_promote_rollback(tmp_path: Path):
    local = LocalTarget(root=tmp_path)
    local.apply(_rollout("1"))
    assert served_version(MODEL, tmp_path) == "1"
    state = local.apply(_rollout("2", "canary", 25))
    assert [(p["name"], p["traffic"]) for p in state["predictors"]] == [("v1", 75), ("v2", 25)]
    assert served_version(MODEL, tmp_path) == "1"  # a canary does not take over the local server
    local.promote(MODEL)
    assert served_version(MODEL, tmp_path) == "2"
    assert [e["predictors"] for e in local.history(MODEL)] == ["v1 serving", "v1 serving, v2 canary"]
    local.rollback(MODEL)
    assert served_version(MODEL, tmp_path) == "1"
    assert read_record(MODEL, tmp_path)["candidate"]["version"] == "2"
    local.rollback(MODEL)
    assert read_record(MODEL, tmp_path)["candidate"] is None
    with pytest.raises(KfkitError, match="no previous state to roll back to"):
        local.rollback(MODEL)


def test_cluster_config_detection(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KFKIT_DEPLOY_TARGET", raising=False)
    assert cluster_config() is None
    config = tmp_path / "config"
    config.write_text("{}")
    monkeypatch.setenv("KUBECONFIG", str(config))
    assert cluster_config() == f"kubeconfig:{config}"
    monkeypatch.setenv("KFKIT_DEPLOY_TARGET", "local")
    assert cluster_config() is None
    monkeypatch.setenv("KFKIT_DEPLOY_TARGET", "cluster")
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "missing"))
    with pytest.raises(KfkitError, match="KFKIT_DEPLOY_TARGET=cluster but no cluster is configured"):
        cluster_config()


def test_serve_picks_the_locally_deployed_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from kfkit.cli.deploy import deployed_reference

    monkeypatch.setenv("KFKIT_HOME", str(tmp_path))
    assert deployed_reference(MODEL) == MODEL  # nothing deployed: the latest version
    LocalTarget().apply(_rollout("2"))
    LocalTarget().apply(_rollout("3", "canary"))
    assert deployed_reference(MODEL) == f"{MODEL}:2"
    assert deployed_reference(f"{MODEL}:3") == f"{MODEL}:3"  # an explicit version wins


def test_history_annotation_is_bounded():
    deployment = seldon.seldon_deployment(MODEL, "0", "s3://models/penguins/0")
    for version in range(1, 15):
        new = seldon.predictor(MODEL, str(version), f"s3://models/penguins/{version}")
        predictors, candidate = seldon.plan(deployment, "replace", new)
        deployment = seldon.changed(deployment, MODEL, NAMESPACE, predictors, candidate, "replace")
    entries = seldon.history(deployment)
    assert len(entries) == seldon.HISTORY_LIMIT
    assert entries[-1]["predictors"][0]["name"] == "v13"
    assert copy.deepcopy(deployment)["spec"]["predictors"][0]["name"] == "v14"


def test_operator_deployment_names_follow_seldons_get_deployment_name():
    """Seldon v1's operator keys status.deploymentStatus by the Deployment name it generates."""
    pred = seldon.predictor(MODEL, "3", "s3://models/penguins/3")
    assert seldon.operator_deployment_names("penguins", pred) == ["penguins-v3-0-model"]
    named = {**pred, "componentSpecs": [{"metadata": {"name": "custom"}, "spec": {"containers": []}}]}
    assert seldon.operator_deployment_names("penguins", named) == ["penguins-v3-0-custom"]
    long_name = "penguins-" + "x" * 50  # 70 characters with "-v3-0-model"
    long_full = f"{long_name}-v3-0-model"
    digest = hashlib.md5(long_full.encode()).hexdigest()
    assert seldon.operator_deployment_names(long_name, pred) == [f"seldon-{digest}"]
    # With DEPLOYMENT_NAME_AS_PREFIX=true the operator uses <sdep>-<md5> when that fits.
    long_pred = {**pred, "name": "v" + "1" * 50}
    digest = hashlib.md5(f"penguins-{long_pred['name']}-0-model".encode()).hexdigest()
    assert seldon.operator_deployment_names("penguins", long_pred) == [
        f"seldon-{digest}",
        f"penguins-{digest}",
    ]


def test_ready_reads_the_operators_deployment_names():
    pred = seldon.predictor(MODEL, "3", "s3://models/penguins/3")
    obj = {"metadata": {"name": MODEL}, "spec": {"predictors": [pred]}}
    obj["status"] = {"state": "Available", "deploymentStatus": {f"{MODEL}-v3": {"availableReplicas": 1}}}
    assert SeldonTarget.ready(obj)[0] is False  # kfkit's old guess of the key is not Seldon's
    obj["status"]["deploymentStatus"] = {f"{MODEL}-v3-0-model": {"availableReplicas": 1}}
    assert SeldonTarget.ready(obj) == (True, "Available")


# ------------------------------------------------------------------ targets are plugins


@pytest.fixture
def no_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No cluster configured (no service account, no kubeconfig); local state in tmp_path/home."""
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KFKIT_DEPLOY_TARGET", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("KFKIT_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def _unreachable_kubeconfig(path: Path) -> Path:
    """A kubeconfig for a cluster nobody answers at: a test that reaches it fails."""
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:9"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "c",
            }
        )
    )
    return path


class NotebookTarget:
    """A throwaway deploy target, known to kfkit only through ``registry.register``: it writes
    rollouts into a class-level list (the registry builds the instance, the test reads the list)."""

    applied: list[tuple[DeploymentRequest, str, float]] = []

    def __init__(self, context: TargetContext) -> None:
        self.context = context

    def manifest(self, request: DeploymentRequest) -> dict[str, Any]:
        return {"kind": "NotebookEntry", "name": request.name, "version": request.version,
                "namespace": self.context.namespace}  # fmt: skip

    def apply(self, rollout: DeploymentRequest, timeout: float) -> dict[str, Any]:
        NotebookTarget.applied.append((rollout, self.context.namespace, timeout))
        self.context.progress(f"notebook: {rollout.strategy} v{rollout.version}")
        return self.status(rollout.model_name)

    def status(self, model_name: str) -> dict[str, Any]:
        mine = [r for r, _, _ in NotebookTarget.applied if r.model_name == model_name]
        if not mine:
            raise KfkitError(f"no notebook entry for {model_name}")
        return {"target": "notebook", "name": mine[-1].name, "state": "Written",
                "predictors": [{"name": f"v{mine[-1].version}", "traffic": 100}],
                "candidate": None, "history": len(mine) - 1}  # fmt: skip

    def history(self, model_name: str) -> list[dict[str, Any]]:
        return []

    def promote(self, model_name: str, timeout: float) -> dict[str, Any]:
        raise KfkitError("a notebook has nothing to promote")

    def rollback(self, model_name: str, timeout: float) -> dict[str, Any]:
        raise KfkitError("a notebook has nothing to roll back")


@pytest.fixture
def notebook() -> Iterator[type[NotebookTarget]]:
    NotebookTarget.applied = []
    registry.register("notebook", NotebookTarget)
    try:
        yield NotebookTarget
    finally:
        registry.unregister("notebook")


def test_registered_target_is_used_by_deploy_manifest_and_cli(
    notebook: type[NotebookTarget], no_cluster: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """One register() call is all a new target needs: deploy, manifest and `kfkit deploy` use it."""
    from kfkit.cli import main

    # A configured (unreachable) cluster: were the env setting ignored, seldon would be picked
    # and the test would fail reaching it.
    monkeypatch.setenv("KUBECONFIG", str(_unreachable_kubeconfig(tmp_path / "kubeconfig")))
    monkeypatch.setenv("KFKIT_DEPLOY_TARGET", "notebook")
    request_ = DeploymentRequest(MODEL, "7", f"s3://models/{MODEL}/7", "b" * 64, namespace="team-a")
    lines: list[str] = []
    record = kfkit.deploy.deploy(request_, "canary", 3.0, progress=lines.append)
    assert record == {
        "deployed": True,
        "deploy_target": "notebook",
        "deploy_strategy": "canary",
        "deploy_state": "Written",
        "deploy_predictors": json.dumps([{"name": "v7", "traffic": 100}], sort_keys=True),
    }
    assert notebook.applied == [(dataclasses.replace(request_, strategy="canary"), "team-a", 3.0)]
    assert lines == ["notebook: canary v7"]  # no "recording a local ... instead"
    assert not record_path(MODEL, no_cluster).exists()  # the local record was not touched

    # Named explicitly, it wins over KFKIT_DEPLOY_TARGET.
    monkeypatch.setenv("KFKIT_DEPLOY_TARGET", "local")
    assert kfkit.deploy.deploy(request_, "replace", 1.0, target="notebook")["deploy_target"] == "notebook"
    assert not record_path(MODEL, no_cluster).exists()
    assert kfkit.deploy.manifest(request_, "notebook") == {
        "kind": "NotebookEntry", "name": MODEL, "version": "7", "namespace": "team-a",
    }  # fmt: skip

    result = CliRunner().invoke(
        main, ["deploy", "status", "--model", MODEL, "--target", "notebook", "--json"]
    )
    assert result.exit_code == 0, result.output
    status = json.loads(result.output)
    assert (status["target"], status["state"], status["history"]) == ("notebook", "Written", 1)


def test_registry_refuses_clashes_and_unknown_targets_in_one_line(
    notebook: type[NotebookTarget], no_cluster: Path
):
    with pytest.raises(KfkitError, match="deploy target 'notebook' is already registered"):
        registry.register("notebook", NotebookTarget)
    for reserved in ("cluster", "auto", "none", "Bad Name"):
        with pytest.raises(KfkitError, match="use lowercase letters"):
            registry.register(reserved, NotebookTarget)
    with pytest.raises(KfkitError, match="'local' deploy target is the fallback"):
        registry.unregister("local")
    registry.unregister("notebook")
    request_ = DeploymentRequest(MODEL, "1", "s3://models/penguins/1")
    with pytest.raises(KfkitError) as info:
        kfkit.deploy.deploy(request_, "replace", 1.0, target="notebook")
    assert str(info.value) == (
        "unknown deploy target 'notebook': expected 'auto', 'cluster' or one of 'local', 'seldon'"
    )
    registry.register("notebook", NotebookTarget)  # for the fixture's unregister


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.add(node.module or "")
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_local_target_does_not_import_seldon(tmp_path: Path):
    source = Path(kfkit.deploy.local.__file__)
    imported = _imported_modules(source)
    assert "kfkit.deploy.request" in imported
    assert not [m for m in imported if "seldon" in m or m.startswith("kfkit.deploy.kube")], imported
    # Strategy constants are the request module's; seldon.py only imports them.
    seldon_tree = ast.parse(Path(seldon.__file__).read_text())
    assigned = {t.id for n in seldon_tree.body if isinstance(n, ast.Assign) for t in n.targets
                if isinstance(t, ast.Name)}  # fmt: skip
    assert not assigned & {"REPLACE", "CANARY", "SHADOW", "HISTORY_LIMIT", "DEFAULT_NAMESPACE"}
    # Nor transitively: a local deployment end to end loads neither Seldon's code nor kubernetes.
    code = (
        "import sys, kfkit.deploy as d\n"
        "r = d.DeploymentRequest('penguins', '1', 's3://models/penguins/1')\n"
        "assert d.deploy(r, 'replace', 1.0)['deploy_target'] == 'local'\n"
        "print(sorted(m for m in sys.modules if 'seldon' in m or m.split('.')[0] == 'kubernetes'"
        " or m == 'kfkit.deploy.kube'))\n"
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "KFKIT_HOME": str(tmp_path / "home")}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
    assert served_version(MODEL, tmp_path / "home") == "1"


def test_manifest_of_each_target_renders_without_a_cluster(
    no_cluster: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    request_ = DeploymentRequest(MODEL, "3", f"s3://models/{MODEL}/3", "c" * 64, "canary", 20, NAMESPACE)
    rendered = kfkit.deploy.manifest(request_, "seldon")
    assert rendered == seldon.seldon_deployment(MODEL, "3", f"s3://models/{MODEL}/3", NAMESPACE)
    assert (rendered["kind"], rendered["metadata"]["namespace"]) == ("SeldonDeployment", NAMESPACE)
    (pred,) = rendered["spec"]["predictors"]
    _check_predictor(pred, "3")
    assert pred["traffic"] == 100

    local = kfkit.deploy.manifest(request_, "local")
    assert local == {
        "model_name": MODEL,
        "serving": {"version": "3", "uri": f"s3://models/{MODEL}/3", "sha256": "c" * 64},
        "candidate": None,
        "history": [],
    }
    assert not record_path(MODEL, no_cluster).exists()  # rendering writes nothing
    # It is what a replace of that version records (less the time it was recorded).
    LocalTarget().apply(dataclasses.replace(request_, strategy="replace"))
    written = read_record(MODEL)
    assert {k: v for k, v in written["serving"].items() if k != "at"} == local["serving"]
    assert json.loads(json.dumps(local)) == local  # plain JSON

    # With no target named: the selected one, local here, seldon once a cluster is configured
    # (rendered without contacting it: that cluster does not answer).
    assert kfkit.deploy.manifest(request_) == local
    monkeypatch.setenv("KUBECONFIG", str(_unreachable_kubeconfig(tmp_path / "kubeconfig")))
    assert kfkit.deploy.manifest(request_) == rendered


def test_deploy_entry_point_without_a_cluster(no_cluster: Path):
    request_ = DeploymentRequest(MODEL, "4", f"s3://models/{MODEL}/4", "a" * 64)
    lines: list[str] = []
    assert kfkit.deploy.deploy(request_, "none", 1.0) == {"deployed": False, "deploy_target": "none"}
    assert read_record(MODEL) is None

    recorded = kfkit.deploy.deploy(request_, "local", 1.0, progress=lines.append)
    assert (recorded["deploy_target"], recorded["deploy_strategy"]) == ("local", "replace")
    assert not [line for line in lines if "instead" in line]  # asked for local: nothing to explain

    canary = dataclasses.replace(request_, version="5", model_uri=f"s3://models/{MODEL}/5", traffic=30)
    recorded = kfkit.deploy.deploy(canary, "canary", 1.0, progress=lines.append)
    assert (recorded["deploy_target"], recorded["deploy_strategy"]) == ("local", "canary")
    assert lines[-1].startswith("deploy: recorded local deployment")
    assert lines[-2] == (
        "no Kubernetes cluster configured (no in-cluster service account, no kubeconfig): "
        "recording a local canary deployment instead"
    )
    assert [(p["version"], p["traffic"]) for p in json.loads(recorded["deploy_predictors"])] == [
        ("4", 70),
        ("5", 30),
    ]
    assert served_version(MODEL) == "4"

    with pytest.raises(KfkitError) as info:
        kfkit.deploy.check_deploy_strategy("blue-green")
    assert str(info.value) == (
        "The 'deploy_strategy' parameter of push must be one of 'auto', 'local', 'none', 'replace', "
        "'canary', 'shadow'. Got 'blue-green' instead."
    )
    with pytest.raises(KfkitError, match="parameter of push must be one of"):
        kfkit.deploy.deploy(request_, "blue-green", 1.0)
    with pytest.raises(KfkitError) as info:
        kfkit.deploy.deploy(request_, "replace", 1.0, target="seldon")
    assert str(info.value).startswith("deploy target 'seldon' was asked for but no cluster is configured")
    assert served_version(MODEL) == "4"  # neither refusal changed anything


@pytest.mark.parametrize(
    ("strategy", "traffic", "message"),
    [
        ("canary", 0, "canary traffic must be an integer percentage in 1..99, got 0"),
        ("canary", 100, "canary traffic must be an integer percentage in 1..99, got 100"),
        ("canary", True, "canary traffic must be an integer percentage in 1..99, got True"),
        ("blue-green", 10, "unknown deploy strategy 'blue-green'"),
        ("promote", 10, "strategy 'promote' is not a rollout of a new version"),
    ],
)
def test_deployment_request_is_checked_when_built(strategy: str, traffic: Any, message: str):
    with pytest.raises(KfkitError) as info:
        DeploymentRequest(MODEL, "2", "s3://models/penguins/2", strategy=strategy, traffic=traffic)
    assert message in str(info.value) and "\n" not in str(info.value)
    # Traffic only matters to a canary; the strategy names are the request module's.
    assert DeploymentRequest(MODEL, "2", "s3://m/2", strategy=request.SHADOW, traffic=0).traffic == 0
    assert request.ROLLOUT_STRATEGIES == ("replace", "canary", "shadow")


def test_target_selection_order(no_cluster: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Named target > KFKIT_DEPLOY_TARGET > in-cluster service account > kubeconfig > local."""
    assert registry.select() == registry.Selection("local", None, registry.NO_CLUSTER)
    kubeconfig = _unreachable_kubeconfig(tmp_path / "kubeconfig")
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    assert (registry.select().name, registry.select().cluster) == ("seldon", f"kubeconfig:{kubeconfig}")
    token = tmp_path / "token"
    token.write_text("t")
    monkeypatch.setattr(target_module, "SERVICE_ACCOUNT_TOKEN", token)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    assert (registry.select().name, registry.select().cluster) == ("seldon", "in-cluster")
    monkeypatch.setenv("KFKIT_DEPLOY_TARGET", "local")
    assert registry.select().name == "local" and cluster_config() is None
    assert registry.select("cluster") == registry.Selection(
        "seldon", "in-cluster", "deploy target 'cluster' was asked for"
    )
    monkeypatch.setenv("KFKIT_DEPLOY_TARGET", "kserve")
    with pytest.raises(KfkitError, match="KFKIT_DEPLOY_TARGET must be 'auto', 'cluster' or a deploy target"):
        registry.select()
    assert registry.select("local").name == "local"  # a named target does not read the env


def test_deploy_entry_point_on_kmock_api(kube: KmockApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("KUBECONFIG", str(kube.kubeconfig(tmp_path / "kubeconfig")))
    monkeypatch.delenv("KFKIT_DEPLOY_TARGET", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    request_ = DeploymentRequest(MODEL, "1", f"s3://models/{MODEL}/1", "a" * 64, namespace=NAMESPACE)
    with OperatorStandIn(kube.api()):
        recorded = kfkit.deploy.deploy(request_, "replace", 20)
        assert (recorded["deploy_target"], recorded["deploy_state"]) == ("seldon", "Available")
        second = dataclasses.replace(request_, version="2", model_uri=f"s3://models/{MODEL}/2")
        recorded = kfkit.deploy.deploy(second, "shadow", 20)
    assert recorded["deploy_strategy"] == "shadow"
    assert _shares(_read(kube)) == [("v1", 100), ("v2", "shadow")]
    _check_predictor(_read(kube)["spec"]["predictors"][1], "2")
    # A target bound to one namespace refuses a request for another before sending anything.
    bound = SeldonTarget(kube.api(), NAMESPACE)
    with pytest.raises(KfkitError, match="asks for namespace 'elsewhere', but this SeldonDeployment"):
        bound.apply(dataclasses.replace(second, version="3", namespace="elsewhere"), timeout=1)
    assert _shares(_read(kube)) == [("v1", 100), ("v2", "shadow")]
