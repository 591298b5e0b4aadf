"""Record a ``kfp.local`` run into a metadata store as the KFP v2 backend would.

The local runner tells us when each task starts and ends (its log lines); the compiled
pipeline spec tells us each task's inputs, image and output types; each task's
``executor_output.json`` holds its output artifacts and their metadata. In a cluster the
KFP driver and launcher write the same records; nothing here runs there.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kfkit.errors import first_line
from kfkit.metadata.store import COMPLETE, FAILED, MetadataStore, OutputArtifact, RunHandle

_PLACEHOLDERS = ("{{$.pipeline_job_name}}", "{{$.pipeline_job_resource_name}}")


class RunRecorder:
    """Feeds one local run's task starts and ends into ``store``. Recording problems are
    collected in ``problems`` (and reported), never raised into the run."""

    def __init__(
        self,
        store: MetadataStore,
        spec: dict[str, Any],
        parameters: dict[str, Any],
        pipeline_root: Path,
        error_file: Path,
    ) -> None:
        self.store = store
        self.spec = spec
        self.pipeline = spec["pipelineInfo"]["name"]
        self.parameters = _with_defaults(spec, parameters)
        self.pipeline_root = pipeline_root
        self.error_file = error_file
        self.run_id: str | None = None
        self.run: RunHandle | None = None
        self.task_ids: dict[str, int] = {}
        self.artifact_ids: dict[tuple[str, str], int] = {}
        self.failed = False
        self.problems: list[str] = []

    # -- the run id --------------------------------------------------------------------
    @contextlib.contextmanager
    def capture_run_id(self) -> Iterator[None]:
        """kfp.local names the run (``<pipeline>-<timestamp>``) just before it starts; wrap
        that one function for the duration of the run to learn the name."""
        from kfp.local import executor_input_utils

        original = executor_input_utils.get_local_pipeline_resource_name

        def named(pipeline_name: str) -> str:
            self.run_id = original(pipeline_name)
            return self.run_id

        # kfp 2.13's orchestrator imports the module inside the function, so patching the
        # module attribute is seen; restored on the way out whatever happens.
        executor_input_utils.get_local_pipeline_resource_name = named
        try:
            yield
        finally:
            executor_input_utils.get_local_pipeline_resource_name = original

    def _ensure_run(self) -> RunHandle | None:
        if self.run is None and self.run_id:
            self.run = self._guard(
                "start run",
                lambda: self.store.start_run(
                    self.pipeline, self.run_id, self.parameters, str(self.pipeline_root / self.run_id)
                ),
            )
        return self.run

    # -- task events -------------------------------------------------------------------
    def task_started(self, task: str) -> None:
        run = self._ensure_run()
        if run is None or task not in self._tasks():
            return
        inputs = self._input_parameters(task)
        input_artifacts = {
            name: self.artifact_ids[key]
            for name, key in self._input_artifact_sources(task).items()
            if key in self.artifact_ids
        }
        task_id = self._guard(
            f"start task {task}",
            lambda: self.store.start_task(run, task, self._image(task), inputs, input_artifacts),
        )
        if task_id is not None:
            self.task_ids[task] = task_id

    def task_finished(self, task: str, succeeded: bool) -> None:
        if self.run is None or task not in self.task_ids:
            return
        self.failed = self.failed or not succeeded
        outputs = self._outputs(task) if succeeded else []
        error = None if succeeded else (self._error_for(task) or "task failed; see the run log")
        ids = self._guard(
            f"finish task {task}",
            lambda: self.store.finish_task(
                self.run, self.task_ids[task], COMPLETE if succeeded else FAILED, outputs, error
            ),
        )
        for name, artifact_id in (ids or {}).items():
            self.artifact_ids[(task, name)] = artifact_id

    def finish(self, succeeded: bool) -> None:
        if self.run is not None:
            state = COMPLETE if succeeded and not self.failed else FAILED
            self._guard("finish run", lambda: self.store.finish_run(self.run, state))

    # -- reading the spec --------------------------------------------------------------
    def _tasks(self) -> dict[str, Any]:
        return self.spec["root"]["dag"]["tasks"]

    def _component(self, task: str) -> dict[str, Any]:
        return self.spec["components"][self._tasks()[task]["componentRef"]["name"]]

    def _image(self, task: str) -> str:
        label = self._component(task).get("executorLabel", "")
        executor = self.spec.get("deploymentSpec", {}).get("executors", {}).get(label, {})
        return executor.get("container", {}).get("image", "")

    def _input_parameters(self, task: str) -> dict[str, Any]:
        values = {}
        for name, source in self._tasks()[task].get("inputs", {}).get("parameters", {}).items():
            if "componentInputParameter" in source:
                values[name] = self.parameters.get(source["componentInputParameter"])
            elif "runtimeValue" in source:
                constant = source["runtimeValue"].get("constant")
                if isinstance(constant, str) and constant in _PLACEHOLDERS:
                    constant = self.run_id
                values[name] = constant
            elif "taskOutputParameter" in source:
                producer = source["taskOutputParameter"]
                output = self._executor_output(producer["producerTask"])
                values[name] = output.get("parameterValues", {}).get(producer["outputParameterKey"])
        return values

    def _input_artifact_sources(self, task: str) -> dict[str, tuple[str, str]]:
        sources = {}
        for name, source in self._tasks()[task].get("inputs", {}).get("artifacts", {}).items():
            if "taskOutputArtifact" in source:
                producer = source["taskOutputArtifact"]
                sources[name] = (producer["producerTask"], producer["outputArtifactKey"])
        return sources

    def _executor_output(self, task: str) -> dict[str, Any]:
        path = self.pipeline_root / (self.run_id or "") / task / "executor_output.json"
        return json.loads(path.read_text()) if path.is_file() else {}

    def _outputs(self, task: str) -> list[OutputArtifact]:
        reported = self._executor_output(task).get("artifacts", {})
        declared = self._component(task).get("outputDefinitions", {}).get("artifacts", {})
        outputs = []
        for name, definition in declared.items():
            listed = reported.get(name, {}).get("artifacts") or [{}]
            artifact = listed[0]
            outputs.append(
                OutputArtifact(
                    name=name,
                    type=definition["artifactType"]["schemaTitle"],
                    uri=artifact.get("uri") or str(self.pipeline_root / (self.run_id or "") / task / name),
                    metadata=artifact.get("metadata") or {},
                )
            )
        return outputs

    def _error_for(self, task: str) -> str | None:
        if not self.error_file.is_file():
            return None
        for line in self.error_file.read_text().splitlines():
            if line.strip():
                record = json.loads(line)
                if record.get("task") == task:
                    return record.get("error")
        return None

    def _guard(self, what: str, action):
        try:
            return action()
        except Exception as exc:  # noqa: BLE001 - lineage must never break the run itself
            self.problems.append(f"metadata: could not {what}: {first_line(exc)}")
            return None


def _with_defaults(spec: dict[str, Any], parameters: dict[str, Any]) -> dict[str, Any]:
    declared = spec.get("root", {}).get("inputDefinitions", {}).get("parameters", {})
    values = {name: d["defaultValue"] for name, d in declared.items() if "defaultValue" in d}
    values.update(parameters)
    return values
