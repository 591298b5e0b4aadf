"""The ``kfkit`` command line. Every verb has ``--help``; failures print one line on stderr
(``kfkit: error: ...``) and exit non-zero; ``--json`` prints one JSON document on stdout."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Any

import click

from kfkit.errors import KfkitError
from kfkit.tables import grid, key_values
from kfkit.yaml_files import load_yaml


def _fail(message: str, code: int = 1) -> None:
    click.echo(f"kfkit: error: {message}", err=True)
    sys.exit(code)


def user_errors(func):
    """A KfkitError becomes one line and exit 1; no traceback for problems the user can fix."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except KfkitError as exc:
            _fail(str(exc))

    return wrapper


def _progress(line: str) -> None:
    click.echo(line, err=True)


def _emit_json(document: Any) -> None:
    click.echo(json.dumps(document, indent=2, sort_keys=True, default=str))


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kfkit")
def main() -> None:
    """kfkit: Kubeflow pipeline components for ingest, validate, train, evaluate and push."""


METADATA_URI_HELP = (
    "Metadata store: sqlite:///file, mysql://user@host:port/db (password from "
    "KFKIT_METADATA_MYSQL_PASSWORD) or grpc://host:port. Default: KFKIT_METADATA_URI, "
    "else SQLite under the state folder."
)


# -- run-local -------------------------------------------------------------------------------


def load_config(path: str | None) -> tuple[str, dict[str, Any]]:
    if not path:
        return "training", {}
    data = load_yaml(path, "config file")
    if not isinstance(data, dict) or not isinstance(data.get("parameters", {}), dict):
        raise KfkitError(f"{path}: expected a mapping with a `parameters` mapping")
    unknown = sorted(set(data) - {"pipeline", "parameters"})
    if unknown:
        raise KfkitError(f"{path}: unknown key(s) {unknown}; expected pipeline, parameters")
    return data.get("pipeline", "training"), dict(data.get("parameters") or {})


