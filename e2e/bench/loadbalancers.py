"""Load-balancer benchmark: tenant Service -> IP in its status, at rest and under a burst of 1000.

The ccm runs as its own process; the Cilium LB-IPAM simulator allocates as soon as it sees a parent Service.
Reports p50/p99 latency over sequential Services, the time for N Services created at once to all get IPs,
the writes a restarted ccm makes while re-reconciling unchanged Services (must be 0), and the ccm's RSS.

    python -m e2e.bench.loadbalancers [--dir HARNESS_DIR] [--samples 200] [--burst 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from e2e.bench.common import bounded, harness_for, mib, percentile, rss_bytes
from e2e.cluster import Cluster
from e2e.cluster.components import ccm_command
from e2e.cluster.controlplane import free_port
from kube.client import Client, Object
from kube.config import from_kubeconfig
from kube.errors import AlreadyExists
from kube.informer import Informer
from kube.resources import NAMESPACES, SERVICES, Resource
from kube.transport import TransportSettings

POOLS = Resource("cilium.io", "v2", "ciliumloadbalancerippools", "CiliumLoadBalancerIPPool", namespaced=False)
NAMESPACE = "bench-lb"
FAST = TransportSettings(qps=5000, burst=5000)


def _service(name: str) -> Object:
    return {
        "metadata": {"name": name},
        "spec": {
            "type": "LoadBalancer",
            "selector": {"app": name},
            "ports": [{"name": "http", "port": 80, "targetPort": 8080}],
        },
    }


def _has_ip(service: Object) -> bool:
    return bool(((service.get("status") or {}).get("loadBalancer") or {}).get("ingress"))


class CCM:
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.metrics_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = (self.cluster.dir / "bench-lb-ccm.log").open("ab")
        cmd = ccm_command(self.cluster, metrics_bind=f"127.0.0.1:{self.metrics_port}", extra=("--v=1",))
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=60)

    def rss(self) -> int:
        assert self.proc is not None
        return rss_bytes(self.proc.pid)

    def metric_sum(self, prefix: str) -> float:
        """The sum of every sample whose line starts with `prefix`, from the ccm's /metrics."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as response:
            text = response.read().decode()
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(prefix))

    def lb_writes(self) -> float:
        return self.metric_sum("tenant_cloud_lb_writes_total{")

    def reconciles(self) -> float:
        return self.metric_sum('controller_reconcile_total{controller="service"')


async def measure(cluster: Cluster, ccm: CCM, samples: int, burst: int) -> dict[str, Any]:
    async with (
        Client.from_config(from_kubeconfig(cluster.tenant_kubeconfig), "tenant-cloud-bench", FAST) as tenant,
        Client.from_config(from_kubeconfig(cluster.parent_kubeconfig), "tenant-cloud-bench", FAST) as parent,
    ):
        await parent.apply(
            POOLS,
            {
                "metadata": {"name": "bench-lb"},
                "spec": {
                    "blocks": [{"cidr": "100.64.0.0/16"}],
                    "serviceSelector": {"matchLabels": {"io.kubernetes.service.namespace": cluster.parent_namespace}},
                },
            },
            force=True,
        )
        with contextlib.suppress(AlreadyExists):
            await tenant.create(NAMESPACES, {"metadata": {"name": NAMESPACE}})
        informer = Informer(tenant, SERVICES, namespace=NAMESPACE)
        got_ip: dict[str, asyncio.Event] = {}

        def seen(service: Object) -> None:
            event = got_ip.get(service["metadata"]["name"])
            if event is not None and _has_ip(service):
                event.set()

        informer.add_handlers(seen, lambda _old, new: seen(new))
        watcher = asyncio.create_task(informer.run())
        await informer.wait_synced(30)

        async def create_and_wait(name: str) -> float:
            got_ip[name] = asyncio.Event()
            started = time.monotonic()
            await tenant.create(SERVICES, _service(name), NAMESPACE)
            await asyncio.wait_for(got_ip[name].wait(), 60)
            return time.monotonic() - started

        await create_and_wait("warmup")  # not timed: Lease, caches
        latencies = [await create_and_wait(f"seq-{i:04d}") for i in range(samples)]
        names = [f"burst-{i:04d}" for i in range(burst)]
        for name in names:
            got_ip[name] = asyncio.Event()
        started = time.monotonic()
        await bounded([tenant.create(SERVICES, _service(n), NAMESPACE) for n in names], 64)
        await asyncio.wait_for(asyncio.gather(*(got_ip[n].wait() for n in names)), 300)
        burst_seconds = time.monotonic() - started
        await asyncio.sleep(2)
        rss = ccm.rss()
        # A restart re-reconciles every Service from scratch: with nothing changed it must write nothing.
        ccm.stop()
        ccm.start()
        total = samples + burst + 1
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if ccm.reconciles() >= total:
                    break
            except OSError:
                pass
            await asyncio.sleep(0.5)
        await asyncio.sleep(2)
        resync_writes = ccm.lb_writes()
        reconciled = ccm.reconciles()
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
    return {
        "samples": samples,
        "ip_p50_seconds": round(percentile(latencies, 50), 4),
        "ip_p99_seconds": round(percentile(latencies, 99), 4),
        "burst": burst,
        "burst_all_ips_seconds": round(burst_seconds, 2),
        "resync_reconciles": reconciled,
        "resync_writes": resync_writes,
        "ccm_rss_bytes": rss,
        "services": total,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m e2e.bench.loadbalancers", description=__doc__)
    parser.add_argument("--dir", type=Path, help="reuse a running harness")
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--burst", type=int, default=1000)
    args = parser.parse_args(argv)
    with harness_for(args.dir) as running:
        ccm = CCM(running)
        ccm.start()
        try:
            results = asyncio.run(measure(running, ccm, args.samples, args.burst))
        finally:
            ccm.stop()
    print(
        f"tenant Service -> IP in status: p50 {results['ip_p50_seconds']}s, p99 {results['ip_p99_seconds']}s "
        f"over {args.samples}"
    )
    print(f"{args.burst} Services created at once: all have IPs after {results['burst_all_ips_seconds']}s")
    print(
        f"restarted ccm re-reconciled {results['resync_reconciles']:.0f} times with "
        f"{results['resync_writes']:.0f} writes; "
        f"RSS with {results['services']} Services: {mib(results['ccm_rss_bytes'])}"
    )
    print(json.dumps({"benchmark": "loadbalancers", **results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
