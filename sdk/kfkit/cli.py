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
    name, version = model_registry.resolve(objects, deployed_reference(reference))
    return model_registry.download(objects, name, version, state_dir() / "models" / name / version)


@main.command("serve")
@click.option(
    "--model",
    "reference",
    required=True,
    metavar="NAME[:VERSION]",
    help="A pushed model; with no version, the locally deployed one (see `kfkit deploy`), "
    "else the latest.",
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



if __name__ == "__main__":
    main()
