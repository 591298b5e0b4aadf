"""Re-run a past local training run from its lineage and say how the result compares.

``kfkit reproduce RUN_ID`` reads the run from the metadata store (its parameters, the source
its ingest read and that source's content identity, the images its tasks ran, the model it
trained), refuses before anything runs when the data is gone or changed, re-runs kfkit's
training pipeline with the same parameters under a new run id with caching off, and diffs the
two runs: dataset fingerprint, split sizes, metrics, model sha256 and the two models'
predictions on the eval split.

The reproduced run never pushes or deploys: it runs the compiled training pipeline without its
push task (the same components, images and parameters otherwise), so no version is added to the
registry and no deploy target is touched, whatever ``deploy_strategy`` the original run had.
It compares with the same baseline as the original: resolve-baseline is replaced by a kfp
importer of the original's baseline (its folder, or that version downloaded again), so a
version pushed or deployed since changes neither the schema validate checks against, nor the
drift it measures, nor evaluate's comparison. (The importer is no kfkit task: the reproduced
run's summary lists it as ``original-baseline`` NOT_RECORDED.)
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kfkit import names
from kfkit.errors import KfkitError, first_line
from kfkit.local_run import RunSummary, pipeline_spec, run_local, summarise, task_images
from kfkit.metadata import open_store
from kfkit.metadata.lineage import show_run
from kfkit.model_folder import MANIFEST_FILE
from kfkit.settings import state_dir

Progress = Callable[[str], None]

PIPELINE = "training"
PUSH_TASK = "push"
BASELINE_TASK = "resolve-baseline"
PINNED_BASELINE_TASK = "original-baseline"  # the importer that replaces it
# Exit codes of `kfkit reproduce` (1 is a refusal or a failed reproduced run, as for every verb).
REPRODUCED, DIFFERS = 0, 2
# Probabilities of two models this close count as the same predictions: the float noise of a
# different BLAS path, far below anything a metric rounded to 6 digits shows.
EQUIVALENT_PROBABILITY = 1e-9

SAME, DIFFERENT, INFO = "yes", "NO", ""


@dataclass
class DiffRow:
    item: str
    original: Any
    reproduced: Any
    same: str  # "yes", "NO", or "" for what is shown but not compared (a new run id, a baseline)
    note: str = ""
    # Part of the verdict: the data, splits, metrics and predictions are; the code that made them
    # (versions, images) is shown beside them, so a change of code that changes nothing passes.
    decides: bool = True


@dataclass
class Reproduction:
    original_run_id: str
    run_id: str
    reproduced: bool  # fingerprint, splits, metrics and predictions all the same
    rows: list[DiffRow]
    model: dict[str, Any] = field(default_factory=dict)  # sha256s and why the bytes differ
    predictions: dict[str, Any] = field(default_factory=dict)  # on the eval split
    summary: dict[str, Any] = field(default_factory=dict)  # the reproduced run's RunSummary

    @property
    def exit_code(self) -> int:
        return REPRODUCED if self.reproduced else DIFFERS

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "exit_code": self.exit_code}


# -- the original run ----------------------------------------------------------------------


@dataclass
class Original:
    run_id: str
    parameters: dict[str, Any]
    summary: RunSummary  # its artifacts, metrics and pushed version, from the metadata store
    images: dict[str, str]  # task -> image it ran


def load_original(run_id: str, metadata_uri: str | None = None) -> Original:
    """The run as the metadata store recorded it; one line if it cannot be reproduced."""
    store = open_store(metadata_uri)
    try:
        record = store.run(run_id)
        if record is None:
            raise KfkitError(f"no run {run_id!r} in the metadata store {store.description}")
        if record.pipeline != names.PIPELINE_NAME:
            raise KfkitError(
                f"run {run_id} ran the pipeline {record.pipeline!r}; kfkit reproduce re-runs runs of "
                f"kfkit's training pipeline ({names.PIPELINE_NAME}) only"
            )
        shown = show_run(store, run_id)
        if shown["state"] != "SUCCEEDED":
            failed = next((t for t in shown["tasks"] if t.get("error")), None)
            why = f": {failed['task']}: {failed['error']}" if failed else ""
            raise KfkitError(f"run {run_id} did not succeed ({shown['state']}{why}); nothing to reproduce")
        spec = pipeline_spec(_training_spec_path())
        summary = summarise(store, spec, run_id, None)
    finally:
        store.close()
    if "ingest.train_split" not in summary.artifacts:
        raise KfkitError(
            f"run {run_id} recorded no ingested data (no ingest.train_split); nothing to reproduce"
        )
    return Original(
        run_id=run_id,
        parameters=shown["parameters"],
        summary=summary,
        images={t["task"]: t["image"] for t in shown["tasks"]},
    )


def _training_spec_path() -> Path:
    from kfkit.catalog import pipeline_spec_file

    return pipeline_spec_file(PIPELINE)


# -- the data, checked before anything runs ------------------------------------------------


def check_source(original: Original) -> str | None:
    """The source's content identity now, as resolve_source resolves it (None: the run recorded
    none to check against, and only the fingerprint after the re-run tells); raises one line
    naming the file or object when it is gone or its content is not what the original run read."""
    data = original.summary.artifacts["ingest.train_split"]
    source_uri = str(data.get("source_uri") or original.parameters.get("data_uri", ""))
    return check_recorded_source(source_uri, data, original.run_id)


def check_recorded_source(source_uri: str, data: dict[str, Any], run_id: str) -> str | None:
    """:func:`check_source` for any record of ingest's source fields (``source_identity``,
    ``source_files``, ``source_etag``, ``source_version_id``) written by run ``run_id``."""
    from kfkit.components.ingest.executor import list_source, source_identity

    recorded = str(data.get("source_identity") or "")
    try:
        files = list_source(source_uri)
    except KfkitError as exc:
        raise KfkitError(f"the data of run {run_id} is gone: {exc}") from None
    now = source_identity(files)
    if not recorded:
        return None
    if now == recorded:
        return now
    then_files = int(data.get("source_files") or 0)
    if len(files) == 1 and then_files == 1:
        found = files[0]
        if found.is_object:
            then_etag = data.get("source_etag") or "?"
            what = f"its etag was {then_etag}, now {found.etag}"
            if data.get("source_version_id"):
                # ingest reads the current object only: the recorded version cannot be pointed at.
                what += f" (the run read version {data['source_version_id']})"
        else:
            what = "its sha256 is not that of the bytes the run read"
        raise KfkitError(f"{found.name}: changed since run {run_id}: {what}; nothing run")
    raise KfkitError(
        f"{source_uri}: changed since run {run_id} ({then_files} file(s) then, {len(files)} now, "
        "content identity differs); nothing run"
    )


# -- the re-run ----------------------------------------------------------------------------


def _drop_task(documents: list[dict[str, Any]], task_name: str) -> dict[str, Any]:
    """Take a task, its component and its executor out of a compiled pipeline (and out of
    kfp-kubernetes' platform config, which names the same executor); returns the task."""
    spec = documents[0]
    task = spec["root"]["dag"]["tasks"].pop(task_name)
    executor = spec["components"].pop(task["componentRef"]["name"])["executorLabel"]
    spec["deploymentSpec"]["executors"].pop(executor)
    for platform in documents[1:]:
        kubernetes = (platform or {}).get("platforms", {}).get("kubernetes", {})
        kubernetes.get("deploymentSpec", {}).get("executors", {}).pop(executor, None)
    return task


def _import_baseline(documents: list[dict[str, Any]], uri: str, metadata: dict[str, Any]) -> None:
    """Replace resolve-baseline with a kfp importer of the original run's baseline (its folder
    and metadata): validate and evaluate compare with what the original compared with, not with
    whatever serves now. Downstream inputs read the importer's one output, ``artifact``."""
    spec = documents[0]
    _drop_task(documents, BASELINE_TASK)
    artifact_type = {"schemaTitle": "system.Artifact", "schemaVersion": "0.0.1"}
    component, executor = f"comp-{PINNED_BASELINE_TASK}", f"exec-{PINNED_BASELINE_TASK}"
    spec["components"][component] = {
        "executorLabel": executor,
        "inputDefinitions": {"parameters": {"uri": {"parameterType": "STRING"}}},
        "outputDefinitions": {"artifacts": {"artifact": {"artifactType": artifact_type}}},
    }
    spec["deploymentSpec"]["executors"][executor] = {
        "importer": {"artifactUri": {"constant": uri}, "metadata": metadata, "typeSchema": artifact_type}
    }
    tasks = spec["root"]["dag"]["tasks"]
    tasks[PINNED_BASELINE_TASK] = {
        "cachingOptions": {"enableCache": False},
        "componentRef": {"name": component},
        "inputs": {"parameters": {"uri": {"runtimeValue": {"constant": uri}}}},
        "taskInfo": {"name": PINNED_BASELINE_TASK},
    }
    for task in tasks.values():
        if BASELINE_TASK in task.get("dependentTasks", []):
            task["dependentTasks"] = sorted(
                {*(t for t in task["dependentTasks"] if t != BASELINE_TASK), PINNED_BASELINE_TASK}
            )
        for source in task.get("inputs", {}).get("artifacts", {}).values():
            produced = source.get("taskOutputArtifact", {})
            if produced.get("producerTask") == BASELINE_TASK:
                produced.update(producerTask=PINNED_BASELINE_TASK, outputArtifactKey="artifact")


def original_baseline(original: Original) -> tuple[str, dict[str, Any]]:
    """The folder and metadata of the baseline the original run compared with: its own folder
    when it is still there, else that version downloaded again from the registry (verified by
    signature and sha256), else (never pushed then) an empty folder. One line if it is gone."""
    from kfkit.model_registry import download, download_companions
    from kfkit.storage import ObjectStore

    metadata = dict(original.summary.artifacts.get("resolve-baseline.baseline") or {})
    if not metadata:
        record = state_dir() / "runs" / f"{original.run_id}.reproduction.json"
        if record.is_file():  # its baseline was imported, not resolved: the first run has it
            first = json.loads(record.read_text())["original_run_id"]
            raise KfkitError(f"run {original.run_id} is a reproduction of run {first}: reproduce {first}")
        raise KfkitError(f"run {original.run_id} recorded no baseline (no resolve-baseline.baseline)")
    folder = Path(original.summary.artifact_uris.get("resolve-baseline.baseline", ""))
    complete = folder.is_dir() and (not metadata.get("found") or (folder / MANIFEST_FILE).is_file())
    if complete:
        return str(folder), metadata
    folder = state_dir() / "reproduce" / original.run_id / "baseline"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    if metadata.get("found"):
        model_name, version = str(metadata["model_name"]), str(metadata["version"])
        try:
            store = ObjectStore.from_env()
            download_companions(store, model_name, version, folder)
            download(store, model_name, version, folder)
        except KfkitError as exc:
            raise KfkitError(
                f"the baseline of run {original.run_id} ({model_name}:{version}) cannot be read: {exc}"
            ) from None
        if metadata.get("schema_reset"):  # resolve_baseline left these out then: so here
            for name in (names.SCHEMA_FILE, names.TRAIN_STATISTICS_FILE):
                (folder / name).unlink(missing_ok=True)
    return str(folder), metadata


def reproduction_spec(original: Original) -> Path:
    """kfkit's compiled training pipeline, changed in two places: no push task (nothing depends
    on push), so the reproduced run can neither add a version nor touch a deployment; and the
    original's baseline imported in place of resolve-baseline."""
    import yaml

    documents = list(yaml.safe_load_all(_training_spec_path().read_text()))
    _drop_task(documents, PUSH_TASK)
    _import_baseline(documents, *original_baseline(original))
    target = state_dir() / "reproduce" / f"{original.run_id}.yaml"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(yaml.safe_dump_all(documents, sort_keys=False))
    return target


def reproduce(run_id: str, metadata_uri: str | None = None, progress: Progress | None = None) -> Reproduction:
    """Re-run ``run_id`` (checked first: see :func:`check_source`) and diff it against the
    original. Raises ``KfkitError`` (one line) when it cannot be reproduced or the re-run fails."""
    from kfkit.local_run import object_store_env

    progress = progress or (lambda line: None)
    original = load_original(run_id, metadata_uri)
    with object_store_env():
        if check_source(original) is None:
            progress(f"run {run_id} recorded no source identity: the dataset fingerprint will tell")
        spec_path = reproduction_spec(original)
        progress(f"reproducing {run_id}: same data, parameters and baseline; caching off; push left out")
        summary = run_local(
            original.parameters,
            pipeline=str(spec_path),
            progress=progress,
            metadata_uri=metadata_uri,
            use_cache=False,
        )
        if summary.status != "SUCCEEDED":
            raise KfkitError(f"reproduced run {summary.run_id} failed: {summary.error}")
        result = compare(original, summary, task_images(pipeline_spec(spec_path)))
    record = state_dir() / "runs" / f"{result.run_id}.reproduction.json"
    record.write_text(json.dumps(result.to_dict(), indent=2, sort_keys=True, default=str) + "\n")
    return result


# -- the diff ------------------------------------------------------------------------------


def _same(a: Any, b: Any) -> str:
    return SAME if a == b else DIFFERENT


def compare(original: Original, summary: RunSummary, images_now: dict[str, str]) -> Reproduction:
    then, now = original.summary, summary
    rows: list[DiffRow] = [DiffRow("run", then.run_id, now.run_id, INFO)]
    data_then, data_now = (
        then.artifacts.get("ingest.train_split", {}),
        now.artifacts.get("ingest.train_split", {}),
    )
    rows.append(DiffRow("source", data_then.get("source_uri"), data_now.get("source_uri"), INFO))
    rows.append(
        DiffRow(
            "source identity",
            data_then.get("source_identity"),
            data_now.get("source_identity"),
            _same(data_then.get("source_identity"), data_now.get("source_identity")),
        )
    )
    rows.append(
        DiffRow(
            "dataset fingerprint",
            then.dataset_fingerprint,
            now.dataset_fingerprint,
            _same(then.dataset_fingerprint, now.dataset_fingerprint),
        )
    )
    for split in ("train_rows", "eval_rows"):
        a, b = data_then.get(split), data_now.get(split)
        rows.append(DiffRow(split.replace("_", " "), a, b, _same(a, b)))
    base_then, base_now = (
        then.artifacts.get("resolve-baseline.baseline", {}),
        now.artifacts.get("resolve-baseline.baseline", {}),
    )
    # The reproduced run imports the original's baseline (reproduction_spec): the same one.
    imported = _baseline(base_then) if not base_now else _baseline(base_now)
    rows.append(DiffRow("compared with", _baseline(base_then), imported, INFO))
    verdict_then, verdict_now = (
        then.artifacts.get("validate.anomalies", {}),
        now.artifacts.get("validate.anomalies", {}),
    )
    a, b = verdict_then.get("blessed"), verdict_now.get("blessed")
    why = "" if bool(a) == bool(b) else str(verdict_now.get("reason", ""))  # e.g. drift from a newer baseline
    rows.append(DiffRow("data blessed", _yes_no(a), _yes_no(b), _same(bool(a), bool(b)), why))
    metrics_then, metrics_now = then.metrics.get("evaluate", {}), now.metrics.get("evaluate", {})
    for metric in sorted(set(metrics_then) | set(metrics_now)):
        a, b = metrics_then.get(metric), metrics_now.get(metric)
        rows.append(DiffRow(f"metric {metric}", a, b, _same(a, b)))
    a, b = then.blessed.get("evaluate"), now.blessed.get("evaluate")
    rows.append(DiffRow("model blessed", _yes_no(a), _yes_no(b), INFO))

    model = compare_models(then, now)
    predictions = compare_predictions(then, now)
    if model["same"] == DIFFERENT and "fitted_difference" in predictions:
        difference = predictions["fitted_difference"]
        model["note"] += (
            f"; the fitted estimators differ first at {difference}"
            if difference
            else "; the fitted estimators are equal attribute by attribute (only the file's bytes differ)"
        )
    # Model bytes may differ for a stated reason: the predictions, when both models could be
    # scored, stand for the model.
    scored = bool(predictions.get("scored"))
    rows.append(
        DiffRow(
            "model sha256",
            model.get("original_sha256"),
            model.get("sha256"),
            model["same"],
            model["note"],
            decides=not scored,
        )
    )
    if predictions:
        compared = "max_abs_probability_difference" in predictions
        rows.append(
            DiffRow(
                "eval predictions",
                f"{predictions['rows']} rows scored by both models" if scored else "-",
                f"max |dp| {predictions['max_abs_probability_difference']:.3g}; "
                f"{predictions['equal_labels']}/{predictions['rows']} labels equal"
                if compared
                else "-",
                (SAME if predictions["equivalent"] else DIFFERENT) if scored else INFO,
                predictions.get("note", ""),
                decides=scored,
            )
        )
    manifest_then, manifest_now = then.artifacts.get("train.model", {}), now.artifacts.get("train.model", {})
    for key in ("kfkit_version", "sklearn_version", "python_version"):
        a, b = manifest_then.get(key), manifest_now.get(key)
        if a or b:
            rows.append(DiffRow(key.replace("_", " "), a, b, _same(a, b), decides=False))
    # Push is not run (the pushed row), and resolve-baseline is replaced by an importer.
    replaced = (PUSH_TASK, BASELINE_TASK, PINNED_BASELINE_TASK)
    ran = sorted(t for t in set(original.images) | set(images_now) if t not in replaced)
    changed = [t for t in ran if original.images.get(t) != images_now.get(t)]
    for task in changed:
        rows.append(
            DiffRow(
                f"image {task}", original.images.get(task), images_now.get(task), DIFFERENT, decides=False
            )
        )
    if not changed:
        rows.append(DiffRow("images", f"{len(ran)} tasks' images", "the same", SAME, decides=False))
    pushed = then.pushed_version()
    rows.append(
        DiffRow(
            "pushed",
            f"{then.artifacts.get('push.pushed_model', {}).get('model_name')}:{pushed['version']}"
            if pushed
            else then.outcome,
            "nothing (reproduce never pushes or deploys)",
            INFO,
        )
    )
    reproduced = all(r.same == SAME for r in rows if r.decides and r.same != INFO)
    return Reproduction(
        original_run_id=then.run_id,
        run_id=now.run_id,
        reproduced=reproduced,
        rows=rows,
        model=model,
        predictions=predictions,
        summary=now.to_dict(),
    )


def _yes_no(value: Any) -> str | None:
    return None if value is None else ("yes" if value else "no")


def _baseline(meta: dict[str, Any]) -> str:
    if not meta:
        return "-"
    if not meta.get("found"):
        return "no version (first run)"
    return f"{meta.get('model_name')}:{meta.get('version')} ({meta.get('baseline_source')})"


def _model_folder(summary: RunSummary) -> Path | None:
    uri = summary.artifact_uris.get("train.model")
    return Path(uri) if uri and Path(uri).is_dir() else None


def _original_model_folder(then: RunSummary, scratch: Path) -> tuple[Path | None, str]:
    """The original run's trained model folder, or (when the run's local folder is gone) the
    version it pushed, downloaded and verified."""
    folder = _model_folder(then)
    if folder is not None:
        return folder, str(folder)
    pushed = then.pushed_version()
    if not pushed:
        return None, "the original run's model folder is gone and it pushed no version"
    from kfkit.model_registry import download, download_companions
    from kfkit.storage import ObjectStore

    store, model_name = ObjectStore.from_env(), then.artifacts["push.pushed_model"]["model_name"]
    download_companions(store, model_name, pushed["version"], scratch)
    download(store, model_name, pushed["version"], scratch)
    return scratch, pushed["uri"]


def compare_models(then: RunSummary, now: RunSummary) -> dict[str, Any]:
    """The model files' sha256 and, when they differ, what differs: the manifest beside them
    always differs in ``run_id`` (it names the run), which is why the model file is compared."""
    a, b = then.artifacts.get("train.model", {}), now.artifacts.get("train.model", {})
    found = {"original_sha256": a.get("sha256"), "sha256": b.get("sha256")}
    if not a.get("sha256") or not b.get("sha256"):
        return {
            **found,
            "same": DIFFERENT if a.get("sha256") != b.get("sha256") else INFO,
            "note": "no model",
        }
    manifest_keys = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k) and k != "sha256")
    found["manifest_differs_in"] = manifest_keys
    if a["sha256"] == b["sha256"]:
        note = "identical bytes"
        if manifest_keys:
            note += f" (kfkit-model.json differs only in {', '.join(manifest_keys)})"
        return {**found, "same": SAME, "note": note}
    return {**found, "same": DIFFERENT, "note": "model.joblib bytes differ"}


