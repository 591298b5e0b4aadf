"""Run a pipeline on one machine with ``kfp.local`` and summarise it from its lineage.

The pipeline run is a compiled YAML (kfkit's own under ``pipelines/compiled/``, the very file
that is uploaded to Kubeflow Pipelines, or any pipeline built from kfkit's components),
executed by ``kfp.local.SubprocessRunner(use_venv=False)`` in this environment.

kfp.local has no public hook for task starts and ends, and does not say what it names the
run, so kfkit uses only what is public:

- the run is named here and recorded in the metadata store before anything runs (the run
  contexts and the root DAG execution with the parameters, as KFP's root driver does);
- each task records its own execution, artifacts and final state, as KFP's launcher does in
  a cluster (:mod:`kfkit.runtime`, told the run by ``KFKIT_RUN_ID``);
- the summary is derived from the compiled pipeline (which tasks exist) and those records
  (what each did), so a pipeline with ``train-2`` is summarised like any other;
- ``raise_on_error=True`` makes kfp.local raise when a task fails; the failed task's own
  record says why.

kfp.local's output (every task's log) goes to ``<state>/runs/<run-id>.log``; the terminal
gets kfkit's own progress lines, one per line a task says.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import shutil
import socket
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kfkit.catalog import load_compiled, pipeline_spec_file
from kfkit.errors import KfkitError, first_line
from kfkit.local_cache import (
    CACHE_DIR_ENV,
    VERSIONS_ENV,
    CacheEntryError,
    Entry,
    LocalCache,
    cache_dir,
    cache_enabled,
    cacheable,
    cached_properties,
    function_of,
    pipeline_versions,
    task_key,
)
from kfkit.local_store import LocalObjectStore, pid_alive
from kfkit.metadata import open_store
from kfkit.metadata.config import URI_ENV
from kfkit.metadata.store import (
    CACHED,
    COMPLETE,
    CONTAINER_EXECUTION,
    FAILED,
    MetadataStore,
    OutputArtifact,
    RunHandle,
)
from kfkit.params import check_no_nested_null
from kfkit.runtime import RUN_ID_ENV, TASK_IMAGES_ENV
from kfkit.settings import state_dir
from kfkit.storage import ENDPOINT_ENV
from kfkit.warm_start import routes_for, warm_interpreters

Progress = Callable[[str], None]
_STATUS = {COMPLETE: "SUCCEEDED", CACHED: "CACHED", FAILED: "FAILED"}
# How a run ended, for people and schedulers (``kfkit run-local`` exits with OUTCOME_EXIT_CODES):
PUSHED, UNCHANGED, COMPLETED = "pushed", "unchanged", "completed"
NOT_BLESSED, FAILED_RUN = "not blessed", "failed"
OUTCOME_EXIT_CODES = {PUSHED: 0, UNCHANGED: 0, COMPLETED: 0, FAILED_RUN: 1, NOT_BLESSED: 3}


@dataclass
class RunSummary:
    """One local run, derived from the compiled pipeline and the run's lineage records.

    Per-task maps are keyed by the pipeline's task names (``train``, ``train-2``, ...)."""

    run_id: str
    pipeline: str
    status: str  # SUCCEEDED or FAILED
    tasks: dict[str, str]  # task -> SUCCEEDED / CACHED / FAILED / NOT_RUN (in pipeline order)
    error: str | None = None
    # pushed, unchanged (the latest version is this very model), not blessed (a gate refused),
    # completed (no push in the pipeline) or failed.
    outcome: str = COMPLETED
    refused: dict[str, str] | None = None  # the first gate that refused: task, gate, reason
    task_seconds: dict[str, float] = field(default_factory=dict)
    dataset_fingerprint: str | None = None
    validation: dict[str, dict[str, Any]] = field(default_factory=dict)  # task -> verdict
    features: dict[str, dict[str, str]] = field(default_factory=dict)  # task -> feature -> role
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # task -> metrics
    blessed: dict[str, bool] = field(default_factory=dict)  # task -> model blessing
    pushed: dict[str, dict[str, str]] = field(default_factory=dict)  # task -> version, uri, sha256
    # task -> what a scoring did: model version, rows scored and rejected (by reason), classes, where
    scored: dict[str, dict[str, Any]] = field(default_factory=dict)
    artifacts: dict[str, dict[str, Any]] = field(default_factory=dict)  # "task.output" -> metadata
    artifact_uris: dict[str, str] = field(default_factory=dict)  # "task.output" -> uri
    seconds: float = 0.0
    parameters: dict[str, Any] = field(default_factory=dict)
    log: str = ""
    run_root: str = ""  # the run's folder of artifacts (kfp.local's pipeline root)
    metadata: dict[str, Any] = field(default_factory=dict)  # where lineage was recorded

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def pushed_version(self) -> dict[str, str] | None:
        """The one pushed version, for pipelines with a single push (None if nothing was)."""
        return next(iter(self.pushed.values()), None)

    def version_that_serves(self) -> str | None:
        """The version this run leaves serving: the one it pushed, or, when unchanged, the one the
        deploy target serves (the unchanged version itself unless a rollback moved away from it)."""
        pushed = self.pushed_version()
        if pushed:
            return pushed["version"]
        unchanged = [m for m in self.artifacts.values() if m.get("unchanged")]
        if not unchanged:
            return None
        return str(unchanged[0].get("served_version") or unchanged[0]["version"])


