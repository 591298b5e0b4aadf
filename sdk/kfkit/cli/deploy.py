"""``kfkit deploy status|history|promote|rollback`` (kfkit.deploy)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from kfkit.cli._app import (
    _emit_json,
    _progress,
    main,
    user_errors,
)

if TYPE_CHECKING:
    from kfkit.deploy.target import DeployTarget

# -- deploy: status, history, promote, rollback (kfkit.deploy) -------------------------------


def deployed_reference(reference: str) -> str:
    """``name`` -> ``name:<locally deployed version>`` when a local deployment is recorded."""
    from kfkit.deploy.local import served_version

    name, _, version = reference.partition(":")
    if version:
        return reference
    deployed = served_version(name)
    return f"{name}:{deployed}" if deployed else reference


@main.group("deploy")
def deploy_group() -> None:
    """Inspect and change a model's deployment: a SeldonDeployment when a cluster is
    configured (in-cluster or kubeconfig), else the local record `kfkit serve` uses."""


def _deploy_options(func):
    func = click.option("--json", "as_json", is_flag=True)(func)
    # A name checked by the registry when used, not a click.Choice fixed at import: a target
    # registered later (a plugin) is as usable here as a built-in one.
    func = click.option(
        "--target",
        default="auto",
        show_default=True,
        metavar="auto|cluster|NAME",
        help="auto: KFKIT_DEPLOY_TARGET, else the configured cluster if any (in-cluster, kubeconfig), "
        "else local. cluster: the default cluster target (seldon). NAME: a registered deploy "
        "target (local, seldon).",
    )(func)
    func = click.option("--namespace", default="kfkit-serving", show_default=True)(func)
    func = click.option("--model", "model_name", required=True, metavar="NAME")(func)
    return func


def _deploy_target(target: str, namespace: str) -> DeployTarget:
    """The named target, else the selected one (kfkit.deploy.registry.select)."""
    from kfkit.deploy.registry import get_target

    return get_target(target, namespace=namespace, progress=_progress)


def _print_state(state: dict[str, Any]) -> None:
    click.echo(f"{state.get('name')}  {state.get('target')}  {state.get('state')}")
    for pred in state.get("predictors", []):
        share = "shadow" if pred.get("shadow") else f"{pred.get('traffic')}%"
        click.echo(f"  {pred['name']:<12} {share:>7}  {pred.get('model_uri')}")
    if state.get("candidate"):
        click.echo(f"  candidate    {state['candidate']} (kfkit deploy promote|rollback)")
    click.echo(f"  history      {state.get('history', 0)} previous state(s)")


@deploy_group.command("status")
@_deploy_options
@user_errors
def deploy_status(model_name: str, namespace: str, target: str, as_json: bool) -> None:
    """Where a model is deployed, with which traffic split, and its state."""
    state = _deploy_target(target, namespace).status(model_name)
    _emit_json(state) if as_json else _print_state(state)


@deploy_group.command("history")
@_deploy_options
@user_errors
def deploy_history(model_name: str, namespace: str, target: str, as_json: bool) -> None:
    """Previous deployment states, oldest first (what rollback restores, newest first)."""
    entries = _deploy_target(target, namespace).history(model_name)
    if as_json:
        _emit_json({"model": model_name, "history": entries})
        return
    for entry in entries:
        click.echo(f"{entry.get('at')}  {entry.get('predictors')}  (then: {entry.get('change')})")


@deploy_group.command("promote")
@_deploy_options
@click.option("--timeout", default=600.0, show_default=True, help="Seconds to wait for Available.")
@user_errors
def deploy_promote(model_name: str, namespace: str, target: str, as_json: bool, timeout: float) -> None:
    """Give the canary (or shadow) all the traffic; rolled back if it does not become Available."""
    state = _deploy_target(target, namespace).promote(model_name, timeout)
    _emit_json(state) if as_json else _print_state(state)


@deploy_group.command("rollback")
@_deploy_options
@click.option("--timeout", default=600.0, show_default=True, help="Seconds to wait for Available.")
@user_errors
def deploy_rollback(model_name: str, namespace: str, target: str, as_json: bool, timeout: float) -> None:
    """Restore the previous predictors (kept in the history)."""
    state = _deploy_target(target, namespace).rollback(model_name, timeout)
    _emit_json(state) if as_json else _print_state(state)