def parse_params(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``name=value``; a value is read as YAML (numbers, dicts) unless it is plain text."""
    import yaml

    params = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise KfkitError(f"--param {pair!r}: expected name=value")
        try:
            parsed = yaml.safe_load(value) if value else ""
        except yaml.YAMLError:
            parsed = value
        params[name] = value if isinstance(parsed, str) or parsed is None else parsed
    return params


def _coerce_to_pipeline_types(pipeline: str, params: dict[str, Any]) -> dict[str, Any]:
    """--param data_uri=123 is a string for a STRING input, whatever YAML thinks."""
    from kfp import components

    from kfkit.catalog import compiled_pipeline_path

    spec_path = compiled_pipeline_path(pipeline)
    if not spec_path.is_file():
        return params
    inputs = components.load_component_from_file(str(spec_path)).component_spec.inputs or {}
    out = dict(params)
    for name, value in params.items():
        spec = inputs.get(name)
        if spec is not None and spec.type == "String" and not isinstance(value, str):
            out[name] = str(value)
    return out


def format_summary(summary) -> str:
    rows = [("run", summary.run_id), ("status", summary.status)]
    for task, status in summary.tasks.items():
        seconds = summary.task_seconds.get(task)
        rows.append((f"  {task}", f"{status}" + (f"  {seconds:.1f}s" if seconds else "")))
    if summary.dataset_fingerprint:
        rows.append(("dataset fingerprint", summary.dataset_fingerprint))
    validation = summary.validation
    rows.append(
        (
            "data validation",
            "blessed"
            if validation.get("blessed")
            else f"NOT blessed ({len(validation.get('anomalies') or {})} anomalies)",
        )
    )
    for name, value in summary.metrics.items():
        rows.append((f"  {name}", f"{value:.4f}"))
    rows.append(("model", "blessed" if summary.blessed else "NOT blessed"))
    if summary.pushed:
        rows.append(("pushed", f"version {summary.pushed['version']} -> {summary.pushed['uri']}"))
        rows.append(("  sha256", summary.pushed["sha256"]))
    else:
        rows.append(("pushed", "nothing"))
    rows.append(("wall time", f"{summary.seconds:.1f}s"))
    rows.append(("log", summary.log))
    if summary.metadata:
        rows.append(("lineage", summary.metadata.get("store", "")))
    return key_values(rows)


@main.command("run-local")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="YAML with `parameters`.")
@click.option(
    "--param",
    "params",
    multiple=True,
    metavar="NAME=VALUE",
    help="Override one pipeline parameter (repeatable).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
@click.option("--metadata-uri", default=None, help=METADATA_URI_HELP)
@user_errors
def run_local_command(
    config_path: str | None, params: tuple[str, ...], as_json: bool, metadata_uri: str | None
) -> None:
    """Run the training pipeline on this machine with kfp.local.

    Starts the local object store when none is configured (KFKIT_S3_ENDPOINT unset) and
    stops what it started.
    """
    from kfkit.local_run import run_local

    pipeline, parameters = load_config(config_path)
    parameters.update(parse_params(params))
    parameters = _coerce_to_pipeline_types(pipeline, parameters)
    summary = run_local(parameters, pipeline=pipeline, progress=_progress, metadata_uri=metadata_uri)
    if as_json:
        _emit_json(summary.to_dict())
    else:
        click.echo(format_summary(summary))
    if summary.status != "SUCCEEDED":
        _fail(summary.error or "pipeline failed")


# -- store -----------------------------------------------------------------------------------


@main.group()
def store() -> None:
    """The local object store (SeaweedFS S3 server on 127.0.0.1)."""


@store.command("start")
@click.option("--json", "as_json", is_flag=True)
@user_errors
def store_start(as_json: bool) -> None:
    """Start the local store (or report the running one) and create its buckets."""
    from kfkit.local_store import LocalObjectStore

    state = LocalObjectStore().start_kept()
    info = {"endpoint": f"http://127.0.0.1:{state.s3_port}", "pid": state.pid}
    _emit_json(info) if as_json else click.echo(f"local object store at {info['endpoint']}")


@store.command("stop")
@click.option("--json", "as_json", is_flag=True)
@user_errors
def store_stop(as_json: bool) -> None:
    """Stop the local store."""
    from kfkit.local_store import LocalObjectStore

    stopped = LocalObjectStore().stop()
    _emit_json({"stopped": stopped}) if as_json else click.echo(
        "stopped" if stopped else "no local store was running"
    )


@store.command("upload")
@click.argument("source", type=click.Path(exists=True, dir_okay=False))
@click.argument("uri")
@click.option("--json", "as_json", is_flag=True)
@user_errors
def store_upload(source: str, uri: str, as_json: bool) -> None:
    """Upload a local file to an s3:// URI (local store, or KFKIT_S3_ENDPOINT)."""
    from kfkit.local_run import object_store_env
    from kfkit.storage import ObjectStore, ObjectUri

    with object_store_env():
        objects = ObjectStore.from_env()
        target = ObjectUri.parse(uri)
        if not target.key or target.key.endswith("/"):
            target = target.child(Path(source).name)
        objects.ensure_bucket(target.bucket)
        info = objects.put_bytes(target, Path(source).read_bytes())
    _emit_json(info.__dict__) if as_json else click.echo(f"uploaded {source} -> {info.uri}")


# -- compile ---------------------------------------------------------------------------------


@main.command("compile")
@click.option("--json", "as_json", is_flag=True)
@user_errors
def compile_command(as_json: bool) -> None:
    """Compile every component (component.yaml) and pipeline (pipelines/compiled/)."""
    from kfkit.catalog import compile_all

    written = [str(p) for p in compile_all()]
    _emit_json({"written": written}) if as_json else click.echo("\n".join(written))


# -- serve -----------------------------------------------------------------------------------


def fetch_model(reference: str) -> Path:
    """Download ``name[:version]`` from the object store into the state folder, verified."""
    from kfkit import model_registry
    from kfkit.settings import state_dir
    from kfkit.storage import ObjectStore

    objects = ObjectStore.from_env()
    name, version = model_registry.resolve(objects, deployed_reference(reference))
    return model_registry.download(objects, name, version, state_dir() / "models" / name / version)


@main.command("serve")
@click.option(
    "--model",
    "reference",
    required=True,
    metavar="NAME[:VERSION]",
    help="A pushed model; with no version, the locally deployed one (see `kfkit deploy`), else the latest.",
)
@click.option("--port", default=9000, show_default=True, type=int)
@user_errors
def serve_command(reference: str, port: int) -> None:
    """Serve a pushed model with seldon-core-microservice until interrupted."""
    import time

    from kfkit.local_run import object_store_env
    from kfkit.serving.server import start_server

    with object_store_env():
        folder = fetch_model(reference)
    server = start_server(folder, port=port)
    click.echo(f"serving {reference} from {folder} at {server.url} (Ctrl-C stops)", err=True)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


# -- demo: the main job ---------------------------------------------------------------------


@main.command("demo")
@click.option(
    "--config",
    "config_path",
    default="configs/penguins.yaml",
    show_default=True,
    type=click.Path(dir_okay=False),
)
@click.option("--rows", default=8, show_default=True, help="Eval rows to send to the server.")
@user_errors
def demo_command(config_path: str, rows: int) -> None:
    """The whole story on one machine: start the store, upload the penguins sample, run the
    pipeline, serve the pushed model with seldon-core-microservice and ask it for
    predictions. Stops everything it started."""
    from kfkit.demo import run_demo

    run_demo(config_path, rows, progress=_progress, out=click.echo)


# -- lineage and runs (ML Metadata) ----------------------------------------------------------

metadata_uri_option = click.option("--metadata-uri", default=None, help=METADATA_URI_HELP)
json_option = click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")


def _open_metadata(uri: str | None):
    from kfkit.metadata import open_store

    return open_store(uri)


def _when(seconds: float | None) -> str:
    import time

    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds)) if seconds else "-"


