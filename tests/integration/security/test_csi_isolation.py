"""Volume, snapshot and node IDs that name another cluster's parent objects are NOT_FOUND on every RPC that
takes them, and those objects keep their resourceVersions. (tests/integration/csi/test_controller.py covers a
foreign DataVolume on get/publish/expand/snapshot/delete; this adds the rest.)

Foreign here means: another cluster's labels in our namespace; our own label on a parent object without the
volume prefix (a VM's root disk, say); and our labels in another namespace.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from csi._proto import csi_pb2, csi_pb2_grpc
from csi.parent import DATAVOLUMES, VIRTUALMACHINEINSTANCES, VIRTUALMACHINES, VOLUMESNAPSHOTS
from e2e import cluster as harness
from e2e.cluster import nodes
from kube.client import Client, Object
from kube.errors import NotFound
from kube.resources import NAMESPACES, Resource
from tests.integration.ccm_runner import eventually
from tests.integration.csi.conftest import PARENT_CLASS, SNAPSHOT_CLASS, driver_config, running_driver
from tests.integration.security.conftest import CLUSTER_LABEL, OTHER_CLUSTER, Kept, ensure_namespace, kept, unchanged

pb = csi_pb2
Code = grpc.StatusCode
Mode = pb.VolumeCapability.AccessMode
GIB = 1 << 30
MOUNT = pb.VolumeCapability(
    mount=pb.VolumeCapability.MountVolume(fs_type="ext4"), access_mode=Mode(mode=Mode.SINGLE_NODE_WRITER)
)


def datavolume(name: str, labels: dict[str, str]) -> Object:
    storage = {"resources": {"requests": {"storage": "1Gi"}}, "storageClassName": PARENT_CLASS}
    return {"metadata": {"name": name, "labels": labels}, "spec": {"source": {"blank": {}}, "storage": storage}}


def snapshot(name: str, labels: dict[str, str], claim: str) -> Object:
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {"source": {"persistentVolumeClaimName": claim}, "volumeSnapshotClassName": SNAPSHOT_CLASS},
    }


def vm_and_vmi(name: str, labels: dict[str, str]) -> tuple[Object, Object]:
    spec: Object = {"domain": {"devices": {"disks": []}}}
    vm = {"metadata": {"name": name, "labels": labels}, "spec": {"running": True, "template": {"spec": spec}}}
    return vm, {"metadata": {"name": name, "labels": labels}, "spec": spec}


@dataclass
class Foreign:
    """IDs the driver must not resolve, and every object behind them, frozen."""

    volume: str  # another cluster's DataVolume, in our namespace, with our prefix
    root_disk: str  # our label but not our prefix: a VM's root disk
    snapshot: str  # another cluster's VolumeSnapshot of its volume
    vm: str  # another cluster's VM in our namespace
    elsewhere: str  # another namespace holding a VM, a DataVolume and a snapshot with *our* labels
    elsewhere_volume: str
    elsewhere_snapshot: str
    objects: list[Kept]


async def settled(
    parent: Client, resource: Resource, name: str, namespace: str, done: Callable[[Object], bool]
) -> Object:
    """The object once the simulators are done with it, so its resourceVersion stays put from then on."""
    found: list[Object] = []

    async def ready() -> bool:
        obj = await parent.get(resource, name, namespace)
        found[:] = [obj]
        return done(obj)

    await eventually(ready, timeout=60)
    return found[0]


def succeeded(dv: Object) -> bool:
    return (dv.get("status") or {}).get("phase") == "Succeeded"


def ready_to_use(snap: Object) -> bool:
    return bool((snap.get("status") or {}).get("readyToUse"))


@pytest.fixture(scope="module")
async def foreign(parent_client: Client, cluster: harness.Cluster, parent_storage: str) -> AsyncIterator[Foreign]:
    ns, elsewhere = cluster.parent_namespace, f"tenant-iso-{uuid.uuid4().hex[:6]}"
    theirs, ours = {CLUSTER_LABEL: OTHER_CLUSTER}, {CLUSTER_LABEL: cluster.cluster_name}
    await ensure_namespace(parent_client, elsewhere)
    suffix = uuid.uuid4().hex[:8]
    names = {
        "volume": f"pvc-theirs-{suffix}",
        "root_disk": f"rootdisk-{suffix}",
        "snapshot": f"snapshot-theirs-{suffix}",
        "vm": f"theirs-vm-{suffix}",
        "elsewhere_volume": f"pvc-elsewhere-{suffix}",
        "elsewhere_snapshot": f"snapshot-elsewhere-{suffix}",
    }
    made: list[tuple[Resource, str, str]] = []

    async def create(resource: Resource, body: Object, namespace: str) -> None:
        await parent_client.create(resource, body, namespace)
        made.append((resource, body["metadata"]["name"], namespace))

    await create(DATAVOLUMES, datavolume(names["volume"], theirs), ns)
    await create(DATAVOLUMES, datavolume(names["root_disk"], ours), ns)
    await create(DATAVOLUMES, datavolume(names["elsewhere_volume"], ours), elsewhere)
    for name, namespace in ((names["volume"], ns), (names["root_disk"], ns), (names["elsewhere_volume"], elsewhere)):
        await settled(parent_client, DATAVOLUMES, name, namespace, succeeded)
    await create(VOLUMESNAPSHOTS, snapshot(names["snapshot"], theirs, names["volume"]), ns)
    await create(VOLUMESNAPSHOTS, snapshot(names["elsewhere_snapshot"], ours, names["elsewhere_volume"]), elsewhere)
    async with nodes.clients(cluster) as c:
        await nodes.add_node(c, names["vm"], cluster_name=OTHER_CLUSTER, register=False)
    vm, vmi = vm_and_vmi(f"ours-elsewhere-{suffix}", {**ours, "cluster.x-k8s.io/role": "worker"})
    await create(VIRTUALMACHINES, vm, elsewhere)
    await create(VIRTUALMACHINEINSTANCES, vmi, elsewhere)
    frozen = [
        kept(DATAVOLUMES, await parent_client.get(DATAVOLUMES, names["volume"], ns)),
        kept(DATAVOLUMES, await parent_client.get(DATAVOLUMES, names["root_disk"], ns)),
        kept(DATAVOLUMES, await parent_client.get(DATAVOLUMES, names["elsewhere_volume"], elsewhere)),
        kept(VOLUMESNAPSHOTS, await settled(parent_client, VOLUMESNAPSHOTS, names["snapshot"], ns, ready_to_use)),
        kept(
            VOLUMESNAPSHOTS,
            await settled(parent_client, VOLUMESNAPSHOTS, names["elsewhere_snapshot"], elsewhere, ready_to_use),
        ),
        kept(VIRTUALMACHINES, await parent_client.get(VIRTUALMACHINES, names["vm"], ns)),
        kept(VIRTUALMACHINEINSTANCES, await parent_client.get(VIRTUALMACHINEINSTANCES, names["vm"], ns)),
        kept(VIRTUALMACHINES, await parent_client.get(VIRTUALMACHINES, vm["metadata"]["name"], elsewhere)),
    ]
    yield Foreign(
        volume=names["volume"],
        root_disk=names["root_disk"],
        snapshot=names["snapshot"],
        vm=names["vm"],
        elsewhere=elsewhere,
        elsewhere_volume=names["elsewhere_volume"],
        elsewhere_snapshot=names["elsewhere_snapshot"],
        objects=frozen,
    )
    async with nodes.clients(cluster) as c:
        with contextlib.suppress(NotFound):
            await nodes.remove_node(c, names["vm"])
    for resource, name, namespace in reversed(made):
        with contextlib.suppress(NotFound):
            await parent_client.delete(resource, name, namespace)
    with contextlib.suppress(NotFound):
        await parent_client.delete(NAMESPACES, elsewhere)


@pytest.fixture(scope="module")
async def controller(cluster: harness.Cluster, parent_storage: str) -> AsyncIterator[Any]:
    async with (
        running_driver(cluster, driver_config(cluster)) as driver,
        grpc.aio.insecure_channel(f"127.0.0.1:{driver.port}") as channel,
    ):
        yield csi_pb2_grpc.ControllerStub(channel)


@pytest.fixture(scope="module")
async def our_volume(controller: Any) -> AsyncIterator[str]:
    """One volume of ours, to offer to other clusters' nodes."""
    request = pb.CreateVolumeRequest(
        name=f"pvc-{uuid.uuid4()}",
        capacity_range=pb.CapacityRange(required_bytes=GIB),
        volume_capabilities=[MOUNT],
        parameters={"infraStorageClassName": PARENT_CLASS},
    )
    volume = (await controller.CreateVolume(request)).volume.volume_id
    yield volume
    await controller.DeleteVolume(pb.DeleteVolumeRequest(volume_id=volume))


