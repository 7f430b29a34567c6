"""Steps of the volume scenarios: a claim provisioned and bound, a pod on a Node that gets its volume attached,
hot-plugged into the Node's VM and mounted by the Node's kubelet stand-in, and the way back; what the parent
and the node show at each step."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from e2e.cluster import nodes
from e2e.kubelet.paths import unique_volume_name
from e2e.sims._disks import volume_image
from kube.client import Client, Object
from kube.resources import NODES, PERSISTENTVOLUMES, PODS, VOLUMEATTACHMENTS, Resource
from tests.e2e.conftest import E2E, bound, delete_pod_now, pod_on, running, until

DATAVOLUMES = Resource("cdi.kubevirt.io", "v1beta1", "datavolumes", "DataVolume")
CLUSTER_LABEL = "cluster.x-k8s.io/cluster-name"
GIB = 1 << 30


async def provisioned(tenant: Client, namespace: str, name: str) -> tuple[Object, Object]:
    """(claim, volume) once the claim is bound."""
    found = await bound(tenant, namespace, name)
    return found, await tenant.get(PERSISTENTVOLUMES, found["spec"]["volumeName"])


def handle(volume: Object) -> str:
    """The PV's volume handle: the parent DataVolume's (and its claim's) name."""
    return str(volume["spec"]["csi"]["volumeHandle"])


def parent_image(e2e: E2E, volume: Object) -> Path:
    """The simulated parent volume's bytes: the image the KubeVirt simulator hot-plugs as the VM's disk."""
    return volume_image(e2e.cluster.dir, e2e.parent_namespace, handle(volume)).resolve()


def disk_image(major: int, minor: int) -> Path | None:
    """The image behind a loop device (a simulated hot-plugged disk), by device number."""
    try:
        return Path((Path("/sys/dev/block") / f"{major}:{minor}" / "loop" / "backing_file").read_text().strip())
    except FileNotFoundError:
        return None


async def attachment_for(tenant: Client, volume: str, node: str) -> Object | None:
    for found in (await tenant.list_all(VOLUMEATTACHMENTS)).items:
        spec = found["spec"]
        if spec["source"].get("persistentVolumeName") == volume and spec["nodeName"] == node:
            return found
    return None


async def attached_to(tenant: Client, volume: str, node: str) -> Object | None:
    found = await attachment_for(tenant, volume, node)
    return found if found and (found.get("status") or {}).get("attached") else None


def hotplugged(vmi: Object, volume: str) -> dict[str, Any] | None:
    """The VMI's status entry for a hot-plugged volume (KubeVirt reports the DataVolume's name)."""
    for entry in (vmi.get("status") or {}).get("volumeStatus") or []:
        if entry["name"] == volume and entry.get("hotplugVolume") is not None:
            return dict(entry)
    return None


def in_vm_spec(vm: Object, volume: str) -> bool:
    volumes = vm["spec"]["template"]["spec"].get("volumes") or []
    return any(v["name"] == volume for v in volumes)


async def plugged_into(e2e: E2E, node: str, parent_volume: str) -> bool:
    """In the VM's spec (so it survives a reboot) and Ready in its VMI's volumeStatus."""
    vmi = await e2e.parent.get(nodes.VMIS, node, e2e.parent_namespace)
    vm = await e2e.parent.get(nodes.VMS, node, e2e.parent_namespace)
    return (hotplugged(vmi, parent_volume) or {}).get("phase") == "Ready" and in_vm_spec(vm, parent_volume)


async def unplugged_from(e2e: E2E, node: str, parent_volume: str) -> bool:
    vmi = await e2e.parent.get(nodes.VMIS, node, e2e.parent_namespace)
    vm = await e2e.parent.get(nodes.VMS, node, e2e.parent_namespace)
    return hotplugged(vmi, parent_volume) is None and not in_vm_spec(vm, parent_volume)


def node_lists(node: Object, field: str, name: str) -> bool:
    """Whether the Node's status.volumesAttached or status.volumesInUse names the volume."""
    entries = ((node.get("status") or {}).get(field)) or []
    return any((entry["name"] if isinstance(entry, dict) else entry) == name for entry in entries)


async def run_on(
    e2e: E2E, node: str, namespace: str, pod: str, claim: str, volume: Object, *, block: bool = False
) -> Object:
    """Bind a pod using the claim to `node` and follow it until it runs: the attach/detach controller's
    VolumeAttachment, attached by csi-attacher through our driver, the volume hot-plugged into the node's VM,
    then the stand-in stages and publishes it and reports the pod Running. Returns the running pod."""
    tenant, pv = e2e.tenant, volume["metadata"]["name"]
    await tenant.create(PODS, pod_on(node, pod, claim, block=block), namespace)
    attachment = await until(lambda: attached_to(tenant, pv, node), f"{pv} is attached to {node}", timeout=90)
    assert attachment["spec"]["attacher"] == e2e.stack.driver_name
    assert await plugged_into(e2e, node, handle(volume)), f"{handle(volume)} is not hot-plugged into VM {node}"
    started = await running(e2e.tenant, namespace, pod)
    unique = unique_volume_name(e2e.stack.driver_name, handle(volume))
    status = await tenant.get(NODES, node)
    assert node_lists(status, "volumesAttached", unique) and node_lists(status, "volumesInUse", unique)
    return started


async def end_on(e2e: E2E, node: str, namespace: str, pod: str, volume: Object) -> None:
    """Delete the pod at once and follow its volume back: the stand-in unpublishes and unstages it and drops
    it from volumesInUse, then the attach/detach controller detaches it (VolumeAttachment gone) and it is
    unplugged from the node's VM."""
    pv, parent_volume = volume["metadata"]["name"], handle(volume)
    await delete_pod_now(e2e.tenant, namespace, pod)

    async def detached() -> bool:
        return await attachment_for(e2e.tenant, pv, node) is None and await unplugged_from(e2e, node, parent_volume)

    await until(detached, f"{pv} is detached from {node} and unplugged from its VM", timeout=90)
    unique = unique_volume_name(e2e.stack.driver_name, parent_volume)
    assert not node_lists(await e2e.tenant.get(NODES, node), "volumesInUse", unique)


def write_synced(path: Path, data: bytes) -> None:
    """Write a file and make it and its directory entry durable on the device, as a careful application does."""
    with path.open("wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def write_device(device: Path, offset: int, data: bytes) -> None:
    """Write straight to a block device, durably."""
    with device.open("r+b", buffering=0) as disk:
        disk.seek(offset)
        disk.write(data)
        os.fsync(disk.fileno())


def read_device(device: Path, offset: int, size: int) -> bytes:
    with device.open("rb", buffering=0) as disk:
        disk.seek(offset)
        return disk.read(size)
