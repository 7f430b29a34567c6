"""The CSI Node service: turn a hot-plugged disk into a staged filesystem or a published raw block device.

Stage formats a blank disk (never one holding anything), checks ext4, mounts it at the staging path and grows
the filesystem if the disk grew while detached; publish binds the staging mount, or for raw block the device
itself, onto the workload's target path. Nothing is remembered between calls (see nodeservice_rules).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from csi._proto import csi_pb2, csi_pb2_grpc
from csi.errors import AlreadyExistsIncompatible, FailedPrecondition, InvalidArgument, VolumeNotFound
from csi.node.health import VolumeCondition
from csi.node.mountinfo import MountInfo, mount_at
from csi.nodeservice_os import NodeOS, os_errors_as_statuses, system_node_os
from csi.nodeservice_requests import (
    VolumeAccess,
    optional_safe_path,
    published_path,
    requested_access,
    required,
    safe_path,
    serial_of,
    volume_access,
)
from csi.nodeservice_rules import (
    VolumeKind,
    block_publishes,
    block_rdev,
    bound_block_device,
    check_block_published,
    check_capacity,
    check_published,
    check_staged,
    device_behind,
    filesystem_to_mount,
    other_publishes,
    same_tree,
    volume_kind,
)
from csi.server import VolumeGuard

Capability = csi_pb2.NodeServiceCapability
Usage = csi_pb2.VolumeUsage
MAX_NODE_ID_BYTES = 256  # the spec's hard limit for node_id
ADVERTISED = (
    Capability.RPC.STAGE_UNSTAGE_VOLUME,
    Capability.RPC.GET_VOLUME_STATS,
    Capability.RPC.EXPAND_VOLUME,
    Capability.RPC.VOLUME_CONDITION,
    # SINGLE_NODE_SINGLE_WRITER is enforced at publish; SINGLE_NODE_MULTI_WRITER allows any number of targets.
    Capability.RPC.SINGLE_NODE_MULTI_WRITER,
)


@dataclass(frozen=True)
class NodeIdentity:
    """Who this node is to the controller (`<namespace>/<vm>`) and how many volumes it may hold (0 = no limit)."""

    node_id: str
    max_volumes_per_node: int = 0

    def __post_init__(self) -> None:
        if not self.node_id or len(self.node_id.encode()) > MAX_NODE_ID_BYTES:
            raise ValueError(f"node ID {self.node_id!r} must be 1 to {MAX_NODE_ID_BYTES} bytes")
        if self.max_volumes_per_node < 0:
            raise ValueError("max_volumes_per_node must not be negative")


class NodeService(csi_pb2_grpc.NodeServicer):
    """Raises csi.errors domain errors; the server's interceptor turns them into gRPC statuses and logs them."""

    def __init__(self, identity: NodeIdentity, node_os: NodeOS, guard: VolumeGuard) -> None:
        self._identity = identity
        self._os = node_os
        self._guard = guard

    async def NodeGetInfo(self, request: Any, context: Any) -> Any:  # noqa: N802 - gRPC method names
        return csi_pb2.NodeGetInfoResponse(
            node_id=self._identity.node_id, max_volumes_per_node=self._identity.max_volumes_per_node
        )

    async def NodeGetCapabilities(self, request: Any, context: Any) -> Any:  # noqa: N802
        return csi_pb2.NodeGetCapabilitiesResponse(
            capabilities=[Capability(rpc=Capability.RPC(type=kind)) for kind in ADVERTISED]
        )

    async def NodeStageVolume(self, request: Any, context: Any) -> Any:  # noqa: N802
        volume_id = required(request.volume_id, "volume_id")
        staging = safe_path(request.staging_target_path, "staging_target_path")
        access = requested_access(request)
        serial = serial_of(request.volume_context)
        with self._guard.hold(volume_id), os_errors_as_statuses():
            device = await self._os.finder.find_by_serial(serial)
            staged = await self._mount_at(staging)
            if access.block:
                # Nothing to stage for raw block: finding the disk is the check, publish binds the device.
                if staged is not None:
                    raise AlreadyExistsIncompatible(f"{staging} holds a mounted filesystem, not a raw block volume")
            elif staged is None:
                await self._stage_filesystem(device, staging, access)
            else:
                check_staged(staged, device, await asyncio.to_thread(block_rdev, device), access)
                await self._grow(device, staging, access)  # finishes a grow that failed on an earlier try
        return csi_pb2.NodeStageVolumeResponse()

    async def NodeUnstageVolume(self, request: Any, context: Any) -> Any:  # noqa: N802
        volume_id = required(request.volume_id, "volume_id")
        staging = safe_path(request.staging_target_path, "staging_target_path")
        with self._guard.hold(volume_id), os_errors_as_statuses():
            await self._os.mounter.cleanup(staging)
        return csi_pb2.NodeUnstageVolumeResponse()

    async def NodePublishVolume(self, request: Any, context: Any) -> Any:  # noqa: N802
        volume_id = required(request.volume_id, "volume_id")
        target = safe_path(request.target_path, "target_path")
        access = requested_access(request)
        staging = optional_safe_path(request.staging_target_path, "staging_target_path")
        if staging is None:
            raise FailedPrecondition("staging_target_path is required: this driver stages volumes first")
        if staging == target:
            raise InvalidArgument("target_path must differ from staging_target_path")
        serial = serial_of(request.volume_context) if access.block else ""
        with self._guard.hold(volume_id), os_errors_as_statuses():
            if access.block:
                await self._publish_block(serial, target, request.readonly, access)
            else:
                await self._publish_filesystem(staging, target, request.readonly, access)
        return csi_pb2.NodePublishVolumeResponse()

    async def NodeUnpublishVolume(self, request: Any, context: Any) -> Any:  # noqa: N802
        volume_id = required(request.volume_id, "volume_id")
        target = safe_path(request.target_path, "target_path")
        # The node cannot tell a deleted volume from an unpublished one, so a missing target is success (csi-sanity
        # cleans up with exactly such calls); cleanup removes what publish created, dir or file.
        with self._guard.hold(volume_id), os_errors_as_statuses():
            await self._os.mounter.cleanup(target)
        return csi_pb2.NodeUnpublishVolumeResponse()

    async def NodeGetVolumeStats(self, request: Any, context: Any) -> Any:  # noqa: N802
        required(request.volume_id, "volume_id")
        path = published_path(request.volume_path, "volume_path")
        optional_safe_path(request.staging_target_path, "staging_target_path")
        # No volume guard: stats only read, and kubelet polls them while other operations run.
        with os_errors_as_statuses():
            kind = await asyncio.to_thread(volume_kind, path)
            if kind == "filesystem" and await self._mount_at(path) is None:
                raise VolumeNotFound(f"no volume is mounted at {path}")
            condition = await self._os.health.condition(path)
            usage = await self._usage(path, kind, condition)
        return csi_pb2.NodeGetVolumeStatsResponse(
            usage=usage,
            volume_condition=csi_pb2.VolumeCondition(abnormal=condition.abnormal, message=condition.message),
        )

    async def NodeExpandVolume(self, request: Any, context: Any) -> Any:  # noqa: N802
        volume_id = required(request.volume_id, "volume_id")
        path = published_path(request.volume_path, "volume_path")
        staging = optional_safe_path(request.staging_target_path, "staging_target_path")
        access = volume_access(request.volume_capability) if request.HasField("volume_capability") else None
        wanted = request.capacity_range.required_bytes
        with self._guard.hold(volume_id), os_errors_as_statuses():
            kind = await asyncio.to_thread(volume_kind, path)
            if kind == "unreachable":
                raise FailedPrecondition(f"{path} is unreachable; its filesystem cannot be grown")
            if kind == "block":
                capacity = await self._os.stats.size_bytes(path)
                check_capacity(capacity, wanted)
                return csi_pb2.NodeExpandVolumeResponse(capacity_bytes=capacity)
            if access is not None and access.block:
                return csi_pb2.NodeExpandVolumeResponse()  # a raw block volume has nothing to grow on the node
            capacity = await self._grow_published(path, staging, wanted)
        return csi_pb2.NodeExpandVolumeResponse(capacity_bytes=capacity)

    async def _stage_filesystem(self, device: Path, staging: Path, access: VolumeAccess) -> None:
        found = await self._os.probe.probe(device)
        fs_type = filesystem_to_mount(found, access.fs_type, device)
        if found.blank:
            await self._os.formatter.format(device, fs_type)
        elif not access.read_only:
            # Like mount-utils' SafeFormatAndMount: repair what is safely repairable before a read-write mount.
            await self._os.checker.check(device, fs_type)
        await self._os.mounter.mount(device, staging, fs_type, access.mount_flags)
        if not found.blank:
            await self._grow(device, staging, access)  # the disk may have been expanded while detached

    async def _grow(self, device: Path, staging: Path, access: VolumeAccess) -> None:
        if not access.read_only:  # a read-only mount cannot grow; the next read-write stage does it
            await self._os.resizer.grow(device, staging)

    async def _publish_filesystem(self, staging: Path, target: Path, read_only: bool, access: VolumeAccess) -> None:
        entries = await self._entries()
        staged = mount_at(entries, staging)
        if staged is None:
            raise FailedPrecondition(f"the volume is not staged at {staging}: NodeStageVolume must succeed first")
        published = mount_at(entries, target)
        if published is not None:
            check_published(published, staged, read_only)
            return
        if access.single_writer and (elsewhere := other_publishes(entries, staged, target)):
            raise FailedPrecondition(f"the single-writer volume is already published at {elsewhere[0]}")
        await self._os.mounter.bind(staging, target, read_only=read_only)

    async def _publish_block(self, serial: str, target: Path, read_only: bool, access: VolumeAccess) -> None:
        device = await self._os.finder.find_by_serial(serial)
        entries = await self._entries()
        published = mount_at(entries, target)
        if published is not None:
            rdev = await asyncio.to_thread(block_rdev, device)
            bound = await asyncio.to_thread(bound_block_device, target)
            check_block_published(published, bound, rdev, read_only)
            return
        if access.single_writer and (elsewhere := await asyncio.to_thread(block_publishes, entries, device, target)):
            raise FailedPrecondition(f"the single-writer volume is already published at {elsewhere[0]}")
        await self._os.mounter.publish_block(device, target, read_only=read_only)

    async def _grow_published(self, path: Path, staging: Path | None, wanted: int) -> int:
        entries = await self._entries()
        mount = mount_at(entries, path)
        if mount is None:
            raise VolumeNotFound(f"no volume is mounted at {path}")
        device = await asyncio.to_thread(device_behind, mount)
        capacity = await self._os.stats.size_bytes(device)
        check_capacity(capacity, wanted)
        grow_at = path
        staged = mount_at(entries, staging) if staging is not None else None
        if staging is not None and staged is not None and same_tree(staged, mount) and not staged.read_only:
            grow_at = staging  # a read-only publish cannot be grown through; its read-write staging mount can
        await self._os.resizer.grow(device, grow_at)
        return capacity

    async def _usage(self, path: Path, kind: VolumeKind, condition: VolumeCondition) -> list[Any]:
        try:
            if kind == "block":
                return [Usage(total=await self._os.stats.size_bytes(path), unit=Usage.BYTES)]
            if kind == "filesystem":
                stats = await self._os.stats.filesystem_stats(path)
                return [
                    Usage(
                        available=stats.available_bytes,
                        total=stats.total_bytes,
                        used=stats.used_bytes,
                        unit=Usage.BYTES,
                    ),
                    Usage(
                        available=stats.free_inodes, total=stats.total_inodes, used=stats.used_inodes, unit=Usage.INODES
                    ),
                ]
        except OSError:
            if not condition.abnormal:
                raise
        return []  # an unreachable or failing volume still gets its condition reported

    async def _entries(self) -> list[MountInfo]:
        return await asyncio.to_thread(self._os.mount_table.entries)

    async def _mount_at(self, path: Path) -> MountInfo | None:
        return mount_at(await self._entries(), path)


def build_node_service(node_id: str, max_volumes_per_node: int, by_id_root: Path, guard: VolumeGuard) -> NodeService:
    """The node service on this machine's real disks, mounts and tools."""
    return NodeService(NodeIdentity(node_id, max_volumes_per_node), system_node_os(by_id_root), guard)
