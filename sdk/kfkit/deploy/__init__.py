"""Deploying a pushed model: what push and ``kfkit deploy`` call, whatever the target.

``deploy(request, strategy, timeout, progress)`` rolls a version out and returns the small
record push keeps in lineage; ``manifest(request, target)`` renders what a target would serve,
for push to keep as an artifact. Neither knows any target: targets are plugins found through
``kfkit.deploy.registry`` (built in: ``local``, ``seldon``), all speaking the
``kfkit.deploy.target.DeployTarget`` protocol about a ``kfkit.deploy.request.DeploymentRequest``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace as _with
from typing import Any

from kfkit.deploy.registry import LOCAL, Selection, get_target, register, select, unregister
from kfkit.deploy.request import (
    DEFAULT_NAMESPACE,
    DEPLOY_STRATEGIES,
    NONE,
    REPLACE,
    DeploymentRequest,
    check_deploy_strategy,
)
from kfkit.deploy.target import DeployTarget
from kfkit.errors import KfkitError, first_line

__all__ = [
    "DEPLOY_STRATEGIES",
    "LOCAL",
    "DeployTarget",
    "DeploymentRequest",
    "check_deploy_strategy",
    "deploy",
    "get_target",
    "manifest",
    "register",
    "select",
    "served_version",
    "unregister",
]


def deploy(
    request: DeploymentRequest,
    strategy: str,
    timeout: float,
    progress: Callable[[str], None] | None = None,
    *,
    target: str | None = None,
) -> dict[str, Any]:
    """Deploy a pushed version as push's ``deploy_strategy`` says; a small record for lineage.

    ``none``: nothing deployed. ``local``: the local record (what ``kfkit serve`` serves) with
    ``replace``, never a cluster. ``replace``/``canary``/``shadow``: that rollout on ``target``
    if named, else the selected one (``KFKIT_DEPLOY_TARGET``, in-cluster, kubeconfig), waiting
    until it serves and rolled back otherwise; with nothing configured, the local record with
    the same strategy, said through ``progress`` (a pipeline run on a laptop still deploys).
    ``strategy`` overrides ``request.strategy``: push has one parameter for both.
    """
    check_deploy_strategy(strategy)
    if strategy == NONE:
        return {"deployed": False, "deploy_target": NONE}
    say = progress or (lambda line: None)
    if strategy == LOCAL:
        selection = Selection(LOCAL, None, "deploy_strategy 'local'")
        rollout = _with(request, strategy=REPLACE)
    else:
        selection = select(target)
        rollout = _with(request, strategy=strategy)
        if selection.name == LOCAL and target is None:
            say(f"{selection.reason}: recording a local {strategy} deployment instead")
    chosen = get_target(selection, namespace=request.namespace or DEFAULT_NAMESPACE, progress=say)
    state = chosen.apply(rollout, timeout)
    return {
        "deployed": True,
        "deploy_target": selection.name,
        "deploy_strategy": rollout.strategy,
        "deploy_state": state.get("state"),
        "deploy_predictors": json.dumps(state.get("predictors", []), sort_keys=True),
    }


def manifest(request: DeploymentRequest, target: str | None = None) -> dict[str, Any]:
    """What ``target`` (else the selected one) serves for ``request``'s version on its own:
    the SeldonDeployment for ``seldon``, the JSON record for ``local``. Pure rendering: a
    cluster target renders without a cluster configured, and nothing is read or written."""
    selection = select(target, connect=False)
    return get_target(selection, namespace=request.namespace or DEFAULT_NAMESPACE).manifest(request)


def served_version(model_name: str, strategy: str, namespace: str = "") -> tuple[str | None, str]:
    """Which version of ``model_name`` serves now on the target that ``strategy`` (push's
    ``deploy_strategy``) deploys to, and how that was found, in words; (None, why) when it
    cannot be told in this process: ``none``, a target without ``served_version``, nothing
    deployed, or a target that cannot be reached (the caller falls back and says so)."""
    check_deploy_strategy(strategy)
    if strategy == NONE:
        return None, "deploy_strategy 'none' deploys nowhere: no target to ask"
    try:
        selection = Selection(LOCAL, None, "deploy_strategy 'local'") if strategy == LOCAL else select()
        chosen = get_target(selection, namespace=namespace or DEFAULT_NAMESPACE)
        ask = getattr(chosen, "served_version", None)
        if ask is None:
            return None, f"deploy target {selection.name!r} cannot tell which version serves"
        version = ask(model_name)
    except KfkitError as exc:
        return None, f"cannot ask deploy target: {first_line(exc)}"
    if version is None:
        return None, f"deploy target {selection.name!r} serves no version of {model_name}"
    return str(version), f"deploy target {selection.name!r} serves version {version}"
