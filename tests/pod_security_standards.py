"""The Pod Security Standards' "restricted" profile (which includes "baseline"), checked on a pod
spec the way the API server's Pod Security admission would, from the documented controls:
https://kubernetes.io/docs/concepts/security/pod-security-standards/ (Kubernetes v1.32).

Only the fields each control names are read; a control passes when its field is unset or holds
an allowed value, exactly as the page's "Allowed Values" column says.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

# Baseline "Capabilities": adding any other is refused.
BASELINE_CAPABILITIES = {
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
}
# Baseline "Sysctls": the safe set.
SAFE_SYSCTLS = {
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}
SELINUX_TYPES = {"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"}
# Restricted "Volume Types": only these sources.
RESTRICTED_VOLUME_SOURCES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}


def _containers(spec: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for key in ("containers", "initContainers", "ephemeralContainers"):
        yield from spec.get(key) or []


def restricted_violations(spec: dict[str, Any]) -> list[str]:
    """What in ``spec`` (a PodSpec) the "restricted" profile refuses; empty when it passes."""
    found: list[str] = []
    pod = spec.get("securityContext") or {}
    containers = list(_containers(spec))
    contexts = [(c.get("name", "?"), c.get("securityContext") or {}) for c in containers]

    # -- baseline ---------------------------------------------------------------------------
    if (pod.get("windowsOptions") or {}).get("hostProcess") or any(
        (sc.get("windowsOptions") or {}).get("hostProcess") for _, sc in contexts
    ):
        found.append("HostProcess: windowsOptions.hostProcess must be unset or false")
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(field):
            found.append(f"Host Namespaces: {field} must be unset or false")
    for name, sc in contexts:
        if sc.get("privileged"):
            found.append(f"Privileged Containers: {name} securityContext.privileged must be unset or false")
        added = set((sc.get("capabilities") or {}).get("add") or [])
        if added - BASELINE_CAPABILITIES:
            found.append(f"Capabilities (baseline): {name} adds {sorted(added - BASELINE_CAPABILITIES)}")
        if sc.get("procMount") not in (None, "Default"):
            found.append(f"/proc Mount Type: {name} procMount must be unset or Default")
    for volume in spec.get("volumes") or []:
        if "hostPath" in volume:
            found.append(f"HostPath Volumes: volume {volume.get('name')} is a hostPath")
    for container in containers:
        for port in container.get("ports") or []:
            if port.get("hostPort"):
                found.append(f"Host Ports: {container.get('name')} uses hostPort {port['hostPort']}")
    for name, sc in [("pod", pod), *contexts]:
        apparmor = (sc.get("appArmorProfile") or {}).get("type")
        if apparmor not in (None, "RuntimeDefault", "Localhost"):
            found.append(f"AppArmor: {name} appArmorProfile.type {apparmor!r}")
        selinux = sc.get("seLinuxOptions") or {}
        if selinux.get("type", "") not in SELINUX_TYPES or selinux.get("user") or selinux.get("role"):
            found.append(f"SELinux: {name} seLinuxOptions {selinux}")
        if (sc.get("seccompProfile") or {}).get("type") == "Unconfined":
            found.append(f"Seccomp: {name} seccompProfile.type must not be Unconfined")
    for sysctl in pod.get("sysctls") or []:
        if sysctl.get("name") not in SAFE_SYSCTLS:
            found.append(f"Sysctls: {sysctl.get('name')} is not in the safe set")

    # -- restricted -------------------------------------------------------------------------
    for volume in spec.get("volumes") or []:
        sources = set(volume) - {"name"}
        if sources - RESTRICTED_VOLUME_SOURCES:
            found.append(f"Volume Types: volume {volume.get('name')} uses {sorted(sources)}")
    for name, sc in contexts:
        if sc.get("allowPrivilegeEscalation") is not False:
            found.append(f"Privilege Escalation: {name} allowPrivilegeEscalation must be false")
        # Running as Non-root: the container's own setting wins over the pod's.
        if sc.get("runAsNonRoot", pod.get("runAsNonRoot")) is not True:
            found.append(f"Running as Non-root: {name} runAsNonRoot must be true (pod or container)")
        seccomp = (sc.get("seccompProfile") or pod.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            found.append(f"Seccomp: {name} seccompProfile.type must be RuntimeDefault or Localhost")
        capabilities = sc.get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or []):
            found.append(f"Capabilities: {name} must drop ALL")
        if set(capabilities.get("add") or []) - {"NET_BIND_SERVICE"}:
            found.append(f"Capabilities: {name} may add only NET_BIND_SERVICE")
    for name, sc in [("pod", pod), *contexts]:
        if sc.get("runAsUser") == 0:
            found.append(f"Running as Non-root user: {name} runAsUser must not be 0")
    return found


def pod_specs(obj: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, PodSpec) of every pod template in a Kubernetes object, SeldonDeployments included."""
    kind, spec = obj.get("kind"), obj.get("spec") or {}
    name = f"{kind} {obj.get('metadata', {}).get('name')}"
    if kind == "Pod":
        yield name, spec
    elif kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        yield name, spec["template"]["spec"]
    elif kind == "CronJob":
        yield name, spec["jobTemplate"]["spec"]["template"]["spec"]
    elif kind == "SeldonDeployment":
        for predictor in spec.get("predictors") or []:
            for index, component in enumerate(predictor.get("componentSpecs") or []):
                yield f"{name} predictor {predictor['name']} componentSpecs[{index}]", component["spec"]
