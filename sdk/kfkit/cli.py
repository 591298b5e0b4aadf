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


# -- run-local -------------------------------------------------------------------------------


def load_config(path: str | None) -> tuple[str, dict[str, Any]]:
    import yaml

    if not path:
        return "training", {}
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except FileNotFoundError:
        raise KfkitError(f"{path}: config file not found") from None
    except yaml.YAMLError as exc:
        raise KfkitError(f"{path}: not valid YAML: {str(exc).splitlines()[0]}") from None
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
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)


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
@user_errors
def run_local_command(config_path: str | None, params: tuple[str, ...], as_json: bool) -> None:
    """Run the training pipeline on this machine with kfp.local.

    Starts the local object store when none is configured (KFKIT_S3_ENDPOINT unset) and
    stops what it started.
    """
    from kfkit.local_run import run_local

    pipeline, parameters = load_config(config_path)
    parameters.update(parse_params(params))
    parameters = _coerce_to_pipeline_types(pipeline, parameters)
    summary = run_local(parameters, pipeline=pipeline, progress=_progress)
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

    state = LocalObjectStore().start()
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
    name, version = model_registry.resolve(objects, reference)
    return model_registry.download(objects, name, version, state_dir() / "models" / name / version)


@main.command("serve")
@click.option(
    "--model",
    "reference",
    required=True,
    metavar="NAME[:VERSION]",
    help="A pushed model; the latest version when none is given.",
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
