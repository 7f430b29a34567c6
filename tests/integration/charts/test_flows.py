"""The real ccm and CSI driver, holding only what the charts grant: the parent chart's ServiceAccount (its Role
and policies) in the parent, the tenant chart's ccm ServiceAccount in the tenant. Everything they do in their
normal flows must be allowed; what the policies cap must fail with the policy's message."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml

from ccm.app import CloudControllerManager
from csi._proto import csi_pb2, csi_pb2_grpc
from csi.app import Driver, Options
from csi.config import DriverConfig, Enforcement
from e2e import cluster as harness
from e2e import helm
from e2e.cluster import nodes
from e2e.cluster.identities import service_account_kubeconfig
from kube.client import Client
from kube.errors import NotFound
from kube.resources import ENDPOINTSLICES, EVENTS, LEASES, NAMESPACES, NODES, SERVICES, Resource
from lb.translate import parent_service_name
from tests.integration.ccm_runner import eventually, running_ccm
from tests.integration.charts.conftest import (
    ALLOWED_V4,
    ALLOWED_V6,
    CLUSTER_LABEL,
    LB_CLASS,
    SNAPSHOT_CLASS,
    STORAGE_CLASS,
)

POOLS = Resource("cilium.io", "v2", "ciliumloadbalancerippools", "CiliumLoadBalancerIPPool", namespaced=False)
POOL = "tenant-cloud-charts-tests"
LEASE = "tenant-cloud-charts-tests"
NODE_IPS = {"charts-n1": ["10.40.0.1"], "charts-n2": ["10.40.0.2"]}
VM = "charts-vm"
GIB = 1 << 30
RBAC_KINDS = ("ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")


def tenant_chart_values(cluster: harness.Cluster) -> dict[str, Any]:
    return {
        "clusterName": cluster.cluster_name,
        "parentNamespace": cluster.parent_namespace,
        "ccm": {
            "leaderElection": {"leaseName": LEASE},
            "loadBalancer": {
                "selectorless": True,
                "loadBalancerClass": LB_CLASS,
                "allowIPRequests": True,
                "allowedIPRanges": [ALLOWED_V4, ALLOWED_V6],
            },
        },
        "storageClasses": [{"name": "replicated", "parentStorageClass": STORAGE_CLASS, "default": True}],
    }


@pytest.fixture(scope="module")
def tenant_ccm_kubeconfig(cluster: harness.Cluster, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The tenant chart's ccm ServiceAccount and RBAC, applied to the tenant, and a token for it."""
    manifests = [
        m
        for m in helm.template(helm.TENANT_CHART, namespace="kube-system", values=tenant_chart_values(cluster))
        if m["kind"] in RBAC_KINDS and m["metadata"]["labels"].get("app.kubernetes.io/component") == "ccm"
    ]
    text = yaml.safe_dump_all(manifests)
    cluster.kubectl_run(
        "tenant", "apply", "--server-side", "--field-manager=tenant-cloud-charts-tests", "-f", "-", stdin=text
    )
    out = tmp_path_factory.mktemp("charts") / "tenant-ccm.kubeconfig"
    yield service_account_kubeconfig(cluster, "tenant", "kube-system", "tenant-cloud-ccm", out, create=False)
    cluster.kubectl_run("tenant", "delete", "--ignore-not-found", "-f", "-", stdin=text)


@pytest.fixture(scope="module")
async def pool(parent_client: Client, cluster: harness.Cluster) -> AsyncIterator[str]:
    await parent_client.apply(
        POOLS,
        {
            "metadata": {"name": POOL},
            "spec": {
                "blocks": [{"cidr": "203.0.113.0/24"}, {"cidr": "fd00:203:113::/112"}],
                "serviceSelector": {"matchLabels": {"io.kubernetes.service.namespace": cluster.parent_namespace}},
            },
        },
        force=True,
    )
    yield POOL
    with contextlib.suppress(NotFound):
        await parent_client.delete(POOLS, POOL)


