"""The CSI Controller service: one servicer delegating to the volume, attachment and snapshot handlers."""

from __future__ import annotations

from typing import Any

from csi._proto import csi_pb2, csi_pb2_grpc
from csi.attach import Attachments
from csi.config import DriverConfig
from csi.errors import Unimplemented
from csi.parent import Parent
from csi.server import VolumeGuard
from csi.snapshots import Snapshots
from csi.volumes import Volumes

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
    def __init__(self, parent: Parent, config: DriverConfig, guard: VolumeGuard | None = None) -> None:
        guard = guard or VolumeGuard()
        self.volumes = Volumes(parent, config, guard)
        self.attachments = Attachments(parent, self.volumes, config, guard)
        self.snapshots = Snapshots(parent, self.volumes, config, guard)

    async def ControllerGetCapabilities(self, request: Any, context: Any) -> Any:  # noqa: N802 - gRPC names
        return csi_pb2.ControllerGetCapabilitiesResponse(
            capabilities=[csi_pb2.ControllerServiceCapability(rpc=RPC(type=kind)) for kind in ADVERTISED]
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
        raise Unimplemented("GetCapacity needs the LINSTOR connection (not configured)")

    async def ControllerModifyVolume(self, request: Any, context: Any) -> Any:  # noqa: N802
        raise Unimplemented("ControllerModifyVolume is not supported")
