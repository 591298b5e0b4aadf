"""manifests/ and kustomize/: every overlay builds with the real `kubectl kustomize`, every
object validates against the Kubernetes schemas (kubernetes-validate, offline) or, for
SeldonDeployments, against the fields kfkit builds; RBAC is least privilege; credentials
planted in the git-ignored env files appear only inside the generated Secrets' data.

The real `.env` files are never needed: each build runs on a temporary copy of manifests/
and kustomize/ where the test writes the env files from the shipped `*.env.example`s with
planted values.
"""

from __future__ import annotations

import base64
import copy
import shutil
import subprocess
import uuid
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from conftest import REPO

from kfkit import names, signing
from kfkit.deploy.seldon import STORAGE_SECRET, seldon_deployment

KUBERNETES_VERSION = "1.32.0"  # the kubectl on these machines; kubernetes-validate ships it
OVERLAYS = sorted(p.name for p in (REPO / "kustomize" / "overlays").iterdir() if p.is_dir())
TARGETS = ["base", *(f"overlays/{name}" for name in OVERLAYS)]
EXPECTED_REPLICAS = {"dev": 1, "prod": 2}
SERVING_IMAGE = "ghcr.io/kfkit/kfkit-serving"


def planted_values() -> dict[str, str]:
    """Credential values nobody would write by accident, unique per test session."""
    tag = uuid.uuid4().hex[:12]
    return {
        "AWS_ACCESS_KEY_ID": f"PLANTEDAKID{tag}",
        "AWS_SECRET_ACCESS_KEY": f"PlantedSecretKey{tag}xyz",
        "RCLONE_CONFIG_S3_ACCESS_KEY_ID": f"PLANTEDRCAKID{tag}",
        "RCLONE_CONFIG_S3_SECRET_ACCESS_KEY": f"PlantedRcloneSecret{tag}xyz",
    }


PLANTED = planted_values()


def write_env_files(root: Path) -> list[Path]:
    """Each `*.env.example` under kustomize/ becomes its `.env`, credentials replaced by
    planted values (other keys, e.g. endpoints, as in the example)."""
    written = []
    for example in sorted((root / "kustomize").rglob("*.env.example")):
        lines = []
        for line in example.read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep and not line.startswith("#"):
                value = PLANTED.get(key, value)
                lines.append(f"{key}={value}")
        target = example.with_name(example.name.removesuffix(".example"))
        target.write_text("\n".join(lines) + "\n")
        written.append(target)
    return written


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("kustomize-tree")
    for folder in ("manifests", "kustomize"):
        shutil.copytree(REPO / folder, root / folder, ignore=shutil.ignore_patterns("*.env"))
    write_env_files(root)
    return root


