"""SeldonDeployments through the Kubernetes API (``kubernetes`` client, ``CustomObjectsApi``).

Every change is read-modify-write with optimistic concurrency: the object is read, the new
predictors computed from what was read, and a JSON merge patch sent carrying the read
``metadata.resourceVersion``; the API server answers 409 Conflict when someone else wrote in
between, and the change is recomputed from a fresh read (``conflict_retries`` times).

A rollout then waits until Seldon's operator reports ``status.state == Available``, every
predictor's Deployment (``status.deploymentStatus[<deployment>-<predictor>-0-model]``, the
operator's own naming: ``seldon.operator_deployment_names``) has an available replica and no
Deployment of a removed predictor is left in that status; and until each of those Deployments,
read through ``AppsV1Api`` with the same credentials, is rolled out as ``kubectl rollout
status`` requires and runs the pod template kfkit asked for (``deployment_rollout``). The
Deployment check is needed because Seldon v1.19's operator never writes
``status.observedGeneration``: right after kfkit's write its status may still describe the
previous spec, which for a change of an existing predictor (same version, another size) says
Available before the operator has even rewritten the Deployment.
``Failed`` lasting ``failed_grace`` seconds (the operator also says Failed for one reconcile's
error, then retries), a Deployment past its progress deadline, or no success within the
timeout, restores the previous predictors (or deletes an object this rollout created) and
fails with one line.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from kfkit.deploy import seldon
from kfkit.deploy.request import DEFAULT_NAMESPACE, DeploymentRequest
from kfkit.deploy.target import TargetContext
from kfkit.errors import KfkitError

AVAILABLE = "Available"
FAILED = "Failed"

# What deployment_rollout says of one operator Deployment.
ROLLED_OUT = "rolled out"
WAITING = "waiting"
STALLED = "stalled"
# The rule of manifests/serving/rbac.yaml that lets kfkit read the operator's Deployments.
DEPLOYMENTS_RULE = "get, list, watch on deployments (apiGroup apps)"


def custom_objects_api(config: str) -> Any:
    """A ``CustomObjectsApi`` for ``in-cluster`` or ``kubeconfig:<path>`` (see cluster_config)."""
    from kubernetes import client
    from kubernetes import config as kube_config

    try:
        if config == "in-cluster":
            kube_config.load_incluster_config()
            return client.CustomObjectsApi()
        path = config.split(":", 1)[1]
        api_client = kube_config.new_client_from_config(config_file=path)
    except kube_config.ConfigException as exc:
        raise KfkitError(f"Kubernetes configuration {config}: {exc}") from None
    return client.CustomObjectsApi(api_client)


def _quantities(resources: Mapping[str, Any] | None) -> dict[str, dict[str, Decimal]]:
    """A container's ``resources`` with each quantity parsed: ``500m`` and ``0.5`` are equal."""
    from kubernetes.utils import parse_quantity

    return {
        bound: {kind: parse_quantity(value) for kind, value in values.items()}
        for bound, values in (resources or {}).items()
        if bound in ("requests", "limits") and values
    }


def _template_differences(deployment: dict[str, Any], predictor: dict[str, Any], index: int) -> list[str]:
    """How the Deployment differs from what ``predictor``'s ``componentSpecs[index]`` asks for:
    its replicas, each container's image and resources, and the model URI that the operator's
    storage initializer downloads. Empty when the operator has written this spec."""
    component = predictor["componentSpecs"][index]
    differences: list[str] = []
    wanted_replicas = component.get("replicas", predictor.get("replicas"))
    replicas = (deployment.get("spec") or {}).get("replicas", 1)
    if wanted_replicas is not None and replicas != wanted_replicas:
        differences.append(f"replicas {replicas}, wants {wanted_replicas}")
    pod = ((deployment.get("spec") or {}).get("template") or {}).get("spec") or {}
    containers = {c.get("name"): c for c in pod.get("containers") or []}
    for wanted in component["spec"].get("containers") or []:
        found = containers.get(wanted["name"])
        if found is None:
            differences.append(f"no container {wanted['name']}")
            continue
        if "image" in wanted and found.get("image") != wanted["image"]:
            differences.append(
                f"container {wanted['name']} image {found.get('image')}, wants {wanted['image']}"
            )
        if _quantities(found.get("resources")) != _quantities(wanted.get("resources")):
            differences.append(
                f"container {wanted['name']} resources {found.get('resources') or {}}, "
                f"wants {wanted.get('resources') or {}}"
            )
    model_uri = (predictor.get("graph") or {}).get("modelUri")
    if model_uri:
        downloaded = [arg for c in pod.get("initContainers") or [] for arg in c.get("args") or []]
        if model_uri not in downloaded:
            differences.append(f"does not download {model_uri}")
    return differences


