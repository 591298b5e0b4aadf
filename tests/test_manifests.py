"""manifests/ and kustomize/: every overlay builds with the real `kubectl kustomize`, every
object validates against the Kubernetes schemas (kubernetes-validate, offline) or, for
SeldonDeployments, against the fields kfkit builds with their pod spec as a Kubernetes PodSpec;
RBAC grants exactly the calls Argo's executor, KFP's driver and launcher and push make; every pod
kfkit defines passes the Pod Security Standards' "restricted" profile; egress is explicit;
credentials planted in the git-ignored env files appear only inside the generated Secrets' data,
and `kfkit manifests` refuses a build whose credentials are still placeholders.

The real `.env` files are never needed: each build runs on a temporary copy of manifests/
and kustomize/ where the test writes the env files from the shipped `*.env.example`s with
planted values.
"""

from __future__ import annotations

import base64
import copy
import json
import shutil
import subprocess
import uuid
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from conftest import REPO, error_line, run_kfkit
from pod_security_standards import pod_specs, restricted_violations

from kfkit import names, signing
from kfkit.deploy.seldon import STORAGE_SECRET, changed, plan, predictor, seldon_deployment

KUBERNETES_VERSION = "1.32.0"  # the kubectl on these machines; kubernetes-validate ships it
OVERLAYS = sorted(p.name for p in (REPO / "kustomize" / "overlays").iterdir() if p.is_dir())
TARGETS = ["base", *(f"overlays/{name}" for name in OVERLAYS)]
EXAMPLE_SELDON_DEPLOYMENT = REPO / "manifests" / "examples" / "seldondeployment.yaml"


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
        # strict: unknown fields are errors, as the API server's field validation would say
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    # No SeldonDeployment: push owns it (see test_seldon_deployment_has_one_owner).
    assert kinds == {
        "Namespace",
        "ServiceAccount",
        "Secret",
        "ConfigMap",
        "Role",
        "RoleBinding",
        "NetworkPolicy",
    }  # ConfigMap: the trusted model keys (public)


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
    # The pod spec inside a SeldonDeployment is held to the Kubernetes PodSpec schema.
    deployment = seldon_deployment("m", "1", "s3://models/m/1")
    container = deployment["spec"]["predictors"][0]["componentSpecs"][0]["spec"]["containers"][0]
    container["securityContext"]["readOnlyRootFileSystem"] = True  # typo: FileSystem
    with pytest.raises(kubernetes_validate.ValidationError):
        check_seldon_deployment(deployment)


def _seldon_schema() -> dict:
    """The fields kfkit's SeldonDeployments use (sdk/kfkit/deploy/seldon.py), closed: a field
    outside this list is a mistake, not a feature. The pod spec of each componentSpec is a
    Kubernetes PodSpec, validated by check_seldon_deployment against the Kubernetes schemas."""

    def closed(properties: dict, required: list[str] | None = None) -> dict:
        return {
            "type": "object",
            "properties": properties,
            "required": required or list(properties),
            "additionalProperties": False,
        }

    string = {"type": "string", "minLength": 1}
    labels = {"type": "object", "additionalProperties": {"type": "string"}}
    graph = closed(
        {
            "name": string,
            "type": {"const": "MODEL"},
            "modelUri": {"type": "string", "pattern": r"^s3://[a-z0-9.-]+/.+"},
            "envSecretRefName": string,
            "children": {"type": "array", "maxItems": 0},
        }
    )
    predictor_schema = closed(
        {
            "name": string,
            "replicas": {"type": "integer", "minimum": 1},
            "traffic": {"type": "integer", "minimum": 0, "maximum": 100},
            "shadow": {"const": True},
            "labels": labels,
            "componentSpecs": {
                "type": "array",
                "minItems": 1,
                # no metadata.name: Seldon then names the Deployment <sdep>-<predictor>-0-model
                "items": closed({"spec": {"type": "object"}}),
            },
            "graph": graph,
        },
        ["name", "replicas", "labels", "componentSpecs", "graph"],
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
                    "predictors": {"type": "array", "items": predictor_schema},
                }
            ),
        }
    )