def kustomize(path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["kubectl", "kustomize", str(path)], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def built(tree) -> dict[str, tuple[str, list[dict]]]:
    """target -> (the built YAML text, its objects)."""
    out = {}
    for target in TARGETS:
        proc = kustomize(tree / "kustomize" / target)
        assert proc.returncode == 0, f"{target}: {proc.stderr}"
        out[target] = (proc.stdout, [d for d in yaml.safe_load_all(proc.stdout) if d])
    return out


def objects_of(built, target: str, kind: str) -> list[dict]:
    return [o for o in built[target][1] if o["kind"] == kind]


def one(built, target: str, kind: str, name: str | None = None) -> dict:
    found = [o for o in objects_of(built, target, kind) if name is None or o["metadata"]["name"] == name]
    assert len(found) == 1, f"{target}: expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


# -- builds and schemas ----------------------------------------------------------------------


def test_there_are_dev_and_prod_overlays():
    assert {"dev", "prod"} <= set(OVERLAYS)


def test_kubernetes_validate_ships_its_schemas_offline():
    assert KUBERNETES_VERSION in kubernetes_validate.utils.all_versions()
    schemas = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema"
    assert (schemas / f"v{KUBERNETES_VERSION}-local-strict" / "rolebinding-rbac-v1.json").is_file()


@pytest.mark.parametrize("target", TARGETS)
def test_every_built_object_validates(built, target):
    kinds = set()
    for obj in built[target][1]:
        kinds.add(obj["kind"])
        if obj["apiVersion"].startswith("machinelearning.seldon.io/"):
            check_seldon_deployment(obj)
        else:
            # strict: unknown fields are errors, as the API server's field validation would say
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    assert kinds == {
        "Namespace",
        "ServiceAccount",
        "Secret",
        "ConfigMap",  # the trusted model keys (public)
        "Role",
        "RoleBinding",
        "NetworkPolicy",
        "SeldonDeployment",
    }


def test_a_broken_object_fails_validation():
    """The validator is not a rubber stamp: a typo'd field and a wrong type are refused."""
    role = next(yaml.safe_load_all((REPO / "manifests" / "serving" / "rbac.yaml").read_text()))
    role["rules"][0]["verb"] = role["rules"][0].pop("verbs")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(role, KUBERNETES_VERSION, strict=True)
    with pytest.raises(kubernetes_validate.ValidationError):
        check_seldon_deployment(
            {**seldon_deployment("m", "1", "s3://models/m/1"), "spec": {"replicas": "two"}}
        )


def _seldon_schema() -> dict:
    """The fields kfkit's SeldonDeployments use (sdk/kfkit/deploy/seldon.py), closed: a field
    outside this list is a mistake, not a feature. Resources and replicas come from overlays."""

    def closed(properties: dict, required: list[str] | None = None) -> dict:
        return {
            "type": "object",
            "properties": properties,
            "required": required or list(properties),
            "additionalProperties": False,
        }

    string = {"type": "string", "minLength": 1}
    trusted = signing.TRUSTED_KEYS_CONFIG_MAP
    labels = {"type": "object", "additionalProperties": {"type": "string"}}
    quantity = {"type": "string", "pattern": r"^[0-9.]+(m|Mi|Gi|Ki)?$"}
    resources = closed(
        {
            "requests": closed({"cpu": quantity, "memory": quantity}),
            "limits": closed({"cpu": quantity, "memory": quantity}),
        }
    )
    container = closed(
        {
            "name": string,
            "image": {"type": "string", "pattern": r"^[a-z0-9./-]+(:[A-Za-z0-9._-]+|@sha256:[0-9a-f]{64})$"},
            "env": {"type": "array", "items": closed({"name": string, "value": {"type": "string"}})},
            # Only the trusted model keys (a ConfigMap of public keys), read-only.
            "volumeMounts": {
                "type": "array",
                "items": closed({"name": string, "mountPath": string, "readOnly": {"const": True}}),
            },
            "securityContext": closed(
                {"runAsNonRoot": {"const": True}, "allowPrivilegeEscalation": {"const": False}}
            ),
            "resources": resources,
        },
        ["name", "image", "env", "securityContext"],
    )
    graph = closed(
        {
            "name": string,
            "type": {"const": "MODEL"},
            "modelUri": {"type": "string", "pattern": r"^s3://[a-z0-9.-]+/.+"},
            "envSecretRefName": string,
            "children": {"type": "array", "maxItems": 0},
        }
    )
    predictor = closed(
        {
            "name": string,
            "replicas": {"type": "integer", "minimum": 1},
            "traffic": {"type": "integer", "minimum": 0, "maximum": 100},
            "labels": labels,
            "componentSpecs": {
                "type": "array",
                "minItems": 1,
                "items": closed(
                    {
                        # no metadata.name: Seldon then names the Deployment <sdep>-<predictor>-0-model
                        "spec": closed(
                            {
                                "containers": {"type": "array", "minItems": 1, "items": container},
                                "volumes": {
                                    "type": "array",
                                    "items": closed(
                                        {"name": string, "configMap": closed({"name": {"const": trusted}})}
                                    ),
                                },
                            },
                            ["containers"],
                        ),
                    }
                ),
            },
            "graph": graph,
        }
    )
    metadata = closed(
        {
            "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"},
            "namespace": string,
            "labels": labels,
            # kfkit.io/history: previous predictor specs, for rollback (sdk/kfkit/deploy/seldon.py)
            "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
        },
        ["name", "labels"],
    )
    return closed(
        {
            "apiVersion": {"const": "machinelearning.seldon.io/v1"},
            "kind": {"const": "SeldonDeployment"},
            "metadata": metadata,
            "spec": closed(
                {
                    "name": string,
                    "protocol": {"const": "seldon"},
                    "predictors": {"type": "array", "items": predictor},
                }
            ),
        }
    )


def check_seldon_deployment(obj: dict) -> None:
    import jsonschema

    try:
        jsonschema.validate(obj, _seldon_schema())
    except jsonschema.ValidationError as exc:
        raise kubernetes_validate.ValidationError(exc, "seldon") from None


def test_what_push_builds_fits_the_seldon_schema():
    check_seldon_deployment(seldon_deployment("penguins", "7", "s3://models/penguins/7", namespace="x"))


