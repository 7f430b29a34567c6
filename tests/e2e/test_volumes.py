"""Tenant volumes the way Kubernetes drives them: csi-provisioner and kube-controller-manager's PV controller for
claims, its attach/detach controller and csi-attacher for pods bound to Nodes, csi-resizer for expansion, the
snapshot-controller and csi-snapshotter for snapshots. Our driver shows up only in what the parent holds."""

from __future__ import annotations

from typing import Any

from e2e.cluster import nodes
from e2e.sims.snapshots import CONTENTS, VOLUMESNAPSHOTS
from kube.client import Client, Object
from kube.quantity import parse_quantity
from kube.resources import NODES, PERSISTENTVOLUMECLAIMS, PERSISTENTVOLUMES, PODS, VOLUMEATTACHMENTS, Resource
from tests.e2e.conftest import E2E, bound, claim, delete_pod_now, pod_on, register_driver, until

DATAVOLUMES = Resource("cdi.kubevirt.io", "v1beta1", "datavolumes", "DataVolume")
CLUSTER_LABEL = "cluster.x-k8s.io/cluster-name"
GIB = 1 << 30


async def provisioned(tenant: Client, namespace: str, name: str) -> tuple[Object, Object]:
    """(claim, volume) once the claim is bound."""
    found = await bound(tenant, namespace, name)
    return found, await tenant.get(PERSISTENTVOLUMES, found["spec"]["volumeName"])


def handle(volume: Object) -> str:
    return str(volume["spec"]["csi"]["volumeHandle"])


async def attachment_for(tenant: Client, volume: str, node: str) -> Object | None:
    for found in (await tenant.list_all(VOLUMEATTACHMENTS)).items:
        spec = found["spec"]
        if spec["source"].get("persistentVolumeName") == volume and spec["nodeName"] == node:
            return found
    return None


def hotplugged(vmi: Object, volume: str) -> dict[str, Any] | None:
    """The VMI's status entry for a hot-plugged volume (KubeVirt reports the DataVolume's name)."""
    for entry in (vmi.get("status") or {}).get("volumeStatus") or []:
        if entry["name"] == volume and entry.get("hotplugVolume") is not None:
            return dict(entry)
    return None


def in_vm_spec(vm: Object, volume: str) -> bool:
    volumes = vm["spec"]["template"]["spec"].get("volumes") or []
    return any(v["name"] == volume for v in volumes)


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


async def test_a_pod_on_a_node_gets_the_volume_hot_plugged_and_unplugged_when_it_goes(
    e2e: E2E, tenant_nodes: list[str], namespace: str
) -> None:
    tenant, parent, stack = e2e.tenant, e2e.parent, e2e.stack
    node = tenant_nodes[0]
    await register_driver(tenant, node, stack.driver_name, e2e.parent_namespace)
    await tenant.create(PERSISTENTVOLUMECLAIMS, claim("data", stack.storage_class), namespace)
    _, volume = await provisioned(tenant, namespace, "data")
    pv, parent_volume, parent_namespace = volume["metadata"]["name"], handle(volume), e2e.parent_namespace
    await tenant.create(PODS, pod_on(node, "app", "data"), namespace)

    async def attached() -> Object | None:
        found = await attachment_for(tenant, pv, node)
        return found if found and (found.get("status") or {}).get("attached") else None

    attachment = await until(attached, "the attach/detach controller's VolumeAttachment is attached")
    assert attachment["spec"]["attacher"] == stack.driver_name
    vmi = await parent.get(nodes.VMIS, node, parent_namespace)
    assert (hotplugged(vmi, parent_volume) or {}).get("phase") == "Ready"
    assert in_vm_spec(await parent.get(nodes.VMS, node, parent_namespace), parent_volume)

    async def reported_on_node() -> bool:
        status = (await tenant.get(NODES, node)).get("status") or {}
        return any(parent_volume in entry["name"] for entry in status.get("volumesAttached") or [])

    await until(reported_on_node, "the attach/detach controller reports the volume in node.status")

    await delete_pod_now(tenant, namespace, "app")

    async def detached() -> bool:
        if await attachment_for(tenant, pv, node) is not None:
            return False
        vmi = await parent.get(nodes.VMIS, node, parent_namespace)
        vm = await parent.get(nodes.VMS, node, parent_namespace)
        return hotplugged(vmi, parent_volume) is None and not in_vm_spec(vm, parent_volume)

    await until(detached, "the VolumeAttachment is gone and the volume unplugged from the VM")


