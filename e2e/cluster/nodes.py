"""Tenant nodes as the platform makes them: a VM + VMI of this cluster in the parent, and the Node its kubelet
registers in the tenant (`--cloud-provider=external`: uninitialized taint, no providerID, no addresses).

Used by tests, benchmarks and the demo; also `python -m e2e.cluster add-node|remove-node|stop-node|...`.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from e2e.cluster import Cluster
from kube.client import Client, Object
from kube.config import from_kubeconfig
from kube.errors import NotFound
from kube.resources import NODES, Resource

VMS = Resource("kubevirt.io", "v1", "virtualmachines", "VirtualMachine")
VMIS = Resource("kubevirt.io", "v1", "virtualmachineinstances", "VirtualMachineInstance")
CLUSTER_LABEL = "cluster.x-k8s.io/cluster-name"
ROLE_LABEL = "cluster.x-k8s.io/role"
UNINITIALIZED = {"key": "node.cloudprovider.kubernetes.io/uninitialized", "value": "true", "effect": "NoSchedule"}
FIELD_MANAGER = "tenant-cloud-harness"
CONTROLLER_MANAGED_ATTACH_DETACH = "volumes.kubernetes.io/controller-managed-attach-detach"


@dataclass
class Clients:
    cluster: Cluster
    parent: Client
    tenant: Client

    @property
    def namespace(self) -> str:
        return self.cluster.parent_namespace


@contextlib.asynccontextmanager
async def clients(cluster: Cluster) -> AsyncIterator[Clients]:
    async with (
        Client.from_config(from_kubeconfig(cluster.parent_kubeconfig), FIELD_MANAGER) as parent,
        Client.from_config(from_kubeconfig(cluster.tenant_kubeconfig), FIELD_MANAGER) as tenant,
    ):
        yield Clients(cluster, parent, tenant)


def _mac(seed: str) -> str:
    """A stable, locally administered MAC for the interface."""
    digest = hashlib.sha256(seed.encode()).digest()[:4]
    return "02:00:" + ":".join(f"{byte:02x}" for byte in digest)


def interfaces(vmi_name: str, ips: Sequence[str]) -> list[dict[str, Any]]:
    """VMI status.interfaces as virt-handler reports them with the guest agent running."""
    entry: dict[str, Any] = {
        "name": "default",
        "interfaceName": "eth0",
        "infoSource": "domain, guest-agent",
        "mac": _mac(vmi_name),
        "ipAddresses": list(ips),
    }
    if ips:
        entry["ipAddress"] = ips[0]
    return [entry]


async def ensure_parent_node(c: Clients, name: str, zone: str | None, region: str | None) -> Object:
    labels = {"kubernetes.io/hostname": name}
    if zone:
        labels["topology.kubernetes.io/zone"] = zone
    if region:
        labels["topology.kubernetes.io/region"] = region
    return await c.parent.apply(NODES, {"metadata": {"name": name, "labels": labels}}, force=True)


async def add_node(
    c: Clients,
    name: str,
    *,
    ips: Sequence[str] = ("10.0.0.5",),
    zone: str | None = "zone-a",
    region: str | None = "region-1",
    parent_node: str | None = None,
    instance_type: str | None = None,
    hostname: str | None = None,
    cluster_name: str | None = None,
    register: bool = True,
) -> None:
    """A running VM + VMI of the cluster in the parent and, if `register`, the tenant Node its kubelet creates."""
    cluster_name = cluster_name or c.cluster.cluster_name
    parent_node = parent_node or f"parent-{zone or 'nozone'}-1"
    await ensure_parent_node(c, parent_node, zone, region)
    labels = {CLUSTER_LABEL: cluster_name, ROLE_LABEL: "worker"}
    guest = {
        "domain": {"devices": {"disks": [], "interfaces": [{"name": "default", "bridge": {}}]}},
        "hostname": hostname or name,
    }
    vm = await c.parent.create(
        VMS,
        {
            "metadata": {"name": name, "labels": labels},
            "spec": {
                "running": True,
                "template": {"metadata": {"labels": {**labels, "kubevirt.io/vm": name}}, "spec": guest},
            },
        },
        c.namespace,
    )
    annotations = {"kubevirt.io/instancetype-name": instance_type} if instance_type else {}
    owner = {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachine",
        "name": name,
        "uid": vm["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
    await c.parent.create(
        VMIS,
        {
            "metadata": {
                "name": name,
                "labels": {**labels, "kubevirt.io/vm": name, "kubevirt.io/nodeName": parent_node},
                "annotations": annotations,
                "ownerReferences": [owner],
            },
            "spec": guest,
        },
        c.namespace,
    )
    await set_vmi_status(c, name, phase="Running", node_name=parent_node, ips=ips)
    if register:
        await register_node(c, name)


async def set_vmi_status(
    c: Clients,
    name: str,
    *,
    phase: str | None = None,
    node_name: str | None = None,
    ips: Sequence[str] | None = None,
) -> Object:
    status: dict[str, Any] = {}
    if phase is not None:
        status["phase"] = phase
        ready = "True" if phase == "Running" else "False"
        status["conditions"] = [{"type": "Ready", "status": ready, "lastProbeTime": None, "lastTransitionTime": None}]
    if node_name is not None:
        status["nodeName"] = node_name
    if ips is not None:
        status["interfaces"] = interfaces(name, ips)
    return await c.parent.patch(VMIS, name, {"status": status}, c.namespace, subresource="status")


async def register_node(c: Clients, name: str) -> Object:
    """The Node as kubelet --cloud-provider=external registers it."""
    await c.tenant.create(
        NODES,
        {
            "metadata": {
                "name": name,
                "labels": {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"},
                # kubelet's default (--enable-controller-attach-detach): kube-controller-manager attaches.
                "annotations": {CONTROLLER_MANAGED_ATTACH_DETACH: "true"},
            },
            "spec": {"taints": [UNINITIALIZED]},
        },
    )
    status = {
        "conditions": [
            {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status"}
        ],
        "nodeInfo": {
            "kubeletVersion": "v1.36.3",
            "operatingSystem": "linux",
            "architecture": "amd64",
            "containerRuntimeVersion": "containerd://2.1.0",
            "kernelVersion": "6.12.0",
            "osImage": "Talos",
            "kubeProxyVersion": "",
            "machineID": "",
            "systemUUID": "",
            "bootID": "",
        },
        "capacity": {"cpu": "2", "memory": "4Gi", "pods": "110"},
        "allocatable": {"cpu": "2", "memory": "4Gi", "pods": "110"},
    }
    return await c.tenant.patch(NODES, name, {"status": status}, subresource="status")


async def remove_node(c: Clients, name: str) -> None:
    """The VM and its VMI vanish from the parent (the tenant Node stays for the ccm to clean up)."""
    for resource in (VMIS, VMS):
        with contextlib.suppress(NotFound):
            await c.parent.delete(resource, name, c.namespace)


async def stop_node(c: Clients, name: str) -> None:
    """Shut the VM down as `virtctl stop` would: spec.running false, the VMI reaches Succeeded."""
    await c.parent.patch(VMS, name, {"spec": {"running": False}}, c.namespace)
    await set_vmi_status(c, name, phase="Succeeded")


async def start_node(c: Clients, name: str) -> None:
    await c.parent.patch(VMS, name, {"spec": {"running": True}}, c.namespace)
    await set_vmi_status(c, name, phase="Running")


async def migrate_node(c: Clients, name: str, to: str, zone: str | None = None, region: str | None = None) -> None:
    """A completed live migration: the VMI now runs on parent Node `to`."""
    try:
        await c.parent.get(NODES, to)
    except NotFound:
        await ensure_parent_node(c, to, zone, region)
    await c.parent.patch(VMIS, name, {"metadata": {"labels": {"kubevirt.io/nodeName": to}}}, c.namespace)
    vmi = await c.parent.get(VMIS, name, c.namespace)
    source = (vmi.get("status") or {}).get("nodeName")
    migration = {"sourceNode": source, "targetNode": to, "completed": True, "failed": False}
    await c.parent.patch(
        VMIS, name, {"status": {"nodeName": to, "migrationState": migration}}, c.namespace, subresource="status"
    )


async def ensure_absent(c: Clients, name: str) -> None:
    """Remove every trace of a test node from both clusters."""
    await remove_node(c, name)
    with contextlib.suppress(NotFound):
        await c.tenant.delete(NODES, name)
