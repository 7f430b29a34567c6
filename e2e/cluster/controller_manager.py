"""kube-controller-manager for the tenant control plane, configured as kubeadm configures it.

Opt-in (`harness.up(..., controller_manager=True)`, `python -m e2e.cluster up --with-controller-manager`):
PV binding and expansion, attach/detach (VolumeAttachments for pods bound to Nodes), garbage collection,
namespace deletion and the other default controllers, each with its own ServiceAccount credentials. Not the
node lifecycle controller: the harness's Nodes have no kubelet posting heartbeats, so it would mark them
NotReady and taint them. Nor the cloud controllers: our ccm runs those.
"""

from __future__ import annotations

import ssl
import time
import urllib.error
import urllib.request
from pathlib import Path

from e2e.cluster.controlplane import LOOPBACK, PlaneState, pid_alive
from e2e.cluster.kubeconfig import client_cert_user, write_kubeconfig
from e2e.cluster.pki import CertificateAuthority

NAME = "kube-controller-manager"
# The RBAC bootstrap policy binds this user to the system:kube-controller-manager ClusterRole.
USER = "system:kube-controller-manager"
DISABLED_CONTROLLERS = (
    "node-lifecycle-controller",
    "cloud-node-lifecycle-controller",
    "service-lb-controller",
    "node-route-controller",
)
# Controllers the e2e scenarios rely on; `up` returns only once /healthz lists each of them.
REQUIRED_CONTROLLERS = (
    "persistentvolume-binder-controller",
    "persistentvolume-attach-detach-controller",
    "persistentvolume-expander-controller",
    "garbage-collector-controller",
    "namespace-controller",
    "serviceaccount-controller",
    "pod-garbage-collector-controller",
)


def kubeconfig(plane: PlaneState) -> Path:
    """A client certificate for system:kube-controller-manager, signed by the plane's CA."""
    ca = CertificateAuthority.load(plane.pki, "ca")
    identity = ca.issue(USER, client=True)
    path = Path(plane.root) / f"{NAME}.kubeconfig"
    return write_kubeconfig(
        path,
        name=f"{plane.name}-{NAME}",
        server=plane.server,
        ca_pem=ca.pair.cert_pem,
        user=client_cert_user(identity.cert_pem, identity.key_pem),
    )


def command(plane: PlaneState, cluster_name: str, binary: Path, port: int) -> list[str]:
    config = kubeconfig(plane)
    return [
        str(binary),
        f"--kubeconfig={config}",
        f"--authentication-kubeconfig={config}",
        f"--authorization-kubeconfig={config}",
        f"--bind-address={LOOPBACK}",
        f"--secure-port={port}",
        f"--cert-dir={Path(plane.root) / 'kube-controller-manager-certs'}",
        f"--client-ca-file={plane.pki / 'ca.crt'}",
        f"--root-ca-file={plane.pki / 'ca.crt'}",
        f"--service-account-private-key-file={plane.pki / 'sa.key'}",
        f"--cluster-signing-cert-file={plane.pki / 'ca.crt'}",
        f"--cluster-signing-key-file={plane.pki / 'ca.key'}",
        f"--service-cluster-ip-range={plane.service_cidrs}",
        f"--cluster-name={cluster_name}",
        "--controllers=*," + ",".join(f"-{name}" for name in DISABLED_CONTROLLERS),
        "--use-service-account-credentials=true",
        # One replica; a lease would only delay the start.
        "--leader-elect=false",
        "--profiling=false",
        "--v=2",
    ]


def unhealthy(port: int) -> str | None:
    """None when /healthz passes with every required controller started; else what is missing."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # its serving certificate is self-signed in --cert-dir
    try:
        with urllib.request.urlopen(f"https://{LOOPBACK}:{port}/healthz?verbose", context=context, timeout=2) as r:
            report = r.read().decode()
    except urllib.error.HTTPError as error:
        return f"/healthz answered {error.code}"
    except (urllib.error.URLError, OSError) as error:
        return f"/healthz not served yet ({error})"
    missing = [name for name in REQUIRED_CONTROLLERS if f"[+]{name} ok" not in report]
    return f"controllers not started: {', '.join(missing)}" if missing else None


def wait_healthy(pid: int, port: int, log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while (problem := unhealthy(port)) is not None:
        if not pid_alive(pid):
            raise RuntimeError(f"{NAME} exited; see {log}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{NAME} not healthy after {timeout:.0f}s: {problem}; see {log}")
        time.sleep(0.2)
