"""KFP's cache keys of the compiled training pipeline: they change when the data (or the model
registry) changes, and only then.

A KFP 2.x backend decides to reuse a task's outputs from its fingerprint: sha256 of the
protojson of a ``CacheKey`` (re-marshalled by Go's encoding/json, so map keys are sorted)
holding the task's input artifacts' names (the MLMD artifact ids, as strings), its input
parameter values (after the driver resolved pipeline parameters, upstream output parameters
and placeholders such as ``{{$.pipeline_job_name}}``), its outputs' names and types (URIs
wiped), its image and its command and arguments. Read from kubeflow/pipelines at commit
7b70c7b95f6832772efd6fd0029a4024491a0f44:

- ``backend/src/v2/cacheutils/cache.go`` (``GenerateCacheKey``, ``GenerateFingerPrint``);
- ``backend/src/v2/driver/cache.go`` (``getFingerPrint``: command + args, image; cache looked
  up only for tasks whose ``cachingOptions.enableCache`` is set);
- ``backend/src/v2/metadata/converter.go`` (``toRuntimeArtifact``: an input artifact's name is
  its MLMD id), ``backend/src/v2/driver/driver.go`` (``provisionOutputs``: an output artifact's
  name is its output key) and ``backend/src/v2/driver/resolve.go`` (placeholders resolved, and
  a container task's unset optional inputs are not filled in by the driver);
- ``api/v2alpha1/cache_key.proto`` (the JSON field names).

:class:`KfpCacheStandIn` below is that logic, rewritten (not copied) in Python, plus the one
consequence that matters across tasks: a cached task hands the artifacts (ids) of the
execution it reuses downstream, an executed task new ones. resolve_source runs for real
against the session's object store; nothing else runs.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import uuid
from typing import Any

import pytest
import yaml
from conftest import PENGUINS, REPO

from kfkit.components.resolve_source.executor import IDENTITIES, resolve

COMPILED = REPO / "pipelines" / "compiled" / "training.yaml"
# Placeholders the driver replaces by something that differs on every run.
RUN_SCOPED = (
    "{{$.pipeline_job_name}}",
    "{{$.pipeline_job_resource_name}}",
    "{{$.pipeline_job_uuid}}",
    "{{$.pipeline_task_uuid}}",
    "{{$.pipeline_job_create_time_utc}}",
    "{{$.pipeline_job_schedule_time_utc}}",
)
CACHED = ("ingest", "resolve-baseline", "validate", "train", "evaluate")


def go_json(value: Any) -> str:
    """Go's encoding/json output for ``value``: map keys sorted, no spaces, UTF-8 as is, and
    <, >, & escaped (Go escapes them for HTML by default)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


class KfpCacheStandIn:
    """The cache decisions of a KFP 2.x backend for a compiled pipeline spec (see the module
    docstring for the upstream files): fingerprints, the cache, and MLMD artifact ids."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.cache: dict[str, dict[str, Any]] = {}  # fingerprint -> the outputs it recorded
        self.artifact_ids = itertools.count(1)

    def fingerprint(self, task: dict[str, Any], parameters: dict[str, Any], artifacts: dict[str, str]) -> str:
        component = self.spec["components"][task["componentRef"]["name"]]
        container = self.spec["deploymentSpec"]["executors"][component["executorLabel"]]["container"]
        outputs = component.get("outputDefinitions", {})
        key = {
            "inputArtifactNames": {name: {"artifactNames": [id_]} for name, id_ in artifacts.items()},
            "inputParameterValues": parameters,
            "outputArtifactsSpec": {
                name: {"name": name, "type": spec["artifactType"]}
                for name, spec in outputs.get("artifacts", {}).items()
            },
            "outputParametersSpec": {
                name: spec["parameterType"] for name, spec in outputs.get("parameters", {}).items()
            },
            "containerSpec": {
                "image": container["image"],
                "cmdArgs": [*container.get("command", []), *container.get("args", [])],
            },
        }
        key = {k: v for k, v in key.items() if v}  # protojson leaves out empty maps
        return hashlib.sha256(go_json(key).encode()).hexdigest()

    def run(self, run_name: str, arguments: dict[str, Any], execute) -> dict[str, dict[str, Any]]:
        """One run: per task its fingerprint (None when caching is off for it), whether it
        was a cache hit, and its outputs. ``execute(task_name, parameters)`` gives an executed
        task's output parameters."""
        root = self.spec["root"]
        pipeline_inputs = {
            name: arguments.get(name, definition.get("defaultValue"))
            for name, definition in root["inputDefinitions"]["parameters"].items()
        }
        tasks, done = root["dag"]["tasks"], {}
        while len(done) < len(tasks):
            for name, task in tasks.items():
                if name in done or not set(task.get("dependentTasks", [])) <= set(done):
                    continue
                parameters = {
                    key: self._parameter(source, pipeline_inputs, done, name, run_name)
                    for key, source in task.get("inputs", {}).get("parameters", {}).items()
                }
                artifacts = {
                    key: done[source["taskOutputArtifact"]["producerTask"]]["artifacts"][
                        source["taskOutputArtifact"]["outputArtifactKey"]
                    ]
                    for key, source in task.get("inputs", {}).get("artifacts", {}).items()
                }
                cached = task.get("cachingOptions", {}).get("enableCache", False)
                fingerprint = self.fingerprint(task, parameters, artifacts) if cached else None
                if fingerprint is not None and fingerprint in self.cache:
                    done[name] = {**self.cache[fingerprint], "fingerprint": fingerprint, "hit": True}
                    continue
                component = self.spec["components"][task["componentRef"]["name"]]
                outputs = {
                    "artifacts": {
                        key: str(next(self.artifact_ids))
                        for key in component.get("outputDefinitions", {}).get("artifacts", {})
                    },
                    "parameters": execute(name, parameters),
                }
                if fingerprint is not None:
                    self.cache[fingerprint] = outputs
                done[name] = {**outputs, "fingerprint": fingerprint, "hit": False}
        return done

    @staticmethod
    def _parameter(source: dict, pipeline_inputs: dict, done: dict, task_name: str, run_name: str) -> Any:
        if "componentInputParameter" in source:
            return pipeline_inputs[source["componentInputParameter"]]
        if "taskOutputParameter" in source:
            upstream = source["taskOutputParameter"]
            return done[upstream["producerTask"]]["parameters"][upstream["outputParameterKey"]]
        constant = source["runtimeValue"]["constant"]
        resolved = {"{{$.pipeline_task_name}}": task_name, "{{$.pipeline_job_name}}": run_name}
        if constant in RUN_SCOPED and constant not in resolved:
            return f"{constant}:{run_name}"  # differs per run, like the real values
        return resolved.get(constant, constant)


