"""The command README.md and tests/cluster/README.md show for starting a control plane by hand,
run as written: it comes up, answers with the KUBECONFIG it prints, and Ctrl-C stops every process."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
from conftest import REPO

pytestmark = [pytest.mark.cluster, pytest.mark.slow]

COMMAND = "PYTHONPATH=$PWD/sdk .venv/bin/python tests/cluster/controlplane.py up"


def test_controlplane_up_as_the_readmes_show_it():
    for readme in ("README.md", "tests/cluster/README.md"):
        assert COMMAND in (REPO / readme).read_text(), f"{readme} no longer shows {COMMAND!r}"
    process = subprocess.Popen(
        ["bash", "-c", COMMAND],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines = []
    try:
        kubeconfig = kubectl = None
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and kubectl is None:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("export KUBECONFIG="):
                kubeconfig = line.split("=", 1)[1].strip()
            if line.startswith("kubectl: "):
                kubectl = line.split()[1].rstrip(";")
        assert kubeconfig and kubectl, "no KUBECONFIG/kubectl printed:\n" + "".join(lines)
        env = {**os.environ, "KUBECONFIG": kubeconfig}
        nodes = subprocess.run(
            [kubectl, "get", "nodes", "-o", "name"], env=env, capture_output=True, text=True, timeout=60
        )
        assert nodes.stdout.split() == ["node/kwok-node-0"], nodes.stderr
        crd = subprocess.run(
            [kubectl, "get", "crd", "seldondeployments.machinelearning.seldon.io", "-o", "name"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert crd.returncode == 0, crd.stderr

        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C reaches the terminal's whole process group
        assert process.wait(timeout=90) == 0, "".join(lines) + process.stdout.read()
        # Stopped means stopped: the API server it printed no longer answers.
        after = subprocess.run(
            [kubectl, "get", "nodes", "--request-timeout=5s"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert after.returncode != 0
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
