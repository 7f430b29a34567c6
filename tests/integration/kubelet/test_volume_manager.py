"""The kubelet stand-in on the real harness: real API objects, our real driver, real loop devices and mounts.

The tests play csi-provisioner, the PV binder, csi-attacher and csi-resizer (tests/integration/kubelet/actors);
everything a kubelet does is the stand-in's: CSINode, volumesInUse, stage, publish, node expansion, pod status,
unpublish, unstage and the final pod deletion.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from csi.node.mountinfo import MountTable, mount_at
from e2e import cluster as harness
from e2e.kubelet.harness import kubelet_root
from e2e.kubelet.paths import VOL_DATA, KubeletPaths, unique_volume_name
from kube.client import Client, Object
from kube.informer import wait_for_object
from kube.resources import NODES, PERSISTENTVOLUMECLAIMS, PODS
from tests.integration.kubelet.actors import (
    DRIVER,
    GIB,
    Volume,
    attach,
    delete_volume,
    detach,
    first_event,
    pod_manifest,
    provision,
    publish,
    record_attached,
    resize,
    wait_gone,
)
from tests.integration.kubelet.conftest import NODE_A, NODE_B, StandIns

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root for loop devices and mounts")

TIMEOUT = 60.0


def in_use(node: Object) -> list[str]:
    return list((node.get("status") or {}).get("volumesInUse") or [])


def running(pod: Object) -> bool:
    status = pod.get("status") or {}
    ready = {c["type"]: c["status"] for c in status.get("conditions") or []}
    return status.get("phase") == "Running" and ready.get("Ready") == "True"


async def run_pod(tenant: Client, controller: Any, volume: Volume, name: str, node: str) -> Object:
    """Create the pod, check the volume is listed in use before it is attached, attach it, wait for Running."""
    created = await tenant.create(PODS, pod_manifest(name, node, volume))
    unique = unique_volume_name(DRIVER, volume.handle)
    assert await wait_for_object(tenant, NODES, node, None, lambda n: unique in in_use(n), TIMEOUT)
    await attach(controller, tenant, volume, node)
    pod = await wait_for_object(tenant, PODS, name, volume.namespace, running, TIMEOUT)
    assert pod is not None, f"pod {name} never ran"
    assert pod["metadata"]["uid"] == created["metadata"]["uid"]
    return pod


async def end_pod(tenant: Client, controller: Any, volume: Volume, pod: Object, node: str) -> None:
    """Delete the pod as a user does; the stand-in tears down and deletes it; then the volume is detached."""
    name = pod["metadata"]["name"]
    await tenant.delete(PODS, name, volume.namespace)
    await wait_gone(tenant, PODS, name, volume.namespace, TIMEOUT)
    node_obj = await tenant.get(NODES, node)
    assert unique_volume_name(DRIVER, volume.handle) not in in_use(node_obj)
    await detach(controller, tenant, volume, node)


def node_paths(cluster: harness.Cluster, node: str) -> KubeletPaths:
    return KubeletPaths(kubelet_root(cluster, node))


async def test_filesystem_volume_follows_its_pod_to_another_node(
    cluster: harness.Cluster, tenant_client: Client, controller: Any, stand_ins: StandIns, namespace: str
) -> None:
    tenant = tenant_client
    volume = await provision(controller, tenant, namespace)
    pod = await run_pod(tenant, controller, volume, "app-a", NODE_A)

    paths = node_paths(cluster, NODE_A)
    staging = paths.device_mount_path(DRIVER, volume.handle)
    target = paths.pod_volume_dir(pod["metadata"]["uid"], volume.pv) / "mount"
    mounts = MountTable().entries()
    staged, published = mount_at(mounts, staging), mount_at(mounts, target)
    assert staged is not None and staged.fs_type == "ext4"
    assert published is not None and (published.major, published.minor) == (staged.major, staged.minor)
    assert (staging.parent / VOL_DATA).exists() and (target.parent / VOL_DATA).exists()
    (target / "data.txt").write_text("written on node A")

    # The pod is force-deleted while node A's stand-in is down: restarted, it finds the pod's volume on disk
    # only, tears it down from its vol_data.json files, and drops it from volumesInUse.
    await stand_ins.stop_a()
    await tenant.delete(PODS, "app-a", namespace, grace_period_seconds=0)
    await stand_ins.start_a()
    unique = unique_volume_name(DRIVER, volume.handle)
    assert await wait_for_object(tenant, NODES, NODE_A, None, lambda n: unique not in in_use(n), TIMEOUT)
    mounts = MountTable().entries()
    assert mount_at(mounts, target) is None and mount_at(mounts, staging) is None
    assert not staging.parent.exists() and not target.parent.exists()
    await detach(controller, tenant, volume, NODE_A)

    moved = await run_pod(tenant, controller, volume, "app-b", NODE_B)
    target_b = node_paths(cluster, NODE_B).pod_volume_dir(moved["metadata"]["uid"], volume.pv) / "mount"
    assert (target_b / "data.txt").read_text() == "written on node A"
    await end_pod(tenant, controller, volume, moved, NODE_B)
    await delete_volume(controller, tenant, volume)


def block_device_at(path: Path) -> bool:
    return stat.S_ISBLK(path.stat().st_mode)


async def test_block_volume_is_published_as_a_device(
    cluster: harness.Cluster, tenant_client: Client, controller: Any, stand_ins: StandIns, namespace: str
) -> None:
    tenant = tenant_client
    volume = await provision(controller, tenant, namespace, block=True)
    payload = os.urandom(4096)
    pod = await run_pod(tenant, controller, volume, "raw-b", NODE_B)
    paths = node_paths(cluster, NODE_B)
    device = paths.block_publish_dir(volume.pv) / pod["metadata"]["uid"]
    link = paths.pod_devices(pod["metadata"]["uid"]) / volume.pv
    assert block_device_at(device) and link.resolve() == device
    fd = os.open(device, os.O_WRONLY)
    try:
        os.pwrite(fd, payload, 1 << 20)
        os.fsync(fd)
    finally:
        os.close(fd)
    await end_pod(tenant, controller, volume, pod, NODE_B)
    assert not device.exists() and not paths.block_staging_path(volume.pv).exists()

    moved = await run_pod(tenant, controller, volume, "raw-a", NODE_A)
    device_a = node_paths(cluster, NODE_A).block_publish_dir(volume.pv) / moved["metadata"]["uid"]
    fd = os.open(device_a, os.O_RDONLY)
    try:
        assert os.pread(fd, 4096, 1 << 20) == payload
    finally:
        os.close(fd)
    await end_pod(tenant, controller, volume, moved, NODE_A)
    await delete_volume(controller, tenant, volume)


async def test_a_failed_stage_is_reported_and_retried(
    cluster: harness.Cluster, tenant_client: Client, controller: Any, stand_ins: StandIns, namespace: str
) -> None:
    tenant = tenant_client
    volume = await provision(controller, tenant, namespace)
    pod = await tenant.create(PODS, pod_manifest("early-b", NODE_B, volume))
    # Marked attached before the disk is hot-plugged: NodeStageVolume cannot find it (UNAVAILABLE).
    await record_attached(tenant, volume, NODE_B, {})
    event = await first_event(tenant, pod, "FailedMount", TIMEOUT)
    assert "MountDevice failed" in event["message"] and "UNAVAILABLE" in event["message"]
    assert event["source"] == {"component": "kubelet", "host": NODE_B}
    # Once it is plugged, a retry with backoff succeeds without anything changing in the API.
    assert await publish(controller, tenant, volume, NODE_B) == {}
    assert await wait_for_object(tenant, PODS, "early-b", namespace, running, TIMEOUT)
    await end_pod(tenant, controller, volume, pod, NODE_B)
    await delete_volume(controller, tenant, volume)


def expanded(pvc: Object) -> bool:
    status = pvc.get("status") or {}
    conditions = {c["type"] for c in status.get("conditions") or []}
    return (
        (status.get("capacity") or {}).get("storage") == "2Gi"
        and "storage" not in (status.get("allocatedResourceStatuses") or {})
        and "FileSystemResizePending" not in conditions
    )


async def test_node_expansion_of_a_mounted_volume(
    cluster: harness.Cluster, tenant_client: Client, controller: Any, stand_ins: StandIns, namespace: str
) -> None:
    tenant = tenant_client
    # xfs grows online without CAP_SYS_RESOURCE, which ext4's online resize needs and this sandbox may lack
    volume = await provision(controller, tenant, namespace, fs_type="xfs")
    pod = await run_pod(tenant, controller, volume, "grow-b", NODE_B)
    target = node_paths(cluster, NODE_B).pod_volume_dir(pod["metadata"]["uid"], volume.pv) / "mount"
    before = os.statvfs(target)

    await resize(controller, tenant, volume, "2Gi", 2 * GIB)
    claim = await wait_for_object(tenant, PERSISTENTVOLUMECLAIMS, volume.claim, namespace, expanded, TIMEOUT)
    assert claim is not None, "kubelet's part of the expansion never finished"
    after = os.statvfs(target)
    assert after.f_blocks * after.f_frsize > 1.8 * before.f_blocks * before.f_frsize

    await end_pod(tenant, controller, volume, pod, NODE_B)
    await delete_volume(controller, tenant, volume)
