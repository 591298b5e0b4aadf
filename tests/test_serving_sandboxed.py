"""The model server runs, and answers, under the security context push gives its pod.

No container runtime runs here, so the test builds what one would from the SeldonDeployment push
sends (``kfkit.deploy.seldon``) and the serving image (``components/serving/Dockerfile``), with
the same kernel features a runtime uses: a private mount namespace whose root filesystem is
remounted read-only (``readOnlyRootFilesystem``), a tmpfs for each ``emptyDir`` volume at its
``mountPath``, the model folder read-only at ``/mnt/models`` (where Seldon's storage initializer
puts it), then ``setpriv`` to the image's numeric USER (``runAsNonRoot``) with no capabilities
(``capabilities: drop [ALL]``) and no_new_privs (``allowPrivilegeEscalation: false``), and the
container's environment only. The serving image's own command (its CMD, kfkit's server) then
starts there, from the serving venv. Seccomp is the runtime's and is not emulated.

A control run without the ``emptyDir`` proves the sandbox really is read-only: the same server
cannot start.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from conftest import REPO
from sklearn.linear_model import LogisticRegression
from test_serving import CATEGORICAL, FEATURES, LABEL, NUMERIC, PENGUINS_CSV, _pipeline, _write_model_folder

from kfkit import signing
from kfkit.deploy.seldon import seldon_deployment
from kfkit.errors import KfkitError
from kfkit.net import free_port
from kfkit.serving.server import SDK_DIR, ServingProcess, _wait_until_healthy, serving_venv

DOCKERFILE = REPO / "components" / "serving" / "Dockerfile"
MODEL_MOUNT = "/mnt/models"  # where Seldon's storage initializer puts the model (KFKIT_MODEL_DIR)
# Paths of the image that do not exist here: the venv and sdk/ are the checkout's.
IMAGE_PATHS = ("PATH", "PYTHONPATH", "UV_PROJECT_ENVIRONMENT")


def image_user_and_env() -> tuple[int, dict[str, str]]:
    """The serving image's numeric USER and its ENV (Dockerfile), less the image's own paths."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    (user,) = re.findall(r"^USER (\d+)\s*$", text, re.M)
    env = {}
    for statement in re.findall(r"^ENV (.+)$", text, re.M):
        for pair in shlex.split(statement):
            key, _, value = pair.partition("=")
            if key not in IMAGE_PATHS:
                env[key] = value
    return int(user), env


def image_command() -> list[str]:
    """The serving image's CMD (exec form), as the container runtime would run it."""
    (command,) = re.findall(r"^CMD (\[.*\])\s*$", DOCKERFILE.read_text(), re.M)
    return json.loads(command)


def model_container(spec: dict[str, Any]) -> dict[str, Any]:
    (container,) = spec["containers"]
    return container


def push_pod_spec() -> dict[str, Any]:
    deployment = seldon_deployment("penguins", "1", "s3://models/penguins/1")
    return deployment["spec"]["predictors"][0]["componentSpecs"][0]["spec"]


def _size_bytes(quantity: str) -> int:
    units = {"Ki": 1024, "Mi": 1024**2, "Gi": 1024**3}
    for suffix, factor in units.items():
        if quantity.endswith(suffix):
            return int(quantity[: -len(suffix)]) * factor
    return int(quantity)


def _blocked_ancestor(path: Path) -> tuple[Path, Path] | None:
    """(a directory other users cannot enter on the way to ``path``, its child on that way)."""
    for parent in reversed(path.parents):
        if parent != Path("/") and not parent.stat().st_mode & 0o001:
            return parent, parent / path.relative_to(parent).parts[0]
    return None


def config_map_folder(name: str, hold: Path) -> Path:
    """What the kubelet would mount for ConfigMap ``name``: kfkit's only one is the trusted model
    keys, here this machine's trusted public keys, readable by the image's user."""
    assert name == signing.TRUSTED_KEYS_CONFIG_MAP, name
    ((_, source),) = signing.trusted_keys_env().items()
    source_path = Path(source)
    if source_path.is_file():
        files = [source_path]
    else:
        files = sorted(p for p in source_path.iterdir() if p.is_file())
    folder = hold / f"configmap-{name}"
    folder.mkdir(mode=0o755)
    for path in files:
        (folder / path.name).write_bytes(path.read_bytes())
        (folder / path.name).chmod(0o644)
    return folder


