"""What each kfkit task asks of a cluster: image, CPU and memory, retries, a timeout, caching.

A pipeline calls :func:`configure_task` on each of its kfkit tasks; it applies the defaults
below, overridden by the settings :func:`compile_pipeline` is given (``kfkit compile
--resources FILE --image-registry R --image-tag T``), through kfp's public task methods
(``set_cpu_request``, ``set_memory_limit``, ``set_retry``, ``set_caching_options``,
``set_container_image``) and kfp-kubernetes' ``set_timeout``; every task also gets the pod
label ``kfkit.io/component`` the pipelines namespace's NetworkPolicy selects. kfp.local ignores
all of it.

A resources file names tasks by component and any of the fields of :class:`TaskSettings`::

    tasks:
      train: {memory_request: 8Gi, memory_limit: 16Gi, timeout_seconds: 14400}
      ingest: {retries: 5}
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kfkit import names
from kfkit.errors import KfkitError, first_line
from kfkit.images import ImageSettings


@dataclass(frozen=True)
class TaskSettings:
    cpu_request: str = ""
    cpu_limit: str = ""
    memory_request: str = ""
    memory_limit: str = ""
    retries: int = 0
    # KFP's retry policy: wait retry_backoff, then times retry_backoff_factor each time.
    retry_backoff: str = "30s"
    retry_backoff_factor: float = 2.0
    timeout_seconds: int = 0  # the pod's activeDeadlineSeconds; 0: none
    caching: bool = True


# Why these numbers: the tasks read the store and are short, except validate (TensorFlow and
# TFDV: ~1.5 GB resident on the penguins data, more with the data) and train (scikit-learn on
# the whole train split in memory: a 1M-row, 20-column table is ~1 GB as a DataFrame, more
# while fitting). Retries only where a failure is likely transient (the object store, the
# Kubernetes API): KFP retries on any failure, and a user error fails the same way again.
DEFAULTS: dict[str, TaskSettings] = {
    # Reads live state (the data's and the registry's listings): never cached.
    "resolve_source": TaskSettings(
        "100m", "", "256Mi", "512Mi", retries=3, timeout_seconds=600, caching=False
    ),
    "ingest": TaskSettings("500m", "", "1Gi", "4Gi", retries=3, timeout_seconds=3600),
    # Keyed on the registry's identity (resolve_source), so its cache follows pushes.
    "resolve_baseline": TaskSettings("100m", "", "512Mi", "1Gi", retries=3, timeout_seconds=600),
    "validate": TaskSettings("1", "", "4Gi", "8Gi", timeout_seconds=7200),
    "train": TaskSettings("1", "", "4Gi", "8Gi", timeout_seconds=14400),
    "evaluate": TaskSettings("500m", "", "2Gi", "4Gi", timeout_seconds=3600),
    # Side effects (a new version, a rollout): never cached, and not retried by KFP: a retry
    # after a rollout that failed (and was rolled back) finds its model already pushed and
    # reports `unchanged`, a success with nothing deployed. The object store client retries
    # transient HTTP errors inside the task. The timeout covers push's deploy_timeout (600 s).
    "push": TaskSettings("250m", "", "512Mi", "1Gi", timeout_seconds=1800, caching=False),
    # Scoring publishes write-once to s3://predictions/: never cached, so that every run checks
    # the registry and says whether it wrote or found the batch already scored. Memory is
    # bounded by its batch of rows.
    "score": TaskSettings("1", "", "1Gi", "4Gi", timeout_seconds=14400, caching=False),
}
NEVER_CACHED = frozenset(name for name, settings in DEFAULTS.items() if not settings.caching)


@dataclass(frozen=True)
class CompileSettings:
    """Everything a compile may change from the defaults."""

    images: ImageSettings = field(default_factory=ImageSettings)
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)  # component -> field -> value
    source: str = ""  # the resources file ``tasks`` came from, for messages

    def for_task(self, component: str) -> TaskSettings:
        return dataclasses.replace(DEFAULTS.get(component, TaskSettings()), **self.tasks.get(component, {}))


_active = CompileSettings()


@contextmanager
def using(settings: CompileSettings) -> Iterator[None]:
    """``settings`` for the tasks :func:`configure_task` sees while a pipeline is built."""
    global _active
    previous, _active = _active, settings
    try:
        yield
    finally:
        _active = previous


def component_of(task: Any) -> str:
    """The kfkit component name of a task (kfp names the component ``resolve-baseline``)."""
    return task.component_spec.name.replace("-", "_")


def configure_task(task: Any) -> Any:
    """Apply the active settings of ``task``'s component to it; returns the task."""
    from kfp import kubernetes

    component = component_of(task)
    settings = _active.for_task(component)
    container = task.component_spec.implementation.container
    if container is not None:
        task.set_container_image(_active.images.image(container.image))
    where = f"{_active.source}: tasks.{component}" if _active.source else f"task {component}"
    try:
        for value, setter in (
            (settings.cpu_request, task.set_cpu_request),
            (settings.cpu_limit, task.set_cpu_limit),
            (settings.memory_request, task.set_memory_request),
            (settings.memory_limit, task.set_memory_limit),
        ):
            if value:
                setter(value)
    except ValueError as exc:  # kfp's own check of a Kubernetes quantity
        raise KfkitError(f"{where}: {first_line(exc)}") from None
    if settings.retries:
        task.set_retry(
            settings.retries,
            backoff_duration=settings.retry_backoff,
            backoff_factor=settings.retry_backoff_factor,
        )
    if settings.timeout_seconds:
        kubernetes.set_timeout(task, settings.timeout_seconds)
    task.set_caching_options(settings.caching)
    kubernetes.add_pod_label(task, names.TASK_POD_LABEL, component)
    return task