@pytest.fixture(scope="module")
async def ccm_as_tenant(
    cluster: harness.Cluster, sa_kubeconfig: Path, tenant_ccm_kubeconfig: Path, pool: str, as_tenant: Client
) -> AsyncIterator[CloudControllerManager]:
    config = yaml.safe_load(
        helm.one(
            helm.template(helm.TENANT_CHART, namespace="kube-system", values=tenant_chart_values(cluster)),
            "ConfigMap",
            "tenant-cloud-ccm",
        )["data"]["cloud-config.yaml"]
    )
    config["kubeconfig"] = str(sa_kubeconfig)  # the chart mounts the parent kubeconfig Secret there
    async with nodes.clients(cluster) as c:
        for name, ips in NODE_IPS.items():
            await nodes.ensure_absent(c, name)
            await nodes.add_node(c, name, ips=ips, parent_node=f"parent-{name}")
        try:
            async with running_ccm(cluster, config, tenant_kubeconfig=tenant_ccm_kubeconfig, lease_name=LEASE) as ccm:
                yield ccm
        finally:
            for name in NODE_IPS:
                await nodes.ensure_absent(c, name)
                with contextlib.suppress(NotFound):
                    await c.parent.delete(NODES, f"parent-{name}")
            with contextlib.suppress(NotFound):
                await c.tenant.delete(LEASES, LEASE, "kube-system")


