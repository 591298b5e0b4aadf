"""A real Kubernetes control plane on loopback for the `cluster` tests: etcd, kube-apiserver (RBAC,
admission, audit log), kube-controller-manager, kube-scheduler and KWOK with one fake node, so
Deployments get Ready pods without a container runtime; on request the CRDs kfkit's objects need
and Seldon Core v1's operator.

The binaries come from `tests/cluster/build.sh` (built once into a cache folder). Everything this
module starts listens on 127.0.0.1 on free ports, runs in its own process session with its log in
the work folder, and is stopped by its own pid.

    python tests/cluster/controlplane.py up      # for a person: start (with the CRDs and Seldon's
                                                 # operator), print KUBECONFIG, wait for ^C
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import os
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Self

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from kfkit.net import free_port

HERE = Path(__file__).resolve().parent
FAKE_NODE = "kwok-node-0"
SELDON_NAMESPACE = "seldon-system"
# The issuer a real cluster's tokens carry; nothing resolves it here.
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"


class ControlPlaneError(RuntimeError):
    """A part of the control plane did not start; the message names it and ends with its log."""


def run_build_script(script: str) -> Path:
    """Run one of this folder's build scripts (a no-op when the cache holds its build) and return
    the build folder it prints last."""
    proc = subprocess.run(
        ["bash", str(HERE / script)], stdout=subprocess.PIPE, stderr=None, text=True, check=False
    )
    if proc.returncode != 0:
        raise ControlPlaneError(
            f"tests/cluster/{script} failed with exit {proc.returncode} (its output is above)"
        )
    return Path(proc.stdout.strip().splitlines()[-1])


def build() -> Path:
    """The control plane's build folder (build.sh)."""
    return run_build_script("build.sh")


# -- PKI ------------------------------------------------------------------------------------------


def _pem_key(key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


class CertificateAuthority:
    """The cluster's CA: signs the API server's serving certificate and every client identity."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kfkit-test-ca")])
        now = datetime.datetime.now(datetime.UTC)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(self.key, hashes.SHA256())
        )

    def issue(
        self, common_name: str, organization: str | None = None, hosts: list[str] | None = None
    ) -> tuple[bytes, bytes]:
        """(certificate PEM, key PEM): a server certificate when ``hosts`` is given, else a client one
        whose CN is the user and O the group, as the API server reads them."""
        key = ec.generate_private_key(ec.SECP256R1())
        attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
        if organization:
            attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
        now = datetime.datetime.now(datetime.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name(attributes))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
        )
        if hosts:
            names: list[x509.GeneralName] = []
            for host in hosts:
                try:
                    names.append(x509.IPAddress(ipaddress.ip_address(host)))
                except ValueError:
                    names.append(x509.DNSName(host))
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
            usage = x509.ExtendedKeyUsageOID.SERVER_AUTH
        else:
            usage = x509.ExtendedKeyUsageOID.CLIENT_AUTH
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        return _pem_cert(builder.sign(self.key, hashes.SHA256())), _pem_key(key)


# -- kubeconfig -----------------------------------------------------------------------------------


def kubeconfig(server: str, ca_pem: bytes, user: dict[str, str], name: str) -> str:
    """A one-context kubeconfig (YAML) for ``user`` (client-certificate-data/... or token)."""
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "kfkit-test",
                    "cluster": {
                        "server": server,
                        "certificate-authority-data": base64.b64encode(ca_pem).decode(),
                    },
                }
            ],
            "users": [{"name": name, "user": user}],
            "contexts": [{"name": name, "context": {"cluster": "kfkit-test", "user": name}}],
            "current-context": name,
        },
        sort_keys=False,
    )


def _cert_user(cert_key: tuple[bytes, bytes]) -> dict[str, str]:
    cert, key = cert_key
    return {
        "client-certificate-data": base64.b64encode(cert).decode(),
        "client-key-data": base64.b64encode(key).decode(),
    }


# -- the control plane ----------------------------------------------------------------------------


def _wait(
    what: str, ready: Callable[[], bool], timeout: float, log: Path | None, process: subprocess.Popen | None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise ControlPlaneError(f"{what} exited with {process.returncode}{_log_tail(log)}")
        try:
            if ready():
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise ControlPlaneError(f"{what} not ready after {timeout:.0f} s{_log_tail(log)}")


def _opener(context: ssl.SSLContext | None = None) -> urllib.request.OpenerDirector:
    """urllib without the environment's proxies: every probe is of a loopback address."""
    handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({})]
    if context is not None:
        handlers.append(urllib.request.HTTPSHandler(context=context))
    return urllib.request.build_opener(*handlers)


