"""The one execution path every kfkit component runs through (TFX's launcher, in small).

A component's body is two imports and one call::

    from kfkit.components.train.executor import train as logic
    from kfkit.runtime import execute
    execute(train, locals(), logic, gates=("data_blessing",))

:func:`execute` reads the component's kfp signature (the one declaration of its inputs,
outputs and parameters), then, around the component's logic:

- **gates**: the logic runs only if every input artifact holds content (none was skipped
  upstream) and every input named in ``gates`` carries ``blessed: True`` in its metadata.
  Otherwise every output is written as a skipped record saying why, and the task succeeds:
  gating travels as data, so the same pipeline runs under kfp.local (which refuses
  ``dsl.If``) and in a cluster;
- **errors**: a :class:`KfkitError` ends the task with one line on stderr and exit code 1;
- **lineage** for local runs: with ``KFKIT_RUN_ID`` set (``kfkit run-local`` sets it), the task
  records its own execution, input and output artifacts and final state in the metadata store,
  the way KFP's launcher does it for each task in a cluster. A recording failure fails the task.
  In a cluster KFP records, and nothing here writes.

Nothing here imports TensorFlow or scikit-learn; the logic imports what it needs.
"""

from __future__ import annotations

import json
import os
import sys
import time
import typing
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kfkit.errors import KfkitError, first_line

# The context parameter every kfkit component declares, with dsl.PIPELINE_TASK_NAME_PLACEHOLDER
# as its default: kfp.local resolves it to the task's name (``train-2``), and a pipeline
# may pass the placeholder explicitly for a cluster.
TASK_NAME = "task_name"
# Set by ``kfkit run-local`` for its tasks: the local run to record lineage into, the metadata
# store and each task's image (taken from the compiled pipeline).
RUN_ID_ENV = "KFKIT_RUN_ID"
TASK_IMAGES_ENV = "KFKIT_TASK_IMAGES"
SKIPPED_FILE = "kfkit-skipped.json"


@dataclass
class Task:
    """What a component's logic gets: its artifacts by name, its parameters, and who it is."""

    component: str  # the component function's name, e.g. "train"
    name: str  # the pipeline task's name, e.g. "train-2"
    run_id: str  # the run it belongs to ("" when unknown)
    inputs: dict[str, Any]  # input name -> kfp artifact (``.path``, ``.uri``, ``.metadata``)
    outputs: dict[str, Any]  # output name -> kfp artifact
    params: dict[str, Any] = field(default_factory=dict)
    # Set by execute() when this task records its own lineage (local runs).
    lineage: TaskLineage | None = field(default=None, repr=False)

    def say(self, message: str) -> None:
        """One progress line; ``kfkit run-local`` shows these under the task's name."""
        print(f"kfkit {self.name}: {message}", flush=True)

    def record_outputs(self, *names: str) -> None:
        """Record these outputs (with their metadata so far) in the lineage now, before a step
        that cannot be undone: push records the version it pushed before deploying it, so a
        version that serves always has lineage even if the task dies next. The task's end
        updates the same artifacts. Without local lineage (in a cluster) KFP records every
        output when the task ends, and this does nothing."""
        if self.lineage is not None:
            self.lineage.record_outputs(names)


@dataclass(frozen=True)
class Signature:
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    parameters: tuple[str, ...]


def signature(component: Any) -> Signature:
    """Input artifacts, output artifacts and parameters of a kfp component function, read
    from its annotations (``Input[...]``, ``Output[...]``, anything else)."""
    from kfp.dsl import Input, Output

    function = getattr(component, "python_func", component)
    inputs, outputs, parameters = [], [], []
    for name, annotation in typing.get_type_hints(function, include_extras=True).items():
        if name == "return":
            continue
        inner = _unwrap_optional(annotation)
        args = typing.get_args(inner)
        if typing.get_origin(inner) is typing.Annotated and inner == Input[args[0]]:
            inputs.append(name)
        elif typing.get_origin(inner) is typing.Annotated and inner == Output[args[0]]:
            outputs.append(name)
        else:
            parameters.append(name)
    return Signature(tuple(inputs), tuple(outputs), tuple(parameters))


