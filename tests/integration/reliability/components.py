"""The ccm and the CSI controller as real OS processes the tests start, kill (SIGKILL), stop and restart.

Each reliability scenario uses its own cluster name, so the parent objects it makes are told apart from any
other test's by the ownership labels alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import yaml

from csi._proto import csi_pb2, csi_pb2_grpc
from e2e import cluster as harness
from e2e.bench.common import rss_bytes
from e2e.cluster.components import csi_controller_command
from e2e.cluster.controlplane import free_port

CLUSTER_LABEL = "cluster.x-k8s.io/cluster-name"
# Short leases, so a SIGKILLed leader's successor takes over within seconds (defaults: 15 s / 10 s / 2 s).
FAST_ELECTION = (
    "--leader-elect-lease-duration=4s",
    "--leader-elect-renew-deadline=3s",
    "--leader-elect-retry-period=500ms",
)


@dataclass
class Component:
    """One restartable process; its output is appended to `log` across restarts."""

    name: str
    cmd: list[str]
    log: Path
    proc: subprocess.Popen[bytes] | None = None
    peak_rss: int = 0
    starts: int = 0

    def start(self) -> None:
        assert not self.running, f"{self.name} is already running"
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(self.cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.starts += 1

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def kill(self) -> None:
        """SIGKILL: no drain, no Lease release, requests in flight are cut."""
        self._end(signal.SIGKILL)

    def stop(self) -> None:
        """SIGTERM: the graceful shutdown a rolling update gives."""
        self._end(signal.SIGTERM)

    def _end(self, sig: signal.Signals) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.sample_rss()
            self.proc.send_signal(sig)
        self.proc.wait(timeout=60)

    def pause(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def sample_rss(self) -> None:
        if self.running:
            with contextlib.suppress(OSError, RuntimeError):
                self.peak_rss = max(self.peak_rss, rss_bytes(self.pid))

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@dataclass
class CCM(Component):
    health_port: int = 0

    def status(self) -> str:
        """The verbose /readyz body (`leader: true|false` among its lines), or '' when it does not answer."""
        url = f"http://127.0.0.1:{self.health_port}/readyz?verbose"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return str(response.read().decode())
        except urllib.error.HTTPError as error:
            return str(error.read().decode())
        except OSError:
            return ""

    def leading(self) -> bool:
        return self.running and "leader: true" in self.status()


@dataclass
class CSI(Component):
    port: int = 0
    channels: list[grpc.aio.Channel] = field(default_factory=list)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def wait_ready(self, timeout: float = 60.0) -> None:
        """Until Probe says ready: the gRPC server is up and the parent informers have synced."""
        async with grpc.aio.insecure_channel(self.target) as channel:
            identity = csi_pb2_grpc.IdentityStub(channel)
            deadline = asyncio.get_running_loop().time() + timeout
            while True:
                assert self.running, f"{self.name} exited; see {self.log}"
                with contextlib.suppress(grpc.aio.AioRpcError):
                    if (await identity.Probe(csi_pb2.ProbeRequest(), timeout=2)).ready.value:
                        return
                assert asyncio.get_running_loop().time() < deadline, f"{self.name} not ready in {timeout:.0f}s"
                await asyncio.sleep(0.1)


def ccm_component(
    cluster: harness.Cluster,
    workdir: Path,
    name: str,
    cluster_name: str,
    *,
    lease: str,
    leader_elect: bool = True,
    load_balancer: dict[str, object] | None = None,
) -> CCM:
    """`python -m ccm` serving only load balancers for `cluster_name`, with its own cloud-config and Lease."""
    config = workdir / f"{name}.cloud-config"
    config.write_text(
        yaml.safe_dump(
            {
                "kubeconfig": str(cluster.parent_kubeconfig),
                "namespace": cluster.parent_namespace,
                "loadBalancer": {"enabled": True, **(load_balancer or {})},
                "instancesV2": {"enabled": False},
                "nodeLifecycle": {"enabled": False},
            }
        )
    )
    health = free_port()
    cmd = [
        sys.executable,
        "-m",
        "ccm",
        f"--cloud-config={config}",
        f"--kubeconfig={cluster.tenant_kubeconfig}",
        f"--cluster-name={cluster_name}",
        "--controllers=service",
        f"--health-bind-address=127.0.0.1:{health}",
        "--metrics-bind-address=0",
        f"--leader-elect={'true' if leader_elect else 'false'}",
        f"--leader-elect-resource-name={lease}",
        *FAST_ELECTION,
        "--v=2",
    ]
    return CCM(name=name, cmd=cmd, log=workdir / f"{name}.log", health_port=health)


def csi_component(cluster: harness.Cluster, workdir: Path, name: str, cluster_name: str, enforcement: Path) -> CSI:
    """`python -m csi`, controller service only, on a TCP endpoint, for `cluster_name`'s volumes and VMs."""
    port = free_port()
    extra = (
        f"--tenant-cluster-kubeconfig={cluster.tenant_kubeconfig}",
        f"--storage-class-enforcement={enforcement}",
        "--attach-timeout=10s",
        "--provision-timeout=10s",
    )
    cmd = csi_controller_command(
        cluster, f"tcp://127.0.0.1:{port}", cluster_name=cluster_name, verbosity=2, extra=extra
    )
    return CSI(name=name, cmd=cmd, log=workdir / f"{name}.log", port=port)


@contextlib.contextmanager
def stopped_at_exit(*components: Component) -> Iterator[None]:
    """Whatever happens in the test, no process of ours outlives it."""
    try:
        yield
    finally:
        for component in components:
            component.kill()


async def sample_rss(components: list[Component], every: float = 0.5) -> None:
    """Keep each component's peak RSS current until cancelled (processes come and go across restarts)."""
    while True:
        for component in components:
            component.sample_rss()
        await asyncio.sleep(every)
