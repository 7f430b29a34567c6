"""The parent's controllers answering with failure: Cilium LB-IPAM out of addresses, and CDI and KubeVirt stuck on
a parent volume whose StorageClass does not exist yet. The failure reaches the tenant (an Event) or the caller
(a gRPC error naming the parent's own reason), the work is retried, and it completes once the failure is
cleared through the API, as an operator would clear it."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import grpc
import pytest

from csi._proto import csi_pb2
from csi.ids import node_id
from e2e import cluster as harness
from kube.client import Client
from kube.errors import NotFound
from kube.resources import EVENTS, SERVICES, STORAGECLASSES
from tests.integration.reliability.components import ccm_component, csi_component, stopped_at_exit
from tests.integration.reliability.conftest import (
    LATE_STORAGE_CLASS,
    POOLS,
    ip_pool,
    lb_service,
    scenario_name,
    scenario_vms,
    storage_class_body,
    tenant_namespaces,
)
from tests.integration.reliability.sidecars import ATTEMPT_TIMEOUT, CAPABILITY, GIB, sidecar
from tests.integration.reliability.state import converge, in_namespaces, ingress_ips, service_problems, volume_problems


async def _warnings(tenant: Client, namespace: str, name: str) -> list[str]:
    listed = await tenant.list_all(EVENTS, namespace, field_selector=f"involvedObject.name={name}")
    return [f"{e['reason']}: {e['message']}" for e in listed.items if e.get("type") == "Warning"]


async def test_lb_ipam_out_of_addresses_is_reported_then_recovered(
    cluster: harness.Cluster, tenant_client: Client, parent_client: Client, tmp_path: Path
) -> None:
    name = scenario_name("ipam")
    ccm = ccm_component(cluster, tmp_path, "ccm", name, lease=f"{name}-ccm")
    two_addresses = [{"start": "100.75.0.1", "stop": "100.75.0.2"}]
    async with (
        ip_pool(parent_client, name, two_addresses) as pool,
        tenant_namespaces(tenant_client, parent_client, cluster, name, "ipam") as [namespace],
    ):
        with stopped_at_exit(ccm):
            ccm.start()
            names = ["a", "b", "c"]
            for service in names:
                await tenant_client.create(SERVICES, lb_service(service), namespace)

            async def starved() -> list[str]:
                """Nothing wrong yet means: two Services have the two addresses, the third was told why it has none."""
                shown = {s: ingress_ips(await tenant_client.get(SERVICES, s, namespace)) for s in names}
                waiting = [s for s, ips in shown.items() if not ips]
                if len(waiting) != 1:
                    return [f"Services without an address: {waiting}"]
                warnings = await _warnings(tenant_client, namespace, waiting[0])
                if not any(w.startswith("IPAMRequestNotSatisfied: parent LB-IPAM: out_of_ips") for w in warnings):
                    return [f"{waiting[0]} has no out_of_ips warning yet: {warnings}"]
                return []

            await converge(starved, 60, "an exhausted pool")
            # The operator grows the pool; nobody touches the Service or the ccm.
            await parent_client.patch(POOLS, pool, {"spec": {"blocks": [*two_addresses, {"cidr": "100.75.1.0/30"}]}})
            await converge(
                lambda: service_problems(tenant_client, parent_client, cluster, name, in_namespaces(namespace)),
                60,
                "Services after the pool grew",
            )


@pytest.fixture
async def no_late_storage_class(parent_client: Client) -> None:
    with contextlib.suppress(NotFound):
        await parent_client.delete(STORAGECLASSES, LATE_STORAGE_CLASS)


async def test_parent_volume_stuck_without_its_storage_class_is_reported_then_recovered(
    cluster: harness.Cluster,
    parent_client: Client,
    enforcement: Path,
    no_late_storage_class: None,
    tmp_path: Path,
) -> None:
    name = scenario_name("stuck")
    csi = csi_component(cluster, tmp_path, "csi", name, enforcement)
    volume = f"pvc-{name}"
    create = csi_pb2.CreateVolumeRequest(
        name=volume,
        capacity_range=csi_pb2.CapacityRange(required_bytes=GIB),
        volume_capabilities=[CAPABILITY],
        parameters={"infraStorageClassName": LATE_STORAGE_CLASS},
    )
    try:
        async with scenario_vms(cluster, name, 1) as [vm]:
            node = node_id(cluster.parent_namespace, vm)
            publish = csi_pb2.ControllerPublishVolumeRequest(
                volume_id=volume, node_id=node, volume_capability=CAPABILITY
            )
            with stopped_at_exit(csi):
                csi.start()
                await csi.wait_ready()
                async with sidecar(csi.target) as driver:
                    # CDI made the claim, but no provisioner serves a class that does not exist: it stays Pending.
                    with pytest.raises(grpc.aio.AioRpcError) as created:
                        await driver.controller.CreateVolume(create, timeout=ATTEMPT_TIMEOUT)
                    assert created.value.code() == grpc.StatusCode.UNAVAILABLE
                    assert "phase Pending" in str(created.value.details())
                    assert f"Bound Pending: PVC {volume} Pending" in str(created.value.details())
                    # A pre-provisioned volume published anyway: KubeVirt's hotplug waits on the claim, and says so.
                    with pytest.raises(grpc.aio.AioRpcError) as published:
                        await driver.controller.ControllerPublishVolume(publish, timeout=ATTEMPT_TIMEOUT)
                    assert published.value.code() == grpc.StatusCode.UNAVAILABLE
                    assert "PVCNotReady" in str(published.value.details())

                    # The platform adds the class; the sidecars' retries of the same calls now succeed.
                    await parent_client.create(STORAGECLASSES, storage_class_body(LATE_STORAGE_CLASS))
                    retried = asyncio.gather(
                        driver.until_done("create", lambda: driver.controller.CreateVolume(create, timeout=30)),
                        driver.until_done(
                            "publish", lambda: driver.controller.ControllerPublishVolume(publish, timeout=30)
                        ),
                    )
                    await asyncio.wait_for(retried, 120)
                    await converge(
                        lambda: volume_problems(parent_client, cluster, name, {volume}, {vm: {volume}}), 60, "volume"
                    )
                    await driver.unpublish(volume, node)
                    await driver.delete(volume)
    finally:
        with contextlib.suppress(NotFound):
            await parent_client.delete(STORAGECLASSES, LATE_STORAGE_CLASS)