@main.group()
def lineage() -> None:
    """What produced a model, and what a dataset fed (from ML Metadata)."""


@lineage.command("model")
@click.argument("reference", metavar="MODEL[:VERSION]")
@metadata_uri_option
@json_option
@user_errors
def lineage_model(reference: str, metadata_uri: str | None, as_json: bool) -> None:
    """The run, data, validation, parameters, image, metrics and push behind a model
    version (no version: the latest pushed one)."""
    from kfkit.metadata.lineage import model_lineage

    found = model_lineage(_open_metadata(metadata_uri), reference)
    if as_json:
        _emit_json(found)
        return
    model, run, validation, training = (
        found["model"],
        found["run"] or {},
        found["validation"],
        found["training"],
    )
    rows: list[tuple[str, Any]] = [
        ("model", f"{model['name']}:{model['version']}"),
        ("pushed to", model["uri"]),
        ("sha256", model["sha256"]),
        ("pushed at", _when(model["pushed_at"])),
        ("run", run.get("run_id")),
        ("pipeline", run.get("pipeline")),
        ("dataset fingerprint", found["dataset_fingerprint"]),
    ]
    for dataset in found["datasets"]:
        rows.append((f"  {dataset['name']}", f"{dataset['rows']} rows  {dataset['uri']}"))
    if found["datasets"]:
        rows.append(("  source", found["datasets"][0]["source_uri"]))
    rows.append(
        (
            "data validation",
            ("blessed" if validation.get("blessed") else "NOT blessed")
            + f" against the {validation.get('schema_source')} schema",
        )
    )
    for label, key in (
        ("reference schema", "schema_uri"),
        ("schema", "schema_artifact_uri"),
        ("statistics", "statistics_uri"),
    ):
        if validation.get(key):
            rows.append((f"  {label}", validation[key]))
    rows.append(("training", f"{training.get('estimator')}  image {training.get('image')}"))
    for name, value in sorted((training.get("parameters") or {}).items()):
        rows.append((f"  {name}", value))
    for name, value in sorted(found["metrics"].items()):
        rows.append((f"metric {name}", value))
    blessing = found["blessing"]
    rows.append(
        (
            "evaluation",
            ("blessed: " if blessing.get("blessed") else "NOT blessed: ") + str(blessing.get("reason")),
        )
    )
    click.echo(key_values(rows))


