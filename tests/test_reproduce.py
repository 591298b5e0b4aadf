"""`kfkit reproduce RUN_ID`: a past penguins run re-run from its lineage, against the real local
object store, ML Metadata (SQLite) and kfp.local; one original run and one reproduction."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import PENGUINS, error_line, run_kfkit, run_pipeline

from kfkit.model_registry import existing_versions
from kfkit.reproduce import DiffRow, Reproduction, format_reproduction

MODEL = "penguins-reproduce"


@pytest.fixture(scope="module")
def original(store_env, tmp_path_factory) -> dict:
    """One training run on a local copy of the penguins CSV; the copy is the data it read."""
    csv = tmp_path_factory.mktemp("reproduce-data") / "penguins.csv"
    shutil.copyfile(PENGUINS, csv)
    proc, document = run_pipeline(store_env, f"data_uri={csv}", f"model_name={MODEL}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert document["outcome"] == "pushed", document
    return {"csv": csv, "run": document}


def _deployment_record(store_env: dict) -> bytes:
    return (Path(store_env["KFKIT_HOME"]) / "deployments" / f"{MODEL}.json").read_bytes()


def _run_ids(store_env: dict) -> list[str]:
    proc = run_kfkit(["runs", "list", "--limit", "200", "--json"], store_env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return [r["run_id"] for r in json.loads(proc.stdout)]


@pytest.fixture(scope="module")
def reproduced(original, store_env, objects) -> dict:
    """`kfkit reproduce --json` of the original run, with the registry and the deployment record
    as they were before it."""
    before = {"versions": existing_versions(objects, MODEL), "deployment": _deployment_record(store_env)}
    proc = run_kfkit(["reproduce", original["run"]["run_id"], "--json"], store_env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return {"result": json.loads(proc.stdout), "before": before}


@pytest.fixture
def in_store_env(store_env, monkeypatch) -> dict[str, str]:
    """This test process uses the session's store, state folder and model-signing keys."""
    for name, value in store_env.items():
        if name.startswith(("KFKIT_", "AWS_")):
            monkeypatch.setenv(name, value)
    return store_env


def test_reproduce_gives_the_same_fingerprint_splits_metrics_and_pushes_nothing(
    original, reproduced, store_env, objects
):
    run_id, result = original["run"]["run_id"], reproduced["result"]

    assert result["reproduced"] is True and result["exit_code"] == 0
    assert result["original_run_id"] == run_id and result["run_id"] not in ("", run_id)
    rows = {r["item"]: r for r in result["rows"]}
    train = original["run"]["artifacts"]["ingest.train_split"]
    assert rows["dataset fingerprint"]["reproduced"] == original["run"]["dataset_fingerprint"]
    assert (rows["train rows"]["reproduced"], rows["eval rows"]["reproduced"]) == (
        train["train_rows"],
        train["eval_rows"],
    )
    metrics = original["run"]["metrics"]["evaluate"]
    assert {name: rows[f"metric {name}"]["reproduced"] for name in metrics} == metrics
    assert all(rows[f"metric {name}"]["same"] == "yes" for name in metrics)
    # Whether the model bytes are identical is said, either way, with the reason when not.
    model = rows["model sha256"]
    assert model["original"] == original["run"]["artifacts"]["train.model"]["sha256"]
    said = "identical bytes" if model["same"] == "yes" else "model.joblib bytes differ"
    assert model["note"].startswith(said), model
    assert result["model"]["manifest_differs_in"] == ["run_id"]  # the manifest names its run
    predictions = result["predictions"]
    assert predictions["rows"] == train["eval_rows"] == predictions["equal_labels"]
    assert predictions["max_abs_probability_difference"] <= 1e-9
    # The reproduced run is recorded, ran every task but push, and changed no version or deployment.
    assert result["run_id"] in _run_ids(store_env)
    assert result["summary"]["tasks"] == {
        "resolve-source": "SUCCEEDED",
        "ingest": "SUCCEEDED",
        "original-baseline": "NOT_RECORDED",  # kfp's importer of the original's baseline
        "validate": "SUCCEEDED",
        "train": "SUCCEEDED",
        "evaluate": "SUCCEEDED",
    }
    assert result["summary"]["pushed"] == {}
    assert existing_versions(objects, MODEL) == reproduced["before"]["versions"]
    assert _deployment_record(store_env) == reproduced["before"]["deployment"]
    record = Path(store_env["KFKIT_HOME"]) / "runs" / f"{result['run_id']}.reproduction.json"
    assert json.loads(record.read_text())["original_run_id"] == run_id

    # The table people read says the same, from the same result.
    fields = {k: v for k, v in result.items() if k != "exit_code"}
    table = format_reproduction(Reproduction(**{**fields, "rows": [DiffRow(**r) for r in result["rows"]]}))
    fingerprint_line = next(line for line in table.splitlines() if line.startswith("dataset fingerprint"))
    assert fingerprint_line.split()[-1] == "yes"
    assert table.endswith("reproduced: same data, splits, metrics and predictions")


