"""The local two-cluster harness: a real `parent` and a real `tenant` control plane (etcd + kube-apiserver).

Usable from pytest fixtures (`up`, `down`, `restart_apiserver`, `load`) and from the shell
(`python -m e2e.cluster up|down|restart-apiserver|sa-kubeconfig ...`).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from e2e.binaries import Binaries, ensure_all
from e2e.cluster import controller_manager as tenant_kcm
from e2e.cluster import controlplane, mounts
from e2e.cluster.controlplane import PlaneState
from e2e.sims import simulators as discover_simulators

CRD_DIR = Path(__file__).parent / "crds"
# The tenant runs the snapshot controller's API too; the rest are parent-only (KubeVirt, CDI, Cilium).
TENANT_CRDS = ("snapshot.yaml",)
PARENT_SERVICE_CIDRS = "10.96.0.0/16,fd00:10:96::/112"
TENANT_SERVICE_CIDRS = "10.112.0.0/16,fd00:10:112::/112"
STATE_FILE = "cluster.json"


@dataclass
class Process:
    """A background process the harness started besides the control planes (a simulator, the demo's ccm)."""

    name: str
    pid: int
    cmd: list[str]


@dataclass
class Cluster:
    """A running harness, as recorded in DIR/cluster.json."""

    dir: Path
    cluster_name: str
    parent_namespace: str
    parent: PlaneState
    tenant: PlaneState
    kubectl: str
    processes: list[Process]
    started_in: float = 0.0
    # The tenant's kube-controller-manager secure port; 0 when it was not asked for.
    controller_manager_port: int = 0

    @property
    def parent_kubeconfig(self) -> Path:
        return self.parent.kubeconfig

    @property
    def tenant_kubeconfig(self) -> Path:
        return self.tenant.kubeconfig

    def plane(self, which: str) -> PlaneState:
        if which not in ("parent", "tenant"):
            raise ValueError(f"no control plane named {which!r} (parent or tenant)")
        return self.parent if which == "parent" else self.tenant

    def kubectl_run(self, which: str, *args: str, stdin: str | None = None) -> str:
        """Run kubectl against one control plane as cluster-admin; raise with its stderr on failure."""
        cmd = [self.kubectl, f"--kubeconfig={self.plane(which).kubeconfig}", *args]
        result = subprocess.run(cmd, input=stdin, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} on {which} failed: {result.stderr.strip()}")
        return result.stdout

    def save(self) -> None:
        state = {
            "clusterName": self.cluster_name,
            "parentNamespace": self.parent_namespace,
            "kubectl": self.kubectl,
            "startedInSeconds": round(self.started_in, 2),
            "planes": {"parent": self.parent.as_dict(), "tenant": self.tenant.as_dict()},
            "ports": {
                name: {"apiserver": p.apiserver_port, "etcd": p.etcd_client_port}
                for name, p in (("parent", self.parent), ("tenant", self.tenant))
            },
            "processes": [p.__dict__ for p in self.processes],
            "controllerManagerPort": self.controller_manager_port,
        }
        (self.dir / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")


def load(directory: Path | str) -> Cluster:
    directory = Path(directory).resolve()
    state = json.loads((directory / STATE_FILE).read_text())
    planes = {name: PlaneState(**fields) for name, fields in state["planes"].items()}
    return Cluster(
        dir=directory,
        cluster_name=state["clusterName"],
        parent_namespace=state["parentNamespace"],
        parent=planes["parent"],
        tenant=planes["tenant"],
        kubectl=state["kubectl"],
        processes=[Process(**p) for p in state["processes"]],
        started_in=state.get("startedInSeconds", 0.0),
        controller_manager_port=state.get("controllerManagerPort", 0),
    )


def _say(message: str) -> None:
    print(f"[cluster] {message}", file=sys.stderr, flush=True)


def _wipe(directory: Path) -> None:
    """Stop whatever a previous `up` in this directory left running, then remove its data."""
    if (directory / STATE_FILE).exists():
        _say(f"cleaning up a previous harness in {directory}")
        try:
            _stop_all(load(directory))
        except (KeyError, TypeError, ValueError) as exc:
            _say(f"unreadable {STATE_FILE} ({exc}); removing the directory without stopping processes")
    _release_mounts(directory)
    for child in directory.iterdir() if directory.exists() else ():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def _install_crds(cluster: Cluster, which: str, files: list[Path]) -> None:
    args = ["apply", "--server-side", "--field-manager=tenant-cloud-harness"]
    for path in files:
        args += ["-f", str(path)]
    cluster.kubectl_run(which, *args)
    cluster.kubectl_run(which, "wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")


def _bootstrap_parent(cluster: Cluster) -> None:
    cluster.kubectl_run("parent", "create", "namespace", cluster.parent_namespace)
    _install_crds(cluster, "parent", sorted(CRD_DIR.glob("*.yaml")))


def _bootstrap_tenant(cluster: Cluster) -> None:
    _install_crds(cluster, "tenant", [CRD_DIR / name for name in TENANT_CRDS])


def start_process(cluster: Cluster, name: str, cmd: list[str]) -> Process:
    """Start a background process that `down` will stop; its output goes to DIR/logs/NAME.log."""
    log = cluster.dir / "logs" / f"{name}.log"
    log.parent.mkdir(exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=Path(__file__).resolve().parents[2],
        )
    started = Process(name=name, pid=proc.pid, cmd=cmd)
    update_processes(cluster, lambda processes: [*processes, started])
    return started


_STATE_LOCK = threading.Lock()


def update_processes(cluster: Cluster, change: Callable[[list[Process]], list[Process]]) -> None:
    """Change the recorded processes on disk and in `cluster`. The planes come from disk: an apiserver may have
    been restarted since `cluster` was loaded, and writing its old PID back would hide the running one."""
    with _STATE_LOCK:
        current = load(cluster.dir) if (cluster.dir / STATE_FILE).exists() else cluster
        current.processes = change(current.processes)
        current.save()
        cluster.parent, cluster.tenant, cluster.processes = current.parent, current.tenant, list(current.processes)


def _start_simulators(cluster: Cluster, timeout: float = 30.0) -> None:
    """Start every simulator and wait until each has written its ready file (see e2e.sims.common)."""
    pending: dict[str, Process] = {}
    for module in discover_simulators():
        name = module.rsplit(".", 1)[-1]
        pending[name] = start_process(cluster, name, [sys.executable, "-m", module, "--dir", str(cluster.dir)])
    deadline = time.monotonic() + timeout
    while pending:
        for name in [n for n in pending if (cluster.dir / "run" / f"{n}.ready").exists()]:
            del pending[name]
        for name, process in pending.items():
            if not controlplane.pid_alive(process.pid):
                raise RuntimeError(f"simulator {name} exited; see {cluster.dir}/logs/{name}.log")
        if time.monotonic() > deadline:
            raise TimeoutError(f"simulators not ready after {timeout:.0f}s: {', '.join(pending)}")
        time.sleep(0.05)


def _start_controller_manager(cluster: Cluster, binary: Path | None) -> Process:
    if binary is None:
        raise RuntimeError("kube-controller-manager is not built (see python -m e2e.binaries)")
    cluster.controller_manager_port = controlplane.free_port()
    cmd = tenant_kcm.command(cluster.tenant, cluster.cluster_name, binary, cluster.controller_manager_port)
    return start_process(cluster, tenant_kcm.NAME, cmd)


def up(
    directory: Path | str,
    cluster_name: str = "demo",
    *,
    simulators: bool = True,
    controller_manager: bool = False,
    binaries: Binaries | None = None,
) -> Cluster:
    """Start parent and tenant control planes in `directory`; return once both answer /readyz.

    `controller_manager` adds the tenant's kube-controller-manager (see e2e.cluster.controller_manager).
    """
    started = time.monotonic()
    directory = Path(directory).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    _wipe(directory)
    binaries = binaries or ensure_all()
    cluster = Cluster(
        dir=directory,
        cluster_name=cluster_name,
        parent_namespace=f"tenant-{cluster_name}",
        parent=controlplane.prepare("parent", directory / "parent", binaries, PARENT_SERVICE_CIDRS),
        tenant=controlplane.prepare("tenant", directory / "tenant", binaries, TENANT_SERVICE_CIDRS),
        kubectl=str(binaries.kubectl),
        processes=[],
    )
    try:
        for plane in (cluster.parent, cluster.tenant):
            controlplane.start_etcd(plane)
        for plane in (cluster.parent, cluster.tenant):
            controlplane.start_apiserver(plane)
        cluster.save()  # PIDs on disk before waiting, so `down` can stop a half-started harness
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(controlplane.wait_ready, (cluster.parent, cluster.tenant)))
            list(pool.map(lambda bootstrap: bootstrap(cluster), (_bootstrap_parent, _bootstrap_tenant)))
        kcm = _start_controller_manager(cluster, binaries.kube_controller_manager) if controller_manager else None
        if simulators:
            _start_simulators(cluster)
        if kcm is not None:
            log = cluster.dir / "logs" / f"{kcm.name}.log"
            tenant_kcm.wait_healthy(kcm.pid, cluster.controller_manager_port, log)
    except BaseException:
        _stop_all(cluster)
        raise
    cluster.started_in = time.monotonic() - started
    cluster.save()
    _say(f"parent and tenant control planes ready in {cluster.started_in:.1f}s ({directory})")
    return cluster


def _stop_all(cluster: Cluster) -> None:
    for process in cluster.processes:
        controlplane.stop_process(process.pid, process.cmd[0])
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(controlplane.stop, (cluster.parent, cluster.tenant)))


