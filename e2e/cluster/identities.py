"""Kubeconfigs for limited identities, so tests can act as the tenant's ServiceAccount in the parent."""

from __future__ import annotations

from pathlib import Path

from e2e.cluster import Cluster
from e2e.cluster.kubeconfig import token_user, write_kubeconfig


def service_account_kubeconfig(
    cluster: Cluster, which: str, namespace: str, name: str, out: Path, *, create: bool = True, duration: str = "1h"
) -> Path:
    """Write a kubeconfig that authenticates as ServiceAccount namespace/name with a bound token."""
    plane = cluster.plane(which)
    if create:
        manifest = f"apiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: {name}, namespace: {namespace}}}\n"
        cluster.kubectl_run(
            which, "apply", "--server-side", "--field-manager=tenant-cloud-harness", "-f", "-", stdin=manifest
        )
    token = cluster.kubectl_run(
        which, "create", "token", name, f"--namespace={namespace}", f"--duration={duration}"
    ).strip()
    return write_kubeconfig(
        out,
        name=f"{which}-{namespace}-{name}",
        server=plane.server,
        ca_pem=(plane.pki / "ca.crt").read_bytes(),
        user=token_user(token),
        namespace=namespace,
    )
