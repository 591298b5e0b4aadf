"""``kfkit upload``, ``submit`` and ``schedule apply|list``: Kubeflow Pipelines through kfp.Client;
``kfkit manifests``: the kustomize build of the supporting objects, refused while unfilled."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from kfkit.cli._app import (
    _emit_json,
    _progress,
    main,
    user_errors,
)
from kfkit.cli.run import parse_params
from kfkit.errors import KfkitError
from kfkit.local_run import load_config

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
@click.option(
    "--enable-caching/--disable-caching",
    default=True,
    show_default=True,
    help="Reuse cached tasks (keyed on the data's content) or run every task.",
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
    enable_caching: bool,
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
    result = submit(
        client, settings, _known_pipeline(pipeline), parameters, experiment, run_name, enable_caching
    )
    _progress(f"started run {result.run_name} ({result.run_id}) of {pipeline} {result.pipeline_version}")
    _emit_json(result.to_dict()) if as_json else click.echo(result.url)


@main.command("manifests")
@click.argument("path", type=click.Path(exists=True, file_okay=False, path_type=Path))
@user_errors
def manifests_command(path: Path) -> None:
    """Build the kustomize target PATH (e.g. kustomize/overlays/dev) and print it for
    `kubectl apply -f -`.

    The same `kubectl kustomize PATH`, refused with one line naming the .env file and line while
    a credential or endpoint is still the 'replace-me' placeholder or empty. The output holds
    the credentials: pipe it, do not keep it.
    """
    from kfkit.cluster.manifests import build

    click.echo(build(path), nl=False)


@main.group("schedule")
def schedule_group() -> None:
    """Recurring runs declared in a file (kfkit manages only those it created)."""


@schedule_group.command("apply")
@click.option("-f", "--file", "path", required=True, type=click.Path(dir_okay=False), help="schedules.yaml")
@_kfp_options
@click.option("--dry-run", is_flag=True, help="Print the plan; change nothing.")
@click.option(
    "--enable-caching/--disable-caching",
    default=None,
    help="For every entry (default: each entry's `enable_caching`, true if unset).",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
@user_errors
def schedule_apply_command(
    path: str,
    host: str | None,
    namespace: str | None,
    token_file: str | None,
    dry_run: bool,
    enable_caching: bool | None,
    as_json: bool,
) -> None:
    """Make the experiment's kfkit-managed recurring runs match the file: create the missing,
    replace the changed (create + delete: KFP has no update), delete the removed."""
    from kfkit.cluster.schedules import apply, load_schedules

    wanted = load_schedules(path)
    for name in {s.pipeline for s in wanted.schedules}:
        _known_pipeline(name)
    settings, client = _kfp_connect(host, namespace, token_file)
    plan = apply(client, settings, wanted, dry_run=dry_run, enable_caching=enable_caching)
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