def compare_predictions(then: RunSummary, now: RunSummary) -> dict[str, Any]:
    """Both models' predictions on the reproduced run's eval split: the largest difference of a
    class probability (or predicted value) and how many predicted labels are equal. Also says
    where the two fitted estimators first differ (None: nowhere)."""
    import tempfile

    import numpy as np

    from kfkit.components.evaluate.executor import predict
    from kfkit.model_folder import load_verified_model
    from kfkit.splits import read_split

    folder_now = _model_folder(now)
    eval_uri = now.artifact_uris.get("ingest.eval_split")
    if folder_now is None or not eval_uri:
        return {}
    with tempfile.TemporaryDirectory(prefix="kfkit-reproduce-") as scratch:
        try:
            folder_then, where = _original_model_folder(then, Path(scratch))
            # A newer scikit-learn, or a signing key no longer trusted, refuses the old model.
            loaded_then = load_verified_model(folder_then) if folder_then else None
        except KfkitError as exc:
            loaded_then, where = None, first_line(exc)
    if loaded_then is None:
        return {"scored": False, "note": f"the original model was not scored: {where}", "equivalent": False}
    model_then, manifest_then = loaded_then
    model_now, manifest_now = load_verified_model(folder_now)
    frame = read_split(eval_uri)
    out_then = np.asarray(predict(model_then, manifest_then, frame), dtype=float)
    out_now = np.asarray(predict(model_now, manifest_now, frame), dtype=float)
    if out_then.shape != out_now.shape:
        return {
            "scored": True,
            "note": f"the outputs differ in shape: {out_then.shape} vs {out_now.shape}",
            "equivalent": False,
            "rows": len(frame),
        }
    largest = float(np.max(np.abs(out_then - out_now))) if out_then.size else 0.0
    if manifest_now.problem_type == "regression":
        equal = int(np.sum(out_then == out_now))
    else:
        equal = int(np.sum(out_then.argmax(axis=1) == out_now.argmax(axis=1)))
    return {
        "scored": True,
        "rows": len(frame),
        "equal_labels": equal,
        "max_abs_probability_difference": largest,
        "equivalent": largest <= EQUIVALENT_PROBABILITY and equal == len(frame),
        "fitted_difference": fitted_difference(model_then, model_now),
        "original_model": where,
    }