def sandbox_script(spec: dict[str, Any], model_dir: Path, hold: Path, ports: dict[str, int]) -> str:
    """The shell script, run by root in a fresh mount namespace, that ends in the model server."""
    container = model_container(spec)
    uid, image_env = image_user_and_env()
    security = container["securityContext"]
    venv = serving_venv().resolve()
    interpreter = (venv / "bin" / "python").resolve()
    keep = [venv, SDK_DIR.resolve()]
    covers = ["mount -t tmpfs -o mode=0755 tmpfs /mnt"]  # the model volume's mount point lives here
    blocked = _blocked_ancestor(interpreter)
    if blocked:  # e.g. pyenv under /root (0700): a runtime would have it in the image instead
        directory, child = blocked
        keep.append(child)
        covers.append(f"mount -t tmpfs -o mode=0711 tmpfs {shlex.quote(str(directory))}")
    volumes = {volume["name"]: volume for volume in spec.get("volumes", [])}
    config_maps: dict[str, Path] = {}  # mountPath -> folder, mounted read-only like the model
    for mount in container.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        if "configMap" in volume:
            config_maps[mount["mountPath"]] = config_map_folder(volume["configMap"]["name"], hold)
            continue
        empty_dir = volume["emptyDir"]
        size = _size_bytes(empty_dir.get("sizeLimit", "64Mi"))
        covers.append(f"mount -t tmpfs -o mode=1777,size={size} tmpfs {shlex.quote(mount['mountPath'])}")

    lines = ["set -e"]
    # 1. Hold what the server reads, on a path nothing below covers.
    for index, path in enumerate([*keep, model_dir, *config_maps.values()]):
        (hold / str(index)).mkdir()
        lines.append(f"mount --bind {shlex.quote(str(path))} {hold / str(index)}")
    # 2. The pod's view: /mnt, the emptyDir volumes, the blocked directory.
    lines += covers
    # 3. The held paths back in place, read-only; the model at /mnt/models.
    targets = [*(str(path) for path in keep), MODEL_MOUNT, *config_maps]
    for index, target in enumerate(targets):
        quoted = shlex.quote(target)
        lines += [
            f"mkdir -p {quoted}",
            f"mount --bind {hold / str(index)} {quoted}",
            f"mount -o remount,bind,ro {quoted}",
        ]
    # 4. readOnlyRootFilesystem.
    if security.get("readOnlyRootFilesystem"):
        lines.append("mount -o remount,bind,ro /")
    # 5. The container's process: the image's user, the container's environment only.
    assert spec["securityContext"]["runAsNonRoot"] and uid != 0
    assert security["capabilities"]["drop"] == ["ALL"] and security["allowPrivilegeEscalation"] is False
    env = {
        **image_env,
        "HOME": "/home/kfkit",  # the image's user's home: on the read-only root
        "PATH": f"{venv / 'bin'}:/usr/bin:/bin",
        "PYTHONPATH": str(SDK_DIR.resolve()),
        # Set by Seldon's operator in a cluster.
        "PREDICTIVE_UNIT_HTTP_SERVICE_PORT": str(ports["http"]),
        "PREDICTIVE_UNIT_GRPC_SERVICE_PORT": str(ports["grpc"]),
        "PREDICTIVE_UNIT_METRICS_SERVICE_PORT": str(ports["metrics"]),
        **{item["name"]: item["value"] for item in container["env"]},
    }
    privileges = "--clear-groups --no-new-privs --inh-caps=-all --ambient-caps=-all --bounding-set=-all"
    command = image_command()
    lines.append(
        f"exec setpriv --reuid {uid} --regid {uid} {privileges} env -i "
        + " ".join(shlex.quote(f"{k}={v}") for k, v in env.items())
        + " "
        + shlex.join(command)
    )
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real trained classifier as a kfkit model folder, readable by the image's user."""
    frame = pd.read_csv(PENGUINS_CSV, na_values=["NA"], keep_default_na=True)
    frame[NUMERIC] = frame[NUMERIC].astype("float64")
    model = _pipeline(LogisticRegression(max_iter=1000), NUMERIC, CATEGORICAL)
    model.fit(frame[FEATURES], frame[LABEL])
    folder = tmp_path_factory.mktemp("sandboxed-models") / "penguins" / "1"
    classes = [str(label) for label in model.classes_]
    _write_model_folder(folder, model, "classification", LABEL, NUMERIC, CATEGORICAL, classes)
    for path in [folder, *folder.iterdir()]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return folder


