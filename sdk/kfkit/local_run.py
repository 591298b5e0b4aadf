"""Run a kfkit pipeline on one machine with ``kfp.local`` and summarise it.

The pipeline run is the compiled YAML under ``pipelines/compiled/``, the very file that is
uploaded to Kubeflow Pipelines, executed by ``kfp.local.SubprocessRunner(use_venv=False)``
in this environment. kfp.local's own output (every task's log) goes to
``<state>/runs/<run-id>.log``; the terminal gets one line per task.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kfkit import names
from kfkit.catalog import compiled_pipeline_path
from kfkit.errors import KfkitError
from kfkit.local_store import LocalObjectStore
from kfkit.metadata import open_store
from kfkit.metadata.recorder import RunRecorder
from kfkit.settings import state_dir
from kfkit.steps.runtime import ERROR_FILE_ENV
from kfkit.storage import ENDPOINT_ENV
from kfkit.warm_start import warm_interpreters

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_EXECUTING = re.compile(r"Executing task '([^']+)'")
_FINISHED = re.compile(r"Task '([^']+)' finished with status (\w+)")

Progress = Callable[[str], None]


@dataclass
class RunSummary:
    run_id: str
    pipeline: str
    status: str  # SUCCEEDED or FAILED
    tasks: dict[str, str]  # task -> SUCCEEDED / FAILED / NOT_RUN
    dataset_fingerprint: str | None
    validation: dict[str, Any]
    metrics: dict[str, float]
    blessed: bool
    pushed: dict[str, str] | None
    error: str | None = None
    task_seconds: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    parameters: dict[str, Any] = field(default_factory=dict)
    log: str = ""
    run_root: str = ""  # the run's folder under the local pipeline root
    artifacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)  # where lineage was recorded

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _TaskLogTee:
    """Stands in for sys.stdout during a kfp.local run: everything to the log file; task
    starts, ends and kfkit's own one-line messages to the progress callback."""

    def __init__(self, log_file, progress: Progress, recorder: RunRecorder | None = None) -> None:
        self.log_file = log_file
        self.progress = progress
        self.recorder = recorder
        self.buffer = ""
        self.status: dict[str, str] = {}
        self.started: dict[str, float] = {}
        self.seconds: dict[str, float] = {}

    def write(self, text: str) -> int:
        self.log_file.write(text)
        self.buffer += text
        while "\n" in self.buffer:
            line, self.buffer = self.buffer.split("\n", 1)
            self._line(_ANSI.sub("", line).strip())
        return len(text)

    def flush(self) -> None:
        self.log_file.flush()

    def isatty(self) -> bool:
        return False

    def _line(self, line: str) -> None:
        if match := _EXECUTING.search(line):
            task = match.group(1)
            self.started[task] = time.perf_counter()
            self.progress(f"[{task}] running")
            if self.recorder:
                self.recorder.task_started(task)
        elif match := _FINISHED.search(line):
            task, status = match.groups()
            self.seconds[task] = round(time.perf_counter() - self.started.get(task, 0), 2)
            self.status[task] = "SUCCEEDED" if status == "SUCCESS" else "FAILED"
            self.progress(f"[{task}] {self.status[task].lower()} in {self.seconds[task]:.1f}s")
            if self.recorder:
                self.recorder.task_finished(task, self.status[task] == "SUCCEEDED")
        elif line.startswith("kfkit ") and ": " in line:
            self.progress("    " + line.split(": ", 1)[1])


