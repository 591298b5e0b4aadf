"""Kubeflow Pipelines' real API server (2.14.3, built by tests/cluster/build_kfp.sh) against the
session's control plane, MariaDB and local object store, on 127.0.0.1.

As KFP's single-user install runs it: in namespace `kubeflow`, with its own ServiceAccount, Role and
RoleBinding from KFP's manifests (it talks to the Kubernetes API with that account's token), Argo's
Workflow and KFP's ScheduledWorkflow CRDs installed first, MySQL database `mlpipeline`, bucket
`mlpipeline` (it creates it). No Argo controller, no ScheduledWorkflow controller, no persistence
agent: the Workflows and ScheduledWorkflows it creates are the end of the line (no kubelet either).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import yaml
from mariadb_server import USER, MariaDB

from kfkit.net import free_port
from kfkit.storage import StoreConfig

from .controlplane import BuiltServer, ControlPlane, _opener, _wait, run_build_script

NAMESPACE = "kubeflow"
SERVICE_ACCOUNT = "ml-pipeline"
DATABASE = "mlpipeline"
BUCKET = "mlpipeline"


def build_kfp_apiserver() -> Path:
    """KFP's API server's build folder (build_kfp.sh)."""
    return run_build_script("build_kfp.sh")


class KfpApiServer(BuiltServer):
    """``start()`` returns once ``/apis/v2beta1/healthz`` answers; ``url`` is its HTTP endpoint
    (the one kfkit's ``--host`` takes); ``stop()`` stops the process it started (by pid)."""

    START_TIMEOUT = 120

    def __init__(
        self,
        workdir: Path,
        control_plane: ControlPlane,
        database: MariaDB,
        store: StoreConfig,
        build_dir: Path | None = None,
        default_runner_service_account: str | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.control_plane = control_plane
        self.database = database
        self.store = store
        self.build_dir = build_dir
        # The account a run without one gets (upstream's default: pipeline-runner); KFP 2.14.3
        # also gives it to every v2 recurring run, whatever the recurring run asks for.
        self.default_runner_service_account = default_runner_service_account
        self.process: subprocess.Popen | None = None
        self.ports: dict[str, int] = {}
        self.log = self.workdir / "kfp-apiserver.log"
        self.start_seconds: float | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.ports['http']}"

    def _build(self) -> Path:
        return build_kfp_apiserver()

    def _install(self) -> Path:
        """CRDs, namespace and the server's own RBAC on the control plane; returns a kubeconfig with
        its ServiceAccount's token."""
        plane, share = self.control_plane, self.build_dir / "share"
        names = []
        for path in sorted((share / "crds").glob("*.yaml")):
            plane.kubectl("apply", "--server-side", "--field-manager=kfkit-tests", "-f", str(path))
            names.extend(doc["metadata"]["name"] for doc in yaml.safe_load_all(path.read_text()) if doc)
        plane.kubectl("wait", "--for=condition=Established", "--timeout=60s", *(f"crd/{n}" for n in names))
        plane.ensure_namespace(NAMESPACE)
        objects = []
        for path in sorted((share / "rbac").glob("*.yaml")):
            for document in yaml.safe_load_all(path.read_text()):
                document["metadata"]["namespace"] = NAMESPACE
                objects.append(document)
        plane.apply_objects(objects)
        # A fresh install: no Workflow or ScheduledWorkflow left by an earlier server of the session.
        plane.kubectl("delete", "workflows,scheduledworkflows", "--all", "-n", NAMESPACE, "--wait=true")
        return plane.token_kubeconfig(NAMESPACE, SERVICE_ACCOUNT)

    def _start(self, timeout: float) -> None:
        kubeconfig = self._install()
        self.database.create_database(DATABASE)
        for name in ("rpc", "http", "webhook", "visualization"):
            self.ports[name] = free_port()
        config_dir = self.workdir / "kfp-config"
        config_dir.mkdir(exist_ok=True)
        shutil.copy(self.build_dir / "share" / "config.json", config_dir / "config.json")
        # The ScheduledWorkflow client reads only ~/.kube/config; the others KUBECONFIG.
        home = self.workdir / "kfp-home"
        (home / ".kube").mkdir(parents=True, exist_ok=True)
        shutil.copy(kubeconfig, home / ".kube" / "config")
        host, port = self.store.endpoint.rsplit(":", 1)
        # Nested config keys from the environment (viper: `.` -> `_`, upper case), as upstream's
        # Deployment passes them; credentials only here, never in a file of the work folder.
        environment = {
            **_deployment_environment(self.build_dir / "share" / "ml-pipeline-apiserver-deployment.yaml"),
            "HOME": str(home),
            "KUBECONFIG": str(kubeconfig),
            "POD_NAMESPACE": NAMESPACE,
            "MULTIUSER": "false",
            "DBCONFIG_MYSQLCONFIG_HOST": "127.0.0.1",
            "DBCONFIG_MYSQLCONFIG_PORT": str(self.database.port),
            "DBCONFIG_MYSQLCONFIG_USER": USER,
            "DBCONFIG_MYSQLCONFIG_PASSWORD": self.database.password,
            "DBCONFIG_MYSQLCONFIG_DBNAME": DATABASE,
            "OBJECTSTORECONFIG_HOST": host,
            "OBJECTSTORECONFIG_PORT": port,
            "OBJECTSTORECONFIG_SECURE": "false",
            "OBJECTSTORECONFIG_ACCESSKEY": self.store.access_key,
            "OBJECTSTORECONFIG_SECRETACCESSKEY": self.store.secret_key,
            "OBJECTSTORECONFIG_BUCKETNAME": BUCKET,
            # Required at start; only a visualization request would call it (none is running).
            "ML_PIPELINE_VISUALIZATIONSERVER_SERVICE_HOST": "127.0.0.1",
            "ML_PIPELINE_VISUALIZATIONSERVER_SERVICE_PORT": str(self.ports["visualization"]),
        }
        if self.default_runner_service_account:
            environment["DEFAULTPIPELINERUNNERSERVICEACCOUNT"] = self.default_runner_service_account
        # No in-cluster config (KUBERNETES_*), no credential of the test process.
        dropped = ("KUBERNETES_", "AWS_", "KFKIT_")
        inherited = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [
                    str(self.build_dir / "bin" / "kfp-apiserver"),
                    f"--config={config_dir}",
                    # Upstream's HTTP gateway dials "localhost" + this flag (main.go
                    # registerHttpHandlerFromEndpoint), so only the ":port" form works: the gRPC
                    # port is the one listener that is not on 127.0.0.1 only.
                    f"--rpcPortFlag=:{self.ports['rpc']}",
                    f"--httpPortFlag=127.0.0.1:{self.ports['http']}",
                    f"--webhookPortFlag=127.0.0.1:{self.ports['webhook']}",
                    "--collectMetricsFlag=false",
                    "--logtostderr",
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=self.workdir,
                env={**inherited, **environment},
            )
        _wait("kfp-apiserver", self._healthy, timeout, self.log, self.process)

    def _healthy(self) -> bool:
        try:
            with _opener().open(f"{self.url}/apis/v2beta1/healthz", timeout=2) as response:
                return response.status == 200 and isinstance(json.loads(response.read()), dict)
        except (OSError, ValueError):
            return False

    def stop(self, timeout: float = 3) -> None:
        """SIGTERM, then SIGKILL after ``timeout``: upstream's main cancels its context on SIGTERM
        but its HTTP listener never returns, so the process does not exit by itself."""
        if self.process is None:
            return
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None


def _deployment_environment(deployment_yaml: Path) -> dict[str, str]:
    """The plain environment values of upstream's ml-pipeline Deployment (V2_DRIVER_IMAGE,
    V2_LAUNCHER_IMAGE, log levels, ...); the ones from Secrets and ConfigMaps are set above."""
    deployment = yaml.safe_load(deployment_yaml.read_text())
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {item["name"]: str(item["value"]) for item in container["env"] if "value" in item}