@lineage.command("dataset")
@click.argument("fingerprint")
@metadata_uri_option
@json_option
@user_errors
def lineage_dataset(fingerprint: str, metadata_uri: str | None, as_json: bool) -> None:
    """Everything downstream of the data with FINGERPRINT (a unique prefix of 6+ hex
    digits works): runs, trained models and pushed versions."""
    from kfkit.metadata.lineage import dataset_lineage

    found = dataset_lineage(_open_metadata(metadata_uri), fingerprint)
    if as_json:
        _emit_json(found)
        return
    click.echo(
        key_values([("dataset fingerprint", found["dataset_fingerprint"]), ("runs", len(found["runs"]))])
    )
    click.echo()
    click.echo(
        grid(
            ["RUN", "PIPELINE", "CREATED"],
            [(r["run_id"], r["pipeline"], _when(r["created"])) for r in found["runs"]],
        )
    )
    click.echo()
    pushes = [(p["model_name"], p["version"], p["uri"], p["run_id"]) for p in found["pushes"]]
    click.echo(grid(["MODEL", "VERSION", "PUSHED TO", "RUN"], pushes) if pushes else "pushed: nothing")


@main.group()
def runs() -> None:
    """Recorded pipeline runs (from ML Metadata)."""


def _metric_columns(rows: list[dict[str, Any]]) -> list[str]:
    return sorted({m for r in rows for m in r["metrics"]})


@runs.command("list")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=1))
@metadata_uri_option
@json_option
@user_errors
def runs_list(limit: int, metadata_uri: str | None, as_json: bool) -> None:
    """The newest runs with their state, metrics and pushed version."""
    from kfkit.metadata.lineage import list_runs

    rows = list_runs(_open_metadata(metadata_uri), limit=limit)
    if as_json:
        _emit_json(rows)
        return
    metrics = _metric_columns(rows)
    body = [
        [r["run_id"], _when(r["created"]), r["state"], r["seconds"]]
        + [r["metrics"].get(m) for m in metrics]
        + [f"{r['pushed']['model_name']}:{r['pushed']['version']}" if r["pushed"] else None]
        for r in rows
    ]
    click.echo(
        grid(["RUN", "CREATED", "STATE", "SECONDS", *metrics, "PUSHED"], body) if rows else "no runs recorded"
    )


@runs.command("show")
@click.argument("run_id")
@metadata_uri_option
@json_option
@user_errors
def runs_show(run_id: str, metadata_uri: str | None, as_json: bool) -> None:
    """One run: parameters, tasks, metrics, artifacts."""
    from kfkit.metadata.lineage import show_run

    shown = show_run(_open_metadata(metadata_uri), run_id)
    if as_json:
        _emit_json(shown)
        return
    rows: list[tuple[str, Any]] = [
        ("run", shown["run_id"]),
        ("pipeline", shown["pipeline"]),
        ("created", _when(shown["created"])),
        ("state", shown["state"]),
        ("seconds", shown["seconds"]),
    ]
    rows += [(f"param {k}", v) for k, v in sorted(shown["parameters"].items())]
    rows += [(f"metric {k}", v) for k, v in sorted(shown["metrics"].items())]
    if shown["pushed"]:
        rows.append(
            (
                "pushed",
                f"{shown['pushed']['model_name']}:{shown['pushed']['version']} -> {shown['pushed']['uri']}",
            )
        )
    click.echo(key_values(rows))
    click.echo()
    click.echo(
        grid(
            ["TASK", "STATE", "IMAGE", "ERROR"],
            [(t["task"], t["state"], t["image"], t.get("error")) for t in shown["tasks"]],
        )
    )