def check_seldon_deployment(obj: dict) -> None:
    """The closed schema above, then every componentSpec's pod spec as a Kubernetes Pod (strict)."""
    import jsonschema

    try:
        jsonschema.validate(obj, _seldon_schema())
    except jsonschema.ValidationError as exc:
        raise kubernetes_validate.ValidationError(exc, "seldon") from None
    for where, spec in pod_specs(obj):
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "check"}, "spec": spec}
        try:
            kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            exc.add_note(f"in {where}")
            raise


def _what_push_builds() -> list[dict]:
    """What push sends: a first version (replace), and a canary and a shadow on top of it."""
    first = seldon_deployment("penguins", "7", "s3://models/penguins/7", namespace="x")
    built = [first]
    for strategy in ("canary", "shadow"):
        new = predictor("penguins", "8", "s3://models/penguins/8")
        predictors, candidate = plan(first, strategy, new, traffic=10)
        built.append(changed(first, "penguins", "x", predictors, candidate, strategy))
    return built


def test_what_push_builds_fits_the_seldon_schema():
    for deployment in _what_push_builds():
        check_seldon_deployment(deployment)


def test_example_seldon_deployment_is_what_push_builds():
    shipped = yaml.safe_load(EXAMPLE_SELDON_DEPLOYMENT.read_text())
    built_by_push = seldon_deployment("penguins", "1", "s3://models/penguins/1")
    del built_by_push["metadata"]["namespace"]  # push sets its --namespace
    assert shipped == built_by_push
    check_seldon_deployment(shipped)


def test_seldon_deployment_has_one_owner(built):
    """Push creates and patches the SeldonDeployment (canary, shadow, promote, rollback, with
    history in an annotation): no kustomize build may carry one too, or `kubectl apply -k` and
    GitOps tools would undo every rollout. The example is in no kustomization."""
    for target in TARGETS:
        assert not objects_of(built, target, "SeldonDeployment"), target
    listed = [
        resource
        for kustomization in [*(REPO / "manifests").rglob("kustomization.yaml")]
        for resource in yaml.safe_load(kustomization.read_text()).get("resources", [])
    ]
    assert all("seldondeployment" not in resource for resource in listed), listed
    assert not list((REPO / "manifests" / "examples").glob("kustomization.y*ml"))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_has_its_own_namespaces_and_labels(built, overlay):
    target = f"overlays/{overlay}"
    namespaces = {o["metadata"].get("namespace") for o in built[target][1]} - {None}
    assert len(namespaces) == 2, "serving and pipelines are different namespaces"
    serving = one(built, target, "Namespace")["metadata"]["name"]
    assert serving == one(built, target, "Role", "kfkit-seldon-deployer")["metadata"]["namespace"]
    for obj in built[target][1]:
        labels = obj["metadata"]["labels"]
        assert labels["kfkit.io/environment"] == overlay and labels["app.kubernetes.io/part-of"] == "kfkit"


def test_overlays_use_different_namespaces(built):
    namespaces = [
        frozenset(o["metadata"].get("namespace") for o in built[f"overlays/{name}"][1]) for name in OVERLAYS
    ]
    assert len(set(namespaces)) == len(OVERLAYS)


# -- cross-namespace references ------------------------------------------------------------


SERVING_ROLE = "kfkit-seldon-deployer"
INGRESS_POLICY = "kfkit-serving-ingress"
EGRESS_POLICY = "kfkit-serving-egress"
PIPELINE_TASKS_POLICY = "kfkit-pipeline-tasks-ingress"