def deployment_rollout(
    deployment: dict[str, Any] | None, predictor: dict[str, Any], index: int = 0
) -> tuple[str, str]:
    """Whether the operator's Deployment for ``predictor``'s ``componentSpecs[index]`` is rolled
    out: ``(ROLLED_OUT | WAITING | STALLED, why)``.

    What ``kubectl rollout status`` requires (the Deployment controller has seen the latest
    generation, every replica updated, no old one left, all available; a Progressing condition
    with reason ProgressDeadlineExceeded is a failure), after first requiring that the
    Deployment carries what kfkit asked for: a Deployment the operator has not rewritten yet
    is fully rolled out, but on the previous spec.
    """
    if deployment is None:
        return WAITING, "not created by the operator yet"
    differences = _template_differences(deployment, predictor, index)
    if differences:
        return WAITING, f"not yet rewritten by the operator ({'; '.join(differences)})"
    metadata = deployment.get("metadata") or {}
    status = deployment.get("status") or {}
    generation = int(metadata.get("generation") or 0)
    if int(status.get("observedGeneration") or 0) < generation:
        return WAITING, f"generation {generation} not yet observed by the Deployment controller"
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Progressing" and condition.get("reason") == "ProgressDeadlineExceeded":
            return STALLED, f"ProgressDeadlineExceeded: {condition.get('message') or 'no message'}"
    replicas = int((deployment.get("spec") or {}).get("replicas", 1))
    updated = int(status.get("updatedReplicas") or 0)
    total = int(status.get("replicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    if updated < replicas:
        return WAITING, f"{updated} of {replicas} replicas updated"
    if total > updated:
        old = total - updated
        return WAITING, f"{old} old replica{'s' if old > 1 else ''} pending termination"
    if available < replicas:
        return WAITING, f"{available} of {replicas} updated replicas available"
    return ROLLED_OUT, f"{available} of {replicas} updated replicas available"


def _api_message(exc: Any) -> str:
    try:
        body = json.loads(exc.body)
        return str(body.get("message") or body.get("reason") or exc.reason)
    except (TypeError, ValueError, AttributeError):
        return str(getattr(exc, "reason", exc))


class SeldonTarget:
    """``DeployTarget`` for Seldon Core v1 SeldonDeployments in one namespace.

    ``api`` is a ``CustomObjectsApi``; without one it is made from ``cluster`` (see
    ``kfkit.deploy.target.detect_cluster``) on the first call that needs the cluster, so a
    target built with neither still renders manifests.
    """

    def __init__(
        self,
        api: Any = None,
        namespace: str = DEFAULT_NAMESPACE,
        progress: Callable[[str], None] | None = None,
        poll_interval: float = 1.0,
        conflict_retries: int = 5,
        cluster: str | None = None,
        failed_grace: float = 5.0,
    ) -> None:
        self._api = api
        self._apps: Any = None
        self.cluster = cluster
        self.namespace = namespace
        self.progress = progress or (lambda line: None)
        self.poll_interval = poll_interval
        self.conflict_retries = conflict_retries
        # Seldon's operator reports state Failed on any error of one reconcile (a Service it
        # just deleted, a conflict) and retries: Failed ends a rollout once it has lasted this long.
        self.failed_grace = failed_grace

    @classmethod
    def from_context(cls, context: TargetContext) -> SeldonTarget:
        """The registry's factory (``seldon``)."""
        return cls(namespace=context.namespace, progress=context.progress, cluster=context.cluster)

    @property
    def api(self) -> Any:
        if self._api is None:
            if self.cluster is None:
                raise KfkitError(
                    "the seldon deploy target needs a Kubernetes cluster: no in-cluster service "
                    "account and no kubeconfig ($KUBECONFIG or ~/.kube/config)"
                )
            self._api = custom_objects_api(self.cluster)
        return self._api

    @property
    def apps(self) -> Any:
        """An ``AppsV1Api`` on the same client (credentials, host) as ``api``: the operator's
        Deployments are read with exactly the rights the SeldonDeployment is written with."""
        if self._apps is None:
            from kubernetes import client

            self._apps = client.AppsV1Api(self.api.api_client)
        return self._apps

    # -- the API calls, with errors as one line ------------------------------------------------

    def _call(self, what: str, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            return func(*args, **kwargs)
        except ApiException:
            raise
        except HTTPError as exc:
            host = getattr(self.api.api_client.configuration, "host", "?")
            raise KfkitError(f"cannot reach the Kubernetes API at {host} to {what}: {exc}") from None

    def _refused(self, what: str, exc: Any) -> KfkitError:
        return KfkitError(
            f"Kubernetes API refused to {what} SeldonDeployment in namespace {self.namespace!r}: "
            f"HTTP {exc.status}: {_api_message(exc)}"
        )

    def get(self, model_name: str) -> dict[str, Any] | None:
        from kubernetes.client.exceptions import ApiException

        name = seldon.resource_name(model_name)
        try:
            return self._call(
                "read",
                self.api.get_namespaced_custom_object,
                seldon.GROUP, seldon.VERSION, self.namespace, seldon.PLURAL, name,
            )  # fmt: skip
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise self._refused(f"read {name}", exc) from None

    def _require(self, model_name: str) -> dict[str, Any]:
        current = self.get(model_name)
        if current is None:
            raise KfkitError(
                f"no SeldonDeployment {seldon.resource_name(model_name)} in namespace {self.namespace!r}"
            )
        return current

    def _write(self, current: dict[str, Any] | None, desired: dict[str, Any]) -> dict[str, Any]:
        """Create, or merge-patch with ``current``'s resourceVersion as the precondition."""
        name = desired["metadata"]["name"]
        if current is None:
            return self._call(
                "create",
                self.api.create_namespaced_custom_object,
                seldon.GROUP, seldon.VERSION, self.namespace, seldon.PLURAL, desired,
            )  # fmt: skip
        old_annotations = current["metadata"].get("annotations") or {}
        new_annotations = desired["metadata"].get("annotations") or {}
        annotations: dict[str, Any] = dict(new_annotations)
        for key in old_annotations:
            if key.startswith("kfkit.io/") and key not in new_annotations:
                annotations[key] = None  # merge patch: null removes the key
        patch = {
            "metadata": {
                "resourceVersion": current["metadata"].get("resourceVersion"),
                "annotations": annotations,
            },
            "spec": {"predictors": desired["spec"]["predictors"]},
        }
        if patch["metadata"]["resourceVersion"] is None:
            del patch["metadata"]["resourceVersion"]
        return self._call(
            "patch",
            self.api.patch_namespaced_custom_object,
            seldon.GROUP, seldon.VERSION, self.namespace, seldon.PLURAL, name, patch,
        )  # fmt: skip

    def _change(
        self,
        model_name: str,
        compute: Callable[[dict[str, Any] | None], dict[str, Any]],
        what: str,
    ) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        """Read, compute, write; on 409 Conflict read again and recompute. (before, after)."""
        from kubernetes.client.exceptions import ApiException

        for attempt in range(self.conflict_retries + 1):
            current = self.get(model_name)
            desired = compute(current)
            try:
                return current, self._write(current, desired)
            except ApiException as exc:
                if exc.status == 409 and attempt < self.conflict_retries:
                    self.progress(
                        f"deploy: {desired['metadata']['name']} changed while we wrote "
                        f"({'exists' if current is None else 'resourceVersion conflict'}); retrying"
                    )
                    continue
                raise self._refused(what, exc) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _delete(self, model_name: str) -> None:
        from kubernetes.client.exceptions import ApiException

        name = seldon.resource_name(model_name)
        try:
            self._call(
                "delete",
                self.api.delete_namespaced_custom_object,
                seldon.GROUP, seldon.VERSION, self.namespace, seldon.PLURAL, name,
            )  # fmt: skip
        except ApiException as exc:
            if exc.status != 404:
                raise self._refused(f"delete {name}", exc) from None

    def read_deployment(self, name: str) -> dict[str, Any] | None:
        """The Deployment ``name`` in the namespace as plain JSON; None if absent."""
        from kubernetes.client.exceptions import ApiException

        try:
            # Raw JSON: the operator's object as the server sent it, not the client's model.
            response = self._call(
                f"read Deployment {name}",
                self.apps.read_namespaced_deployment,
                name,
                self.namespace,
                _preload_content=False,
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            if exc.status == 403:
                raise KfkitError(
                    f"Kubernetes API refused to read Deployment {name} in namespace {self.namespace!r} "
                    f"(HTTP 403: {_api_message(exc)}): kfkit checks the Seldon operator's Deployments "
                    f"after each change and needs {DEPLOYMENTS_RULE} there, which the Role "
                    "kfkit-seldon-deployer of manifests/serving/rbac.yaml grants"
                ) from None
            raise KfkitError(
                f"Kubernetes API refused to read Deployment {name} in namespace {self.namespace!r}: "
                f"HTTP {exc.status}: {_api_message(exc)}"
            ) from None
        return json.loads(response.data)

    # -- waiting ----------------------------------------------------------------------------------

    @staticmethod
    def ready(deployment: dict[str, Any]) -> tuple[bool, str]:
        """Whether Seldon reports every predictor of the spec available, and no other, and if not, why.

        A Deployment of a removed predictor still in ``status.deploymentStatus`` means the operator
        has not finished with the spec: it deletes that Deployment, then drops it from the status,
        only once the predictors that stay are ready. Until then its status may describe the
        previous spec (a promote, for one, makes the operator renumber the promoted predictor's
        metrics port and roll its Deployment, which kfkit's template check cannot see)."""
        status = deployment.get("status") or {}
        state = status.get("state", "")
        if state == FAILED:
            return False, f"state Failed: {status.get('description') or 'no description'}"
        components = status.get("deploymentStatus") or {}
        name = deployment["metadata"]["name"]
        expected: set[str] = set()
        for pred in deployment["spec"]["predictors"]:
            for index in range(len(pred.get("componentSpecs") or [])):
                names = seldon.operator_deployment_names(name, pred, index)
                expected.update(names)
                available = max(int((components.get(n) or {}).get("availableReplicas") or 0) for n in names)
                if available < 1:
                    return False, f"state {state or 'unset'}, predictor {pred['name']} not available yet"
        removed = sorted(set(components) - expected)
        if removed:
            return (
                False,
                f"state {state or 'unset'}, Deployment {removed[0]} of a removed predictor not yet deleted",
            )
        if state != AVAILABLE:
            return False, f"state {state or 'unset'}"
        return True, AVAILABLE

    def rolled_out(self, deployment_name: str, predictors: list[dict[str, Any]]) -> tuple[str, str]:
        """``deployment_rollout`` of every operator Deployment of ``predictors``: a stalled one
        and why, else the first one still waited for and why, else ``(ROLLED_OUT, AVAILABLE)``."""
        waiting: tuple[str, str] | None = None
        for pred in predictors:
            for index in range(len(pred.get("componentSpecs") or [])):
                names = seldon.operator_deployment_names(deployment_name, pred, index)
                found = None
                for name in names:
                    found = self.read_deployment(name)
                    if found is not None:
                        break
                state, why = deployment_rollout(found, pred, index)
                label = found["metadata"]["name"] if found is not None else " or ".join(names)
                if state == STALLED:
                    return STALLED, f"Deployment {label}: {why}"
                if state != ROLLED_OUT and waiting is None:
                    waiting = state, f"{label}: {why}"
        return waiting or (ROLLED_OUT, AVAILABLE)

    def wait(
        self, model_name: str, timeout: float, predictors: list[dict[str, Any]] | None = None
    ) -> tuple[bool, str, dict[str, Any] | None]:
        """Until Seldon says Available and every Deployment of ``predictors`` (the ones kfkit
        wrote; by default the object's) is rolled out; each new reason to wait is a progress line.

        The Deployments are read on every poll, not only once Seldon says Available: one past
        its progress deadline fails the rollout at once, whatever Seldon's status says (the
        operator calls it Failed only when no replica at all is available)."""
        deadline = time.monotonic() + timeout
        reason = "never read"
        said = ""
        failed_since: float | None = None
        current = None
        while True:
            current = self.get(model_name)
            if current is None:
                return False, "deleted while waiting", None
            name = current["metadata"]["name"]
            ok, reason = self.ready(current)
            if not reason.startswith("state Failed"):
                failed_since = None
            elif failed_since is None:
                failed_since = time.monotonic()
            elif time.monotonic() - failed_since >= self.failed_grace:
                return False, reason, current
            try:
                state, why = self.rolled_out(name, predictors or current["spec"]["predictors"])
            except KfkitError as exc:  # e.g. no right to read Deployments: fail, roll back
                return False, str(exc), current
            if state == STALLED:
                return False, why, current
            if ok and state == ROLLED_OUT:
                return True, AVAILABLE, current
            # Seldon's reason while it has one (it names the predictor), then the Deployment's.
            waiting_for = why if ok else f"SeldonDeployment {name}: {reason}"
            reason = why if ok else reason
            if waiting_for != said:
                self.progress(f"deploy: waiting for {waiting_for}")
                said = waiting_for
            if time.monotonic() >= deadline:
                return False, f"not Available after {timeout:g} s ({reason})", current
            time.sleep(min(self.poll_interval, max(0.0, deadline - time.monotonic())))

    def _rollout(
        self,
        model_name: str,
        compute: Callable[[dict[str, Any] | None], dict[str, Any]],
        what: str,
        timeout: float,
        undo: bool = True,
    ) -> dict[str, Any]:
        name = seldon.resource_name(model_name)

        def checked(current: dict[str, Any] | None) -> dict[str, Any]:
            desired = compute(current)
            # Before anything is written: a cluster whose Role predates the Deployment check
            # (manifests/serving/rbac.yaml) is refused in one line now, not after the change.
            first = desired["spec"]["predictors"][0]
            self.read_deployment(seldon.operator_deployment_names(name, first)[0])
            return desired

        before, after = self._change(model_name, checked, what)
        wanted = seldon.describe(after["spec"]["predictors"])
        self.progress(f"deploy: {what} {name} in {self.namespace}: {wanted}; waiting for Available")
        ok, reason, _ = self.wait(model_name, timeout, after["spec"]["predictors"])
        if ok:
            self.progress(f"deploy: {name} Available: {wanted}")
            return self.status(model_name)
        if not undo:
            raise KfkitError(f"{what} of SeldonDeployment {name} ({wanted}) failed: {reason}")
        if before is None:
            self._delete(model_name)
            restored = "deleted it (there was no previous deployment)"
        else:
            self._change(model_name, lambda current: seldon.rolled_back(current or before), "roll back")
            restored = f"rolled back to {seldon.describe(before['spec']['predictors'])}"
        raise KfkitError(f"{what} of SeldonDeployment {name} ({wanted}) failed: {reason}; {restored}")

    # -- DeployTarget -------------------------------------------------------------------------------

    def manifest(self, request: DeploymentRequest) -> dict[str, Any]:
        """The SeldonDeployment serving ``request``'s version alone (pure; no cluster needed)."""
        return seldon.seldon_deployment(
            request.model_name,
            request.version,
            request.model_uri,
            request.namespace or self.namespace,
            replicas=request.replicas,
            resources=request.resources,
        )

    def apply(self, rollout: DeploymentRequest, timeout: float) -> dict[str, Any]:
        if rollout.namespace and rollout.namespace != self.namespace:
            raise KfkitError(
                f"deployment of {rollout.model_name} asks for namespace {rollout.namespace!r}, "
                f"but this SeldonDeployment target serves {self.namespace!r}"
            )
        new = seldon.predictor(
            rollout.model_name,
            rollout.version,
            rollout.model_uri,
            replicas=rollout.replicas,
            resources=rollout.resources,
        )

        def compute(current: dict[str, Any] | None) -> dict[str, Any]:
            predictors, candidate = seldon.plan(current, rollout.strategy, new, rollout.traffic)
            change = f"{rollout.strategy} {seldon.predictor_name(rollout.version)}"
            return seldon.changed(current, rollout.model_name, self.namespace, predictors, candidate, change)

        return self._rollout(rollout.model_name, compute, rollout.strategy, timeout)

    def promote(self, model_name: str, timeout: float) -> dict[str, Any]:
        def compute(current: dict[str, Any] | None) -> dict[str, Any]:
            predictors, _ = seldon.plan(current, seldon.PROMOTE)
            assert current is not None  # plan refuses a missing deployment
            candidate = (current["metadata"].get("annotations") or {}).get(seldon.CANDIDATE_ANNOTATION)
            return seldon.changed(
                current, model_name, self.namespace, predictors, None, f"promote {candidate}"
            )

        return self._rollout(model_name, compute, "promote", timeout)

    def rollback(self, model_name: str, timeout: float) -> dict[str, Any]:
        self._require(model_name)

        def compute(current: dict[str, Any] | None) -> dict[str, Any]:
            if current is None:
                raise KfkitError(f"SeldonDeployment {seldon.resource_name(model_name)} disappeared")
            return seldon.rolled_back(current)

        # A failed rollback is not undone (that would pop yet another history entry).
        return self._rollout(model_name, compute, "rollback", timeout, undo=False)

    def served_version(self, model_name: str) -> str | None:
        """The primary (most traffic, non-shadow) predictor's version; None: no SeldonDeployment."""
        current = self.get(model_name)
        if current is None:
            return None
        predictors = current.get("spec", {}).get("predictors", [])
        version = (seldon.primary(predictors).get("labels") or {}).get(seldon.VERSION_LABEL)
        return None if version is None else str(version)

    def status(self, model_name: str) -> dict[str, Any]:
        return {"target": "seldon", **seldon.summary(self._require(model_name))}

    def history(self, model_name: str) -> list[dict[str, Any]]:
        entries = seldon.history(self._require(model_name))
        return [
            {"at": e.get("at"), "change": e.get("change"), "predictors": seldon.describe(e["predictors"])}
            for e in entries
        ]
