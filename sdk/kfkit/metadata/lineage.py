"""Lineage questions, answered through the ``MetadataStore`` interface only, so they give
the same answers on SQLite, MySQL and a cluster's MLMD.

- :func:`model_lineage`: what produced a pushed model version (data, validation,
  parameters, image, metrics, blessing, where it went).
- :func:`dataset_lineage`: everything downstream of a dataset fingerprint.
- :func:`list_runs`, :func:`show_run`, :func:`compare_runs`: runs side by side.

Pushed models are found by the properties kfkit's push writes on its ``pushed_model``
artifact (``pushed``, ``model_name``, ``version``, ``pushed_uri``); the rest is found by
walking INPUT/OUTPUT events, never by task position, so a store written by the KFP backend
answers the same.
"""

from __future__ import annotations

from typing import Any

from kfkit import names
from kfkit.errors import KfkitError
from kfkit.metadata.store import (
    CONTAINER_EXECUTION,
    DAG_EXECUTION,
    DONE_STATES,
    FAILED,
    RUNNING,
    ArtifactRecord,
    MetadataStore,
    RunRecord,
    TaskRecord,
)

MODEL_TYPE = "system.Model"
DATASET_TYPE = "system.Dataset"
METRICS_TYPE = "system.Metrics"
_NOT_METRICS = ("display_name", "store_session_info")
MIN_FINGERPRINT_PREFIX = 6


# -- graph walking ---------------------------------------------------------------------


def _walk(
    store: MetadataStore, start_tasks: list[int], upstream: bool
) -> tuple[dict[int, TaskRecord], dict[int, ArtifactRecord]]:
    """Breadth-first over events: upstream follows INPUT artifacts to their producers;
    downstream follows OUTPUT artifacts to their consumers."""
    tasks: dict[int, TaskRecord] = {}
    artifacts: dict[int, ArtifactRecord] = {}
    frontier = list(start_tasks)
    while frontier:
        fresh = [t for t in store.tasks(frontier) if t.id not in tasks]
        for task in fresh:
            tasks[task.id] = task
        next_artifacts = sorted(
            {
                a
                for task in fresh
                for ids in (task.input_artifacts if upstream else task.output_artifacts).values()
                for a in ids
                if a not in artifacts
            }
        )
        for artifact in store.artifacts(next_artifacts):
            artifacts[artifact.id] = artifact
        hop = store.producers(next_artifacts) if upstream else store.consumers(next_artifacts)
        frontier = sorted({t for ids in hop.values() for t in ids if t not in tasks})
    return tasks, artifacts


def _outputs_of(task: TaskRecord, artifacts: dict[int, ArtifactRecord]) -> dict[str, ArtifactRecord]:
    return {
        name: artifacts[ids[0]] for name, ids in task.output_artifacts.items() if ids and ids[0] in artifacts
    }


def _metrics(artifact: ArtifactRecord) -> dict[str, float]:
    return {
        k: v
        for k, v in artifact.properties.items()
        if k not in _NOT_METRICS and isinstance(v, int | float) and not isinstance(v, bool)
    }


def _task_summary(task: TaskRecord) -> dict[str, Any]:
    summary = {"task": task.task_name, "state": task.state, "image": task.image, "execution_id": task.id}
    if task.error:
        summary["error"] = task.error
    return summary


def _run_summary(run: RunRecord | None) -> dict[str, Any] | None:
    if run is None:
        return None
    return {"run_id": run.run_id, "pipeline": run.pipeline, "created": run.created}


# -- model lineage ---------------------------------------------------------------------


# The latest version is the highest number among the most recently recorded pushes; a window
# rather than one, because pushes running side by side may record out of number order.
LATEST_WINDOW = 50