def test_with_the_original_run_folder_gone_its_pushed_version_is_scored(original, reproduced, in_store_env):
    from kfkit.local_run import RunSummary
    from kfkit.reproduce import compare_predictions

    then = RunSummary(**original["run"])
    then.artifact_uris = {**then.artifact_uris, "train.model": str(Path(in_store_env["KFKIT_HOME"]) / "gone")}
    now = RunSummary(**reproduced["result"]["summary"])

    predictions = compare_predictions(then, now)

    assert predictions["original_model"] == f"s3://models/{MODEL}/1/"
    assert predictions["scored"] and predictions["equivalent"]
    assert (
        predictions["equal_labels"] == predictions["rows"] == then.artifacts["ingest.eval_split"]["eval_rows"]
    )
    assert predictions["fitted_difference"] is None


def test_the_reproduced_run_compares_with_the_originals_baseline_downloaded_again_when_gone(
    original, in_store_env, objects
):
    import yaml

    from kfkit.local_run import RunSummary, pipeline_spec, task_order
    from kfkit.reproduce import Original, original_baseline, reproduction_spec
    from kfkit.storage import ObjectUri

    # A later run of the same model, which compared with version 1; its baseline folder is gone.
    baseline = {"found": 1, "model_name": MODEL, "version": "1", "baseline_source": "served"}
    summary = RunSummary(
        run_id="later-run",
        pipeline="kfkit-training",
        status="SUCCEEDED",
        tasks={},
        artifacts={"resolve-baseline.baseline": baseline},
        artifact_uris={"resolve-baseline.baseline": str(Path(in_store_env["KFKIT_HOME"]) / "gone")},
    )
    later = Original("later-run", {}, summary, {})

    folder, metadata = original_baseline(later)
    spec_path = reproduction_spec(later)

    assert metadata == baseline
    assert sorted(p.name for p in Path(folder).iterdir()) == [
        "kfkit-model.json",
        "kfkit-model.sig",
        "model.joblib",
        "schema.pbtxt",
        "train_statistics.pb",
    ]
    pushed = objects.get_bytes(ObjectUri.parse(f"s3://models/{MODEL}/1/model.joblib"))
    assert (Path(folder) / "model.joblib").read_bytes() == pushed
    spec = pipeline_spec(spec_path)
    assert task_order(spec) == [
        "original-baseline",
        "resolve-source",
        "ingest",
        "validate",
        "train",
        "evaluate",
    ]
    importer = spec["deploymentSpec"]["executors"]["exec-original-baseline"]["importer"]
    assert importer["artifactUri"]["constant"] == folder and importer["metadata"] == baseline
    inputs = [
        spec["root"]["dag"]["tasks"][t]["inputs"]["artifacts"]["baseline"] for t in ("validate", "evaluate")
    ]
    assert all(i["taskOutputArtifact"]["producerTask"] == "original-baseline" for i in inputs)
    assert "exec-push" not in yaml.safe_dump_all(list(yaml.safe_load_all(spec_path.read_text())))


def test_a_reproduction_is_not_reproduced_again_but_points_to_its_original(reproduced, in_store_env):
    from kfkit.errors import KfkitError
    from kfkit.reproduce import load_original, original_baseline

    result = reproduced["result"]

    with pytest.raises(KfkitError) as refused:
        original_baseline(load_original(result["run_id"]))

    first = result["original_run_id"]
    assert str(refused.value) == f"run {result['run_id']} is a reproduction of run {first}: reproduce {first}"


def test_data_changed_since_the_run_is_refused_with_one_line_naming_the_file(original, store_env, objects):
    csv: Path = original["csv"]
    before = csv.read_text()
    lines = before.splitlines(keepends=True)
    assert ",39.1," in lines[1]
    runs = _run_ids(store_env)
    try:
        csv.write_text(lines[0] + lines[1].replace(",39.1,", ",39.2,", 1) + "".join(lines[2:]))
        proc = run_kfkit(["reproduce", original["run"]["run_id"]], store_env)
    finally:
        csv.write_text(before)

    line = error_line(proc)
    assert proc.returncode == 1
    assert line.startswith(f"kfkit: error: {csv}: changed since run {original['run']['run_id']}"), line
    assert _run_ids(store_env) == runs  # nothing ran


def test_an_unknown_run_id_is_one_line(store_env):
    proc = run_kfkit(["reproduce", "kfkit-training-19700101-000000-000000"], store_env)

    assert proc.returncode == 1
    assert "no run 'kfkit-training-19700101-000000-000000' in the metadata store" in error_line(proc)


def _recorded_run(tmp_path: Path, pipeline: str, failed_task: str | None = None) -> str:
    """A run recorded in a real ML Metadata (SQLite) store of its own, as run-local records one."""
    from kfkit.metadata import open_store
    from kfkit.metadata.store import COMPLETE, FAILED

    store = open_store(f"sqlite:///{tmp_path / 'mlmd.sqlite'}")
    run = store.start_run(pipeline, "run-1", {"data_uri": "penguins.csv"}, str(tmp_path / "root"))
    task = store.start_task(run, failed_task or "ingest", "ghcr.io/kfkit/kfkit:0.1.0", {}, {})
    store.finish_task(run, task, FAILED if failed_task else COMPLETE, [], "penguins.csv: no such file")
    store.finish_run(run, FAILED if failed_task else COMPLETE)
    store.close()
    return f"sqlite:///{tmp_path / 'mlmd.sqlite'}"


