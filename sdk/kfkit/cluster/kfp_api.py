"""Connect to Kubeflow Pipelines with ``kfp.Client``, upload pipelines as content-addressed
versions, and start runs.

Settings, each with the precedence flag > environment > kubeconfig (one prefix, one
documented order):

- host: ``--host``, ``KFKIT_KFP_HOST``, kfp's own ``KF_PIPELINES_ENDPOINT``; else kfp.Client
  reaches the API through the current kubeconfig context (the API server's service proxy to
  ``ml-pipeline`` in ``KFKIT_KFP_SYSTEM_NAMESPACE``, default ``kubeflow``).
- namespace (multi-user Kubeflow: the profile namespace that owns pipelines, experiments and
  runs): ``--namespace``, ``KFKIT_KFP_NAMESPACE``, the kubeconfig context's namespace; none
  means a single-user deployment.
- token: ``--token-file``, ``KFKIT_KFP_TOKEN``, ``KF_PIPELINES_TOKEN``. There is no ``--token``
  flag, so a token never lands in shell history or the process list; it is sent only as the
  ``Authorization: Bearer`` header and never printed.

A pipeline version is named ``sha256-<first 16 hex digits>`` of the compiled spec's canonical
JSON, so uploading an unchanged spec finds the existing version and creates nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kfkit import names
from kfkit.errors import KfkitError

HOST_ENVS = ("KFKIT_KFP_HOST", "KF_PIPELINES_ENDPOINT")
UI_HOST_ENVS = ("KFKIT_KFP_UI_HOST", "KF_PIPELINES_UI_ENDPOINT")
NAMESPACE_ENV = "KFKIT_KFP_NAMESPACE"
TOKEN_ENVS = ("KFKIT_KFP_TOKEN", "KF_PIPELINES_TOKEN")
SYSTEM_NAMESPACE_ENV = "KFKIT_KFP_SYSTEM_NAMESPACE"
SERVICE_ACCOUNT_ENV = "KFKIT_KFP_SERVICE_ACCOUNT"
# Environment variables whose values must never travel in a request body (see `submit`).
CREDENTIAL_ENVS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", *TOKEN_ENVS)

VERSION_PREFIX = "sha256-"
PAGE_SIZE = 100


@dataclass
class KfpSettings:
    """Where and as whom to talk to KFP. ``token`` is excluded from ``repr``."""

    host: str | None = None
    namespace: str | None = None
    token: str | None = field(default=None, repr=False)
    ui_host: str | None = None
    system_namespace: str = "kubeflow"
    service_account: str = names.PIPELINE_RUNNER_SERVICE_ACCOUNT

    @classmethod
    def resolve(
        cls,
        host: str | None = None,
        namespace: str | None = None,
        token_file: str | None = None,
        service_account: str | None = None,
        environ: dict[str, str] | None = None,
    ) -> KfpSettings:
        env = os.environ if environ is None else environ
        host = host or _first_env(env, HOST_ENVS)
        namespace = namespace or env.get(NAMESPACE_ENV) or _kubeconfig_namespace()
        token = None
        if token_file:
            try:
                token = Path(token_file).read_text().strip()
            except OSError as exc:
                raise KfkitError(f"{token_file}: cannot read token file ({exc.strerror})") from None
            if not token:
                raise KfkitError(f"{token_file}: token file is empty")
        token = token or _first_env(env, TOKEN_ENVS)
        if service_account is None:
            service_account = env.get(SERVICE_ACCOUNT_ENV, names.PIPELINE_RUNNER_SERVICE_ACCOUNT)
        return cls(
            host=host.rstrip("/") if host else None,
            namespace=namespace or None,
            token=token,
            ui_host=_first_env(env, UI_HOST_ENVS),
            system_namespace=env.get(SYSTEM_NAMESPACE_ENV, "kubeflow"),
            service_account=service_account,
        )

    def ui_url(self, fragment: str) -> str:
        base = (self.ui_host or self.host or "").rstrip("/")
        return f"{base}/#/{fragment}" if base else f"/pipeline/#/{fragment}"


def _first_env(env: Any, keys: tuple[str, ...]) -> str | None:
    for key in keys:
        if env.get(key):
            return env[key]
    return None


def _kubeconfig_namespace() -> str | None:
    """The current kubeconfig context's namespace, if there is a kubeconfig at all."""
    try:
        from kubernetes import config

        # KUBECONFIG is read now, not when the kubernetes package was imported.
        _, current = config.list_kube_config_contexts(config_file=os.environ.get("KUBECONFIG") or None)
    except Exception:  # no kubeconfig: single-user or host given explicitly
        return None
    return (current or {}).get("context", {}).get("namespace")