@pytest.fixture()
def spec() -> dict[str, Any]:
    return next(yaml.safe_load_all(COMPILED.read_text()))


@pytest.fixture()
def data(objects) -> str:
    objects.ensure_bucket("raw")
    prefix = f"s3://raw/cache-keys-{uuid.uuid4().hex[:8]}/"
    objects.put_bytes(prefix + "penguins.csv", PENGUINS.read_bytes())
    return prefix


def _executor(objects):
    """resolve-source runs for real (it lists the store); other tasks output no parameters."""

    def execute(task_name: str, parameters: dict[str, Any]) -> dict[str, Any]:
        if task_name != "resolve-source":
            return {}
        found = resolve(
            parameters["source_uri"],
            parameters["model_name"],
            store=objects,
            deploy_strategy=parameters["deploy_strategy"],
            serving_namespace=parameters["serving_namespace"],
            schema_uri=parameters["schema_uri"],
        )
        return {k: found[k] for k in IDENTITIES}

    return execute


def _keys(run: dict[str, dict[str, Any]]) -> dict[str, str | None]:
    return {name: task["fingerprint"] for name, task in run.items()}


def _model() -> str:
    return f"cache-keys-{uuid.uuid4().hex[:8]}"


def test_live_state_readers_and_push_are_never_cached_and_the_rest_is(spec):
    caching = {
        name: task.get("cachingOptions", {}).get("enableCache", False)
        for name, task in spec["root"]["dag"]["tasks"].items()
    }
    assert caching == {"resolve-source": False, "push": False, **dict.fromkeys(CACHED, True)}


def test_no_cached_task_takes_a_value_that_changes_every_run(spec):
    for name, task in spec["root"]["dag"]["tasks"].items():
        if not task.get("cachingOptions", {}).get("enableCache"):
            continue
        for key, source in task.get("inputs", {}).get("parameters", {}).items():
            constant = source.get("runtimeValue", {}).get("constant")
            assert constant not in RUN_SCOPED, f"{name}.{key} is {constant}: its cache key changes every run"


def test_same_data_same_keys_across_run_names_and_every_cached_task_is_reused(spec, objects, data):
    kfp = KfpCacheStandIn(spec)
    arguments = {"data_uri": data, "model_name": _model()}
    first = kfp.run("kfkit-training-20261201-020000", arguments, _executor(objects))
    second = kfp.run("kfkit-training-20261202-020000", arguments, _executor(objects))
    assert _keys(second) == _keys(first)
    assert all(first[name]["fingerprint"] for name in CACHED)
    assert {name for name, task in second.items() if task["hit"]} == set(CACHED)
    # The uncached tasks run again: a fresh look at the store, a push that decides for itself.
    assert not second["resolve-source"]["hit"] and not second["push"]["hit"]


def test_a_changed_object_changes_ingests_key_and_everything_after_it(spec, objects, data):
    kfp = KfpCacheStandIn(spec)
    arguments = {"data_uri": data, "model_name": _model()}
    before = kfp.run("run-1", arguments, _executor(objects))
    rows = PENGUINS.read_bytes().replace(b"Adelie", b"adelie", 1)
    objects.put_bytes(data + "penguins.csv", rows)
    after = kfp.run("run-2", arguments, _executor(objects))
    for name in ("ingest", "validate", "train", "evaluate"):
        assert after[name]["fingerprint"] != before[name]["fingerprint"], name
        assert not after[name]["hit"], name
    # The registry did not change: the baseline is reused.
    assert after["resolve-baseline"]["hit"]
    # Put back byte for byte (S3 gives the same etag): the first run's cache entries apply again.
    objects.put_bytes(data + "penguins.csv", PENGUINS.read_bytes())
    again = kfp.run("run-3", arguments, _executor(objects))
    assert _keys(again) == _keys(before) and all(again[name]["hit"] for name in CACHED)


