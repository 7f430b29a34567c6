"""The CSI Controller service: one servicer delegating to the volume, attachment and snapshot handlers."""

from __future__ import annotations

from typing import Any

from csi._proto import csi_pb2, csi_pb2_grpc
from csi.attach import Attachments
from csi.config import DriverConfig
from csi.errors import OperationPending, Unimplemented
from csi.linstor.locality import Locality
from csi.linstor.migration import parent_nodes
from csi.linstor.view import LinstorView
from csi.parent import Parent
from csi.server import VolumeGuard
from csi.snapshots import Snapshots
from csi.volumes import Volumes, parameters_of

RPC = csi_pb2.ControllerServiceCapability.RPC
ADVERTISED = (
    RPC.CREATE_DELETE_VOLUME,
    RPC.PUBLISH_UNPUBLISH_VOLUME,
    RPC.LIST_VOLUMES,
    RPC.LIST_VOLUMES_PUBLISHED_NODES,
    RPC.GET_VOLUME,
    RPC.VOLUME_CONDITION,
    RPC.CREATE_DELETE_SNAPSHOT,
    RPC.LIST_SNAPSHOTS,
    RPC.CLONE_VOLUME,
    RPC.EXPAND_VOLUME,
)


class ControllerService(csi_pb2_grpc.ControllerServicer):
    def __init__(
        self,
        parent: Parent,
        config: DriverConfig,
        guard: VolumeGuard | None = None,
        linstor: LinstorView | None = None,
    ) -> None:
        guard = guard or VolumeGuard()
        self.config = config
        self.linstor = linstor if linstor is not None and linstor.configured else None
        locality = None
        if self.linstor is not None:
            # Where each volume is used (VMI nodes, migration targets): LINSTOR alone cannot tell.
            self.linstor.attached_nodes = lambda claim: parent_nodes(parent.vmis_using(claim))
            locality = Locality(self.linstor)
        self.volumes = Volumes(parent, config, guard, self.linstor)
        self.attachments = Attachments(parent, self.volumes, config, guard, locality)
        self.snapshots = Snapshots(parent, self.volumes, config, guard)

    @property
    def advertised(self) -> tuple[csi_pb2.ControllerServiceCapability.RPC.Type, ...]:
        """GET_CAPACITY only with a LINSTOR connection: without one there is nothing true to say."""
        return (*ADVERTISED, RPC.GET_CAPACITY) if self.linstor is not None else ADVERTISED

    async def ControllerGetCapabilities(self, request: Any, context: Any) -> Any:  # noqa: N802 - gRPC names
        return csi_pb2.ControllerGetCapabilitiesResponse(
            capabilities=[csi_pb2.ControllerServiceCapability(rpc=RPC(type=kind)) for kind in self.advertised]
        )

    async def CreateVolume(self, request: Any, context: Any) -> Any:  # noqa: N802
        return await self.volumes.create(request)

    async def DeleteVolume(self, request: Any, context: Any) -> Any:  # noqa: N802
        return await self.volumes.delete(request)

    async def ControllerPublishVolume(self, request: Any, context: Any) -> Any:  # noqa: N802
        return await self.attachments.publish(request)

    async def ControllerUnpublishVolume(self, request: Any, context: Any) -> Any:  # noqa: N802
        return await self.attachments.unpublish(request)

    async def ValidateVolumeCapabilities(self, request: Any, context: Any) -> Any:  # noqa: N802
        return await self.volumes.validate(request)

    async def ListVolumes(self, request: Any, context: Any) -> Any:  # noqa: N802
        return await self.volumes.list(request)

    async def ControllerGetVolume(self, request: Any, context: Any) -> Any:  # noqa: N802
        return await self.volumes.get(request)

    async def ControllerExpandVolume(self, request: Any, context: Any) -> Any:  # noqa: N802
        return await self.volumes.expand(request)

    async def CreateSnapshot(self, request: Any, context: Any) -> Any:  # noqa: N802
        return await self.snapshots.create(request)

    async def DeleteSnapshot(self, request: Any, context: Any) -> Any:  # noqa: N802
        return await self.snapshots.delete(request)

    async def ListSnapshots(self, request: Any, context: Any) -> Any:  # noqa: N802
        return await self.snapshots.list(request)

    async def GetCapacity(self, request: Any, context: Any) -> Any:  # noqa: N802
        if self.linstor is None:
            raise Unimplemented("GetCapacity needs the LINSTOR connection (not configured)")
        storage_class, _ = parameters_of(request)
        if not self.config.enforcement.allows(storage_class):
            return csi_pb2.GetCapacityResponse(available_capacity=0)
        space = await self.linstor.space_for(storage_class)
        if space is None:
            # UNAVAILABLE: the provisioner keeps what it published rather than publishing zero.
            raise OperationPending(f"capacity of parent storage class {storage_class or '(default)'} is unknown now")
        response = csi_pb2.GetCapacityResponse(available_capacity=space.available)
        response.maximum_volume_size.value = space.maximum_volume
        return response

    async def ControllerModifyVolume(self, request: Any, context: Any) -> Any:  # noqa: N802
        raise Unimplemented("ControllerModifyVolume is not supported")
