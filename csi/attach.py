"""ControllerPublishVolume / ControllerUnpublishVolume: hot-plug through KubeVirt, waiting on watches.

Attached means: in the VM's spec AND Ready in the VMI's volumeStatus. Detached means: in neither the VM's
nor the VMI's spec or status. Waits are bounded; past the bound the call returns UNAVAILABLE and the
external-attacher retries, instead of an RPC that blocks for minutes. With LINSTOR data locality on, a successful
publish also starts, in the background, a diskful replica on the VM's parent node (csi/linstor/locality.py).
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from csi import capabilities
from csi._proto import csi_pb2
from csi.config import DriverConfig
from csi.errors import FailedPrecondition, InvalidArgument, OperationPending, VolumeNotFound
from csi.ids import InvalidID, parse_node_id
from csi.linstor.locality import Locality
from csi.parent import (
    Parent,
    bus_of,
    claim_name,
    hotplug_progress,
    serial_of,
    vm_volume_names,
    vmi_volume_names,
    vmi_volume_phase,
)
from csi.server import VolumeGuard
from csi.volumes import Volumes
from kube.client import Object
from kube.errors import ApiError, NotFound

log = logging.getLogger(__name__)

ALREADY_PRESENT = ("already exists", "already in", "already attached")


class Attachments:
    def __init__(
        self,
        parent: Parent,
        volumes: Volumes,
        config: DriverConfig,
        guard: VolumeGuard,
        locality: Locality | None = None,
    ) -> None:
        self.parent = parent
        self.volumes = volumes
        self.config = config
        self.guard = guard
        self.locality = locality

    def _vm_name(self, node: str) -> str:
        try:
            namespace, vm = parse_node_id(node)
        except InvalidID as error:
            raise VolumeNotFound(str(error)) from error
        if namespace != self.parent.namespace:
            raise VolumeNotFound(f"node {node!r} is not in this cluster's namespace")
        return vm

    def _attached(self, vm: str, volume: str) -> bool:
        vm_obj, vmi = self.parent.vm(vm), self.parent.vmi(vm)
        in_spec = vm_obj is not None and volume in vm_volume_names(vm_obj)
        return in_spec and vmi is not None and vmi_volume_phase(vmi, volume) == "Ready"

    def _detached(self, vm: str, volume: str) -> bool:
        vm_obj, vmi = self.parent.vm(vm), self.parent.vmi(vm)
        in_vm = vm_obj is not None and volume in vm_volume_names(vm_obj)
        in_vmi = vmi is not None and (volume in vmi_volume_names(vmi) or vmi_volume_phase(vmi, volume) is not None)
        return not in_vm and not in_vmi

    async def publish(self, request: Any) -> Any:
        if not request.volume_id:
            raise InvalidArgument("volume_id is required")
        if not request.node_id:
            raise InvalidArgument("node_id is required")
        if not request.HasField("volume_capability"):
            raise InvalidArgument("volume_capability is required")
        capabilities.check([request.volume_capability])
        volume = self.volumes.owned_volume(request.volume_id)
        vm = self._vm_name(request.node_id)
        if self.parent.vm(vm) is None:
            raise VolumeNotFound(f"VirtualMachine {self.parent.namespace}/{vm} not found")
        with self.guard.hold(request.volume_id):
            if not capabilities.multi_node([request.volume_capability]):
                await self._check_single_node(request.volume_id, vm)
            if not self._attached(vm, request.volume_id):
                await self._add(vm, volume)
                attached = await self.parent.changes.wait_for(
                    lambda: self._attached(vm, request.volume_id), self.config.attach_timeout
                )
                if not attached:
                    progress = hotplug_progress(self.parent.vmi(vm), request.volume_id)
                    raise OperationPending(f"volume {request.volume_id} is not attached to {vm} yet: {progress}")
            # Attached: the VMI (and the parent node it runs on) is known for sure.
            self._prefer_local(request.volume_id, volume, vm)
        return csi_pb2.ControllerPublishVolumeResponse(publish_context={})

    def _prefer_local(self, volume_id: str, volume: Object, vm: str) -> None:
        """Fire and forget: the publish neither waits for locality nor depends on its outcome."""
        node = ((self.parent.vmi(vm) or {}).get("status") or {}).get("nodeName")
        if self.locality is not None and node:
            self.locality.prefer_local(volume_id, claim_name(volume), str(node), vm)

    async def _check_single_node(self, volume: str, vm: str) -> None:
        """RWO: another running VMI using the volume is a conflict; a stale VM-spec entry elsewhere is cleaned."""
        for other in self.parent.vmis_using(volume):
            if other["metadata"]["name"] != vm:
                raise FailedPrecondition(f"volume {volume} is attached to {other['metadata']['name']}")
        for other_vm in self.parent.vms_with(volume):
            name = other_vm["metadata"]["name"]
            if name != vm:
                # Left in a stopped or gone VM's spec by an earlier detach: it must not block this attach.
                log.info("removing stale volume %s from VM %s before attaching it to %s", volume, name, vm)
                await self._remove_from_vm(name, volume)

    async def _add(self, vm: str, volume: Object) -> None:
        name = claim_name(volume)
        bus = bus_of(volume)
        source_kind = "dataVolume" if self.config.volume_kind == "DataVolume" else "persistentVolumeClaim"
        source = {"name": name} if source_kind == "dataVolume" else {"claimName": name}
        body = {
            "name": name,
            "disk": {"name": name, "serial": serial_of(volume), "disk": {"bus": bus}},
            "volumeSource": {source_kind: {**source, "hotpluggable": True}},
        }
        try:
            await self.parent.call_vm(vm, "addvolume", body)
        except ApiError as error:
            if not any(text in error.message for text in ALREADY_PRESENT):
                raise

    async def _remove_from_vm(self, vm: str, volume: str) -> None:
        with contextlib.suppress(NotFound):
            await self.parent.call_vm(vm, "removevolume", {"name": volume})

    async def unpublish(self, request: Any) -> Any:
        if not request.volume_id:
            raise InvalidArgument("volume_id is required")
        if not request.node_id:
            raise InvalidArgument("node_id is required")
        try:
            vm = self._vm_name(request.node_id)
        except VolumeNotFound:
            return csi_pb2.ControllerUnpublishVolumeResponse()  # no such node: nothing can be attached there
        with self.guard.hold(request.volume_id):
            if self._detached(vm, request.volume_id):
                return csi_pb2.ControllerUnpublishVolumeResponse()
            await self._remove(vm, request.volume_id)
            done = await self.parent.changes.wait_for(
                lambda: self._detached(vm, request.volume_id), self.config.attach_timeout
            )
            if not done:
                progress = hotplug_progress(self.parent.vmi(vm), request.volume_id)
                raise OperationPending(f"volume {request.volume_id} is still attached to {vm}: {progress}")
        return csi_pb2.ControllerUnpublishVolumeResponse()

    async def _remove(self, vm: str, volume: str) -> None:
        """Remove from the VM (so it stays removed across reboots), else from the VMI when the VM is gone."""
        vm_obj, vmi = self.parent.vm(vm), self.parent.vmi(vm)
        if vm_obj is not None and volume in vm_volume_names(vm_obj):
            await self._remove_from_vm(vm, volume)
        elif vmi is not None and volume in vmi_volume_names(vmi):
            with contextlib.suppress(NotFound):
                await self.parent.call_vmi(vm, "removevolume", {"name": volume})
