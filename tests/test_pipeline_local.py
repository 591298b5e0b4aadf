"""The whole pipeline under kfp.local, through the real CLI, against the real SeaweedFS
store, TFDV and scikit-learn. Slow: each run takes ~20 s (validate imports TensorFlow)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import KFKIT, PENGUINS, REPO, error_line, run_kfkit, run_pipeline

from kfkit.model_folder import ModelManifest, sha256_bytes
from kfkit.model_registry import existing_versions, version_folder

pytestmark = pytest.mark.slow

MODEL = "penguins-it"
# Every task of the training pipeline, in the order it runs.
TASKS = ("resolve-source", "ingest", "resolve-baseline", "validate", "train", "evaluate", "push")


@pytest.fixture(scope="module")
def two_clean_runs(store_env, objects):
    """Two runs on the same data, with the sample uploaded to the store like `make run`; the
    second with another random_seed (another model as far as push can tell), so both push."""
    upload = run_kfkit(["store", "upload", str(PENGUINS), "s3://raw/penguins-it/"], store_env)
    assert upload.returncode == 0, upload.stderr
    runs = []
    for seed in (42, 7):
        proc, document = run_pipeline(
            store_env, "data_uri=s3://raw/penguins-it/", f"model_name={MODEL}", f"random_seed={seed}"
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert document["outcome"] == "pushed"
        runs.append(document)
    return runs


def test_clean_run_reports_every_task_and_pushes(two_clean_runs, objects):
    first = two_clean_runs[0]
    assert first["status"] == "SUCCEEDED"
    assert first["tasks"] == {t: "SUCCEEDED" for t in TASKS}
    verdict = {"blessed": True, "anomalies": {}, "schema_source": "inferred"}
    assert first["validation"] == {"validate": verdict}
    assert first["blessed"] == {"evaluate": True}
    assert first["metrics"]["evaluate"]["accuracy"] >= 0.9
    assert set(first["metrics"]["evaluate"]) == {"accuracy", "macro_f1", "roc_auc_ovr", "log_loss"}
    # The pushed bytes in the store are the model train wrote, by sha256.
    pushed = first["pushed"]["push"]
    folder = version_folder(MODEL, pushed["version"])
    manifest = ModelManifest.from_dict(yaml.safe_load(objects.get_bytes(folder.child("kfkit-model.json"))))
    assert (
        sha256_bytes(objects.get_bytes(folder.child("model.joblib"))) == pushed["sha256"] == manifest.sha256
    )
    assert manifest.training_data_fingerprint == first["dataset_fingerprint"]
    assert manifest.run_id == first["run_id"]


def test_same_data_twice_gives_same_fingerprint_splits_and_metrics(two_clean_runs):
    first, second = two_clean_runs
    assert first["dataset_fingerprint"] == second["dataset_fingerprint"]
    assert len(first["dataset_fingerprint"]) == 64
    for key in ("train_rows", "eval_rows", "rows"):
        assert first["artifacts"]["ingest.train_split"][key] == second["artifacts"]["ingest.train_split"][key]
    assert first["metrics"] == second["metrics"]
    # The second run checks against the schema the first one learned.
    assert second["validation"]["validate"]["schema_source"] == "baseline"


def test_versions_count_up_and_are_never_overwritten(two_clean_runs, objects):
    versions = [run["pushed"]["push"]["version"] for run in two_clean_runs]
    assert versions == ["1", "2"]
    assert existing_versions(objects, MODEL) == [1, 2]


def test_identical_data_and_parameters_push_no_new_version(two_clean_runs, store_env, objects):
    proc, document = run_pipeline(
        store_env, "data_uri=s3://raw/penguins-it/", f"model_name={MODEL}", "random_seed=7"
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert document["outcome"] == "unchanged" and document["pushed"] == {}
    assert document["artifacts"]["push.pushed_model"]["version"] == "2"
    assert "[push] unchanged: same data, parameters and code as version 2, which serves" in proc.stderr
    assert existing_versions(objects, MODEL) == [1, 2]


def test_push_emits_the_deploy_targets_manifest_without_credentials(two_clean_runs, store_env):
    run = two_clean_runs[1]
    text = Path(run["artifact_uris"]["push.deployment"]).read_text()
    record = yaml.safe_load(text)  # deploy_strategy local: the local target's record
    assert record["model_name"] == MODEL
    assert record["serving"]["version"] == "2" and record["serving"]["uri"] == f"s3://models/{MODEL}/2"
    assert run["artifacts"]["push.deployment"]["version"] == "2"
    assert store_env["AWS_SECRET_ACCESS_KEY"] not in text


def _flooded_csv(tmp_path):
    import pandas as pd

    frame = pd.read_csv(PENGUINS, na_values=["NA"])
    frame["bill_length_mm"] = frame["bill_length_mm"].astype(object)
    frame.loc[frame.index % 2 == 0, "bill_length_mm"] = "not measured"
    path = tmp_path / "flooded.csv"
    frame.to_csv(path, index=False)
    return path


def test_numeric_column_flooded_with_text_fails_against_learned_schema(
    two_clean_runs, store_env, objects, tmp_path
):
    before = existing_versions(objects, MODEL)
    proc, document = run_pipeline(store_env, f"data_uri={_flooded_csv(tmp_path)}", f"model_name={MODEL}")
    line = error_line(proc)
    assert "validate" in line and "bill_length_mm" in line and "FLOAT" in line
    assert document["tasks"]["validate"] == "FAILED"
    assert document["tasks"]["train"] == "NOT_RUN" and document["pushed"] == {}
    assert existing_versions(objects, MODEL) == before


def test_warn_policy_continues_but_trains_and_pushes_nothing(two_clean_runs, store_env, objects, tmp_path):
    before = existing_versions(objects, MODEL)
    proc, document = run_pipeline(
        store_env, f"data_uri={_flooded_csv(tmp_path)}", f"model_name={MODEL}", "validation_policy=warn"
    )
    assert proc.returncode == 3, proc.stderr[-3000:]  # completed, but a gate refused
    assert document["outcome"] == "not blessed"
    assert document["refused"]["task"] == "train" and document["refused"]["gate"] == "anomalies"
    assert proc.stderr.strip().splitlines()[-1].startswith("kfkit: not blessed: train: 'anomalies' is not")
    assert document["validation"]["validate"]["blessed"] is False
    assert any("bill_length_mm" in key for key in document["validation"]["validate"]["anomalies"])
    assert document["artifacts"]["train.model"]["skipped"]
    assert "'anomalies' is not blessed" in document["artifacts"]["train.model"]["reason"]
    assert document["tasks"] == {t: "SUCCEEDED" for t in TASKS}
    assert document["blessed"] == {} and document["pushed"] == {}
    assert existing_versions(objects, MODEL) == before


def test_unblessed_model_is_not_pushed_and_the_run_says_why(two_clean_runs, store_env, objects):
    before = existing_versions(objects, MODEL)
    proc, document = run_pipeline(
        store_env, f"data_uri={PENGUINS}", f"model_name={MODEL}", "thresholds={log_loss: 0.0}"
    )
    assert proc.returncode == 3, proc.stderr[-3000:]
    assert document["refused"] == {
        "task": "push",
        "gate": "blessing",
        "reason": document["artifacts"]["push.pushed_model"]["reason"],
    }
    assert document["blessed"] == {"evaluate": False} and document["pushed"] == {}
    assert "[push] not run: 'blessing' is not blessed: thresholds not met: log_loss" in proc.stderr
    assert existing_versions(objects, MODEL) == before


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        (["label_column=body_weight"], "label column 'body_weight' not found"),
        (
            ["data_uri=s3://raw/penguins-it/missing.csv"],
            "s3://raw/penguins-it/missing.csv: object does not exist",
        ),
        (["data_uri=s3://no-such-bucket/data.csv"], "bucket does not exist"),
        # A value only the estimator can judge: found when train fits, after validate.
        (["hyperparameters={C: -1}"], "The 'C' parameter of LogisticRegression must be"),
    ],
)
def test_bad_input_ends_with_one_line_and_pushes_nothing(
    two_clean_runs, store_env, objects, params, expected
):
    before = existing_versions(objects, MODEL)
    proc, document = run_pipeline(store_env, "data_uri=s3://raw/penguins-it/", f"model_name={MODEL}", *params)
    assert expected in error_line(proc)
    assert existing_versions(objects, MODEL) == before
    # The metadata store has the run as FAILED, with the same error on the failed task.
    shown = run_kfkit(["runs", "show", document["run_id"], "--json"], store_env)
    recorded = json.loads(shown.stdout)
    assert recorded["state"] == "FAILED" and recorded["pushed"] is None
    failed = [t for t in recorded["tasks"] if t["state"] == "FAILED"]
    assert len(failed) == 1 and expected in failed[0]["error"]
    assert [t["state"] for t in recorded["tasks"][:-1]] == ["COMPLETE"] * (len(recorded["tasks"]) - 1)


def test_wrong_credentials_are_named_and_push_nothing(two_clean_runs, store_env, objects):
    before = existing_versions(objects, MODEL)
    env = dict(store_env, AWS_SECRET_ACCESS_KEY="not-the-secret")
    proc, _ = run_pipeline(env, "data_uri=s3://raw/penguins-it/", f"model_name={MODEL}")
    line = error_line(proc)
    assert "refused the credentials" in line and "AWS_SECRET_ACCESS_KEY" in line
    assert "not-the-secret" not in proc.stderr + proc.stdout
    assert existing_versions(objects, MODEL) == before
    # Neither the wrong nor the real secret reaches the metadata store or the run log.
    recorded = (Path(store_env["KFKIT_HOME"]) / "metadata" / "mlmd.sqlite").read_bytes()
    for secret in ("not-the-secret", store_env["AWS_SECRET_ACCESS_KEY"]):
        assert secret.encode() not in recorded
    assert "not-the-secret" not in Path(json.loads(proc.stdout)["log"]).read_text()


def _lineage(env: dict[str, str], reference: str) -> dict:
    proc = run_kfkit(["lineage", "model", reference, "--json"], env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_lineage_of_each_pushed_version_is_the_run_that_pushed_it(two_clean_runs, store_env):
    for run in two_clean_runs:
        found = _lineage(store_env, f"{MODEL}:{run['pushed']['push']['version']}")
        assert found["run"]["run_id"] == run["run_id"]
        assert found["dataset_fingerprint"] == run["dataset_fingerprint"]
        assert (
            found["model"]["uri"] == run["pushed"]["push"]["uri"]
            and found["model"]["sha256"] == run["pushed"]["push"]["sha256"]
        )
        assert found["validation"]["blessed"] is True
        assert found["validation"]["schema_source"] == run["validation"]["validate"]["schema_source"]
        assert found["metrics"] == pytest.approx(run["metrics"]["evaluate"], abs=1e-6)
        assert found["blessing"]["blessed"] is True
        assert found["training"]["parameters"]["estimator"] == run["parameters"].get(
            "estimator", "logistic_regression"
        )
        assert found["training"]["parameters"]["random_seed"] == run["parameters"]["random_seed"]
        assert found["training"]["image"] == "ghcr.io/kfkit/kfkit:0.1.0"
        # Linked by artifacts: resolve-source hands ingest a parameter (recorded on its splits).
        assert [t["task"] for t in found["tasks"]] == list(TASKS[1:])
        assert {t["state"] for t in found["tasks"]} == {"COMPLETE"}
    # No version: the latest pushed one.
    assert _lineage(store_env, MODEL)["run"]["run_id"] == two_clean_runs[-1]["run_id"]


def test_two_concurrent_runs_are_both_recorded_completely(two_clean_runs, store_env, tmp_path):
    env = dict(store_env, KFKIT_METADATA_URI=f"sqlite://{tmp_path / 'shared.sqlite'}")
    args = [
        "run-local",
        "--config",
        "configs/penguins.yaml",
        "--json",
        "--param",
        "data_uri=s3://raw/penguins-it/",
    ]
    procs = [
        subprocess.Popen(
            [KFKIT, *args, "--param", f"model_name=concurrent-{n}"],
            env=env,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(2)
    ]
    documents = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
        documents.append(json.loads(out))
    assert documents[0]["run_id"] != documents[1]["run_id"]
    listed = json.loads(run_kfkit(["runs", "list", "--json"], env).stdout)
    assert sorted(r["run_id"] for r in listed) == sorted(d["run_id"] for d in documents)
    assert {r["state"] for r in listed} == {"SUCCEEDED"}
    for n, document in enumerate(documents):
        found = _lineage(env, f"concurrent-{n}")
        assert found["run"]["run_id"] == document["run_id"]
        assert found["model"]["version"] == document["pushed"]["push"]["version"]
        assert found["metrics"] == pytest.approx(document["metrics"]["evaluate"], abs=1e-6)
        shown = json.loads(run_kfkit(["runs", "show", document["run_id"], "--json"], env).stdout)
        assert [(t["task"], t["state"]) for t in shown["tasks"]] == [(t, "COMPLETE") for t in TASKS]
        assert shown["parameters"]["model_name"] == f"concurrent-{n}"


def test_pipeline_records_into_mariadb_and_answers_the_same(two_clean_runs, store_env, mariadb):
    mariadb.reset()
    env = dict(store_env, KFKIT_METADATA_URI=mariadb.uri, **mariadb.env)
    proc, document = run_pipeline(env, "data_uri=s3://raw/penguins-it/", "model_name=penguins-mysql")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert document["metadata"]["store"] == mariadb.uri and document["metadata"]["recorded"] is True
    found = _lineage(env, "penguins-mysql")
    assert found["run"]["run_id"] == document["run_id"]
    assert found["dataset_fingerprint"] == document["dataset_fingerprint"]
    assert found["metrics"] == pytest.approx(document["metrics"]["evaluate"], abs=1e-6)
    assert mariadb.password not in proc.stdout + proc.stderr


def test_no_credential_in_logs_run_records_or_artifacts(two_clean_runs, store_env):
    """The store's generated credentials reach the tasks through the environment only: not
    in the run log, the run record (every artifact's metadata), any artifact file, or the
    metadata store."""
    secrets = [store_env["AWS_ACCESS_KEY_ID"], store_env["AWS_SECRET_ACCESS_KEY"]]
    assert all(len(s) >= 12 for s in secrets)  # long enough that a match is no accident
    for run in two_clean_runs:
        record = Path(run["log"]).parent / f"{run['run_id']}.json"
        log = Path(run["log"]).read_text()
        texts = {"summary": json.dumps(run), "log": log, "record": record.read_text()}
        for path in Path(run["run_root"]).rglob("*"):
            if path.is_file():
                texts[str(path)] = path.read_bytes().decode("latin-1")
        texts["metadata store"] = (
            (Path(store_env["KFKIT_HOME"]) / "metadata" / "mlmd.sqlite").read_bytes().decode("latin-1")
        )
        assert len(texts) > 5
        for where, text in texts.items():
            for secret in secrets:
                assert secret not in text, f"credential in {where}"


def test_the_readmes_run_local_commands_run_as_written(tmp_path):
    """The two `run-local` commands README.md shows under "Running the pipeline yourself", run
    verbatim from the repository root, with their own state folder (and so their own local store)."""
    import re
    import shlex

    readme = (REPO / "README.md").read_text()
    block = readme.split("## Running the pipeline yourself", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [
        shlex.split(c) for c in re.split(r"\n(?=\.venv/bin/kfkit)", block.replace("\\\n", " ").strip())
    ]
    assert len(commands) == 2 and all(c[:2] == [".venv/bin/kfkit", "run-local"] for c in commands)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KFKIT_", "AWS_"))}
    env["KFKIT_HOME"] = str(tmp_path)
    outputs = []
    for command in commands:
        proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "Traceback" not in proc.stderr
        outputs.append(proc.stdout)
    forest = json.loads(outputs[0])  # the first command asks for --json
    assert forest["outcome"] == "pushed" and forest["parameters"]["hyperparameters"] == {"n_estimators": 200}
    assert forest["pushed"]["push"]["version"] == "1"
    assert forest["artifacts"]["train.model"]["hyperparameters"]["n_estimators"] == 200


def test_drift_against_the_pushed_versions_training_data_fails_validate_and_pushes_nothing(
    store_env, objects, tmp_path
):
    """First run pushes version 1 with its train split's statistics beside the model; a run on
    data whose body mass moved by +3 sd fails in validate naming the feature, pushes nothing."""
    import pandas as pd

    model = "penguins-drift"
    proc, first = run_pipeline(store_env, f"data_uri={PENGUINS}", f"model_name={model}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert first["pushed"]["push"]["version"] == "1"
    folder = version_folder(model, "1")
    manifest = ModelManifest.from_dict(yaml.safe_load(objects.get_bytes(folder.child("kfkit-model.json"))))
    statistics = objects.get_bytes(folder.child("train_statistics.pb"))
    assert manifest.files["train_statistics.pb"] == sha256_bytes(statistics)
    assert "first run of this model" in proc.stderr.lower()

    frame = pd.read_csv(PENGUINS, na_values=["NA"])
    frame["body_mass_g"] = frame["body_mass_g"] + 3 * frame["body_mass_g"].std()
    drifted = tmp_path / "drifted.csv"
    frame.to_csv(drifted, index=False)
    proc, document = run_pipeline(store_env, f"data_uri={drifted}", f"model_name={model}")
    line = error_line(proc)
    assert "validate" in line and "drift:body_mass_g" in line and "Jensen-Shannon divergence" in line
    assert f"{model} version 1" in line and "threshold 0.2" in line
    assert document["tasks"]["validate"] == "FAILED"
    assert document["tasks"]["train"] == "NOT_RUN" and document["pushed"] == {}
    assert existing_versions(objects, model) == [1]


def test_a_model_worse_than_the_version_serving_is_not_pushed(store_env, objects):
    """Version 1 is pushed and deployed locally; a much weaker estimator setting under the same
    model name still meets the absolute threshold (accuracy >= 0.9) and beats the trivial
    model, but is worse than version 1: not blessed, nothing pushed, version 1 keeps serving."""
    from kfkit.deploy.local import served_version

    model = "penguins-worse"
    proc, first = run_pipeline(store_env, f"data_uri={PENGUINS}", f"model_name={model}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert first["pushed"]["push"]["version"] == "1"
    assert first["artifacts"]["evaluate.blessing"]["checks"]["vs version"] == (
        "no baseline version: nothing to compare with skipped"
    )
    deployments = Path(store_env["KFKIT_HOME"])
    assert served_version(model, deployments) == "1"

    proc, second = run_pipeline(
        store_env, f"data_uri={PENGUINS}", f"model_name={model}", "hyperparameters={C: 0.01}"
    )
    assert proc.returncode == 3, proc.stderr[-3000:]  # completed, a gate refused
    assert second["outcome"] == "not blessed" and second["refused"]["gate"] == "blessing"
    blessing = second["artifacts"]["evaluate.blessing"]
    assert second["metrics"]["evaluate"]["accuracy"] >= 0.9  # the absolute threshold alone would push it
    assert blessing["checks"]["accuracy"].endswith(" ok")
    assert blessing["checks"]["vs trivial: accuracy"].endswith(" ok")
    assert blessing["checks"]["vs version 1: accuracy"].endswith(" FAILED")
    assert blessing["baseline_version"] == "1"
    assert blessing["baseline_metrics"]["accuracy"] == pytest.approx(first["metrics"]["evaluate"]["accuracy"])
    assert second["blessed"] == {"evaluate": False} and second["pushed"] == {}
    assert "[push] not run: 'blessing' is not blessed: worse than version 1: accuracy" in proc.stderr
    assert existing_versions(objects, model) == [1]
    assert served_version(model, deployments) == "1"
    report = Path(second["artifact_uris"]["evaluate.report"]).read_text()
    assert (
        "**NOT blessed**: worse than version 1" in report
        and "| metric | candidate | trivial | version 1 |" in report
    )


def test_a_failed_first_run_leaves_no_reference_schema(store_env, objects):
    """Validate blesses, train fails: nothing is pushed, so there is no reference to reject the
    corrected data with; the corrected run infers its schema and pushes version 1."""
    model = "penguins-first-fails"
    proc, failed = run_pipeline(
        store_env, f"data_uri={PENGUINS}", f"model_name={model}", "hyperparameters={C: -1}"
    )
    assert "The 'C' parameter of LogisticRegression must be" in error_line(proc)
    assert failed["tasks"]["validate"] == "SUCCEEDED" and failed["tasks"]["train"] == "FAILED"
    shown = run_kfkit(["schema", "show", "--model", model], store_env)
    assert shown.returncode == 1 and "has no reference schema: no pushed version" in shown.stderr
    proc, fixed = run_pipeline(store_env, f"data_uri={PENGUINS}", f"model_name={model}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert fixed["validation"]["validate"]["schema_source"] == "inferred"
    assert fixed["pushed"]["push"]["version"] == "1" and existing_versions(objects, model) == [1]


def test_a_killed_run_is_marked_failed_by_the_next_one(store_env, tmp_path):
    """kill -9 of `kfkit run-local` mid-run: the next run on this machine marks it FAILED (and its
    running task), saying why, instead of leaving it RUNNING for ever."""
    import os
    import signal
    import time

    from kfkit.metadata import open_store

    # Its own state folder: a killed run leaves its warm-start folder behind, which other tests'
    # shared state folder must not see.
    env = dict(
        store_env,
        KFKIT_HOME=str(tmp_path / "home"),
        KFKIT_METADATA_URI=f"sqlite://{tmp_path / 'killed.sqlite'}",
    )
    args = [KFKIT, "run-local", "--config", "configs/penguins.yaml", "--param", f"data_uri={PENGUINS}"]
    victim = subprocess.Popen(
        [*args, "--param", "model_name=penguins-killed"],
        env=env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    run_id = None
    while time.monotonic() < deadline and run_id is None:
        line = victim.stderr.readline()
        if line.startswith("[ingest]"):  # a task has started: the run and a task are recorded
            store = open_store(env["KFKIT_METADATA_URI"])
            run_id = store.runs(limit=1)[0].run_id
            store.close()
    assert run_id is not None
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait()
    shown = json.loads(run_kfkit(["runs", "show", run_id, "--json"], env).stdout)
    assert shown["state"] == "RUNNING"
    proc, _ = run_pipeline(env, f"data_uri={PENGUINS}", "model_name=penguins-after-kill")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"run {run_id}: marked FAILED (aborted: the kfkit process (pid {victim.pid})" in proc.stderr
    shown = json.loads(run_kfkit(["runs", "show", run_id, "--json"], env).stdout)
    assert shown["state"] == "FAILED"
    assert all(t["state"] != "RUNNING" for t in shown["tasks"])