@pytest.mark.parametrize("target", TARGETS)
def test_references_between_namespaces_point_at_the_built_names(built, target):
    runner = one(built, target, "ServiceAccount", names.PIPELINE_RUNNER_SERVICE_ACCOUNT)
    pipelines_ns = runner["metadata"]["namespace"]
    serving_ns = one(built, target, "Namespace")["metadata"]["name"]
    assert pipelines_ns != serving_ns
    # Each RoleBinding binds the Role of its own namespace to the runner, wherever it lives.
    for role_name, namespace in ((SERVING_ROLE, serving_ns), (RUNNER_ROLE, pipelines_ns)):
        role = one(built, target, "Role", role_name)
        assert role["metadata"]["namespace"] == namespace
        (binding,) = [
            b for b in objects_of(built, target, "RoleBinding") if b["roleRef"]["name"] == role_name
        ]
        assert binding["metadata"]["namespace"] == namespace
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": role_name,
        }
        assert binding["subjects"] == [
            {
                "kind": "ServiceAccount",
                "name": names.PIPELINE_RUNNER_SERVICE_ACCOUNT,
                "namespace": pipelines_ns,
            }
        ]
    for name in (INGRESS_POLICY, EGRESS_POLICY):
        assert one(built, target, "NetworkPolicy", name)["metadata"]["namespace"] == serving_ns
    allowed = [
        peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for rule in one(built, target, "NetworkPolicy", INGRESS_POLICY)["spec"]["ingress"]
        for peer in rule["from"]
        if "namespaceSelector" in peer
    ]
    assert sorted(allowed) == sorted(["istio-system", pipelines_ns])
    # The storage Secret push's SeldonDeployments name exists in the serving namespace, with
    # rclone's six keys.
    assert (
        seldon_deployment("m", "1", "s3://models/m/1")["spec"]["predictors"][0]["graph"]["envSecretRefName"]
        == STORAGE_SECRET
    )
    rclone = one(built, target, "Secret", STORAGE_SECRET)
    assert rclone["metadata"]["namespace"] == serving_ns
    assert set(rclone["data"]) == {
        f"RCLONE_CONFIG_S3_{k}"
        for k in ("TYPE", "PROVIDER", "ENV_AUTH", "ACCESS_KEY_ID", "SECRET_ACCESS_KEY", "ENDPOINT")
    }
    assert base64.b64decode(rclone["data"]["RCLONE_CONFIG_S3_TYPE"]) == b"s3"
    # The pipeline's (read-write) Secret exists only where runs execute, with the keys it reads.
    store = one(built, target, "Secret", names.OBJECT_STORE_SECRET)
    assert store["metadata"]["namespace"] == pipelines_ns
    assert set(store["data"]) == set(names.OBJECT_STORE_SECRET_KEYS)


def test_serving_never_uses_the_pipelines_read_write_credentials(built):
    """Serving reads models with its own (read-only) Secret: nothing in the serving namespace
    and nothing push builds names the pipeline's object-store Secret."""
    for target in TARGETS:
        serving_ns = one(built, target, "Namespace")["metadata"]["name"]
        for obj in built[target][1]:
            if obj["metadata"].get("namespace") == serving_ns or obj["kind"] == "Namespace":
                assert names.OBJECT_STORE_SECRET not in yaml.safe_dump(obj), obj["metadata"]["name"]
    for deployment in _what_push_builds():
        text = yaml.safe_dump(deployment)
        assert names.OBJECT_STORE_SECRET not in text and STORAGE_SECRET in text
        assert not any(key in text for key in names.OBJECT_STORE_SECRET_KEYS)


def test_network_policy_admits_only_seldon_ports_from_outside(built):
    policy = one(built, "base", "NetworkPolicy", INGRESS_POLICY)
    assert policy["spec"]["podSelector"] == {} and policy["spec"]["policyTypes"] == ["Ingress"]
    same_namespace, outside = policy["spec"]["ingress"]
    assert same_namespace == {"from": [{"podSelector": {}}]}
    assert sorted(p["port"] for p in outside["ports"]) == [5001, 8000]


@pytest.mark.parametrize("target", TARGETS)
def test_egress_is_dns_and_the_object_store_only(built, target):
    """Every serving pod is selected and may reach exactly the cluster DNS (53 UDP/TCP) and the
    object store (KFP's MinIO, 9000): each rule names its peer and ports, no open `to`."""
    policy = one(built, target, "NetworkPolicy", EGRESS_POLICY)
    assert policy["spec"]["podSelector"] == {} and policy["spec"]["policyTypes"] == ["Egress"]
    allowed = set()
    for rule in policy["spec"]["egress"]:
        assert rule.get("to") and rule.get("ports"), f"open egress rule {rule}"
        for peer in rule["to"]:
            assert "ipBlock" not in peer
            namespace = peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
            pods = tuple(sorted(peer["podSelector"]["matchLabels"].items()))
            for port in rule["ports"]:
                allowed.add((namespace, pods, port["protocol"], port["port"]))
    assert allowed == {
        ("kube-system", (("k8s-app", "kube-dns"),), "UDP", 53),
        ("kube-system", (("k8s-app", "kube-dns"),), "TCP", 53),
        ("kubeflow", (("app", "minio"),), "TCP", 9000),
    }
    # Ingress and egress are both restricted for every pod in the namespace.
    types = {
        t
        for p in objects_of(built, target, "NetworkPolicy")
        if p["spec"]["podSelector"] == {}
        for t in p["spec"]["policyTypes"]
    }
    assert types == {"Ingress", "Egress"}