class _ProgressTee:
    """Stands in for sys.stdout during a kfp.local run: everything to the log file, and the
    lines kfkit's own tasks print (``kfkit <task>: ...``) to the progress callback."""

    def __init__(self, log_file, progress: Progress) -> None:
        self.log_file = log_file
        self.progress = progress
        self.buffer = ""

    def write(self, text: str) -> int:
        self.log_file.write(text)
        self.buffer += text
        while "\n" in self.buffer:
            line, self.buffer = self.buffer.split("\n", 1)
            line = line.strip()
            if line.startswith("kfkit ") and ": " in line:
                task, message = line[len("kfkit ") :].split(": ", 1)
                self.progress(f"[{task}] {message}")
        return len(text)

    def flush(self) -> None:
        self.log_file.flush()

    def isatty(self) -> bool:
        return False


@contextlib.contextmanager
def object_store_env() -> Iterator[bool]:
    """Use the object store from the environment, or a lease on the local one (started if
    needed, stopped when its last user is done). Yields whether this call started it."""
    if os.environ.get(ENDPOINT_ENV):
        yield False
        return
    with LocalObjectStore().lease() as (state, started_here), _environ(state.config.to_env()):
        yield started_here


@contextlib.contextmanager
def _environ(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run_local(
    parameters: dict[str, Any],
    pipeline: str = "training",
    progress: Progress | None = None,
    metadata_uri: str | None = None,
    use_cache: bool = True,
) -> RunSummary:
    """Run a pipeline locally (kfkit's by name, or a .py / compiled .yaml file) and record its
    lineage in the metadata store (``metadata_uri``, else ``KFKIT_METADATA_URI``, else SQLite
    under the state folder). Uses the local object store when none is configured (see
    ``object_store_env``). Never raises for a failed task: the summary says.

    ``use_cache``: reuse the outputs of tasks whose component version, parameters and input
    contents are those of an earlier successful task (:mod:`kfkit.local_cache`; recorded as
    CACHED; ``KFKIT_CACHE=0`` turns it off too). When every cacheable task is a hit, no task
    process starts at all: resolve_source and push (never cached) run in this process and the
    rest is restored (:class:`CachePlan`). Otherwise kfp.local runs the pipeline and each task
    looks itself up."""
    progress = progress or (lambda line: None)
    spec_path = pipeline_spec_file(pipeline)
    spec = _compiled_spec(spec_path)
    _check_parameters(spec, parameters, spec_path)
    root = state_dir()
    routes = routes_for(spec)
    failure = None
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        # First: the servers' imports overlap the components' parameter checks (which import
        # their executors: scikit-learn for train), the store's start and the cache plan, which
        # reads the whole source for its sha256 (warm_start.py). What the plan answers, they
        # drop; a check that refuses stops them on its way out, like any other failure.
        warm = stack.enter_context(warm_interpreters(root, routes))
        preflight(spec, with_defaults(spec, parameters))  # every parameter, before anything is opened
        store = open_store(metadata_uri)  # before anything runs: an unreachable store loses nothing
        name = spec["pipelineInfo"]["name"]
        run_id = f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
        runs_dir = root / "runs"
        runs_dir.mkdir(exist_ok=True)
        run_root = root / "pipeline_root" / run_id
        log_path = runs_dir / f"{run_id}.log"
        values = with_defaults(spec, parameters)
        for line in mark_abandoned_runs(store):
            progress(line)
        owner = {"kfkit_host": socket.gethostname(), "kfkit_pid": os.getpid()}
        run = store.start_run(name, run_id, values, str(run_root), owner)

        from kfp import local  # here, not first: its import (0.4-0.5 s) overlaps the servers'

        local.init(
            runner=local.SubprocessRunner(use_venv=False),
            pipeline_root=str(run_root),
            raise_on_error=True,
        )
        task_env = {
            RUN_ID_ENV: run_id,
            URI_ENV: store.description,  # the store's URI, never with a password
            TASK_IMAGES_ENV: json.dumps(task_images(spec)),
        }
        cache = LocalCache(cache_dir(root)) if use_cache and cache_enabled() else None
        versions = pipeline_versions(spec) if cache else {}
        if cache:
            task_env.update({CACHE_DIR_ENV: str(cache.root), VERSIONS_ENV: json.dumps(versions)})
        stack.enter_context(object_store_env())
        stack.enter_context(_environ(task_env))
        log = stack.enter_context(open(log_path, "w"))
        plan = CachePlan.make(spec, values, versions, cache, run_root) if cache else None
        if plan is not None and plan.complete:
            for profile in list(warm.servers):  # the cache answers every task: no server is needed
                warm.drop(profile)
        with contextlib.redirect_stdout(_ProgressTee(log, progress)):
            done = plan.run(store, run) if plan and plan.complete else None
        if done is not None:
            failure = done or None
        else:
            if plan is not None and plan.complete:  # its entries could not be restored after all
                warm = stack.enter_context(warm_interpreters(root, routes))
            validating = {t for t, f in (plan.functions if plan else {}).items() if f in routes["validate"]}
            if plan is not None and plan.hits.keys() >= validating:
                warm.drop("validate")  # validate is cached: nobody needs TensorFlow imported
            with (
                contextlib.redirect_stdout(_ProgressTee(log, progress)),
                warnings.catch_warnings(),
                warm.as_sys_executable(),
            ):
                # kfp warns that kfkit's image name does not contain "python": expected here.
                warnings.simplefilter("ignore", RuntimeWarning)
                try:
                    load_compiled(spec_path)(**parameters)
                except RuntimeError as exc:  # kfp.local: "Pipeline ... finished with status FAILURE"
                    failure = first_line(exc)
    seconds = round(time.perf_counter() - started, 2)
    summary = summarise(store, spec, run_id, failure)
    store.finish_run(run, COMPLETE if summary.status == "SUCCEEDED" else FAILED)
    store.close()
    summary.seconds = seconds
    summary.parameters = parameters
    summary.log = str(log_path)
    summary.run_root = str(run_root)
    summary.metadata = {"store": store.description, "recorded": True}
    (runs_dir / f"{run_id}.json").write_text(json.dumps(summary.to_dict(), indent=2) + "\n")
    return summary


@dataclass
class CachePlan:
    """Which tasks of a local run the cache answers, found before anything runs: resolve_source's
    identities predicted (its own logic, no record), then each task's key from its parameters
    and its producers' stored output identities, in pipeline order. ``complete``: every task is
    a hit or a never-cached kfkit task whose inputs the hits provide, so :meth:`run` does the
    whole run without kfp.local."""

    spec: dict[str, Any]
    values: dict[str, Any]
    cache: LocalCache
    run_root: Path
    functions: dict[str, str]  # task -> component function
    hits: dict[str, Entry] = field(default_factory=dict)
    resolved: dict[str, dict[str, str]] = field(default_factory=dict)  # task -> output parameters
    complete: bool = True

    @classmethod
    def make(
        cls,
        spec: dict[str, Any],
        values: dict[str, Any],
        versions: dict[str, str],
        cache: LocalCache,
        run_root: Path,
    ) -> CachePlan:
        from kfkit.components import __all__ as kfkit_components

        executors = spec.get("deploymentSpec", {}).get("executors", {})
        functions = {
            name: function_of(
                executors.get(spec["components"][t["componentRef"]["name"]].get("executorLabel", ""), {})
            )
            for name, t in spec["root"]["dag"]["tasks"].items()
        }
        plan = cls(spec, values, cache, run_root, functions)
        for name in task_order(spec):
            function = functions[name]
            params = plan.parameters(name)
            inputs = plan._input_sources(name)
            if function not in kfkit_components or params is None or inputs is None:
                plan.complete = False
            elif function == "resolve_source":
                outputs = list(plan.component(name).get("outputDefinitions", {}).get("parameters", {}))
                plan.resolved[name] = _predict_source(params, outputs)
                plan.complete = plan.complete and bool(plan.resolved[name])
            elif cacheable(function):
                identities = {i: plan.hits[p].outputs[o]["identity"] for i, (p, o) in inputs.items()}
                key = task_key(function, versions[name], params, identities)
                try:
                    plan.hits[name] = cache.lookup(
                        key, list(plan.component(name).get("outputDefinitions", {}).get("artifacts", {}))
                    )
                except (KeyError, CacheEntryError):  # the task itself says why an entry is unusable
                    plan.complete = False
        return plan

    def component(self, name: str) -> dict[str, Any]:
        return self.spec["components"][self.spec["root"]["dag"]["tasks"][name]["componentRef"]["name"]]

    def parameters(self, name: str) -> dict[str, Any] | None:
        """The parameters task ``name`` will get, as its executor sees them (``task_name`` left
        out); None when one is only known at run time."""
        from kfkit.runtime import TASK_NAME

        given = self.spec["root"]["dag"]["tasks"][name].get("inputs", {}).get("parameters", {})
        params: dict[str, Any] = {}
        for param, definition in (
            self.component(name).get("inputDefinitions", {}).get("parameters", {}).items()
        ):
            if param == TASK_NAME:
                continue
            source = given.get(param)
            if source is None:
                value = definition.get("defaultValue")
            elif "componentInputParameter" in source:
                value = self.values.get(source["componentInputParameter"])
            elif "runtimeValue" in source:
                value = source["runtimeValue"].get("constant")
                if isinstance(value, str) and value.startswith("{{"):
                    return None
            elif "taskOutputParameter" in source:
                output = source["taskOutputParameter"]
                value = self.resolved.get(output["producerTask"], {}).get(output["outputParameterKey"])
                if value is None:
                    return None
            else:
                return None
            if definition.get("parameterType") == "NUMBER_INTEGER" and isinstance(value, float):
                value = int(value) if value.is_integer() else value
            params[param] = value
        return params

    def _input_sources(self, name: str) -> dict[str, tuple[str, str]] | None:
        """input artifact -> (producer task, output), when every producer is a hit."""
        sources = {}
        for input_name, source in (
            self.spec["root"]["dag"]["tasks"][name].get("inputs", {}).get("artifacts", {}).items()
        ):
            output = source.get("taskOutputArtifact", {})
            if output.get("producerTask") not in self.hits:
                return None
            sources[input_name] = (output["producerTask"], output["outputArtifactKey"])
        return sources

    def run(self, store: MetadataStore, run: RunHandle) -> str | None:
        """The whole run from the cache: restore every hit's files (each sha256 checked), run
        resolve_source and push in this process (through the same ``kfkit.runtime.execute``
        as in a task), record the hits as CACHED. Returns "" when it ran, the failure when a
        task failed, None when the pipeline must run after all (nothing was recorded, except
        in the rare case that the data changed since the plan was made)."""
        restored: dict[tuple[str, str], tuple[str, str, dict[str, Any]]] = {}  # -> type, uri, metadata
        for name, entry in self.hits.items():
            for output, record in entry.outputs.items():
                target = self.run_root / name / output
                try:
                    metadata = self.cache.restore(entry, output, target)
                except CacheEntryError as exc:
                    print(
                        f"kfkit {name}: warning: cache entry {entry.key[:12]} is unusable ({exc}); "
                        "running the pipeline"
                    )
                    self.cache.discard(entry.key)
                    for task in self.hits:  # kfp.local writes its own folders: none of these stay
                        shutil.rmtree(self.run_root / task, ignore_errors=True)
                    return None
                restored[(name, output)] = (record["type"], str(target), metadata)
        for name in task_order(self.spec):
            if name in self.hits:
                self._record_cached(store, run, name, restored)
                continue
            failure = self._run_in_process(name, restored)
            if failure:
                return failure
            if name in self.resolved:
                found = {k: (self.run_root / name / k).read_text() for k in self.resolved[name]}
                if found != self.resolved[name]:  # changed since the plan: the pipeline decides
                    return None
        return ""

    def _inputs(self, name: str, restored: dict) -> dict[str, tuple[str, str, dict[str, Any]]]:
        return {i: restored[source] for i, source in (self._input_sources(name) or {}).items()}

    def _record_cached(self, store: MetadataStore, run: RunHandle, name: str, restored: dict) -> None:
        inputs = self._inputs(name, restored)
        found = store.artifact_ids_by_uri([uri for _, uri, _ in inputs.values()])
        input_ids = {i: found[uri] for i, (_, uri, _) in inputs.items() if uri in found}
        image = task_images(self.spec).get(name, "")
        task_id = store.start_task(run, name, image, self.parameters(name) or {}, input_ids)
        outputs = [
            OutputArtifact(name=o, type=type_name, uri=uri, metadata=metadata)
            for (task, o), (type_name, uri, metadata) in restored.items()
            if task == name
        ]
        store.finish_task(run, task_id, CACHED, outputs, properties=cached_properties(self.hits[name]))
        print(f"kfkit {name}: cached: the outputs of run {self.hits[name].run_id or '?'}", flush=True)

    def _run_in_process(self, name: str, restored: dict) -> str:
        """Run a never-cached kfkit task here, as its kfp body would run in a task process."""
        import kfkit.components
        from kfkit.runtime import TASK_NAME

        component = getattr(kfkit.components, self.functions[name])
        definition = self.component(name)
        folder = self.run_root / name
        folder.mkdir(parents=True, exist_ok=True)
        arguments: dict[str, Any] = {**(self.parameters(name) or {}), TASK_NAME: name}
        for output in definition.get("outputDefinitions", {}).get("parameters", {}):
            arguments[output] = str(folder / output)
        outputs = definition.get("outputDefinitions", {}).get("artifacts", {})
        for output, spec in outputs.items():
            kind = _artifact_class(spec["artifactType"]["schemaTitle"])
            arguments[output] = kind(name=output, uri=str(folder / output), metadata={})
        for input_name, (type_name, uri, metadata) in self._inputs(name, restored).items():
            arguments[input_name] = _artifact_class(type_name)(
                name=input_name, uri=uri, metadata=dict(metadata)
            )
        try:
            component.python_func(**arguments)
        except SystemExit as exc:  # a KfkitError: the task recorded it and said why on stderr
            if exc.code not in (0, None):
                return f"{name} failed"
        except Exception as exc:  # noqa: BLE001 - a bug in the task: recorded by the task, reported here
            return f"{name}: {type(exc).__name__}: {first_line(exc)}"
        for output in outputs:
            artifact = arguments[output]
            restored[(name, output)] = (artifact.schema_title, artifact.uri, dict(artifact.metadata))
        return ""


def _artifact_class(schema_title: str) -> Any:
    from kfp import dsl

    kinds = (
        dsl.Artifact, dsl.Dataset, dsl.Model, dsl.Metrics, dsl.ClassificationMetrics,
        dsl.SlicedClassificationMetrics, dsl.HTML, dsl.Markdown,
    )  # fmt: skip
    return next((kind for kind in kinds if kind.schema_title == schema_title), dsl.Artifact)


def _predict_source(params: dict[str, Any], outputs: list[str]) -> dict[str, str]:
    """resolve_source's output parameters, computed by its own ``resolve`` (the function its
    task runs) without recording a task; {} when it fails or does not give every output (the
    task then runs in the pipeline and says why)."""
    import inspect

    from kfkit.components.resolve_source.executor import resolve

    accepted = set(inspect.signature(resolve).parameters) - {"store"}
    try:
        found = resolve(**{k: v for k, v in params.items() if k in accepted and v is not None})
    except Exception:  # noqa: BLE001 - only a prediction
        return {}
    if not all(name in found for name in outputs):
        return {}
    return {name: str(found[name]) for name in outputs}


_PARAMETER_TYPES = {
    "STRING": ((str,), "a string"),
    "NUMBER_INTEGER": ((int,), "an integer"),
    "NUMBER_DOUBLE": ((int, float), "a number"),
    "BOOLEAN": ((bool,), "true or false"),
    "STRUCT": ((dict,), "a mapping"),
    "LIST": ((list,), "a list"),
}


def preflight(spec: dict[str, Any], values: dict[str, Any]) -> None:
    """Every pipeline parameter checked before any task runs: its type against the compiled
    pipeline, then each kfkit component's own ``check`` on the values its task will get (the
    component's parameters, declared once, checked by the component). One line naming the
    parameter (and the task) on the first mistake."""
    declared = spec.get("root", {}).get("inputDefinitions", {}).get("parameters", {})
    for name, value in values.items():
        kind = declared.get(name, {}).get("parameterType", "")
        types, words = _PARAMETER_TYPES.get(kind, ((object,), ""))
        wrong_bool = isinstance(value, bool) and bool not in types
        if value is not None and (wrong_bool or not isinstance(value, types)):
            raise KfkitError(
                f"The '{name}' parameter of the pipeline must be {words}. Got {value!r} instead."
            )
        check_no_nested_null(name, value)
    from kfkit.components import __all__ as kfkit_components

    executors = spec.get("deploymentSpec", {}).get("executors", {})
    for task_name in task_order(spec):
        task = spec["root"]["dag"]["tasks"][task_name]
        component = spec["components"][task["componentRef"]["name"]]
        args = executors.get(component.get("executorLabel", ""), {}).get("container", {}).get("args", [])
        function = args[args.index("--function_to_execute") + 1] if "--function_to_execute" in args else ""
        if function not in kfkit_components:
            continue  # not one of kfkit's components: its own code checks at run time
        params = {}
        for name, source in task.get("inputs", {}).get("parameters", {}).items():
            if "componentInputParameter" in source:
                params[name] = values.get(source["componentInputParameter"])
            elif "runtimeValue" in source:
                constant = source["runtimeValue"].get("constant")
                if not (isinstance(constant, str) and constant.startswith("{{")):
                    params[name] = constant
        executor = importlib.import_module(f"kfkit.components.{function}.executor")
        try:
            executor.check(params)
        except KfkitError as exc:
            raise KfkitError(f"{task_name}: {exc}") from None


def mark_abandoned_runs(store: MetadataStore, newest: int = 50) -> list[str]:
    """Runs of this machine still RUNNING although the kfkit process that ran them is gone
    (killed, machine restarted) become FAILED, with their running tasks, saying why. Runs of
    other machines, and live ones, are left alone. One line per run marked."""
    from kfkit.metadata.store import DAG_EXECUTION, RUNNING

    host, marked = socket.gethostname(), []
    for record in store.runs(limit=newest):
        props = record.properties
        if props.get("kfkit_host") != host or pid_alive(int(props.get("kfkit_pid") or 0)):
            continue
        tasks = store.run_tasks(record.run_id)
        if not any(t.type == DAG_EXECUTION and t.state == RUNNING for t in tasks):
            continue
        why = f"aborted: the kfkit process (pid {props.get('kfkit_pid')}) that ran it is gone"
        handle = store.run_handle(record.run_id)
        for task in tasks:
            if task.type == CONTAINER_EXECUTION and task.state == RUNNING:
                store.finish_task(handle, task.id, FAILED, [], why)
        store.finish_run(handle, FAILED)
        marked.append(f"run {record.run_id}: marked FAILED ({why})")
    return marked


def task_order(spec: dict[str, Any]) -> list[str]:
    """The pipeline's tasks in dependency order (ties by name), from the compiled spec."""
    tasks = spec["root"]["dag"]["tasks"]
    order: list[str] = []
    waiting = {name: set(task.get("dependentTasks", [])) for name, task in tasks.items()}
    while waiting:
        ready = sorted(name for name, needs in waiting.items() if needs <= set(order))
        if not ready:  # not a DAG: keep the rest in name order
            ready = sorted(waiting)
        for name in ready:
            order.append(name)
            waiting.pop(name)
    return order


def task_images(spec: dict[str, Any]) -> dict[str, str]:
    """task -> the image its executor names in the compiled spec."""
    executors = spec.get("deploymentSpec", {}).get("executors", {})
    images = {}
    for name, task in spec["root"]["dag"]["tasks"].items():
        label = spec["components"][task["componentRef"]["name"]].get("executorLabel", "")
        images[name] = executors.get(label, {}).get("container", {}).get("image", "")
    return images


def summarise(store: MetadataStore, spec: dict[str, Any], run_id: str, failure: str | None) -> RunSummary:
    """What each task of the compiled pipeline did, from the records the tasks wrote."""
    records = {t.task_name: t for t in store.run_tasks(run_id) if t.type == CONTAINER_EXECUTION}
    summary = RunSummary(run_id=run_id, pipeline=spec["pipelineInfo"]["name"], status="SUCCEEDED", tasks={})
    for task in task_order(spec):
        record = records.get(task)
        if record is None:
            summary.tasks[task] = "NOT_RUN" if failure else "NOT_RECORDED"
            continue
        summary.tasks[task] = _STATUS.get(record.state, "FAILED")  # RUNNING: it died unrecorded
        summary.task_seconds[task] = round(record.updated - record.created, 2)
        if summary.tasks[task] == "FAILED" and summary.error is None:
            summary.error = f"{task}: {record.error or 'task failed; see the run log'}"
        ids = [i for found in record.output_artifacts.values() for i in found]
        for artifact in store.artifacts(ids):
            _add_artifact(summary, task, artifact)
    if failure or summary.error or "FAILED" in summary.tasks.values():
        summary.status = "FAILED"
        summary.error = summary.error or f"pipeline failed: {failure}"
    summary.outcome = _outcome_of(summary)
    return summary


def _outcome_of(summary: RunSummary) -> str:
    if summary.status == "FAILED":
        return FAILED_RUN
    if summary.pushed:
        return PUSHED
    if any(meta.get("unchanged") for meta in summary.artifacts.values()):
        return UNCHANGED
    return NOT_BLESSED if summary.refused else COMPLETED


def _add_artifact(summary: RunSummary, task: str, artifact: Any) -> None:
    """File one output artifact under the summary's views, by what its metadata says."""
    meta = {k: v for k, v in artifact.properties.items() if k != "display_name"}
    key = f"{task}.{artifact.name}"
    if meta.get("gate") and summary.refused is None:  # tasks arrive in pipeline order
        summary.refused = {"task": task, "gate": meta["gate"], "reason": meta.get("reason", "")}
    summary.artifacts[key] = meta
    summary.artifact_uris[key] = artifact.uri
    if artifact.type == "system.Dataset" and summary.dataset_fingerprint is None:
        summary.dataset_fingerprint = meta.get("dataset_fingerprint")
    if "schema_source" in meta and task not in summary.validation:
        summary.validation[task] = {
            "blessed": bool(meta.get("blessed", False)),
            "anomalies": meta.get("anomalies", {}),
            "schema_source": meta.get("schema_source"),
        }
    if isinstance(meta.get("feature_roles"), dict) and task not in summary.features:
        summary.features[task] = dict(meta["feature_roles"])
    if artifact.type == "system.Metrics":
        summary.metrics[task] = {k: v for k, v in meta.items() if isinstance(v, int | float)}
    if "checks" in meta:
        summary.blessed[task] = bool(meta.get("blessed"))  # MLMD keeps booleans as 1/0
    if "rows_scored" in meta and "class_distribution" in meta:  # score's predictions
        summary.scored[task] = {
            k: meta.get(k)
            for k in (
                "model_name", "model_version", "rows", "rows_scored", "rows_rejected", "rejected_by_reason",
                "class_distribution", "predictions_uri", "written",
            )
        }  # fmt: skip
        summary.scored[task]["written"] = bool(meta.get("written"))  # MLMD keeps booleans as 1/0
    if meta.get("pushed"):
        summary.pushed[task] = {
            "version": str(meta["version"]),
            "uri": meta["pushed_uri"],
            "sha256": meta["sha256"],
        }


def _check_parameters(spec: dict[str, Any], parameters: dict[str, Any], spec_path: Path) -> None:
    inputs = spec.get("root", {}).get("inputDefinitions", {})
    declared = {**inputs.get("artifacts", {}), **inputs.get("parameters", {})}
    unknown = sorted(set(parameters) - set(declared))
    if unknown:
        raise KfkitError(
            f"unknown pipeline parameter(s) {unknown} for {spec_path.name}; "
            f"known: {', '.join(sorted(declared))}"
        )
    missing = sorted(
        name
        for name, definition in declared.items()
        if not (definition.get("isOptional") or "defaultValue" in definition) and name not in parameters
    )
    if missing:
        raise KfkitError(f"missing pipeline parameter(s) {missing} for {spec_path.name}")


def _compiled_spec(spec_path: Path) -> dict[str, Any]:
    """The pipeline's spec; for a file that is not a compiled pipeline, kfp's reason why."""
    try:
        spec = pipeline_spec(spec_path)
    except Exception:  # noqa: BLE001 - kfp's loader below says what is wrong, in one line
        spec = None
    if not (
        isinstance(spec, dict) and "pipelineInfo" in spec and "tasks" in spec.get("root", {}).get("dag", {})
    ):
        load_compiled(spec_path)  # raises with the reason
        raise KfkitError(f"{spec_path}: not a compiled kfp pipeline (no pipelineInfo and root DAG)")
    return spec


def pipeline_spec(spec_path: Path) -> dict[str, Any]:
    """The PipelineSpec document of a compiled pipeline (a second document, the Kubernetes
    platform spec from kfp-kubernetes, may follow it)."""
    import yaml

    # libyaml's loader when there is one: the pure-Python one takes ~0.3 s on this file.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return next(yaml.load_all(spec_path.read_text(), Loader=loader))


def with_defaults(spec: dict[str, Any], parameters: dict[str, Any]) -> dict[str, Any]:
    """The pipeline's declared defaults, overridden by ``parameters``. The compiled spec writes
    an integer's default as a float (``random_seed`` 42 as ``42.0``): it is an int again here."""
    declared = spec.get("root", {}).get("inputDefinitions", {}).get("parameters", {})
    values = {}
    for name, definition in declared.items():
        if "defaultValue" not in definition:
            continue
        default = definition["defaultValue"]
        if definition.get("parameterType") == "NUMBER_INTEGER" and isinstance(default, float):
            default = int(default) if default.is_integer() else default
        values[name] = default
    values.update(parameters)
    return values


def load_config(path: str | None) -> tuple[str, dict[str, Any]]:
    """A run configuration file: ``pipeline`` (a name or file; default training) and
    ``parameters``. A relative pipeline file is relative to the configuration file."""
    from kfkit.yaml_files import load_yaml

    if not path:
        return "training", {}
    data = load_yaml(path, "config file")
    if not isinstance(data, dict) or not isinstance(data.get("parameters", {}), dict):
        raise KfkitError(f"{path}: expected a mapping with a `parameters` mapping")
    unknown = sorted(set(data) - {"pipeline", "parameters"})
    if unknown:
        raise KfkitError(f"{path}: unknown key(s) {unknown}; expected pipeline, parameters")
    pipeline = str(data.get("pipeline", "training"))
    if pipeline.endswith((".py", ".yaml", ".yml")) and not Path(pipeline).is_absolute():
        pipeline = str(Path(path).parent / pipeline)
    return pipeline, dict(data.get("parameters") or {})


def format_summary(summary: RunSummary) -> str:
    """The summary as a terminal table: each task with its status, time and outcome."""
    from kfkit.tables import key_values

    rows: list[tuple[str, Any]] = [
        ("run", summary.run_id),
        ("status", summary.status),
        ("outcome", summary.outcome),
    ]
    for task, status in summary.tasks.items():
        seconds = summary.task_seconds.get(task)
        rows.append(
            (
                f"  {task}",
                " ".join(
                    filter(None, [status, f"{seconds:.1f}s" if seconds else "", _outcome(summary, task)])
                ),
            )
        )
    if summary.refused:
        refused = summary.refused
        rows.append(("refused by", f"{refused['task']} (gate '{refused['gate']}'): {refused['reason']}"))
    for task, roles in summary.features.items():
        from kfkit.feature_roles import EXCLUDED_ROLES

        left_out = [
            f"{name} ({role.replace('_', ' ')})" for name, role in roles.items() if role in EXCLUDED_ROLES
        ]
        used = f"{len(roles) - len(left_out)} used" + (
            f"; left out: {', '.join(left_out)}" if left_out else ""
        )
        rows.append(("features" if len(summary.features) == 1 else f"features ({task})", used))
    if summary.dataset_fingerprint:
        rows.append(("dataset fingerprint", summary.dataset_fingerprint))
    rows.append(("wall time", f"{summary.seconds:.1f}s"))
    rows.append(("log", summary.log))
    if summary.metadata:
        rows.append(("lineage", summary.metadata.get("store", "")))
    return key_values(rows)


def _outcome(summary: RunSummary, task: str) -> str:
    """What one task did, from its artifacts: the data verdict, metrics and blessing, a push."""
    parts = []
    if task in summary.validation:
        verdict = summary.validation[task]
        parts.append(
            "data blessed"
            if verdict["blessed"]
            else f"data NOT blessed ({len(verdict.get('anomalies') or {})} anomalies)"
        )
    if task in summary.metrics:
        parts.append(", ".join(f"{k} {v:.4f}" for k, v in sorted(summary.metrics[task].items())))
    if task in summary.blessed:
        parts.append("model blessed" if summary.blessed[task] else "model NOT blessed")
    if task in summary.pushed:
        pushed = summary.pushed[task]
        parts.append(f"pushed version {pushed['version']} -> {pushed['uri']}")
    if task in summary.scored:
        scored = summary.scored[task]
        reasons = ", ".join(f"{n} {r}" for r, n in (scored.get("rejected_by_reason") or {}).items())
        parts.append(
            f"{scored['rows_scored']} of {scored['rows']} rows scored by version {scored['model_version']}, "
            f"{scored['rows_rejected']} rejected{f' ({reasons})' if reasons else ''} -> "
            f"{scored['predictions_uri']}{'' if scored['written'] else ' (already scored: nothing written)'}"
        )
    unchanged = [m for k, m in summary.artifacts.items() if k.startswith(f"{task}.") and m.get("unchanged")]
    if unchanged:
        version = unchanged[0].get("version")
        serves = unchanged[0].get("serves", True)
        parts.append(f"unchanged: version {version} " + ("serves" if serves else "(not serving)"))
    skipped = [
        m.get("reason") for k, m in summary.artifacts.items() if k.startswith(f"{task}.") and m.get("skipped")
    ]
    if skipped and not parts:
        parts.append(f"not run: {skipped[0]}")
    return "; ".join(parts)