def _release_mounts(directory: Path) -> None:
    """Unmount what kubelet stand-ins left mounted below `directory` (they leave mounts in place when they stop,
    as kubelet does), so removing it never deletes a volume's contents; refuse to go on if anything stays."""
    if released := mounts.release(directory):
        _say(f"unmounted {len(released)} filesystem(s) left under {directory}")
    if left := mounts.mounted_under(directory):
        raise RuntimeError(f"still mounted under {directory}, not removing it: {', '.join(map(str, left))}")


def down(directory: Path | str) -> None:
    """Stop exactly what `up` started (by PID), unmount what is left mounted below it and remove its data."""
    directory = Path(directory).resolve()
    if not (directory / STATE_FILE).exists():
        _say(f"nothing running in {directory}")
        return
    _stop_all(load(directory))
    _release_mounts(directory)
    shutil.rmtree(directory)
    _say(f"stopped and removed {directory}")


def restart_apiserver(directory: Path | str, which: str, down_for: float = 0.0) -> Cluster:
    """Stop one kube-apiserver, keep it down for `down_for` seconds, start it again on the same port."""
    cluster = load(directory)
    plane = cluster.plane(which)
    controlplane.stop_process(plane.apiserver_pid, plane.apiserver_cmd[0])
    if controlplane.port_open(plane.apiserver_port):
        raise RuntimeError(
            f"the {which} apiserver still serves port {plane.apiserver_port} after stopping PID "
            f"{plane.apiserver_pid}: {directory}/{STATE_FILE} records a stale PID"
        )
    if down_for > 0:
        time.sleep(down_for)
    controlplane.start_apiserver(plane)
    cluster.save()
    controlplane.wait_ready(plane)
    return cluster