def _pushed_versions(
    store: MetadataStore, model_name: str, version: str | None = None, newest: int | None = None
) -> list[ArtifactRecord]:
    equals: dict[str, Any] = {"model_name": model_name, "pushed": True}
    if version is not None:
        equals["version"] = version
    found = store.find_artifacts(MODEL_TYPE, equals=equals, newest=newest)
    return [a for a in found if str(a.properties.get("version", "")).isdigit()]


def model_lineage(store: MetadataStore, reference: str) -> dict[str, Any]:
    """What produced ``<model-name>[:<version>]`` (no version: the latest pushed one)."""
    model_name, version = names.parse_model_reference(reference)
    version = version or None
    pushed = _pushed_versions(store, model_name, version, newest=None if version else LATEST_WINDOW)
    if not pushed:
        # Only now read every version: to say which ones exist, or that none does.
        known = sorted({str(a.properties["version"]) for a in _pushed_versions(store, model_name)}, key=int)
        if not known:
            raise KfkitError(
                f"no pushed model named {model_name!r} in the metadata store {store.description}"
            )
        raise KfkitError(
            f"model {model_name!r} has no pushed version {version}; pushed versions: {', '.join(known)}"
        )
    chosen = max(pushed, key=lambda a: (int(a.properties["version"]), a.created, a.id))

    push_task_ids = store.producers([chosen.id])[chosen.id]
    if not push_task_ids:
        raise KfkitError(f"model {model_name}:{chosen.properties['version']}: no task produced it")
    tasks, artifacts = _walk(store, push_task_ids, upstream=True)
    artifacts[chosen.id] = chosen
    # Outputs nothing consumed downstream (metrics, statistics) are part of the story too.
    siblings = sorted(
        {a for t in tasks.values() for ids in t.output_artifacts.values() for a in ids} - set(artifacts)
    )
    for artifact in store.artifacts(siblings):
        artifacts[artifact.id] = artifact
    run = store.runs_of_tasks(push_task_ids[:1]).get(push_task_ids[0])
    by_name = {t.task_name: t for t in sorted(tasks.values(), key=lambda t: t.id)}

    datasets, validation, training, metrics, blessing = [], {}, {}, {}, {}
    for task in sorted(tasks.values(), key=lambda t: t.id):
        for output_name, artifact in _outputs_of(task, artifacts).items():
            props = artifact.properties
            if artifact.type == DATASET_TYPE:
                if any(d["artifact_id"] == artifact.id for d in datasets):
                    continue  # a cached task re-publishes the same artifact
                datasets.append(
                    {
                        "name": output_name,
                        "uri": artifact.uri,
                        "split": props.get("split"),
                        "rows": props.get("split_rows", props.get("rows")),
                        "dataset_fingerprint": props.get("dataset_fingerprint"),
                        "source_uri": props.get("source_uri"),
                        "source_version": props.get("source_version_id") or props.get("source_etag"),
                        "artifact_id": artifact.id,
                    }
                )
            elif artifact.type == METRICS_TYPE:
                metrics.update(_metrics(artifact))
            elif "blessed" in props and output_name == "anomalies":
                validation = {
                    "blessed": bool(props.get("blessed")),
                    "anomalies": props.get("anomalies", {}),
                    "schema_source": props.get("schema_source"),
                    "schema_uri": props.get("schema_uri"),
                    "task": task.task_name,
                }
            elif "blessed" in props and output_name == "blessing":
                blessing = {
                    "blessed": bool(props.get("blessed")),
                    "reason": props.get("reason"),
                    "checks": props.get("checks", {}),
                }
            elif artifact.type == MODEL_TYPE and artifact.id != chosen.id and not props.get("pushed"):
                training = {
                    "task": task.task_name,
                    "image": task.image,
                    "parameters": task.inputs,
                    "model_uri": artifact.uri,
                    "model_sha256": props.get("sha256"),
                    "estimator": props.get("estimator", task.inputs.get("estimator")),
                }
    for name, key in (("statistics", "statistics_uri"), ("schema", "schema_artifact_uri")):
        for task in tasks.values():
            artifact = _outputs_of(task, artifacts).get(name)
            if artifact is not None:
                validation[key] = artifact.uri
    props = chosen.properties
    return {
        "model": {
            "name": model_name,
            "version": str(props.get("version")),
            "uri": props.get("pushed_uri"),
            "sha256": props.get("sha256"),
            "pushed_at": chosen.created,
            "artifact_id": chosen.id,
        },
        "run": _run_summary(run),
        "dataset_fingerprint": props.get("dataset_fingerprint")
        or next((d["dataset_fingerprint"] for d in datasets if d["dataset_fingerprint"]), None),
        "datasets": datasets,
        "validation": validation,
        "training": training,
        "metrics": metrics,
        "blessing": blessing,
        "tasks": [_task_summary(t) for t in by_name.values()],
    }


