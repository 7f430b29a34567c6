"""The tenant chart's pods as local processes: their arguments exactly as rendered, only paths, env references,
listen addresses and the in-cluster identity made local (e2e.cluster.components, e2e.cluster.tenant_chart)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from e2e import helm
from e2e.cluster.components import chart_container_command
from e2e.cluster.tenant_chart import LocalPod, localised, pod_mounts

VALUES = {"clusterName": "acme", "parentNamespace": "tenant-acme"}
SIDECARS = {
    name: Path(f"/cache/{name}") for name in ("csi-provisioner", "csi-attacher", "csi-resizer", "csi-snapshotter")
}


def pod_of(component: str, root: Path) -> LocalPod:
    manifests = helm.template(helm.TENANT_CHART, namespace="kube-system", values=VALUES)
    spec: dict[str, Any] = helm.one(manifests, "Deployment", f"tenant-cloud-{component}")["spec"]["template"]["spec"]
    return LocalPod(
        f"tenant-cloud-{component}", "kube-system", root, root / "sa.kubeconfig", pod_mounts(spec, root), spec
    )


def container(pod: LocalPod, name: str) -> dict[str, Any]:
    return next(c for c in pod.containers() if c["name"] == name)


def test_a_sidecar_keeps_the_chart_arguments_with_a_local_socket_and_namespace(tmp_path: Path) -> None:
    pod = pod_of("csi-controller", tmp_path)
    local = chart_container_command(pod, container(pod, "csi-provisioner"), SIDECARS)
    assert local.cmd == [
        "/cache/csi-provisioner",
        f"--csi-address={tmp_path}/socket-dir/csi.sock",
        "--timeout=60s",  # provisionTimeout + sidecarTimeoutMargin
        "--default-fstype=ext4",
        "--retry-interval-start=1s",
        "--retry-interval-max=5m",
        "--leader-election",
        "--leader-election-namespace=kube-system",
        "--v=2",
        f"--kubeconfig={tmp_path}/sa.kubeconfig",
    ]
    assert local.binds == {}


def test_the_driver_reads_its_mounted_files_and_listens_on_loopback(tmp_path: Path) -> None:
    pod = pod_of("csi-controller", tmp_path)
    local = chart_container_command(pod, container(pod, "csi-driver"), SIDECARS)
    assert local.cmd[:3] == [sys.executable, "-m", "csi"]
    args = local.cmd[3:]
    assert f"--endpoint=unix:{tmp_path}/socket-dir/csi.sock" in args
    assert f"--infra-cluster-kubeconfig={tmp_path}/parent-kubeconfig/kubeconfig" in args
    assert f"--storage-class-enforcement={tmp_path}/config/enforcement.yaml" in args
    assert "--infra-cluster-namespace=tenant-acme" in args
    assert "--vm-labels=cluster.x-k8s.io/cluster-name=acme" in args
    assert set(local.binds) == {"--health-bind-address", "--metrics-bind-address"}
    for flag, address in local.binds.items():
        assert address.startswith("127.0.0.1:") and f"{flag}={address}" in args
    assert args[-1] == f"--tenant-cluster-kubeconfig={tmp_path}/sa.kubeconfig"  # instead of in-cluster


def test_a_container_without_a_local_binary_is_refused(tmp_path: Path) -> None:
    pod = pod_of("csi-controller", tmp_path)
    with pytest.raises(LookupError, match="liveness-probe"):
        chart_container_command(pod, container(pod, "liveness-probe"), SIDECARS)


def test_mounted_files_name_other_mounts_by_local_paths_once() -> None:
    """The cloud-config names the parent kubeconfig by its in-pod path; a local root under /tmp, itself a
    mount of the pod, must not be rewritten a second time."""
    root = Path("/tmp/harness/run/ccm")
    pod = pod_of("ccm", root)
    text = "kubeconfig: /etc/tenant-cloud/parent/kubeconfig\nnote: /etc/tenant-cloud/parentless\n"
    assert localised(text, pod) == (
        "kubeconfig: /tmp/harness/run/ccm/parent-kubeconfig/kubeconfig\nnote: /etc/tenant-cloud/parentless\n"
    )