async def code_of(call: Awaitable[Any]) -> tuple[Any, Any]:
    """(status code, answer); the answer only for OK."""
    try:
        return Code.OK, await call
    except grpc.aio.AioRpcError as error:
        return error.code(), None


async def test_another_clusters_volume_and_root_disks_are_not_found(
    controller: Any, foreign: Foreign, parent_client: Client, cluster: harness.Cluster
) -> None:
    problems = []
    node = f"{cluster.parent_namespace}/{foreign.vm}"
    for volume in (foreign.volume, foreign.root_disk, foreign.elsewhere_volume):
        calls: dict[str, Awaitable[Any]] = {
            "ValidateVolumeCapabilities": controller.ValidateVolumeCapabilities(
                pb.ValidateVolumeCapabilitiesRequest(volume_id=volume, volume_capabilities=[MOUNT])
            ),
            "ControllerGetVolume": controller.ControllerGetVolume(pb.ControllerGetVolumeRequest(volume_id=volume)),
            "ControllerPublishVolume": controller.ControllerPublishVolume(
                pb.ControllerPublishVolumeRequest(volume_id=volume, node_id=node, volume_capability=MOUNT)
            ),
            "ControllerExpandVolume": controller.ControllerExpandVolume(
                pb.ControllerExpandVolumeRequest(
                    volume_id=volume, capacity_range=pb.CapacityRange(required_bytes=2 * GIB)
                )
            ),
            "CreateSnapshot": controller.CreateSnapshot(
                pb.CreateSnapshotRequest(name=f"snap-{uuid.uuid4()}", source_volume_id=volume)
            ),
            "CreateVolume (clone)": controller.CreateVolume(
                pb.CreateVolumeRequest(
                    name=f"pvc-{uuid.uuid4()}",
                    volume_capabilities=[MOUNT],
                    parameters={"infraStorageClassName": PARENT_CLASS},
                    volume_content_source=pb.VolumeContentSource(
                        volume=pb.VolumeContentSource.VolumeSource(volume_id=volume)
                    ),
                )
            ),
        }
        for rpc, call in calls.items():
            code, _ = await code_of(call)
            if code != Code.NOT_FOUND:
                problems.append(f"{rpc}({volume}) -> {code.name}")
        # Deleting what does not exist is success in CSI; it must stay a no-op.
        for rpc, call in {
            "DeleteVolume": controller.DeleteVolume(pb.DeleteVolumeRequest(volume_id=volume)),
            "ControllerUnpublishVolume": controller.ControllerUnpublishVolume(
                pb.ControllerUnpublishVolumeRequest(
                    volume_id=volume, node_id=f"{cluster.parent_namespace}/{foreign.vm}"
                )
            ),
        }.items():
            code, _ = await code_of(call)
            if code != Code.OK:
                problems.append(f"{rpc}({volume}) -> {code.name}")
    listed = {e.volume.volume_id for e in (await controller.ListVolumes(pb.ListVolumesRequest())).entries}
    problems += [
        f"ListVolumes shows {v}" for v in listed & {foreign.volume, foreign.root_disk, foreign.elsewhere_volume}
    ]
    assert problems == []
    assert await unchanged(parent_client, foreign.objects) == []


