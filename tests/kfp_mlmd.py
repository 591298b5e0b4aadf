"""Write ML Metadata the way the Kubeflow Pipelines v2 backend does, straight through the
ml-metadata API and independent of kfkit's own writer.

Follows KFP's driver and launcher (backend/src/v2/metadata): ``system.Pipeline`` context
with a ``system.PipelineRun`` child (custom properties namespace, resource_name,
pipeline_root, store_session_info); a root ``system.DAGExecution`` holding the run's
parameters in ``inputs``; one ``system.ContainerExecution`` per task (display_name,
task_name, image, pod_name, pod_uid, namespace, parent_dag_id, inputs,
cache_fingerprint), created RUNNING with INPUT events, published COMPLETE with OUTPUT
events; a cache hit is a CACHED execution with OUTPUT events to the earlier artifacts.
Artifact metadata is converted as the launcher's ``toMLMDArtifact`` does: strings stay,
numbers become doubles, booleans become ints, lists and structs are wrapped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import struct_pb2
from ml_metadata.metadata_store import metadata_store
from ml_metadata.proto import metadata_store_pb2 as pb

IMAGE = "ghcr.io/kfkit/kfkit:0.1.0"
VALIDATE_IMAGE = "ghcr.io/kfkit/kfkit-validate:0.1.0"


def _value(v: Any) -> pb.Value:
    if isinstance(v, bool):
        return pb.Value(int_value=1 if v else 0)
    if isinstance(v, int | float):
        return pb.Value(double_value=float(v))
    if isinstance(v, str):
        return pb.Value(string_value=v)
    s = struct_pb2.Struct()
    s.update({"list": v} if isinstance(v, list) else {"struct": v})
    return pb.Value(struct_value=s)


def _struct(d: dict[str, Any]) -> pb.Value:
    s = struct_pb2.Struct()
    s.update(d)
    return pb.Value(struct_value=s)


def _event(kind: int, name: str, artifact_id: int | None = None) -> pb.Event:
    event = pb.Event(type=kind)
    if artifact_id is not None:
        event.artifact_id = artifact_id
    event.path.steps.add().key = name
    return event


@dataclass
class KfpBackendWriter:
    store: metadata_store.MetadataStore
    pipeline: str = "kfkit-training"
    outputs: dict[tuple[str, str, str], int] = field(default_factory=dict)  # (run, task, name) -> id

    def _context(self, type_name: str, name: str, props: dict[str, str]) -> pb.Context:
        found = self.store.get_context_by_type_and_name(type_name, name)
        if found:
            return found
        type_id = self.store.put_context_type(pb.ContextType(name=type_name))
        ctx = pb.Context(name=name, type_id=type_id)
        for k, v in props.items():
            ctx.custom_properties[k].string_value = v
        self.store.put_contexts([ctx])
        return self.store.get_context_by_type_and_name(type_name, name)

    def run(
        self, run_id: str, parameters: dict[str, Any], tasks: list[dict[str, Any]], final: str = "COMPLETE"
    ):
        pipeline_ctx = self._context("system.Pipeline", self.pipeline, {})
        run_ctx = self._context(
            "system.PipelineRun",
            run_id,
            {
                "namespace": "kubeflow-user",
                "resource_name": f"{run_id}-argo",
                "pipeline_root": f"minio://mlpipeline/v2/artifacts/{self.pipeline}/{run_id}",
                "store_session_info": json.dumps({"Provider": "minio", "Params": {"fromEnv": "false"}}),
            },
        )
        self.store.put_parent_contexts([pb.ParentContext(child_id=run_ctx.id, parent_id=pipeline_ctx.id)])
        contexts = [pipeline_ctx, run_ctx]
        dag = pb.Execution(
            type_id=self.store.put_execution_type(pb.ExecutionType(name="system.DAGExecution")),
            last_known_state=pb.Execution.RUNNING,
        )
        dag.custom_properties["display_name"].string_value = run_id
        dag.custom_properties["task_name"].string_value = ""
        dag.custom_properties["inputs"].CopyFrom(_struct(parameters))
        dag_id, _, _ = self.store.put_execution(dag, [], contexts)
        container_type = self.store.put_execution_type(pb.ExecutionType(name="system.ContainerExecution"))
        for task in tasks:
            execution = pb.Execution(type_id=container_type, last_known_state=pb.Execution.RUNNING)
            for k, v in {
                "display_name": task["name"],
                "task_name": task["name"],
                "image": task.get("image", IMAGE),
                "pod_name": f"{run_id}-{task['name']}-pod",
                "pod_uid": f"uid-{run_id}-{task['name']}",
                "namespace": "kubeflow-user",
                "cache_fingerprint": f"fp-{task['name']}",
            }.items():
                execution.custom_properties[k].string_value = v
            execution.custom_properties["parent_dag_id"].int_value = dag_id
            execution.custom_properties["inputs"].CopyFrom(_struct(task.get("parameters", {})))
            inputs = []
            for name, (producer_run, producer_task, output) in task.get("inputs", {}).items():
                artifact_id = self.outputs[(producer_run, producer_task, output)]
                [artifact] = self.store.get_artifacts_by_id([artifact_id])
                inputs.append((artifact, _event(pb.Event.INPUT, name)))
            execution_id, _, _ = self.store.put_execution(execution, inputs, contexts)
            [execution] = self.store.get_executions_by_id([execution_id])
            state = task.get("state", "COMPLETE")
            execution.last_known_state = pb.Execution.State.Value(state)
            pairs = []
            if state == "CACHED":  # KFP points a cache hit at the earlier run's artifacts
                for name, source in task["cached_from"].items():
                    [artifact] = self.store.get_artifacts_by_id([self.outputs[source]])
                    pairs.append((artifact, _event(pb.Event.OUTPUT, name)))
                    self.outputs[(run_id, task["name"], name)] = artifact.id
            elif state == "COMPLETE":
                for name, (schema_title, metadata) in task.get("outputs", {}).items():
                    artifact = pb.Artifact(
                        type_id=self.store.put_artifact_type(pb.ArtifactType(name=schema_title)),
                        uri=f"minio://mlpipeline/v2/artifacts/{self.pipeline}/{run_id}/{task['name']}/{name}",
                        state=pb.Artifact.LIVE,
                    )
                    for k, v in metadata.items():
                        artifact.custom_properties[k].CopyFrom(_value(v))
                    artifact.custom_properties["display_name"].string_value = name
                    artifact.custom_properties["store_session_info"].string_value = '{"Provider":"minio"}'
                    pairs.append((artifact, _event(pb.Event.OUTPUT, name)))
            _, artifact_ids, _ = self.store.put_execution(execution, pairs, contexts)
            if state == "COMPLETE":
                for (name, _), artifact_id in zip(task.get("outputs", {}).items(), artifact_ids, strict=True):
                    self.outputs[(run_id, task["name"], name)] = artifact_id
        [dag] = self.store.get_executions_by_id([dag_id])
        dag.last_known_state = pb.Execution.State.Value(final)
        self.store.put_executions([dag])


def penguins_tasks(
    run_id: str,
    fingerprint: str,
    version: str | None,
    estimator: str = "logistic_regression",
    accuracy: float = 0.97,
    fail_at: str | None = None,
    cached_ingest_from: str | None = None,
) -> list[dict[str, Any]]:
    """The five kfkit tasks of one run, with the artifact metadata kfkit's components write."""
    dataset = {
        "dataset_fingerprint": fingerprint,
        "rows": 344,
        "columns": 8,
        "source_uri": "s3://raw/penguins/",
        "source_etag": f"etag-{fingerprint[:6]}",
        "label_column": "species",
    }
    sha = f"{run_id}-sha256"
    if cached_ingest_from:
        ingest = {
            "name": "ingest",
            "state": "CACHED",
            "parameters": {"source_uri": "s3://raw/penguins/"},
            "cached_from": {n: (cached_ingest_from, "ingest", n) for n in ("train_split", "eval_split")},
        }
    else:
        ingest = {
            "name": "ingest",
            "parameters": {
                "source_uri": "s3://raw/penguins/",
                "label_column": "species",
                "eval_fraction": 0.2,
            },
            "outputs": {
                "train_split": ("system.Dataset", {**dataset, "split": "train", "split_rows": 276}),
                "eval_split": ("system.Dataset", {**dataset, "split": "eval", "split_rows": 68}),
            },
        }
    validate = {
        "name": "validate",
        "image": VALIDATE_IMAGE,
        "parameters": {"model_name": "penguins", "policy": "fail"},
        "inputs": {
            "train_split": (run_id, "ingest", "train_split"),
            "eval_split": (run_id, "ingest", "eval_split"),
        },
        "outputs": {
            "statistics": ("system.Artifact", {"dataset_fingerprint": fingerprint}),
            "schema": ("system.Artifact", {"dataset_fingerprint": fingerprint}),
            "anomalies": (
                "system.Artifact",
                {
                    "blessed": True,
                    "anomalies": {},
                    "schema_source": "reference",
                    "schema_uri": "s3://kfkit/schemas/penguins/schema.pbtxt",
                },
            ),
            "report": ("system.Markdown", {}),
        },
    }
    train = {
        "name": "train",
        "parameters": {
            "model_name": "penguins",
            "estimator": estimator,
            "random_seed": 42,
            "hyperparameters": {},
        },
        "inputs": {
            "train_split": (run_id, "ingest", "train_split"),
            "schema": (run_id, "validate", "schema"),
            "anomalies": (run_id, "validate", "anomalies"),
        },
        "outputs": {"model": ("system.Model", {"trained": True, "sha256": sha, "estimator": estimator})},
    }
    evaluate = {
        "name": "evaluate",
        "parameters": {"thresholds": {"accuracy": 0.9}},
        "inputs": {"model": (run_id, "train", "model"), "eval_split": (run_id, "ingest", "eval_split")},
        "outputs": {
            "metrics": ("system.Metrics", {"accuracy": accuracy, "macro_f1": accuracy - 0.01}),
            "classification_metrics": (
                "system.ClassificationMetrics",
                {
                    "confusionMatrix": {
                        "annotationSpecs": [{"displayName": "Adelie"}],
                        "rows": [{"row": [30]}],
                    }
                },
            ),
            "blessing": ("system.Artifact", {"blessed": True, "reason": "all thresholds met"}),
        },
    }
    push = {
        "name": "push",
        "parameters": {"model_name": "penguins", "serving_namespace": "kfkit-serving"},
        "inputs": {"model": (run_id, "train", "model"), "blessing": (run_id, "evaluate", "blessing")},
        "outputs": {
            "pushed_model": (
                "system.Model",
                {
                    "pushed": True,
                    "model_name": "penguins",
                    "version": version or "",
                    "pushed_uri": f"s3://models/penguins/{version}/",
                    "sha256": sha,
                    "dataset_fingerprint": fingerprint,
                },
            ),
            "seldon_deployment": ("system.Artifact", {"model_name": "penguins", "version": version or ""}),
        },
    }
    tasks = [ingest, validate, train, evaluate, push]
    if fail_at:
        index = [t["name"] for t in tasks].index(fail_at)
        tasks = tasks[: index + 1]
        tasks[-1] = {**tasks[-1], "state": "FAILED", "outputs": {}}
    return tasks