@contextlib.contextmanager
def _quiet_kfp() -> Iterator[None]:
    """kfp.Client prints links to stdout, warns, and logs tracebacks on retries; kfkit's
    stdout is its own (``--json``) and a user error is one line."""
    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(previous)


@contextlib.contextmanager
def api_errors(settings: KfpSettings, action: str) -> Iterator[None]:
    """KFP API and connection failures become one KfkitError line (no token in it)."""
    import kfp_server_api
    import urllib3

    where = settings.host or "KFP (via kubeconfig)"
    try:
        with _quiet_kfp():
            yield
    except kfp_server_api.ApiException as exc:
        detail = _api_error_message(exc)
        raise KfkitError(f"{where}: {action}: HTTP {exc.status} {exc.reason}: {detail}") from None
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise KfkitError(f"{where}: {action}: cannot reach the KFP API ({reason})") from None


def _api_error_message(exc: Any) -> str:
    body = getattr(exc, "body", None) or ""
    try:
        document = json.loads(body)
        message = document.get("message") or document.get("error") or body
    except (ValueError, AttributeError):
        message = body
    return " ".join(str(message).split())[:300] or "(no message)"


def connect(settings: KfpSettings) -> Any:
    """A ``kfp.Client`` for these settings. It never writes ``~/.config/kfp/context.json``."""
    import kfp

    if settings.token and not settings.host:
        # kfp.Client skips the kubeconfig when given a token and would talk to localhost.
        raise KfkitError("a KFP token needs a host: set --host or KFKIT_KFP_HOST")

    class Client(kfp.Client):
        # kfp.Client's constructor asks the health endpoint up to five times, 5 s apart,
        # logging a traceback each time: one attempt, and its error, is what a user needs.
        def get_kfp_healthz(self, sleep_duration: int = 5) -> Any:
            return self._healthz_api.healthz_service_get_healthz()

    with api_errors(settings, "connect"):
        return Client(
            host=settings.host,
            namespace=settings.system_namespace,
            existing_token=settings.token,
            ui_host=settings.ui_host,
        )


# -- pipelines and versions ---------------------------------------------------------------------