@runs.command("compare")
@click.argument("run_ids", nargs=-1, required=True)
@metadata_uri_option
@json_option
@user_errors
def runs_compare(run_ids: tuple[str, ...], metadata_uri: str | None, as_json: bool) -> None:
    """Parameters and metrics of several runs side by side (* marks rows that differ)."""
    from kfkit.metadata.lineage import compare_runs

    compared = compare_runs(_open_metadata(metadata_uri), list(run_ids))
    if as_json:
        _emit_json(compared)
        return
    ids = [r["run_id"] for r in compared["runs"]]
    body = []
    for section in ("parameters", "metrics"):
        for key, values in compared[section].items():
            mark = "*" if f"{section}.{key}" in compared["differs"] else " "
            body.append(
                [f"{mark} {section[:-1] if section == 'parameters' else 'metric'} {key}"]
                + [values[i] for i in ids]
            )
    body.append(["  state"] + [r["state"] for r in compared["runs"]])
    click.echo(grid(["", *ids], body))


# -- deploy: status, history, promote, rollback (kfkit.deploy) -------------------------------


def deployed_reference(reference: str) -> str:
    """``name`` -> ``name:<locally deployed version>`` when a local deployment is recorded."""
    from kfkit.deploy.local import served_version

    name, _, version = reference.partition(":")
    if version:
        return reference
    deployed = served_version(name)
    return f"{name}:{deployed}" if deployed else reference


@main.group("deploy")
def deploy_group() -> None:
    """Inspect and change a model's deployment: a SeldonDeployment when a cluster is
    configured (in-cluster or kubeconfig), else the local record `kfkit serve` uses."""


def _deploy_options(func):
    func = click.option("--json", "as_json", is_flag=True)(func)
    func = click.option(
        "--target",
        type=click.Choice(["auto", "cluster", "local"]),
        default="auto",
        show_default=True,
        help="auto: the configured cluster if any (KFKIT_DEPLOY_TARGET, in-cluster, kubeconfig), else local.",
    )(func)
    func = click.option("--namespace", default="kfkit-serving", show_default=True)(func)
    func = click.option("--model", "model_name", required=True, metavar="NAME")(func)
    return func


def _deploy_target(target: str, namespace: str):
    import os

    from kfkit.deploy.target import TARGET_ENV, get_target

    if target != "auto":
        os.environ[TARGET_ENV] = target
    return get_target(namespace, progress=_progress)


def _print_state(state: dict[str, Any]) -> None:
    click.echo(f"{state.get('name')}  {state.get('target')}  {state.get('state')}")
    for pred in state.get("predictors", []):
        share = "shadow" if pred.get("shadow") else f"{pred.get('traffic')}%"
        click.echo(f"  {pred['name']:<12} {share:>7}  {pred.get('model_uri')}")
    if state.get("candidate"):
        click.echo(f"  candidate    {state['candidate']} (kfkit deploy promote|rollback)")
    click.echo(f"  history      {state.get('history', 0)} previous state(s)")


@deploy_group.command("status")
@_deploy_options
@user_errors
def deploy_status(model_name: str, namespace: str, target: str, as_json: bool) -> None:
    """Where a model is deployed, with which traffic split, and its state."""
    state = _deploy_target(target, namespace).status(model_name)
    _emit_json(state) if as_json else _print_state(state)


@deploy_group.command("history")
@_deploy_options
@user_errors
def deploy_history(model_name: str, namespace: str, target: str, as_json: bool) -> None:
    """Previous deployment states, oldest first (what rollback restores, newest first)."""
    entries = _deploy_target(target, namespace).history(model_name)
    if as_json:
        _emit_json({"model": model_name, "history": entries})
        return
    for entry in entries:
        click.echo(f"{entry.get('at')}  {entry.get('predictors')}  (then: {entry.get('change')})")