# -- dataset lineage -------------------------------------------------------------------


def dataset_lineage(store: MetadataStore, fingerprint: str) -> dict[str, Any]:
    """Everything downstream of the data with this fingerprint (a unique prefix works)."""
    fingerprint = fingerprint.strip().lower()
    if len(fingerprint) < MIN_FINGERPRINT_PREFIX or not all(c in "0123456789abcdef" for c in fingerprint):
        raise KfkitError(
            f"{fingerprint!r}: expected a sha256 dataset fingerprint "
            f"(at least {MIN_FINGERPRINT_PREFIX} hex digits)"
        )
    datasets = store.find_artifacts(DATASET_TYPE, prefix={"dataset_fingerprint": fingerprint})
    full = sorted({str(d.properties.get("dataset_fingerprint")) for d in datasets})
    if not datasets:
        raise KfkitError(
            f"no dataset with fingerprint {fingerprint} in the metadata store {store.description}"
        )
    if len(full) > 1:
        raise KfkitError(f"fingerprint prefix {fingerprint} is ambiguous: {', '.join(f[:16] for f in full)}")
    start = sorted({t for ids in store.consumers([d.id for d in datasets]).values() for t in ids})
    producers = sorted({t for ids in store.producers([d.id for d in datasets]).values() for t in ids})
    tasks, artifacts = _walk(store, start, upstream=False)
    for d in datasets:
        artifacts[d.id] = d
    runs = store.runs_of_tasks(sorted(set(tasks) | set(producers)))
    models, pushes = [], []
    for task in sorted(tasks.values(), key=lambda t: t.id):
        for artifact in _outputs_of(task, artifacts).values():
            if artifact.type != MODEL_TYPE:
                continue
            props = artifact.properties
            entry = {"run_id": runs[task.id].run_id if task.id in runs else None, "artifact_id": artifact.id}
            if props.get("pushed"):
                pushes.append(
                    {
                        **entry,
                        "model_name": props.get("model_name"),
                        "version": str(props.get("version")),
                        "uri": props.get("pushed_uri"),
                        "sha256": props.get("sha256"),
                    }
                )
            elif props.get("sha256"):
                models.append({**entry, "uri": artifact.uri, "sha256": props.get("sha256")})
    run_ids = sorted({r.run_id for r in runs.values()})
    return {
        "dataset_fingerprint": full[0],
        "datasets": [
            {"artifact_id": d.id, "name": d.name, "uri": d.uri, "source_uri": d.properties.get("source_uri")}
            for d in datasets
        ],
        "runs": [_run_summary(store.run(r)) for r in run_ids],
        "models": models,
        "pushes": pushes,
        "tasks": [
            {**_task_summary(t), "run_id": runs[t.id].run_id if t.id in runs else None}
            for t in sorted(tasks.values(), key=lambda t: t.id)
        ],
    }


# -- runs ------------------------------------------------------------------------------


def _run_state(tasks: list[TaskRecord]) -> str:
    dag = next((t for t in tasks if t.type == DAG_EXECUTION), None)
    containers = [t for t in tasks if t.type == CONTAINER_EXECUTION]
    if any(t.state == FAILED for t in tasks):
        return "FAILED"
    if dag is not None and dag.state in DONE_STATES:
        return "SUCCEEDED"
    if dag is None and containers and all(t.state in DONE_STATES for t in containers):
        return "SUCCEEDED"
    return RUNNING


