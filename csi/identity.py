"""The CSI Identity service: name, version, capabilities, readiness."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from csi._proto import csi_pb2, csi_pb2_grpc

Capability = csi_pb2.PluginCapability


class IdentityService(csi_pb2_grpc.IdentityServicer):
    def __init__(self, name: str, version: str, *, controller: bool, ready: Callable[[], bool]) -> None:
        self.name = name
        self.version = version
        self.controller = controller
        self.ready = ready

    async def GetPluginInfo(self, request: Any, context: Any) -> Any:  # noqa: N802 - gRPC method names
        return csi_pb2.GetPluginInfoResponse(name=self.name, vendor_version=self.version)

    async def GetPluginCapabilities(self, request: Any, context: Any) -> Any:  # noqa: N802
        capabilities = [Capability(volume_expansion=Capability.VolumeExpansion(type=Capability.VolumeExpansion.ONLINE))]
        if self.controller:
            capabilities.append(Capability(service=Capability.Service(type=Capability.Service.CONTROLLER_SERVICE)))
        return csi_pb2.GetPluginCapabilitiesResponse(capabilities=capabilities)

    async def Probe(self, request: Any, context: Any) -> Any:  # noqa: N802
        response = csi_pb2.ProbeResponse()
        response.ready.value = self.ready()
        return response
