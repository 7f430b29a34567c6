"""The node service behind a real grpc.aio server, on real loop devices: status codes as kubelet sees them.

Calls go through `csi.server.start_server`, so the interceptor's mapping of domain errors is what is tested.
Loop devices stand in for hot-plugged disks, linked from a by-id directory under the names udev gives a QEMU
SCSI disk. Every mount and loop device lives under the test's tmp dir and is torn down even when a test fails.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import os
import struct
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from csi._proto import csi_pb2, csi_pb2_grpc
from csi.node.commands import SubprocessRunner
from csi.node.devices import DeviceFinder
from csi.nodeservice import NodeIdentity, NodeService
from csi.nodeservice_os import NodeOS, system_node_os
from csi.server import VolumeGuard, start_server
from tests.integration.csi.test_node_os import (
    CAP_SYS_RESOURCE,
    EXT4_SIZE,
    XFS_SIZE,
    Loop,
    Loops,
    MiB,
    has_capability,
    mounted_at,
    needs_root,
    sh,
)

pb = csi_pb2
Mode = pb.VolumeCapability.AccessMode
Code = grpc.StatusCode
NODE_ID = "tenant-ns/worker-0"
RPC_TIMEOUT = 120.0
SIZES = {"ext4": EXT4_SIZE, "xfs": XFS_SIZE}
needs_ext4_online_resize = pytest.mark.skipif(
    not has_capability(CAP_SYS_RESOURCE),
    reason="online ext4 resize needs CAP_SYS_RESOURCE (the node DaemonSet is privileged; this sandbox is not)",
)


def capability(fs_type: str = "ext4", *, mode: Any = Mode.SINGLE_NODE_WRITER, flags: tuple[str, ...] = ()) -> Any:
    mount = pb.VolumeCapability.MountVolume(fs_type=fs_type, mount_flags=flags)
    return pb.VolumeCapability(mount=mount, access_mode=Mode(mode=mode))


def block(mode: Any = Mode.SINGLE_NODE_WRITER) -> Any:
    return pb.VolumeCapability(block=pb.VolumeCapability.BlockVolume(), access_mode=Mode(mode=mode))


@dataclass(frozen=True)
class Volume:
    """One volume as kubelet handles it: ID, the disk serial from its volume context, and kubelet's paths."""

    volume_id: str
    serial: str
    staging: Path
    target: Path

    def stage(self, cap: Any) -> Any:
        return pb.NodeStageVolumeRequest(
            volume_id=self.volume_id,
            staging_target_path=str(self.staging),
            volume_capability=cap,
            volume_context={"serial": self.serial, "bus": "scsi"},
        )

    def unstage(self) -> Any:
        return pb.NodeUnstageVolumeRequest(volume_id=self.volume_id, staging_target_path=str(self.staging))

    def publish(self, cap: Any, *, readonly: bool = False, target: Path | None = None) -> Any:
        return pb.NodePublishVolumeRequest(
            volume_id=self.volume_id,
            staging_target_path=str(self.staging),
            target_path=str(target or self.target),
            volume_capability=cap,
            readonly=readonly,
            volume_context={"serial": self.serial, "bus": "scsi"},
        )

    def unpublish(self, target: Path | None = None) -> Any:
        return pb.NodeUnpublishVolumeRequest(volume_id=self.volume_id, target_path=str(target or self.target))

    def stats(self, path: Path | str | None = None) -> Any:
        volume_path = str(self.target if path is None else path)
        return pb.NodeGetVolumeStatsRequest(
            volume_id=self.volume_id, volume_path=volume_path, staging_target_path=str(self.staging)
        )

    def expand(self, required_bytes: int = 0, path: Path | None = None, cap: Any = None) -> Any:
        return pb.NodeExpandVolumeRequest(
            volume_id=self.volume_id,
            volume_path=str(path or self.target),
            staging_target_path=str(self.staging),
            capacity_range=pb.CapacityRange(required_bytes=required_bytes),
            volume_capability=cap,
        )


