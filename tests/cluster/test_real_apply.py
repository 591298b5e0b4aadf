"""kfkit's manifests applied to a real API server the way its READMEs tell users to: every
kustomize target and both manifests/ folders with `kubectl apply -k` (the server validates every
field strictly and runs admission), and a second apply changes nothing."""

from __future__ import annotations

import subprocess

import pytest
import yaml
from conftest import run_kfkit

from .conftest import NAMESPACES

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

# (target, the namespace `apply -n` gets, the pipelines namespace that must exist first).
TARGETS = [
    *((target, None, pipelines_ns) for target, (pipelines_ns, _) in NAMESPACES.items()),
    # manifests/README.md: `kubectl apply -k manifests/<part>`; pipelines/ names no namespace.
    ("manifests/pipelines", "kfkit-manifests-pipelines", "kfkit-manifests-pipelines"),
    ("manifests/serving", None, None),
]


def apply(control_plane, path, namespace: str | None) -> subprocess.CompletedProcess:
    flags = ["-n", namespace] if namespace else []
    return control_plane.kubectl("apply", "--validate=strict", *flags, "-k", str(path))


@pytest.mark.parametrize(("target", "namespace", "pipelines_ns"), TARGETS, ids=[t[0] for t in TARGETS])
def test_real_apply_k_succeeds_and_a_second_apply_changes_nothing(
    control_plane, manifests_tree, target, namespace, pipelines_ns
):
    if pipelines_ns:
        control_plane.ensure_namespace(pipelines_ns)
    path = manifests_tree / target
    flags = ["-n", namespace] if namespace else []
    built = [doc for doc in yaml.safe_load_all(control_plane.kubectl("kustomize", str(path)).stdout) if doc]

    first = apply(control_plane, path, namespace)
    assert len(first.stdout.splitlines()) == len(built), first.stdout

    second = apply(control_plane, path, namespace)
    lines = second.stdout.splitlines()
    assert len(lines) == len(built) and all(line.endswith(" unchanged") for line in lines), second.stdout
    diff = control_plane.kubectl("diff", *flags, "-k", str(path), check=False)
    assert diff.returncode == 0, diff.stdout + diff.stderr

    # Every object is on the server, in its namespace (a namespace-less one where `-n` put it).
    found = control_plane.kubectl("get", *flags, "-f", "-", "-o", "name", input=yaml.safe_dump_all(built))
    assert len(found.stdout.splitlines()) == len(built), found.stdout


@pytest.mark.parametrize("overlay", ["dev", "prod"])
def test_real_kfkit_manifests_output_is_what_apply_k_applied(control_plane, manifests_tree, overlay):
    """`kfkit manifests <overlay> | kubectl apply -f -` (kustomize/README.md) on top of `apply -k`:
    the same objects, so nothing changes."""
    path = manifests_tree / "kustomize" / "overlays" / overlay
    control_plane.ensure_namespace(NAMESPACES[f"kustomize/overlays/{overlay}"][0])
    apply(control_plane, path, None)
    built = run_kfkit(["manifests", str(path)], env=None, timeout=120)
    assert built.returncode == 0, built.stderr
    applied = control_plane.kubectl("apply", "--validate=strict", "-f", "-", input=built.stdout)
    lines = applied.stdout.splitlines()
    assert lines and all(line.endswith(" unchanged") for line in lines), applied.stdout
