"""Build and change the SeldonDeployment (``machinelearning.seldon.io/v1``) serving a model.

Pure functions on plain dicts; nothing here talks to a cluster (``kfkit.deploy.kube`` does).
The strategies, their checks, the history limit and the deployment's name are not Seldon's
but every target's (``kfkit.deploy.request``); this module only says how Seldon expresses them.

- The model is fetched from the object store by Seldon's storage initializer, which reads
  rclone-style credentials from the Secret named by ``envSecretRefName``: no credential is
  ever written into the manifest.
- Each predictor runs kfkit's serving image (``componentSpecs``, one container ``model``).
  Seldon's operator names its Deployment ``<deployment>-<predictor>-0-model`` and reports it
  under that name in ``status.deploymentStatus`` (``operator_deployment_names``), which is
  how a rollout is checked.
- Strategies (``plan``): ``replace``, ``canary`` (new predictor with N% of the traffic, the
  rest on the current one), ``shadow`` (mirrored traffic, answers discarded), ``promote``
  (the canary or shadow takes 100%), ``rollback`` (the previous predictors, from history).
- History: before every change the current ``spec.predictors`` are pushed onto the JSON list
  in the annotation ``kfkit.io/history`` (newest last, at most ``HISTORY_LIMIT``); rollback
  pops it. The history travels with the object, so any client can roll back.
- Seldon's own rules are checked before anything is sent (``check_predictors``).
"""

from __future__ import annotations

import copy
import datetime
import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from kfkit import signing
from kfkit.deploy.request import (
    CANARY,
    DEFAULT_NAMESPACE,
    HISTORY_LIMIT,
    PROMOTE,
    REPLACE,
    ROLLBACK,
    ROLLOUT_STRATEGIES,
    SHADOW,
    check_canary_traffic,
    check_strategy,
    record_name,
)
from kfkit.errors import KfkitError
from kfkit.images import SERVING_IMAGE  # noqa: E402 - re-exported for callers

GROUP = "machinelearning.seldon.io"
VERSION = "v1"
PLURAL = "seldondeployments"
KIND = "SeldonDeployment"
STORAGE_SECRET = "kfkit-seldon-rclone"
MODEL_CLASS = "kfkit.serving.model.KfkitModel"
TRUSTED_KEYS_VOLUME = "trusted-model-keys"