def _unwrap_optional(annotation: Any) -> Any:
    if typing.get_origin(annotation) is typing.Union:
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(options) == 1:
            return options[0]
    return annotation


def execute(
    component: Any,
    arguments: dict[str, Any],
    logic: Callable[[Task], None],
    gates: Sequence[str] = (),
) -> None:
    """Run ``logic`` as the task of ``component`` called with ``arguments`` (its ``locals()``)."""
    declared = signature(component)
    function = getattr(component, "python_func", component)
    task_name = str(arguments.get(TASK_NAME) or "")
    if not task_name or task_name.startswith("{{"):
        task_name = function.__name__  # the placeholder was not resolved (not passed in a cluster)
    task = Task(
        component=function.__name__,
        name=task_name,
        run_id=os.environ.get(RUN_ID_ENV, "") or str(arguments.get("run_id") or ""),
        inputs={k: arguments[k] for k in declared.inputs if arguments.get(k) is not None},
        outputs={k: arguments[k] for k in declared.outputs},
        params={k: arguments.get(k) for k in declared.parameters if k != TASK_NAME},
    )
    if task.run_id.startswith("{{"):
        task.run_id = ""
    lineage = TaskLineage.for_task(task) if os.environ.get(RUN_ID_ENV) else None
    task.lineage = lineage
    started = time.perf_counter()
    with _task_errors(task, lineage):
        if lineage:
            lineage.start()
        cache = None
        if lineage:  # local runs only (kfkit.local_cache): a hit restores the outputs, skips the logic
            from kfkit.local_cache import TaskCache, cached_properties

            cache = TaskCache.for_task(task)
            hit = cache.restore(task) if cache else None
            if hit is not None:
                lineage.finish(succeeded=True, cached=cached_properties(hit))
                task.say(f"cached: the outputs of run {hit.run_id or '?'} (key {hit.key[:12]})")
                return
        reason, gate = skip_reason(task.inputs, gates)
        if reason:
            for artifact in task.outputs.values():
                write_skipped(artifact, reason, gate)
            task.say(f"not run: {reason}")
        else:
            logic(task)
        if lineage:
            lineage.finish(succeeded=True)
        if cache:  # only a task that succeeded (and was recorded so) is stored
            cache.store(task)
    task.say(f"done in {time.perf_counter() - started:.1f}s")


@contextmanager
def _task_errors(task: Task, lineage: TaskLineage | None) -> Iterator[None]:
    try:
        yield
    except KfkitError as exc:
        message = str(exc)
        if lineage and lineage.task_id is not None:
            lineage.finish(succeeded=False, error=message)
        print(f"kfkit {task.name}: error: {message}", file=sys.stderr, flush=True)
        raise SystemExit(1) from None
    except BaseException as exc:
        # A bug, not a user error: record it and keep the traceback.
        if lineage and lineage.task_id is not None and not isinstance(exc, SystemExit):
            lineage.finish(succeeded=False, error=f"{type(exc).__name__}: {first_line(exc)}")
        raise


def skip_reason(inputs: dict[str, Any], gates: Sequence[str] = ()) -> tuple[str | None, str]:
    """Why the logic must not run (None: it may), and the gate input that refused ("" when an
    input was skipped upstream: that task's own record names the gate). An input skipped
    upstream has no content; a gate input must say ``blessed: True`` (nothing is blessed by
    default)."""
    for name, artifact in inputs.items():
        if artifact.metadata.get("skipped"):
            return f"input '{name}' was not produced: {artifact.metadata.get('reason', 'skipped')}", ""
    for name in gates:
        artifact = inputs.get(name)
        if artifact is None:
            return f"gate input '{name}' was not given", name
        if not artifact.metadata.get("blessed"):  # True here, 1 after a trip through MLMD
            return f"'{name}' is not blessed: {artifact.metadata.get('reason', 'no blessing recorded')}", name
    return None, ""


