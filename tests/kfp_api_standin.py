"""``KfpApiStandIn``: a stand-in for the Kubeflow Pipelines v2beta1 REST API on 127.0.0.1.

It serves the fast tests (tests/test_cluster.py); KFP's real API server (2.14.3, built from the Go
module proxy) runs the same flows in tests/cluster/test_real_kfp_api.py, which needs the cached
control-plane build. To keep it honest it checks every request against the API models
shipped in ``kfp-server-api`` (the same package ``kfp.Client`` serialises with):

- a JSON body must be an object whose keys are all fields of the expected model
  (``V2beta1Pipeline``, ``V2beta1PipelineVersion``, ``V2beta1Experiment``, ``V2beta1Run``,
  ``V2beta1RecurringRun``, recursively for nested models); unknown fields, wrong types or enum
  values outside ``allowable_values`` answer 400, as grpc-gateway does;
- the body must then deserialize into that model with ``ApiClient.deserialize`` and client-side
  validation on;
- uploaded pipeline files must parse into ``PipelineSpec`` (unknown fields refused);
- the checks the KFP API server makes before storing: names unique, referenced pipeline
  versions and experiments exist, a trigger has exactly one of cron/periodic, max_concurrency
  within 1..10, run parameters are inputs of the referenced pipeline spec;
- with ``scheduled_service_account`` set, recurring runs get that service account whatever
  they asked for (KFP 2.14-2.16's bug kubeflow/pipelines#13311, met on the real server);
- with ``token`` set, every request needs ``Authorization: Bearer <token>`` (401 otherwise);
  with ``multi_user``, pipelines, experiments and list calls need a namespace.

Every request is recorded (method, path, query, headers, body) so tests can look for leaks.
Lists page with ``page_size``/``next_page_token`` and filter on ``display_name`` EQUALS only.
"""

from __future__ import annotations

import itertools
import json
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import kfp_server_api
import yaml
from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

API = "/apis/v2beta1"
# proto3 JSON int64 fields: kfp-server-api types them 'str', clients may send numbers.
INT64_FIELDS = {"max_concurrency", "interval_second", "page_size"}
LIST_RESPONSES = {
    "pipelines": kfp_server_api.V2beta1ListPipelinesResponse,
    "pipeline_versions": kfp_server_api.V2beta1ListPipelineVersionsResponse,
    "experiments": kfp_server_api.V2beta1ListExperimentsResponse,
    "recurring_runs": kfp_server_api.V2beta1ListRecurringRunsResponse,
}


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


@dataclass
class State:
    pipelines: dict[str, dict] = field(default_factory=dict)
    versions: dict[str, dict] = field(default_factory=dict)  # version id -> version (+ spec)
    experiments: dict[str, dict] = field(default_factory=dict)
    runs: dict[str, dict] = field(default_factory=dict)
    recurring_runs: dict[str, dict] = field(default_factory=dict)


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def check_against_model(value: Any, type_name: str, where: str = "body") -> None:
    """Raise ApiError(400) unless ``value`` fits kfp-server-api's ``type_name`` exactly."""
    if type_name.startswith("list["):
        if not isinstance(value, list):
            raise ApiError(400, f"{where}: expected a list")
        for i, item in enumerate(value):
            check_against_model(item, type_name[5:-1], f"{where}[{i}]")
        return
    if type_name.startswith("dict("):
        if not isinstance(value, dict):
            raise ApiError(400, f"{where}: expected an object")
        inner = type_name[5:-1].split(", ", 1)[1]
        for key, item in value.items():
            check_against_model(item, inner, f"{where}.{key}")
        return
    primitives = {"str": str, "bool": bool, "int": int, "float": (int, float), "object": object}
    if type_name in primitives:
        leaf = where.rsplit(".", 1)[-1]
        if type_name == "str" and leaf in INT64_FIELDS and isinstance(value, int):
            return
        if type_name != "object" and (
            not isinstance(value, primitives[type_name]) or (type_name == "int" and isinstance(value, bool))
        ):
            raise ApiError(400, f"{where}: expected {type_name}, got {type(value).__name__}")
        return
    if type_name in ("datetime", "date"):
        if not isinstance(value, str):
            raise ApiError(400, f"{where}: expected an RFC 3339 time string")
        return
    model = getattr(kfp_server_api.models, type_name)
    if getattr(model, "allowable_values", None):
        if value not in model.allowable_values:
            raise ApiError(400, f"{where}: {value!r} is not one of {model.allowable_values}")
        return
    if not isinstance(value, dict):
        raise ApiError(400, f"{where}: expected a {type_name} object")
    json_to_attr = {v: k for k, v in model.attribute_map.items()}
    unknown = sorted(set(value) - set(json_to_attr))
    if unknown:
        raise ApiError(400, f"{where}: unknown field(s) {unknown} for {type_name}")
    for key, item in value.items():
        if item is not None:
            check_against_model(item, model.openapi_types[json_to_attr[key]], f"{where}.{key}")


