"""Command lines of our own components run against the harness, as the charts run them."""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from e2e.cluster import Cluster
from e2e.cluster.controlplane import LOOPBACK, free_port
from e2e.cluster.nodes import CLUSTER_LABEL
from e2e.cluster.tenant_chart import LocalPod


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


# The chart's images run these entry points; here they are our modules and the sidecars built from Go.
OUR_ENTRY_POINTS = {"tenant-cloud-csi": "csi", "tenant-cloud-ccm": "ccm"}
# Outside a pod there is no in-cluster config: this flag names the tenant kubeconfig instead.
TENANT_KUBECONFIG_FLAG = {"tenant-cloud-csi": "--tenant-cluster-kubeconfig"}
_ANY_ADDRESS_PORT = re.compile(r":\d+")
_ENV_REFERENCE = re.compile(r"\$\((\w+)\)")


def csi_controller_command(
    cluster: Cluster, endpoint: str, *, cluster_name: str = "", verbosity: int = 1, extra: tuple[str, ...] = ()
) -> list[str]:
    """`python -m csi`, controller service only, for `cluster_name`'s (default: this harness's) parent objects;
    health and metrics endpoints off."""
    return [
        sys.executable,
        "-m",
        "csi",
        f"--endpoint={endpoint}",
        f"--infra-cluster-namespace={cluster.parent_namespace}",
        f"--infra-cluster-kubeconfig={cluster.parent_kubeconfig}",
        f"--infra-cluster-labels={CLUSTER_LABEL}={cluster_name or cluster.cluster_name}",
        "--run-node-service=false",
        "--health-bind-address=0",
        "--metrics-bind-address=0",
        f"--v={verbosity}",
        *extra,
    ]


@dataclass(frozen=True)
class LocalCommand:
    """One chart container as a local command line; `binds` maps each listen flag to its loopback address."""

    container: str
    cmd: list[str]
    binds: dict[str, str]


def chart_container_command(
    pod: LocalPod, container: Mapping[str, Any], sidecars: Mapping[str, Path], *, node_name: str = ""
) -> LocalCommand:
    """The container's command and args exactly as the chart renders them, with the pod's paths made local,
    `$(VAR)` expanded from its env, each `:PORT` listener moved to a free loopback port, and the pod's
    ServiceAccount kubeconfig in place of the in-cluster config."""
    command = list(container.get("command") or [container["name"]])  # sidecar images: entry point = name
    entry = command[0]
    if entry in OUR_ENTRY_POINTS:
        head = [sys.executable, "-m", OUR_ENTRY_POINTS[entry]]
    elif entry in sidecars:
        head = [str(sidecars[entry])]
    else:
        raise LookupError(f"container {container['name']}: no local binary for {entry!r}")
    env = pod.env(container, node_name)
    args: list[str] = []
    binds: dict[str, str] = {}
    for arg in [*command[1:], *(container.get("args") or [])]:
        arg = _ENV_REFERENCE.sub(lambda ref: env[ref.group(1)], arg)
        flag, equals, value = arg.partition("=")
        if equals and _ANY_ADDRESS_PORT.fullmatch(value):
            value = binds[flag] = f"{LOOPBACK}:{free_port()}"
        elif equals:
            scheme = "unix:" if value.startswith("unix:") else ""
            value = scheme + pod.local_path(value[len(scheme) :])
        args.append(f"{flag}{equals}{value}")
    kubeconfig_flag = TENANT_KUBECONFIG_FLAG.get(entry, "--kubeconfig")
    return LocalCommand(container["name"], [*head, *args, f"{kubeconfig_flag}={pod.kubeconfig}"], binds)


def snapshot_controller_command(binary: Path, kubeconfig: Path, namespace: str = "kube-system") -> list[str]:
    """The tenant's snapshot-controller as external-snapshotter's deploy/ manifests run it (a cluster add-on)."""
    return [
        str(binary),
        f"--kubeconfig={kubeconfig}",
        "--leader-election=true",
        f"--leader-election-namespace={namespace}",
        "--v=2",
    ]