@deploy_group.command("promote")
@_deploy_options
@click.option("--timeout", default=600.0, show_default=True, help="Seconds to wait for Available.")
@user_errors
def deploy_promote(model_name: str, namespace: str, target: str, as_json: bool, timeout: float) -> None:
    """Give the canary (or shadow) all the traffic; rolled back if it does not become Available."""
    state = _deploy_target(target, namespace).promote(model_name, timeout)
    _emit_json(state) if as_json else _print_state(state)


@deploy_group.command("rollback")
@_deploy_options
@click.option("--timeout", default=600.0, show_default=True, help="Seconds to wait for Available.")
@user_errors
def deploy_rollback(model_name: str, namespace: str, target: str, as_json: bool, timeout: float) -> None:
    """Restore the previous predictors (kept in the history)."""
    state = _deploy_target(target, namespace).rollback(model_name, timeout)
    _emit_json(state) if as_json else _print_state(state)


# -- cluster: upload, submit, schedule (Kubeflow Pipelines through kfp.Client) -----------------
# Logic lives in kfkit.cluster; these commands only parse flags and print.


def _kfp_options(func):
    """--host, --namespace, --token-file: flag > environment > kubeconfig (kfkit.cluster.kfp_api)."""
    for option in reversed(
        [
            click.option(
                "--host", help="KFP API URL (else KFKIT_KFP_HOST, KF_PIPELINES_ENDPOINT, kubeconfig)."
            ),
            click.option(
                "--namespace",
                help="Kubeflow profile namespace (else KFKIT_KFP_NAMESPACE, the kubeconfig context's).",
            ),
            click.option(
                "--token-file",
                type=click.Path(dir_okay=False),
                help="File holding a bearer token (else KFKIT_KFP_TOKEN, KF_PIPELINES_TOKEN).",
            ),
        ]
    ):
        func = option(func)
    return func


def _kfp_connect(host: str | None, namespace: str | None, token_file: str | None, **extra: Any):
    from kfkit.cluster.kfp_api import KfpSettings, connect

    settings = KfpSettings.resolve(host=host, namespace=namespace, token_file=token_file, **extra)
    return settings, connect(settings)


def _known_pipeline(pipeline: str) -> str:
    from kfkit.catalog import PIPELINES

    if pipeline not in PIPELINES:
        raise KfkitError(f"unknown pipeline '{pipeline}'; expected one of {list(PIPELINES)}")
    return pipeline