@contextlib.contextmanager
def object_store_env() -> Iterator[bool]:
    """Use the object store from the environment, or a lease on the local one (started if
    needed, stopped when its last user is done). Yields whether this call started it."""
    if os.environ.get(ENDPOINT_ENV):
        yield False
        return
    with LocalObjectStore().lease() as (state, started_here):
        saved = {k: os.environ.get(k) for k in state.config.to_env()}
        os.environ.update(state.config.to_env())
        try:
            yield started_here
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def _read_executor_outputs(run_dir: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """task -> output name -> artifact metadata, from each task's executor_output.json."""
    found: dict[str, dict[str, dict[str, Any]]] = {}
    for path in sorted(run_dir.glob("*/executor_output.json")):
        data = json.loads(path.read_text())
        outputs = {}
        for name, artifact_list in data.get("artifacts", {}).items():
            artifacts = artifact_list.get("artifacts", [])
            outputs[name] = artifacts[0].get("metadata", {}) if artifacts else {}
        found[path.parent.name] = outputs
    return found


def _read_errors(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def summarise(
    run_id: str,
    run_dir: Path | None,
    status_by_task: dict[str, str],
    errors: list[dict[str, str]],
) -> RunSummary:
    outputs = _read_executor_outputs(run_dir) if run_dir and run_dir.exists() else {}
    tasks = {task: status_by_task.get(task, "NOT_RUN") for task in names.TASKS}
    ingest = outputs.get(names.INGEST, {}).get(names.TRAIN_SPLIT, {})
    anomalies = outputs.get(names.VALIDATE, {}).get(names.ANOMALIES, {})
    metrics = outputs.get(names.EVALUATE, {}).get(names.METRICS, {})
    blessing = outputs.get(names.EVALUATE, {}).get(names.BLESSING, {})
    pushed = outputs.get(names.PUSH, {}).get(names.PUSHED_MODEL, {})
    failed = [t for t, s in tasks.items() if s == "FAILED"]
    error = None
    if errors:
        error = f"{errors[0]['task']}: {errors[0]['error']}"
    elif failed:
        error = f"task {failed[0]} failed; see the run log"
    return RunSummary(
        run_id=run_id,
        pipeline=names.PIPELINE_NAME,
        status="FAILED" if failed or errors else "SUCCEEDED",
        tasks=tasks,
        dataset_fingerprint=ingest.get("dataset_fingerprint"),
        validation={
            "blessed": bool(anomalies.get("blessed", False)),
            "anomalies": anomalies.get("anomalies", {}),
            "schema_source": anomalies.get("schema_source"),
        },
        metrics={k: v for k, v in metrics.items() if isinstance(v, int | float)},
        blessed=bool(blessing.get("blessed", False)),
        pushed=(
            {"version": pushed["version"], "uri": pushed["pushed_uri"], "sha256": pushed["sha256"]}
            if pushed.get("pushed")
            else None
        ),
        error=error,
        artifacts={f"{task}.{name}": meta for task, outs in outputs.items() for name, meta in outs.items()},
    )


def run_local(
    parameters: dict[str, Any],
    pipeline: str = "training",
    progress: Progress | None = None,
    metadata_uri: str | None = None,
) -> RunSummary:
    """Run the compiled pipeline locally and record its lineage in the metadata store
    (``metadata_uri``, else ``KFKIT_METADATA_URI``, else SQLite under the state folder).
    Uses the local object store when none is configured (see ``object_store_env``). Never
    raises for a failed task: the summary says."""
    from kfp import components, local

    progress = progress or (lambda line: None)
    spec_path = compiled_pipeline_path(pipeline)
    if not spec_path.is_file():
        raise KfkitError(f"{spec_path}: compiled pipeline not found; run `kfkit compile`")
    pipeline_component = components.load_component_from_file(str(spec_path))
    _check_parameters(pipeline_component, parameters, spec_path)
    store = open_store(metadata_uri)  # before anything runs: an unreachable store loses nothing

    root = state_dir()
    runs_dir = root / "runs"
    runs_dir.mkdir(exist_ok=True)
    pipeline_root = root / "pipeline_root"
    run_stamp = time.strftime("%Y%m%d-%H%M%S") + f"-{os.getpid()}"
    log_path = runs_dir / f"{run_stamp}.log"
    error_path = runs_dir / f"{run_stamp}.errors.jsonl"

    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(pipeline_root),
        raise_on_error=False,
    )
    before = set(pipeline_root.glob(f"{names.PIPELINE_NAME}-*")) if pipeline_root.exists() else set()
    recorder = RunRecorder(store, _pipeline_spec(spec_path), parameters, pipeline_root, error_path)
    started = time.perf_counter()
    with (
        warm_interpreters(root) as warm,  # first: its imports overlap the store's start (warm_start.py)
        object_store_env(),
        _env(ERROR_FILE_ENV, str(error_path)),
        open(log_path, "w") as log,
    ):
        tee = _TaskLogTee(log, progress, recorder)
        with (
            contextlib.redirect_stdout(tee),
            warnings.catch_warnings(),
            recorder.capture_run_id(),
            warm.as_sys_executable(),
        ):
            # kfp warns that kfkit's image name does not contain "python": expected here.
            warnings.simplefilter("ignore", RuntimeWarning)
            pipeline_component(**parameters)
    seconds = round(time.perf_counter() - started, 2)
    if recorder.run_id and (pipeline_root / recorder.run_id).is_dir():
        run_dir: Path | None = pipeline_root / recorder.run_id  # exact, even with runs side by side
    else:
        new_dirs = sorted(set(pipeline_root.glob(f"{names.PIPELINE_NAME}-*")) - before)
        run_dir = new_dirs[-1] if new_dirs else None
    run_id = run_dir.name if run_dir else f"{names.PIPELINE_NAME}-{run_stamp}"
    summary = summarise(run_id, run_dir, tee.status, _read_errors(error_path))
    summary.task_seconds = tee.seconds
    summary.seconds = seconds
    summary.parameters = parameters
    summary.log = str(log_path)
    summary.run_root = str(run_dir or "")
    recorder.finish(summary.status == "SUCCEEDED")
    store.close()
    for problem in recorder.problems:
        progress(f"warning: {problem}")
    summary.metadata = {
        "store": store.description,
        "recorded": recorder.run is not None and not recorder.problems,
        "problems": recorder.problems,
    }
    (runs_dir / f"{run_id}.json").write_text(json.dumps(summary.to_dict(), indent=2) + "\n")
    return summary


@contextlib.contextmanager
def _env(key: str, value: str) -> Iterator[None]:
    saved = os.environ.get(key)
    os.environ[key] = value
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = saved


def _check_parameters(component: Any, parameters: dict[str, Any], spec_path: Path) -> None:
    declared = component.component_spec.inputs or {}
    unknown = sorted(set(parameters) - set(declared))
    if unknown:
        raise KfkitError(
            f"unknown pipeline parameter(s) {unknown} for {spec_path.name}; "
            f"known: {', '.join(sorted(declared))}"
        )
    missing = sorted(k for k, spec in declared.items() if not spec.optional and k not in parameters)
    if missing:
        raise KfkitError(f"missing pipeline parameter(s) {missing} for {spec_path.name}")


def _pipeline_spec(spec_path: Path) -> dict[str, Any]:
    """The PipelineSpec document of a compiled pipeline (a second document, the Kubernetes
    platform spec from kfp-kubernetes, may follow it)."""
    import yaml

    return next(yaml.safe_load_all(spec_path.read_text()))