def fitted_difference(a: Any, b: Any, path: str = "model") -> str | None:
    """Where two fitted models first differ (``model.steps[1][1].coef_``), attribute by
    attribute, arrays by value; None when they are equal. Re-pickling is no measure of this:
    the same file loaded twice can pickle to different bytes (pickle's memo follows object
    identity: which equal strings are one object). Compiled objects (a tree's ``Tree``, a
    loss) compare by what they pickle as."""
    import math

    import numpy as np

    if a is b:
        return None
    if type(a) is not type(b):
        return f"{path} ({type(a).__name__} vs {type(b).__name__})"
    if isinstance(a, np.ndarray):
        nan_equal = a.dtype.kind in "fc"
        same = a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b, equal_nan=nan_equal)
        return None if same else path
    if isinstance(a, dict):
        if list(a) != list(b):
            return f"{path} (keys)"
        items = ((v, b[k], f"{path}[{k!r}]") for k, v in a.items())
    elif isinstance(a, list | tuple):
        if len(a) != len(b):
            return f"{path} (length)"
        items = ((x, y, f"{path}[{i}]") for i, (x, y) in enumerate(zip(a, b, strict=True)))
    elif isinstance(a, float | np.floating) and math.isnan(a) and math.isnan(b):
        return None
    elif isinstance(a, str | bytes | int | float | complex | np.generic | np.dtype | type) or a is None:
        return None if a == b else path
    else:
        state_a, state_b = a.__getstate__(), b.__getstate__()
        if isinstance(state_a, list | tuple):
            return fitted_difference(state_a, state_b, path)
        if not isinstance(state_a, dict):  # a compiled object (a loss): what it pickles as
            reduced_a, reduced_b = a.__reduce_ex__(4), b.__reduce_ex__(4)
            if not isinstance(reduced_a, tuple) or reduced_a[0] != reduced_b[0]:
                return None if a == b else path
            return fitted_difference(reduced_a[1:], reduced_b[1:], path)
        if list(state_a) != list(state_b):
            return f"{path} (attributes)"
        items = ((v, state_b[k], f"{path}.{k}") for k, v in state_a.items())
    return next((d for x, y, where in items if (d := fitted_difference(x, y, where))), None)


def format_reproduction(result: Reproduction) -> str:
    from kfkit.tables import grid

    body = [(r.item, r.original, r.reproduced, r.same, r.note) for r in result.rows]
    verdict = (
        "reproduced: same data, splits, metrics and predictions"
        if result.reproduced
        else "NOT reproduced: rows marked NO differ"
    )
    return grid(["", "ORIGINAL", "REPRODUCED", "SAME", "NOTE"], body) + f"\n\n{verdict}"
