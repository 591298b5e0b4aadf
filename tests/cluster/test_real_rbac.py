"""RBAC of kfkit's manifests enforced by a real API server (dev overlay applied with `kubectl apply
-k`): the pipeline runner may make every call Argo's executor, KFP's driver and launcher and push
make, and nothing else in a sample of neighbours. Asked twice: `kubectl auth can-i --as=...`
(the authorizer's answer) and real requests with a TokenRequest token of the ServiceAccount."""

from __future__ import annotations

import pytest
import yaml
from conftest import REPO
from test_manifests import PUSH_CALLS, RUNNER_CALLS

from kfkit import names
from kfkit.deploy import seldon
from kfkit.deploy.kube import SeldonTarget, custom_objects_api
from kfkit.deploy.request import DeploymentRequest
from kfkit.errors import KfkitError

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

RUNNER = names.PIPELINE_RUNNER_SERVICE_ACCOUNT


def can_i(control_plane, namespace: str, verb: str, resource: str, account_ns: str) -> bool:
    """`kubectl auth can-i VERB RESOURCE` as the runner; RESOURCE may carry flags after a space
    (`--subresource=status`)."""
    proc = control_plane.kubectl(
        "auth",
        "can-i",
        verb,
        *resource.split(),
        "-n",
        namespace,
        f"--as=system:serviceaccount:{account_ns}:{RUNNER}",
        check=False,
    )
    assert proc.stdout.strip() in ("yes", "no"), proc.stdout + proc.stderr
    return proc.stdout.strip() == "yes"


def resource_arg(group: str, resource: str, name: str | None) -> str:
    qualified = f"{resource}.{group}" if group else resource
    return f"{qualified}/{name}" if name else qualified


def test_real_rbac_allows_every_call_kfkit_makes(control_plane, dev_overlay):
    pipelines_ns, serving_ns = dev_overlay
    calls = [(pipelines_ns, call) for call in sorted(RUNNER_CALLS, key=str)]
    calls += [(serving_ns, call) for call in sorted(PUSH_CALLS, key=str)]
    refused = [
        (ns, call)
        for ns, call in calls
        if not can_i(control_plane, ns, call[2], resource_arg(call[0], call[1], call[3]), pipelines_ns)
    ]
    assert refused == []


DENIED = [
    # (which namespace: "pipelines" | "serving" | "other", verb, resource)
    ("pipelines", "list", "secrets"),
    ("pipelines", "get", f"secrets/{names.OBJECT_STORE_SECRET}"),  # tasks get it as env, not via the API
    ("pipelines", "get", "configmaps/kfkit-trusted-model-keys"),
    ("pipelines", "list", "pods"),
    ("pipelines", "create", "pods"),
    ("pipelines", "delete", "pods"),
    ("pipelines", "get", "workflowtaskresults.argoproj.io"),
    ("pipelines", "create", "workflows.argoproj.io"),
    ("pipelines", "create", "seldondeployments.machinelearning.seldon.io"),
    ("serving", "list", "seldondeployments.machinelearning.seldon.io"),
    ("serving", "update", "seldondeployments.machinelearning.seldon.io"),
    ("serving", "patch", "seldondeployments.machinelearning.seldon.io --subresource=status"),
    ("serving", "get", f"secrets/{seldon.STORAGE_SECRET}"),
    # The operator's Deployments: read-only, in the serving namespace only.
    ("serving", "create", "deployments.apps"),
    ("serving", "patch", "deployments.apps"),
    ("serving", "update", "deployments.apps"),
    ("serving", "delete", "deployments.apps"),
    ("serving", "patch", "deployments.apps --subresource=scale"),
    ("serving", "get", "replicasets.apps"),
    ("pipelines", "get", "deployments.apps"),
    ("other", "get", "deployments.apps"),
    ("other", "list", "deployments.apps"),
    ("other", "watch", "deployments.apps"),
    ("serving", "create", "pods"),
    ("other", "get", "seldondeployments.machinelearning.seldon.io"),
    ("other", "create", "seldondeployments.machinelearning.seldon.io"),
    ("", "delete", "namespaces"),
    ("", "list", "nodes"),
    ("", "create", "clusterrolebindings.rbac.authorization.k8s.io"),
]


@pytest.mark.parametrize(
    ("where", "verb", "resource"),
    DENIED,
    ids=[" ".join(d).strip().replace(" --subresource=", "/") for d in DENIED],
)
def test_real_rbac_denies_the_rest(control_plane, dev_overlay, where, verb, resource):
    pipelines_ns, serving_ns = dev_overlay
    namespace = {
        "pipelines": pipelines_ns,
        "serving": serving_ns,
        "other": "kfkit-serving-prod",
        "": "default",
    }
    assert not can_i(control_plane, namespace[where], verb, resource, pipelines_ns)