@main.command("upload")
@click.argument("pipeline")
@_kfp_options
@click.option("--name", "display_name", help="Pipeline name in KFP (default: the compiled spec's name).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
@user_errors
def upload_command(
    pipeline: str,
    host: str | None,
    namespace: str | None,
    token_file: str | None,
    display_name: str | None,
    as_json: bool,
) -> None:
    """Upload a compiled pipeline, or a new version of it, to Kubeflow Pipelines.

    The version is named sha256-<digest of the compiled spec>: uploading an unchanged spec
    creates nothing. Run `kfkit compile` first after changing a pipeline.
    """
    from kfkit.catalog import compiled_pipeline_path
    from kfkit.cluster.kfp_api import upload

    settings, client = _kfp_connect(host, namespace, token_file)
    result = upload(
        client, settings, _known_pipeline(pipeline), compiled_pipeline_path(pipeline), display_name
    )
    if as_json:
        _emit_json(result.to_dict())
        return
    what = (
        "new pipeline"
        if result.created_pipeline
        else ("new version" if result.created_version else "unchanged")
    )
    click.echo(f"{result.pipeline} {result.version} ({what})\n{result.url}")


@main.command("submit")
@click.argument("pipeline")
@_kfp_options
@click.option(
    "--param", "params", multiple=True, metavar="NAME=VALUE", help="Pipeline parameter (repeatable)."
)
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="YAML with `parameters`.")
@click.option("--experiment", default="Default", show_default=True, help="Experiment (created if missing).")
@click.option("--run-name", help="Run name (default: <pipeline>-<UTC time>).")
@click.option(
    "--service-account",
    help="ServiceAccount the run uses (else KFKIT_KFP_SERVICE_ACCOUNT, kfkit-pipeline-runner; '' = KFP's).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
@user_errors
def submit_command(
    pipeline: str,
    host: str | None,
    namespace: str | None,
    token_file: str | None,
    params: tuple[str, ...],
    config_path: str | None,
    experiment: str,
    run_name: str | None,
    service_account: str | None,
    as_json: bool,
) -> None:
    """Start a run of PIPELINE in Kubeflow Pipelines and print its UI URL.

    Uploads the compiled spec first if that version is not there yet. Credentials are never
    parameters: runs read them from the kfkit-object-store Secret (manifests/).
    """
    from kfkit.cluster.kfp_api import submit

    _, parameters = load_config(config_path)
    parameters.update(parse_params(params))
    settings, client = _kfp_connect(host, namespace, token_file, service_account=service_account)
    result = submit(client, settings, _known_pipeline(pipeline), parameters, experiment, run_name)
    _progress(f"started run {result.run_name} ({result.run_id}) of {pipeline} {result.pipeline_version}")
    _emit_json(result.to_dict()) if as_json else click.echo(result.url)


@main.group("schedule")
def schedule_group() -> None:
    """Recurring runs declared in a file (kfkit manages only those it created)."""


@schedule_group.command("apply")
@click.option("-f", "--file", "path", required=True, type=click.Path(dir_okay=False), help="schedules.yaml")
@_kfp_options
@click.option("--dry-run", is_flag=True, help="Print the plan; change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
@user_errors
def schedule_apply_command(
    path: str, host: str | None, namespace: str | None, token_file: str | None, dry_run: bool, as_json: bool
) -> None:
    """Make the experiment's kfkit-managed recurring runs match the file: create the missing,
    replace the changed (delete + create: KFP has no update), delete the removed."""
    from kfkit.cluster.schedules import apply, load_schedules

    wanted = load_schedules(path)
    for name in {s.pipeline for s in wanted.schedules}:
        _known_pipeline(name)
    settings, client = _kfp_connect(host, namespace, token_file)
    plan = apply(client, settings, wanted, dry_run=dry_run)
    if as_json:
        _emit_json(plan.to_dict())
        return
    for upload in plan.uploads:
        if upload["created_version"]:
            verb = "would upload" if dry_run else "uploaded"
            click.echo(f"{verb} {upload['pipeline']} {upload['version']}")
    for action in plan.actions:
        detail = f" ({', '.join(action.changes)})" if action.changes else ""
        verb = action.action if not dry_run or action.action == "unchanged" else f"would {action.action}"
        click.echo(f"{verb:16} {action.name}{detail}")
    if not plan.changed:
        click.echo(f"experiment {plan.experiment}: nothing to change")


@schedule_group.command("list")
@_kfp_options
@click.option("--experiment", help="Only this experiment's recurring runs.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
@user_errors
def schedule_list_command(
    host: str | None, namespace: str | None, token_file: str | None, experiment: str | None, as_json: bool
) -> None:
    """Show the recurring runs in the namespace (or one experiment), managed or not."""
    from kfkit.cluster.kfp_api import ensure_experiment
    from kfkit.cluster.schedules import describe, list_recurring_runs

    settings, client = _kfp_connect(host, namespace, token_file)
    experiment_id = ensure_experiment(client, settings, experiment, dry_run=True) if experiment else None
    if experiment and experiment_id is None:
        raise KfkitError(f"no experiment named '{experiment}'")
    rows = [describe(r) for r in list_recurring_runs(client, settings, experiment_id)]
    if as_json:
        _emit_json({"recurring_runs": rows})
        return
    for row in rows:
        trigger = row["trigger"].get("cron") or f"every {row['trigger'].get('interval_seconds')}s"
        state = "enabled" if row["enabled"] else "disabled"
        managed = "kfkit" if row["managed"] else "-"
        click.echo(f"{row['name']:32} {trigger:20} {state:9} {managed:6} {row['recurring_run_id']}")
    if not rows:
        click.echo("no recurring runs", err=True)


if __name__ == "__main__":
    main()