def write_record(artifact: Any, record: dict[str, Any], file_name: str) -> None:
    """A small JSON file as an artifact's content: KFP's launcher uploads every output, so
    each must exist even when it only records what happened."""
    folder = Path(artifact.path)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / file_name).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")


def write_skipped(artifact: Any, reason: str, gate: str = "") -> None:
    """An output that holds only why it was not produced; ``gate``: the input that refused."""
    record = {"skipped": True, "reason": reason, **({"gate": gate} if gate else {})}
    write_record(artifact, record, SKIPPED_FILE)
    artifact.metadata.update(record)


class TaskLineage:
    """Task-side lineage for a local run: this task's execution, its INPUT events (the
    artifacts upstream tasks recorded, found by URI), then its OUTPUT artifacts and state."""

    def __init__(self, task: Task, store: Any, run: Any, image: str) -> None:
        self.task = task
        self.store = store
        self.run = run
        self.image = image
        self.task_id: int | None = None
        self.recorded: dict[str, int] = {}  # output name -> artifact id recorded before the end

    @classmethod
    def for_task(cls, task: Task) -> TaskLineage:
        from kfkit.metadata import open_store

        store = open_store()
        run = store.run_handle(task.run_id)
        if run is None:
            raise KfkitError(
                f"{task.name}: metadata: run {task.run_id} is not recorded in {store.description}"
            )
        images = json.loads(os.environ.get(TASK_IMAGES_ENV) or "{}")
        return cls(task, store, run, images.get(task.name, ""))

    def start(self) -> None:
        uris = {name: artifact.uri for name, artifact in self.task.inputs.items()}
        found = self._guard(
            "find input artifacts", lambda: self.store.artifact_ids_by_uri(list(uris.values()))
        )
        input_ids = {name: found[uri] for name, uri in uris.items() if uri in found}
        self.task_id = self._guard(
            "start the task",
            lambda: self.store.start_task(self.run, self.task.name, self.image, self.task.params, input_ids),
        )

    def _outputs(self, names: Sequence[str]) -> list[Any]:
        from kfkit.metadata.store import OutputArtifact

        return [
            OutputArtifact(
                name=name,
                type=self.task.outputs[name].schema_title,
                uri=self.task.outputs[name].uri,
                metadata=dict(self.task.outputs[name].metadata),
                id=self.recorded.get(name),
            )
            for name in names
        ]

    def record_outputs(self, names: Sequence[str]) -> None:
        from kfkit.metadata.store import RUNNING

        recorded = self._guard(
            "record outputs",
            lambda: self.store.finish_task(self.run, self.task_id, RUNNING, self._outputs(names)),
        )
        self.recorded.update(recorded)

    def finish(self, succeeded: bool, error: str | None = None, cached: dict[str, Any] | None = None) -> None:
        """The task's final state and outputs; ``cached``: its outputs were restored from the
        local cache (state CACHED, as KFP records a cache hit; the values say from where)."""
        from kfkit.metadata.store import CACHED, COMPLETE, FAILED

        # A failed task keeps the outputs it recorded early (a pushed version stays in lineage).
        outputs = self._outputs(list(self.task.outputs)) if succeeded else []
        task_id, self.task_id = self.task_id, None  # never finished twice
        state = (CACHED if cached else COMPLETE) if succeeded else FAILED
        self._guard(
            "finish the task",
            lambda: self.store.finish_task(self.run, task_id, state, outputs, error, properties=cached),
        )

    def _guard(self, what: str, action: Callable[[], Any]) -> Any:
        try:
            return action()
        except KfkitError:
            raise
        except Exception as exc:  # noqa: BLE001 - lineage is part of the task: fail loudly, one line
            raise KfkitError(
                f"metadata: could not {what} in {self.store.description}: {first_line(exc)}"
            ) from None
