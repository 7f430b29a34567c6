"""`make demo`: the whole product on one machine, told as a short story with timings.

Brings up a parent and a tenant control plane (with the tenant's kube-controller-manager and the parent's
simulated KubeVirt, CDI, Cilium LB-IPAM and LINSTOR), deploys tenant-cloud exactly as the charts configure it
(the ccm, our CSI controller and the real CSI sidecars as local processes, with the parent chart's
ServiceAccount), adds two tenant nodes (each a VM in the parent, with the kubelet volume-manager stand-in and
our CSI node plugin), then creates a LoadBalancer Service and a PVC used by a pod, and reports what happened.
It tears everything down at the end unless `--keep`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import TypeVar

from csi.node.mountinfo import MountTable
from e2e import cluster as harness
from e2e.cluster import nodes, workloads
from e2e.kubelet import harness as kubelet
from e2e.kubelet.paths import KubeletPaths
from kube.client import Client, Object
from kube.config import from_kubeconfig
from kube.errors import ApiError, NotFound
from kube.resources import (
    NODES,
    PERSISTENTVOLUMECLAIMS,
    PERSISTENTVOLUMES,
    PODS,
    SERVICEACCOUNTS,
    SERVICES,
    VOLUMEATTACHMENTS,
    Resource,
)

FIELD_MANAGER = "tenant-cloud-demo"
NAMESPACE = "default"
DEMO_NODES = (
    ("worker-1", ["10.0.0.11"], "zone-a"),
    ("worker-2", ["10.0.0.12", "fd00::12"], "zone-b"),
)
# Zones from the parent Nodes' labels: the parent chart grants the cluster-scoped read this needs.
TENANT_VALUES = {"ccm": {"instancesV2": {"topology": {"source": "parentNode"}}}}
PARENT_VALUES = {"ccm": {"zoneFromParentNodes": True}}
MAX_DIR_LENGTH = 48
VMIS = Resource("kubevirt.io", "v1", "virtualmachineinstances", "VirtualMachineInstance")
T = TypeVar("T")


class DemoFailed(Exception):
    """A step did not happen in time; the message says which and where to look."""


class Story:
    """Progress lines as they happen, each stamped with the time since the demo started."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def say(self, message: str) -> None:
        print(f"[{time.monotonic() - self.started:6.1f}s] {message}", flush=True)

    def detail(self, message: str) -> None:
        print(f"          {message}", flush=True)


async def until(check: Callable[[], Awaitable[T | None]], what: str, log: Path, timeout: float = 90.0) -> T:
    """Poll until `check` returns something; on timeout, name the step and the log to read."""
    deadline = time.monotonic() + timeout
    while (result := await check()) is None:
        if time.monotonic() > deadline:
            raise DemoFailed(f"{what}: not done after {timeout:.0f}s (see {log})")
        await asyncio.sleep(0.1)
    return result


async def get(client: Client, resource: Resource, name: str, namespace: str | None = None) -> Object | None:
    try:
        return await client.get(resource, name, namespace)
    except NotFound:
        return None


def initialised(node: Object) -> bool:
    taints = node["spec"].get("taints") or []
    return bool(node["spec"].get("providerID")) and not any(t["key"] == nodes.UNINITIALIZED["key"] for t in taints)


async def add_nodes(cluster: harness.Cluster, story: Story) -> None:
    names = ", ".join(f"{name} ({zone})" for name, _, zone in DEMO_NODES)
    story.say(f"adding tenant nodes {names}: a VM + VMI in the parent, kubelet's Node in the tenant")
    started = time.monotonic()
    async with nodes.clients(cluster) as c:
        for name, ips, zone in DEMO_NODES:
            await nodes.add_node(c, name, ips=ips, zone=zone, instance_type="u1.medium")
        for name, _, _ in DEMO_NODES:

            async def ready(name: str = name) -> Object | None:
                node = await c.tenant.get(NODES, name)
                return node if initialised(node) else None

            node = await until(ready, f"the ccm initialises Node {name}", cluster.dir / "logs" / "ccm.log")
            labels = node["metadata"].get("labels") or {}
            addresses = ", ".join(a["address"] for a in node["status"].get("addresses") or [])
            story.detail(
                f"{name}: providerID {node['spec']['providerID']}, zone {labels.get('topology.kubernetes.io/zone')}, "
                f"type {labels.get('node.kubernetes.io/instance-type')}, addresses {addresses}"
            )
    story.say(f"the ccm initialised both Nodes from their VMIs in {time.monotonic() - started:.1f}s")
    for name, _, _ in DEMO_NODES:
        await asyncio.to_thread(kubelet.start, cluster, name)
    story.say("kubelet volume-manager stand-ins running with our CSI node plugin on each node")


