"""Deploy targets by name, and which one a deployment goes to.

A target is a module with a class that satisfies ``kfkit.deploy.target.DeployTarget`` and a
factory taking a ``TargetContext``; it becomes usable with one entry in ``_TARGETS`` below (or,
from outside kfkit, one ``register()`` call). Built-in entries are ``"module:attribute"``
strings loaded on first use, so ``import kfkit.deploy`` does not import the ``kubernetes``
client, and a machine deploying locally never needs it.

Selection (``select``), first match wins:

1. a target named by the caller (``kfkit deploy --target``, ``deploy(..., target=...)``);
2. ``KFKIT_DEPLOY_TARGET``: ``local``, ``cluster`` (the default cluster target, ``seldon``) or
   any registered name;
3. a pod's service account (in-cluster, as in a Kubeflow pipeline step), else ``$KUBECONFIG``
   or ``~/.kube/config``: the default cluster target;
4. else ``local``.

A target registered with ``needs_cluster=True`` named in 1 or 2 with no cluster configured is
an error (one line), not a silent local deployment: the user asked for that target.
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kfkit.deploy.request import DEFAULT_NAMESPACE
from kfkit.deploy.target import TARGET_ENV, DeployTarget, TargetContext, detect_cluster
from kfkit.errors import KfkitError

LOCAL = "local"
AUTO = "auto"  # the CLI's word for "no target named"
CLUSTER = "cluster"  # the default cluster target, whichever that is
CLUSTER_TARGET = "seldon"
RESERVED = (AUTO, CLUSTER, "none")
NO_CLUSTER = "no Kubernetes cluster configured (no in-cluster service account, no kubeconfig)"

TargetFactory = Callable[[TargetContext], DeployTarget]


@dataclass(frozen=True)
class TargetEntry:
    """A registered target: its factory (or ``"module:attribute"`` naming it) and whether it
    deploys to a Kubernetes cluster (then selection finds one for it)."""

    factory: str | TargetFactory
    needs_cluster: bool = False

    def load(self, name: str) -> TargetFactory:
        if not isinstance(self.factory, str):
            return self.factory
        module_name, _, attribute = self.factory.partition(":")
        try:
            found: Any = importlib.import_module(module_name)
            for part in attribute.split("."):
                found = getattr(found, part)
        except (ImportError, AttributeError) as exc:
            raise KfkitError(f"deploy target {name!r}: cannot load {self.factory}: {exc}") from None
        return found


_TARGETS: dict[str, TargetEntry] = {
    LOCAL: TargetEntry("kfkit.deploy.local:LocalTarget.from_context"),
    "seldon": TargetEntry("kfkit.deploy.kube:SeldonTarget.from_context", needs_cluster=True),
}


def register(
    name: str, factory: str | TargetFactory, *, needs_cluster: bool = False, replace: bool = False
) -> None:
    """Make a target selectable by ``name``. Refuses to shadow an existing one unless
    ``replace``: two plugins silently fighting over a name would deploy to the wrong place."""
    if not re.fullmatch(r"[a-z][a-z0-9-]*", name) or name in RESERVED:
        raise KfkitError(
            f"deploy target name {name!r}: use lowercase letters, digits and '-', "
            f"and none of {', '.join(repr(r) for r in RESERVED)}"
        )
    if name in _TARGETS and not replace:
        raise KfkitError(f"deploy target {name!r} is already registered")
    _TARGETS[name] = TargetEntry(factory, needs_cluster)


def unregister(name: str) -> None:
    """Forget a registered target (the local record cannot be removed: it is the fallback)."""
    if name == LOCAL:
        raise KfkitError("the 'local' deploy target is the fallback and cannot be unregistered")
    _TARGETS.pop(name, None)


def target_names() -> tuple[str, ...]:
    return tuple(sorted(_TARGETS))


def entry(name: str) -> TargetEntry:
    try:
        return _TARGETS[name]
    except KeyError:
        raise KfkitError(
            f"unknown deploy target {name!r}: expected one of {', '.join(repr(n) for n in target_names())}"
        ) from None


@dataclass(frozen=True)
class Selection:
    """Which target, the cluster it talks to (None for targets without one), and why, in words
    push can print ("no Kubernetes cluster configured ...: recording a local ... instead")."""

    name: str
    cluster: str | None
    reason: str


def select(name: str | None = None, *, connect: bool = True) -> Selection:
    """The target to use (see the module docstring for the order).

    ``connect=False`` is for rendering only: a cluster target named with no cluster configured
    is still selected (its ``manifest`` needs no cluster) instead of refused.
    """
    source = f"deploy target {name!r} was asked for"
    if name in (None, "", AUTO):
        name = os.environ.get(TARGET_ENV, "").strip().lower()
        source = f"{TARGET_ENV}={name}"
        if name not in ("", AUTO, CLUSTER) and name not in _TARGETS:
            raise KfkitError(
                f"{TARGET_ENV} must be {AUTO!r}, {CLUSTER!r} or a deploy target "
                f"({', '.join(repr(n) for n in target_names())}), got {name!r}"
            )
    if name in ("", AUTO):
        cluster = detect_cluster()
        if cluster is None:
            return Selection(LOCAL, None, NO_CLUSTER)
        return Selection(CLUSTER_TARGET, cluster, f"cluster from {cluster}")
    chosen = CLUSTER_TARGET if name == CLUSTER else name
    if chosen not in _TARGETS:
        raise KfkitError(
            f"unknown deploy target {name!r}: expected {AUTO!r}, {CLUSTER!r} or one of "
            f"{', '.join(repr(n) for n in target_names())}"
        )
    if not entry(chosen).needs_cluster:
        return Selection(chosen, None, source)
    cluster = detect_cluster()
    if cluster is None and connect:
        raise KfkitError(
            f"{source} but no cluster is configured: no in-cluster service account "
            "and no kubeconfig ($KUBECONFIG or ~/.kube/config)"
        )
    return Selection(chosen, cluster, source)


def get_target(
    selection: Selection | str | None = None,
    *,
    namespace: str = DEFAULT_NAMESPACE,
    progress: Callable[[str], None] | None = None,
) -> DeployTarget:
    """Build the selected target (``select()`` when none is given; a name is selected first)."""
    if not isinstance(selection, Selection):
        selection = select(selection)
    factory = entry(selection.name).load(selection.name)
    context = TargetContext(namespace=namespace, cluster=selection.cluster)
    if progress is not None:
        context = TargetContext(namespace=namespace, progress=progress, cluster=selection.cluster)
    return factory(context)