async def test_expanding_a_claim_grows_the_parent_volume_and_leaves_the_filesystem_to_the_node(
    e2e: E2E, namespace: str
) -> None:
    tenant, parent, stack = e2e.tenant, e2e.parent, e2e.stack
    await tenant.create(PERSISTENTVOLUMECLAIMS, claim("data", stack.storage_class), namespace)
    _, volume = await provisioned(tenant, namespace, "data")
    patch = {"spec": {"resources": {"requests": {"storage": "2Gi"}}}}
    await tenant.patch(PERSISTENTVOLUMECLAIMS, "data", patch, namespace)

    async def controller_side_done() -> Object | None:
        found = await tenant.get(PERSISTENTVOLUMECLAIMS, "data", namespace)
        grown = await tenant.get(PERSISTENTVOLUMES, volume["metadata"]["name"])
        conditions = {c["type"] for c in (found.get("status") or {}).get("conditions") or []}
        done = parse_quantity(grown["spec"]["capacity"]["storage"]) == 2 * GIB
        return found if done and "FileSystemResizePending" in conditions else None

    found = await until(controller_side_done, "csi-resizer grows the PV and leaves FileSystemResizePending")
    status = found["status"]
    assert parse_quantity(status["capacity"]["storage"]) == GIB  # until the node grows the filesystem
    assert status.get("allocatedResourceStatuses", {}).get("storage") == "NodeResizePending"
    parent_claim = await parent.get(PERSISTENTVOLUMECLAIMS, handle(volume), e2e.parent_namespace)
    assert parse_quantity(parent_claim["spec"]["resources"]["requests"]["storage"]) == 2 * GIB


async def test_a_snapshot_is_cut_in_the_parent_and_a_claim_restores_from_it(e2e: E2E, namespace: str) -> None:
    tenant, parent, stack = e2e.tenant, e2e.parent, e2e.stack
    await tenant.create(PERSISTENTVOLUMECLAIMS, claim("data", stack.storage_class), namespace)
    _, volume = await provisioned(tenant, namespace, "data")
    await tenant.create(
        VOLUMESNAPSHOTS,
        {
            "metadata": {"name": "backup"},
            "spec": {"volumeSnapshotClassName": stack.snapshot_class, "source": {"persistentVolumeClaimName": "data"}},
        },
        namespace,
    )

    async def ready() -> Object | None:
        found = await tenant.get(VOLUMESNAPSHOTS, "backup", namespace)
        return found if (found.get("status") or {}).get("readyToUse") else None

    snapshot = await until(ready, "the snapshot-controller and csi-snapshotter make the snapshot ready")
    content = await tenant.get(CONTENTS, snapshot["status"]["boundVolumeSnapshotContentName"])
    assert content["spec"]["driver"] == stack.driver_name
    parent_snapshot = await parent.get(VOLUMESNAPSHOTS, content["status"]["snapshotHandle"], e2e.parent_namespace)
    assert parent_snapshot["spec"]["source"]["persistentVolumeClaimName"] == handle(volume)
    assert parent_snapshot["status"]["readyToUse"] is True
    assert parent_snapshot["metadata"]["labels"][CLUSTER_LABEL] == e2e.cluster.cluster_name

    source = {"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": "backup"}
    restore = claim("restored", stack.storage_class, dataSource=source)
    await tenant.create(PERSISTENTVOLUMECLAIMS, restore, namespace)
    _, restored = await provisioned(tenant, namespace, "restored")
    data_volume = await parent.get(DATAVOLUMES, handle(restored), e2e.parent_namespace)
    assert data_volume["spec"]["source"] == {
        "snapshot": {"name": parent_snapshot["metadata"]["name"], "namespace": e2e.parent_namespace}
    }