class Disks:
    """Loop devices plugged in under QEMU SCSI by-id names, as KubeVirt's hot-plug makes them appear in a VM."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.loops = Loops(root)
        self.by_id = root / "by-id"
        self.by_id.mkdir()

    def volume(self, name: str = "pvc-1") -> Volume:
        return Volume(
            volume_id=name,
            serial=str(uuid.uuid4()),
            staging=self.root / "plugins" / name / "globalmount",
            target=self.root / "pods" / "uid-1" / "volumes" / name / "mount",
        )

    def plug(self, serial: str, size: int) -> Loop:
        loop = self.loops.attach(size)
        self.link(serial).symlink_to(loop.device)
        return loop

    def link(self, serial: str) -> Path:
        return self.by_id / f"scsi-0QEMU_QEMU_HARDDISK_{serial}"


class NodeClient:
    """A kubelet's view: the Node stub over a real channel, every call with a deadline."""

    def __init__(self, stub: Any) -> None:
        self._stub = stub

    async def call(self, rpc: str, request: Any) -> Any:
        return await getattr(self._stub, rpc)(request, timeout=RPC_TIMEOUT)

    async def status(self, rpc: str, request: Any) -> grpc.StatusCode:
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await self.call(rpc, request)
        return failure.value.code()


class IdentityStub:
    """Stands in for the identity service, which is built elsewhere; the server only needs one to exist."""

    def __init__(self, controller: bool = False) -> None:
        self._controller = controller

    async def GetPluginInfo(self, request: Any, context: Any) -> Any:  # noqa: N802 - gRPC method names
        return pb.GetPluginInfoResponse(name="csi.tenant-cloud.io", vendor_version="test")

    async def GetPluginCapabilities(self, request: Any, context: Any) -> Any:  # noqa: N802
        service = pb.PluginCapability.Service(type=pb.PluginCapability.Service.CONTROLLER_SERVICE)
        capabilities = [pb.PluginCapability(service=service)] if self._controller else []
        return pb.GetPluginCapabilitiesResponse(capabilities=capabilities)

    async def Probe(self, request: Any, context: Any) -> Any:  # noqa: N802
        return pb.ProbeResponse()


@asynccontextmanager
async def serving(node_os: NodeOS, controller: Any = None) -> AsyncIterator[tuple[NodeClient, int]]:
    """The node service, and a controller if given, on a real gRPC server with the driver's interceptor."""
    service = NodeService(NodeIdentity(NODE_ID, 8), node_os, VolumeGuard())
    identity = IdentityStub(controller=controller is not None)
    server, port = await start_server("tcp://127.0.0.1:0", identity, controller, service)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield NodeClient(csi_pb2_grpc.NodeStub(channel)), port
    finally:
        await channel.close()
        await server.stop(grace=None)


def real_os(disks: Disks) -> NodeOS:
    return system_node_os(disks.by_id, SubprocessRunner(timeout=RPC_TIMEOUT))


@pytest.fixture
def disks(tmp_path: Path) -> Iterator[Disks]:
    plugged = Disks(tmp_path)
    try:
        yield plugged
    finally:
        plugged.loops.teardown()


@pytest.fixture
async def node(disks: Disks) -> AsyncIterator[NodeClient]:
    async with serving(real_os(disks)) as (client, _):
        yield client


def filesystem_uuid(loop: Loop) -> str:
    return sh("blkid", "-p", "-o", "value", "-s", "UUID", str(loop.device)).strip()


def fs_type_at(path: Path) -> str:
    return sh("findmnt", "-n", "-o", "FSTYPE", "--mountpoint", str(path)).strip()


def write_raw(path: Path, offset: int, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, data, offset)
        os.fsync(fd)
    finally:
        os.close(fd)


def read_backing(loop: Loop, offset: int, length: int) -> bytes:
    with loop.backing.open("rb") as disk:
        disk.seek(offset)
        return disk.read(length)


def partition(loop: Loop) -> None:
    """A DOS partition table with one Linux partition and no filesystem: data the driver must never touch."""
    mbr = bytearray(512)
    mbr[446:462] = struct.pack("<B3sB3sII", 0, b"\x00\x02\x00", 0x83, b"\x00\x00\x00", 2048, 8192)
    mbr[510:512] = b"\x55\xaa"
    with loop.backing.open("r+b") as disk:
        disk.write(mbr)


def bytes_usage(response: Any) -> Any:
    return next(u for u in response.usage if u.unit == pb.VolumeUsage.BYTES)


# --- identity of the node ----------------------------------------------------------------------------------------


