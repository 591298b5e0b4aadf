"""The session's real control plane (tests/cluster/controlplane.py), started once for every
`cluster` test and always stopped; and kfkit's manifests applied to it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO
from test_manifests import write_env_files

from kfkit.names import PIPELINE_RUNNER_SERVICE_ACCOUNT

from .controlplane import ControlPlane
from .kfp_server import KfpApiServer, build_kfp_apiserver

# The pipelines namespace of each kustomize target (the overlays do not create it: a Kubeflow
# profile's namespace already exists) and the serving namespace it creates.
NAMESPACES = {
    "kustomize/base": ("kubeflow", "kfkit-serving"),
    "kustomize/overlays/dev": ("kubeflow-user-example-com", "kfkit-serving-dev"),
    "kustomize/overlays/prod": ("kfkit-prod", "kfkit-serving-prod"),
}


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory) -> Iterator[ControlPlane]:
    """etcd, kube-apiserver, kube-controller-manager, kube-scheduler and KWOK, built by build.sh
    when the cache lacks them; with the CRDs of share/crds installed (Seldon's SeldonDeployment,
    Argo's WorkflowTaskResult)."""
    plane = ControlPlane(tmp_path_factory.mktemp("controlplane"))
    plane.start()
    try:
        plane.install_crds()
        yield plane
    finally:
        plane.stop()


@pytest.fixture(scope="session")
def manifests_tree(tmp_path_factory) -> Path:
    """A copy of manifests/ and kustomize/ with the overlays' .env files written from the
    examples with planted credential values (as tests/test_manifests.py builds them)."""
    root = tmp_path_factory.mktemp("applied-tree")
    for folder in ("manifests", "kustomize"):
        shutil.copytree(REPO / folder, root / folder, ignore=shutil.ignore_patterns("*.env"))
    write_env_files(root)
    return root


@pytest.fixture(scope="session")
def dev_overlay(control_plane, manifests_tree) -> tuple[str, str]:
    """kustomize/overlays/dev applied with `kubectl apply -k`: (pipelines namespace, serving namespace)."""
    pipelines_ns, serving_ns = NAMESPACES["kustomize/overlays/dev"]
    control_plane.ensure_namespace(pipelines_ns)
    control_plane.kubectl("apply", "--validate=strict", "-k", str(manifests_tree / "kustomize/overlays/dev"))
    return pipelines_ns, serving_ns


@pytest.fixture(scope="session")
def seldon_operator(control_plane) -> None:
    """Seldon Core v1's operator running against the control plane (stopped with it)."""
    control_plane.start_seldon()


@pytest.fixture(scope="session")
def kfp_build() -> Path:
    """The KFP API server's build folder (tests/cluster/build_kfp.sh; built once, cached)."""
    return build_kfp_apiserver()


@pytest.fixture
def kfp_api(control_plane, mariadb, local_store, kfp_build, tmp_path) -> Iterator[KfpApiServer]:
    """KFP's real API server on an empty `mlpipeline` database for one test, stopped after it.
    Configured as kfkit's README says for KFP 2.14-2.16: its default runner account is kfkit's
    (DEFAULTPIPELINERUNNERSERVICEACCOUNT), since those versions give every recurring run that one."""
    server = KfpApiServer(
        tmp_path / "kfp",
        control_plane,
        mariadb,
        local_store.config,
        build_dir=kfp_build,
        default_runner_service_account=PIPELINE_RUNNER_SERVICE_ACCOUNT,
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()
