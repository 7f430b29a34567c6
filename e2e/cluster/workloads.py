"""tenant-cloud deployed into the harness the way a platform deploys it, its pods run as local processes.

    stack = workloads.start(cluster)   # after harness.up(..., controller_manager=True)

prepares the parent (e2e.cluster.platform), installs the tenant chart minus its workloads
(e2e.cluster.tenant_chart), then runs the chart's ccm pod and CSI controller pod (our driver, csi-provisioner,
csi-attacher, csi-resizer, csi-snapshotter, built by e2e.binaries) with their chart arguments, and the tenant's
snapshot-controller add-on. It returns once each is ready; a process that dies first fails it with its log.
The CSI node plugin runs per Node with the kubelet stand-in, not here.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from e2e.binaries import sidecar_binaries
from e2e.cluster import Cluster, Process, controlplane, platform, start_process, tenant_chart
from e2e.cluster.components import chart_container_command, snapshot_controller_command
from e2e.cluster.platform import Platform
from e2e.cluster.tenant_chart import FSTYPE_PARAMETER, TenantChart

# What each sidecar logs once it has the driver's name, leads and starts its controller (pinned versions).
READY_LOG_LINES = {
    "csi-provisioner": "Started provisioner controller",
    "csi-attacher": "Starting CSI attacher",
    "csi-resizer": "Starting external resizer",
    "csi-snapshotter": "Starting CSI snapshotter",
    "snapshot-controller": "Starting snapshot controller",
}
# Only the kubelet reads it; nothing to run here.
NOT_RUN = {"liveness-probe"}
SNAPSHOT_CONTROLLER = "snapshot-controller"
DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"


@dataclass
class Stack:
    """What `start` deployed: the platform's names, the rendered chart, and the processes with their addresses."""

    platform: Platform
    chart: TenantChart
    processes: list[Process] = field(default_factory=list)
    binds: dict[str, dict[str, str]] = field(default_factory=dict)  # process name -> listen flag -> address

    @property
    def driver_name(self) -> str:
        return str(self.chart.one("CSIDriver")["metadata"]["name"])

    @property
    def storage_class(self) -> str:
        """The default StorageClass (ext4, the chart's default filesystem)."""
        return self._storage_class(lambda c: c["metadata"]["annotations"][DEFAULT_CLASS] == "true")

    def storage_class_formatting(self, fs_type: str) -> str:
        """A StorageClass whose volumes are formatted with `fs_type` (its csi.storage.k8s.io/fstype)."""
        return self._storage_class(lambda c: (c.get("parameters") or {}).get(FSTYPE_PARAMETER) == fs_type)

    def _storage_class(self, wanted: Callable[[Mapping[str, Any]], bool]) -> str:
        found = [c["metadata"]["name"] for c in self.chart.all("StorageClass") if wanted(c)]
        if len(found) != 1:
            raise LookupError(f"{len(found)} StorageClasses of the chart match, not one: {found}")
        return str(found[0])

    @property
    def snapshot_class(self) -> str:
        return str(self.chart.one("VolumeSnapshotClass")["metadata"]["name"])


Readiness = Callable[[], bool]


@dataclass
class _Pending:
    process: Process
    log: Path
    ready: Readiness


def _log_shows(log: Path, offset: int, line: str) -> Readiness:
    """True once the process logged `line` (only what it logged since `offset`, this start)."""

    def check() -> bool:
        with log.open("rb") as text:
            text.seek(offset)
            return line.encode() in text.read()

    return check


def _http_ok(url: str) -> Readiness:
    def check() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    return check


def _start(cluster: Cluster, name: str, cmd: list[str], ready_line: str | None = None, ready_url: str = "") -> _Pending:
    """Start one process; it is ready once it logs `ready_line`, else once `ready_url` answers 200."""
    for process in cluster.processes:
        if process.name == name and controlplane.pid_alive(process.pid):
            raise RuntimeError(f"{name} already runs (pid {process.pid}); never two on one plane")
    log = cluster.dir / "logs" / f"{name}.log"
    offset = log.stat().st_size if log.exists() else 0
    process = start_process(cluster, name, cmd)
    return _Pending(process, log, _log_shows(log, offset, ready_line) if ready_line else _http_ok(ready_url))


def _start_pod(
    cluster: Cluster, stack: Stack, deployment: Mapping[str, Any], sidecars: Mapping[str, Path]
) -> list[_Pending]:
    """Every container of one chart pod, each as a process named <component>-<container>."""
    pod = tenant_chart.local_pod(cluster, deployment)
    component = pod.root.name
    started = []
    for container in pod.containers():
        if container["name"] in NOT_RUN:
            continue
        local = chart_container_command(pod, container, sidecars)
        name = component if local.container == component else f"{component}-{local.container}"
        stack.binds[name] = local.binds
        # Our components serve /readyz (informers synced); the sidecars only say so in their log.
        health = local.binds.get("--health-bind-address", "")
        line = READY_LOG_LINES.get(local.container)
        started.append(_start(cluster, name, local.cmd, ready_line=line, ready_url=f"http://{health}/readyz"))
    return started


def _wait(pending: list[_Pending], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while pending := [p for p in pending if not p.ready()]:
        for p in pending:
            if not controlplane.pid_alive(p.process.pid):
                tail = "\n".join(p.log.read_text(errors="replace").splitlines()[-20:])
                raise RuntimeError(f"{p.process.name} exited before it was ready; see {p.log}:\n{tail}")
        if time.monotonic() > deadline:
            names = ", ".join(f"{p.process.name} ({p.log})" for p in pending)
            raise TimeoutError(f"not ready after {timeout:.0f}s: {names}")
        time.sleep(0.1)


def start(
    cluster: Cluster,
    *,
    ccm: bool = True,
    values: Mapping[str, Any] | None = None,
    parent_values: Mapping[str, Any] | None = None,
    timeout: float = 90.0,
) -> Stack:
    """Deploy tenant-cloud into the harness and run its controller-side pods; see the module docstring.
    `values` and `parent_values` override the tenant and parent charts' values."""
    prepared = platform.install(cluster, parent_values)
    chart = tenant_chart.install(cluster, tenant_chart.values(cluster, prepared, values))
    stack = Stack(prepared, chart)
    sidecars = sidecar_binaries()
    pending: list[_Pending] = []
    if ccm:
        pending += _start_pod(cluster, stack, chart.deployment("ccm"), sidecars)
    pending += _start_pod(cluster, stack, chart.deployment("csi-controller"), sidecars)
    # A cluster add-on, not part of the chart; the parent's snapshot controller is the simulator's.
    admin = cluster.tenant_kubeconfig
    cmd = snapshot_controller_command(sidecars[SNAPSHOT_CONTROLLER], admin)
    pending.append(_start(cluster, SNAPSHOT_CONTROLLER, cmd, ready_line=READY_LOG_LINES[SNAPSHOT_CONTROLLER]))
    stack.processes = [p.process for p in pending]
    _wait(pending, timeout)
    return stack