async def test_another_clusters_snapshots_are_not_found(
    controller: Any, foreign: Foreign, parent_client: Client
) -> None:
    problems = []
    for snap, source in ((foreign.snapshot, foreign.volume), (foreign.elsewhere_snapshot, foreign.elsewhere_volume)):
        restore = pb.CreateVolumeRequest(
            name=f"pvc-{uuid.uuid4()}",
            volume_capabilities=[MOUNT],
            parameters={"infraStorageClassName": PARENT_CLASS},
            volume_content_source=pb.VolumeContentSource(
                snapshot=pb.VolumeContentSource.SnapshotSource(snapshot_id=snap)
            ),
        )
        code, _ = await code_of(controller.CreateVolume(restore))
        if code != Code.NOT_FOUND:
            problems.append(f"CreateVolume from snapshot {snap} -> {code.name}")
        code, _ = await code_of(controller.DeleteSnapshot(pb.DeleteSnapshotRequest(snapshot_id=snap)))
        if code != Code.OK:
            problems.append(f"DeleteSnapshot({snap}) -> {code.name}")
        for request in (pb.ListSnapshotsRequest(snapshot_id=snap), pb.ListSnapshotsRequest(source_volume_id=source)):
            entries = (await controller.ListSnapshots(request)).entries
            if entries:
                problems.append(f"ListSnapshots({request}) -> {[e.snapshot.snapshot_id for e in entries]}")
    everything = {e.snapshot.snapshot_id for e in (await controller.ListSnapshots(pb.ListSnapshotsRequest())).entries}
    problems += [f"ListSnapshots shows {s}" for s in everything & {foreign.snapshot, foreign.elsewhere_snapshot}]
    assert problems == []
    assert await unchanged(parent_client, foreign.objects) == []


async def test_another_clusters_nodes_are_not_found(
    controller: Any, our_volume: str, foreign: Foreign, parent_client: Client, cluster: harness.Cluster
) -> None:
    elsewhere_vm = next(
        o.name for o in foreign.objects if o.namespace == foreign.elsewhere and o.resource == VIRTUALMACHINES
    )
    problems = []
    for node in (f"{cluster.parent_namespace}/{foreign.vm}", f"{foreign.elsewhere}/{elsewhere_vm}"):
        publish = pb.ControllerPublishVolumeRequest(volume_id=our_volume, node_id=node, volume_capability=MOUNT)
        code, _ = await code_of(controller.ControllerPublishVolume(publish))
        if code != Code.NOT_FOUND:
            problems.append(f"ControllerPublishVolume(ours -> {node}) -> {code.name}")
        unpublish = pb.ControllerUnpublishVolumeRequest(volume_id=our_volume, node_id=node)
        code, _ = await code_of(controller.ControllerUnpublishVolume(unpublish))
        if code != Code.OK:
            problems.append(f"ControllerUnpublishVolume(ours, {node}) -> {code.name}")
    assert problems == []
    assert await unchanged(parent_client, foreign.objects) == []