def test_shipped_seldon_deployment_is_what_push_builds():
    shipped = yaml.safe_load((REPO / "manifests" / "serving" / "seldondeployment.yaml").read_text())
    built_by_push = seldon_deployment("penguins", "1", "s3://models/penguins/1")
    del built_by_push["metadata"]["namespace"]  # kustomize sets it
    assert shipped == built_by_push


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_sets_image_tag_replicas_and_resources(built, overlay):
    target = f"overlays/{overlay}"
    deployment = one(built, target, "SeldonDeployment")
    predictor = deployment["spec"]["predictors"][0]
    container = predictor["componentSpecs"][0]["spec"]["containers"][0]
    assert container["image"].startswith(SERVING_IMAGE + ":")
    overlay_file = yaml.safe_load((REPO / "kustomize" / target / "kustomization.yaml").read_text())
    (image,) = [i for i in overlay_file["images"] if i["name"] == SERVING_IMAGE]
    assert container["image"] == f"{SERVING_IMAGE}:{image['newTag']}"
    assert predictor["replicas"] == EXPECTED_REPLICAS[overlay]
    assert set(container["resources"]) == {"requests", "limits"}
    # Each overlay has its own namespaces; serving and pipelines are different ones.
    namespaces = {o["metadata"].get("namespace") for o in built[target][1]} - {None}
    assert len(namespaces) == 2
    assert one(built, target, "Namespace")["metadata"]["name"] == deployment["metadata"]["namespace"]
    labels = deployment["metadata"]["labels"]
    assert labels["kfkit.io/environment"] == overlay and labels["app.kubernetes.io/part-of"] == "kfkit"


def test_overlays_use_different_namespaces(built):
    namespaces = [
        frozenset(o["metadata"].get("namespace") for o in built[f"overlays/{name}"][1]) for name in OVERLAYS
    ]
    assert len(set(namespaces)) == len(OVERLAYS)


# -- cross-namespace references ------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_references_between_namespaces_point_at_the_built_names(built, target):
    runner = one(built, target, "ServiceAccount", names.PIPELINE_RUNNER_SERVICE_ACCOUNT)
    pipelines_ns = runner["metadata"]["namespace"]
    role = one(built, target, "Role")
    serving_ns = role["metadata"]["namespace"]
    assert pipelines_ns != serving_ns
    binding = one(built, target, "RoleBinding")
    assert binding["metadata"]["namespace"] == serving_ns
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": role["metadata"]["name"],
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": names.PIPELINE_RUNNER_SERVICE_ACCOUNT, "namespace": pipelines_ns}
    ]
    policy = one(built, target, "NetworkPolicy")
    assert policy["metadata"]["namespace"] == serving_ns
    allowed = [
        peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for rule in policy["spec"]["ingress"]
        for peer in rule["from"]
        if "namespaceSelector" in peer
    ]
    assert sorted(allowed) == sorted(["istio-system", pipelines_ns])
    deployment = one(built, target, "SeldonDeployment")
    assert deployment["metadata"]["namespace"] == serving_ns
    # The storage secret the deployment names exists next to it, with rclone's six keys.
    secret_name = deployment["spec"]["predictors"][0]["graph"]["envSecretRefName"]
    assert secret_name == STORAGE_SECRET
    rclone = one(built, target, "Secret", STORAGE_SECRET)
    assert rclone["metadata"]["namespace"] == serving_ns
    assert set(rclone["data"]) == {
        f"RCLONE_CONFIG_S3_{k}"
        for k in ("TYPE", "PROVIDER", "ENV_AUTH", "ACCESS_KEY_ID", "SECRET_ACCESS_KEY", "ENDPOINT")
    }
    assert base64.b64decode(rclone["data"]["RCLONE_CONFIG_S3_TYPE"]) == b"s3"
    # The pipeline's Secret exists where runs execute, with the keys it reads.
    store = one(built, target, "Secret", names.OBJECT_STORE_SECRET)
    assert store["metadata"]["namespace"] == pipelines_ns
    assert set(store["data"]) == set(names.OBJECT_STORE_SECRET_KEYS)


def test_network_policy_admits_only_seldon_ports_from_outside(built):
    policy = one(built, "base", "NetworkPolicy")
    assert policy["spec"]["podSelector"] == {} and policy["spec"]["policyTypes"] == ["Ingress"]
    same_namespace, outside = policy["spec"]["ingress"]
    assert same_namespace == {"from": [{"podSelector": {}}]}
    assert sorted(p["port"] for p in outside["ports"]) == [5001, 8000]


