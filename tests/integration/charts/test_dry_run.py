"""Every manifest both charts render is accepted by a real apiserver: the tenant chart by the tenant, the
parent chart by the parent (server-side apply, dry run: admission and validation run, nothing is stored)."""

from __future__ import annotations

from pathlib import Path

import pytest

from e2e import cluster as harness
from e2e import helm


def _id(path: Path | None) -> str:
    return path.name.removesuffix("-values.yaml") if path else "defaults"


def dry_run(cluster: harness.Cluster, which: str, manifests: str) -> str:
    return cluster.kubectl_run(
        which,
        "apply",
        "--server-side",
        "--dry-run=server",
        "--force-conflicts",
        "--field-manager=tenant-cloud-charts",
        "-f",
        "-",
        stdin=manifests,
    )


@pytest.mark.parametrize("values_file", [None, *helm.example_values(helm.TENANT_CHART)], ids=_id)
def test_the_tenant_chart_is_accepted_by_the_tenant(cluster: harness.Cluster, values_file: Path | None) -> None:
    text = helm.template_text(
        helm.TENANT_CHART, namespace="kube-system", value_files=[values_file] if values_file else []
    )
    out = dry_run(cluster, "tenant", text)
    kinds = {"Deployment", "DaemonSet", "CSIDriver", "StorageClass", "VolumeSnapshotClass", "ClusterRole"}
    for kind in kinds:
        assert f"{kind.lower()}." in out.lower() or f"{kind.lower()}/" in out.lower(), kind
    assert out.count("(server dry run)") == len(
        helm.template(helm.TENANT_CHART, namespace="kube-system", value_files=[values_file] if values_file else [])
    )


@pytest.mark.parametrize("values_file", [None, *helm.example_values(helm.PARENT_CHART)], ids=_id)
def test_the_parent_chart_is_accepted_by_the_parent(cluster: harness.Cluster, values_file: Path | None) -> None:
    files = [values_file] if values_file else []
    values = {"clusterName": cluster.cluster_name}
    manifests = helm.template(helm.PARENT_CHART, namespace=cluster.parent_namespace, value_files=files, values=values)
    text = helm.template_text(helm.PARENT_CHART, namespace=cluster.parent_namespace, value_files=files, values=values)
    out = dry_run(cluster, "parent", text)
    assert out.count("(server dry run)") == len(manifests)
    assert "validatingadmissionpolicy.admissionregistration.k8s.io/" in out
