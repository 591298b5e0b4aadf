"""Where a pushed model is deployed: a small interface, and how kfkit picks the target.

``DeployTarget`` is what push and ``kfkit deploy`` talk to. Two implementations today:

- ``kfkit.deploy.kube.SeldonTarget``: a SeldonDeployment (Seldon Core v1) through the
  Kubernetes API; Seldon Core v2 (``Model``/``Experiment``) or KServe (``InferenceService``)
  would be further implementations of the same five methods.
- ``kfkit.deploy.local.LocalTarget``: a JSON record in the local state folder, which
  ``kfkit serve --model NAME`` (no version) serves. Used when no cluster is configured.

Target selection (``cluster_config``), flag > environment > detection:
``KFKIT_DEPLOY_TARGET=local|cluster`` forces one; otherwise a pod's service account
(in-cluster, as in a Kubeflow pipeline step), else ``$KUBECONFIG`` or ``~/.kube/config``,
else local.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from kfkit.errors import KfkitError

TARGET_ENV = "KFKIT_DEPLOY_TARGET"
SERVICE_ACCOUNT_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")
NO_DEPLOY = "none"


@dataclass(frozen=True)
class Rollout:
    """One model version to roll out with a strategy (``replace``, ``canary`` or ``shadow``)."""

    model_name: str
    version: str
    model_uri: str
    sha256: str = ""
    strategy: str = "replace"
    traffic: int = 10  # the canary's share, percent


class DeployTarget(Protocol):
    """A place that serves models. Each method returns ``summary``-shaped JSON (see seldon.py)."""

    def apply(self, rollout: Rollout, timeout: float) -> dict[str, Any]:
        """Roll out; wait until it serves; on failure or timeout restore the previous state
        and raise one clear KfkitError."""
        ...

    def status(self, model_name: str) -> dict[str, Any]: ...

    def history(self, model_name: str) -> list[dict[str, Any]]: ...

    def promote(self, model_name: str, timeout: float) -> dict[str, Any]: ...

    def rollback(self, model_name: str, timeout: float) -> dict[str, Any]: ...


def cluster_config() -> str | None:
    """``in-cluster``, ``kubeconfig:<path>``, or None (no cluster configured: deploy locally)."""
    forced = os.environ.get(TARGET_ENV, "").strip().lower()
    if forced not in ("", "local", "cluster"):
        raise KfkitError(f"{TARGET_ENV} must be 'local' or 'cluster', got {forced!r}")
    if forced == "local":
        return None
    if os.environ.get("KUBERNETES_SERVICE_HOST") and SERVICE_ACCOUNT_TOKEN.is_file():
        return "in-cluster"
    configured = os.environ.get("KUBECONFIG", "")
    candidates = [Path(p).expanduser() for p in configured.split(os.pathsep) if p]
    if not configured:
        candidates.append(Path("~/.kube/config").expanduser())
    for path in candidates:
        if path.is_file():
            return f"kubeconfig:{path}"
    if forced == "cluster":
        raise KfkitError(
            f"{TARGET_ENV}=cluster but no cluster is configured: no in-cluster service account "
            "and no kubeconfig ($KUBECONFIG or ~/.kube/config)"
        )
    return None


def get_target(
    namespace: str,
    progress: Callable[[str], None] | None = None,
    config: str | None = "detect",
) -> DeployTarget:
    """The Seldon target when a cluster is configured, else the local record."""
    if config == "detect":
        config = cluster_config()
    if config is None:
        from kfkit.deploy.local import LocalTarget

        return LocalTarget(progress=progress)
    from kfkit.deploy.kube import SeldonTarget, custom_objects_api

    return SeldonTarget(custom_objects_api(config), namespace, progress=progress)
