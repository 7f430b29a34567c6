"""The components around kubelet that are not running yet, played with real API objects and our real driver.

csi-provisioner (CreateVolume + the PV), the PV binder (both sides Bound), the attach/detach controller with
csi-attacher (ControllerPublish with the node ID from the CSINode, an attached VolumeAttachment whose metadata
is the publish context, the volume in the Node's volumesAttached) and csi-resizer (ControllerExpandVolume, the
PV's new capacity, the claim marked for node expansion).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from dataclasses import dataclass
from typing import Any

import grpc

from csi._proto import csi_pb2
from e2e.kubelet.paths import attachment_name, unique_volume_name
from kube.client import Client, Object
from kube.errors import AlreadyExists, NotFound
from kube.informer import resource_version
from kube.resources import (
    CSINODES,
    EVENTS,
    NODES,
    PERSISTENTVOLUMECLAIMS,
    PERSISTENTVOLUMES,
    VOLUMEATTACHMENTS,
    Resource,
)
from tests.integration.csi.conftest import PARENT_CLASS

DRIVER = "csi.tenant-cloud.io"
STORAGE_CLASS = "kubelet-e2e"
GIB = 1 << 30
Mode = csi_pb2.VolumeCapability.AccessMode

# What csi-attacher retries with the same request: the attach is under way, or another call holds the volume.
RETRIED = {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.ABORTED}
RETRY_DEADLINE = 90.0


async def repeated(call: Any, request: Any) -> Any:
    """The sidecars' way: the same request again, after a pause, while the driver says the work is under way."""
    deadline = asyncio.get_running_loop().time() + RETRY_DEADLINE
    while True:
        try:
            return await call(request)
        except grpc.aio.AioRpcError as error:
            if error.code() not in RETRIED or asyncio.get_running_loop().time() > deadline:
                raise
        await asyncio.sleep(1)


@dataclass(frozen=True)
class Volume:
    pv: str
    claim: str
    namespace: str
    handle: str
    context: dict[str, str]
    block: bool

    def capability(self) -> Any:
        access = Mode(mode=Mode.SINGLE_NODE_WRITER)
        if self.block:
            return csi_pb2.VolumeCapability(block=csi_pb2.VolumeCapability.BlockVolume(), access_mode=access)
        return csi_pb2.VolumeCapability(mount=csi_pb2.VolumeCapability.MountVolume(), access_mode=access)