# -- least privilege -----------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_rbac_is_least_privilege(built, target):
    objects = built[target][1]
    kinds = {o["kind"] for o in objects}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding"}, "nothing cluster-wide"
    roles = [o for o in objects if o["kind"] == "Role"]
    assert roles
    for role in roles:
        for rule in role["rules"]:
            for key in ("verbs", "resources", "apiGroups"):
                assert "*" not in rule.get(key, []), f"{role['metadata']['name']}: wildcard in {key}"
            assert not rule.get("nonResourceURLs")
            if "secrets" in rule["resources"]:
                assert rule.get("resourceNames"), "Secrets only by name"
    (role,) = roles
    assert role["rules"] == [
        {
            "apiGroups": ["machinelearning.seldon.io"],
            "resources": ["seldondeployments"],
            "verbs": ["get", "create", "patch", "delete"],  # what sdk/kfkit/deploy/kube.py calls
        }
    ]
    for binding in objects_of(built, target, "RoleBinding"):
        assert binding["roleRef"]["kind"] == "Role"
        assert all(s["kind"] == "ServiceAccount" for s in binding["subjects"])


def test_rbac_check_catches_a_wildcard(tree, tmp_path):
    """The least-privilege test fails when someone widens the Role."""
    copy = tmp_path / "t"
    shutil.copytree(tree, copy)
    rbac = copy / "manifests" / "serving" / "rbac.yaml"
    rbac.write_text(rbac.read_text().replace('resources: ["seldondeployments"]', 'resources: ["*"]'))
    proc = kustomize(copy / "kustomize" / "base")
    assert proc.returncode == 0, proc.stderr
    built = {"base": (proc.stdout, [d for d in yaml.safe_load_all(proc.stdout) if d])}
    with pytest.raises(AssertionError, match="wildcard"):
        test_rbac_is_least_privilege(built, "base")


# -- secrets -------------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_planted_credentials_appear_only_in_generated_secret_data(built, overlay):
    """secretGenerator must put the values (base64) into the Secrets it generates: that is its
    job. So the check is: each planted value is there, in exactly the Secret it belongs to,
    and nowhere else in the build, in plain text or base64."""
    text, objects = built[f"overlays/{overlay}"]
    owners = {
        "AWS_ACCESS_KEY_ID": names.OBJECT_STORE_SECRET,
        "AWS_SECRET_ACCESS_KEY": names.OBJECT_STORE_SECRET,
        "RCLONE_CONFIG_S3_ACCESS_KEY_ID": STORAGE_SECRET,
        "RCLONE_CONFIG_S3_SECRET_ACCESS_KEY": STORAGE_SECRET,
    }
    for key, value in PLANTED.items():
        secret = one(built, f"overlays/{overlay}", "Secret", owners[key])
        assert base64.b64decode(secret["data"][key]).decode() == value
        encoded = base64.b64encode(value.encode()).decode()
        assert value not in text, f"{key} in plain text in the build"
        assert text.count(encoded) == 1, f"{key} appears outside its Secret"
        for obj in objects:
            if obj is not secret:
                assert encoded not in yaml.safe_dump(obj)


def test_base_and_templates_carry_no_credential_values(built):
    for obj in objects_of(built, "base", "Secret"):
        assert "stringData" not in obj
        for key, value in obj["data"].items():
            if "ACCESS_KEY" in key or "SECRET" in key:
                assert value == "", f"{obj['metadata']['name']}: {key} has a value in the template"
    for example in (REPO / "kustomize").rglob("*.env.example"):
        for line in example.read_text().splitlines():
            key, _, value = line.partition("=")
            if "ACCESS_KEY" in key or "SECRET" in key:
                assert value == "replace-me", f"{example}: {key}"


def test_real_env_files_are_git_ignored_and_required(tree, tmp_path):
    for example in (REPO / "kustomize").rglob("*.env.example"):
        real = example.with_name(example.name.removesuffix(".example"))
        ignored = subprocess.run(["git", "check-ignore", "-q", str(real)], cwd=REPO)
        assert ignored.returncode == 0, f"{real} is not git-ignored"
    # Without its env file an overlay refuses to build: no Secret with empty credentials.
    copy = tmp_path / "t"
    shutil.copytree(tree, copy)
    (copy / "kustomize" / "overlays" / "dev" / "pipelines" / "object-store.env").unlink()
    proc = kustomize(copy / "kustomize" / "overlays" / "dev")
    assert proc.returncode != 0 and "object-store.env" in proc.stderr