async def test_node_info_and_capabilities_over_grpc(node: NodeClient) -> None:
    info = await node.call("NodeGetInfo", pb.NodeGetInfoRequest())
    assert (info.node_id, info.max_volumes_per_node) == (NODE_ID, 8)
    capabilities = await node.call("NodeGetCapabilities", pb.NodeGetCapabilitiesRequest())
    names = {pb.NodeServiceCapability.RPC.Type.Name(c.rpc.type) for c in capabilities.capabilities}
    assert names == {
        "STAGE_UNSTAGE_VOLUME",
        "GET_VOLUME_STATS",
        "EXPAND_VOLUME",
        "VOLUME_CONDITION",
        "SINGLE_NODE_MULTI_WRITER",
    }


# --- the filesystem lifecycle ------------------------------------------------------------------------------------


@needs_root
@pytest.mark.parametrize("fs_type", ["ext4", "xfs"])
async def test_lifecycle_formats_once_and_keeps_the_data(node: NodeClient, disks: Disks, fs_type: str) -> None:
    volume = disks.volume()
    loop = disks.plug(volume.serial, SIZES[fs_type])
    cap = capability(fs_type)

    for _ in range(2):  # every call twice: kubelet retries, and a retry must find the work done
        await node.call("NodeStageVolume", volume.stage(cap))
    formatted = filesystem_uuid(loop)
    assert fs_type_at(volume.staging) == fs_type
    for _ in range(2):
        await node.call("NodePublishVolume", volume.publish(cap))
    (volume.target / "data").write_text("tenant data")

    for _ in range(2):
        await node.call("NodeUnpublishVolume", volume.unpublish())
    assert not volume.target.exists()
    for _ in range(2):
        await node.call("NodeUnstageVolume", volume.unstage())
    assert not mounted_at(volume.staging)

    await node.call("NodeStageVolume", volume.stage(cap))
    await node.call("NodePublishVolume", volume.publish(cap))
    assert (volume.target / "data").read_text() == "tenant data"
    assert filesystem_uuid(loop) == formatted


@needs_root
async def test_a_disk_with_a_filesystem_is_mounted_as_it_is_when_no_type_is_asked(
    node: NodeClient, disks: Disks
) -> None:
    volume = disks.volume()
    loop = disks.plug(volume.serial, XFS_SIZE)
    sh("mkfs.xfs", "-q", str(loop.device))  # e.g. restored from an XFS snapshot
    await node.call("NodeStageVolume", volume.stage(capability("")))
    assert fs_type_at(volume.staging) == "xfs"


@needs_root
async def test_disks_holding_something_else_are_never_formatted(node: NodeClient, disks: Disks) -> None:
    xfs = disks.volume("pvc-xfs")
    xfs_loop = disks.plug(xfs.serial, XFS_SIZE)
    sh("mkfs.xfs", "-q", str(xfs_loop.device))
    partitioned = disks.volume("pvc-partitioned")
    partitioned_loop = disks.plug(partitioned.serial, EXT4_SIZE)
    partition(partitioned_loop)

    assert await node.status("NodeStageVolume", xfs.stage(capability("ext4"))) == Code.FAILED_PRECONDITION
    assert await node.status("NodeStageVolume", partitioned.stage(capability("ext4"))) == Code.FAILED_PRECONDITION
    assert sh("blkid", "-p", "-o", "value", "-s", "TYPE", str(xfs_loop.device)).strip() == "xfs"
    assert sh("blkid", "-p", "-o", "value", "-s", "PTTYPE", str(partitioned_loop.device)).strip() == "dos"
    assert not mounted_at(xfs.staging)


@needs_root
async def test_staging_conflicts_are_already_exists(node: NodeClient, disks: Disks) -> None:
    volume, other = disks.volume("pvc-1"), disks.volume("pvc-2")
    disks.plug(volume.serial, EXT4_SIZE)
    disks.plug(other.serial, EXT4_SIZE)
    await node.call("NodeStageVolume", volume.stage(capability("ext4")))

    squatter = dataclasses.replace(other, staging=volume.staging)
    assert await node.status("NodeStageVolume", squatter.stage(capability("ext4"))) == Code.ALREADY_EXISTS
    assert await node.status("NodeStageVolume", volume.stage(capability("xfs"))) == Code.ALREADY_EXISTS
    assert await node.status("NodeStageVolume", volume.stage(capability("ext4", flags=("ro",)))) == Code.ALREADY_EXISTS
    assert await node.status("NodeStageVolume", volume.stage(block())) == Code.ALREADY_EXISTS
    await node.call("NodeStageVolume", volume.stage(capability("ext4")))


