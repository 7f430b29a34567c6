"""Data locality and live migration through the driver's gRPC API, on the harness and its LINSTOR simulator.

A VM on a parent node without a replica of its volume gets exactly one diskful make-available there, in the
background, with one Event on the tenant PVC, and no replica is ever removed; with locality off, or no storage pool
on the node, nothing is asked. An RWX block volume attached on two parent nodes (a live migration) is abnormal
exactly while DRBD does not allow two primaries.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from csi._proto import csi_pb2, csi_pb2_grpc
from csi.app import Driver
from csi.linstor.locality import REFUSED_REASON, REQUESTED_REASON
from csi.linstor.migration import ALLOW_TWO_PRIMARIES
from csi.linstor.settings import LinstorSettings
from csi.parent import DATAVOLUMES, VIRTUALMACHINEINSTANCES
from e2e import cluster as harness
from e2e.cluster import nodes
from kube.client import Client
from kube.errors import NotFound
from kube.resources import EVENTS, NAMESPACES, NODES
from tests.integration.csi.conftest import CLUSTER_LABEL, PARENT_CLASS, driver_config, running_driver
from tests.integration.csi.test_linstor import drop_tenant_claims, eventually, tenant_claim
from tests.integration.csi.test_linstor_grpc import (
    RWO_MOUNT,
    Linstor,
    conditions,
    create_volume,
    definition_of,
    discard,
    unpublish,
)

POOL = "data"  # the storagePool of the harness's parent class
POOL_KIB = 100 * 1024 * 1024
Mode = csi_pb2.VolumeCapability.AccessMode
RWX_BLOCK = csi_pb2.VolumeCapability(
    block=csi_pb2.VolumeCapability.BlockVolume(),
    access_mode=csi_pb2.VolumeCapability.AccessMode(mode=Mode.MULTI_NODE_MULTI_WRITER),
)


@dataclass
class Lab:
    """Parent nodes with and without a storage pool, a VM on each, and tenant claims for the volumes we make."""

    cluster: harness.Cluster
    parent: Client
    tenant: Client
    linstor: Linstor
    with_pool: str
    without_pool: str
    vm: str
    vm_without_pool: str
    namespace: str
    names: list[str]

    def node_id(self, vm: str) -> str:
        return f"{self.cluster.parent_namespace}/{vm}"

    async def events(self, claim: str) -> list[dict[str, Any]]:
        listed = await self.tenant.list_all(EVENTS, self.namespace, field_selector=f"involvedObject.name={claim}")
        return [e for e in listed.items if e["reason"] in (REQUESTED_REASON, REFUSED_REASON)]


@pytest.fixture(scope="module")
async def lab(
    cluster: harness.Cluster, parent_storage: str, parent_client: Client, tenant_client: Client
) -> AsyncIterator[Lab]:
    suffix = uuid.uuid4().hex[:6]
    linstor = Linstor((cluster.dir / "run" / "linstor.url").read_text().strip())
    # Volume IDs are known before the driver starts, so its tenant PV informer lists their PVs from the start.
    names = [f"pvc-{uuid.uuid4()}" for _ in range(4)]
    found = Lab(
        cluster,
        parent_client,
        tenant_client,
        linstor,
        f"parent-local-{suffix}",
        f"parent-remote-{suffix}",
        f"loc-vm-{suffix}",
        f"rem-vm-{suffix}",
        f"locality-{suffix}",
        names,
    )
    await tenant_client.create(NAMESPACES, {"metadata": {"name": found.namespace}})
    for index, name in enumerate(names):
        await tenant_claim(tenant_client, found.namespace, f"data-{index}", name)
    async with nodes.clients(cluster) as c:
        await nodes.add_node(c, found.vm, register=False, parent_node=found.with_pool)
        await nodes.add_node(c, found.vm_without_pool, register=False, parent_node=found.without_pool)
    # The simulator registers a satellite per parent Node, diskless until given a pool.
    satellites = f"/v1/view/storage-pools?nodes={found.with_pool}&nodes={found.without_pool}"
    await eventually(lambda: linstor.control("GET", satellites), lambda pools: len(pools) == 2)
    await linstor.control("PUT", f"/sim/storage-pools/{POOL}/nodes/{found.with_pool}", {"total_capacity": POOL_KIB})
    try:
        yield found
    finally:
        async with nodes.clients(cluster) as c:
            for vm in (found.vm, found.vm_without_pool):
                await nodes.remove_node(c, vm)
        for node in (found.with_pool, found.without_pool):
            with contextlib.suppress(NotFound):
                await parent_client.delete(NODES, node)
        await linstor.control("DELETE", f"/sim/storage-pools/{POOL}/nodes/{found.with_pool}")
        await drop_tenant_claims(tenant_client, found.namespace, names)


@contextlib.asynccontextmanager
async def driver_and_controller(lab: Lab, **linstor: Any) -> AsyncIterator[tuple[Driver, Any]]:
    settings = LinstorSettings.model_validate({"urls": [lab.linstor.url], "health_ttl": 0, "capacity_ttl": 0} | linstor)
    async with (
        running_driver(lab.cluster, driver_config(lab.cluster), linstor=settings) as driver,
        grpc.aio.insecure_channel(f"127.0.0.1:{driver.port}") as channel,
    ):
        yield driver, csi_pb2_grpc.ControllerStub(channel)


@pytest.fixture(scope="module")
async def prefer(lab: Lab) -> AsyncIterator[tuple[Driver, Any]]:
    # Time enough to answer a make-available the first test holds back.
    async with driver_and_controller(lab, timeout=30) as running:
        yield running


async def publish(controller: Any, volume_id: str, node_id: str, capability: Any = RWO_MOUNT) -> Any:
    request = csi_pb2.ControllerPublishVolumeRequest(volume_id=volume_id, node_id=node_id, volume_capability=capability)
    return await controller.ControllerPublishVolume(request)


def replica_states(replicas: list[dict[str, Any]]) -> dict[str, tuple[bool, str | None]]:
    """node -> (diskful?, disk state)."""
    return {
        r["node_name"]: ("DISKLESS" not in r["flags"], ((r["volumes"][0].get("state") or {}).get("disk_state")))
        for r in replicas
    }


async def test_publish_on_a_replica_less_node_asks_for_exactly_one_diskful_replica(
    lab: Lab, prefer: tuple[Driver, Any]
) -> None:
    driver, controller = prefer
    assert driver.linstor is not None
    volume = await create_volume(controller, lab.names[0])
    node_id = lab.node_id(lab.vm)
    try:
        definition = await definition_of(lab.parent, lab.cluster.parent_namespace, volume.volume_id)
        before = replica_states(await lab.linstor.replicas(definition))
        assert lab.with_pool not in before and sum(diskful for diskful, _ in before.values()) == 2
        # LINSTOR holds make-available back (a controller waiting for its satellites) until we let it answer.
        await lab.linstor.control("PUT", "/sim/holds", {"make-available": True})
        try:
            # Well within the time the driver would give LINSTOR (30 s): publish does not wait for it.
            async with asyncio.timeout(driver_config(lab.cluster).attach_timeout + 5):
                await publish(controller, volume.volume_id, node_id)
            # Attached although LINSTOR has not answered.
            await eventually(lambda: lab.linstor.calls("POST", f"/v1/resource-definitions/{definition}/"), bool)
            assert lab.with_pool not in replica_states(await lab.linstor.replicas(definition))
            # More publishes meanwhile, concurrent (the driver runs one, ABORTED for the rest: the sidecar retries)
            # and sequential: none asks LINSTOR again while the first request is in flight.
            results = await asyncio.gather(
                *(publish(controller, volume.volume_id, node_id) for _ in range(4)), return_exceptions=True
            )
            assert all(
                not isinstance(r, BaseException)
                or (isinstance(r, grpc.aio.AioRpcError) and r.code() == grpc.StatusCode.ABORTED)
                for r in results
            ), results
            for _ in range(3):
                await publish(controller, volume.volume_id, node_id)
        finally:
            await lab.linstor.control("PUT", "/sim/holds", {"make-available": False})
        await driver.linstor.settle()
        path = f"/v1/resource-definitions/{definition}/resources/{lab.with_pool}/make-available"
        assert len(await lab.linstor.calls("POST", path)) == 1
        # The new replica resyncs from an UpToDate one, then is UpToDate itself; the condition stays normal.
        local = await eventually(
            lambda: lab.linstor.replicas(definition),
            lambda found: replica_states(found).get(lab.with_pool) == (True, "UpToDate"),
        )
        assert {n: s for n, s in replica_states(local).items() if n != lab.with_pool} == before
        for condition in await conditions(controller, volume.volume_id):
            assert not condition.abnormal and condition.message.startswith("3 UpToDate diskful replicas"), condition
        # Publishing again once it is there asks nothing more.
        await publish(controller, volume.volume_id, node_id)
        await driver.linstor.settle()
        assert len(await lab.linstor.calls("POST", f"/v1/resource-definitions/{definition}/")) == 1
        recorded = await eventually(lambda: lab.events("data-0"), bool)
        assert [(e["type"], e["reason"]) for e in recorded] == [("Normal", REQUESTED_REASON)]
        assert recorded[0]["message"] == (
            f"VM {lab.vm} runs on parent node {lab.with_pool}, which held no replica of parent volume {definition}:"
            f" asked LINSTOR for a diskful replica there (storage pool {POOL}); it resyncs in the background"
        )
        await unpublish(controller, volume.volume_id, node_id)
        # Detaching removes no replica either: the local one stays for the next attach.
        assert replica_states(await lab.linstor.replicas(definition)) == replica_states(local)
    finally:
        await discard(controller, volume.volume_id, node_id)
    # Nothing ever asked LINSTOR to delete or shrink anything.
    writes = [
        c for c in await lab.linstor.calls() if c["method"] not in ("GET",) and "query-size-info" not in c["path"]
    ]
    assert all(c["method"] == "POST" and c["path"].endswith("/make-available") for c in writes), writes


async def test_a_diskless_replica_on_the_vms_node_gets_a_disk(lab: Lab, prefer: tuple[Driver, Any]) -> None:
    driver, controller = prefer
    assert driver.linstor is not None
    volume = await create_volume(controller, lab.names[1])
    definition = await definition_of(lab.parent, lab.cluster.parent_namespace, volume.volume_id)
    before = await lab.linstor.replicas(definition)
    witness = next(r["node_name"] for r in before if "TIE_BREAKER" in r["flags"])
    vm = f"witness-vm-{uuid.uuid4().hex[:6]}"
    async with nodes.clients(lab.cluster) as c:
        await nodes.add_node(c, vm, register=False, parent_node=witness)
    try:
        await publish(controller, volume.volume_id, lab.node_id(vm))
        await driver.linstor.settle()
        after = await eventually(
            lambda: lab.linstor.replicas(definition),
            lambda found: replica_states(found)[witness] == (True, "UpToDate"),
        )
        assert sorted(r["node_name"] for r in after) == sorted(r["node_name"] for r in before)  # toggled, not added
        recorded = await eventually(lambda: lab.events("data-1"), bool)
        assert [e["reason"] for e in recorded] == [REQUESTED_REASON]
        assert f"which held only a diskless replica of parent volume {definition}" in recorded[0]["message"]
        await unpublish(controller, volume.volume_id, lab.node_id(vm))
    finally:
        try:
            await discard(controller, volume.volume_id, lab.node_id(vm))
        finally:
            async with nodes.clients(lab.cluster) as c:
                await nodes.remove_node(c, vm)
            with contextlib.suppress(NotFound):
                await lab.parent.delete(NODES, witness)


@pytest.mark.parametrize("why", ["locality off", "no storage pool on the node"])
async def test_nothing_is_asked_when_locality_is_off_or_the_class_cannot_place_there(lab: Lab, why: str) -> None:
    locality, vm, index = ("off", lab.vm, 2) if why == "locality off" else ("prefer", lab.vm_without_pool, 3)
    async with driver_and_controller(lab, locality=locality) as (driver, controller):
        assert driver.linstor is not None
        volume = await create_volume(controller, lab.names[index])
        try:
            definition = await definition_of(lab.parent, lab.cluster.parent_namespace, volume.volume_id)
            before = replica_states(await lab.linstor.replicas(definition))
            await publish(controller, volume.volume_id, lab.node_id(vm))
            await driver.linstor.settle()
            assert await lab.linstor.calls("POST", f"/v1/resource-definitions/{definition}/") == []
            assert replica_states(await lab.linstor.replicas(definition)) == before
            assert await lab.events(f"data-{index}") == []
            await unpublish(controller, volume.volume_id, lab.node_id(vm))
        finally:
            await discard(controller, volume.volume_id, lab.node_id(vm))


async def rwx_block_volume(lab: Lab) -> str:
    """A volume of this cluster whose parent claim is ReadWriteMany Block, as CDI makes it for LINSTOR classes."""
    name = f"pvc-{uuid.uuid4()}"
    body = {
        "metadata": {"name": name, "labels": {CLUSTER_LABEL: lab.cluster.cluster_name}},
        "spec": {
            "source": {"blank": {}},
            "storage": {
                "accessModes": ["ReadWriteMany"],
                "volumeMode": "Block",
                "resources": {"requests": {"storage": "1Gi"}},
                "storageClassName": PARENT_CLASS,
            },
        },
    }
    await lab.parent.create(DATAVOLUMES, body, lab.cluster.parent_namespace)

    async def phase() -> str | None:
        dv = await lab.parent.get(DATAVOLUMES, name, lab.cluster.parent_namespace)
        return (dv.get("status") or {}).get("phase")

    await eventually(phase, lambda p: p == "Succeeded")
    return name


async def set_migration(lab: Lab, vm: str, state: dict[str, Any] | None, node: str | None = None) -> None:
    status: dict[str, Any] = {"migrationState": state}
    if node:
        status["nodeName"] = node
    await lab.parent.patch(
        VIRTUALMACHINEINSTANCES, vm, {"status": status}, lab.cluster.parent_namespace, subresource="status"
    )


async def test_live_migration_of_an_rwx_block_volume_needs_two_primaries(lab: Lab, prefer: tuple[Driver, Any]) -> None:
    _, controller = prefer
    volume_id = await rwx_block_volume(lab)
    definition = await definition_of(lab.parent, lab.cluster.parent_namespace, volume_id)
    target = f"{lab.without_pool}-target"
    try:
        await publish(controller, volume_id, lab.node_id(lab.vm), RWX_BLOCK)
        for condition in await conditions(controller, volume_id):
            assert not condition.abnormal and "attached on" not in condition.message, condition
        migrating = {"sourceNode": lab.with_pool, "targetNode": target, "completed": False, "failed": False}
        await set_migration(lab, lab.vm, migrating)
        # linstor-csi (the simulator) allows two primaries when the target attaches.
        attached = f"{lab.with_pool} (VM {lab.vm}), {target} (VM {lab.vm} migrating here)"
        allowed = await eventually(
            lambda: conditions(controller, volume_id),
            lambda found: all("two DRBD primaries allowed" in c.message for c in found),
        )
        assert all(not c.abnormal and f"attached on {attached}, two" in c.message for c in allowed)
        # Without the property the switch-over would fail: abnormal, saying why and where it is missing.
        await lab.linstor.control("PUT", f"/sim/resource-definitions/{definition}/props", {ALLOW_TWO_PRIMARIES: None})
        group = (await lab.linstor.control("GET", f"/v1/resource-definitions?resource_definitions={definition}"))[0][
            "resource_group_name"
        ]
        for condition in await conditions(controller, volume_id):
            assert condition.abnormal
            assert condition.message == (
                f"{definition} is attached on 2 parent nodes ({attached}) but DRBD does not allow two primaries"
                f" ({ALLOW_TWO_PRIMARIES} is unset on resource definition {definition} and resource group {group}):"
                " a live migration cannot switch over"
            )
        await lab.linstor.control("PUT", f"/sim/resource-definitions/{definition}/props", {ALLOW_TWO_PRIMARIES: "yes"})
        for condition in await conditions(controller, volume_id):
            assert not condition.abnormal, condition.message
        # Once the migration is over linstor-csi drops the property; one node needs none.
        await set_migration(lab, lab.vm, {**migrating, "completed": True}, node=lab.with_pool)
        done = await eventually(
            lambda: conditions(controller, volume_id), lambda found: all("attached on" not in c.message for c in found)
        )
        assert not any(c.abnormal for c in done)
        props = await lab.linstor.control("GET", f"/v1/resource-definitions?resource_definitions={definition}")
        assert ALLOW_TWO_PRIMARIES not in props[0]["props"]
        await unpublish(controller, volume_id, lab.node_id(lab.vm))
    finally:
        await set_migration(lab, lab.vm, None, node=lab.with_pool)
        await discard(controller, volume_id, lab.node_id(lab.vm))
