"""Tenant volumes the way Kubernetes drives them: csi-provisioner and kube-controller-manager's PV controller for
claims, its attach/detach controller and csi-attacher for pods bound to Nodes, the kubelet stand-in on each
Node for staging, publishing and node expansion, csi-resizer for expansion, the snapshot-controller and
csi-snapshotter for snapshots. Our driver shows up only in what the parent holds and in what gets mounted."""

from __future__ import annotations

import os
import stat

from e2e.sims.snapshots import CONTENTS, VOLUMESNAPSHOTS
from kube.client import Object
from kube.quantity import parse_quantity
from kube.resources import PERSISTENTVOLUMECLAIMS, PERSISTENTVOLUMES
from tests.e2e.conftest import E2E, claim, mounted, node_paths, pod_device, pod_mount, watch_until
from tests.e2e.volumes import (
    CLUSTER_LABEL,
    DATAVOLUMES,
    GIB,
    disk_image,
    end_on,
    handle,
    parent_image,
    provisioned,
    read_device,
    run_on,
    unplugged_from,
    write_device,
    write_synced,
)


async def test_a_claim_gets_a_parent_volume_and_is_bound_by_the_pv_controller(e2e: E2E, namespace: str) -> None:
    tenant, parent, stack = e2e.tenant, e2e.parent, e2e.stack
    created = await tenant.create(PERSISTENTVOLUMECLAIMS, claim("data", stack.storage_class), namespace)
    found, volume = await provisioned(tenant, namespace, "data")
    # kube-controller-manager's PV controller bound them; csi-provisioner made the volume with our driver.
    assert found["metadata"]["annotations"]["pv.kubernetes.io/bind-completed"] == "yes"
    assert found["metadata"]["annotations"]["volume.kubernetes.io/storage-provisioner"] == stack.driver_name
    assert volume["metadata"]["annotations"]["pv.kubernetes.io/provisioned-by"] == stack.driver_name
    assert volume["spec"]["claimRef"]["uid"] == created["metadata"]["uid"]
    assert volume["spec"]["persistentVolumeReclaimPolicy"] == "Delete"
    assert parse_quantity(volume["spec"]["capacity"]["storage"]) == GIB
    data_volume = await parent.get(DATAVOLUMES, handle(volume), e2e.parent_namespace)
    assert data_volume["metadata"]["labels"][CLUSTER_LABEL] == e2e.cluster.cluster_name
    storage = data_volume["spec"]["storage"]
    assert storage["storageClassName"] == stack.platform.storage_class
    assert parse_quantity(storage["resources"]["requests"]["storage"]) == GIB
    assert data_volume["metadata"]["annotations"]["tenant-cloud.io/csi-request-name"] == volume["metadata"]["name"]


async def test_a_volume_follows_its_pod_to_another_node_with_its_data(
    e2e: E2E, tenant_nodes: list[str], namespace: str
) -> None:
    """What a StatefulSet's pod and its claim go through when the pod moves to another Node."""
    tenant, stack, cluster = e2e.tenant, e2e.stack, e2e.cluster
    node_a, node_b = tenant_nodes
    await tenant.create(PERSISTENTVOLUMECLAIMS, claim("data-app-0", stack.storage_class), namespace)
    _, volume = await provisioned(tenant, namespace, "data-app-0")
    pv, image = volume["metadata"]["name"], parent_image(e2e, volume)

    pod = await run_on(e2e, node_a, namespace, "app-0", "data-app-0", volume)
    target = pod_mount(cluster, node_a, pod, pv)
    staging = node_paths(cluster, node_a).device_mount_path(stack.driver_name, handle(volume))
    staged, published = mounted(staging), mounted(target)
    assert staged is not None and staged.fs_type == "ext4", f"nothing staged at {staging}"
    assert published is not None and (published.major, published.minor) == (staged.major, staged.minor)
    assert disk_image(published.major, published.minor) == image  # the hot-plugged parent volume itself
    payload = os.urandom(64 << 10)
    write_synced(target / "state.bin", payload)

    await end_on(e2e, node_a, namespace, "app-0", volume)
    assert mounted(target) is None and mounted(staging) is None  # unmounted before the detach, as kubelet does

    moved = await run_on(e2e, node_b, namespace, "app-0", "data-app-0", volume)
    assert moved["metadata"]["uid"] != pod["metadata"]["uid"]
    target_b = pod_mount(cluster, node_b, moved, pv)
    published_b = mounted(target_b)
    assert published_b is not None and disk_image(published_b.major, published_b.minor) == image
    assert (target_b / "state.bin").read_bytes() == payload
    assert await unplugged_from(e2e, node_a, handle(volume))