@needs_root
async def test_read_only_publish(node: NodeClient, disks: Disks) -> None:
    volume = disks.volume()
    disks.plug(volume.serial, EXT4_SIZE)
    cap = capability("ext4")
    await node.call("NodeStageVolume", volume.stage(cap))
    for _ in range(2):
        await node.call("NodePublishVolume", volume.publish(cap, readonly=True))

    with pytest.raises(OSError) as refused:
        (volume.target / "data").write_text("nope")
    assert refused.value.errno == errno.EROFS
    (volume.staging / "still-writable").write_text("yes")
    assert await node.status("NodePublishVolume", volume.publish(cap, readonly=False)) == Code.ALREADY_EXISTS


@needs_root
async def test_publish_needs_the_volume_staged(node: NodeClient, disks: Disks) -> None:
    volume = disks.volume()
    disks.plug(volume.serial, EXT4_SIZE)
    assert await node.status("NodePublishVolume", volume.publish(capability())) == Code.FAILED_PRECONDITION
    assert not volume.target.exists()


@needs_root
@pytest.mark.parametrize(("mode", "shared"), [("SINGLE_NODE_SINGLE_WRITER", False), ("SINGLE_NODE_MULTI_WRITER", True)])
async def test_a_single_writer_volume_is_published_once(
    node: NodeClient, disks: Disks, mode: str, shared: bool
) -> None:
    volume = disks.volume()
    disks.plug(volume.serial, EXT4_SIZE)
    cap = capability("ext4", mode=Mode.Mode.Value(mode))
    second = disks.root / "pods" / "uid-2" / "volumes" / volume.volume_id / "mount"
    await node.call("NodeStageVolume", volume.stage(cap))
    await node.call("NodePublishVolume", volume.publish(cap))
    if not shared:
        assert await node.status("NodePublishVolume", volume.publish(cap, target=second)) == Code.FAILED_PRECONDITION
        await node.call("NodeUnpublishVolume", volume.unpublish())
    await node.call("NodePublishVolume", volume.publish(cap, target=second))
    assert mounted_at(second)


# --- raw block ---------------------------------------------------------------------------------------------------


@needs_root
async def test_block_volume_is_the_raw_disk_at_the_target(node: NodeClient, disks: Disks) -> None:
    volume = disks.volume()
    volume = dataclasses.replace(volume, target=disks.root / "volumeDevices" / "publish" / volume.volume_id / "dev")
    loop = disks.plug(volume.serial, EXT4_SIZE)
    volume.staging.mkdir(parents=True)  # kubelet makes the staging directory; for block nothing lands in it

    for _ in range(2):
        await node.call("NodeStageVolume", volume.stage(block()))
    assert not mounted_at(volume.staging)
    for _ in range(2):
        await node.call("NodePublishVolume", volume.publish(block()))
    write_raw(volume.target, MiB, b"raw block data")
    assert read_backing(loop, MiB, 14) == b"raw block data"
    assert await node.status("NodePublishVolume", volume.publish(block(), readonly=True)) == Code.ALREADY_EXISTS

    stats = await node.call("NodeGetVolumeStats", volume.stats())
    assert bytes_usage(stats).total == EXT4_SIZE
    assert not stats.volume_condition.abnormal
    expanded = await node.call("NodeExpandVolume", volume.expand(EXT4_SIZE, cap=block()))
    assert expanded.capacity_bytes == EXT4_SIZE

    for _ in range(2):
        await node.call("NodeUnpublishVolume", volume.unpublish())
    assert not volume.target.exists()
    for _ in range(2):
        await node.call("NodeUnstageVolume", volume.unstage())


@needs_root
async def test_a_single_writer_block_volume_is_published_once(node: NodeClient, disks: Disks) -> None:
    volume = disks.volume()
    disks.plug(volume.serial, EXT4_SIZE)
    cap = block(Mode.SINGLE_NODE_SINGLE_WRITER)
    await node.call("NodeStageVolume", volume.stage(cap))
    await node.call("NodePublishVolume", volume.publish(cap))
    second = disks.root / "pods" / "uid-2" / "dev"
    assert await node.status("NodePublishVolume", volume.publish(cap, target=second)) == Code.FAILED_PRECONDITION
    await node.call("NodePublishVolume", volume.publish(block(Mode.SINGLE_NODE_MULTI_WRITER), target=second))