def check_compiled_pipeline_env(spec: dict, platform: dict) -> None:
    """Every task's executor, as the compiled spec itself lists them (root.dag.tasks ->
    components -> executorLabel, and deploymentSpec.executors), gets the object-store Secret
    by name and keys as env, and only that Secret; besides it only the model-signing key (a
    Secret mounted as a file, train only) and the trusted public keys (a ConfigMap mounted as
    files); nothing else refers to a ConfigMap."""
    platform = copy.deepcopy(platform)  # the mounted keys are checked, then set aside
    tasks = spec["root"]["dag"]["tasks"]
    assert tasks, "no tasks in root.dag"
    task_executors = {spec["components"][t["componentRef"]["name"]]["executorLabel"] for t in tasks.values()}
    assert task_executors == set(spec["deploymentSpec"]["executors"])
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert set(executors) == task_executors
    for label, executor in executors.items():
        for volume in executor.pop("secretAsVolume", []):
            assert (label, volume["secretName"]) == ("exec-train", signing.SIGNING_KEY_SECRET), volume
        for volume in executor.pop("configMapAsVolume", []):
            assert volume["configMapName"] == signing.TRUSTED_KEYS_CONFIG_MAP, f"{label}: {volume}"
        config_maps = [key for key in executor if "configmap" in key.lower()]
        assert not config_maps, f"{label}: {config_maps}"
        (secret,) = executor["secretAsEnv"]
        assert secret["secretName"] == names.OBJECT_STORE_SECRET
        assert {(m["secretKey"], m["envVar"]) for m in secret["keyToEnv"]} == set(
            names.OBJECT_STORE_SECRET_KEYS.items()
        )
    assert "configmap" not in yaml.safe_dump(platform).lower(), "the pipeline refers to a ConfigMap"


def _minimal_compiled_pipeline(tasks: list[str]) -> tuple[dict, dict]:
    """The parts of a compiled spec check_compiled_pipeline_env reads, as kfp 2 writes them."""
    secret = {
        "secretName": names.OBJECT_STORE_SECRET,
        "secretNameParameter": {"runtimeValue": {"constant": names.OBJECT_STORE_SECRET}},
        "keyToEnv": [{"secretKey": k, "envVar": v} for k, v in names.OBJECT_STORE_SECRET_KEYS.items()],
    }
    spec = {
        "root": {"dag": {"tasks": {t: {"componentRef": {"name": f"comp-{t}"}} for t in tasks}}},
        "components": {f"comp-{t}": {"executorLabel": f"exec-{t}"} for t in tasks},
        "deploymentSpec": {"executors": {f"exec-{t}": {} for t in tasks}},
    }
    executors = {f"exec-{t}": {"secretAsEnv": [dict(secret)]} for t in tasks}
    return spec, {"platforms": {"kubernetes": {"deploymentSpec": {"executors": executors}}}}


def test_compiled_pipeline_check_catches_a_config_map_and_a_task_without_the_secret():
    """The check is not a rubber stamp: it passes a spec like the compiled one and fails one
    that injects a ConfigMap or leaves a task without the Secret."""
    check_compiled_pipeline_env(*_minimal_compiled_pipeline(["ingest", "train"]))
    spec, platform = _minimal_compiled_pipeline(["ingest", "train"])
    platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-train"]["configMapAsEnv"] = [
        {"configMapName": "kfkit-settings", "keyToEnv": [{"configMapKey": "K", "envVar": "K"}]}
    ]
    with pytest.raises(AssertionError, match="configMapAsEnv"):
        check_compiled_pipeline_env(spec, platform)
    spec, platform = _minimal_compiled_pipeline(["ingest", "train"])
    del platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-train"]
    with pytest.raises(AssertionError):
        check_compiled_pipeline_env(spec, platform)


def test_compiled_pipeline_reads_credentials_from_the_secret_never_values(tmp_path, monkeypatch):
    """Compile with planted credentials in the environment: the YAML names the Secret and its
    keys on every task, refers to no ConfigMap, has no credential parameter, and carries no
    value."""
    from kfkit.catalog import compile_all

    for key, value in PLANTED.items():
        monkeypatch.setenv(key, value)
    written = compile_all(out_root=tmp_path)
    for path in written:
        text = path.read_text()
        for value in PLANTED.values():
            assert value not in text and base64.b64encode(value.encode()).decode() not in text, path
    pipeline_path = tmp_path / "pipelines" / "compiled" / "training.yaml"
    spec, platform = list(yaml.safe_load_all(pipeline_path.read_text()))
    inputs = spec["root"]["inputDefinitions"]["parameters"]
    words = ("access_key", "secret", "password", "token", "credential")
    assert not [n for n in inputs if any(w in n.lower() for w in words)]
    check_compiled_pipeline_env(spec, platform)