_FIELD_TYPES = {f.name: f.type for f in dataclasses.fields(TaskSettings)}


def load_task_overrides(path: str) -> dict[str, dict[str, Any]]:
    """The ``tasks:`` of a resources file, checked: known components and fields, right types,
    and no caching turned on for a task that must not be cached. One line naming the file and
    key on a mistake."""
    from kfkit.yaml_files import load_yaml

    document = load_yaml(path, "resources file")
    if not isinstance(document, dict) or set(document) - {"tasks"}:
        raise KfkitError(f"{path}: expected one key, `tasks:` (component -> settings)")
    tasks = document.get("tasks") or {}
    if not isinstance(tasks, dict):
        raise KfkitError(f"{path}: `tasks` must map component names to settings")
    checked: dict[str, dict[str, Any]] = {}
    for component, values in tasks.items():
        if component not in DEFAULTS:
            raise KfkitError(f"{path}: tasks.{component}: unknown component (one of {', '.join(DEFAULTS)})")
        if not isinstance(values, dict):
            raise KfkitError(f"{path}: tasks.{component}: expected a mapping of settings")
        for key, value in values.items():
            where = f"{path}: tasks.{component}.{key}"
            kind = _FIELD_TYPES.get(key)
            if kind is None:
                raise KfkitError(f"{where}: unknown setting (one of {', '.join(_FIELD_TYPES)})")
            if kind == "str" and isinstance(value, int | float) and not isinstance(value, bool):
                value = str(value)  # `cpu_request: 2` means "2"
            ok = {
                "str": isinstance(value, str),
                "int": isinstance(value, int) and not isinstance(value, bool) and value >= 0,
                "float": isinstance(value, int | float) and not isinstance(value, bool) and value >= 1,
                "bool": isinstance(value, bool),
            }[kind]
            if not ok:
                raise KfkitError(f"{where}: expected {_WORDS[kind]}, got {value!r}")
            if key == "caching" and value and component in NEVER_CACHED:
                raise KfkitError(
                    f"{where}: {component} is never cached (it reads live state or has side effects)"
                )
            checked.setdefault(component, {})[key] = value
    return checked


_WORDS = {
    "str": "a Kubernetes quantity or duration (text)",
    "int": "a whole number >= 0",
    "float": "a number >= 1",
    "bool": "true or false",
}


def compile_pipeline(pipeline: Any, target: Path, settings: CompileSettings | None = None) -> None:
    """Compile the kfp pipeline ``pipeline`` to ``target`` with ``settings`` (default: the
    defaults). kfp builds a pipeline's tasks when it is declared, so it is declared again here,
    from its function, with the settings active."""
    from kfp import compiler, dsl

    spec = pipeline.component_spec
    with using(settings or CompileSettings()):
        rebuilt = dsl.pipeline(name=spec.name, description=spec.description)(pipeline.pipeline_func)
    try:
        compiler.Compiler().compile(rebuilt, str(target))
    except ValueError as exc:
        raise KfkitError(f"{target.name}: {first_line(exc)}") from None
