"""`kfkit upload`, `submit` and `schedule apply` against Kubeflow Pipelines' real API server
(2.14.3, tests/cluster/build_kfp.sh) with MariaDB, the local object store and the control plane:
the flows tests/test_cluster.py runs against KfpApiStandIn, here through the real server, which
compiles kfkit's pipeline spec into Argo Workflows and ScheduledWorkflows. Nothing executes them
(no Argo controller, no kubelet): what is asserted is what the server accepted and created."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import KFKIT, REPO, error_line
from test_cluster import SCHEDULES, changed_repo, write_schedules

from kfkit.catalog import compiled_pipeline_path
from kfkit.cluster.kfp_api import KfpSettings, connect, spec_digest, version_name
from kfkit.names import PIPELINE_RUNNER_SERVICE_ACCOUNT

from .kfp_server import NAMESPACE

pytestmark = [pytest.mark.cluster, pytest.mark.slow]
SPEC = compiled_pipeline_path("training", REPO)


@pytest.fixture
def cli_env(kfp_api, tmp_path) -> dict[str, str]:
    """kfkit's environment for the server: its URL, no token (a single-user install), no kubeconfig."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KFKIT_", "AWS_", "KF_PIPELINES_"))}
    env.update(
        KFKIT_KFP_HOST=kfp_api.url,
        KFKIT_REPO=str(REPO),
        HOME=str(tmp_path),  # kfp.Client reads ~/.config/kfp/context.json
        KUBECONFIG=str(tmp_path / "no-kubeconfig"),
    )
    return env


