"""`make demo`: a local parent + tenant with tenant-cloud running, and a tour of what it did.

Brings up both control planes, starts the ccm (as its own process, the way the chart runs it), adds two
tenant nodes the way the platform does (VM + VMI in the parent, kubelet's Node in the tenant) and shows them
initialised from their VMIs. Everything keeps running until `make demo-down`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from e2e import cluster as harness
from e2e.cluster import nodes
from e2e.cluster.components import ccm_command
from kube.resources import NODES

DEMO_NODES = (
    ("worker-1", ["10.0.0.11"], "zone-a"),
    ("worker-2", ["10.0.0.12", "fd00::12"], "zone-b"),
)


def start_ccm(cluster: harness.Cluster) -> harness.Process:
    cmd = ccm_command(cluster, health_bind="127.0.0.1:10259", metrics_bind="127.0.0.1:10258")
    return harness.start_process(cluster, "ccm", cmd)


async def add_nodes(cluster: harness.Cluster) -> float:
    started = time.monotonic()
    async with nodes.clients(cluster) as c:
        for name, ips, zone in DEMO_NODES:
            await nodes.add_node(c, name, ips=ips, zone=zone, instance_type="u1.medium")
        pending = {name for name, _, _ in DEMO_NODES}
        deadline = time.monotonic() + 60
        while pending and time.monotonic() < deadline:
            for name in sorted(pending):
                node = await c.tenant.get(NODES, name)
                if node["spec"].get("providerID") and not any(
                    t["key"] == nodes.UNINITIALIZED["key"] for t in node["spec"].get("taints") or []
                ):
                    pending.discard(name)
            await asyncio.sleep(0.1)
        if pending:
            raise SystemExit(f"nodes not initialised: {sorted(pending)}; see {cluster.dir}/logs/ccm.log")
    return time.monotonic() - started


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m e2e.demo", description=__doc__)
    parser.add_argument("--dir", type=Path, default=Path(".demo"))
    parser.add_argument("--cluster-name", default="demo")
    args = parser.parse_args(argv)
    cluster = harness.up(args.dir, args.cluster_name)
    start_ccm(cluster)
    took = asyncio.run(add_nodes(cluster))
    parent, tenant = cluster.parent_kubeconfig, cluster.tenant_kubeconfig
    kubectl = Path(sys.executable).parent / "kubectl"
    print(
        f"\ntenant-cloud demo: cluster {cluster.cluster_name!r} up in {cluster.started_in:.1f}s; "
        f"{len(DEMO_NODES)} nodes added and initialised by the ccm in {took:.1f}s\n"
    )
    print(
        cluster.kubectl_run(
            "tenant",
            "get",
            "nodes",
            "-L",
            "topology.kubernetes.io/zone",
            "-L",
            "node.kubernetes.io/instance-type",
            "-o",
            "wide",
        )
    )
    print(f"""  parent kubeconfig: {parent}
  tenant kubeconfig: {tenant}
  parent namespace:  {cluster.parent_namespace}
  ccm log:           {cluster.dir}/logs/ccm.log   (metrics: curl 127.0.0.1:10258/metrics)

Try:
  {kubectl} --kubeconfig {parent} -n {cluster.parent_namespace} get vm,vmi
  {kubectl} --kubeconfig {tenant} get nodes -o yaml | less
  {sys.executable} -m e2e.cluster migrate-node --dir {cluster.dir} --name worker-1 --to parent-zone-c-1 --zone zone-c
  {sys.executable} -m e2e.cluster stop-node --dir {cluster.dir} --name worker-2     # shutdown taint
  {sys.executable} -m e2e.cluster remove-node --dir {cluster.dir} --name worker-2   # Node deleted after 30s
  {kubectl} --kubeconfig {tenant} get events -A

Stop it with: make demo-down   (or: {sys.executable} -m e2e.cluster down --dir {cluster.dir})""")
    return 0


if __name__ == "__main__":
    sys.exit(main())