@needs_root
async def test_a_detached_block_device_is_abnormal(node: NodeClient, disks: Disks) -> None:
    volume = disks.volume()
    loop = disks.plug(volume.serial, EXT4_SIZE)
    await node.call("NodePublishVolume", volume.publish(block()))
    sh("losetup", "-d", str(loop.device))  # the parent unplugged the disk under the pod
    stats = await node.call("NodeGetVolumeStats", volume.stats())
    assert stats.volume_condition.abnormal
    assert "zero size" in stats.volume_condition.message


# --- expansion ---------------------------------------------------------------------------------------------------


@needs_root
@pytest.mark.parametrize("fs_type", [pytest.param("ext4", marks=needs_ext4_online_resize), "xfs"])
async def test_online_expansion_grows_the_published_filesystem(node: NodeClient, disks: Disks, fs_type: str) -> None:
    volume = disks.volume()
    size = SIZES[fs_type]
    loop = disks.plug(volume.serial, size)
    cap = capability(fs_type)
    await node.call("NodeStageVolume", volume.stage(cap))
    await node.call("NodePublishVolume", volume.publish(cap))
    before = bytes_usage(await node.call("NodeGetVolumeStats", volume.stats())).total

    loop.grow(2 * size)
    for _ in range(2):
        expanded = await node.call("NodeExpandVolume", volume.expand(2 * size))
        assert expanded.capacity_bytes == 2 * size
    after = bytes_usage(await node.call("NodeGetVolumeStats", volume.stats())).total
    assert after > before + 0.9 * size


@needs_root
async def test_expansion_waits_for_the_guest_to_see_the_bigger_disk(node: NodeClient, disks: Disks) -> None:
    volume = disks.volume()
    disks.plug(volume.serial, EXT4_SIZE)
    cap = capability("ext4")
    await node.call("NodeStageVolume", volume.stage(cap))
    await node.call("NodePublishVolume", volume.publish(cap))
    assert await node.status("NodeExpandVolume", volume.expand(2 * EXT4_SIZE)) == Code.UNAVAILABLE
    assert (await node.call("NodeExpandVolume", volume.expand(EXT4_SIZE))).capacity_bytes == EXT4_SIZE


@needs_root
@pytest.mark.parametrize("fs_type", [pytest.param("ext4", marks=needs_ext4_online_resize), "xfs"])
async def test_stage_grows_a_disk_expanded_while_detached(node: NodeClient, disks: Disks, fs_type: str) -> None:
    volume = disks.volume()
    size = SIZES[fs_type]
    loop = disks.plug(volume.serial, size)
    cap = capability(fs_type)
    await node.call("NodeStageVolume", volume.stage(cap))
    before = bytes_usage(await node.call("NodeGetVolumeStats", volume.stats(volume.staging))).total
    await node.call("NodeUnstageVolume", volume.unstage())

    loop.grow(2 * size)
    await node.call("NodeStageVolume", volume.stage(cap))

    after = bytes_usage(await node.call("NodeGetVolumeStats", volume.stats(volume.staging))).total
    assert after > before + 0.9 * size


# --- stats and health --------------------------------------------------------------------------------------------


@needs_root
async def test_stats_and_volume_condition(node: NodeClient, disks: Disks) -> None:
    volume = disks.volume()
    disks.plug(volume.serial, EXT4_SIZE)
    cap = capability("ext4")
    await node.call("NodeStageVolume", volume.stage(cap))
    await node.call("NodePublishVolume", volume.publish(cap))
    (volume.target / "data").write_bytes(os.urandom(4 * MiB))

    stats = await node.call("NodeGetVolumeStats", volume.stats())
    usage = {u.unit: u for u in stats.usage}
    space, inodes = usage[pb.VolumeUsage.BYTES], usage[pb.VolumeUsage.INODES]
    assert 0.8 * EXT4_SIZE < space.total <= EXT4_SIZE
    assert space.used >= 4 * MiB and space.available > 0
    assert inodes.total == inodes.used + inodes.available
    assert (stats.volume_condition.abnormal, stats.volume_condition.message) == (False, "volume is healthy")

    sh("mount", "-o", "remount,ro", str(volume.staging))  # what ext4 errors=remount-ro does on its own
    condition = (await node.call("NodeGetVolumeStats", volume.stats())).volume_condition
    assert condition.abnormal
    assert "read-only" in condition.message


