"""The metadata interface kfkit records to and queries from, and its plain record types.

Names follow the Kubeflow Pipelines v2 backend, because a cluster's store is written by it:
a run is a ``system.PipelineRun`` context under a ``system.Pipeline`` context; a task is an
execution (``system.ContainerExecution``; the run itself also has a root
``system.DAGExecution`` holding the pipeline parameters); artifacts are typed by their
schema title and connect to tasks by INPUT and OUTPUT events named after the input or
output.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

PIPELINE_CONTEXT = "system.Pipeline"
RUN_CONTEXT = "system.PipelineRun"
CONTAINER_EXECUTION = "system.ContainerExecution"
DAG_EXECUTION = "system.DAGExecution"

# Execution states, as MLMD names them.
RUNNING = "RUNNING"
COMPLETE = "COMPLETE"
FAILED = "FAILED"
CACHED = "CACHED"
CANCELED = "CANCELED"
DONE_STATES = (COMPLETE, CACHED)


@dataclass
class ArtifactRecord:
    id: int
    type: str  # schema title, e.g. system.Dataset
    uri: str
    name: str  # the output name it was produced as (KFP's display_name)
    properties: dict[str, Any]  # every artifact.metadata key
    created: float  # seconds since the epoch


@dataclass
class TaskRecord:
    id: int
    type: str  # system.ContainerExecution or system.DAGExecution
    task_name: str
    state: str
    image: str
    inputs: dict[str, Any]  # input parameter values
    properties: dict[str, Any]
    created: float
    updated: float
    input_artifacts: dict[str, list[int]] = field(default_factory=dict)  # input name -> ids
    output_artifacts: dict[str, list[int]] = field(default_factory=dict)  # output name -> ids

    @property
    def error(self) -> str | None:
        return self.properties.get("error") or None


@dataclass
class RunRecord:
    run_id: str
    pipeline: str
    created: float
    properties: dict[str, Any]


@dataclass(frozen=True)
class OutputArtifact:
    """An artifact a task produced, as the executor reported it."""

    name: str
    type: str
    uri: str
    metadata: dict[str, Any]
    id: int | None = None  # set: the artifact this task recorded earlier, updated in place


@dataclass(frozen=True)
class RunHandle:
    run_id: str
    pipeline: str
    ids: dict[str, int]  # backend-specific ids (contexts, root DAG execution)


class MetadataStore(ABC):
    """Record runs and read them back. Implementations must be safe for several processes
    writing at once (two local runs, or many pods in a cluster)."""

    description: str  # where the records live, without credentials

    # -- recording ---------------------------------------------------------------------
    @abstractmethod
    def start_run(
        self,
        pipeline: str,
        run_id: str,
        parameters: dict[str, Any],
        pipeline_root: str,
        properties: dict[str, Any] | None = None,
    ) -> RunHandle:
        """The run's contexts and its root DAG execution (RUNNING), holding the parameters;
        ``properties``: extra run-context properties (who runs it, for crash recovery)."""

    @abstractmethod
    def start_task(
        self,
        run: RunHandle,
        task_name: str,
        image: str,
        inputs: dict[str, Any],
        input_artifacts: dict[str, int],
    ) -> int:
        """A RUNNING task execution with an INPUT event for each input artifact."""

    @abstractmethod
    def finish_task(
        self,
        run: RunHandle,
        task_id: int,
        state: str,
        outputs: list[OutputArtifact],
        error: str | None = None,
        properties: dict[str, Any] | None = None,
    ) -> dict[str, int]:
        """Set the task's state; record its output artifacts with OUTPUT events (an output
        with an ``id`` updates that artifact, which already has its event). ``state`` RUNNING
        records outputs before the task ends; CACHED, a task whose outputs were reused
        (``properties`` say from where). Returns output name -> artifact id."""

    @abstractmethod
    def run_handle(self, run_id: str) -> RunHandle | None:
        """The handle of a run recorded by ``start_run`` (for a task recording into it)."""

    @abstractmethod
    def artifact_ids_by_uri(self, uris: list[str]) -> dict[str, int]:
        """uri -> id of the newest artifact recorded with it (absent URIs are left out)."""

    @abstractmethod
    def finish_run(self, run: RunHandle, state: str) -> None:
        """Set the root DAG execution's final state."""

    # -- reading -----------------------------------------------------------------------
    @abstractmethod
    def runs(self, limit: int | None = None) -> list[RunRecord]:
        """Runs, newest first."""

    @abstractmethod
    def run(self, run_id: str) -> RunRecord | None: ...

    @abstractmethod
    def run_tasks(self, run_id: str) -> list[TaskRecord]:
        """Every execution of a run (the root DAG one included), oldest first."""

    @abstractmethod
    def tasks(self, ids: list[int]) -> list[TaskRecord]: ...

    @abstractmethod
    def artifacts(self, ids: list[int]) -> list[ArtifactRecord]: ...

    @abstractmethod
    def find_artifacts(
        self,
        type_name: str,
        equals: dict[str, Any] | None = None,
        prefix: dict[str, str] | None = None,
        newest: int | None = None,
    ) -> list[ArtifactRecord]:
        """Artifacts of a type whose properties equal (or, for ``prefix``, start with) the
        given values. Booleans match KFP's encoding (1/0). ``newest``: only that many of the
        most recently recorded matches."""

    @abstractmethod
    def producers(self, artifact_ids: list[int]) -> dict[int, list[int]]:
        """artifact id -> ids of the tasks with an OUTPUT event for it."""

    @abstractmethod
    def consumers(self, artifact_ids: list[int]) -> dict[int, list[int]]:
        """artifact id -> ids of the tasks with an INPUT event for it."""

    @abstractmethod
    def runs_of_tasks(self, task_ids: list[int]) -> dict[int, RunRecord]:
        """task id -> the run it belongs to."""

    def close(self) -> None:  # noqa: B027 - optional for backends without connections
        """Release connections."""


def open_store(uri: str | None = None) -> MetadataStore:
    """The store named by ``uri`` / ``KFKIT_METADATA_URI`` / the default SQLite file."""
    from kfkit.metadata.config import MetadataConfig
    from kfkit.metadata.mlmd_store import MlmdStore

    return MlmdStore(MetadataConfig.from_uri(uri))