async def load_balancer(cluster: harness.Cluster, tenant: Client, parent: Client, story: Story) -> None:
    story.say("creating LoadBalancer Service web (port 80)")
    started = time.monotonic()
    await tenant.create(
        SERVICES,
        {
            "metadata": {"name": "web"},
            "spec": {"type": "LoadBalancer", "selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
        },
        NAMESPACE,
    )

    async def ip() -> str | None:
        service = await tenant.get(SERVICES, "web", NAMESPACE)
        ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        return str(ingress[0]["ip"]) if ingress else None

    address = await until(ip, "Service web gets an IP", cluster.dir / "logs" / "ccm.log")
    took = time.monotonic() - started
    service = await tenant.get(SERVICES, "web", NAMESPACE)
    parents = await parent.list(SERVICES, cluster.parent_namespace)
    ours = [s for s in parents.items if address in str((s.get("status") or {}).get("loadBalancer"))]
    mirror = f"parent Service {cluster.parent_namespace}/{ours[0]['metadata']['name']}" if ours else "a parent Service"
    story.say(f"IP {address} assigned in {took:.2f}s: {mirror} got it from Cilium LB-IPAM (simulated)")
    story.detail(f"tenant Service web: {service['spec']['ports'][0]['port']}/TCP → {address}")


def claim() -> Object:
    return {
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
    }


def pod(node: str) -> Object:
    return {
        "metadata": {"name": "app"},
        "spec": {
            "nodeName": node,
            "automountServiceAccountToken": False,
            "terminationGracePeriodSeconds": 0,
            "containers": [
                {
                    "name": "app",
                    "image": "registry.k8s.io/pause:3.10",
                    "volumeMounts": [{"name": "d", "mountPath": "/data"}],
                }
            ],
            "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}],
        },
    }


def hotplugged(vmi: Object, handle: str) -> Object | None:
    for entry in (vmi.get("status") or {}).get("volumeStatus") or []:
        claim_name = (entry.get("persistentVolumeClaimInfo") or {}).get("claimName")
        if handle in (entry.get("name"), claim_name) and entry.get("phase") == "Ready":
            return dict(entry)
    return None


async def volume(cluster: harness.Cluster, tenant: Client, parent: Client, story: Story) -> None:
    node = DEMO_NODES[0][0]
    logs = cluster.dir / "logs"

    async def default_account() -> Object | None:
        return await get(tenant, SERVICEACCOUNTS, "default", NAMESPACE)

    await until(default_account, "kube-controller-manager creates the default ServiceAccount", logs)
    story.say(f"creating PVC data (1Gi, the chart's default StorageClass) and pod app on {node}")
    started = time.monotonic()
    await tenant.create(PERSISTENTVOLUMECLAIMS, claim(), NAMESPACE)
    await tenant.create(PODS, pod(node), NAMESPACE)

    async def bound() -> Object | None:
        pvc = await tenant.get(PERSISTENTVOLUMECLAIMS, "data", NAMESPACE)
        return pvc if (pvc.get("status") or {}).get("phase") == "Bound" else None

    pvc = await until(bound, "PVC data is bound", logs / "csi-controller-csi-provisioner.log")
    pv = await tenant.get(PERSISTENTVOLUMES, pvc["spec"]["volumeName"])
    handle = pv["spec"]["csi"]["volumeHandle"]
    story.say(
        f"PVC bound in {time.monotonic() - started:.1f}s: csi-provisioner → our CreateVolume → parent DataVolume "
        f"{cluster.parent_namespace}/{handle} (CDI simulated), PV {pv['metadata']['name']}"
    )

    async def attached() -> Object | None:
        for va in (await tenant.list(VOLUMEATTACHMENTS)).items:
            source = va["spec"]["source"].get("persistentVolumeName")
            if source == pv["metadata"]["name"] and (va.get("status") or {}).get("attached"):
                return dict(va)
        return None

    va = await until(attached, "the VolumeAttachment is attached", logs / "csi-controller-csi-attacher.log")
    vmi = await parent.get(VMIS, node, cluster.parent_namespace)
    entry = hotplugged(vmi, handle) or {}
    story.say(
        f"attached in {time.monotonic() - started:.1f}s: kube-controller-manager made VolumeAttachment "
        f"{va['metadata']['name'][:16]}…, csi-attacher → our ControllerPublish → hot-plugged into VM {node} "
        f"(KubeVirt simulated, guest disk {entry.get('target') or '?'})"
    )

    async def running() -> Object | None:
        found = await tenant.get(PODS, "app", NAMESPACE)
        return found if (found.get("status") or {}).get("phase") == "Running" else None

    app = await until(running, "pod app is Running", logs / f"kubelet-{node}.log")
    paths = KubeletPaths(kubelet.kubelet_root(cluster, node))
    mount = paths.pod_volume_dir(app["metadata"]["uid"], pv["metadata"]["name"]) / "mount"
    (mount / "hello.txt").write_text("written by the demo\n")
    stats = os.statvfs(mount)
    size = stats.f_blocks * stats.f_frsize / 2**30
    fstype = next((e.fs_type for e in MountTable().entries() if e.mount_point == mount), "?")
    story.say(
        f"pod app Running in {time.monotonic() - started:.1f}s: our node plugin formatted and mounted the disk "
        f"({fstype}, {size:.2f} GiB) at the pod's volume path; wrote {mount / 'hello.txt'}"
    )


def instructions(cluster: harness.Cluster) -> str:
    kubectl = Path(sys.executable).parent / "kubectl"
    parent, tenant = cluster.parent_kubeconfig, cluster.tenant_kubeconfig
    return f"""
The demo is still running in {cluster.dir} (logs in {cluster.dir}/logs). Try:
  {kubectl} --kubeconfig {tenant} get nodes,svc,pvc,pv,volumeattachments -o wide
  {kubectl} --kubeconfig {parent} -n {cluster.parent_namespace} get vm,vmi,svc,datavolumes,pvc
  {kubectl} --kubeconfig {tenant} get events -A
  {sys.executable} -m e2e.cluster stop-node --dir {cluster.dir} --name worker-2    # shutdown taint
Stop it with: make demo-down   (or: {sys.executable} -m e2e.cluster down --dir {cluster.dir})"""


async def tour(cluster: harness.Cluster, story: Story) -> None:
    await add_nodes(cluster, story)
    tenant_config, parent_config = (
        from_kubeconfig(cluster.tenant_kubeconfig),
        from_kubeconfig(cluster.parent_kubeconfig),
    )
    async with (
        Client.from_config(tenant_config, FIELD_MANAGER) as tenant,
        Client.from_config(parent_config, FIELD_MANAGER) as parent,
    ):
        await load_balancer(cluster, tenant, parent, story)
        await volume(cluster, tenant, parent, story)


def run(directory: Path, cluster_name: str, keep: bool) -> int:
    story = Story()
    story.say("starting parent + tenant control planes (etcd, kube-apiserver; kube-controller-manager in the tenant)")
    cluster = harness.up(directory, cluster_name, controller_manager=True)
    story.say(f"control planes and simulators up in {cluster.started_in:.1f}s")
    try:
        story.say("deploying tenant-cloud as the charts configure it (parent chart, then the tenant chart)")
        started = time.monotonic()
        stack = workloads.start(cluster, values=TENANT_VALUES, parent_values=PARENT_VALUES)
        names = ", ".join(p.name for p in stack.processes)
        story.say(f"running in {time.monotonic() - started:.1f}s: {names}")
        story.detail(f"the ccm and CSI controller reach the parent as ServiceAccount {stack.platform.service_account}")
        asyncio.run(tour(cluster, story))
        story.say("done: node initialisation, a load balancer and a mounted volume, all through tenant-cloud")
    except (DemoFailed, ApiError, RuntimeError, TimeoutError) as error:
        print(f"\ndemo failed: {error}\nthe harness is left running in {directory} for a look", file=sys.stderr)
        return 1
    if keep:
        print(instructions(cluster))
        return 0
    story.say("tearing down (use --keep to leave it running)")
    # Like a node shutting down: the volume is unmounted before the directories go.
    kubelet.unmount_leftovers(cluster)
    harness.down(directory)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m e2e.demo", description=__doc__)
    parser.add_argument("--dir", type=Path, default=Path(".demo"))
    parser.add_argument("--cluster-name", default="demo")
    parser.add_argument("--keep", action="store_true", help="leave everything running, with instructions")
    args = parser.parse_args(argv)
    # The CSI sockets live under DIR/run and a unix socket address holds at most 107 bytes.
    if len(str(args.dir.resolve())) > MAX_DIR_LENGTH:
        parser.error(f"--dir {args.dir} is too long for the CSI sockets under it; use a path of at most 48 characters")
    try:
        return run(args.dir, args.cluster_name, args.keep)
    except KeyboardInterrupt:
        print(f"\ninterrupted; clean up with: make demo-down (or python -m e2e.cluster down --dir {args.dir})")
        return 130


if __name__ == "__main__":
    sys.exit(main())