async def test_stats_of_paths_without_a_volume_are_not_found(node: NodeClient, disks: Disks) -> None:
    volume = disks.volume()
    (disks.root / "empty").mkdir()
    for path in (disks.root / "empty", disks.root / "missing", "some/path"):
        assert await node.status("NodeGetVolumeStats", volume.stats(path)) == Code.NOT_FOUND
    assert await node.status("NodeExpandVolume", volume.expand(path=disks.root / "missing")) == Code.NOT_FOUND
    assert await node.status("NodeExpandVolume", volume.expand(path=disks.root / "empty")) == Code.NOT_FOUND


# --- retries, races, leftovers -----------------------------------------------------------------------------------


async def test_a_disk_not_plugged_in_yet_is_unavailable(node: NodeClient, disks: Disks) -> None:
    volume = disks.volume()
    assert await node.status("NodeStageVolume", volume.stage(capability())) == Code.UNAVAILABLE
    assert await node.status("NodePublishVolume", volume.publish(block())) == Code.UNAVAILABLE


async def test_hostile_paths_are_invalid_arguments(node: NodeClient, disks: Disks) -> None:
    volume = dataclasses.replace(disks.volume(), target=disks.root / ".." / ".." / "etc")
    assert await node.status("NodePublishVolume", volume.publish(capability())) == Code.INVALID_ARGUMENT
    assert await node.status("NodeUnpublishVolume", volume.unpublish()) == Code.INVALID_ARGUMENT
    relative = pb.NodeUnstageVolumeRequest(volume_id="pvc-1", staging_target_path="plugins/globalmount")
    assert await node.status("NodeUnstageVolume", relative) == Code.INVALID_ARGUMENT


async def test_unstage_and_unpublish_of_what_was_never_staged(node: NodeClient, disks: Disks) -> None:
    volume = disks.volume()
    await node.call("NodeUnstageVolume", volume.unstage())
    await node.call("NodeUnpublishVolume", volume.unpublish())
    volume.target.mkdir(parents=True)  # kubelet made the directory, the publish never happened
    await node.call("NodeUnpublishVolume", volume.unpublish())
    assert not volume.target.exists()


class GatedFinder:
    """Holds every lookup until released, so a test can have other calls arrive while the first is in flight."""

    def __init__(self, finder: DeviceFinder) -> None:
        self._finder = finder
        self._arrived = asyncio.Condition()
        self.waiting = 0
        self.release = asyncio.Event()

    async def find_by_serial(self, serial: str) -> Path:
        async with self._arrived:
            self.waiting += 1
            self._arrived.notify_all()
        await self.release.wait()
        return await self._finder.find_by_serial(serial)

    async def until_waiting(self, count: int) -> None:
        async with asyncio.timeout(RPC_TIMEOUT), self._arrived:
            await self._arrived.wait_for(lambda: self.waiting >= count)


@needs_root
async def test_a_concurrent_stage_of_the_same_volume_is_aborted(disks: Disks) -> None:
    volume, neighbour = disks.volume("pvc-1"), disks.volume("pvc-2")
    disks.plug(volume.serial, EXT4_SIZE)
    real = real_os(disks)
    gated = GatedFinder(real.finder)
    async with serving(dataclasses.replace(real, finder=gated)) as (node, _):
        first = asyncio.create_task(node.call("NodeStageVolume", volume.stage(capability())))
        await gated.until_waiting(1)

        assert await node.status("NodeStageVolume", volume.stage(capability())) == Code.ABORTED
        assert await node.status("NodePublishVolume", volume.publish(capability())) == Code.ABORTED
        other = asyncio.create_task(node.status("NodeStageVolume", neighbour.stage(capability())))
        await gated.until_waiting(2)  # another volume is not held up by this one
        gated.release.set()
        await first
        assert await other == Code.UNAVAILABLE  # its disk was never plugged in
        await node.call("NodeStageVolume", volume.stage(capability()))  # the guard was released
    assert mounted_at(volume.staging)