def test_a_failed_run_and_another_pipelines_run_are_refused_with_one_line(tmp_path):
    from kfkit.errors import KfkitError
    from kfkit.reproduce import load_original

    failed = _recorded_run(tmp_path / "failed", "kfkit-training", failed_task="ingest")
    with pytest.raises(
        KfkitError, match=r"^run run-1 did not succeed \(FAILED: ingest: penguins.csv: no such"
    ):
        load_original("run-1", failed)
    other = _recorded_run(tmp_path / "other", "my-scoring")
    with pytest.raises(
        KfkitError, match=r"^run run-1 ran the pipeline 'my-scoring'; kfkit reproduce re-runs"
    ):
        load_original("run-1", other)


def test_a_metric_that_differs_makes_the_reproduction_fail_with_exit_code_2():
    from kfkit.local_run import RunSummary
    from kfkit.reproduce import Original, compare

    data = {"source_uri": "penguins.csv", "source_identity": "sha256:1", "train_rows": 276, "eval_rows": 68}

    def summary(run_id: str, accuracy: float) -> RunSummary:
        return RunSummary(
            run_id=run_id,
            pipeline="kfkit-training",
            status="SUCCEEDED",
            tasks={},
            dataset_fingerprint="f204",
            metrics={"evaluate": {"accuracy": accuracy, "log_loss": 0.05}},
            artifacts={"ingest.train_split": data},
        )

    original = Original("run-1", {}, summary("run-1", 0.97), {"train": "kfkit:0.1.0"})
    same = compare(original, summary("run-2", 0.97), {"train": "kfkit:0.1.0"})
    differs = compare(original, summary("run-3", 0.96), {"train": "kfkit:0.2.0"})

    assert (same.reproduced, same.exit_code) == (True, 0)
    assert (differs.reproduced, differs.exit_code) == (False, 2)
    rows = {r.item: r for r in differs.rows}
    assert (rows["metric accuracy"].original, rows["metric accuracy"].reproduced) == (0.97, 0.96)
    assert rows["metric accuracy"].same == "NO" and rows["metric log_loss"].same == "yes"
    assert (rows["image train"].original, rows["image train"].reproduced) == ("kfkit:0.1.0", "kfkit:0.2.0")


def test_fitted_difference_compares_models_by_value_not_by_pickle_bytes():
    import io

    import joblib
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier

    from kfkit.reproduce import fitted_difference

    x, y = load_iris(return_X_y=True)
    first = RandomForestClassifier(n_estimators=5, random_state=1).fit(x, y)
    again = RandomForestClassifier(n_estimators=5, random_state=1).fit(x, y)
    saved = io.BytesIO()
    joblib.dump(first, saved)
    loaded = [joblib.load(io.BytesIO(saved.getvalue())) for _ in range(2)]

    assert fitted_difference(first, again) is None
    assert fitted_difference(*loaded) is None
    again.estimators_[3].tree_.value[0, 0, 0] += 1e-9
    assert fitted_difference(first, again) == "model.estimators_[3].tree_.values"
    other_seed = RandomForestClassifier(n_estimators=5, random_state=2).fit(x, y)
    assert fitted_difference(first, other_seed) == "model.random_state"


def test_an_object_changed_since_the_run_is_refused_naming_the_object_and_its_etags(objects, in_store_env):
    from kfkit.components.ingest.executor import list_source, source_identity
    from kfkit.errors import KfkitError
    from kfkit.local_run import RunSummary
    from kfkit.reproduce import Original, check_source
    from kfkit.storage import ObjectUri

    uri = "s3://raw/reproduce-object/penguins.csv"
    objects.ensure_bucket("raw")
    objects.put_bytes(ObjectUri.parse(uri), PENGUINS.read_bytes())
    files = list_source(uri, objects)
    read = {"source_uri": uri, "source_identity": source_identity(files), "source_files": 1}
    read["source_etag"] = files[0].etag
    summary = RunSummary(
        run_id="run-s3",
        pipeline="kfkit-training",
        status="SUCCEEDED",
        tasks={},
        artifacts={"ingest.train_split": read},
    )
    run = Original("run-s3", {"data_uri": uri}, summary, {})
    assert check_source(run) == read["source_identity"]  # unchanged: goes ahead

    objects.put_bytes(ObjectUri.parse(uri), PENGUINS.read_bytes().replace(b",39.1,", b",39.2,", 1))
    etag_now = list_source(uri, objects)[0].etag
    with pytest.raises(KfkitError) as refused:
        check_source(run)

    assert str(refused.value) == (
        f"{uri}: changed since run run-s3: its etag was {files[0].etag}, now {etag_now}; nothing run"
    )
