"""Node benchmark: time from add-node to a fully initialised tenant Node, and the ccm's RSS with N nodes.

The ccm runs as its own process (`python -m ccm`), exactly as deployed; this process adds nodes the way the
platform does (VM + VMI in the parent, then the kubelet's Node in the tenant) and watches the tenant Nodes.

    python -m e2e.bench.nodes [--dir HARNESS_DIR] [--samples 50] [--nodes 200]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from e2e.bench.common import harness_for, mib, percentile, rss_bytes
from e2e.cluster import Cluster, nodes
from e2e.cluster.components import ccm_command
from kube.client import Object
from kube.informer import Informer
from kube.resources import NODES

UNINITIALIZED = "node.cloudprovider.kubernetes.io/uninitialized"


def _initialised(node: Object) -> bool:
    spec = node.get("spec") or {}
    status = node.get("status") or {}
    taints = spec.get("taints") or []
    return (
        bool(spec.get("providerID"))
        and bool(status.get("addresses"))
        and not any(t.get("key") == UNINITIALIZED for t in taints)
    )


def _start_ccm(cluster: Cluster) -> subprocess.Popen[bytes]:
    log = (cluster.dir / "bench-ccm.log").open("wb")
    return subprocess.Popen(ccm_command(cluster, extra=("--v=1",)), stdout=log, stderr=subprocess.STDOUT)


async def measure(cluster: Cluster, samples: int, total: int, pid: int) -> dict[str, Any]:
    async with nodes.clients(cluster) as c:
        informer = Informer(c.tenant, NODES)
        done: dict[str, asyncio.Event] = {}

        def seen(node: Object) -> None:
            name = node["metadata"]["name"]
            if name in done and _initialised(node):
                done[name].set()

        informer.add_handlers(seen, lambda _old, new: seen(new))
        watcher = asyncio.create_task(informer.run())
        await informer.wait_synced(30)
        # Not timed: the ccm first has to win its Lease and sync its caches.
        done["bench-warmup"] = asyncio.Event()
        await nodes.add_node(c, "bench-warmup", ips=["10.2.0.1"])
        await asyncio.wait_for(done["bench-warmup"].wait(), 60)
        latencies: list[float] = []
        for i in range(samples):
            name = f"bench-{i:04d}"
            done[name] = asyncio.Event()
            started = time.monotonic()
            await nodes.add_node(c, name, ips=[f"10.1.{i // 250}.{i % 250 + 1}"])
            await asyncio.wait_for(done[name].wait(), 30)
            latencies.append(time.monotonic() - started)
        bulk_started = time.monotonic()
        rest = [f"bench-{i:04d}" for i in range(samples, total)]
        for name in rest:
            done[name] = asyncio.Event()
        gate = asyncio.Semaphore(16)

        async def add(i: int, name: str) -> None:
            async with gate:
                await nodes.add_node(c, name, ips=[f"10.1.{i // 250}.{i % 250 + 1}"])

        await asyncio.gather(*(add(samples + k, name) for k, name in enumerate(rest)))
        await asyncio.wait_for(asyncio.gather(*(done[n].wait() for n in rest)), 120)
        bulk = time.monotonic() - bulk_started
        await asyncio.sleep(2)  # let the ccm settle before reading its memory
        rss = rss_bytes(pid)
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        for name in done:
            await nodes.ensure_absent(c, name)
    return {
        "samples": samples,
        "init_median_seconds": round(statistics.median(latencies), 4),
        "init_p90_seconds": round(percentile(latencies, 90), 4),
        "init_max_seconds": round(max(latencies), 4),
        "nodes": total,
        "bulk_nodes": len(rest),
        "bulk_seconds": round(bulk, 2),
        "ccm_rss_bytes": rss,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m e2e.bench.nodes", description=__doc__)
    parser.add_argument("--dir", type=Path, help="reuse a running harness")
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--nodes", type=int, default=200)
    args = parser.parse_args(argv)
    with harness_for(args.dir) as running:
        ccm = _start_ccm(running)
        try:
            results = asyncio.run(measure(running, args.samples, args.nodes, ccm.pid))
        finally:
            ccm.terminate()
            ccm.wait(timeout=30)
    print(
        f"add-node -> initialised Node: median {results['init_median_seconds']}s, "
        f"p90 {results['init_p90_seconds']}s, max {results['init_max_seconds']}s over {args.samples}"
    )
    print(
        f"{results['bulk_nodes']} more nodes added 16 at a time, all initialised in {results['bulk_seconds']}s; "
        f"ccm RSS with {args.nodes} nodes: {mib(results['ccm_rss_bytes'])}"
    )
    print(json.dumps({"benchmark": "nodes", **results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