@pytest.fixture(scope="module")
def runner_kubeconfig(control_plane, dev_overlay):
    pipelines_ns, _ = dev_overlay
    return control_plane.token_kubeconfig(pipelines_ns, RUNNER)


def as_runner(control_plane, runner_kubeconfig, *args: str, input: str | None = None):
    return control_plane.kubectl(*args, input=input, check=False, kubeconfig=runner_kubeconfig)


def test_real_runner_token_makes_the_calls_of_argos_executor_and_kfps_driver(
    control_plane, dev_overlay, runner_kubeconfig
):
    """What a run's pods do with the runner's token, against objects an admin created as Kubeflow
    would have: read their own pod, the kfp-launcher ConfigMap and the artifact store's Secret,
    create and patch a WorkflowTaskResult; and not read a pod list or kfkit's own Secret."""
    pipelines_ns, _ = dev_overlay
    ns = ["-n", pipelines_ns]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "run-step", "namespace": pipelines_ns},
        "spec": {"serviceAccountName": RUNNER, "containers": [{"name": "main", "image": "busybox"}]},
    }
    launcher = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "kfp-launcher", "namespace": pipelines_ns},
    }
    artifact_secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "mlpipeline-minio-artifact", "namespace": pipelines_ns},
    }
    control_plane.apply_objects([pod, launcher, artifact_secret])

    for args in (
        ("get", "pod", "run-step"),
        ("get", "configmap", "kfp-launcher"),
        ("get", "secret", "mlpipeline-minio-artifact"),
    ):
        proc = as_runner(control_plane, runner_kubeconfig, *args, *ns)
        assert proc.returncode == 0, f"{args}: {proc.stderr}"

    # Argo's executor creates its WorkflowTaskResult, then merge-patches it without reading it
    # (`kubectl patch` would read it first): the same two requests through the Python client.
    argo = custom_objects_api(f"kubeconfig:{runner_kubeconfig}")
    result = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "WorkflowTaskResult",
        "metadata": {"name": "run-step-1234"},
        "outputs": {"parameters": [{"name": "p", "value": "1"}]},
    }
    argo.create_namespaced_custom_object(
        "argoproj.io", "v1alpha1", pipelines_ns, "workflowtaskresults", result
    )
    completed = {"metadata": {"labels": {"workflows.argoproj.io/report-outputs-completed": "true"}}}
    patched = argo.patch_namespaced_custom_object(
        "argoproj.io", "v1alpha1", pipelines_ns, "workflowtaskresults", "run-step-1234", completed
    )
    assert patched["metadata"]["labels"] == completed["metadata"]["labels"]

    for args in (
        ("get", "pods"),
        ("get", "secret", names.OBJECT_STORE_SECRET),
        ("get", "workflowtaskresult", "run-step-1234"),
    ):
        proc = as_runner(control_plane, runner_kubeconfig, *args, *ns)
        assert proc.returncode != 0 and "Forbidden" in proc.stderr, f"{args}: {proc.stdout}{proc.stderr}"


def test_real_runner_token_makes_pushs_calls_with_kfkits_client(
    control_plane, dev_overlay, runner_kubeconfig
):
    """kfkit's own Kubernetes client code (kfkit.deploy.kube) with the runner's token: read (404),
    create, read, merge-patch with the read resourceVersion, and delete a SeldonDeployment in the
    serving namespace; the same read in the prod serving namespace is refused with one line."""
    _, serving_ns = dev_overlay
    api = custom_objects_api(f"kubeconfig:{runner_kubeconfig}")
    target = SeldonTarget(api=api, namespace=serving_ns)
    name = seldon.resource_name("rbac-probe")
    assert target.get("rbac-probe") is None

    manifest = seldon.seldon_deployment("rbac-probe", "1", "s3://models/rbac-probe/1", namespace=serving_ns)
    created = api.create_namespaced_custom_object(
        seldon.GROUP, seldon.VERSION, serving_ns, seldon.PLURAL, manifest
    )
    assert created["metadata"]["name"] == name

    current = target.get("rbac-probe")
    patch = {
        "metadata": {
            "resourceVersion": current["metadata"]["resourceVersion"],
            "annotations": {"kfkit.io/test": "patched"},
        }
    }
    patched = api.patch_namespaced_custom_object(
        seldon.GROUP, seldon.VERSION, serving_ns, seldon.PLURAL, name, patch
    )
    assert patched["metadata"]["annotations"]["kfkit.io/test"] == "patched"

    api.delete_namespaced_custom_object(seldon.GROUP, seldon.VERSION, serving_ns, seldon.PLURAL, name)

    # The operator's Deployments: read through the same client (404: none is named so; the
    # probe's own may exist, made by the operator when it runs in this session).
    assert target.read_deployment("no-such-model-v1-0-model") is None

    elsewhere = SeldonTarget(api=api, namespace="kfkit-serving-prod")
    with pytest.raises(KfkitError, match="HTTP 403") as refused:
        elsewhere.get("rbac-probe")
    assert "\n" not in str(refused.value)
    with pytest.raises(KfkitError, match="HTTP 403") as refused:
        elsewhere.read_deployment("no-such-model-v1-0-model")
    assert "\n" not in str(refused.value)