def test_a_push_changes_the_baseline_and_what_compares_with_it_not_ingest(spec, objects, data):
    kfp = KfpCacheStandIn(spec)
    model = _model()
    arguments = {"data_uri": data, "model_name": model}
    before = kfp.run("run-1", arguments, _executor(objects))
    objects.ensure_bucket("models")
    objects.put_bytes(f"s3://models/{model}/1/kfkit-model.json", b"{}")  # what a push adds
    after = kfp.run("run-2", arguments, _executor(objects))
    assert after["ingest"]["hit"] and after["ingest"]["fingerprint"] == before["ingest"]["fingerprint"]
    for name in ("resolve-baseline", "validate", "train", "evaluate"):
        assert after[name]["fingerprint"] != before[name]["fingerprint"], name


def test_a_training_parameter_changes_train_and_evaluate_not_the_data_tasks(spec, objects, data):
    kfp = KfpCacheStandIn(spec)
    arguments = {"data_uri": data, "model_name": _model()}
    before = kfp.run("run-1", arguments, _executor(objects))
    after = kfp.run("run-2", {**arguments, "estimator": "random_forest"}, _executor(objects))
    assert {name for name in CACHED if after[name]["hit"]} == {"ingest", "resolve-baseline", "validate"}
    assert after["train"]["fingerprint"] != before["train"]["fingerprint"]
    assert after["evaluate"]["fingerprint"] != before["evaluate"]["fingerprint"]


def test_an_edited_curated_schema_changes_validates_key_not_ingests(spec, objects, data):
    """A curated schema edited in place (same URI) is new content: validate and what follows it
    are keyed on it, ingest is not."""
    objects.ensure_bucket("schemas")
    schema = f"s3://schemas/{_model()}/schema.pbtxt"
    objects.put_bytes(schema, b'feature { name: "species" type: BYTES }\n')
    kfp = KfpCacheStandIn(spec)
    arguments = {"data_uri": data, "model_name": _model(), "schema_uri": schema}
    before = kfp.run("run-1", arguments, _executor(objects))
    objects.put_bytes(
        schema, b'feature { name: "species" type: BYTES }\nfeature { name: "island" type: BYTES }\n'
    )
    after = kfp.run("run-2", arguments, _executor(objects))
    assert after["ingest"]["hit"] and after["resolve-baseline"]["hit"]
    for name in ("validate", "train", "evaluate"):
        assert after[name]["fingerprint"] != before[name]["fingerprint"] and not after[name]["hit"], name


def test_the_stand_in_sees_what_a_run_scoped_input_would_do(spec, objects, data):
    """The stand-in is not blind to run names: train given the run name (as it was before
    resolve_source) gets a new key on every run."""
    task = spec["root"]["dag"]["tasks"]["train"]
    task["inputs"]["parameters"]["run_id"] = {"runtimeValue": {"constant": "{{$.pipeline_job_name}}"}}
    kfp = KfpCacheStandIn(spec)
    arguments = {"data_uri": data, "model_name": _model()}
    first = kfp.run("run-1", arguments, _executor(objects))
    second = kfp.run("run-2", arguments, _executor(objects))
    assert second["ingest"]["hit"] and second["validate"]["hit"]
    assert second["train"]["fingerprint"] != first["train"]["fingerprint"] and not second["train"]["hit"]
    assert not second["evaluate"]["hit"]  # a new model artifact: evaluate runs again too


def test_a_rollback_changes_the_baseline_and_what_compares_with_it(
    spec, objects, data, tmp_path, monkeypatch
):
    """resolve_baseline compares with the version serving now: a rollback changes its answer
    with no change in the registry, and so its key (the local record stands in for the cluster's
    SeldonDeployment: the same question, asked of another target)."""
    from kfkit import deploy
    from kfkit.deploy.local import LocalTarget
    from kfkit.deploy.request import DeploymentRequest
    from kfkit.deploy.target import TargetContext
    from kfkit.model_registry import version_folder

    monkeypatch.setenv("KFKIT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    model = _model()
    objects.ensure_bucket("models")
    for version in ("1", "2"):
        objects.put_bytes(version_folder(model, version).child("kfkit-model.json"), b"{}")
        deploy.deploy(DeploymentRequest(model, version, f"s3://models/{model}/{version}"), "local", timeout=1)
    kfp = KfpCacheStandIn(spec)
    arguments = {"data_uri": data, "model_name": model}
    before = kfp.run("run-1", arguments, _executor(objects))
    LocalTarget.from_context(TargetContext()).rollback(model)
    after = kfp.run("run-2", arguments, _executor(objects))
    assert after["ingest"]["hit"]
    for name in ("resolve-baseline", "validate", "train", "evaluate"):
        assert after[name]["fingerprint"] != before[name]["fingerprint"], name