class _Response:
    def __init__(self, data: str):
        self.data = data


def parse_model(body: bytes, type_name: str) -> tuple[dict, Any]:
    """The JSON body checked field by field, then deserialized by kfp-server-api itself."""
    try:
        document = json.loads(body or b"null")
    except ValueError as exc:
        raise ApiError(400, f"body is not JSON: {exc}") from None
    check_against_model(document, type_name)
    config = kfp_server_api.Configuration()
    config.client_side_validation = True
    try:
        model = kfp_server_api.ApiClient(config).deserialize(_Response(json.dumps(document)), type_name)
    except (ValueError, TypeError) as exc:
        raise ApiError(400, f"body does not deserialize into {type_name}: {exc}") from None
    return document, model


def parse_pipeline_spec(data: bytes) -> dict:
    """An uploaded file: YAML documents, the first a PipelineSpec (strict), then a platform spec.
    Returned as KFP's API server stores and returns a version's ``pipeline_spec``: the pipeline
    spec alone, or ``{pipeline_spec, platform_spec}`` when the file has a platform spec (as the
    real 2.14.3 answered in tests/cluster/test_real_kfp_api.py)."""
    try:
        documents = [d for d in yaml.safe_load_all(data) if d is not None]
        json_format.ParseDict(documents[0], pipeline_spec_pb2.PipelineSpec())
        for platform in documents[1:]:
            json_format.ParseDict(platform, pipeline_spec_pb2.PlatformSpec())
    except (yaml.YAMLError, json_format.ParseError, IndexError) as exc:
        raise ApiError(400, f"uploaded file is not a pipeline spec: {str(exc).splitlines()[0]}") from None
    if len(documents) > 2:
        raise ApiError(400, "uploaded file has more than one platform spec")
    if len(documents) == 2:
        return {"pipeline_spec": documents[0], "platform_spec": documents[1]}
    return documents[0]


def pipeline_spec_of(stored: dict) -> dict:
    """The PipelineSpec inside a version's stored ``pipeline_spec`` (see parse_pipeline_spec)."""
    return stored["pipeline_spec"] if "platform_spec" in stored else stored