async def provision(
    controller: Any, tenant: Client, namespace: str, *, block: bool = False, fs_type: str = "ext4"
) -> Volume:
    """What csi-provisioner and the PV binder do for a claim: a parent volume, its PV, both Bound."""
    pv_name = f"pvc-{uuid.uuid4()}"
    claim = f"data-{pv_name[4:12]}"
    mode = "Block" if block else "Filesystem"
    created = (
        await repeated(
            controller.CreateVolume,
            csi_pb2.CreateVolumeRequest(
                name=pv_name,
                capacity_range=csi_pb2.CapacityRange(required_bytes=GIB),
                volume_capabilities=[Volume(pv_name, claim, namespace, "", {}, block).capability()],
                parameters={"infraStorageClassName": PARENT_CLASS},
            ),
        )
    ).volume
    pvc = await tenant.create(
        PERSISTENTVOLUMECLAIMS,
        {
            "metadata": {"name": claim, "namespace": namespace},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}},
                "storageClassName": STORAGE_CLASS,
                "volumeMode": mode,
                "volumeName": pv_name,
            },
        },
    )
    csi_source: dict[str, Any] = {
        "driver": DRIVER,
        "volumeHandle": created.volume_id,
        "volumeAttributes": dict(created.volume_context),
    }
    if not block:
        csi_source["fsType"] = fs_type
    await tenant.create(
        PERSISTENTVOLUMES,
        {
            "metadata": {"name": pv_name},
            "spec": {
                "capacity": {"storage": "1Gi"},
                "accessModes": ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Delete",
                "storageClassName": STORAGE_CLASS,
                "volumeMode": mode,
                "claimRef": {"namespace": namespace, "name": claim, "uid": pvc["metadata"]["uid"]},
                "csi": csi_source,
            },
        },
    )
    await tenant.patch(PERSISTENTVOLUMES, pv_name, {"status": {"phase": "Bound"}}, subresource="status")
    bound = {"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "1Gi"}}
    await tenant.patch(PERSISTENTVOLUMECLAIMS, claim, {"status": bound}, namespace, subresource="status")
    return Volume(pv_name, claim, namespace, created.volume_id, dict(created.volume_context), block)


async def node_id(tenant: Client, node: str) -> str:
    """Where csi-attacher finds the node ID: the CSINode, cross-checked with the Node annotation."""
    csinode = await tenant.get(CSINODES, node)
    ids = {d["name"]: d["nodeID"] for d in csinode["spec"]["drivers"]}
    annotations = (await tenant.get(NODES, node))["metadata"]["annotations"]
    assert json.loads(annotations["csi.volume.kubernetes.io/nodeid"])[DRIVER] == ids[DRIVER]
    return str(ids[DRIVER])


async def mark_attached(tenant: Client, volume: Volume, node: str, attached: bool) -> None:
    """The attach/detach controller's record in the Node status, which kubelet verifies before mounting."""
    name = unique_volume_name(DRIVER, volume.handle)
    current = (await tenant.get(NODES, node)).get("status", {}).get("volumesAttached") or []
    others = [v for v in current if v["name"] != name]
    wanted = [*others, {"name": name, "devicePath": ""}] if attached else others
    await tenant.patch(NODES, node, {"status": {"volumesAttached": wanted}}, subresource="status")


async def attach(controller: Any, tenant: Client, volume: Volume, node: str) -> None:
    """ControllerPublishVolume, the VolumeAttachment kubelet waits for, attached, and the Node's record of it."""
    await record_attached(tenant, volume, node, await publish(controller, tenant, volume, node))


async def publish(controller: Any, tenant: Client, volume: Volume, node: str) -> dict[str, str]:
    """csi-attacher's ControllerPublishVolume: the volume is hot-plugged into the node's VM."""
    request = csi_pb2.ControllerPublishVolumeRequest(
        volume_id=volume.handle,
        node_id=await node_id(tenant, node),
        volume_capability=volume.capability(),
        volume_context=volume.context,
    )
    published = await repeated(controller.ControllerPublishVolume, request)
    return dict(published.publish_context)


async def record_attached(tenant: Client, volume: Volume, node: str, publish_context: dict[str, str]) -> None:
    """The VolumeAttachment marked attached with the publish context, then the Node's volumesAttached."""
    name = attachment_name(volume.handle, DRIVER, node)
    spec = {"attacher": DRIVER, "nodeName": node, "source": {"persistentVolumeName": volume.pv}}
    with contextlib.suppress(AlreadyExists):
        await tenant.create(VOLUMEATTACHMENTS, {"metadata": {"name": name}, "spec": spec})
    status = {"attached": True, "attachmentMetadata": publish_context}
    await tenant.patch(VOLUMEATTACHMENTS, name, {"status": status}, subresource="status")
    await mark_attached(tenant, volume, node, True)


async def detach(controller: Any, tenant: Client, volume: Volume, node: str) -> None:
    await tenant.delete(VOLUMEATTACHMENTS, attachment_name(volume.handle, DRIVER, node))
    request = csi_pb2.ControllerUnpublishVolumeRequest(volume_id=volume.handle, node_id=await node_id(tenant, node))
    await repeated(controller.ControllerUnpublishVolume, request)
    await mark_attached(tenant, volume, node, False)


async def resize(controller: Any, tenant: Client, volume: Volume, size: str, size_bytes: int) -> None:
    """csi-resizer with node expansion required: grow the parent volume and the PV, mark the claim."""
    grown = await repeated(
        controller.ControllerExpandVolume,
        csi_pb2.ControllerExpandVolumeRequest(
            volume_id=volume.handle,
            capacity_range=csi_pb2.CapacityRange(required_bytes=size_bytes),
            volume_capability=volume.capability(),
        ),
    )
    assert grown.node_expansion_required
    requests = {"spec": {"resources": {"requests": {"storage": size}}}}
    await tenant.patch(PERSISTENTVOLUMECLAIMS, volume.claim, requests, volume.namespace)
    await tenant.patch(PERSISTENTVOLUMES, volume.pv, {"spec": {"capacity": {"storage": size}}})
    pending = {
        "type": "FileSystemResizePending",
        "status": "True",
        "message": "Waiting for a pod to finish the resize.",
    }
    status = {
        "allocatedResources": {"storage": size},
        "allocatedResourceStatuses": {"storage": "NodeResizePending"},
        "conditions": [pending],
    }
    await tenant.patch(PERSISTENTVOLUMECLAIMS, volume.claim, {"status": status}, volume.namespace, subresource="status")


async def delete_volume(controller: Any, tenant: Client, volume: Volume) -> None:
    """The claim goes, the PV and the parent volume with it (reclaim policy Delete)."""
    for resource, name, namespace in (
        (PERSISTENTVOLUMECLAIMS, volume.claim, volume.namespace),
        (PERSISTENTVOLUMES, volume.pv, None),
    ):
        with contextlib.suppress(NotFound):
            await tenant.delete(resource, name, namespace)
    await repeated(controller.DeleteVolume, csi_pb2.DeleteVolumeRequest(volume_id=volume.handle))


def pod_manifest(name: str, node: str, volume: Volume) -> Object:
    container: dict[str, Any] = {"name": "app", "image": "registry.example/app:1"}
    if volume.block:
        container["volumeDevices"] = [{"name": "data", "devicePath": "/dev/xvda"}]
    else:
        container["volumeMounts"] = [{"name": "data", "mountPath": "/data"}]
    return {
        "metadata": {"name": name, "namespace": volume.namespace},
        "spec": {
            "nodeName": node,
            "containers": [container],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": volume.claim}}],
        },
    }


async def first_event(tenant: Client, pod: Object, reason: str, timeout: float) -> Object:
    """The first Event with this reason about the pod, watched for."""
    namespace = pod["metadata"]["namespace"]
    selector = f"involvedObject.uid={pod['metadata']['uid']},reason={reason}"
    async with asyncio.timeout(timeout):
        listed = await tenant.list(EVENTS, namespace, field_selector=selector)
        if listed.items:
            return listed.items[0]
        params = {"watch": "1", "fieldSelector": selector, "resourceVersion": listed.resource_version}
        while True:
            async with tenant.transport.stream(EVENTS.path(namespace), params, read_timeout=timeout) as stream:
                async for line in stream:
                    event = json.loads(line) if line.strip() else {}
                    if event.get("type") == "ADDED":
                        return dict(event["object"])


async def wait_gone(tenant: Client, resource: Resource, name: str, namespace: str | None, timeout: float) -> None:
    """Watch until the object is deleted (no polling)."""
    async with asyncio.timeout(timeout):
        try:
            current = await tenant.get(resource, name, namespace)
        except NotFound:
            return
        params = {"watch": "1", "fieldSelector": f"metadata.name={name}", "resourceVersion": resource_version(current)}
        while True:
            async with tenant.transport.stream(resource.path(namespace), params, read_timeout=timeout) as stream:
                async for line in stream:
                    event = json.loads(line) if line.strip() else {}
                    if event.get("type") == "DELETED":
                        return
                    if event.get("object"):
                        params["resourceVersion"] = resource_version(event["object"])
