"""The metadata store on ML Metadata, written the way the KFP v2 backend writes it.

Property encoding follows KFP's launcher (``toMLMDArtifact``): strings stay strings,
numbers become doubles, booleans become ints 0/1, lists and mappings become structs
wrapped as ``{"list": [...]}`` and ``{"struct": {...}}``. Reading undoes that, so an
artifact recorded here and one recorded by a cluster read back the same.

Several writers: SQLite has no server to arbitrate, so every call takes an exclusive
``flock`` on ``<db>.lock`` (one short transaction each; two local runs interleave safely).
MySQL and the gRPC service arbitrate themselves; get-or-create races end in
AlreadyExists and are re-read, and MySQL deadlocks (Aborted) are retried, as KFP does.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from kfkit.errors import KfkitError, first_line
from kfkit.metadata.config import MetadataConfig
from kfkit.metadata.store import (
    CONTAINER_EXECUTION,
    DAG_EXECUTION,
    PIPELINE_CONTEXT,
    RUN_CONTEXT,
    ArtifactRecord,
    MetadataStore,
    OutputArtifact,
    RunHandle,
    RunRecord,
    TaskRecord,
)

T = TypeVar("T")
_RETRIES = 8


def _pb():
    from ml_metadata.proto import metadata_store_pb2

    return metadata_store_pb2


def to_value(value: Any):
    """A Python value as KFP's launcher stores it in MLMD (None when it can't be)."""
    from google.protobuf import struct_pb2

    pb = _pb()
    if isinstance(value, bool):
        return pb.Value(int_value=int(value))
    if isinstance(value, int | float):
        return pb.Value(double_value=float(value))
    if isinstance(value, str):
        return pb.Value(string_value=value)
    if isinstance(value, list | tuple):
        struct = struct_pb2.Struct()
        struct.update({"list": list(value)})
        return pb.Value(struct_value=struct)
    if isinstance(value, dict):
        struct = struct_pb2.Struct()
        struct.update({"struct": value})
        return pb.Value(struct_value=struct)
    return None


def _struct_value(values: dict[str, Any]):
    """A plain struct (execution ``inputs``), as KFP stores parameter values."""
    from google.protobuf import struct_pb2

    struct = struct_pb2.Struct()
    struct.update({k: v for k, v in values.items() if v is not None})
    return _pb().Value(struct_value=struct)


def _plain(value: Any) -> Any:
    """JSON numbers come back as floats: show 344.0 as 344."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def from_value(value) -> Any:
    from google.protobuf import json_format

    kind = value.WhichOneof("value")
    if kind == "string_value":
        return value.string_value
    if kind == "double_value":
        return _plain(value.double_value)
    if kind == "int_value":
        return value.int_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "struct_value":
        data = json_format.MessageToDict(value.struct_value)
        if set(data) == {"list"}:
            return _plain(data["list"])
        if set(data) == {"struct"}:
            return _plain(data["struct"])
        return _plain(data)
    return None


def _properties(message) -> dict[str, Any]:
    return {k: from_value(v) for k, v in message.custom_properties.items()}


def _private(*paths: Path) -> None:
    """Lineage (parameters, URIs, metrics) is for its owner only: 0600 on files we own."""
    for path in paths:
        if path.exists() and path.stat().st_uid == os.getuid() and path.stat().st_mode & 0o077:
            path.chmod(0o600)