def _parameters(tasks: list[TaskRecord]) -> dict[str, Any]:
    dag = next((t for t in tasks if t.type == DAG_EXECUTION and t.inputs), None)
    if dag is not None:
        return dict(dag.inputs)
    merged: dict[str, Any] = {}  # no root DAG record: fall back to what the tasks received
    for task in tasks:
        merged.update(task.inputs)
    return merged


def show_run(store: MetadataStore, run_id: str) -> dict[str, Any]:
    run = store.run(run_id)
    if run is None:
        raise KfkitError(f"no run {run_id!r} in the metadata store {store.description}")
    tasks = store.run_tasks(run_id)
    containers = [t for t in tasks if t.type == CONTAINER_EXECUTION]
    artifact_ids = sorted({a for t in containers for ids in t.output_artifacts.values() for a in ids})
    artifacts = {a.id: a for a in store.artifacts(artifact_ids)}
    by_task: dict[str, dict[str, float]] = {}
    pushed = None
    outputs = []
    for task in containers:
        for name, artifact in _outputs_of(task, artifacts).items():
            outputs.append({"task": task.task_name, "name": name, "type": artifact.type, "uri": artifact.uri})
            if artifact.type == METRICS_TYPE:
                by_task.setdefault(task.task_name, {}).update(_metrics(artifact))
            if artifact.type == MODEL_TYPE and artifact.properties.get("pushed"):
                pushed = {
                    "model_name": artifact.properties.get("model_name"),
                    "version": str(artifact.properties.get("version")),
                    "uri": artifact.properties.get("pushed_uri"),
                }
    # One task with metrics (kfkit's training pipeline): plain names. Several (two evaluates):
    # "<task>.<metric>", so one task's accuracy never hides another's.
    if len(by_task) == 1:
        metrics = next(iter(by_task.values()))
    else:
        metrics = {
            f"{task}.{name}": value for task, values in by_task.items() for name, value in values.items()
        }
    finished = [t.updated for t in tasks if t.state != RUNNING]
    return {
        **_run_summary(run),
        "state": _run_state(tasks),
        "seconds": round(max(finished) - run.created, 2) if finished else None,
        "parameters": _parameters(tasks),
        "metrics": metrics,
        "pushed": pushed,
        "tasks": [_task_summary(t) for t in containers],
        "artifacts": outputs,
    }


def list_runs(store: MetadataStore, limit: int = 20) -> list[dict[str, Any]]:
    rows = []
    for run in store.runs(limit=limit):
        shown = show_run(store, run.run_id)
        rows.append(
            {k: shown[k] for k in ("run_id", "pipeline", "created", "state", "seconds", "metrics", "pushed")}
        )
    return rows


def compare_runs(store: MetadataStore, run_ids: list[str]) -> dict[str, Any]:
    """Parameters and metrics side by side; ``differs`` lists the rows that are not equal."""
    if len(run_ids) < 2:
        raise KfkitError("runs compare: give at least two run ids")
    shown = [show_run(store, r) for r in run_ids]
    table: dict[str, dict[str, dict[str, Any]]] = {"parameters": {}, "metrics": {}}
    for section in table:
        keys = sorted({k for s in shown for k in s[section]})
        for key in keys:
            table[section][key] = {s["run_id"]: s[section].get(key) for s in shown}
    differs = [
        f"{section}.{key}"
        for section, rows in table.items()
        for key, values in rows.items()
        if len({repr(v) for v in values.values()}) > 1
    ]
    return {
        "runs": [{k: s[k] for k in ("run_id", "pipeline", "state", "created")} for s in shown],
        "parameters": table["parameters"],
        "metrics": table["metrics"],
        "differs": differs,
    }