class KfpApiStandIn:
    """Serve the stand-in on 127.0.0.1:<free port> in a thread; ``stop()`` ends it."""

    def __init__(
        self, token: str | None = None, multi_user: bool = False, scheduled_service_account: str | None = None
    ):
        self.token = token
        self.multi_user = multi_user
        # Set: every recurring run gets this service account whatever it asked for, as KFP's API
        # server 2.14-2.16 do (kubeflow/pipelines#13311; seen on the real 2.14.3 in tests/cluster).
        self.scheduled_service_account = scheduled_service_account
        self.state = State()
        self.requests: list[Recorded] = []
        self.rejected: list[tuple[str, str, int, str]] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        handler = type("Handler", (_Handler,), {"standin": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> KfpApiStandIn:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def new_id(self, kind: str) -> str:
        return f"{kind}-{next(self._ids)}-{uuid.uuid4().hex[:8]}"

    def mutations(self) -> list[Recorded]:
        return [r for r in self.requests if r.method in ("POST", "DELETE", "PUT", "PATCH")]

    # -- routing ------------------------------------------------------------------------------

    def handle(self, method: str, path: str, query: dict[str, list[str]], headers: dict, body: bytes) -> Any:
        if self.token is not None and headers.get("authorization") != f"Bearer {self.token}":
            raise ApiError(401, "missing or wrong bearer token")
        if not path.startswith(API):
            raise ApiError(404, f"no route {path}")
        parts = path[len(API) :].strip("/").split("/")
        q = {k: v[-1] for k, v in query.items()}
        with self._lock:
            return self._route(method, parts, q, headers, body)

    def _route(self, method: str, parts: list[str], q: dict, headers: dict, body: bytes) -> Any:
        match method, parts:
            case "GET", ["healthz"]:
                return {"multi_user": self.multi_user}
            case "POST", ["pipelines", "upload"]:
                return self.upload_pipeline(q, headers, body)
            case "POST", ["pipelines", "upload_version"]:
                return self.upload_version(q, headers, body)
            case "GET", ["pipelines"]:
                self._need_namespace(q)
                items = [
                    p
                    for p in self.state.pipelines.values()
                    if p.get("namespace", "") == q.get("namespace", "")
                ]
                return self._page(items, q, "pipelines")
            case "GET", ["pipelines", pipeline_id]:
                return self._get(self.state.pipelines, pipeline_id)
            case "GET", ["pipelines", pipeline_id, "versions"]:
                self._get(self.state.pipelines, pipeline_id)
                items = [v for v in self.state.versions.values() if v["pipeline_id"] == pipeline_id]
                return self._page(items, q, "pipeline_versions")
            case "POST", ["experiments"]:
                return self.create_experiment(body)
            case "GET", ["experiments"]:
                self._need_namespace(q)
                items = [
                    e
                    for e in self.state.experiments.values()
                    if e.get("namespace", "") == q.get("namespace", "")
                ]
                return self._page(items, q, "experiments")
            case "GET", ["experiments", experiment_id]:
                return self._get(self.state.experiments, experiment_id)
            case "POST", ["runs"]:
                return self.create_run(body)
            case "GET", ["runs", run_id]:
                return self._get(self.state.runs, run_id)
            case "POST", ["recurringruns"]:
                return self.create_recurring_run(body)
            case "GET", ["recurringruns"]:
                items = list(self.state.recurring_runs.values())
                if q.get("experiment_id"):
                    items = [r for r in items if r["experiment_id"] == q["experiment_id"]]
                else:
                    self._need_namespace(q)
                    items = [r for r in items if r.get("namespace", "") == q.get("namespace", "")]
                return self._page(items, q, "recurring_runs")
            case "GET", ["recurringruns", run_id]:
                return self._get(self.state.recurring_runs, run_id)
            case "DELETE", ["recurringruns", run_id]:
                self._get(self.state.recurring_runs, run_id)
                del self.state.recurring_runs[run_id]
                return {}
        raise ApiError(404, f"no route {method} {'/'.join(parts)}")

    # -- helpers ----------------------------------------------------------------------------

    def _need_namespace(self, q: dict) -> None:
        if self.multi_user and not q.get("namespace"):
            raise ApiError(400, "multi-user mode: namespace is required")

    @staticmethod
    def _get(table: dict, key: str) -> dict:
        if key not in table:
            raise ApiError(404, f"{key} not found")
        return table[key]

    @staticmethod
    def _page(items: list[dict], q: dict, attribute: str) -> dict:
        """One page, under the JSON key the List*Response model names (KFP's recurring runs
        list is ``recurringRuns``, the others snake_case), checked against that model."""
        if q.get("filter"):
            try:
                predicates = json.loads(q["filter"]).get("predicates", [])
            except ValueError:
                raise ApiError(400, "filter is not JSON") from None
            for predicate in predicates:
                value = predicate.get("stringValue", predicate.get("string_value"))
                # proto3 JSON: an enum is its name or its number (kfp.Client sends 1 for EQUALS)
                if predicate.get("operation") not in ("EQUALS", 1) or predicate.get("key") != "display_name":
                    raise ApiError(400, f"stand-in supports display_name EQUALS only, got {predicate}")
                items = [i for i in items if i.get("display_name") == value]
        size = int(q.get("page_size") or 20)
        start = int(q.get("page_token") or 0)
        page = items[start : start + size]
        model = LIST_RESPONSES[attribute]
        document: dict[str, Any] = {model.attribute_map[attribute]: page, "total_size": len(items)}
        if start + size < len(items):
            document["next_page_token"] = str(start + size)
        check_against_model(document, model.__name__, "response")
        return document

    def _multipart_file(self, headers: dict, body: bytes) -> bytes:
        content_type = headers.get("content-type", "")
        if not content_type.startswith("multipart/form-data"):
            raise ApiError(400, f"upload must be multipart/form-data, got {content_type!r}")
        message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
        for part in message.iter_parts():
            if part.get_param("name", header="content-disposition") == "uploadfile":
                return part.get_payload(decode=True)
        raise ApiError(400, "multipart body has no `uploadfile` part")

    # -- operations -------------------------------------------------------------------------

    def upload_pipeline(self, q: dict, headers: dict, body: bytes) -> dict:
        spec = parse_pipeline_spec(self._multipart_file(headers, body))
        name = q.get("name") or pipeline_spec_of(spec)["pipelineInfo"]["name"]
        self._need_namespace(q)
        namespace = q.get("namespace", "")
        if any(
            p["display_name"] == name and p.get("namespace", "") == namespace
            for p in self.state.pipelines.values()
        ):
            raise ApiError(409, f"pipeline '{name}' already exists")
        pipeline = {
            "pipeline_id": self.new_id("pipeline"),
            "display_name": name,
            "description": q.get("description", ""),
            "created_at": _now(),
            "namespace": namespace,
        }
        check_against_model(pipeline, "V2beta1Pipeline")
        self.state.pipelines[pipeline["pipeline_id"]] = pipeline
        # Like the KFP API server, the first version is named after the pipeline.
        self._add_version(pipeline["pipeline_id"], name, pipeline["description"], spec)
        return pipeline

    def upload_version(self, q: dict, headers: dict, body: bytes) -> dict:
        spec = parse_pipeline_spec(self._multipart_file(headers, body))
        pipeline_id, name = q.get("pipelineid"), q.get("name")
        if not pipeline_id or not name:
            raise ApiError(400, "upload_version needs `pipelineid` and `name`")
        self._get(self.state.pipelines, pipeline_id)
        if any(
            v["pipeline_id"] == pipeline_id and v["display_name"] == name
            for v in self.state.versions.values()
        ):
            raise ApiError(409, f"version '{name}' of {pipeline_id} already exists")
        return self._add_version(pipeline_id, name, q.get("description", ""), spec)

    def _add_version(self, pipeline_id: str, name: str, description: str, spec: dict) -> dict:
        version = {
            "pipeline_id": pipeline_id,
            "pipeline_version_id": self.new_id("version"),
            "display_name": name,
            "description": description,
            "created_at": _now(),
            "pipeline_spec": spec,
        }
        check_against_model(version, "V2beta1PipelineVersion")
        self.state.versions[version["pipeline_version_id"]] = version
        return version

    def create_experiment(self, body: bytes) -> dict:
        document, _ = parse_model(body, "V2beta1Experiment")
        if not document.get("display_name"):
            raise ApiError(400, "experiment display_name is required")
        if self.multi_user and not document.get("namespace"):
            raise ApiError(400, "multi-user mode: experiment namespace is required")
        namespace = document.get("namespace") or ""
        if any(
            e["display_name"] == document["display_name"] and e.get("namespace", "") == namespace
            for e in self.state.experiments.values()
        ):
            raise ApiError(409, f"experiment '{document['display_name']}' already exists")
        experiment = {**document, "experiment_id": self.new_id("experiment"), "created_at": _now()}
        experiment["namespace"] = namespace
        self.state.experiments[experiment["experiment_id"]] = experiment
        return experiment

    def _check_reference(self, document: dict) -> dict:
        """Shared by runs and recurring runs: experiment, version and parameters exist."""
        if not document.get("display_name"):
            raise ApiError(400, "display_name is required")
        experiment = self._get(self.state.experiments, document.get("experiment_id") or "")
        reference = document.get("pipeline_version_reference") or {}
        if document.get("pipeline_spec") is not None:
            raise ApiError(400, "stand-in expects runs of uploaded versions (pipeline_version_reference)")
        version = self.state.versions.get(reference.get("pipeline_version_id") or "")
        if version is None or version["pipeline_id"] != reference.get("pipeline_id"):
            raise ApiError(400, f"pipeline_version_reference {reference} names no uploaded version")
        root = pipeline_spec_of(version["pipeline_spec"]).get("root", {})
        inputs = root.get("inputDefinitions", {}).get("parameters", {})
        parameters = (document.get("runtime_config") or {}).get("parameters") or {}
        unknown = sorted(set(parameters) - set(inputs))
        if unknown:
            raise ApiError(400, f"parameters {unknown} are not inputs of the pipeline")
        return experiment

    def create_run(self, body: bytes) -> dict:
        document, _ = parse_model(body, "V2beta1Run")
        self._check_reference(document)  # a run's namespace is its experiment's
        run = {**document, "run_id": self.new_id("run"), "state": "PENDING", "created_at": _now()}
        self.state.runs[run["run_id"]] = run
        return run

    def create_recurring_run(self, body: bytes) -> dict:
        document, _ = parse_model(body, "V2beta1RecurringRun")
        experiment = self._check_reference(document)
        trigger = document.get("trigger") or {}
        if len([k for k in ("cron_schedule", "periodic_schedule") if trigger.get(k)]) != 1:
            raise ApiError(400, "trigger needs exactly one of cron_schedule and periodic_schedule")
        if trigger.get("cron_schedule") and len(trigger["cron_schedule"].get("cron", "").split()) not in (
            5,
            6,
        ):
            raise ApiError(400, "cron must have 5 or 6 fields")
        if trigger.get("periodic_schedule"):
            trigger["periodic_schedule"]["interval_second"] = str(
                trigger["periodic_schedule"]["interval_second"]
            )
        concurrency = int(document.get("max_concurrency") or 0)
        if not 1 <= concurrency <= 10:
            raise ApiError(400, "max_concurrency must be within 1..10")
        if document.get("mode") not in ("ENABLE", "DISABLE"):
            raise ApiError(400, "mode must be ENABLE or DISABLE")
        recurring = {
            **document,
            "max_concurrency": str(concurrency),  # int64 travels back as a string
            "recurring_run_id": self.new_id("recurring"),
            "created_at": _now(),
            "updated_at": _now(),
            "status": "ENABLED" if document["mode"] == "ENABLE" else "DISABLED",
            "namespace": experiment.get("namespace", ""),
        }
        if self.scheduled_service_account is not None:
            recurring["service_account"] = self.scheduled_service_account
        check_against_model(recurring, "V2beta1RecurringRun")
        self.state.recurring_runs[recurring["recurring_run_id"]] = recurring
        return recurring


class _Handler(BaseHTTPRequestHandler):
    standin: KfpApiStandIn

    def log_message(self, *args: Any) -> None:  # keep pytest output clean
        pass

    def _serve(self, method: str) -> None:
        url = urlparse(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        query = parse_qs(url.query)
        self.standin.requests.append(Recorded(method, url.path, query, headers, body))
        try:
            status, document = 200, self.standin.handle(method, url.path, query, headers, body)
        except ApiError as exc:
            status, document = exc.status, {"error": str(exc), "message": str(exc), "code": exc.status}
            self.standin.rejected.append((method, url.path, exc.status, str(exc)))
        payload = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._serve("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._serve("POST")

    def do_DELETE(self) -> None:  # noqa: N802
        self._serve("DELETE")
