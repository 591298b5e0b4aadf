"""Lineage from ML Metadata: stores written the way the KFP backend writes them, SQLite and
MariaDB giving the same answers, concurrent writers, and the CLI on top."""

from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import pytest
from conftest import run_kfkit
from kfp_mlmd import KfpBackendWriter, penguins_tasks
from ml_metadata.metadata_store import metadata_store
from mlmd_grpc_standin import MlmdGrpcStandIn

from kfkit.errors import KfkitError
from kfkit.metadata import MetadataConfig, open_store
from kfkit.metadata.lineage import compare_runs, dataset_lineage, list_runs, model_lineage, show_run
from kfkit.metadata.store import OutputArtifact

FP_A = "a1" * 32
FP_B = "b2" * 32
PARAMS = {"data_uri": "s3://raw/penguins/", "model_name": "penguins", "estimator": "logistic_regression"}


def write_kfp_history(uri: str) -> None:
    """Three runs as a cluster would record them: run-a pushes v1; run-b re-uses run-a's
    ingest from the cache, trains a forest and pushes v2; run-c fails in validate."""
    config = MetadataConfig.from_uri(uri).connection_config()
    writer = KfpBackendWriter(metadata_store.MetadataStore(config))
    writer.run("run-a", PARAMS, penguins_tasks("run-a", FP_A, "1"))
    writer.run(
        "run-b",
        {**PARAMS, "estimator": "random_forest"},
        penguins_tasks(
            "run-b", FP_A, "2", estimator="random_forest", accuracy=0.99, cached_ingest_from="run-a"
        ),
    )
    writer.run("run-c", PARAMS, penguins_tasks("run-c", FP_B, None, fail_at="validate"), final="FAILED")


@pytest.fixture
def kfp_sqlite(tmp_path) -> str:
    uri = f"sqlite://{tmp_path / 'kfp.sqlite'}"
    write_kfp_history(uri)
    return uri


def test_model_lineage_from_a_store_written_like_the_kfp_backend(kfp_sqlite):
    store = open_store(kfp_sqlite)
    latest = model_lineage(store, "penguins")
    assert latest["model"]["version"] == "2"
    assert latest["model"]["uri"] == "s3://models/penguins/2/"
    assert latest["model"]["sha256"] == "run-b-sha256"
    assert latest["run"]["run_id"] == "run-b" and latest["run"]["pipeline"] == "kfkit-training"
    # run-b's ingest was a cache hit: its data is run-a's artifacts, found through the events
    assert latest["dataset_fingerprint"] == FP_A
    assert sorted((d["split"], d["rows"]) for d in latest["datasets"]) == [("eval", 68), ("train", 276)]
    assert all(
        d["uri"].startswith("minio://mlpipeline/v2/artifacts/kfkit-training/run-a/")
        for d in latest["datasets"]
    )
    assert latest["validation"]["blessed"] is True
    assert latest["validation"]["schema_uri"] == "s3://kfkit/schemas/penguins/schema.pbtxt"
    assert latest["validation"]["statistics_uri"].endswith("/run-b/validate/statistics")
    assert latest["training"]["parameters"]["estimator"] == "random_forest"
    assert latest["training"]["parameters"]["random_seed"] == 42
    assert latest["training"]["image"] == "ghcr.io/kfkit/kfkit:0.1.0"
    assert latest["metrics"] == {"accuracy": 0.99, "macro_f1": pytest.approx(0.98)}
    assert latest["blessing"] == {"blessed": True, "reason": "all thresholds met", "checks": {}}
    assert {t["task"]: t["state"] for t in latest["tasks"]}["ingest"] == "CACHED"

    first = model_lineage(store, "penguins:1")
    assert first["run"]["run_id"] == "run-a"
    assert first["training"]["parameters"]["estimator"] == "logistic_regression"
    assert first["metrics"]["accuracy"] == 0.97


def test_dataset_lineage_finds_every_run_model_and_push_downstream(kfp_sqlite):
    store = open_store(kfp_sqlite)
    found = dataset_lineage(store, FP_A[:12])
    assert found["dataset_fingerprint"] == FP_A
    assert [r["run_id"] for r in found["runs"]] == ["run-a", "run-b"]
    assert sorted((p["version"], p["run_id"]) for p in found["pushes"]) == [("1", "run-a"), ("2", "run-b")]
    assert sorted(m["sha256"] for m in found["models"]) == ["run-a-sha256", "run-b-sha256"]
    failed = dataset_lineage(store, FP_B)
    assert [r["run_id"] for r in failed["runs"]] == ["run-c"]
    assert failed["pushes"] == [] and failed["models"] == []