@pytest.fixture
def kfp_client(kfp_api, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", "/nonexistent")
    return connect(KfpSettings.resolve(host=kfp_api.url, environ={}))


def kfkit(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([KFKIT, *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=120)


def kfkit_json(args: list[str], env: dict[str, str]) -> dict:
    proc = kfkit([*args, "--json"], env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def versions_by_name(kfp_client, pipeline_id: str) -> dict[str, object]:
    response = kfp_client.list_pipeline_versions(pipeline_id, page_size=100)
    return {v.display_name: v for v in response.pipeline_versions or []}


def kube_items(control_plane, resource: str) -> list[dict]:
    return json.loads(control_plane.kubectl("get", resource, "-n", NAMESPACE, "-o", "json").stdout)["items"]


# -- upload --------------------------------------------------------------------------------


def test_real_upload_creates_a_content_named_version_and_reupload_creates_nothing(kfp_client, cli_env):
    first = kfkit_json(["upload", "training"], cli_env)
    digest = spec_digest(SPEC)
    assert first["created_pipeline"] and first["created_version"]
    assert first["version"] == version_name(digest) and first["pipeline"] == "kfkit-training"
    (pipeline,) = kfp_client.list_pipelines(page_size=100).pipelines
    assert (pipeline.pipeline_id, pipeline.display_name) == (first["pipeline_id"], "kfkit-training")
    versions = versions_by_name(kfp_client, pipeline.pipeline_id)
    # The server names a new pipeline's first version after the pipeline; kfkit's is content-named.
    assert set(versions) == {"kfkit-training", first["version"]}
    assert versions[first["version"]].pipeline_version_id == first["version_id"]
    stored = kfp_client.get_pipeline_version(pipeline.pipeline_id, first["version_id"]).pipeline_spec
    # The server keeps the pipeline spec and the Kubernetes platform spec of kfkit's file.
    spec, platform = yaml.safe_load_all(SPEC.read_text())
    assert stored["pipeline_spec"] == spec and stored["platform_spec"] == platform

    again = kfkit_json(["upload", "training"], cli_env)
    assert not again["created_pipeline"] and not again["created_version"]
    assert (again["pipeline_id"], again["version_id"]) == (first["pipeline_id"], first["version_id"])
    assert len(kfp_client.list_pipelines(page_size=100).pipelines) == 1
    assert set(versions_by_name(kfp_client, pipeline.pipeline_id)) == set(versions)


def test_real_changed_spec_becomes_a_new_version_of_the_same_pipeline(kfp_client, cli_env, tmp_path):
    original = kfkit_json(["upload", "training"], cli_env)
    changed_root = changed_repo(tmp_path)
    changed = kfkit_json(["upload", "training"], {**cli_env, "KFKIT_REPO": str(changed_root)})
    assert changed["pipeline_id"] == original["pipeline_id"]
    assert changed["created_version"] and not changed["created_pipeline"]
    assert changed["version"] == version_name(spec_digest(compiled_pipeline_path("training", changed_root)))
    versions = versions_by_name(kfp_client, original["pipeline_id"])
    assert set(versions) == {"kfkit-training", original["version"], changed["version"]}


# -- submit --------------------------------------------------------------------------------


def workflow_of_run(control_plane, run_id: str) -> dict:
    workflows = kube_items(control_plane, "workflows")
    (workflow,) = [w for w in workflows if w["metadata"]["labels"]["pipeline/runid"] == run_id]
    return workflow


def workflow_parameters(workflow: dict) -> dict[str, str]:
    return {p["name"]: p["value"] for p in workflow["spec"]["arguments"]["parameters"]}


def task_caching(workflow: dict) -> dict[str, bool]:
    """Each pipeline task's cache setting as the server compiled it into its driver's arguments."""
    (root,) = [t for t in workflow["spec"]["templates"] if t["name"] == "root"]
    caching = {}
    for task in root["dag"]["tasks"]:
        arguments = {p["name"]: p.get("value") for p in task["arguments"]["parameters"]}
        if task["name"].endswith("-driver"):
            options = json.loads(arguments["task"]).get("cachingOptions", {})
            caching[task["name"].removesuffix("-driver")] = bool(options.get("enableCache", False))
    return caching


def test_real_submit_becomes_an_argo_workflow_of_kfkits_spec(control_plane, kfp_api, kfp_client, cli_env):
    args = ["submit", "training", "--experiment", "nightly-checks", "--param", "data_uri=s3://raw/penguins/"]
    args += ["--param", "random_seed=7", "--param", "model_name=123", "--run-name", "first-cluster-run"]
    result = kfkit_json(args, cli_env)
    assert result["url"] == f"{kfp_api.url}/#/runs/details/{result['run_id']}"
    run = kfp_client.get_run(result["run_id"])
    assert run.display_name == "first-cluster-run" and run.service_account == PIPELINE_RUNNER_SERVICE_ACCOUNT
    assert run.pipeline_version_reference.pipeline_version_id == result["pipeline_version_id"]
    assert kfp_client.get_experiment(run.experiment_id).display_name == "nightly-checks"

    workflow = workflow_of_run(control_plane, result["run_id"])
    assert workflow["metadata"]["annotations"]["pipelines.kubeflow.org/run_name"] == "first-cluster-run"
    # The runs execute as kfkit's runner (the account its manifests give the executor's rights).
    assert workflow["spec"]["serviceAccountName"] == PIPELINE_RUNNER_SERVICE_ACCOUNT
    spec, platform = yaml.safe_load_all(SPEC.read_text())
    parameters = workflow_parameters(workflow)
    # Every task image of kfkit's spec, and only those, as the executors' containers.
    images = {json.loads(v)["image"] for k, v in parameters.items() if k.startswith("implementations-")}
    assert images == {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}
    # KFP's own driver image where the install pins it (upstream's Deployment: 2.14.3).
    templates = workflow["spec"]["templates"]
    drivers = {t["container"]["image"] for t in templates if t["name"].endswith("-driver")}
    assert drivers == {"ghcr.io/kubeflow/kfp-driver:2.14.3"}
    # Every task of the DAG, each behind its driver.
    assert set(task_caching(workflow)) == set(spec["root"]["dag"]["tasks"])
    # The Kubernetes platform spec (kfkit-object-store as env, labels, deadline) compiled per task.
    ingest = json.loads(parameters["kubernetes-comp-ingest"])
    wanted = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-ingest"]
    assert ingest["secretAsEnv"] == wanted["secretAsEnv"]
    assert ingest["secretAsEnv"][0]["secretName"] == "kfkit-object-store"
    assert ingest["podMetadata"] == wanted["podMetadata"]
    # The run's parameters: a STRING input stays a string (model_name=123), an INT is a number.
    (entry,) = [t for t in templates if t["name"] == "entrypoint"]
    (root_driver,) = [t for t in entry["dag"]["tasks"] if t["name"] == "root-driver"]
    runtime = {p["name"]: p.get("value") for p in root_driver["arguments"]["parameters"]}["runtime-config"]
    values = json.loads(runtime)["parameterValues"]
    assert values["data_uri"] == "s3://raw/penguins/"
    assert (values["random_seed"], values["model_name"]) == (7, "123")


def test_real_submit_reuses_the_version_and_disable_caching_compiles_uncached_tasks(
    control_plane, kfp_client, cli_env
):
    cached = kfkit_json(["submit", "training", "--param", "data_uri=s3://a/"], cli_env)
    again = kfkit_json(["submit", "training", "--param", "data_uri=s3://b/"], cli_env)
    uncached = kfkit_json(["submit", "training", "--param", "data_uri=s3://a/", "--disable-caching"], cli_env)
    assert again["pipeline_version_id"] == cached["pipeline_version_id"] != uncached["pipeline_version_id"]
    assert cached["experiment"] == again["experiment"] == "Default"
    (pipeline,) = kfp_client.list_pipelines(page_size=100).pipelines
    assert len(versions_by_name(kfp_client, pipeline.pipeline_id)) == 3  # KFP's first, cached, uncached
    on = task_caching(workflow_of_run(control_plane, cached["run_id"]))
    assert on == {**dict.fromkeys(on, True), "resolve-source": False, "push": False}
    assert set(task_caching(workflow_of_run(control_plane, uncached["run_id"])).values()) == {False}


# -- schedule apply ------------------------------------------------------------------------


def scheduled_workflows(control_plane) -> dict[str, dict]:
    """ScheduledWorkflows by uid (= the recurring run's id)."""
    return {s["metadata"]["uid"]: s for s in kube_items(control_plane, "scheduledworkflows")}


def test_real_schedule_apply_creates_scheduled_workflows_and_a_second_apply_changes_nothing(
    control_plane, cli_env, tmp_path
):
    path = write_schedules(tmp_path, SCHEDULES)
    plan = kfkit_json(["schedule", "apply", "-f", path], cli_env)
    assert [(a["action"], a["name"]) for a in plan["actions"]] == [
        ("create", "nightly"),
        ("create", "weekly"),
    ]
    created = {a["name"]: a["new_recurring_run_id"] for a in plan["actions"]}
    objects = scheduled_workflows(control_plane)
    assert set(objects) == set(created.values())
    nightly, weekly = objects[created["nightly"]]["spec"], objects[created["weekly"]]["spec"]
    assert nightly["trigger"] == {"cronSchedule": {"cron": "0 0 2 * * *"}}
    assert weekly["trigger"] == {"periodicSchedule": {"intervalSecond": 604800}}
    assert nightly["enabled"] is True and "enabled" not in weekly  # false is omitted (omitempty)
    assert nightly["maxConcurrency"] == 1 and nightly["noCatchup"] is True
    assert nightly["serviceAccount"] == weekly["serviceAccount"] == PIPELINE_RUNNER_SERVICE_ACCOUNT
    assert nightly["pipelineVersionId"] == plan["uploads"][0]["version_id"]
    parameters = {p["name"]: json.loads(p["value"]) for p in nightly["workflow"]["parameters"]}
    assert parameters == SCHEDULES["schedules"][0]["parameters"]
    # The Workflow each tick would start, compiled by the server and kept in the object.
    template = json.loads(nightly["workflow"]["spec"])
    assert template["kind"] == "Workflow"
    assert template["spec"]["serviceAccountName"] == PIPELINE_RUNNER_SERVICE_ACCOUNT

    second = kfkit_json(["schedule", "apply", "-f", path], cli_env)
    assert [a["action"] for a in second["actions"]] == ["unchanged", "unchanged"] and not second["changed"]
    assert scheduled_workflows(control_plane).keys() == objects.keys()
    listed = kfkit_json(["schedule", "list"], cli_env)["recurring_runs"]
    assert {(r["name"], r["managed"], r["enabled"]) for r in listed} == {
        ("nightly", True, True),
        ("weekly", True, False),
    }

    # A changed entry is replaced (the API has no update), a removed one deleted: objects follow.
    nightly_at_three = {**SCHEDULES["schedules"][0], "cron": "0 0 3 * * *"}
    changed = write_schedules(tmp_path, {**SCHEDULES, "schedules": [nightly_at_three]}, "changed.yaml")
    third = kfkit_json(["schedule", "apply", "-f", changed], cli_env)
    actions = [(a["action"], a["name"]) for a in third["actions"]]
    assert actions == [("update", "nightly"), ("delete", "weekly")]
    (replaced,) = scheduled_workflows(control_plane).values()
    assert replaced["metadata"]["uid"] == third["actions"][0]["new_recurring_run_id"] not in objects
    assert replaced["spec"]["trigger"] == {"cronSchedule": {"cron": "0 0 3 * * *"}}


def test_real_server_scheduling_another_account_than_asked_is_one_line_and_leaves_nothing(
    control_plane, cli_env, tmp_path
):
    # KFP 2.14.3 gives every v2 recurring run its default runner account (kubeflow/pipelines#13311).
    entries = [{**SCHEDULES["schedules"][0], "service_account": "another-runner"}]
    path = write_schedules(tmp_path, {**SCHEDULES, "schedules": entries})
    line = error_line(kfkit(["schedule", "apply", "-f", path], cli_env))
    assert f"'nightly' as service account '{PIPELINE_RUNNER_SERVICE_ACCOUNT}', not 'another-runner'" in line
    assert "kubeflow/pipelines#13311" in line
    assert scheduled_workflows(control_plane) == {}
    assert kfkit_json(["schedule", "list"], cli_env)["recurring_runs"] == []


def test_real_server_log_has_no_credential(kfp_api, local_store, mariadb, cli_env):
    kfkit_json(["upload", "training"], cli_env)
    log = Path(kfp_api.log).read_text()
    for secret in (local_store.config.secret_key, mariadb.password):
        assert secret not in log
