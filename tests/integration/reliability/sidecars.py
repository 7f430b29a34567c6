"""CSI calls made the way external-provisioner and external-attacher make them: the same request repeated with
backoff while the driver answers UNAVAILABLE, DEADLINE_EXCEEDED or ABORTED (or is not there at all), each
attempt with a deadline of its own. Every status seen on the way is recorded."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc

from csi._proto import csi_pb2, csi_pb2_grpc

T = TypeVar("T")
RETRIED = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.ABORTED})
# The sidecars' own per-attempt timeout is 15 s by default; the driver's waits are bounded below that.
ATTEMPT_TIMEOUT = 30.0
# Reconnect quickly to a restarted driver (gRPC's default backoff grows to two minutes).
CHANNEL_OPTIONS = [("grpc.initial_reconnect_backoff_ms", 200), ("grpc.max_reconnect_backoff_ms", 1000)]
Mode = csi_pb2.VolumeCapability.AccessMode
CAPABILITY = csi_pb2.VolumeCapability(
    mount=csi_pb2.VolumeCapability.MountVolume(fs_type="ext4"),
    access_mode=csi_pb2.VolumeCapability.AccessMode(mode=Mode.SINGLE_NODE_WRITER),
)
GIB = 1 << 30


@dataclass
class Sidecar:
    """One sidecar's view of the driver: a controller stub and the statuses its retries saw."""

    controller: Any
    seen: list[tuple[str, grpc.StatusCode, str]] = field(default_factory=list)

    async def until_done(self, what: str, call: Callable[[], Awaitable[T]], timeout: float = 180.0) -> T:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        delay = 0.2
        while True:
            try:
                return await call()
            except grpc.aio.AioRpcError as error:
                self.seen.append((what, error.code(), error.details() or ""))
                if error.code() not in RETRIED or loop.time() > deadline:
                    raise
            await asyncio.sleep(random.uniform(delay / 2, delay))
            delay = min(delay * 2, 5.0)

    def codes(self) -> set[grpc.StatusCode]:
        return {code for _, code, _ in self.seen}

    async def create(self, name: str, storage_class: str, size: int = GIB) -> str:
        request = csi_pb2.CreateVolumeRequest(
            name=name,
            capacity_range=csi_pb2.CapacityRange(required_bytes=size),
            volume_capabilities=[CAPABILITY],
            parameters={"infraStorageClassName": storage_class},
        )
        response = await self.until_done(
            f"create {name}", lambda: self.controller.CreateVolume(request, timeout=ATTEMPT_TIMEOUT)
        )
        return str(response.volume.volume_id)

    async def publish(self, volume_id: str, node_id: str) -> None:
        request = csi_pb2.ControllerPublishVolumeRequest(
            volume_id=volume_id, node_id=node_id, volume_capability=CAPABILITY
        )
        await self.until_done(
            f"publish {volume_id} to {node_id}",
            lambda: self.controller.ControllerPublishVolume(request, timeout=ATTEMPT_TIMEOUT),
        )

    async def unpublish(self, volume_id: str, node_id: str) -> None:
        request = csi_pb2.ControllerUnpublishVolumeRequest(volume_id=volume_id, node_id=node_id)
        await self.until_done(
            f"unpublish {volume_id} from {node_id}",
            lambda: self.controller.ControllerUnpublishVolume(request, timeout=ATTEMPT_TIMEOUT),
        )

    async def expand(self, volume_id: str, size: int) -> None:
        request = csi_pb2.ControllerExpandVolumeRequest(
            volume_id=volume_id, capacity_range=csi_pb2.CapacityRange(required_bytes=size)
        )
        await self.until_done(
            f"expand {volume_id}", lambda: self.controller.ControllerExpandVolume(request, timeout=ATTEMPT_TIMEOUT)
        )

    async def delete(self, volume_id: str) -> None:
        request = csi_pb2.DeleteVolumeRequest(volume_id=volume_id)
        await self.until_done(
            f"delete {volume_id}", lambda: self.controller.DeleteVolume(request, timeout=ATTEMPT_TIMEOUT)
        )


@asynccontextmanager
async def sidecar(target: str) -> AsyncIterator[Sidecar]:
    async with grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS) as channel:
        yield Sidecar(csi_pb2_grpc.ControllerStub(channel))
