"""The stand-in on the harness: where a tenant node's kubelet, plugin socket and guest disks live, and running it
as a background process that `python -m e2e.cluster down` stops."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from csi.app import resolve_node_id
from csi.ids import parse_node_id
from e2e.cluster import Cluster, Process, controlplane, mounts, start_process, update_processes
from e2e.kubelet.manager import DEFAULT_DRIVER, Settings
from e2e.kubelet.plugin import PluginCommand
from e2e.sims._kubevirt_disks import by_id_root
from kube.client import Client

READY_TIMEOUT = 60.0


def kubelet_root(cluster: Cluster, node: str) -> Path:
    return cluster.dir / "kubelet" / node


def plugin_socket(cluster: Cluster, node: str) -> Path:
    return cluster.dir / "run" / f"csi-{node}.sock"


def ready_file(cluster: Cluster, node: str) -> Path:
    return cluster.dir / "run" / f"kubelet-{node}.ready"


async def settings_for(
    cluster: Cluster, tenant: Client, node: str, *, driver: str = DEFAULT_DRIVER, endpoint: str = "", verbosity: int = 2
) -> Settings:
    """Settings for `node` of this harness; without `endpoint`, our node plugin on the node's simulated disks."""
    plugin = None
    if not endpoint:
        # The VM the driver's node ID names (providerID, instance-id label or Node name) is the VMI's name too.
        _, vm = parse_node_id(await resolve_node_id(tenant, node, cluster.parent_namespace))
        disks = by_id_root(cluster.dir, vm)
        plugin = PluginCommand(
            node=node,
            socket=plugin_socket(cluster, node),
            by_id_root=disks,
            parent_namespace=cluster.parent_namespace,
            tenant_kubeconfig=cluster.tenant_kubeconfig,
            driver_name=driver,
            verbosity=verbosity,
        )
    return Settings(
        node=node,
        root=kubelet_root(cluster, node),
        tenant_kubeconfig=cluster.tenant_kubeconfig,
        driver=driver,
        endpoint=endpoint,
        plugin=plugin,
        plugin_log=cluster.dir / "logs" / f"csi-node-{node}.log",
    )


def command(cluster: Cluster, node: str, *, driver: str = DEFAULT_DRIVER, endpoint: str = "") -> list[str]:
    cmd = [sys.executable, "-m", "e2e.kubelet", "--dir", str(cluster.dir), "--node", node, "--driver-name", driver]
    return [*cmd, "--endpoint", endpoint] if endpoint else cmd


def start(
    cluster: Cluster, node: str, *, driver: str = DEFAULT_DRIVER, endpoint: str = "", wait: bool = True
) -> Process:
    """Run the stand-in for `node` in the background (logs in DIR/logs/kubelet-<node>.log); by default wait
    until it has registered the plugin and synced its watches. Blocking: from async code use a thread."""
    ready_file(cluster, node).unlink(missing_ok=True)
    process = start_process(cluster, f"kubelet-{node}", command(cluster, node, driver=driver, endpoint=endpoint))
    deadline = time.monotonic() + READY_TIMEOUT
    while wait and not _ready(cluster, node, process):
        if time.monotonic() > deadline:
            raise TimeoutError(f"the kubelet stand-in for {node} is not ready after {READY_TIMEOUT:.0f}s")
        time.sleep(0.05)
    return process


def _ready(cluster: Cluster, node: str, process: Process) -> bool:
    if ready_file(cluster, node).exists():
        return True
    if not controlplane.pid_alive(process.pid):
        raise RuntimeError(f"the kubelet stand-in for {node} exited; see {cluster.dir}/logs/kubelet-{node}.log")
    return False


def stop(cluster: Cluster, process: Process) -> None:
    """Stop one stand-in (SIGTERM: it finishes in-flight operations and stops its plugin) and forget it."""
    controlplane.stop_process(process.pid, process.cmd[0])
    update_processes(cluster, lambda processes: [p for p in processes if p.pid != process.pid])


def unmount_leftovers(cluster: Cluster, node: str | None = None) -> list[Path]:
    """Unmount whatever stand-ins (or only `node`'s) left mounted under DIR/kubelet (kubelet, too, leaves mounts
    in place when it stops), deepest first. Returns what was unmounted. `e2e.cluster.down` does it as well."""
    return mounts.release(kubelet_root(cluster, node) if node else cluster.dir / "kubelet")