@pytest.mark.parametrize("target", TARGETS)
def test_kfkit_task_pods_accept_no_inbound_and_other_pods_are_untouched(built, target):
    """The pipelines namespace's policy selects exactly the pods carrying the label every
    compiled kfkit task sets (and so not KFP's own pods in `kubeflow`), and admits nothing."""
    policy = one(built, target, "NetworkPolicy", PIPELINE_TASKS_POLICY)
    runner = one(built, target, "ServiceAccount", names.PIPELINE_RUNNER_SERVICE_ACCOUNT)
    assert policy["metadata"]["namespace"] == runner["metadata"]["namespace"]
    assert policy["spec"]["podSelector"] == {
        "matchExpressions": [{"key": names.TASK_POD_LABEL, "operator": "Exists"}]
    }
    # Ingress with no rule admits nothing (`ingress: []` would be stored as absent).
    assert policy["spec"]["policyTypes"] == ["Ingress"] and "ingress" not in policy["spec"]
    _, platform = yaml.safe_load_all((REPO / "pipelines" / "compiled" / "training.yaml").read_text())
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    labelled = {e["podMetadata"]["labels"].get(names.TASK_POD_LABEL) for e in executors.values()}
    assert labelled == {
        "resolve_source",
        "ingest",
        "resolve_baseline",
        "validate",
        "train",
        "evaluate",
        "push",
    }


# -- least privilege -----------------------------------------------------------------------

RUNNER_ROLE = "kfkit-pipeline-runner"
# What the pipeline runner's pods call on the API server in the pipelines namespace, read in the
# upstream sources; (apiGroup, resource, verb, resourceName or None for any):
RUNNER_CALLS = {
    # Argo Workflows' executor (>= 3.4) reports each step's outputs as a WorkflowTaskResult:
    # argoproj/argo-workflows v4.1.2 (f016ad89), manifests/quick-start/base/executor/emissary/
    # executor-role.yaml and docs/workflow-rbac.md ("The minimum for the executor to function").
    # KFP's manifests pin Argo v4.0.8 (manifests/kustomize/third-party/argo/base/kustomization.yaml).
    ("argoproj.io", "workflowtaskresults", "create", None),
    ("argoproj.io", "workflowtaskresults", "patch", None),
    # KFP v2's driver and launcher, kubeflow/pipelines 2.17.0 (7b70c7b9), backend/src/v2/:
    # driver/k8s.go reads its own pod (UID of the execution it publishes),
    # component/launcher_v2.go retryIndexFromPodAnnotation reads its own pod's annotation;
    ("", "pods", "get", None),
    # config/env.go FromConfigMap reads ConfigMap kfp-launcher (driver/root_dag.go,
    # component/importer_launcher.go);
    ("", "configmaps", "get", "kfp-launcher"),
    # objectstore/object_store.go getS3BucketCredential reads the artifact store's Secret, named
    # mlpipeline-minio-artifact by config/env.go getDefaultMinioSessionInfo.
    ("", "secrets", "get", "mlpipeline-minio-artifact"),
}
# What push calls in the serving namespace (sdk/kfkit/deploy/kube.py: get, create, merge-patch,
# and delete of an object its own failed first rollout created; get of the operator's
# Deployments while a rollout waits, plus list and watch for `kubectl rollout status`).
PUSH_CALLS = {
    ("machinelearning.seldon.io", "seldondeployments", verb, None)
    for verb in ("get", "create", "patch", "delete")
} | {("apps", "deployments", verb, None) for verb in ("get", "list", "watch")}