# The Pod Security Standards' "restricted" profile for the model's pod and container. The root
# filesystem is read-only, so the one writable place is /tmp (an emptyDir): gunicorn's worker
# heartbeat files and control socket and seldon-core's multiprocessing metrics manager write
# there; the model itself is read from /mnt/models, where the storage initializer put it.
POD_SECURITY_CONTEXT = {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
MODEL_CONTAINER_SECURITY_CONTEXT = {
    "runAsNonRoot": True,
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
}
SCRATCH_VOLUME = "tmp"
SCRATCH_MOUNT = "/tmp"

HISTORY_ANNOTATION = "kfkit.io/history"
CANDIDATE_ANNOTATION = "kfkit.io/candidate"
CHANGE_ANNOTATION = "kfkit.io/last-change"
VERSION_LABEL = "kfkit.io/model-version"

# The strategies, history limit, default namespace and record name are every target's, from
# kfkit.deploy.request; what follows is only how Seldon expresses them.


def resource_name(model_name: str) -> str:
    """The SeldonDeployment's name: the target-neutral ``record_name`` (already DNS-1123)."""
    return record_name(model_name)


def predictor_name(version: str) -> str:
    """``v<version>``: one predictor per model version."""
    return resource_name(f"v{version}")


def operator_deployment_names(deployment: str, predictor: dict[str, Any], index: int = 0) -> list[str]:
    """Names Seldon v1's operator may give the Deployment of ``componentSpecs[index]``.

    The operator's ``GetDeploymentName`` (operator/apis/machinelearning.seldon.io/v1/
    seldondeployment_types.go) builds ``<deployment>-<predictor>-<index>-<suffix>``, the suffix
    being the componentSpec's ``metadata.name`` or else its container names joined by ``-``.
    Over 63 characters it becomes ``seldon-<md5 hex>``, or ``<deployment>-<md5 hex>`` when the
    operator runs with ``DEPLOYMENT_NAME_AS_PREFIX=true``: both are returned then, since that
    is the operator's setting, not the object's. ``status.deploymentStatus`` is keyed by it.
    """
    spec = predictor["componentSpecs"][index]
    suffix = (spec.get("metadata") or {}).get("name") or "-".join(
        container["name"] for container in spec["spec"]["containers"]
    )
    name = f"{deployment}-{predictor['name']}-{index}-{suffix}"
    if len(name) <= 63:
        return [name]
    digest = hashlib.md5(name.encode()).hexdigest()  # noqa: S324 - Seldon's naming, not security
    names = [f"seldon-{digest}"]
    if len(f"{deployment}-{digest}") <= 63:
        names.append(f"{deployment}-{digest}")
    return names


def predictor(
    model_name: str,
    version: str,
    model_uri: str,
    image: str = SERVING_IMAGE,
    secret_name: str = STORAGE_SECRET,
    replicas: int = 1,
    traffic: int = 100,
    shadow: bool = False,
    resources: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """One predictor serving ``model_uri`` with kfkit's serving image; ``resources`` (keys of
    ``request.SERVING_RESOURCE_KEYS``) become the model container's requests and limits."""
    name = resource_name(model_name)
    pred_name = predictor_name(version)
    labels = {
        "app.kubernetes.io/name": name,
        "app.kubernetes.io/managed-by": "kfkit",
        VERSION_LABEL: str(version),
    }
    spec: dict[str, Any] = {
        "name": pred_name,
        "replicas": replicas,
        "labels": labels,
        "componentSpecs": [
            {
                "spec": {
                    # The model server never calls the Kubernetes API: no token in the pod.
                    "automountServiceAccountToken": False,
                    # Pod-wide, so the containers Seldon's operator adds (storage initializer,
                    # executor) get them too; both of its images run as a non-root user.
                    "securityContext": copy.deepcopy(POD_SECURITY_CONTEXT),
                    "containers": [
                        {
                            "name": "model",
                            "image": image,
                            "env": [
                                # One OpenMP thread per worker: tree models collapse when
                                # several workers' OpenMP threads fight for the cores.
                                {"name": "OMP_NUM_THREADS", "value": "1"},
                                {"name": "KFKIT_MODEL_DIR", "value": "/mnt/models"},
                                # gunicorn (>= 25) puts its control socket here, else under
                                # $HOME, which the read-only root filesystem refuses.
                                {"name": "XDG_RUNTIME_DIR", "value": SCRATCH_MOUNT},
                                # The public keys whose model signatures the server accepts.
                                {"name": signing.TRUSTED_KEYS_DIR_ENV, "value": signing.TRUSTED_KEYS_MOUNT},
                            ],
                            "securityContext": copy.deepcopy(MODEL_CONTAINER_SECURITY_CONTEXT),
                            "volumeMounts": [
                                {"name": SCRATCH_VOLUME, "mountPath": SCRATCH_MOUNT},
                                {
                                    "name": TRUSTED_KEYS_VOLUME,
                                    "mountPath": signing.TRUSTED_KEYS_MOUNT,
                                    "readOnly": True,
                                },
                            ],
                        }
                    ],
                    "volumes": [
                        {"name": SCRATCH_VOLUME, "emptyDir": {"sizeLimit": "64Mi"}},
                        {"name": TRUSTED_KEYS_VOLUME, "configMap": {"name": signing.TRUSTED_KEYS_CONFIG_MAP}},
                    ],
                },
            }
        ],
        "graph": {
            "name": "model",
            "type": "MODEL",
            "modelUri": model_uri,
            "envSecretRefName": secret_name,
            "children": [],
        },
    }
    if resources:
        container = spec["componentSpecs"][0]["spec"]["containers"][0]
        container["resources"] = container_resources(resources)
    if shadow:
        spec["shadow"] = True
    else:
        spec["traffic"] = traffic
    return spec


def container_resources(resources: Mapping[str, str]) -> dict[str, dict[str, str]]:
    """``{"cpu_request": "500m", "memory_limit": "1Gi"}`` as a container's ``resources``."""
    out: dict[str, dict[str, str]] = {}
    for key, value in resources.items():
        kind, bound = key.split("_")
        out.setdefault("requests" if bound == "request" else "limits", {})[kind] = str(value)
    return out


def seldon_deployment(
    model_name: str,
    version: str,
    model_uri: str,
    namespace: str = DEFAULT_NAMESPACE,
    image: str = SERVING_IMAGE,
    secret_name: str = STORAGE_SECRET,
    replicas: int = 1,
    resources: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """A SeldonDeployment with one predictor taking all traffic (the ``replace`` strategy)."""
    pred = predictor(model_name, version, model_uri, image, secret_name, replicas, resources=resources)
    return new_deployment(model_name, namespace, [pred])


def new_deployment(model_name: str, namespace: str, predictors: list[dict[str, Any]]) -> dict[str, Any]:
    name = resource_name(model_name)
    check_predictors(predictors, name)
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/name": name, "app.kubernetes.io/managed-by": "kfkit"},
            "annotations": {HISTORY_ANNOTATION: "[]"},
        },
        "spec": {"name": name, "protocol": "seldon", "predictors": predictors},
    }


def check_predictors(predictors: Sequence[dict[str, Any]], where: str = "SeldonDeployment") -> None:
    """Seldon's admission rules, checked before anything is sent; each a one-line KfkitError."""
    if not predictors:
        raise KfkitError(f"{where}: a SeldonDeployment needs at least one predictor")
    names = [str(p.get("name", "")) for p in predictors]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise KfkitError(f"{where}: predictor names must be unique, {repeated} repeated")
    shadows = [p for p in predictors if p.get("shadow")]
    serving = [p for p in predictors if not p.get("shadow")]
    if len(shadows) > 1:
        raise KfkitError(
            f"{where}: at most one shadow predictor is allowed, got {len(shadows)} "
            f"({', '.join(str(p['name']) for p in shadows)})"
        )
    if not serving:
        raise KfkitError(
            f"{where}: shadow predictor {shadows[0]['name']!r} cannot be alone: it mirrors the "
            "traffic of a serving predictor"
        )
    for p in serving:
        traffic = p.get("traffic", 0)
        if not isinstance(traffic, int) or isinstance(traffic, bool) or not 0 <= traffic <= 100:
            raise KfkitError(
                f"{where}: predictor {p['name']!r} traffic must be an integer in 0..100, got {traffic!r}"
            )
    total = sum(int(p.get("traffic", 0)) for p in serving)
    if total != 100:
        detail = ", ".join(f"{p['name']}={p.get('traffic', 0)}" for p in serving)
        raise KfkitError(f"{where}: traffic of non-shadow predictors must sum to 100, got {total} ({detail})")


def history(deployment: dict[str, Any]) -> list[dict[str, Any]]:
    """Previous predictor specs, oldest first: ``[{"at", "change", "predictors"}, ...]``."""
    raw = (deployment.get("metadata", {}).get("annotations") or {}).get(HISTORY_ANNOTATION) or "[]"
    try:
        entries = json.loads(raw)
    except ValueError:
        raise KfkitError(
            f"{deployment['metadata'].get('name')}: annotation {HISTORY_ANNOTATION} is not JSON"
        ) from None
    return entries if isinstance(entries, list) else []


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat()


def primary(predictors: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The predictor taking most of the traffic (the current one during a canary)."""
    serving = [p for p in predictors if not p.get("shadow")]
    if not serving:
        raise KfkitError("no serving (non-shadow) predictor")
    return max(serving, key=lambda p: int(p.get("traffic", 0)))


def plan(
    current: dict[str, Any] | None,
    strategy: str,
    new_predictor: dict[str, Any] | None = None,
    traffic: int = 10,
) -> tuple[list[dict[str, Any]], str | None]:
    """The predictors after ``strategy`` and the candidate's name (canary or shadow), if any.

    ``current`` is the deployment as read from the cluster (None if it does not exist).
    """
    where = f"SeldonDeployment {current['metadata']['name']}" if current else "SeldonDeployment"
    old = copy.deepcopy(current["spec"]["predictors"]) if current else []
    if strategy in ROLLOUT_STRATEGIES and new_predictor is None:
        raise KfkitError(f"strategy {strategy!r} needs a model version to roll out")
    if strategy == REPLACE:
        new = copy.deepcopy(new_predictor)
        new.pop("shadow", None)
        new["traffic"] = 100
        return [new], None
    if strategy in (CANARY, SHADOW):
        if not old:
            raise KfkitError(
                f"{where} does not exist yet: deploy it with strategy 'replace' before a {strategy}"
            )
        main = copy.deepcopy(primary(old))
        new = copy.deepcopy(new_predictor)
        if new["name"] == main["name"]:
            raise KfkitError(f"{where}: version {new['name']} is already the serving predictor")
        if strategy == CANARY:
            check_canary_traffic(traffic)
            main["traffic"] = 100 - traffic
            new.pop("shadow", None)
            new["traffic"] = traffic
        else:
            new["shadow"] = True
            new.pop("traffic", None)
        # The new candidate replaces any earlier canary or shadow.
        return [main, new], new["name"]
    if strategy == PROMOTE:
        if not old:
            raise KfkitError(f"{where} does not exist: nothing to promote")
        candidate = (current.get("metadata", {}).get("annotations") or {}).get(CANDIDATE_ANNOTATION)
        chosen = [p for p in old if p["name"] == candidate]
        if not candidate or not chosen:
            raise KfkitError(f"{where} has no canary or shadow to promote")
        new = chosen[0]
        new.pop("shadow", None)
        new["traffic"] = 100
        return [new], None
    check_strategy(strategy)  # raises the one-line "unknown deploy strategy" error
    raise KfkitError(f"{where}: strategy {strategy!r} is not planned here (see rolled_back)")


def changed(
    current: dict[str, Any] | None,
    model_name: str,
    namespace: str,
    predictors: list[dict[str, Any]],
    candidate: str | None,
    change: str,
) -> dict[str, Any]:
    """The desired object: ``current`` with new predictors, the old ones pushed onto history."""
    check_predictors(predictors, f"SeldonDeployment {resource_name(model_name)}")
    if current is None:
        desired = new_deployment(model_name, namespace, predictors)
        entries: list[dict[str, Any]] = []
    else:
        desired = copy.deepcopy(current)
        desired["spec"]["predictors"] = predictors
        entries = history(current)
        entries.append({"at": _now(), "change": change, "predictors": current["spec"]["predictors"]})
        entries = entries[-HISTORY_LIMIT:]
    annotations = desired["metadata"].setdefault("annotations", {})
    annotations[HISTORY_ANNOTATION] = json.dumps(entries, sort_keys=True, separators=(",", ":"))
    annotations[CHANGE_ANNOTATION] = json.dumps({"at": _now(), "change": change}, sort_keys=True)
    if candidate:
        annotations[CANDIDATE_ANNOTATION] = candidate
    else:
        annotations.pop(CANDIDATE_ANNOTATION, None)
    return desired


def rolled_back(current: dict[str, Any]) -> dict[str, Any]:
    """``current`` with the newest history entry restored as its predictors (and popped)."""
    name = current["metadata"]["name"]
    entries = history(current)
    if not entries:
        raise KfkitError(f"SeldonDeployment {name} has no previous predictors to roll back to")
    previous = entries.pop()
    predictors = previous["predictors"]
    check_predictors(predictors, f"SeldonDeployment {name} (history)")
    desired = copy.deepcopy(current)
    desired["spec"]["predictors"] = predictors
    annotations = desired["metadata"].setdefault("annotations", {})
    annotations[HISTORY_ANNOTATION] = json.dumps(entries, sort_keys=True, separators=(",", ":"))
    annotations[CHANGE_ANNOTATION] = json.dumps(
        {"at": _now(), "change": f"{ROLLBACK} to {describe(predictors)}"}, sort_keys=True
    )
    candidates = [p["name"] for p in predictors if p is not primary(predictors)]
    if candidates:
        annotations[CANDIDATE_ANNOTATION] = candidates[0]
    else:
        annotations.pop(CANDIDATE_ANNOTATION, None)
    return desired


def describe(predictors: Sequence[dict[str, Any]]) -> str:
    """``v1 90%, v2 10%`` / ``v1 100%, v2 shadow``."""
    parts = []
    for p in predictors:
        parts.append(f"{p['name']} shadow" if p.get("shadow") else f"{p['name']} {p.get('traffic', 0)}%")
    return ", ".join(parts)


def summary(deployment: dict[str, Any]) -> dict[str, Any]:
    """What a person or a script wants to know about a deployment, as plain JSON."""
    metadata = deployment.get("metadata", {})
    status = deployment.get("status") or {}
    predictors = [
        {
            "name": p["name"],
            "version": (p.get("labels") or {}).get(VERSION_LABEL),
            "traffic": None if p.get("shadow") else p.get("traffic", 0),
            "shadow": bool(p.get("shadow")),
            "model_uri": p.get("graph", {}).get("modelUri"),
        }
        for p in deployment.get("spec", {}).get("predictors", [])
    ]
    return {
        "name": metadata.get("name"),
        "namespace": metadata.get("namespace"),
        "state": status.get("state", "Unknown"),
        "description": status.get("description", ""),
        "predictors": predictors,
        "candidate": (metadata.get("annotations") or {}).get(CANDIDATE_ANNOTATION),
        "history": len(history(deployment)),
    }
