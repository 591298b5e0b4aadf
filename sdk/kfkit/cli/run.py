"""``kfkit run-local``, ``compile`` and ``demo``: the pipeline on this machine."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from kfkit.cli._app import (
    METADATA_URI_HELP,
    _emit_json,
    _fail,
    _progress,
    main,
    user_errors,
)
from kfkit.errors import KfkitError

# -- run-local -------------------------------------------------------------------------------


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


def _coerce_to_pipeline_types(spec_path: Path, params: dict[str, Any]) -> dict[str, Any]:
    """--param data_uri=123 is a string for a STRING input, whatever YAML thinks."""
    from kfkit.local_run import pipeline_spec

    try:  # the spec, not kfp's loader: ~1 s less for every run (run_local says if it is no pipeline)
        inputs = pipeline_spec(spec_path).get("root", {}).get("inputDefinitions", {}).get("parameters", {})
    except Exception:  # noqa: BLE001
        return params
    out = dict(params)
    for name, value in params.items():
        spec = inputs.get(name)
        if spec is not None and spec.get("parameterType") == "STRING" and not isinstance(value, str):
            out[name] = str(value)
    return out


@main.command("run-local")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="YAML with `parameters`.")
@click.option(
    "--param",
    "params",
    multiple=True,
    metavar="NAME=VALUE",
    help="Override one pipeline parameter (repeatable).",
)
@click.option(
    "--pipeline",
    "pipeline_option",
    default=None,
    metavar="NAME|FILE",
    help="kfkit's pipeline by name (training), a .py file with one @dsl.pipeline, or a compiled "
    ".yaml. Default: the config's `pipeline`, else training.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document on stdout.")
@click.option("--metadata-uri", default=None, help=METADATA_URI_HELP)
@click.option(
    "--no-cache",
    is_flag=True,
    help="Run every task: no look-up in the local cache (<state>/cache) and nothing stored in it.",
)
@user_errors
def run_local_command(
    config_path: str | None,
    params: tuple[str, ...],
    pipeline_option: str | None,
    as_json: bool,
    metadata_uri: str | None,
    no_cache: bool,
) -> None:
    """Run a pipeline on this machine with kfp.local: kfkit's training pipeline, or any
    pipeline built from kfkit's components.

    Exit codes: 0 pushed, unchanged (the latest version is this very model) or completed;
    1 failed (one line says why); 3 completed but a gate refused (data or model not blessed).

    Starts the local object store when none is configured (KFKIT_S3_ENDPOINT unset) and
    stops what it started.

    A task whose component version, parameters and input contents are those of an earlier
    successful task is not run: its outputs are restored from the local cache and lineage records
    it as CACHED (resolve_source and push always run). --no-cache runs everything.
    """
    from kfkit.catalog import pipeline_spec_file
    from kfkit.local_run import NOT_BLESSED, OUTCOME_EXIT_CODES, format_summary, load_config, run_local

    pipeline, parameters = load_config(config_path)
    pipeline = pipeline_option or pipeline
    parameters.update(parse_params(params))
    spec_path = pipeline_spec_file(pipeline)  # a .py file is compiled once, here
    parameters = _coerce_to_pipeline_types(spec_path, parameters)
    summary = run_local(
        parameters,
        pipeline=str(spec_path),
        progress=_progress,
        metadata_uri=metadata_uri,
        use_cache=not no_cache,
    )
    if as_json:
        _emit_json(summary.to_dict())
    else:
        click.echo(format_summary(summary))
    if summary.status != "SUCCEEDED":
        _fail(summary.error or "pipeline failed")
    if summary.outcome == NOT_BLESSED:
        refused = summary.refused or {}
        click.echo(f"kfkit: not blessed: {refused.get('task')}: {refused.get('reason')}", err=True)
        sys.exit(OUTCOME_EXIT_CODES[NOT_BLESSED])


# -- compile ---------------------------------------------------------------------------------


@main.command("compile")
@click.option(
    "--image-registry",
    metavar="R",
    help="Registry the pipeline's kfkit images are pulled from: R/kfkit:T, R/kfkit-validate:T "
    "(else KFKIT_IMAGE_REGISTRY, else ghcr.io/kfkit).",
)
@click.option("--image-tag", metavar="T", help="Their tag (else KFKIT_IMAGE_TAG, else kfkit's version).")
@click.option(
    "--resources",
    "resources_path",
    type=click.Path(dir_okay=False),
    help="YAML overriding tasks' CPU, memory, retries, timeouts, caching "
    "(tasks: {train: {memory_limit: 16Gi}}; see configs/resources.yaml).",
)
@click.option(
    "--out",
    "out_root",
    type=click.Path(file_okay=False),
    help="Write under this folder (components/, pipelines/compiled/) instead of in place.",
)
@click.option("--json", "as_json", is_flag=True)
@user_errors
def compile_command(
    image_registry: str | None,
    image_tag: str | None,
    resources_path: str | None,
    out_root: str | None,
    as_json: bool,
) -> None:
    """Compile every component (component.yaml) and pipeline (pipelines/compiled/).

    With no options and no KFKIT_IMAGE_* variables this makes the compiled files in git."""
    from kfkit.catalog import compile_all
    from kfkit.images import image_settings
    from kfkit.task_settings import CompileSettings, load_task_overrides

    settings = CompileSettings(
        images=image_settings(image_registry, image_tag),
        tasks=load_task_overrides(resources_path) if resources_path else {},
        source=resources_path or "",
    )
    written = [str(p) for p in compile_all(Path(out_root) if out_root else None, settings)]
    _emit_json({"written": written}) if as_json else click.echo("\n".join(written))


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
    pipeline, serve the pushed model with kfkit's model server (Seldon Core) and ask it for
    predictions. Stops everything it started."""
    from kfkit.demo import run_demo

    run_demo(config_path, rows, progress=_progress, out=click.echo)