def test_runs_list_show_and_compare(kfp_sqlite):
    store = open_store(kfp_sqlite)
    runs = list_runs(store)
    assert [(r["run_id"], r["state"]) for r in runs] == [
        ("run-c", "FAILED"),
        ("run-b", "SUCCEEDED"),
        ("run-a", "SUCCEEDED"),
    ]
    assert runs[1]["pushed"]["version"] == "2"
    shown = show_run(store, "run-c")
    assert [(t["task"], t["state"]) for t in shown["tasks"]] == [
        ("ingest", "COMPLETE"),
        ("validate", "FAILED"),
    ]
    compared = compare_runs(store, ["run-a", "run-b"])
    assert compared["parameters"]["estimator"] == {"run-a": "logistic_regression", "run-b": "random_forest"}
    assert compared["metrics"]["accuracy"] == {"run-a": 0.97, "run-b": 0.99}
    assert "parameters.estimator" in compared["differs"] and "parameters.data_uri" not in compared["differs"]


def test_unknown_model_version_and_fingerprint_are_one_clear_line(kfp_sqlite):
    store = open_store(kfp_sqlite)
    with pytest.raises(KfkitError, match=r"no pushed version 7; pushed versions: 1, 2"):
        model_lineage(store, "penguins:7")
    with pytest.raises(KfkitError, match="no pushed model named 'otter'"):
        model_lineage(store, "otter")
    with pytest.raises(KfkitError, match="no dataset with fingerprint"):
        dataset_lineage(store, "ffffff")
    with pytest.raises(KfkitError, match="at least 6 hex digits"):
        dataset_lineage(store, "a1'--")
    with pytest.raises(KfkitError, match="no run 'run-z'"):
        show_run(store, "run-z")


def _answers(uri: str) -> dict:
    """Every query's answer, minus wall-clock times (two databases, two clocks)."""
    store = open_store(uri)
    answers = {
        "model": model_lineage(store, "penguins"),
        "model_v1": model_lineage(store, "penguins:1"),
        "dataset": dataset_lineage(store, FP_A),
        "failed_dataset": dataset_lineage(store, FP_B),
        "runs": list_runs(store),
        "show": show_run(store, "run-c"),
        "compare": compare_runs(store, ["run-a", "run-b", "run-c"]),
    }

    def scrub(value):
        if isinstance(value, dict):
            return {k: scrub(v) for k, v in value.items() if k not in ("created", "pushed_at", "seconds")}
        if isinstance(value, list):
            return [scrub(v) for v in value]
        return value

    return scrub(answers)


def test_sqlite_and_mariadb_give_the_same_answers(kfp_sqlite, mariadb):
    mariadb.reset()
    write_kfp_history(mariadb.uri)
    on_sqlite, on_mysql = _answers(kfp_sqlite), _answers(mariadb.uri)
    assert on_mysql == on_sqlite
    assert on_mysql["model"]["model"]["version"] == "2"  # and they are real answers


def test_kfp_metadata_grpc_service_gives_the_same_answers(kfp_sqlite, tmp_path):
    """Through the MLMD gRPC API a cluster exposes (metadata-grpc-service; a stand-in here):
    the KFP backend writes through it, kfkit reads through it."""
    standin = MlmdGrpcStandIn(str(tmp_path / "served.sqlite"))
    uri = standin.start()
    try:
        write_kfp_history(uri)
        over_grpc = _answers(uri)
        assert over_grpc == _answers(kfp_sqlite)
        assert over_grpc["model"]["run"]["run_id"] == "run-b"
        assert open_store(uri).description == uri
    finally:
        standin.stop()


def _record_runs(uri: str, worker: int, runs: int, password: str) -> list[str]:
    """One writer process: ``runs`` complete five-task runs through kfkit's own recorder API."""
    os.environ["KFKIT_METADATA_MYSQL_PASSWORD"] = password
    store = open_store(uri)
    recorded = []
    for n in range(runs):
        run_id = f"run-w{worker}-{n}"
        fingerprint = f"{worker:02x}{n:02x}" * 16
        handle = store.start_run("kfkit-training", run_id, {"model_name": f"m{worker}"}, "/root")
        previous: dict[str, int] = {}
        for task in ("ingest", "validate", "train", "evaluate", "push"):
            task_id = store.start_task(handle, task, "img", {"worker": worker}, previous)
            meta = {"dataset_fingerprint": fingerprint}
            if task == "push":
                meta.update(
                    pushed=True, model_name=f"m{worker}", version=str(n + 1), pushed_uri=f"s3://m/{n + 1}/"
                )
            kind = {"ingest": "system.Dataset", "push": "system.Model"}.get(task, "system.Artifact")
            out = store.finish_task(
                handle, task_id, "COMPLETE", [OutputArtifact(f"{task}_out", kind, f"/{run_id}/{task}", meta)]
            )
            previous = {f"{task}_out": out[f"{task}_out"]}
        store.finish_run(handle, "COMPLETE")
        recorded.append(run_id)
    return recorded