async def test_the_ccm_initialises_nodes_and_serves_load_balancers_with_chart_rbac_only(
    ccm_as_tenant: CloudControllerManager, tenant_client: Client, parent_client: Client, cluster: harness.Cluster
) -> None:
    async def initialised() -> bool:
        found = [await tenant_client.get(NODES, name) for name in NODE_IPS]
        return all((n.get("spec") or {}).get("providerID") == f"kubevirt://{n['metadata']['name']}" for n in found)

    await eventually(initialised, timeout=15)
    namespace = f"charts-{uuid.uuid4().hex[:6]}"
    await tenant_client.create(NAMESPACES, {"metadata": {"name": namespace}})
    try:
        tenant = await tenant_client.create(
            SERVICES,
            {
                "metadata": {"name": "web", "annotations": {"lbipam.cilium.io/ips": "203.0.113.150"}},
                "spec": {
                    "type": "LoadBalancer",
                    "externalTrafficPolicy": "Cluster",
                    "ports": [{"name": "http", "protocol": "TCP", "port": 80}],
                    "selector": {"app": "web"},
                },
            },
            namespace,
        )

        async def has_requested_ip() -> bool:
            current = await tenant_client.get(SERVICES, "web", namespace)
            ingress = ((current.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
            return [i.get("ip") for i in ingress] == ["203.0.113.150"]

        await eventually(has_requested_ip, timeout=15)
        ns = cluster.parent_namespace
        parent = await parent_client.get(SERVICES, parent_service_name(tenant), ns)
        assert parent["metadata"]["labels"][CLUSTER_LABEL] == cluster.cluster_name
        assert parent["spec"]["loadBalancerClass"] == LB_CLASS
        selector = f"kubernetes.io/service-name={parent['metadata']['name']}"

        async def sliced() -> bool:
            slices = (await parent_client.list(ENDPOINTSLICES, ns, label_selector=selector)).items
            addresses = {a for s in slices for e in s.get("endpoints") or [] for a in e["addresses"]}
            return addresses == {"10.40.0.1", "10.40.0.2"}

        await eventually(sliced, timeout=15)
        events = await tenant_client.list_all(EVENTS, namespace, field_selector="involvedObject.name=web")
        assert "SyncLoadBalancerFailed" not in {e["reason"] for e in events.items}
        await tenant_client.delete(SERVICES, "web", namespace)

        async def released() -> bool:
            try:
                await parent_client.get(SERVICES, parent["metadata"]["name"], ns)
            except NotFound:
                slices = (await parent_client.list(ENDPOINTSLICES, ns, label_selector=selector)).items
                return not slices
            return False

        await eventually(released, timeout=15)
    finally:
        with contextlib.suppress(NotFound):
            await tenant_client.delete(NAMESPACES, namespace)


# -- the CSI controller ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def controller_as_tenant(
    cluster: harness.Cluster, sa_kubeconfig: Path, as_tenant: Client, parent_storage: str
) -> AsyncIterator[Any]:
    config = DriverConfig(
        driver_name="csi.tenant-cloud.io",
        namespace=cluster.parent_namespace,
        labels={CLUSTER_LABEL: cluster.cluster_name},
        enforcement=Enforcement.model_validate(
            {
                "allowAll": False,
                "allowDefault": False,
                "allowList": [STORAGE_CLASS],
                "storageSnapshotMapping": [
                    {"storageClasses": [STORAGE_CLASS], "volumeSnapshotClasses": [SNAPSHOT_CLASS]}
                ],
            }
        ),
        attach_timeout=10.0,
        provision_timeout=10.0,
    )
    options = Options(
        config=config,
        endpoint="tcp://127.0.0.1:0",
        parent_kubeconfig=str(sa_kubeconfig),
        run_controller=True,
        run_node=False,
        health_bind="127.0.0.1:0",
        metrics_bind="0",
    )
    driver = Driver(options)
    stop, started = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(driver.run(stop, started))
    await asyncio.wait([task, asyncio.create_task(started.wait())], return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()
    assert driver.parent is not None
    await asyncio.gather(*(i.wait_synced(15) for i in driver.parent.informers))
    async with nodes.clients(cluster) as c:
        await nodes.ensure_absent(c, VM)
        await nodes.add_node(c, VM, ips=["10.40.0.9"], parent_node=f"parent-{VM}", register=False)
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{driver.port}") as channel:
                yield csi_pb2_grpc.ControllerStub(channel)
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)
            await nodes.ensure_absent(c, VM)
            with contextlib.suppress(NotFound):
                await c.parent.delete(NODES, f"parent-{VM}")


def create_request(size: int = GIB) -> Any:
    return csi_pb2.CreateVolumeRequest(
        name=f"pvc-{uuid.uuid4()}",
        capacity_range=csi_pb2.CapacityRange(required_bytes=size),
        volume_capabilities=[mount_capability()],
        parameters={"infraStorageClassName": STORAGE_CLASS},
    )


def mount_capability() -> Any:
    return csi_pb2.VolumeCapability(
        mount=csi_pb2.VolumeCapability.MountVolume(fs_type="ext4"),
        access_mode=csi_pb2.VolumeCapability.AccessMode(mode=csi_pb2.VolumeCapability.AccessMode.SINGLE_NODE_WRITER),
    )


async def refused(call: Any) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await call
    assert failed.value.code() == grpc.StatusCode.PERMISSION_DENIED, failed.value.details()
    return str(failed.value.details())


async def test_the_driver_s_whole_volume_lifecycle_runs_with_chart_rbac_only(
    controller_as_tenant: Any, cluster: harness.Cluster
) -> None:
    controller = controller_as_tenant
    node_id = f"{cluster.parent_namespace}/{VM}"
    volume = (await controller.CreateVolume(create_request())).volume
    volume_id = volume.volume_id
    publish = csi_pb2.ControllerPublishVolumeRequest(
        volume_id=volume_id, node_id=node_id, volume_capability=mount_capability()
    )
    await controller.ControllerPublishVolume(publish)  # virtualmachines/addvolume
    grown = await controller.ControllerExpandVolume(
        csi_pb2.ControllerExpandVolumeRequest(
            volume_id=volume_id,
            capacity_range=csi_pb2.CapacityRange(required_bytes=2 * GIB),
            volume_capability=mount_capability(),
        )
    )
    assert grown.capacity_bytes >= 2 * GIB  # the parent claim's patch and watch
    over_cap = csi_pb2.ControllerExpandVolumeRequest(
        volume_id=volume_id, capacity_range=csi_pb2.CapacityRange(required_bytes=5 * GIB)
    )
    assert "at most 4Gi" in await refused(controller.ControllerExpandVolume(over_cap))
    snapshot_name = f"snapshot-{uuid.uuid4()}"
    request = csi_pb2.CreateSnapshotRequest(name=snapshot_name, source_volume_id=volume_id)
    taken = (await controller.CreateSnapshot(request)).snapshot
    for _ in range(600):  # up to 30 s: the snapshot simulator copies the image, slow on a loaded CI box
        if taken.ready_to_use:
            break
        await asyncio.sleep(0.05)
        taken = (await controller.CreateSnapshot(request)).snapshot
    assert taken.ready_to_use
    restore = create_request(2 * GIB)
    restore.volume_content_source.snapshot.snapshot_id = snapshot_name
    clone = create_request(2 * GIB)
    clone.volume_content_source.volume.volume_id = volume_id
    made = [(await controller.CreateVolume(r)).volume.volume_id for r in (restore, clone)]
    await controller.ControllerUnpublishVolume(  # virtualmachines/removevolume
        csi_pb2.ControllerUnpublishVolumeRequest(volume_id=volume_id, node_id=node_id)
    )
    await controller.DeleteSnapshot(csi_pb2.DeleteSnapshotRequest(snapshot_id=snapshot_name))
    for each in [*made, volume_id]:
        await controller.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id=each))


async def test_volumes_over_the_cap_are_refused_by_the_parent(controller_as_tenant: Any) -> None:
    assert "at most 4Gi" in await refused(controller_as_tenant.CreateVolume(create_request(5 * GIB)))
