"""What a deploy target is (``DeployTarget``), what it is built from, and cluster detection.

``DeployTarget`` is all that push and ``kfkit deploy`` know of a target; which one is used is
the registry's business (``kfkit.deploy.registry``). Two implementations today:

- ``seldon``: ``kfkit.deploy.kube.SeldonTarget``, a SeldonDeployment (Seldon Core v1) through
  the Kubernetes API; Seldon Core v2 (``Model``/``Experiment``) or KServe
  (``InferenceService``) would be further implementations of the same methods.
- ``local``: ``kfkit.deploy.local.LocalTarget``, a JSON record in the local state folder,
  which ``kfkit serve --model NAME`` (no version) serves. Used when no cluster is configured.

Cluster detection (``detect_cluster``): a pod's service account (in-cluster, as in a Kubeflow
pipeline step), else ``$KUBECONFIG`` or ``~/.kube/config``, else none. The registry puts
``KFKIT_DEPLOY_TARGET`` (and an explicitly named target) in front of it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from kfkit.deploy.request import DEFAULT_NAMESPACE, NONE, DeploymentRequest

TARGET_ENV = "KFKIT_DEPLOY_TARGET"
SERVICE_ACCOUNT_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
NO_DEPLOY = NONE


def _no_progress(line: str) -> None:
    """Progress nobody listens to."""


@dataclass(frozen=True)
class TargetContext:
    """What a target factory is given: where to deploy and whom to tell.

    ``cluster`` is ``in-cluster``, ``kubeconfig:<path>`` or None. A target that talks to a
    cluster must still build with None (and fail with one line only when it has to talk),
    so that ``kfkit.deploy.manifest`` can render its objects on a machine without a cluster.
    """

    namespace: str = DEFAULT_NAMESPACE
    progress: Callable[[str], None] = _no_progress
    cluster: str | None = None


class DeployTarget(Protocol):
    """A place that serves models. Each method but ``manifest`` and ``history`` returns a
    status dict (``target``, ``name``, ``state``, ``predictors``, ``candidate``, ``history``),
    the shape ``kfkit deploy status`` prints and push records."""

    def manifest(self, request: DeploymentRequest) -> dict[str, Any]:
        """The target's own rendering of what serving ``request`` alone looks like (a
        SeldonDeployment, a JSON record...): pure, no I/O, so push can keep it as an artifact."""
        ...

    def apply(self, rollout: DeploymentRequest, timeout: float) -> dict[str, Any]:
        """Roll out; wait until it serves; on failure or timeout restore the previous state
        and raise one clear KfkitError."""
        ...

    def status(self, model_name: str) -> dict[str, Any]: ...

    def history(self, model_name: str) -> list[dict[str, Any]]: ...

    def promote(self, model_name: str, timeout: float) -> dict[str, Any]: ...

    def rollback(self, model_name: str, timeout: float) -> dict[str, Any]: ...

    # Optional, not part of the protocol (a target without it still works everywhere):
    #     def served_version(self, model_name: str) -> str | None
    # the version that serves the model's traffic now (the stable one during a canary, never
    # a shadow), or None when nothing of it is deployed. resolve_baseline asks it, through
    # ``kfkit.deploy.served_version``; a target that cannot tell leaves it out, and the
    # latest pushed version stands in (the baseline's metadata says which).


def detect_cluster() -> str | None:
    """``in-cluster``, ``kubeconfig:<path>``, or None: the configured cluster, if any."""
    if os.environ.get("KUBERNETES_SERVICE_HOST") and SERVICE_ACCOUNT_TOKEN.is_file():
        return "in-cluster"
    configured = os.environ.get("KUBECONFIG", "")
    candidates = [Path(p).expanduser() for p in configured.split(os.pathsep) if p]
    if not configured:
        candidates.append(Path("~/.kube/config").expanduser())
    for path in candidates:
        if path.is_file():
            return f"kubeconfig:{path}"
    return None


def cluster_config() -> str | None:
    """The cluster the selected target deploys to (None: a target without one, e.g. local).

    ``KFKIT_DEPLOY_TARGET`` first (``local``, ``cluster`` or a registered target's name),
    then detection; see ``kfkit.deploy.registry.select``.
    """
    from kfkit.deploy.registry import select

    return select().cluster