def _check_concurrent_history(uri: str, workers: int, runs: int) -> None:
    store = open_store(uri)
    listed = list_runs(store, limit=1000)
    assert len(listed) == workers * runs
    assert {r["state"] for r in listed} == {"SUCCEEDED"}
    for worker in range(workers):
        for n in range(runs):
            found = model_lineage(store, f"m{worker}:{n + 1}")
            assert found["run"]["run_id"] == f"run-w{worker}-{n}"
            assert found["dataset_fingerprint"] == f"{worker:02x}{n:02x}" * 16
            assert [t["task"] for t in found["tasks"]] == ["ingest", "validate", "train", "evaluate", "push"]


@pytest.mark.parametrize("backend", ["sqlite", "mariadb"])
def test_concurrent_writers_leave_complete_consistent_runs(backend, tmp_path, request):
    if backend == "sqlite":
        uri, password = f"sqlite://{tmp_path / 'mlmd.sqlite'}", ""
    else:
        server = request.getfixturevalue("mariadb")
        server.reset()
        uri, password = server.uri, server.password
    workers, runs = 4, 6
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        done = list(
            pool.map(_record_runs, [uri] * workers, range(workers), [runs] * workers, [password] * workers)
        )
    assert sum(len(d) for d in done) == workers * runs
    _check_concurrent_history(uri, workers, runs)


def test_metadata_uri_parsing_and_refusals(tmp_path):
    assert MetadataConfig.from_uri(f"sqlite://{tmp_path}/x.sqlite").path == str(tmp_path / "x.sqlite")
    mysql = MetadataConfig.from_uri("mysql://kfkit@db.example:3307/mlmd")
    assert (mysql.host, mysql.port, mysql.database, mysql.user) == ("db.example", 3307, "mlmd", "kfkit")
    grpc = MetadataConfig.from_uri("grpc://metadata-grpc-service.kubeflow:8080")
    assert (grpc.scheme, grpc.host, grpc.port) == ("grpc", "metadata-grpc-service.kubeflow", 8080)
    with pytest.raises(KfkitError, match="password in the URI is refused") as refused:
        MetadataConfig.from_uri("mysql://kfkit:hunter2@db:3306/mlmd")
    assert "hunter2" not in str(refused.value)
    with pytest.raises(KfkitError, match="scheme must be one of"):
        MetadataConfig.from_uri("postgres://db/mlmd")
    with pytest.raises(KfkitError, match="missing /database"):
        MetadataConfig.from_uri("mysql://kfkit@db:3306")


def test_cli_lineage_and_runs_json_and_tables(kfp_sqlite, store_env):
    env = {**store_env, "KFKIT_METADATA_URI": kfp_sqlite}
    proc = run_kfkit(["lineage", "model", "penguins:1", "--json"], env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["run"]["run_id"] == "run-a"
    table = run_kfkit(["runs", "compare", "run-a", "run-b"], env)
    assert table.returncode == 0, table.stderr
    estimator_row = next(line for line in table.stdout.splitlines() if "parameter estimator" in line)
    assert (
        estimator_row.startswith("*")
        and "logistic_regression" in estimator_row
        and "random_forest" in estimator_row
    )
    listed = run_kfkit(["runs", "list"], env)
    assert [line.split()[0] for line in listed.stdout.splitlines()[2:]] == ["run-c", "run-b", "run-a"]
    shown = run_kfkit(["lineage", "dataset", FP_A[:8]], env)
    assert "penguins  1" in shown.stdout and "penguins  2" in shown.stdout
    missing = run_kfkit(["lineage", "model", "penguins:9"], env)
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert missing.stderr.strip().splitlines()[-1] == (
        "kfkit: error: model 'penguins' has no pushed version 9; pushed versions: 1, 2"
    )


def test_unreachable_mysql_fails_before_anything_runs(store_env, tmp_path):
    env = {
        **store_env,
        "KFKIT_METADATA_URI": "mysql://kfkit@127.0.0.1:1/nowhere",
        "KFKIT_HOME": str(tmp_path),
    }
    proc = run_kfkit(["run-local", "--config", "configs/penguins.yaml"], env)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert (
        proc.stderr.strip()
        .splitlines()[-1]
        .startswith("kfkit: error: metadata store mysql://kfkit@127.0.0.1:1/nowhere")
    )
    assert not (Path(tmp_path) / "pipeline_root").exists()


def test_local_state_and_the_metadata_database_are_private(tmp_path, monkeypatch):
    """The state folder holds the store's credentials and data: 0700; a SQLite metadata
    database anywhere, and its lock file: 0600 (no other user reads lineage)."""
    import stat

    from kfkit.settings import state_dir

    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    monkeypatch.setenv("KFKIT_HOME", str(home))
    assert stat.S_IMODE(state_dir().stat().st_mode) == 0o700
    database = tmp_path / "shared" / "mlmd.sqlite"
    store = open_store(f"sqlite://{database}")
    store.close()
    for path in (database, Path(f"{database}.lock")):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
