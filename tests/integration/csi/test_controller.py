"""The CSI controller service over real gRPC, against the parent apiserver and KubeVirt/CDI simulators."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import grpc
import pytest

from csi._proto import csi_pb2
from csi.app import Driver
from csi.parent import DATAVOLUMES, VIRTUALMACHINEINSTANCES, VIRTUALMACHINES, vm_volume_names, vmi_volume_phase
from e2e import cluster as harness
from e2e.cluster import nodes
from e2e.sims._kubevirt_disks import by_id_root
from kube.client import Client
from tests.integration.csi.conftest import PARENT_CLASS

GIB = 1 << 30
Mode = csi_pb2.VolumeCapability.AccessMode


def mount_capability(mode: Any = Mode.SINGLE_NODE_WRITER) -> Any:
    return csi_pb2.VolumeCapability(
        mount=csi_pb2.VolumeCapability.MountVolume(fs_type="ext4"),
        access_mode=csi_pb2.VolumeCapability.AccessMode(mode=mode),
    )


def block_capability(mode: Any = Mode.SINGLE_NODE_WRITER) -> Any:
    return csi_pb2.VolumeCapability(
        block=csi_pb2.VolumeCapability.BlockVolume(), access_mode=csi_pb2.VolumeCapability.AccessMode(mode=mode)
    )


def create_request(name: str, size: int = GIB, **params: str) -> Any:
    return csi_pb2.CreateVolumeRequest(
        name=name,
        capacity_range=csi_pb2.CapacityRange(required_bytes=size),
        volume_capabilities=[mount_capability()],
        parameters={"infraStorageClassName": PARENT_CLASS, **params},
    )


def unique(prefix: str = "pvc") -> str:
    return f"{prefix}-{uuid.uuid4()}"


async def expect(code: grpc.StatusCode, call: Any) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await call
    assert failed.value.code() == code, failed.value.details()
    return str(failed.value.details())


async def test_create_is_idempotent_and_size_conflicts_are_already_exists(controller: Any) -> None:
    name = unique()
    first = (await controller.CreateVolume(create_request(name))).volume
    again = (await controller.CreateVolume(create_request(name))).volume
    assert first.volume_id == again.volume_id == name
    assert first.capacity_bytes == GIB
    assert first.volume_context["bus"] == "scsi" and len(first.volume_context["serial"]) == 36
    await expect(grpc.StatusCode.ALREADY_EXISTS, controller.CreateVolume(create_request(name, 2 * GIB)))
    await controller.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id=name))
    await controller.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id=name))  # idempotent


async def test_virtio_serial_fits_the_bus(controller: Any) -> None:
    volume = (await controller.CreateVolume(create_request(unique(), bus="virtio"))).volume
    assert volume.volume_context["bus"] == "virtio"
    assert len(volume.volume_context["serial"]) == 20
    await controller.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id=volume.volume_id))


async def test_bad_requests_are_clear_errors(controller: Any) -> None:
    details = await expect(
        grpc.StatusCode.INVALID_ARGUMENT, controller.CreateVolume(create_request(unique(), color="red"))
    )
    assert "unknown parameters ['color']" in details
    await expect(
        grpc.StatusCode.INVALID_ARGUMENT,
        controller.CreateVolume(create_request(unique(), infraStorageClassName="premium-not-allowed")),
    )
    rwx_fs = create_request(unique())
    rwx_fs.volume_capabilities[0].access_mode.mode = Mode.MULTI_NODE_MULTI_WRITER
    details = await expect(grpc.StatusCode.INVALID_ARGUMENT, controller.CreateVolume(rwx_fs))
    assert "RWX filesystem" in details
    rwx_block = create_request(unique())
    rwx_block.volume_capabilities[0].CopyFrom(block_capability(Mode.MULTI_NODE_MULTI_WRITER))
    volume = (await controller.CreateVolume(rwx_block)).volume
    await controller.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id=volume.volume_id))


async def test_another_clusters_volume_is_not_found(
    controller: Any, parent_client: Client, cluster: harness.Cluster
) -> None:
    foreign = unique()
    await parent_client.create(
        DATAVOLUMES,
        {
            "metadata": {"name": foreign, "labels": {"cluster.x-k8s.io/cluster-name": "someone-else"}},
            "spec": {
                "source": {"blank": {}},
                "storage": {"resources": {"requests": {"storage": "1Gi"}}, "storageClassName": PARENT_CLASS},
            },
        },
        cluster.parent_namespace,
    )
    for call in (
        controller.ControllerGetVolume(csi_pb2.ControllerGetVolumeRequest(volume_id=foreign)),
        controller.ControllerPublishVolume(
            csi_pb2.ControllerPublishVolumeRequest(
                volume_id=foreign, node_id=f"{cluster.parent_namespace}/csi-vm-a", volume_capability=mount_capability()
            )
        ),
        controller.ControllerExpandVolume(
            csi_pb2.ControllerExpandVolumeRequest(
                volume_id=foreign, capacity_range=csi_pb2.CapacityRange(required_bytes=2 * GIB)
            )
        ),
        controller.CreateSnapshot(csi_pb2.CreateSnapshotRequest(name=unique("snap"), source_volume_id=foreign)),
    ):
        await expect(grpc.StatusCode.NOT_FOUND, call)
    await controller.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id=foreign))  # "not found" = success...
    assert await parent_client.get(DATAVOLUMES, foreign, cluster.parent_namespace)  # ... and it is untouched
    await parent_client.delete(DATAVOLUMES, foreign, cluster.parent_namespace)


async def test_publish_unpublish_and_rwo_conflicts(
    controller: Any, driver: Driver, vms: list[str], parent_client: Client, cluster: harness.Cluster
) -> None:
    ns = cluster.parent_namespace
    volume = (await controller.CreateVolume(create_request(unique()))).volume
    publish = csi_pb2.ControllerPublishVolumeRequest(
        volume_id=volume.volume_id, node_id=f"{ns}/{vms[0]}", volume_capability=mount_capability()
    )
    await controller.ControllerPublishVolume(publish)
    await controller.ControllerPublishVolume(publish)  # idempotent
    vm = await parent_client.get(VIRTUALMACHINES, vms[0], ns)
    vmi = await parent_client.get(VIRTUALMACHINEINSTANCES, vms[0], ns)
    assert volume.volume_id in vm_volume_names(vm)
    assert vmi_volume_phase(vmi, volume.volume_id) == "Ready"
    # The guest sees a disk with our serial.
    link = by_id_root(cluster.dir, vms[0]) / f"scsi-0QEMU_QEMU_HARDDISK_{volume.volume_context['serial']}"
    assert link.exists() and link.resolve().name.startswith("loop")
    elsewhere = csi_pb2.ControllerPublishVolumeRequest(
        volume_id=volume.volume_id, node_id=f"{ns}/{vms[1]}", volume_capability=mount_capability()
    )
    await expect(grpc.StatusCode.FAILED_PRECONDITION, controller.ControllerPublishVolume(elsewhere))
    listed = await controller.ControllerGetVolume(csi_pb2.ControllerGetVolumeRequest(volume_id=volume.volume_id))
    assert list(listed.status.published_node_ids) == [f"{ns}/{vms[0]}"]
    await expect(
        grpc.StatusCode.FAILED_PRECONDITION,
        controller.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id=volume.volume_id)),
    )
    unpublish = csi_pb2.ControllerUnpublishVolumeRequest(volume_id=volume.volume_id, node_id=f"{ns}/{vms[0]}")
    await controller.ControllerUnpublishVolume(unpublish)
    await controller.ControllerUnpublishVolume(unpublish)  # idempotent
    assert not link.exists()
    vm = await parent_client.get(VIRTUALMACHINES, vms[0], ns)
    assert volume.volume_id not in vm_volume_names(vm)
    # Now it can go to the other VM.
    await controller.ControllerPublishVolume(elsewhere)
    await controller.ControllerUnpublishVolume(
        csi_pb2.ControllerUnpublishVolumeRequest(volume_id=volume.volume_id, node_id=f"{ns}/{vms[1]}")
    )
    await controller.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id=volume.volume_id))


async def test_concurrent_calls_on_one_volume_are_aborted(
    controller: Any, vms: list[str], cluster: harness.Cluster
) -> None:
    volume = (await controller.CreateVolume(create_request(unique()))).volume
    ns = cluster.parent_namespace
    publish = csi_pb2.ControllerPublishVolumeRequest(
        volume_id=volume.volume_id, node_id=f"{ns}/{vms[0]}", volume_capability=mount_capability()
    )
    results = await asyncio.gather(
        *(controller.ControllerPublishVolume(publish) for _ in range(4)), return_exceptions=True
    )
    codes = {r.code() for r in results if isinstance(r, grpc.aio.AioRpcError)}
    assert codes <= {grpc.StatusCode.ABORTED}
    assert grpc.StatusCode.ABORTED in codes
    assert any(not isinstance(r, BaseException) for r in results)
    await controller.ControllerUnpublishVolume(
        csi_pb2.ControllerUnpublishVolumeRequest(volume_id=volume.volume_id, node_id=f"{ns}/{vms[0]}")
    )
    await controller.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id=volume.volume_id))


async def test_expand_snapshot_restore_and_clone(controller: Any) -> None:
    volume = (await controller.CreateVolume(create_request(unique()))).volume
    grown = await controller.ControllerExpandVolume(
        csi_pb2.ControllerExpandVolumeRequest(
            volume_id=volume.volume_id,
            capacity_range=csi_pb2.CapacityRange(required_bytes=2 * GIB),
            volume_capability=mount_capability(),
        )
    )
    assert grown.capacity_bytes >= 2 * GIB and grown.node_expansion_required
    snap_name = unique("snapshot")
    snapshot = (
        await controller.CreateSnapshot(
            csi_pb2.CreateSnapshotRequest(name=snap_name, source_volume_id=volume.volume_id)
        )
    ).snapshot
    for _ in range(600):  # up to 30 s: the snapshot simulator copies the image, slow on a loaded CI box
        if snapshot.ready_to_use:
            break
        await asyncio.sleep(0.05)
        snapshot = (
            await controller.CreateSnapshot(
                csi_pb2.CreateSnapshotRequest(name=snap_name, source_volume_id=volume.volume_id)
            )
        ).snapshot
    assert snapshot.ready_to_use and snapshot.source_volume_id == volume.volume_id
    listed = await controller.ListSnapshots(csi_pb2.ListSnapshotsRequest(source_volume_id=volume.volume_id))
    assert [e.snapshot.snapshot_id for e in listed.entries] == [snap_name]
    restore = create_request(unique(), 2 * GIB)
    restore.volume_content_source.snapshot.snapshot_id = snap_name
    restored = (await controller.CreateVolume(restore)).volume
    assert restored.content_source.snapshot.snapshot_id == snap_name
    clone = create_request(unique(), 2 * GIB)
    clone.volume_content_source.volume.volume_id = volume.volume_id
    cloned = (await controller.CreateVolume(clone)).volume
    for volume_id in (restored.volume_id, cloned.volume_id):
        await controller.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id=volume_id))
    await controller.DeleteSnapshot(csi_pb2.DeleteSnapshotRequest(snapshot_id=snap_name))
    await controller.DeleteSnapshot(csi_pb2.DeleteSnapshotRequest(snapshot_id=snap_name))
    await controller.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id=volume.volume_id))


async def test_list_volumes_pages(controller: Any) -> None:
    made = [(await controller.CreateVolume(create_request(unique()))).volume.volume_id for _ in range(3)]
    seen: list[str] = []
    token = ""
    while True:
        page = await controller.ListVolumes(csi_pb2.ListVolumesRequest(max_entries=2, starting_token=token))
        seen += [e.volume.volume_id for e in page.entries]
        token = page.next_token
        if not token:
            break
    assert set(made) <= set(seen)
    await expect(grpc.StatusCode.ABORTED, controller.ListVolumes(csi_pb2.ListVolumesRequest(starting_token="x")))
    for volume_id in made:
        await controller.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id=volume_id))


async def test_stale_volume_in_a_stopped_vms_spec_does_not_block_attaching_elsewhere(
    controller: Any, driver: Driver, vms: list[str], parent_client: Client, cluster: harness.Cluster
) -> None:
    ns = cluster.parent_namespace
    volume = (await controller.CreateVolume(create_request(unique()))).volume
    await controller.ControllerPublishVolume(
        csi_pb2.ControllerPublishVolumeRequest(
            volume_id=volume.volume_id, node_id=f"{ns}/{vms[0]}", volume_capability=mount_capability()
        )
    )
    # The first VM goes down without a detach (node died): its VM spec still lists the volume.
    async with nodes.clients(cluster) as c:
        await nodes.stop_node(c, vms[0])
    assert driver.parent is not None
    parent_view = driver.parent

    def stopped_seen() -> bool:  # the attacher would retry until then; we wait for the watch instead
        vmi = parent_view.vmi(vms[0])
        return vmi is not None and (vmi.get("status") or {}).get("phase") == "Succeeded"

    assert await parent_view.changes.wait_for(stopped_seen, 10.0)
    try:
        await controller.ControllerPublishVolume(
            csi_pb2.ControllerPublishVolumeRequest(
                volume_id=volume.volume_id, node_id=f"{ns}/{vms[1]}", volume_capability=mount_capability()
            )
        )
        stale = await parent_client.get(VIRTUALMACHINES, vms[0], ns)
        assert volume.volume_id not in vm_volume_names(stale)
        await controller.ControllerUnpublishVolume(
            csi_pb2.ControllerUnpublishVolumeRequest(volume_id=volume.volume_id, node_id=f"{ns}/{vms[1]}")
        )
        await controller.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id=volume.volume_id))
    finally:
        async with nodes.clients(cluster) as c:
            await nodes.start_node(c, vms[0])
