"""What the platform prepares in the parent for one tenant cluster, as docs/charts.md describes it.

A LINSTOR-like StorageClass and VolumeSnapshotClass (the CDI and snapshot simulators serve them), a Cilium
LB-IPAM pool for the tenant's namespace, the parent chart (the tenant's ServiceAccount, its Role and the
admission policies), and the parent kubeconfig Secret in the tenant, made by the parent chart's own
`scripts/tenant-kubeconfig.sh`. The tenant chart's pods read that Secret; so do the harness's local processes.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from e2e import helm
from e2e.cluster import Cluster

FIELD_MANAGER = "tenant-cloud-platform"
PARENT_STORAGE_CLASS = "linstor-test"
PARENT_SNAPSHOT_CLASS = "linstor-test-snapshots"
LINSTOR_PROVISIONER = "linstor.csi.linbit.com"
LB_POOL_CIDRS = ("198.51.100.0/24", "fd00:198:51:100::/112")
PARENT_KUBECONFIG_SECRET = "tenant-cloud-parent-kubeconfig"  # the tenant chart's parentKubeconfig default
TOKEN_LIFETIME = "24h"  # the parent runs no token controller, so a TokenRequest, as the script offers


@dataclass(frozen=True)
class Platform:
    """What the tenant chart's values must match."""

    service_account: str
    storage_class: str
    snapshot_class: str
    lb_pool: str


def _apply(cluster: Cluster, which: str, manifests: list[dict[str, Any]] | str) -> None:
    text = manifests if isinstance(manifests, str) else "\n".join(json.dumps(m) for m in manifests)
    args = ["apply", "--server-side", f"--field-manager={FIELD_MANAGER}", "--force-conflicts", "-f", "-"]
    cluster.kubectl_run(which, *args, stdin=text)


def parent_storage() -> list[dict[str, Any]]:
    """The platform's LINSTOR classes, as tests/integration/csi's parent_storage has them."""
    return [
        {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {"name": PARENT_STORAGE_CLASS},
            "provisioner": LINSTOR_PROVISIONER,
            "allowVolumeExpansion": True,
            "reclaimPolicy": "Delete",
            "volumeBindingMode": "Immediate",
            "parameters": {"linstor.csi.linbit.com/placementCount": "2", "linstor.csi.linbit.com/storagePool": "data"},
        },
        {
            "apiVersion": "snapshot.storage.k8s.io/v1",
            "kind": "VolumeSnapshotClass",
            "metadata": {"name": PARENT_SNAPSHOT_CLASS},
            "driver": LINSTOR_PROVISIONER,
            "deletionPolicy": "Delete",
        },
    ]


def lb_pool(cluster: Cluster) -> dict[str, Any]:
    """An LB-IPAM pool serving the tenant's parent namespace only."""
    return {
        "apiVersion": "cilium.io/v2",
        "kind": "CiliumLoadBalancerIPPool",
        "metadata": {"name": cluster.parent_namespace},
        "spec": {
            "blocks": [{"cidr": cidr} for cidr in LB_POOL_CIDRS],
            "serviceSelector": {"matchLabels": {"io.kubernetes.service.namespace": cluster.parent_namespace}},
        },
    }


def parent_chart_values(cluster: Cluster) -> dict[str, Any]:
    return {
        "clusterName": cluster.cluster_name,
        "serviceAccount": {"tokenSecret": False},
        "policies": {
            "storage": {"allowedStorageClasses": [PARENT_STORAGE_CLASS], "allowDefaultStorageClass": False},
        },
    }


def parent_kubeconfig_secret(cluster: Cluster, service_account: str) -> str:
    """The Secret manifest `scripts/tenant-kubeconfig.sh` prints for the tenant."""
    env = dict(os.environ, KUBECTL=f"{cluster.kubectl} --kubeconfig={cluster.parent_kubeconfig}")
    script = helm.PARENT_CHART / "scripts" / "tenant-kubeconfig.sh"
    args = ["--namespace", cluster.parent_namespace, "--service-account", service_account]
    args += ["--server", cluster.parent.server, "--duration", TOKEN_LIFETIME]
    result = subprocess.run(
        ["sh", str(script), *args], capture_output=True, text=True, env=env, check=False, timeout=60
    )
    if result.returncode != 0:
        raise RuntimeError(f"{script.name} failed: {result.stderr.strip()}")
    return result.stdout


def install(cluster: Cluster, overrides: Mapping[str, Any] | None = None) -> Platform:
    """Prepare the parent for the tenant and hand the tenant its parent kubeconfig; idempotent. `overrides` are
    merged into the parent chart's values."""
    pool = lb_pool(cluster)
    _apply(cluster, "parent", [*parent_storage(), pool])
    values = helm.merge_values(parent_chart_values(cluster), overrides or {})
    manifests = helm.template(helm.PARENT_CHART, namespace=cluster.parent_namespace, values=values)
    _apply(cluster, "parent", manifests)
    service_account = helm.one(manifests, "ServiceAccount")["metadata"]["name"]
    _apply(cluster, "tenant", parent_kubeconfig_secret(cluster, service_account))
    return Platform(service_account, PARENT_STORAGE_CLASS, PARENT_SNAPSHOT_CLASS, pool["metadata"]["name"])