class _Lock:
    """An exclusive flock for SQLite; nothing for stores with a server."""

    def __init__(self, path: Path | None) -> None:
        self.path = path

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        if self.path is None:
            yield
            return
        with open(self.path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


class MlmdStore(MetadataStore):
    def __init__(self, config: MetadataConfig) -> None:
        from ml_metadata import errors
        from ml_metadata.metadata_store import metadata_store

        self.config = config
        self.description = str(config)
        self._errors = errors
        self._lock = _Lock(Path(config.path + ".lock") if config.scheme == "sqlite" else None)
        if config.scheme == "sqlite":
            Path(config.path).parent.mkdir(parents=True, exist_ok=True)
        self._type_ids: dict[tuple[str, str], int] = {}
        for attempt in range(_RETRIES):
            try:
                with self._lock():
                    self._store = metadata_store.MetadataStore(config.connection_config())
                break
            except errors.StatusError as exc:
                raise KfkitError(
                    f"metadata store {self.description}: cannot connect: {first_line(exc)}"
                ) from None
            except RuntimeError as exc:
                # Two first connections to an empty MySQL database race to create MLMD's
                # tables; MLMD says so and asks for a retry.
                if "concurrent connection" not in str(exc) or attempt == _RETRIES - 1:
                    raise KfkitError(f"metadata store {self.description}: {first_line(exc)}") from None
                time.sleep(0.2 * (attempt + 1))
        if config.scheme == "sqlite":
            _private(Path(config.path), Path(config.path + ".lock"))

    # -- plumbing ----------------------------------------------------------------------
    def _call(self, func: Callable[[], T]) -> T:
        """One store call under the lock, retrying transient server errors."""
        delay = 0.05
        for attempt in range(_RETRIES):
            try:
                with self._lock():
                    return func()
            except (self._errors.AbortedError, self._errors.UnavailableError) as exc:
                if attempt == _RETRIES - 1:
                    raise KfkitError(f"metadata store {self.description}: {first_line(exc)}") from None
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
        raise AssertionError("unreachable")

    def _type_id(self, kind: str, name: str) -> int:
        key = (kind, name)
        if key not in self._type_ids:
            pb = _pb()
            if kind == "artifact":
                type_id = self._call(lambda: self._store.put_artifact_type(pb.ArtifactType(name=name)))
            elif kind == "execution":
                type_id = self._call(lambda: self._store.put_execution_type(pb.ExecutionType(name=name)))
            else:
                type_id = self._call(lambda: self._store.put_context_type(pb.ContextType(name=name)))
            self._type_ids[key] = type_id
        return self._type_ids[key]

    def _get_or_create_context(self, type_name: str, name: str, properties: dict[str, Any]):
        pb = _pb()
        found = self._call(lambda: self._store.get_context_by_type_and_name(type_name, name))
        if found is not None:
            return found
        context = pb.Context(name=name, type_id=self._type_id("context", type_name))
        for key, value in properties.items():
            context.custom_properties[key].CopyFrom(to_value(value))
        try:
            self._call(lambda: self._store.put_contexts([context]))
        except self._errors.AlreadyExistsError:
            pass  # another writer created it first; read theirs
        return self._call(lambda: self._store.get_context_by_type_and_name(type_name, name))

    def _contexts(self, run: RunHandle) -> list:
        return self._call(
            lambda: self._store.get_contexts_by_id([run.ids["pipeline_context"], run.ids["run_context"]])
        )

    # -- recording ---------------------------------------------------------------------
    def start_run(
        self,
        pipeline: str,
        run_id: str,
        parameters: dict[str, Any],
        pipeline_root: str,
        properties: dict[str, Any] | None = None,
    ) -> RunHandle:
        pb = _pb()
        pipeline_ctx = self._get_or_create_context(PIPELINE_CONTEXT, pipeline, {})
        run_ctx = self._get_or_create_context(
            RUN_CONTEXT,
            run_id,
            {
                "namespace": "",
                "resource_name": run_id,
                "pipeline_root": pipeline_root,
                "store_session_info": "",
                **(properties or {}),
            },
        )
        try:
            self._call(
                lambda: self._store.put_parent_contexts(
                    [pb.ParentContext(child_id=run_ctx.id, parent_id=pipeline_ctx.id)]
                )
            )
        except self._errors.AlreadyExistsError:
            pass
        dag = pb.Execution(
            type_id=self._type_id("execution", DAG_EXECUTION), last_known_state=pb.Execution.RUNNING
        )
        dag.custom_properties["display_name"].string_value = run_id
        dag.custom_properties["task_name"].string_value = ""
        dag.custom_properties["inputs"].CopyFrom(_struct_value(parameters))
        dag_id, _, _ = self._call(lambda: self._store.put_execution(dag, [], [pipeline_ctx, run_ctx]))
        return RunHandle(
            run_id=run_id,
            pipeline=pipeline,
            ids={"pipeline_context": pipeline_ctx.id, "run_context": run_ctx.id, "dag_execution": dag_id},
        )

    def start_task(
        self,
        run: RunHandle,
        task_name: str,
        image: str,
        inputs: dict[str, Any],
        input_artifacts: dict[str, int],
    ) -> int:
        pb = _pb()
        execution = pb.Execution(
            type_id=self._type_id("execution", CONTAINER_EXECUTION), last_known_state=pb.Execution.RUNNING
        )
        props = {
            "display_name": task_name,
            "task_name": task_name,
            "image": image,
            "namespace": "",
            "pod_name": "",
            "pod_uid": "",
        }
        for key, value in props.items():
            execution.custom_properties[key].string_value = value
        execution.custom_properties["parent_dag_id"].int_value = run.ids["dag_execution"]
        execution.custom_properties["inputs"].CopyFrom(_struct_value(inputs))
        ids = list(input_artifacts.values())
        by_id = {a.id: a for a in self._call(lambda: self._store.get_artifacts_by_id(ids))} if ids else {}
        pairs = []
        for name, artifact_id in input_artifacts.items():
            event = pb.Event(type=pb.Event.INPUT)
            event.path.steps.add().key = name
            pairs.append((by_id[artifact_id], event))
        contexts = self._contexts(run)
        task_id, _, _ = self._call(lambda: self._store.put_execution(execution, pairs, contexts))
        return task_id

    def finish_task(
        self,
        run: RunHandle,
        task_id: int,
        state: str,
        outputs: list[OutputArtifact],
        error: str | None = None,
        properties: dict[str, Any] | None = None,
    ) -> dict[str, int]:
        pb = _pb()
        [execution] = self._call(lambda: self._store.get_executions_by_id([task_id]))
        execution.last_known_state = pb.Execution.State.Value(state)
        if error:
            execution.custom_properties["error"].string_value = error
        for key, value in (properties or {}).items():
            converted = to_value(value)
            if converted is not None:
                execution.custom_properties[key].CopyFrom(converted)
        pairs = []
        for output in outputs:
            artifact = pb.Artifact(
                type_id=self._type_id("artifact", output.type), uri=output.uri, state=pb.Artifact.LIVE
            )
            for key, value in output.metadata.items():
                converted = to_value(value)
                if converted is not None:
                    artifact.custom_properties[key].CopyFrom(converted)
            if "display_name" not in artifact.custom_properties:
                artifact.custom_properties["display_name"].string_value = output.name
            if output.id is not None:  # recorded earlier by this task: update it, same event
                artifact.id = output.id
                pairs.append((artifact, None))
                continue
            event = pb.Event(type=pb.Event.OUTPUT)
            event.path.steps.add().key = output.name
            pairs.append((artifact, event))
        contexts = self._contexts(run)
        _, artifact_ids, _ = self._call(lambda: self._store.put_execution(execution, pairs, contexts))
        return {output.name: artifact_id for output, artifact_id in zip(outputs, artifact_ids, strict=True)}

    def run_handle(self, run_id: str) -> RunHandle | None:
        run_ctx = self._call(lambda: self._store.get_context_by_type_and_name(RUN_CONTEXT, run_id))
        if run_ctx is None:
            return None
        parents = self._call(lambda: self._store.get_parent_contexts_by_context(run_ctx.id))
        executions = self._call(lambda: self._store.get_executions_by_context(run_ctx.id))
        dags = [e.id for e in executions if e.type == DAG_EXECUTION]
        if not parents or not dags:
            return None
        return RunHandle(
            run_id=run_id,
            pipeline=parents[0].name,
            ids={"pipeline_context": parents[0].id, "run_context": run_ctx.id, "dag_execution": dags[0]},
        )

    def artifact_ids_by_uri(self, uris: list[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        for uri in dict.fromkeys(uris):
            artifacts = self._call(lambda u=uri: self._store.get_artifacts_by_uri(u))
            if artifacts:
                found[uri] = max(a.id for a in artifacts)  # the newest record of that URI
        return found

    def finish_run(self, run: RunHandle, state: str) -> None:
        pb = _pb()
        [dag] = self._call(lambda: self._store.get_executions_by_id([run.ids["dag_execution"]]))
        dag.last_known_state = pb.Execution.State.Value(state)
        self._call(lambda: self._store.put_executions([dag]))

    # -- reading -----------------------------------------------------------------------
    def _run_record(self, context) -> RunRecord:
        parents = self._call(lambda: self._store.get_parent_contexts_by_context(context.id))
        return RunRecord(
            run_id=context.name,
            pipeline=parents[0].name if parents else "",
            created=context.create_time_since_epoch / 1000,
            properties=_properties(context),
        )

    def runs(self, limit: int | None = None) -> list[RunRecord]:
        from ml_metadata.metadata_store import metadata_store

        options = metadata_store.ListOptions(
            limit=limit,
            order_by=metadata_store.OrderByField.CREATE_TIME,
            is_asc=False,
            filter_query=f"type = '{RUN_CONTEXT}'",
        )
        contexts = self._call(lambda: self._store.get_contexts(list_options=options))
        return [self._run_record(c) for c in contexts]

    def run(self, run_id: str) -> RunRecord | None:
        context = self._call(lambda: self._store.get_context_by_type_and_name(RUN_CONTEXT, run_id))
        return self._run_record(context) if context is not None else None

    def _task_records(self, executions: list) -> list[TaskRecord]:
        pb = _pb()
        ids = [e.id for e in executions]
        events = self._call(lambda: self._store.get_events_by_execution_ids(ids)) if ids else []
        records = {}
        for e in sorted(executions, key=lambda e: (e.create_time_since_epoch, e.id)):
            props = _properties(e)
            records[e.id] = TaskRecord(
                id=e.id,
                type=e.type,
                task_name=props.get("task_name", ""),
                state=pb.Execution.State.Name(e.last_known_state),
                image=props.get("image", ""),
                inputs=props.get("inputs") or {},
                properties=props,
                created=e.create_time_since_epoch / 1000,
                updated=e.last_update_time_since_epoch / 1000,
            )
        for event in events:
            name = event.path.steps[0].key if event.path.steps else ""
            record = records[event.execution_id]
            if event.type in (pb.Event.INPUT, pb.Event.DECLARED_INPUT, pb.Event.INTERNAL_INPUT):
                record.input_artifacts.setdefault(name, []).append(event.artifact_id)
            elif event.type in (pb.Event.OUTPUT, pb.Event.DECLARED_OUTPUT, pb.Event.INTERNAL_OUTPUT):
                record.output_artifacts.setdefault(name, []).append(event.artifact_id)
        return list(records.values())

    def run_tasks(self, run_id: str) -> list[TaskRecord]:
        context = self._call(lambda: self._store.get_context_by_type_and_name(RUN_CONTEXT, run_id))
        if context is None:
            return []
        return self._task_records(self._call(lambda: self._store.get_executions_by_context(context.id)))

    def tasks(self, ids: list[int]) -> list[TaskRecord]:
        if not ids:
            return []
        return self._task_records(self._call(lambda: self._store.get_executions_by_id(ids)))

    def artifacts(self, ids: list[int]) -> list[ArtifactRecord]:
        if not ids:
            return []
        found = self._call(lambda: self._store.get_artifacts_by_id(ids))
        return [_artifact_record(a) for a in sorted(found, key=lambda a: a.id)]

    def find_artifacts(
        self,
        type_name: str,
        equals: dict[str, Any] | None = None,
        prefix: dict[str, str] | None = None,
        newest: int | None = None,
    ) -> list[ArtifactRecord]:
        from ml_metadata.metadata_store import metadata_store

        clauses = [f"type = {_quote(type_name)}"]
        for key, value in (equals or {}).items():
            _check_key(key)
            if isinstance(value, bool):
                clauses.append(f"custom_properties.{key}.int_value = {int(value)}")
            elif isinstance(value, int | float):
                clauses.append(f"custom_properties.{key}.double_value = {float(value)}")
            else:
                clauses.append(f"custom_properties.{key}.string_value = {_quote(str(value))}")
        for key, value in (prefix or {}).items():
            _check_key(key)
            clauses.append(f"custom_properties.{key}.string_value LIKE {_quote(_like_escape(value) + '%')}")
        options = metadata_store.ListOptions(
            filter_query=" AND ".join(clauses),
            limit=newest,
            order_by=metadata_store.OrderByField.CREATE_TIME if newest else None,
            is_asc=not newest,
        )
        found = self._call(lambda: self._store.get_artifacts(list_options=options))
        return [_artifact_record(a) for a in sorted(found, key=lambda a: a.id)]

    def _events_by_artifact(self, artifact_ids: list[int], kinds: tuple[int, ...]) -> dict[int, list[int]]:
        result: dict[int, list[int]] = {a: [] for a in artifact_ids}
        if not artifact_ids:
            return result
        for event in self._call(lambda: self._store.get_events_by_artifact_ids(artifact_ids)):
            if event.type in kinds:
                result[event.artifact_id].append(event.execution_id)
        return result

    def producers(self, artifact_ids: list[int]) -> dict[int, list[int]]:
        pb = _pb()
        return self._events_by_artifact(artifact_ids, (pb.Event.OUTPUT, pb.Event.DECLARED_OUTPUT))

    def consumers(self, artifact_ids: list[int]) -> dict[int, list[int]]:
        pb = _pb()
        return self._events_by_artifact(artifact_ids, (pb.Event.INPUT, pb.Event.DECLARED_INPUT))

    def runs_of_tasks(self, task_ids: list[int]) -> dict[int, RunRecord]:
        result: dict[int, RunRecord] = {}
        cache: dict[int, RunRecord] = {}
        for task_id in task_ids:
            for context in self._call(lambda tid=task_id: self._store.get_contexts_by_execution(tid)):
                if context.type == RUN_CONTEXT:
                    if context.id not in cache:
                        cache[context.id] = self._run_record(context)
                    result[task_id] = cache[context.id]
        return result


def _artifact_record(artifact) -> ArtifactRecord:
    props = _properties(artifact)
    return ArtifactRecord(
        id=artifact.id,
        type=artifact.type,
        uri=artifact.uri,
        name=str(props.get("display_name", "")),
        properties=props,
        created=artifact.create_time_since_epoch / 1000,
    )


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _like_escape(text: str) -> str:
    if any(c in text for c in "%_"):
        raise KfkitError(f"{text!r}: '%' and '_' are not allowed in a prefix")
    return text


def _check_key(key: str) -> None:
    if not key.replace("_", "").isalnum():
        raise KfkitError(f"{key!r}: not a property name")