async def test_a_block_volume_follows_its_pod_with_its_bytes(e2e: E2E, tenant_nodes: list[str], namespace: str) -> None:
    tenant, stack, cluster = e2e.tenant, e2e.stack, e2e.cluster
    node_a, node_b = tenant_nodes
    await tenant.create(PERSISTENTVOLUMECLAIMS, claim("raw", stack.storage_class, volumeMode="Block"), namespace)
    _, volume = await provisioned(tenant, namespace, "raw")
    pv, image = volume["metadata"]["name"], parent_image(e2e, volume)
    assert volume["spec"]["volumeMode"] == "Block"

    pod = await run_on(e2e, node_b, namespace, "db-0", "raw", volume, block=True)
    device = pod_device(cluster, node_b, pod, pv)
    found = device.stat()
    assert stat.S_ISBLK(found.st_mode), f"{device} is not a block device"
    assert disk_image(os.major(found.st_rdev), os.minor(found.st_rdev)) == image
    payload = os.urandom(4096)
    write_device(device, 1 << 20, payload)

    await end_on(e2e, node_b, namespace, "db-0", volume)
    assert not device.exists()

    moved = await run_on(e2e, node_a, namespace, "db-0", "raw", volume, block=True)
    assert read_device(pod_device(cluster, node_a, moved, pv), 1 << 20, len(payload)) == payload


def node_expansion_done(pvc: Object) -> bool:
    """kubelet's part finished: status.capacity is the new size and no resize is pending or in progress."""
    status = pvc.get("status") or {}
    conditions = {c["type"] for c in status.get("conditions") or []}
    return (
        parse_quantity((status.get("capacity") or {}).get("storage", "0")) == 2 * GIB
        and "storage" not in (status.get("allocatedResourceStatuses") or {})
        and not conditions & {"Resizing", "FileSystemResizePending"}
    )


async def test_expanding_a_mounted_claim_grows_the_parent_volume_and_the_filesystem(
    e2e: E2E, tenant_nodes: list[str], namespace: str
) -> None:
    tenant, parent, stack, cluster = e2e.tenant, e2e.parent, e2e.stack, e2e.cluster
    node = tenant_nodes[0]
    # XFS grows online with CAP_SYS_ADMIN; ext4's online resize also needs CAP_SYS_RESOURCE, which sandboxes drop.
    xfs = stack.storage_class_formatting("xfs")
    await tenant.create(PERSISTENTVOLUMECLAIMS, claim("data", xfs), namespace)
    _, volume = await provisioned(tenant, namespace, "data")
    assert volume["spec"]["csi"]["fsType"] == "xfs"  # csi-provisioner, from the class's csi.storage.k8s.io/fstype
    pod = await run_on(e2e, node, namespace, "app", "data", volume)
    target = pod_mount(cluster, node, pod, volume["metadata"]["name"])
    published = mounted(target)
    assert published is not None and published.fs_type == "xfs", f"no XFS mounted at {target}"
    before = os.statvfs(target)

    patch = {"spec": {"resources": {"requests": {"storage": "2Gi"}}}}
    await tenant.patch(PERSISTENTVOLUMECLAIMS, "data", patch, namespace)
    await watch_until(
        tenant,
        PERSISTENTVOLUMECLAIMS,
        "data",
        namespace,
        node_expansion_done,
        "csi-resizer grows the volume, then the node's kubelet stand-in its filesystem",
        timeout=90,
    )
    grown = await tenant.get(PERSISTENTVOLUMES, volume["metadata"]["name"])
    assert parse_quantity(grown["spec"]["capacity"]["storage"]) == 2 * GIB
    parent_claim = await parent.get(PERSISTENTVOLUMECLAIMS, handle(volume), e2e.parent_namespace)
    assert parse_quantity(parent_claim["spec"]["resources"]["requests"]["storage"]) == 2 * GIB
    assert parent_image(e2e, volume).stat().st_size == 2 * GIB  # the parent volume, and so the VM's disk
    after = os.statvfs(target)
    assert after.f_blocks * after.f_frsize > 1.8 * before.f_blocks * before.f_frsize