def granted(objects: list[dict], account: str, account_ns: str) -> dict[str, set[tuple]]:
    """namespace -> every (apiGroup, resource, verb, resourceName) the ServiceAccount is granted,
    following RoleBindings and ClusterRoleBindings to the roles they name, as RBAC would."""
    roles = {
        (o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): o
        for o in objects
        if o["kind"] in ("Role", "ClusterRole")
    }
    grants: dict[str, set[tuple]] = {}
    for binding in objects:
        if binding["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        namespace = binding["metadata"].get("namespace", "*cluster*")
        # A RoleBinding's ServiceAccount subject without a namespace is in the binding's own
        # (kubernetes pkg/registry/rbac/validation/rule.go appliesToUser).
        subjects = [
            (s["kind"], s["name"], s.get("namespace") or namespace) for s in binding.get("subjects", [])
        ]
        if ("ServiceAccount", account, account_ns) not in subjects:
            continue
        ref = binding["roleRef"]
        role = roles[(ref["kind"], namespace if ref["kind"] == "Role" else None, ref["name"])]
        for rule in role["rules"]:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    for verb in rule["verbs"]:
                        for name in rule.get("resourceNames") or [None]:
                            grants.setdefault(namespace, set()).add((group, resource, verb, name))
    return grants


@pytest.mark.parametrize("target", TARGETS)
def test_runner_is_granted_exactly_the_calls_argo_kfp_and_push_make(built, target):
    """Done-when 3: the built RBAC gives the pipeline runner the verbs Argo's executor and KFP's
    driver and launcher use in its own namespace, push's in the serving namespace, and nothing
    else anywhere; Secrets and ConfigMaps only by name."""
    objects = built[target][1]
    pipelines_ns = one(built, target, "ServiceAccount", names.PIPELINE_RUNNER_SERVICE_ACCOUNT)["metadata"][
        "namespace"
    ]
    serving_ns = one(built, target, "Namespace")["metadata"]["name"]
    grants = granted(objects, names.PIPELINE_RUNNER_SERVICE_ACCOUNT, pipelines_ns)
    assert grants == {pipelines_ns: RUNNER_CALLS, serving_ns: PUSH_CALLS}


@pytest.mark.parametrize("target", TARGETS)
def test_rbac_is_least_privilege(built, target):
    objects = built[target][1]
    kinds = {o["kind"] for o in objects}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding"}, "nothing cluster-wide"
    roles = [o for o in objects if o["kind"] == "Role"]
    assert {r["metadata"]["name"] for r in roles} == {RUNNER_ROLE, SERVING_ROLE}
    for role in roles:
        for rule in role["rules"]:
            for key in ("verbs", "resources", "apiGroups", "resourceNames"):
                assert "*" not in rule.get(key, []), f"{role['metadata']['name']}: wildcard in {key}"
            assert not any("/" in r for r in rule["resources"]), "no subresources (pods/exec, ...)"
            assert not rule.get("nonResourceURLs")
            if {"secrets", "configmaps"} & set(rule["resources"]):
                assert rule.get("resourceNames"), "Secrets and ConfigMaps only by name"
    for binding in objects_of(built, target, "RoleBinding"):
        assert binding["roleRef"]["kind"] == "Role"
        assert all(s["kind"] == "ServiceAccount" for s in binding["subjects"])


@pytest.mark.parametrize(
    ("path", "old", "new", "match"),
    [
        ("serving/rbac.yaml", 'resources: ["seldondeployments"]', 'resources: ["*"]', "wildcard"),
        ("pipelines/rbac.yaml", 'verbs: ["create", "patch"]', 'verbs: ["*"]', "wildcard"),
        ("pipelines/rbac.yaml", '    resourceNames: ["mlpipeline-minio-artifact"]\n', "", "only by name"),
    ],
    ids=["serving-resource-wildcard", "runner-verb-wildcard", "runner-any-secret"],
)
def test_rbac_checks_catch_a_widened_role(tree, tmp_path, path, old, new, match):
    """The least-privilege and exact-grant tests fail when someone widens a Role."""
    copy = tmp_path / "t"
    shutil.copytree(tree, copy)
    rbac = copy / "manifests" / path
    assert old in rbac.read_text()
    rbac.write_text(rbac.read_text().replace(old, new))
    proc = kustomize(copy / "kustomize" / "base")
    assert proc.returncode == 0, proc.stderr
    built = {"base": (proc.stdout, [d for d in yaml.safe_load_all(proc.stdout) if d])}
    with pytest.raises(AssertionError, match=match):
        test_rbac_is_least_privilege(built, "base")
    with pytest.raises(AssertionError):
        test_runner_is_granted_exactly_the_calls_argo_kfp_and_push_make(built, "base")


# -- pod security ------------------------------------------------------------------------


@pytest.mark.parametrize("target", TARGETS)
def test_serving_namespace_has_pod_security_labels(built, target):
    """Pod Security admission labels (https://kubernetes.io/docs/concepts/security/
    pod-security-admission/): "restricted" warned and audited; "baseline" enforced, pinned,
    because Seldon Core v1's operator adds containers "restricted" refuses (see
    manifests/serving/namespace.yaml)."""
    labels = one(built, target, "Namespace")["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "baseline"
    assert labels["pod-security.kubernetes.io/enforce-version"] == f"v{KUBERNETES_VERSION.rsplit('.', 1)[0]}"
    assert labels["pod-security.kubernetes.io/warn"] == "restricted"
    assert labels["pod-security.kubernetes.io/audit"] == "restricted"


def test_every_pod_kfkit_defines_passes_restricted(built):
    """Done-when 5: every pod template, in every build and in every SeldonDeployment push
    sends (and the shipped example), passes the "restricted" profile of the Pod Security
    Standards (tests/pod_security_standards.py, from
    https://kubernetes.io/docs/concepts/security/pod-security-standards/). The builds carry no
    workload of their own (kinds checked in test_every_built_object_validates): push's
    SeldonDeployments are where kfkit's pods come from."""
    found = []
    for target in TARGETS:
        for obj in built[target][1]:
            found += [(f"{target}: {where}", spec) for where, spec in pod_specs(obj)]
    example = yaml.safe_load(EXAMPLE_SELDON_DEPLOYMENT.read_text())
    for obj in [example, *_what_push_builds()]:
        found += list(pod_specs(obj))
    assert len(found) >= 5  # example 1 + replace 1 + canary 2 + shadow 2
    for where, spec in found:
        assert restricted_violations(spec) == [], where


def test_model_pod_is_hardened_beyond_restricted():
    """What "restricted" does not require but a model server should have: a read-only root
    filesystem (with /tmp the one writable emptyDir, for gunicorn and seldon-core's metrics) and
    no service-account token, since it never calls the API server."""
    for deployment in _what_push_builds():
        for where, spec in pod_specs(deployment):
            assert spec["automountServiceAccountToken"] is False, where
            (container,) = spec["containers"]
            assert container["securityContext"]["readOnlyRootFilesystem"] is True, where
            volumes = {v["name"]: v for v in spec["volumes"]}
            writable = [m for m in container["volumeMounts"] if not m.get("readOnly")]
            assert [m["mountPath"] for m in writable] == ["/tmp"], where
            assert set(volumes[writable[0]["name"]]) == {"name", "emptyDir"}, where


PSS_BREAKS = {
    "privileged": lambda s: s["containers"][0]["securityContext"].update(privileged=True),
    "escalation": lambda s: s["containers"][0]["securityContext"].pop("allowPrivilegeEscalation"),
    "capabilities": lambda s: s["containers"][0]["securityContext"].pop("capabilities"),
    "add-capability": lambda s: s["containers"][0]["securityContext"]["capabilities"].update(
        add=["SYS_ADMIN"]
    ),
    "root": lambda s: s["containers"][0]["securityContext"].update(runAsNonRoot=False),
    "uid-0": lambda s: s["securityContext"].update(runAsUser=0),
    "seccomp": lambda s: s["securityContext"].pop("seccompProfile"),
    "unconfined": lambda s: s["containers"][0]["securityContext"].update(
        seccompProfile={"type": "Unconfined"}
    ),
    "host-network": lambda s: s.update(hostNetwork=True),
    "host-path": lambda s: s["volumes"].append({"name": "h", "hostPath": {"path": "/"}}),
    "host-port": lambda s: s["containers"][0].update(ports=[{"containerPort": 9000, "hostPort": 9000}]),
    "sysctl": lambda s: s["securityContext"].update(sysctls=[{"name": "kernel.msgmax", "value": "1"}]),
    # A container Seldon's operator adds without a securityContext (its storage initializer).
    "init-container": lambda s: s.update(initContainers=[{"name": "model-model-initializer", "image": "i"}]),
}


@pytest.mark.parametrize("change", sorted(PSS_BREAKS))
def test_restricted_check_catches_each_control(change):
    """The check is not a rubber stamp: each control it implements refuses a pod breaking it."""
    spec = seldon_deployment("m", "1", "s3://models/m/1")["spec"]["predictors"][0]["componentSpecs"][0][
        "spec"
    ]
    assert restricted_violations(spec) == []
    PSS_BREAKS[change](spec)
    assert restricted_violations(spec), change


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
            if not line.startswith("#") and ("ACCESS_KEY" in key or "SECRET" in key):
                assert value == "replace-me", f"{example}: {key}"


def test_serving_key_policy_only_reads_the_models_bucket():
    """The policy the serving env examples tell you to give serving's key: list and get on
    the models bucket, nothing that writes or deletes, no other bucket."""
    policy = json.loads((REPO / "manifests" / "serving" / "models-read-only-policy.json").read_text())
    allowed = set()
    for statement in policy["Statement"]:
        assert statement["Effect"] == "Allow" and set(statement) == {"Sid", "Effect", "Action", "Resource"}
        allowed |= {(a, r) for a in statement["Action"] for r in statement["Resource"]}
    bucket = f"arn:aws:s3:::{names.MODELS_BUCKET}"
    assert allowed == {
        ("s3:GetBucketLocation", bucket),
        ("s3:ListBucket", bucket),
        ("s3:GetObject", f"{bucket}/*"),
    }
    for example in (REPO / "kustomize").rglob("seldon-rclone.env.example"):
        assert "READ-ONLY" in example.read_text() and "models-read-only-policy.json" in example.read_text()


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


def test_kfkit_manifests_refuses_placeholders_and_names_the_env_file(tree, tmp_path):
    """An overlay whose .env files were copied from the examples and never edited builds
    silently with kustomize; `kfkit manifests` refuses it with one line naming the file and
    line still holding 'replace-me'."""
    copy = tmp_path / "t"
    shutil.copytree(tree, copy)
    overlay = copy / "kustomize" / "overlays" / "dev"
    for example in overlay.rglob("*.env.example"):
        shutil.copy(example, example.with_name(example.name.removesuffix(".example")))
    assert kustomize(overlay).returncode == 0, "kustomize alone accepts the placeholders"
    proc = run_kfkit(["manifests", str(overlay)], env=None, timeout=120)
    line = error_line(proc)
    rclone_env = overlay / "serving" / "seldon-rclone.env"
    assert line.startswith(f"kfkit: error: {rclone_env} line ")
    number = int(line.split(" line ", 1)[1].split(":", 1)[0])
    key = rclone_env.read_text().splitlines()[number - 1].split("=", 1)[0]
    assert f"{key} is still the placeholder 'replace-me'" in line
    assert "(and 3 more)" in line  # two keys in each of the two .env files
    assert proc.stdout == "", "nothing to apply is printed"


def test_kfkit_manifests_refuses_empty_credentials_and_stray_placeholders(tree, tmp_path):
    """The base (templates with empty credentials) is refused too, and so is a placeholder left
    in any other field of any object."""
    proc = run_kfkit(["manifests", str(tree / "kustomize" / "base")], env=None, timeout=120)
    line = error_line(proc)
    assert f"{tree / 'kustomize' / 'base'}: Secret " in line and " is empty;" in line
    copy = tmp_path / "t"
    shutil.copytree(tree, copy)
    policy = copy / "manifests" / "serving" / "networkpolicy.yaml"
    policy.write_text(policy.read_text().replace("app: minio", "app: replace-me"))
    proc = run_kfkit(["manifests", str(copy / "kustomize" / "overlays" / "prod")], env=None, timeout=120)
    assert (
        f"NetworkPolicy {EGRESS_POLICY} in namespace kfkit-serving-prod: "
        "spec.egress[1].to[0].podSelector.matchLabels.app is still the placeholder 'replace-me'"
    ) in error_line(proc)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kfkit_manifests_prints_the_kustomize_build_when_filled(built, tree, overlay):
    proc = run_kfkit(["manifests", str(tree / "kustomize" / "overlays" / overlay)], env=None, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == built[f"overlays/{overlay}"][0]


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