def _log_tail(log: Path | None, lines: int = 30) -> str:
    if log is None or not log.exists():
        return ""
    tail = log.read_text(errors="replace").splitlines()[-lines:]
    return f"; last lines of {log}:\n" + "\n".join(tail)


class BuiltServer:
    """A server of these tests run from binaries built once per machine: ``start()`` builds them if
    no ``build_dir`` was given, runs ``_start``, stops whatever came up if it fails, and records
    ``start_seconds``. Subclasses give ``_build``, ``_start``, ``stop`` and ``START_TIMEOUT``."""

    START_TIMEOUT: float = 90
    build_dir: Path | None
    workdir: Path
    start_seconds: float | None

    def _build(self) -> Path:
        raise NotImplementedError

    def _start(self, timeout: float) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def start(self, timeout: float | None = None) -> Self:
        started = time.monotonic()
        if self.build_dir is None:
            self.build_dir = self._build()
        self.workdir.mkdir(parents=True, exist_ok=True)
        try:
            self._start(self.START_TIMEOUT if timeout is None else timeout)
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - started
        return self


class ControlPlane(BuiltServer):
    """etcd + kube-apiserver + kube-controller-manager + kube-scheduler + KWOK in ``workdir``.

    ``start()`` returns once the API server is ready, the fake node is Ready and the default
    service account exists in ``default``; ``stop()`` stops every process it started (by pid).
    ``kubeconfig`` is the admin's (``system:masters``).
    """

    def __init__(self, workdir: Path, build_dir: Path | None = None) -> None:
        self.workdir = Path(workdir)
        self.build_dir = build_dir
        self.processes: dict[str, subprocess.Popen] = {}
        self.ports: dict[str, int] = {}
        self.pki = self.workdir / "pki"
        self.kubeconfig = self.workdir / "admin.kubeconfig"
        self.audit_log = self.workdir / "audit.log"
        self.start_seconds: float | None = None

    @property
    def bin(self) -> Path:
        assert self.build_dir is not None, "start() first"
        return self.build_dir / "bin"

    @property
    def kubectl_path(self) -> str:
        return str(self.bin / "kubectl")

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.ports['apiserver']}"

    # -- processes --------------------------------------------------------------------------------

    def _spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        with self.log(name).open("ab") as out:
            process = subprocess.Popen(
                [str(self.bin / args[0]), *args[1:]],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=self.workdir,
                env={**os.environ, **(env or {})},
            )
        self.processes[name] = process
        return process

    def log(self, name: str) -> Path:
        return self.workdir / f"{name}.log"

    def _https_ready(self, port: int, path: str, client: bool) -> bool:
        context = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        if client:
            context.load_cert_chain(str(self.pki / "admin.crt"), str(self.pki / "admin.key"))
        else:  # kcm and the scheduler serve a self-signed certificate of their own
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        with _opener(context).open(f"https://127.0.0.1:{port}{path}", timeout=2) as response:
            return response.status == 200

    @staticmethod
    def _http_ready(url: str, expect: str = "") -> bool:
        with _opener().open(url, timeout=2) as response:
            return response.status == 200 and expect in response.read().decode()

    # -- start ------------------------------------------------------------------------------------

    def _write_pki(self) -> dict[str, tuple[bytes, bytes]]:
        self.pki.mkdir(parents=True, exist_ok=True)
        ca = self.ca = CertificateAuthority()
        self.ca_pem = _pem_cert(ca.cert)
        (self.pki / "ca.crt").write_bytes(self.ca_pem)
        (self.pki / "ca.key").write_bytes(_pem_key(ca.key))
        hosts = [
            "127.0.0.1",
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
            "10.96.0.1",
        ]
        identities = {
            "apiserver": ca.issue("kube-apiserver", hosts=hosts),
            "admin": ca.issue("kfkit-admin", "system:masters"),
            "kcm": ca.issue("system:kube-controller-manager"),
            "scheduler": ca.issue("system:kube-scheduler"),
            # KWOK plays every node's kubelet and more (Stages on pods and nodes): a test harness
            # identity, so the admin group rather than a role copied from kwok's kustomize.
            "kwok": ca.issue("kwok-controller", "system:masters"),
        }
        for name, (cert, key) in identities.items():
            (self.pki / f"{name}.crt").write_bytes(cert)
            (self.pki / f"{name}.key").write_bytes(key)
        service_account_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        (self.pki / "sa.key").write_bytes(_pem_key(service_account_key))
        (self.pki / "sa.pub").write_bytes(
            service_account_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        return identities

    def _build(self) -> Path:
        return build()

    def _start(self, timeout: float) -> None:
        identities = self._write_pki()
        for name in ("etcd", "etcd-peer", "apiserver", "kcm", "scheduler", "kwok"):
            self.ports[name] = free_port()
        pki, run, ports = self.pki, self.workdir, self.ports
        for name in ("admin", "kcm", "scheduler", "kwok"):
            (run / f"{name}.kubeconfig").write_text(
                kubeconfig(self.server, self.ca_pem, _cert_user(identities[name]), name)
            )
        # Every request with its user, verb, resource and response code: what a denied call left.
        audit_policy = {
            "apiVersion": "audit.k8s.io/v1",
            "kind": "Policy",
            "omitStages": ["RequestReceived"],
            "rules": [{"level": "Metadata"}],
        }
        (run / "audit-policy.yaml").write_text(yaml.safe_dump(audit_policy))

        etcd_url = f"http://127.0.0.1:{ports['etcd']}"
        peer_url = f"http://127.0.0.1:{ports['etcd-peer']}"
        etcd = self._spawn(
            "etcd",
            [
                "etcd",
                "--name=kfkit",
                f"--data-dir={run / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=kfkit={peer_url}",
                "--unsafe-no-fsync",
                "--auto-compaction-retention=1",
                "--quota-backend-bytes=1073741824",
                "--log-level=warn",
            ],
        )
        _wait(
            "etcd",
            lambda: self._http_ready(f"{etcd_url}/health", '"health":"true"'),
            timeout,
            self.log("etcd"),
            etcd,
        )

        apiserver = self._spawn(
            "apiserver",
            [
                "kube-apiserver",
                f"--etcd-servers={etcd_url}",
                "--bind-address=127.0.0.1",
                f"--secure-port={ports['apiserver']}",
                "--advertise-address=127.0.0.1",
                # Endpoints may not hold a loopback address: the default reconciler would fail forever.
                "--endpoint-reconciler-type=none",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                "--authorization-mode=Node,RBAC",
                "--enable-admission-plugins=NodeRestriction",
                f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                "--service-cluster-ip-range=10.96.0.0/16",
                "--allow-privileged=false",
                "--profiling=false",
                f"--audit-policy-file={run / 'audit-policy.yaml'}",
                f"--audit-log-path={self.audit_log}",
                "--v=1",
            ],
        )
        _wait(
            "kube-apiserver",
            lambda: self._https_ready(ports["apiserver"], "/readyz", client=True),
            timeout,
            self.log("apiserver"),
            apiserver,
        )

        common = [
            "--bind-address=127.0.0.1",
            "--authorization-always-allow-paths=/healthz,/readyz,/livez,/metrics",
            "--leader-elect=false",
        ]
        kcm_config = run / "kcm.kubeconfig"
        kcm = self._spawn(
            "kcm",
            [
                "kube-controller-manager",
                f"--kubeconfig={kcm_config}",
                f"--authentication-kubeconfig={kcm_config}",
                f"--authorization-kubeconfig={kcm_config}",
                f"--secure-port={ports['kcm']}",
                *common,
                "--use-service-account-credentials=true",
                f"--service-account-private-key-file={pki / 'sa.key'}",
                f"--root-ca-file={pki / 'ca.crt'}",
                f"--cluster-signing-cert-file={pki / 'ca.crt'}",
                f"--cluster-signing-key-file={pki / 'ca.key'}",
            ],
        )
        scheduler_config = run / "scheduler.kubeconfig"
        scheduler = self._spawn(
            "scheduler",
            [
                "kube-scheduler",
                f"--kubeconfig={scheduler_config}",
                f"--authentication-kubeconfig={scheduler_config}",
                f"--authorization-kubeconfig={scheduler_config}",
                f"--secure-port={ports['scheduler']}",
                *common,
            ],
        )
        stages = sorted((self.build_dir / "share" / "kwok-stages").glob("*.yaml"))
        kwok_config = {
            "apiVersion": "config.kwok.x-k8s.io/v1alpha1",
            "kind": "KwokConfiguration",
            # Options kwok's own kustomize/kwok/kwok.yaml sets (it has no defaults for the
            # parallelism ones), Stages from the config rather than from CRDs.
            "options": {
                "cidr": "10.244.0.0/16",
                "nodeIP": "127.0.0.1",
                "nodeLeaseParallelism": 4,
                "podPlayStageParallelism": 4,
                "nodePlayStageParallelism": 4,
                "enablePodsOnNodeSyncStreamWatch": True,
            },
        }
        (run / "kwok.yaml").write_text(
            "---\n".join([yaml.safe_dump(kwok_config), *(stage.read_text() for stage in stages)])
        )
        kwok = self._spawn(
            "kwok",
            [
                "kwok",
                f"--kubeconfig={run / 'kwok.kubeconfig'}",
                f"--config={run / 'kwok.yaml'}",
                "--manage-all-nodes=false",
                "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
                f"--server-address=127.0.0.1:{ports['kwok']}",
                "--node-ip=127.0.0.1",
                f"--node-port={ports['kwok']}",
                "--node-lease-duration-seconds=40",
            ],
        )
        _wait(
            "kube-controller-manager",
            lambda: self._https_ready(ports["kcm"], "/healthz", client=False),
            timeout,
            self.log("kcm"),
            kcm,
        )
        _wait(
            "kube-scheduler",
            lambda: self._https_ready(ports["scheduler"], "/healthz", client=False),
            timeout,
            self.log("scheduler"),
            scheduler,
        )
        _wait(
            "kwok",
            lambda: self._http_ready(f"http://127.0.0.1:{ports['kwok']}/healthz"),
            timeout,
            self.log("kwok"),
            kwok,
        )

        self.apply_objects([_fake_node()])
        _wait(f"node {FAKE_NODE} Ready", self._node_ready, timeout, self.log("kwok"), kwok)
        # Pods need their namespace's `default` ServiceAccount (kcm's serviceaccount controller).
        _wait(
            "ServiceAccount default/default",
            lambda: self.kubectl("get", "serviceaccount", "default", check=False).returncode == 0,
            timeout,
            self.log("kcm"),
            kcm,
        )

    def _node_ready(self) -> bool:
        proc = self.kubectl("get", "node", FAKE_NODE, "-o", "json", check=False)
        if proc.returncode != 0:
            return False
        conditions = json.loads(proc.stdout).get("status", {}).get("conditions", [])
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    # -- using it ---------------------------------------------------------------------------------

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, kubeconfig: Path | None = None
    ) -> subprocess.CompletedProcess:
        """``kubectl`` as the admin (or with ``kubeconfig``); raises with its stderr when ``check``."""
        proc = subprocess.run(
            [self.kubectl_path, f"--kubeconfig={kubeconfig or self.kubeconfig}", *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if check and proc.returncode != 0:
            raise ControlPlaneError(
                f"kubectl {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}"
            )
        return proc

    def apply_objects(self, objects: list[dict], server_side: bool = False) -> None:
        """``kubectl apply`` (as the admin) of ``objects``."""
        flags = ["--server-side"] if server_side else []
        self.kubectl("apply", *flags, "-f", "-", input=yaml.safe_dump_all(objects))

    def install_crds(self, timeout: float = 60) -> list[str]:
        """Create the CRDs of the build's share/crds (server-side: Seldon's is 2.7 MB, too big for
        client-side apply's last-applied annotation) and wait until each is Established."""
        names = []
        for path in sorted((self.build_dir / "share" / "crds").glob("*.yaml")):
            self.kubectl("apply", "--server-side", "--field-manager=kfkit-tests", "-f", str(path))
            names.extend(doc["metadata"]["name"] for doc in yaml.safe_load_all(path.read_text()) if doc)
        self.kubectl(
            "wait",
            "--for=condition=Established",
            f"--timeout={timeout:.0f}s",
            *(f"crd/{name}" for name in names),
        )
        return names

    def start_seldon(self, timeout: float = 90) -> None:
        """Seldon Core v1's operator (build's bin/seldon-operator) as its own install would run it:
        namespace seldon-system, its ConfigMap `seldon-config`, its ClusterRoles bound to its
        ServiceAccount (it runs with that account's token), its validating webhook registered
        with the API server by URL (loopback, certificate from the test CA). Needs install_crds()."""
        share = self.build_dir / "share" / "seldon"
        namespace, account = SELDON_NAMESPACE, "seldon-manager"
        self.ensure_namespace(namespace)
        configmap = yaml.safe_load((share / "configmap.yaml").read_text())
        configmap["metadata"] = {"name": "seldon-config", "namespace": namespace}
        objects: list[dict] = [
            configmap,
            {
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {"name": account, "namespace": namespace},
            },
        ]
        for file in ("role.yaml", "role_sas.yaml"):
            for role in yaml.safe_load_all((share / file).read_text()):
                if not role:
                    continue
                name = f"seldon-{role['metadata']['name']}"
                role["metadata"] = {"name": name}
                binding = {
                    "apiVersion": "rbac.authorization.k8s.io/v1",
                    "kind": "ClusterRoleBinding",
                    "metadata": {"name": name},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
                    "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}],
                }
                objects += [role, binding]
        self.apply_objects(objects)

        port = self.ports["seldon-webhook"] = free_port()
        probe = self.ports["seldon-probe"] = free_port()
        certs = self.workdir / "seldon-certs"
        certs.mkdir(exist_ok=True)
        cert, key = self.ca.issue("seldon-webhook", hosts=["127.0.0.1"])
        (certs / "tls.crt").write_bytes(cert)
        (certs / "tls.key").write_bytes(key)
        operator = self._spawn(
            "seldon",
            [
                "seldon-operator",
                f"--webhook-port={port}",
                f"--cert-dir={certs}",
                f"--probe-addr=127.0.0.1:{probe}",
                f"--metrics-addr=127.0.0.1:{free_port()}",
            ],
            env={
                **_seldon_environment(share / "manager.yaml", namespace),
                "KUBECONFIG": str(self.token_kubeconfig(namespace, account, hours=24)),
            },
        )
        _wait(
            "seldon operator",
            lambda: self._http_ready(f"http://127.0.0.1:{probe}/readyz"),
            timeout,
            self.log("seldon"),
            operator,
        )

        # Upstream's install registers this webhook (the kubebuilder marker of its v1 webhook).
        webhook = {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": "seldon-validating-webhook-configuration"},
            "webhooks": [
                {
                    "name": "v1.vseldondeployment.kb.io",
                    "admissionReviewVersions": ["v1", "v1beta1"],
                    "clientConfig": {
                        "url": f"https://127.0.0.1:{port}/validate-machinelearning-seldon-io-v1-seldondeployment",
                        "caBundle": base64.b64encode(self.ca_pem).decode(),
                    },
                    "failurePolicy": "Fail",
                    "sideEffects": "None",
                    "rules": [
                        {
                            "apiGroups": ["machinelearning.seldon.io"],
                            "apiVersions": ["v1"],
                            "operations": ["CREATE", "UPDATE"],
                            "resources": ["seldondeployments"],
                        }
                    ],
                }
            ],
        }
        self.apply_objects([webhook])

    def ensure_namespace(self, name: str) -> None:
        """Create namespace ``name`` unless it exists (a pipelines namespace, as Kubeflow's profile
        controller would have made it)."""
        self.apply_objects([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}])

    def token_kubeconfig(self, namespace: str, service_account: str, hours: int = 2) -> Path:
        """A kubeconfig for ``system:serviceaccount:<namespace>:<service_account>`` with a token from
        the TokenRequest API (the ServiceAccount must exist)."""
        token = self.kubectl(
            "create", "token", service_account, "-n", namespace, f"--duration={hours}h"
        ).stdout.strip()
        name = f"{namespace}-{service_account}"
        path = self.workdir / f"sa-{name}.kubeconfig"
        path.write_text(kubeconfig(self.server, self.ca_pem, {"token": token}, name))
        path.chmod(0o600)
        return path

    # -- stop -------------------------------------------------------------------------------------

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM each process group this object started (newest first), SIGKILL what remains."""
        for process in reversed(list(self.processes.values())):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.processes.clear()


def _seldon_environment(manager_yaml: Path, namespace: str) -> dict[str, str]:
    """The environment upstream's manager Deployment gives the operator (plain values), with what a
    cluster without Ambassador, Istio or KEDA needs instead."""
    deployment = next(
        d for d in yaml.safe_load_all(manager_yaml.read_text()) if d and d["kind"] == "Deployment"
    )
    (container,) = [c for c in deployment["spec"]["template"]["spec"]["containers"] if c["name"] == "manager"]
    env = {item["name"]: str(item.get("value", "")) for item in container["env"] if "valueFrom" not in item}
    env.update(
        POD_NAMESPACE=namespace,
        WATCH_NAMESPACE="",
        AMBASSADOR_ENABLED="false",
        ISTIO_ENABLED="false",
        KEDA_ENABLED="false",
    )
    return env


def _fake_node() -> dict:
    capacity = {"cpu": "16", "memory": "64Gi", "pods": "110"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": FAKE_NODE,
            # The annotation KWOK is told to manage (--manage-nodes-with-annotation-selector).
            "annotations": {"kwok.x-k8s.io/node": "fake"},
            "labels": {
                "kubernetes.io/hostname": FAKE_NODE,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
            },
        },
        "status": {"capacity": capacity, "allocatable": capacity},
    }


def main(argv: list[str]) -> int:
    if argv[1:] != ["up"]:
        print("usage: python tests/cluster/controlplane.py up", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="kfkit-controlplane-"))
    plane = ControlPlane(workdir)
    plane.start()
    try:
        started = time.monotonic()
        plane.install_crds()
        plane.start_seldon()
        extra = time.monotonic() - started
        print(
            f"control plane up in {plane.start_seconds:.1f} s, CRDs and Seldon's operator {extra:.1f} s more"
        )
        print(f"logs in {workdir}")
        print(f"export KUBECONFIG={plane.kubeconfig}")
        print(f"kubectl: {plane.kubectl_path}; Ctrl-C stops it")
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        plane.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