def spec_digest(spec_path: Path) -> str:
    """sha256 of the compiled spec's canonical JSON (every YAML document, keys sorted): a
    reformatted but identical spec has the same digest."""
    import yaml

    try:
        documents = list(yaml.safe_load_all(spec_path.read_text()))
    except FileNotFoundError:
        raise KfkitError(f"{spec_path}: compiled pipeline not found; run `kfkit compile`") from None
    canonical = json.dumps(documents, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def version_name(digest: str) -> str:
    return f"{VERSION_PREFIX}{digest[:16]}"


def _name_filter(name: str) -> str:
    return json.dumps({"predicates": [{"operation": "EQUALS", "key": "display_name", "stringValue": name}]})


@dataclass
class UploadResult:
    pipeline: str
    pipeline_id: str
    version: str
    version_id: str
    digest: str
    created_pipeline: bool
    created_version: bool
    url: str

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def find_pipeline(client: Any, display_name: str, namespace: str | None) -> Any | None:
    response = client.list_pipelines(
        filter=_name_filter(display_name), namespace=namespace, page_size=PAGE_SIZE
    )
    found = [p for p in (response.pipelines or []) if p.display_name == display_name]
    if len(found) > 1:
        raise KfkitError(f"{len(found)} pipelines are named '{display_name}'; names must be unique")
    return found[0] if found else None


def find_version(client: Any, pipeline_id: str, display_name: str) -> Any | None:
    response = client.list_pipeline_versions(
        pipeline_id=pipeline_id, filter=_name_filter(display_name), page_size=PAGE_SIZE
    )
    found = [v for v in (response.pipeline_versions or []) if v.display_name == display_name]
    return found[0] if found else None


def upload(
    client: Any,
    settings: KfpSettings,
    pipeline: str,
    spec_path: Path,
    display_name: str | None = None,
    dry_run: bool = False,
) -> UploadResult:
    """Upload ``spec_path`` as pipeline ``display_name`` (default: the kfkit pipeline name)
    at version ``sha256-<digest>``; an existing version of the same content is reused.

    KFP names the first version of a new pipeline after the pipeline itself; kfkit then adds
    its content-named version, which is the one runs and schedules reference."""
    digest = spec_digest(spec_path)
    display_name = display_name or pipeline_display_name(pipeline)
    wanted = version_name(digest)
    created_pipeline = created_version = False
    with api_errors(settings, f"upload {display_name}"):
        found = find_pipeline(client, display_name, settings.namespace)
        if found is None and dry_run:
            return UploadResult(display_name, "", wanted, "", digest, True, True, "")
        if found is None:
            found = client.upload_pipeline(
                str(spec_path),
                pipeline_name=display_name,
                description=f"kfkit pipeline '{pipeline}' (uploaded by kfkit)",
                namespace=settings.namespace,
            )
            created_pipeline = True
        version = find_version(client, found.pipeline_id, wanted)
        if version is None and dry_run:
            return UploadResult(display_name, found.pipeline_id, wanted, "", digest, False, True, "")
        if version is None:
            version = client.upload_pipeline_version(
                str(spec_path),
                pipeline_version_name=wanted,
                pipeline_id=found.pipeline_id,
                description=f"kfkit spec sha256:{digest}",
            )
            created_version = True
    url = settings.ui_url(f"pipelines/details/{found.pipeline_id}/version/{version.pipeline_version_id}")
    return UploadResult(
        display_name,
        found.pipeline_id,
        wanted,
        version.pipeline_version_id,
        digest,
        created_pipeline,
        created_version,
        url,
    )


def pipeline_display_name(pipeline: str) -> str:
    """The name a kfkit pipeline has in KFP: the name in its compiled spec."""
    from kfkit.catalog import compiled_pipeline_path

    return pipeline_info(compiled_pipeline_path(pipeline))[0]


def pipeline_info(spec_path: Path) -> tuple[str, dict[str, str]]:
    """(pipeline name, {input name: parameter type}) from a compiled spec."""
    import yaml

    try:
        spec = next(yaml.safe_load_all(spec_path.read_text()))
    except FileNotFoundError:
        raise KfkitError(f"{spec_path}: compiled pipeline not found; run `kfkit compile`") from None
    inputs = spec.get("root", {}).get("inputDefinitions", {}).get("parameters", {}) or {}
    return spec["pipelineInfo"]["name"], {k: v.get("parameterType", "") for k, v in inputs.items()}


def check_parameters(spec_path: Path, params: dict[str, Any], environ: dict[str, str] | None = None) -> dict:
    """Refuse unknown parameter names and anything equal to a credential in the environment;
    STRING inputs get strings (``--param data_uri=123`` is text, whatever YAML thinks)."""
    env = os.environ if environ is None else environ
    _, inputs = pipeline_info(spec_path)
    unknown = sorted(set(params) - set(inputs))
    if unknown:
        raise KfkitError(f"unknown pipeline parameter(s) {unknown}; expected some of {sorted(inputs)}")
    secrets = {env[k] for k in CREDENTIAL_ENVS if env.get(k)}
    out = {}
    for name, value in params.items():
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        if any(secret in text for secret in secrets):
            raise KfkitError(
                f"parameter '{name}' contains a credential from the environment; credentials reach "
                f"runs through the Kubernetes Secret {names.OBJECT_STORE_SECRET}, never as parameters"
            )
        out[name] = str(value) if inputs[name] == "STRING" and not isinstance(value, str) else value
    return out


# -- experiments and runs -----------------------------------------------------------------------


def ensure_experiment(client: Any, settings: KfpSettings, name: str, dry_run: bool = False) -> str | None:
    """The id of experiment ``name`` in the namespace, created if missing (None on a dry run)."""
    with api_errors(settings, f"experiment {name}"):
        response = client.list_experiments(
            filter=_name_filter(name), namespace=settings.namespace, page_size=PAGE_SIZE
        )
        for experiment in response.experiments or []:
            if experiment.display_name == name:
                return experiment.experiment_id
        if dry_run:
            return None
        created = client.create_experiment(name, namespace=settings.namespace)
        return created.experiment_id


@dataclass
class SubmitResult:
    run_id: str
    run_name: str
    url: str
    experiment: str
    experiment_id: str
    pipeline_id: str
    pipeline_version: str
    pipeline_version_id: str
    parameters: dict[str, Any]
    enable_caching: bool

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def spec_with_caching(spec_path: Path, enable_caching: bool, folder: Path) -> Path:
    """The spec to upload for a run with ``enable_caching``: as compiled when on (each task's
    own setting: resolve_source and push are never cached, every other task is, keyed on the
    data's identity), else a copy in ``folder`` with every task's cache off.

    Not kfp.Client's ``enable_caching``: it rewrites only a spec passed as a file (runs of an
    uploaded version ignore it), and True would cache every task, resolve_source and push too.
    The copy has its own digest, so it is its own content-named version."""
    if enable_caching:
        return spec_path
    import yaml

    documents = list(yaml.safe_load_all(spec_path.read_text()))
    spec = documents[0]
    dags = [spec["root"], *(c for c in spec.get("components", {}).values() if "dag" in c)]
    for dag in dags:
        for task in dag["dag"].get("tasks", {}).values():
            task["cachingOptions"] = {}  # enableCache false: protobuf leaves the default out
    target = folder / spec_path.name
    target.write_text(yaml.safe_dump_all(documents, sort_keys=False))
    return target


def submit(
    client: Any,
    settings: KfpSettings,
    pipeline: str,
    params: dict[str, Any],
    experiment: str = "Default",
    run_name: str | None = None,
    enable_caching: bool = True,
) -> SubmitResult:
    """Start one run of the uploaded (content-addressed) version of ``pipeline``; with
    ``enable_caching`` false, of its variant with every task's cache off."""
    import tempfile

    from kfkit.catalog import compiled_pipeline_path

    params = check_parameters(compiled_pipeline_path(pipeline), params)
    with tempfile.TemporaryDirectory(prefix="kfkit-spec-") as folder:
        spec_path = spec_with_caching(compiled_pipeline_path(pipeline), enable_caching, Path(folder))
        uploaded = upload(client, settings, pipeline, spec_path)
    experiment_id = ensure_experiment(client, settings, experiment)
    run_name = run_name or f"{uploaded.pipeline}-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    with api_errors(settings, f"start run {run_name}"):
        run = client.run_pipeline(
            experiment_id=experiment_id,
            job_name=run_name,
            params=params,
            pipeline_id=uploaded.pipeline_id,
            version_id=uploaded.version_id,
            service_account=settings.service_account or None,
        )
    return SubmitResult(
        run_id=run.run_id,
        run_name=run_name,
        url=settings.ui_url(f"runs/details/{run.run_id}"),
        experiment=experiment,
        experiment_id=experiment_id,
        pipeline_id=uploaded.pipeline_id,
        pipeline_version=uploaded.version,
        pipeline_version_id=uploaded.version_id,
        parameters=params,
        enable_caching=enable_caching,
    )