def _ports() -> dict[str, int]:
    ports: dict[str, int] = {}
    while len(set(ports.values())) < 3:
        ports = {"http": free_port(), "grpc": free_port(), "metrics": free_port()}
    return ports


@contextlib.contextmanager
def sandboxed_server(spec: dict[str, Any], model_dir: Path, log_path: Path) -> Iterator[ServingProcess]:
    """The model server started in the sandbox for ``spec``; stopped (whole group) on exit."""
    assert os.geteuid() == 0, "the sandbox needs root to make its mount namespace (CI runs as root)"
    for tool in ("unshare", "setpriv"):
        assert shutil.which(tool), f"{tool} (util-linux) not found"
    hold = Path(tempfile.mkdtemp(prefix="kfkit-sandbox-", dir="/var/tmp"))
    ports = _ports()
    script = sandbox_script(spec, model_dir, hold, ports)
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = ServingProcess(process, model_dir, ports["http"], ports["grpc"], ports["metrics"], log_path)
    try:
        yield server
    finally:
        server.stop(grace=2.0)
        shutil.rmtree(hold, ignore_errors=True)


@pytest.mark.slow
def test_model_server_answers_under_the_pods_security_context(model_dir, tmp_path):
    """Read-only root, /tmp emptyDir, non-root, no capabilities, no privilege escalation: the
    server starts, answers a prediction, and logs no write refused anywhere."""
    spec = push_pod_spec()
    assert model_container(spec)["securityContext"]["readOnlyRootFilesystem"] is True
    log_path = tmp_path / "server.log"
    with sandboxed_server(spec, model_dir, log_path) as server:
        _wait_until_healthy(server, None, timeout=120)
        row = {"bill_length_mm": 39.1, "bill_depth_mm": 18.7, "flipper_length_mm": 181.0}
        row |= {"body_mass_g": 3750.0, "year": 2007, "island": "Torgersen", "sex": "male"}
        answer = server.predict([row])
        assert answer["data"]["names"] == ["Adelie", "Chinstrap", "Gentoo"]
        (probabilities,) = answer["data"]["ndarray"]
        assert max(probabilities) == probabilities[0]  # an Adelie, as the training data says
    log = log_path.read_text(errors="replace")
    for refusal in ("Read-only file system", "Permission denied", "Operation not permitted"):
        assert refusal not in log, log[-3000:]


@pytest.mark.slow
def test_without_its_tmp_volume_the_server_cannot_start(model_dir, tmp_path):
    """The control: the same sandbox without the emptyDir. If the root were not really
    read-only here, this server would start and the test above would prove nothing."""
    spec = push_pod_spec()
    container = model_container(spec)
    container["volumeMounts"] = []
    spec["volumes"] = []
    log_path = tmp_path / "server.log"
    with sandboxed_server(spec, model_dir, log_path) as server:
        with pytest.raises(KfkitError, match="exited during start|not healthy"):
            _wait_until_healthy(server, None, timeout=120)
    assert re.search(r"Read-only file system|No usable temporary directory", log_path.read_text()), (
        log_path.read_text()[-3000:]
    )


if __name__ == "__main__":  # print the script, for reading
    print(sandbox_script(push_pod_spec(), Path(sys.argv[1]), Path("/var/tmp/hold"), _ports()))
