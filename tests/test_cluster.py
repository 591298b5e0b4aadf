"""`kfkit upload`, `submit` and `schedule` over HTTP: the real kfp.Client against
KfpApiStandIn (tests/kfp_api_standin.py), a stand-in for the KFP v2beta1 API that checks
every request against kfp-server-api's models. The same flows against KFP's real API server:
tests/cluster/test_real_kfp_api.py."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import requests
import yaml
from conftest import KFKIT, REPO, error_line
from kfp_api_standin import KfpApiStandIn, pipeline_spec_of

from kfkit.catalog import compiled_pipeline_path
from kfkit.cluster import kfp_api, schedules
from kfkit.cluster.kfp_api import KfpSettings, connect, spec_digest, upload, version_name
from kfkit.cluster.schedules import MANAGED_TAG, apply, load_schedules
from kfkit.errors import KfkitError

TOKEN = "kfp-bearer-token-7f3a9c"
PLANTED = {"AWS_ACCESS_KEY_ID": "PLANTEDKFPAKID42", "AWS_SECRET_ACCESS_KEY": "PlantedKfpSecret42xyz"}
SPEC = compiled_pipeline_path("training", REPO)


@pytest.fixture
def standin():
    server = KfpApiStandIn(token=TOKEN).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def cli_env(standin, tmp_path) -> dict[str, str]:
    prefixes = ("KFKIT_", "AWS_", "KF_PIPELINES_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(prefixes)}
    env.update(PLANTED)
    env.update(
        KFKIT_KFP_HOST=standin.url,
        KFKIT_KFP_TOKEN=TOKEN,
        KFKIT_REPO=str(REPO),
        HOME=str(tmp_path),  # kfp.Client reads ~/.config/kfp/context.json
        KUBECONFIG=str(tmp_path / "no-kubeconfig"),
    )
    return env


@pytest.fixture
def client(standin, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", "/nonexistent")
    settings = KfpSettings.resolve(host=standin.url, environ={"KFKIT_KFP_TOKEN": TOKEN})
    return settings, connect(settings)


def kfkit(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([KFKIT, *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=120)


def changed_repo(tmp_path: Path) -> Path:
    """A checkout whose compiled training pipeline differs (another default estimator)."""
    root = tmp_path / "changed-repo"
    target = compiled_pipeline_path("training", root)
    target.parent.mkdir(parents=True)
    documents = list(yaml.safe_load_all(SPEC.read_text()))
    documents[0]["root"]["inputDefinitions"]["parameters"]["estimator"]["defaultValue"] = "random_forest"
    target.write_text(yaml.safe_dump_all(documents, sort_keys=False))
    return root


def assert_no_leaks(standin: KfpApiStandIn, *outputs: str) -> None:
    """No planted credential anywhere in requests or output; the token only in its header."""
    assert standin.requests
    for request in standin.requests:
        assert request.headers.get("authorization") == f"Bearer {TOKEN}"
        carried = request.body.decode(errors="replace") + request.path + json.dumps(request.query)
        carried += json.dumps({k: v for k, v in request.headers.items() if k != "authorization"})
        for value in (*PLANTED.values(), TOKEN):
            assert value not in carried, f"{request.method} {request.path} carries a credential"
    for output in outputs:
        for value in (*PLANTED.values(), TOKEN):
            assert value not in output


# -- upload --------------------------------------------------------------------------------


def test_upload_creates_a_content_named_version_and_reupload_is_a_noop(standin, cli_env):
    first = kfkit(["upload", "training", "--json"], cli_env)
    assert first.returncode == 0, first.stderr
    result = json.loads(first.stdout)
    digest = spec_digest(SPEC)
    assert result["version"] == f"sha256-{digest[:16]}" and result["digest"] == digest
    assert result["created_pipeline"] and result["created_version"]
    (pipeline,) = standin.state.pipelines.values()
    assert pipeline["display_name"] == result["pipeline"] == "kfkit-training"
    versions = {v["display_name"]: v for v in standin.state.versions.values()}
    # KFP names a new pipeline's first version after it; kfkit's is the content-named one.
    assert set(versions) == {"kfkit-training", result["version"]}
    spec, platform = yaml.safe_load_all(SPEC.read_text())
    assert versions[result["version"]]["pipeline_spec"] == {"pipeline_spec": spec, "platform_spec": platform}
    assert result["url"] == (
        f"{standin.url}/#/pipelines/details/{pipeline['pipeline_id']}/version/{result['version_id']}"
    )

    mutations = len(standin.mutations())
    again = kfkit(["upload", "training", "--json"], cli_env)
    assert again.returncode == 0, again.stderr
    second = json.loads(again.stdout)
    assert not second["created_pipeline"] and not second["created_version"]
    assert second["version_id"] == result["version_id"]
    assert len(standin.mutations()) == mutations, "re-upload must not write anything"
    assert len(standin.state.versions) == 2
    assert standin.rejected == []
    assert_no_leaks(standin, first.stdout, first.stderr, again.stdout, again.stderr)


def test_changed_spec_becomes_a_new_version_of_the_same_pipeline(client, standin, tmp_path):
    settings, kfp_client = client
    original = upload(kfp_client, settings, "training", SPEC)
    changed_spec = compiled_pipeline_path("training", changed_repo(tmp_path))
    changed = upload(kfp_client, settings, "training", changed_spec)
    assert changed.pipeline_id == original.pipeline_id
    assert changed.created_version and not changed.created_pipeline
    assert changed.version == version_name(spec_digest(changed_spec)) != original.version
    # Same content again (even reformatted) is the same version.
    reformatted = tmp_path / "reformatted.yaml"
    reformatted.write_text(yaml.safe_dump_all(yaml.safe_load_all(SPEC.read_text()), sort_keys=True, indent=4))
    assert spec_digest(reformatted) == spec_digest(SPEC)
    assert upload(kfp_client, settings, "training", reformatted).created_version is False
    assert len(standin.state.versions) == 3


def test_upload_dry_run_writes_nothing(client, standin):
    settings, kfp_client = client
    planned = upload(kfp_client, settings, "training", SPEC, dry_run=True)
    assert planned.created_pipeline and planned.created_version
    assert standin.mutations() == []


# -- submit --------------------------------------------------------------------------------


def test_submit_starts_a_run_of_the_uploaded_version_and_prints_its_url(standin, cli_env):
    args = ["submit", "training", "--experiment", "nightly-checks", "--param", "data_uri=s3://raw/penguins/"]
    args += ["--param", "random_seed=7", "--param", "model_name=123", "--run-name", "first-cluster-run"]
    proc = kfkit(args, cli_env)
    assert proc.returncode == 0, proc.stderr
    (run,) = standin.state.runs.values()
    assert proc.stdout.strip() == f"{standin.url}/#/runs/details/{run['run_id']}"
    assert "started run first-cluster-run" in proc.stderr
    (experiment,) = standin.state.experiments.values()
    assert (
        experiment["display_name"] == "nightly-checks" and run["experiment_id"] == experiment["experiment_id"]
    )
    uploaded = next(v for v in standin.state.versions.values() if v["display_name"].startswith("sha256-"))
    assert run["pipeline_version_reference"] == {
        "pipeline_id": uploaded["pipeline_id"],
        "pipeline_version_id": uploaded["pipeline_version_id"],
    }
    # A STRING input stays a string (model_name=123), an INT input is a number.
    assert run["runtime_config"]["parameters"] == {
        "data_uri": "s3://raw/penguins/",
        "random_seed": 7,
        "model_name": "123",
    }
    assert run["service_account"] == "kfkit-pipeline-runner"
    assert run["display_name"] == "first-cluster-run"
    assert standin.rejected == []
    assert_no_leaks(standin, proc.stdout, proc.stderr)


def test_submit_json_reuses_the_uploaded_version(standin, cli_env):
    first = json.loads(kfkit(["submit", "training", "--param", "data_uri=s3://a/", "--json"], cli_env).stdout)
    second = kfkit(["submit", "training", "--param", "data_uri=s3://b/", "--json"], cli_env)
    assert second.returncode == 0, second.stderr
    document = json.loads(second.stdout)
    assert document["pipeline_version_id"] == first["pipeline_version_id"]
    assert document["experiment"] == "Default" and document["run_id"] != first["run_id"]
    assert len(standin.state.runs) == 2 and len(standin.state.experiments) == 1
    assert len(standin.state.versions) == 2


def _caching(spec: dict) -> dict[str, bool]:
    return {
        name: task.get("cachingOptions", {}).get("enableCache", False)
        for name, task in spec["root"]["dag"]["tasks"].items()
    }


def test_submit_keeps_each_tasks_caching_and_disable_caching_runs_an_uncached_variant(standin, cli_env):
    cached = json.loads(
        kfkit(["submit", "training", "--param", "data_uri=s3://a/", "--json"], cli_env).stdout
    )
    proc = kfkit(
        ["submit", "training", "--param", "data_uri=s3://a/", "--disable-caching", "--json"], cli_env
    )
    assert proc.returncode == 0, proc.stderr
    uncached = json.loads(proc.stdout)
    assert cached["enable_caching"] is True and uncached["enable_caching"] is False
    assert cached["pipeline_version_id"] != uncached["pipeline_version_id"]
    stored = standin.state.versions.values()
    versions = {v["pipeline_version_id"]: pipeline_spec_of(v["pipeline_spec"]) for v in stored}
    # On: the compiled settings, resolve-source and push never cached (kfp.Client's
    # enable_caching=True would have turned every task's cache on).
    on = _caching(versions[cached["pipeline_version_id"]])
    assert on == {**dict.fromkeys(on, True), "resolve-source": False, "push": False}
    assert set(_caching(versions[uncached["pipeline_version_id"]]).values()) == {False}
    runs = {r["run_id"]: r for r in standin.state.runs.values()}
    assert (
        runs[uncached["run_id"]]["pipeline_version_reference"]["pipeline_version_id"]
        == uncached["pipeline_version_id"]
    )
    assert standin.rejected == []


def test_submit_refuses_a_credential_as_parameter(standin, cli_env):
    proc = kfkit(
        ["submit", "training", "--param", f"data_uri=s3://x/{PLANTED['AWS_SECRET_ACCESS_KEY']}"], cli_env
    )
    line = error_line(proc)
    assert "parameter 'data_uri' contains a credential" in line and "kfkit-object-store" in line
    assert not [r for r in standin.requests if r.path.endswith("/runs")]
    assert_no_leaks(standin, proc.stdout, proc.stderr)


@pytest.mark.parametrize(
    "args, message",
    [
        (["submit", "training", "--param", "nope=1"], "unknown pipeline parameter(s) ['nope']"),
        (["submit", "nosuch"], "unknown pipeline 'nosuch'"),
        (
            ["upload", "training", "--token-file", "/nonexistent/token"],
            "/nonexistent/token: cannot read token",
        ),
    ],
)
def test_bad_requests_are_one_line(standin, cli_env, args, message):
    assert message in error_line(kfkit(args, cli_env))


def test_wrong_token_and_unreachable_host_are_one_line(standin, cli_env):
    wrong = error_line(kfkit(["upload", "training"], {**cli_env, "KFKIT_KFP_TOKEN": "wrong"}))
    assert "HTTP 401" in wrong and "wrong" not in wrong.split("HTTP 401")[0]
    closed = error_line(kfkit(["upload", "training", "--host", "http://127.0.0.1:9"], cli_env))
    assert "http://127.0.0.1:9" in closed and "cannot reach the KFP API" in closed


def test_multi_user_namespace_reaches_every_call(tmp_path, cli_env):
    server = KfpApiStandIn(token=TOKEN, multi_user=True).start()
    try:
        env = {**cli_env, "KFKIT_KFP_HOST": server.url}
        refused = error_line(kfkit(["upload", "training"], env))
        assert "namespace is required" in refused
        proc = kfkit(["submit", "training", "--namespace", "team-a", "--param", "data_uri=s3://a/"], env)
        assert proc.returncode == 0, proc.stderr
        (pipeline,) = server.state.pipelines.values()
        (experiment,) = server.state.experiments.values()
        assert pipeline["namespace"] == experiment["namespace"] == "team-a"
        # The environment works as well as the flag.
        again = kfkit(["upload", "training", "--json"], {**env, "KFKIT_KFP_NAMESPACE": "team-a"})
        assert json.loads(again.stdout)["created_version"] is False
    finally:
        server.stop()


def test_settings_precedence_flag_env_kubeconfig(tmp_path, monkeypatch):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "current-context": "work",
                "contexts": [
                    {"name": "work", "context": {"cluster": "c", "user": "u", "namespace": "from-kube"}}
                ],
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443"}}],
                "users": [{"name": "u", "user": {}}],
            }
        )
    )
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    token_file = tmp_path / "token"
    token_file.write_text("from-file\n")
    env = {
        "KFKIT_KFP_HOST": "http://env:8888/",
        "KF_PIPELINES_ENDPOINT": "http://kfp-env",
        "KF_PIPELINES_TOKEN": "t",
    }
    assert KfpSettings.resolve(environ=env).host == "http://env:8888"
    assert KfpSettings.resolve(environ={"KF_PIPELINES_ENDPOINT": "http://kfp-env"}).host == "http://kfp-env"
    assert KfpSettings.resolve(host="http://flag", environ=env).host == "http://flag"
    assert KfpSettings.resolve(environ=env).namespace == "from-kube"
    assert KfpSettings.resolve(environ={**env, "KFKIT_KFP_NAMESPACE": "from-env"}).namespace == "from-env"
    assert KfpSettings.resolve(namespace="from-flag", environ=env).namespace == "from-flag"
    assert KfpSettings.resolve(environ=env).token == "t"
    settings = KfpSettings.resolve(token_file=str(token_file), environ=env)
    assert settings.token == "from-file" and "from-file" not in repr(settings)
    assert KfpSettings.resolve(environ={}).service_account == "kfkit-pipeline-runner"
    assert KfpSettings.resolve(service_account="", environ={}).service_account == ""


# -- the stand-in is strict ------------------------------------------------------------------


def test_standin_refuses_what_the_api_models_do_not_allow(standin, client):
    settings, kfp_client = client
    uploaded = upload(kfp_client, settings, "training", SPEC)
    experiment = kfp_api.ensure_experiment(kfp_client, settings, "e")
    good = {
        "display_name": "r",
        "experiment_id": experiment,
        "pipeline_version_reference": {
            "pipeline_id": uploaded.pipeline_id,
            "pipeline_version_id": uploaded.version_id,
        },
        "runtime_config": {"parameters": {"data_uri": "s3://a/"}},
    }
    headers = {"Authorization": f"Bearer {TOKEN}"}
    url = f"{standin.url}/apis/v2beta1/runs"
    assert requests.post(url, json=good, headers=headers, timeout=10).status_code == 200
    bad_bodies = [
        {**good, "parameters": {"data_uri": "s3://a/"}},  # unknown field
        {**good, "display_name": 5},  # wrong type
        {**good, "runtime_config": {"parameters": {"password": "x"}}},  # not a pipeline input
        {**good, "pipeline_version_reference": {"pipeline_id": "p", "pipeline_version_id": "v"}},
    ]
    for body in bad_bodies:
        assert requests.post(url, json=body, headers=headers, timeout=10).status_code == 400, body
    recurring = {**good, "trigger": {"cron_schedule": {"cron": "0 0 * * * *"}}, "mode": "ENABLE"}
    for body in ({**recurring, "max_concurrency": 11}, {**recurring, "mode": "SOMETIMES"}):
        response = requests.post(
            f"{standin.url}/apis/v2beta1/recurringruns", json=body, headers=headers, timeout=10
        )
        assert response.status_code == 400, body
    assert requests.post(url, json=good, timeout=10).status_code == 401


# -- schedules -------------------------------------------------------------------------------

SCHEDULES = {
    "experiment": "retraining",
    "schedules": [
        {
            "name": "nightly",
            "pipeline": "training",
            "cron": "0 0 2 * * *",
            "max_concurrency": 1,
            "no_catchup": True,
            "parameters": {"data_uri": "s3://raw/penguins/", "hyperparameters": {"C": 1.0}, "random_seed": 3},
        },
        {
            "name": "weekly",
            "pipeline": "training",
            "interval_seconds": 604800,
            "enabled": False,
            "parameters": {"data_uri": "s3://raw/penguins/"},
        },
    ],
}


def write_schedules(tmp_path: Path, document: dict, name: str = "schedules.yaml") -> str:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return str(path)


def by_name(standin: KfpApiStandIn) -> dict[str, dict]:
    return {r["display_name"]: r for r in standin.state.recurring_runs.values()}


def test_apply_creates_then_applying_again_changes_nothing(client, standin, tmp_path):
    settings, kfp_client = client
    wanted = load_schedules(write_schedules(tmp_path, SCHEDULES))
    plan = apply(kfp_client, settings, wanted)
    assert [(a.action, a.name) for a in plan.actions] == [("create", "nightly"), ("create", "weekly")]
    runs = by_name(standin)
    nightly, weekly = runs["nightly"], runs["weekly"]
    assert nightly["trigger"] == {"cron_schedule": {"cron": "0 0 2 * * *"}}
    assert weekly["trigger"] == {"periodic_schedule": {"interval_second": "604800"}}
    assert nightly["mode"] == "ENABLE" and weekly["mode"] == "DISABLE"
    assert nightly["max_concurrency"] == "1" and nightly["no_catchup"] is True
    assert nightly["runtime_config"]["parameters"] == SCHEDULES["schedules"][0]["parameters"]
    assert nightly["description"].startswith(MANAGED_TAG)
    version = next(v for v in standin.state.versions.values() if v["display_name"].startswith("sha256-"))
    assert nightly["pipeline_version_reference"]["pipeline_version_id"] == version["pipeline_version_id"]

    mutations = len(standin.mutations())
    again = apply(kfp_client, settings, wanted)
    assert [a.action for a in again.actions] == ["unchanged", "unchanged"] and not again.changed
    assert len(standin.mutations()) == mutations, "the second apply must not write anything"
    assert standin.rejected == []


def test_dry_run_prints_the_plan_and_changes_nothing(standin, cli_env, tmp_path):
    path = write_schedules(tmp_path, SCHEDULES)
    proc = kfkit(["schedule", "apply", "-f", path, "--dry-run", "--json"], cli_env)
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)
    assert plan["dry_run"] and plan["changed"]
    assert [(a["action"], a["name"]) for a in plan["actions"]] == [
        ("create", "nightly"),
        ("create", "weekly"),
    ]
    assert plan["uploads"][0]["created_version"] is True
    assert standin.mutations() == []
    text = kfkit(["schedule", "apply", "-f", path, "--dry-run"], cli_env)
    assert "would create     nightly" in text.stdout and standin.mutations() == []


def test_cli_apply_twice_then_list(standin, cli_env, tmp_path):
    path = write_schedules(tmp_path, SCHEDULES)
    first = kfkit(["schedule", "apply", "-f", path], cli_env)
    assert first.returncode == 0, first.stderr
    assert "create           nightly" in first.stdout
    second = kfkit(["schedule", "apply", "-f", path, "--json"], cli_env)
    assert json.loads(second.stdout)["changed"] is False
    listed = json.loads(kfkit(["schedule", "list", "--json"], cli_env).stdout)["recurring_runs"]
    assert {(r["name"], r["managed"], r["enabled"]) for r in listed} == {
        ("nightly", True, True),
        ("weekly", True, False),
    }
    nightly = next(r for r in listed if r["name"] == "nightly")
    assert nightly["trigger"] == {"cron": "0 0 2 * * *"} and nightly["max_concurrency"] == 1
    text = kfkit(["schedule", "list", "--experiment", "retraining"], cli_env)
    assert "nightly" in text.stdout and "every 604800s" in text.stdout
    assert "no experiment named 'nope'" in error_line(
        kfkit(["schedule", "list", "--experiment", "nope"], cli_env)
    )
    assert_no_leaks(standin, first.stdout, first.stderr, second.stdout)


def test_changed_entries_are_replaced_and_unchanged_kept(client, standin, tmp_path):
    settings, kfp_client = client
    apply(kfp_client, settings, load_schedules(write_schedules(tmp_path, SCHEDULES)))
    before = by_name(standin)
    changed = json.loads(json.dumps(SCHEDULES))
    nightly = changed["schedules"][0]
    nightly.pop("cron")
    nightly.update(interval_seconds=3600, max_concurrency=3, no_catchup=False, enabled=False)
    nightly["parameters"]["random_seed"] = 4
    plan = apply(kfp_client, settings, load_schedules(write_schedules(tmp_path, changed, "changed.yaml")))
    update, unchanged = plan.actions
    assert update.action == "update" and unchanged.action == "unchanged"
    assert update.changes == ["trigger", "max_concurrency", "no_catchup", "enabled", "parameters"]
    after = by_name(standin)
    assert after["weekly"]["recurring_run_id"] == before["weekly"]["recurring_run_id"]
    # KFP cannot update a recurring run: the old one is gone, a new one has the new values.
    assert after["nightly"]["recurring_run_id"] != before["nightly"]["recurring_run_id"]
    assert before["nightly"]["recurring_run_id"] not in standin.state.recurring_runs
    assert after["nightly"]["trigger"] == {"periodic_schedule": {"interval_second": "3600"}}
    assert after["nightly"]["max_concurrency"] == "3" and after["nightly"]["no_catchup"] is False
    assert after["nightly"]["mode"] == "DISABLE"
    assert after["nightly"]["runtime_config"]["parameters"]["random_seed"] == 4
    assert not apply(kfp_client, settings, load_schedules(str(tmp_path / "changed.yaml"))).changed


def test_new_pipeline_version_replaces_its_schedules(client, standin, tmp_path, monkeypatch):
    settings, kfp_client = client
    path = write_schedules(tmp_path, SCHEDULES)
    apply(kfp_client, settings, load_schedules(path))
    monkeypatch.setenv("KFKIT_REPO", str(changed_repo(tmp_path)))
    plan = apply(kfp_client, settings, load_schedules(path))
    assert [(a.action, a.changes) for a in plan.actions] == [("update", ["pipeline_version_id"])] * 2
    assert plan.uploads[0]["created_version"] is True
    new_version = plan.uploads[0]["version_id"]
    assert {r["pipeline_version_reference"]["pipeline_version_id"] for r in by_name(standin).values()} == {
        new_version
    }


def test_removed_entries_are_deleted_and_unmanaged_runs_left_alone(client, standin, tmp_path):
    settings, kfp_client = client
    apply(kfp_client, settings, load_schedules(write_schedules(tmp_path, SCHEDULES)))
    experiment_id = kfp_api.ensure_experiment(kfp_client, settings, "retraining")
    version = next(v for v in standin.state.versions.values() if v["display_name"].startswith("sha256-"))
    with kfp_api.api_errors(settings, "test"):
        kfp_client.create_recurring_run(
            experiment_id=experiment_id,
            job_name="hand-made",
            cron_expression="0 0 3 * * *",
            pipeline_id=version["pipeline_id"],
            version_id=version["pipeline_version_id"],
            params={"data_uri": "s3://x/"},
        )
    only_weekly = {**SCHEDULES, "schedules": SCHEDULES["schedules"][1:]}
    plan = apply(kfp_client, settings, load_schedules(write_schedules(tmp_path, only_weekly, "one.yaml")))
    assert [(a.action, a.name) for a in plan.actions] == [("unchanged", "weekly"), ("delete", "nightly")]
    assert set(by_name(standin)) == {"weekly", "hand-made"}
    # A name the file wants but kfkit does not manage is refused, not taken over.
    clash = {**SCHEDULES, "schedules": [{**SCHEDULES["schedules"][1], "name": "hand-made"}]}
    with pytest.raises(KfkitError, match="'hand-made' .* is not managed by kfkit"):
        apply(kfp_client, settings, load_schedules(write_schedules(tmp_path, clash, "clash.yaml")))
    assert set(by_name(standin)) == {"weekly", "hand-made"}


def test_every_page_of_recurring_runs_is_read(client, standin, tmp_path, monkeypatch):
    settings, kfp_client = client
    monkeypatch.setattr(kfp_api, "PAGE_SIZE", 1)
    monkeypatch.setattr(schedules, "PAGE_SIZE", 1)
    apply(kfp_client, settings, load_schedules(write_schedules(tmp_path, SCHEDULES)))
    assert not apply(kfp_client, settings, load_schedules(str(tmp_path / "schedules.yaml"))).changed
    assert any(r.query.get("page_token") for r in standin.requests if r.path.endswith("/recurringruns"))


def test_a_server_that_ignores_the_service_account_is_refused_and_left_clean(tmp_path, monkeypatch):
    # KFP 2.14-2.16 schedule every v2 recurring run as their default account (met on the real
    # 2.14.3 in tests/cluster): kfkit must not leave a schedule running as another identity, nor
    # replace it on every apply.
    server = KfpApiStandIn(token=TOKEN, scheduled_service_account="pipeline-runner").start()
    try:
        monkeypatch.setenv("KUBECONFIG", "/nonexistent")
        settings = KfpSettings.resolve(host=server.url, environ={"KFKIT_KFP_TOKEN": TOKEN})
        kfp_client = connect(settings)
        with pytest.raises(KfkitError) as raised:
            apply(kfp_client, settings, load_schedules(write_schedules(tmp_path, SCHEDULES)))
        message = str(raised.value)
        assert "'nightly' as service account 'pipeline-runner', not 'kfkit-pipeline-runner'" in message
        assert "DEFAULTPIPELINERUNNERSERVICEACCOUNT" in message and "\n" not in message
        assert server.state.recurring_runs == {}
        # Asking for the account the server uses is what such a server can do: then it converges.
        entries = [{**entry, "service_account": "pipeline-runner"} for entry in SCHEDULES["schedules"]]
        as_server = write_schedules(tmp_path, {**SCHEDULES, "schedules": entries}, "as-server.yaml")
        assert apply(kfp_client, settings, load_schedules(as_server)).changed
        assert not apply(kfp_client, settings, load_schedules(as_server)).changed
        # A refused update loses nothing: the schedules that ran before are still there, unchanged.
        before = dict(server.state.recurring_runs)
        with pytest.raises(KfkitError):
            apply(kfp_client, settings, load_schedules(write_schedules(tmp_path, SCHEDULES)))
        assert server.state.recurring_runs == before
        assert not apply(kfp_client, settings, load_schedules(as_server)).changed
    finally:
        server.stop()


def test_enable_caching_per_entry_and_from_the_command_line(client, standin, tmp_path, cli_env):
    settings, kfp_client = client
    document = {
        "experiment": "e",
        "schedules": [
            {**SCHEDULES["schedules"][0], "enable_caching": False},
            SCHEDULES["schedules"][1],
        ],
    }
    plan = apply(kfp_client, settings, load_schedules(write_schedules(tmp_path, document)))
    assert sorted(u["enable_caching"] for u in plan.uploads) == [False, True]
    stored = standin.state.versions.values()
    specs = {v["pipeline_version_id"]: pipeline_spec_of(v["pipeline_spec"]) for v in stored}
    runs = by_name(standin)
    nightly = specs[runs["nightly"]["pipeline_version_reference"]["pipeline_version_id"]]
    weekly = specs[runs["weekly"]["pipeline_version_reference"]["pipeline_version_id"]]
    assert set(_caching(nightly).values()) == {False} and _caching(weekly)["ingest"] is True
    assert runs["nightly"]["description"].endswith("(caching off)")
    # --enable-caching for every entry: the nightly one moves to the cached version.
    path = write_schedules(tmp_path, document)
    proc = kfkit(["schedule", "apply", "-f", path, "--enable-caching", "--json"], cli_env)
    assert proc.returncode == 0, proc.stderr
    actions = {a["name"]: a for a in json.loads(proc.stdout)["actions"]}
    assert actions["nightly"]["action"] == "update" and actions["nightly"]["changes"] == [
        "pipeline_version_id"
    ]
    assert actions["weekly"]["action"] == "unchanged"
    assert standin.rejected == []


def test_example_schedules_file_is_valid():
    wanted = load_schedules(str(REPO / "configs" / "schedules.yaml"))
    assert wanted.schedules and {s.pipeline for s in wanted.schedules} == {"training"}
    for schedule in wanted.schedules:
        kfp_api.check_parameters(SPEC, schedule.parameters)


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"name": "a", "pipeline": "training"}, "exactly one of `cron` and `interval_seconds`"),
        ({"name": "a", "pipeline": "training", "cron": "0 2 * * *"}, "`cron` must have 6 fields"),
        ({"name": "a", "pipeline": "training", "interval_seconds": 0}, "positive integer"),
        ({"name": "a", "pipeline": "training", "cron": "0 0 2 * * *", "max_concurrency": 11}, "from 1 to 10"),
        (
            {"name": "a", "pipeline": "training", "cron": "0 0 2 * * *", "every": 1},
            "unknown key(s) ['every']",
        ),
        ({"pipeline": "training", "cron": "0 0 2 * * *"}, "`name` and `pipeline` are required"),
        (
            {"name": "a", "pipeline": "training", "cron": "0 0 2 * * *", "enable_caching": "no"},
            "`enable_caching` must be true or false",
        ),
    ],
)
def test_bad_schedule_entries_are_named(tmp_path, entry, message):
    path = write_schedules(tmp_path, {"experiment": "e", "schedules": [entry]})
    with pytest.raises(KfkitError, match=None) as caught:
        load_schedules(path)
    assert message in str(caught.value) and path in str(caught.value)


def test_bad_parameter_in_a_schedule_writes_nothing(client, standin, tmp_path):
    settings, kfp_client = client
    bad = {"experiment": "e", "schedules": [{**SCHEDULES["schedules"][0], "parameters": {"nope": 1}}]}
    with pytest.raises(KfkitError, match=r"unknown pipeline parameter\(s\) \['nope'\]"):
        apply(kfp_client, settings, load_schedules(write_schedules(tmp_path, bad)))
    assert standin.mutations() == []


def test_a_token_without_a_host_is_refused():
    with pytest.raises(KfkitError, match="a KFP token needs a host"):
        connect(KfpSettings(token="t"))


def test_bad_schedule_file_is_one_line_from_the_cli(cli_env, tmp_path):
    path = write_schedules(
        tmp_path,
        {"experiment": "e", "schedules": [{"name": "a", "pipeline": "nosuch", "cron": "0 0 2 * * *"}]},
    )
    assert "unknown pipeline 'nosuch'" in error_line(kfkit(["schedule", "apply", "-f", path], cli_env))
    assert "schedules file not found" in error_line(kfkit(["schedule", "apply", "-f", "/nope.yaml"], cli_env))
