"""The whole volume life through the driver's gRPC API, on real loop devices, mkfs and mounts:
create -> publish -> stage -> publish -> write -> unpublish -> unstage -> expand -> stage again (data intact,
filesystem grown) -> snapshot -> restore (same data) -> delete; and the same for a raw block volume."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from csi._proto import csi_pb2, csi_pb2_grpc
from e2e import cluster as harness
from e2e.cluster import nodes
from e2e.sims._kubevirt_disks import by_id_root
from tests.integration.csi.conftest import PARENT_CLASS, driver_config, running_driver

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for loop devices and mounts")

VM = "csi-flow-vm"
GIB = 1 << 30
Mode = csi_pb2.VolumeCapability.AccessMode


def capability(block: bool) -> Any:
    access = csi_pb2.VolumeCapability.AccessMode(mode=Mode.SINGLE_NODE_WRITER)
    if block:
        return csi_pb2.VolumeCapability(block=csi_pb2.VolumeCapability.BlockVolume(), access_mode=access)
    return csi_pb2.VolumeCapability(mount=csi_pb2.VolumeCapability.MountVolume(fs_type="xfs"), access_mode=access)


class Stubs:
    def __init__(self, channel: grpc.aio.Channel, node_id: str) -> None:
        self.controller = csi_pb2_grpc.ControllerStub(channel)
        self.node = csi_pb2_grpc.NodeStub(channel)
        self.node_id = node_id


@pytest.fixture(scope="module")
async def stubs(cluster: harness.Cluster, parent_storage: str) -> AsyncIterator[Stubs]:
    async with nodes.clients(cluster) as c:
        await nodes.ensure_absent(c, VM)
        await nodes.add_node(c, VM, register=False)
    node_id = f"{cluster.parent_namespace}/{VM}"
    config = driver_config(cluster, provision_timeout=20.0, attach_timeout=20.0)
    try:
        async with (
            running_driver(cluster, config, node=True, node_id=node_id, by_id_root=by_id_root(cluster.dir, VM)) as d,
            grpc.aio.insecure_channel(f"127.0.0.1:{d.port}") as channel,
        ):
            yield Stubs(channel, node_id)
    finally:
        async with nodes.clients(cluster) as c:
            await nodes.remove_node(c, VM)


async def create(s: Stubs, block: bool, size: int = GIB, snapshot: str = "") -> Any:
    request = csi_pb2.CreateVolumeRequest(
        name=f"pvc-{uuid.uuid4()}",
        capacity_range=csi_pb2.CapacityRange(required_bytes=size),
        volume_capabilities=[capability(block)],
        parameters={"infraStorageClassName": PARENT_CLASS},
    )
    if snapshot:
        request.volume_content_source.snapshot.snapshot_id = snapshot
    return (await s.controller.CreateVolume(request)).volume


@contextlib.asynccontextmanager
async def mounted(s: Stubs, volume: Any, block: bool, workdir: Path) -> AsyncIterator[Path]:
    """Attach, stage and publish like the attacher and kubelet do; undo it all afterwards."""
    cap = capability(block)
    staging, target = workdir / f"staging-{volume.volume_id}", workdir / f"target-{volume.volume_id}"
    await s.controller.ControllerPublishVolume(
        csi_pb2.ControllerPublishVolumeRequest(
            volume_id=volume.volume_id, node_id=s.node_id, volume_capability=cap, volume_context=volume.volume_context
        )
    )
    await s.node.NodeStageVolume(
        csi_pb2.NodeStageVolumeRequest(
            volume_id=volume.volume_id,
            staging_target_path=str(staging),
            volume_capability=cap,
            volume_context=volume.volume_context,
        )
    )
    await s.node.NodePublishVolume(
        csi_pb2.NodePublishVolumeRequest(
            volume_id=volume.volume_id,
            staging_target_path=str(staging),
            target_path=str(target),
            volume_capability=cap,
            volume_context=volume.volume_context,
        )
    )
    try:
        yield target
    finally:
        await s.node.NodeUnpublishVolume(
            csi_pb2.NodeUnpublishVolumeRequest(volume_id=volume.volume_id, target_path=str(target))
        )
        await s.node.NodeUnstageVolume(
            csi_pb2.NodeUnstageVolumeRequest(volume_id=volume.volume_id, staging_target_path=str(staging))
        )
        await s.controller.ControllerUnpublishVolume(
            csi_pb2.ControllerUnpublishVolumeRequest(volume_id=volume.volume_id, node_id=s.node_id)
        )


async def snapshot_of(s: Stubs, volume_id: str) -> str:
    name = f"snapshot-{uuid.uuid4()}"
    request = csi_pb2.CreateSnapshotRequest(name=name, source_volume_id=volume_id)
    for _ in range(600):  # up to 30 s: the snapshot simulator copies the image, slow on a loaded CI box
        snapshot = (await s.controller.CreateSnapshot(request)).snapshot
        if snapshot.ready_to_use:
            return str(snapshot.snapshot_id)
        await asyncio.sleep(0.05)
    raise AssertionError("snapshot never became ready")


def read_block(path: Path, offset: int, size: int) -> bytes:
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.pread(fd, size, offset)
    finally:
        os.close(fd)


def write_block(path: Path, offset: int, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.pwrite(fd, data, offset)
        os.fsync(fd)
    finally:
        os.close(fd)


async def test_filesystem_volume_life(stubs: Stubs, tmp_path: Path) -> None:
    s = stubs
    volume = await create(s, block=False)
    async with mounted(s, volume, False, tmp_path) as target:
        (target / "data.txt").write_text("written through the tenant pod")
        before = os.statvfs(target)
    grown = await s.controller.ControllerExpandVolume(
        csi_pb2.ControllerExpandVolumeRequest(
            volume_id=volume.volume_id,
            capacity_range=csi_pb2.CapacityRange(required_bytes=2 * GIB),
            volume_capability=capability(False),
        )
    )
    assert grown.capacity_bytes == 2 * GIB and grown.node_expansion_required
    async with mounted(s, volume, False, tmp_path) as target:
        assert (target / "data.txt").read_text() == "written through the tenant pod"
        after = os.statvfs(target)
        assert after.f_blocks * after.f_frsize > before.f_blocks * before.f_frsize * 1.8
        expanded = await s.node.NodeExpandVolume(
            csi_pb2.NodeExpandVolumeRequest(
                volume_id=volume.volume_id,
                volume_path=str(target),
                capacity_range=csi_pb2.CapacityRange(required_bytes=2 * GIB),
                volume_capability=capability(False),
            )
        )
        assert expanded.capacity_bytes >= 2 * GIB - (64 << 20)
        stats = await s.node.NodeGetVolumeStats(
            csi_pb2.NodeGetVolumeStatsRequest(volume_id=volume.volume_id, volume_path=str(target))
        )
        assert not stats.volume_condition.abnormal
        assert any(u.unit == csi_pb2.VolumeUsage.BYTES and u.total > GIB for u in stats.usage)
    snapshot = await snapshot_of(s, volume.volume_id)
    restored = await create(s, block=False, size=2 * GIB, snapshot=snapshot)
    async with mounted(s, restored, False, tmp_path) as target:
        assert (target / "data.txt").read_text() == "written through the tenant pod"
    for volume_id in (restored.volume_id, volume.volume_id):
        await s.controller.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id=volume_id))
    await s.controller.DeleteSnapshot(csi_pb2.DeleteSnapshotRequest(snapshot_id=snapshot))


async def test_block_volume_life(stubs: Stubs, tmp_path: Path) -> None:
    s = stubs
    volume = await create(s, block=True)
    payload = os.urandom(4096)
    async with mounted(s, volume, True, tmp_path) as device:
        write_block(device, 1 << 20, payload)
    await s.controller.ControllerExpandVolume(
        csi_pb2.ControllerExpandVolumeRequest(
            volume_id=volume.volume_id,
            capacity_range=csi_pb2.CapacityRange(required_bytes=2 * GIB),
            volume_capability=capability(True),
        )
    )
    async with mounted(s, volume, True, tmp_path) as device:
        assert read_block(device, 1 << 20, 4096) == payload
        fd = os.open(device, os.O_RDONLY)
        try:
            assert os.lseek(fd, 0, os.SEEK_END) == 2 * GIB
        finally:
            os.close(fd)
    snapshot = await snapshot_of(s, volume.volume_id)
    restored = await create(s, block=True, size=2 * GIB, snapshot=snapshot)
    async with mounted(s, restored, True, tmp_path) as device:
        assert read_block(device, 1 << 20, 4096) == payload
    for volume_id in (restored.volume_id, volume.volume_id):
        await s.controller.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id=volume_id))
    await s.controller.DeleteSnapshot(csi_pb2.DeleteSnapshotRequest(snapshot_id=snapshot))