def test_real_runner_token_reads_deployments_only_in_the_serving_namespace(
    control_plane, dev_overlay, runner_kubeconfig
):
    """What kfkit and `kubectl rollout status` do, with the runner's token, on a Deployment an
    admin made: get, list and a watch that starts in the serving namespace; no list elsewhere;
    no create, scale, patch or delete."""
    pipelines_ns, serving_ns = dev_overlay
    control_plane.kubectl("create", "deployment", "rbac-probe", "--image=busybox", "-n", serving_ns)
    try:
        for args in (("get", "deployment", "rbac-probe"), ("get", "deployments", "-o", "name")):
            proc = as_runner(control_plane, runner_kubeconfig, *args, "-n", serving_ns)
            assert proc.returncode == 0, f"{args}: {proc.stderr}"
        watched = as_runner(
            control_plane, runner_kubeconfig,
            "get", "deployments", "-n", serving_ns, "--watch-only", "--request-timeout=2s",
        )  # fmt: skip
        assert "forbidden" not in watched.stderr.lower(), watched.stderr
        for args in (
            ("get", "deployments", "-n", "kfkit-serving-prod"),
            ("get", "deployments", "-n", pipelines_ns),
            ("create", "deployment", "probe", "--image=busybox", "-n", serving_ns),
            ("scale", "deployment", "rbac-probe", "--replicas=2", "-n", serving_ns),
            ("label", "deployment", "rbac-probe", "patched=yes", "-n", serving_ns),
            ("delete", "deployment", "rbac-probe", "-n", serving_ns),
        ):
            proc = as_runner(control_plane, runner_kubeconfig, *args)
            refused = proc.returncode != 0 and "forbidden" in proc.stderr.lower()
            assert refused, f"{args}: {proc.stdout}{proc.stderr}"
    finally:
        control_plane.kubectl("delete", "deployment", "rbac-probe", "-n", serving_ns, "--wait=false")


def test_real_old_serving_role_without_deployments_is_one_line_before_any_change(
    control_plane, dev_overlay, runner_kubeconfig
):
    """A cluster set up with the manifests from before the Deployment check (the serving Role
    with only the seldondeployments rule): push refuses in one line naming the missing rule,
    at once, and writes nothing (it does not wait out the timeout on a check it cannot make)."""
    pipelines_ns, _ = dev_overlay
    old_ns = "kfkit-serving-old-rbac"
    control_plane.ensure_namespace(old_ns)
    role, binding = yaml.safe_load_all((REPO / "manifests" / "serving" / "rbac.yaml").read_text())
    role["rules"] = [r for r in role["rules"] if r["apiGroups"] != ["apps"]]
    assert role["rules"] and all(r["resources"] == ["seldondeployments"] for r in role["rules"])
    for obj in (role, binding):
        obj["metadata"]["namespace"] = old_ns
    binding["subjects"][0]["namespace"] = pipelines_ns
    control_plane.apply_objects([role, binding])

    target = SeldonTarget(api=custom_objects_api(f"kubeconfig:{runner_kubeconfig}"), namespace=old_ns)
    request = DeploymentRequest("old-rbac", "1", "s3://models/old-rbac/1", namespace=old_ns)
    with pytest.raises(KfkitError) as info:
        target.apply(request, timeout=600)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(
        f"Kubernetes API refused to read Deployment old-rbac-v1-0-model in namespace '{old_ns}' (HTTP 403: "
    )
    assert message.endswith(
        "needs get, list, watch on deployments (apiGroup apps) there, which the Role "
        "kfkit-seldon-deployer of manifests/serving/rbac.yaml grants"
    )
    assert target.get("old-rbac") is None  # nothing was written