async def test_a_snapshot_restores_the_data_into_a_new_claim(e2e: E2E, tenant_nodes: list[str], namespace: str) -> None:
    tenant, parent, stack, cluster = e2e.tenant, e2e.parent, e2e.stack, e2e.cluster
    node_a, node_b = tenant_nodes
    await tenant.create(PERSISTENTVOLUMECLAIMS, claim("data", stack.storage_class), namespace)
    _, volume = await provisioned(tenant, namespace, "data")
    pod = await run_on(e2e, node_a, namespace, "app", "data", volume)
    target = pod_mount(cluster, node_a, pod, volume["metadata"]["name"])
    write_synced(target / "state.txt", b"before the snapshot")

    await tenant.create(
        VOLUMESNAPSHOTS,
        {
            "metadata": {"name": "backup"},
            "spec": {"volumeSnapshotClassName": stack.snapshot_class, "source": {"persistentVolumeClaimName": "data"}},
        },
        namespace,
    )
    snapshot = await watch_until(
        tenant,
        VOLUMESNAPSHOTS,
        "backup",
        namespace,
        lambda s: bool((s.get("status") or {}).get("readyToUse")),
        "the snapshot-controller and csi-snapshotter make the snapshot ready",
    )
    content = await tenant.get(CONTENTS, snapshot["status"]["boundVolumeSnapshotContentName"])
    assert content["spec"]["driver"] == stack.driver_name
    parent_snapshot = await parent.get(VOLUMESNAPSHOTS, content["status"]["snapshotHandle"], e2e.parent_namespace)
    assert parent_snapshot["spec"]["source"]["persistentVolumeClaimName"] == handle(volume)
    assert parent_snapshot["status"]["readyToUse"] is True
    assert parent_snapshot["metadata"]["labels"][CLUSTER_LABEL] == e2e.cluster.cluster_name
    write_synced(target / "state.txt", b"after the snapshot")  # the restore must show the snapshot's moment

    source = {"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": "backup"}
    await tenant.create(PERSISTENTVOLUMECLAIMS, claim("restored", stack.storage_class, dataSource=source), namespace)
    _, restored = await provisioned(tenant, namespace, "restored")
    data_volume = await parent.get(DATAVOLUMES, handle(restored), e2e.parent_namespace)
    assert data_volume["spec"]["source"] == {
        "snapshot": {"name": parent_snapshot["metadata"]["name"], "namespace": e2e.parent_namespace}
    }
    reader = await run_on(e2e, node_b, namespace, "reader", "restored", restored)
    restored_target = pod_mount(cluster, node_b, reader, restored["metadata"]["name"])
    published = mounted(restored_target)
    assert published is not None and disk_image(published.major, published.minor) == parent_image(e2e, restored)
    assert (restored_target / "state.txt").read_bytes() == b"before the snapshot"
    assert (target / "state.txt").read_bytes() == b"after the snapshot"
