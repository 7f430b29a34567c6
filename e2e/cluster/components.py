"""Command lines of our own components run against the harness, as the charts run them."""

from __future__ import annotations

import sys

from e2e.cluster import Cluster


def ccm_command(
    cluster: Cluster,
    *,
    health_bind: str = "127.0.0.1:0",
    metrics_bind: str = "127.0.0.1:0",
    extra: tuple[str, ...] = (),
) -> list[str]:
    """`python -m ccm` for this harness, with a cloud-config in kubevirt-ccm's format written to DIR."""
    config = cluster.dir / "cloud-config"
    config.write_text(
        f"kubeconfig: {cluster.parent_kubeconfig}\nnamespace: {cluster.parent_namespace}\n"
        "loadBalancer: {enabled: true}\ninstancesV2: {enabled: true, zoneAndRegionEnabled: true}\n"
    )
    return [
        sys.executable,
        "-m",
        "ccm",
        f"--cloud-config={config}",
        f"--kubeconfig={cluster.tenant_kubeconfig}",
        f"--cluster-name={cluster.cluster_name}",
        f"--health-bind-address={health_bind}",
        f"--metrics-bind-address={metrics_bind}",
        *extra,
    ]
