"""What every deploy target agrees on: the request, the strategies and their rules, the names.

Kept apart from any one target so that a target is only a renderer and an applier: the local
record (``kfkit.deploy.local``) and Seldon (``kfkit.deploy.seldon`` + ``kfkit.deploy.kube``)
both import from here, and neither imports the other. A new target (KServe, Seldon Core v2)
reads the same ``DeploymentRequest`` and inherits the same checks, so a request refused by
one target for a bad strategy or traffic share is refused by all of them, before anything
is written anywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kfkit.errors import KfkitError

# How a version is rolled out (the request's ``strategy``).
REPLACE = "replace"  # the new version takes all the traffic
CANARY = "canary"  # the new version takes ``traffic`` percent, the serving one the rest
SHADOW = "shadow"  # the new version gets a mirror of the traffic; its answers are discarded
ROLLOUT_STRATEGIES = (REPLACE, CANARY, SHADOW)

# Changes that are not rollouts of a new version (``kfkit deploy promote|rollback``).
PROMOTE = "promote"
ROLLBACK = "rollback"

# The push step's ``deploy_strategy``: a rollout strategy, or where not to go.
LOCAL = "local"  # always the local record, never a cluster (a ``replace`` there)
NONE = "none"  # push only, deploy nothing
AUTO = "auto"  # local outside a pod; in a pod, replace for the first deployment, canary after
DEPLOY_STRATEGIES = (AUTO, LOCAL, NONE, REPLACE, CANARY, SHADOW)

DEFAULT_NAMESPACE = "kfkit-serving"
# Previous states a target keeps for rollback: bounded, because Seldon keeps them in an
# annotation (262144 bytes for all annotations) and the local record should not grow forever.
HISTORY_LIMIT = 10


def record_name(model_name: str) -> str:
    """The name of a model's deployment record in every target: a DNS-1123 label (Kubernetes
    refuses anything else, and one rule for all targets keeps file and object names alike)."""
    from kfkit.names import check_model_name

    return check_model_name(model_name)  # already a DNS-1123 label: the name is the record's


def check_deploy_strategy(strategy: str, component: str = "push") -> None:
    """Checked before anything is pushed, in scikit-learn's one shape of parameter error;
    ``component`` is the one whose parameter it is (push, or resolve_baseline, which asks the
    same target which version serves)."""
    if strategy not in DEPLOY_STRATEGIES:
        raise KfkitError(
            f"The 'deploy_strategy' parameter of {component} must be one of "
            f"{', '.join(repr(s) for s in DEPLOY_STRATEGIES)}. Got {strategy!r} instead."
        )


def check_strategy(strategy: str) -> None:
    """One line naming the strategies every target understands."""
    if strategy not in (*ROLLOUT_STRATEGIES, PROMOTE, ROLLBACK):
        raise KfkitError(
            f"unknown deploy strategy {strategy!r}: expected one of "
            f"{', '.join(repr(s) for s in (*ROLLOUT_STRATEGIES, PROMOTE, ROLLBACK))}"
        )


def check_canary_traffic(traffic: object) -> None:
    """A canary's share must leave some traffic to each side: 0 is no canary, 100 a replace."""
    if not isinstance(traffic, int) or isinstance(traffic, bool) or not 0 < traffic < 100:
        raise KfkitError(f"canary traffic must be an integer percentage in 1..99, got {traffic!r}")


# What a served version's model container may ask of the cluster (push's `serving_resources`):
# the same names as a pipeline task's settings (kfkit.task_settings), Kubernetes quantities.
SERVING_RESOURCE_KEYS = ("cpu_request", "cpu_limit", "memory_request", "memory_limit")
MAX_REPLICAS = 100


def check_serving_size(replicas: Any, resources: Any, component: str = "push") -> None:
    """Replicas and resources of a served version, before anything is pushed: one line naming
    the parameter. A request above its limit is refused here rather than by the API server
    after the version was pushed."""
    if not isinstance(replicas, int) or isinstance(replicas, bool) or not 1 <= replicas <= MAX_REPLICAS:
        raise KfkitError(
            f"The 'serving_replicas' parameter of {component} must be an integer in 1..{MAX_REPLICAS}. "
            f"Got {replicas!r} instead."
        )
    if not isinstance(resources, Mapping):
        raise KfkitError(
            f"The 'serving_resources' parameter of {component} must be a mapping such as "
            f"{{'cpu_request': '500m', 'memory_limit': '1Gi'}}. Got {resources!r} instead."
        )
    if not resources:
        return
    # Kubernetes' own parser (its import costs ~0.7 s: only when there is something to parse).
    from kubernetes.utils.quantity import parse_quantity

    amounts = {}
    for key, value in resources.items():
        if key not in SERVING_RESOURCE_KEYS:
            raise KfkitError(
                f"The 'serving_resources' parameter of {component} has an unknown key {key!r}: "
                f"expected {', '.join(SERVING_RESOURCE_KEYS)}"
            )
        try:
            amounts[key] = parse_quantity(str(value)) if isinstance(value, str | int) else None
        except ValueError:
            amounts[key] = None
        if amounts[key] is None or amounts[key] <= 0 or isinstance(value, bool):
            raise KfkitError(
                f"The 'serving_resources' parameter of {component}: {key} must be a positive "
                f"Kubernetes quantity such as '500m' or '1Gi'. Got {value!r} instead."
            )
    for kind in ("cpu", "memory"):
        request, limit = amounts.get(f"{kind}_request"), amounts.get(f"{kind}_limit")
        if request is not None and limit is not None and request > limit:
            raise KfkitError(
                f"The 'serving_resources' parameter of {component}: {kind}_request "
                f"{resources[f'{kind}_request']!r} is above {kind}_limit {resources[f'{kind}_limit']!r}"
            )


@dataclass(frozen=True)
class DeploymentRequest:
    """One model version to serve, and how; checked when built, so no target sees a bad one.

    ``traffic`` is the canary's share (ignored by ``replace`` and ``shadow``). ``namespace``
    None means the target's own (``kfkit-serving`` unless the target was built for another);
    a target bound to a namespace refuses a request naming a different one rather than
    deploying somewhere the caller did not ask for.
    """

    model_name: str
    version: str
    model_uri: str
    sha256: str = ""
    strategy: str = REPLACE
    traffic: int = 10
    namespace: str | None = None
    replicas: int = 1  # of the version rolled out; a canary's serving version keeps its own
    resources: Mapping[str, str] = field(default_factory=dict)  # SERVING_RESOURCE_KEYS -> quantity

    def __post_init__(self) -> None:
        from kfkit.names import check_model_name

        check_model_name(self.model_name)
        if not str(self.version).strip():
            raise KfkitError(f"deployment request for {self.model_name}: empty model version")
        if not str(self.model_uri).strip():
            raise KfkitError(f"deployment request for {self.model_name}: empty model URI")
        if self.strategy not in ROLLOUT_STRATEGIES:
            check_strategy(self.strategy)  # unknown: says which exist
            raise KfkitError(
                f"strategy {self.strategy!r} is not a rollout of a new version: expected one of "
                f"{', '.join(repr(s) for s in ROLLOUT_STRATEGIES)}"
            )
        if self.strategy == CANARY:
            check_canary_traffic(self.traffic)
        check_serving_size(self.replicas, self.resources)

    @property
    def name(self) -> str:
        """``record_name(model_name)``: what the target calls this model's deployment."""
        return record_name(self.model_name)
