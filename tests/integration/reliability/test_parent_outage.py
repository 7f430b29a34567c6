"""The parent kube-apiserver down for 30 s while tenant Services are being created and deleted and volumes are
being attached and detached — one shared outage, the four cases asserted one by one afterwards.

The ccm and the CSI driver run as processes; the CSI calls are retried as the sidecars retry them. Each case
is started before the parent goes away (so requests are in flight when it does) and continued while it is
down. Afterwards every Service has exactly one parent Service with its IP written back, the deleted ones
have none, and the VMs list exactly the volumes that should be attached — nothing duplicated or orphaned.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc
import pytest

from csi.ids import node_id
from e2e import cluster as harness
from e2e.cluster import controlplane
from kube.client import Client
from kube.resources import SERVICES
from tests.integration.reliability.components import ccm_component, csi_component, stopped_at_exit
from tests.integration.reliability.conftest import (
    STORAGE_CLASS,
    enforcement_file,
    ip_pool,
    lb_service,
    scenario_name,
    scenario_vms,
    tenant_namespaces,
)
from tests.integration.reliability.sidecars import Sidecar, sidecar
from tests.integration.reliability.state import (
    Check,
    converge,
    event_reasons,
    in_namespaces,
    parent_services,
    service_problems,
    volume_problems,
)

OUTAGE = 30.0
SETTLE = 150.0  # informers back off up to 30 s and failed keys up to a minute while the parent is gone


@dataclass
class Outage:
    cluster_name: str
    created_ns: str
    deleted_ns: str
    created: list[str]
    deleted: list[str]
    volumes: set[str]
    attached: dict[str, set[str]]
    to_attach: list[str]
    to_detach: list[str]
    down_seconds: float = 0.0
    seen: list[tuple[str, grpc.StatusCode, str]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


async def _parent_down(old_pid: int) -> float:
    """When the stopped kube-apiserver has exited."""
    while True:
        if not controlplane.pid_alive(old_pid):
            return time.monotonic()
        await asyncio.sleep(0.05)


async def _until_parents(
    parent: Client, cluster: harness.Cluster, cluster_name: str, namespace: str, count: int
) -> None:
    while True:
        found = await parent_services(parent, cluster, cluster_name)
        labels = [p["metadata"].get("labels") or {} for p in found]
        if sum(1 for label in labels if label.get("cluster.x-k8s.io/tenant-service-namespace") == namespace) >= count:
            return
        await asyncio.sleep(0.1)


@pytest.fixture(scope="module")
async def outage(
    cluster: harness.Cluster,
    tenant_client: Client,
    parent_client: Client,
    parent_storage_class: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Outage]:
    workdir = tmp_path_factory.mktemp("outage")
    name = scenario_name("outage")
    ccm = ccm_component(cluster, workdir, "ccm", name, lease=f"{name}-ccm")
    csi = csi_component(cluster, workdir, "csi", name, enforcement_file(workdir))
    async with (
        ip_pool(parent_client, name, [{"cidr": "100.71.0.0/24"}]),
        tenant_namespaces(tenant_client, parent_client, cluster, name, "outage-new", "outage-old") as (new_ns, old_ns),
        scenario_vms(cluster, name, 2) as (vm_a, vm_b),
    ):
        with stopped_at_exit(ccm, csi):
            ccm.start()
            csi.start()
            await csi.wait_ready()
            async with sidecar(csi.target) as driver:
                yield await _run(cluster, tenant_client, parent_client, driver, name, new_ns, old_ns, vm_a, vm_b)


async def _run(
    cluster: harness.Cluster,
    tenant: Client,
    parent: Client,
    driver: Sidecar,
    name: str,
    new_ns: str,
    old_ns: str,
    vm_a: str,
    vm_b: str,
) -> Outage:
    # Before: Services to delete (served), volumes attached to vm_a (two to detach, one to keep), three to attach.
    deleted = [f"old-{i}" for i in range(8)]
    for service in deleted:
        await tenant.create(SERVICES, lb_service(service), old_ns)
    await converge(lambda: service_problems(tenant, parent, cluster, name, in_namespaces(old_ns)), 60, "setup")
    volumes = [await driver.create(f"pvc-{name}-{i}", STORAGE_CLASS) for i in range(6)]
    to_detach, keep, to_attach = volumes[:2], volumes[2], volumes[3:]
    for volume in (*to_detach, keep):
        await driver.publish(volume, node_id(cluster.parent_namespace, vm_a))
    record = Outage(
        cluster_name=name,
        created_ns=new_ns,
        deleted_ns=old_ns,
        created=[f"new-{i}" for i in range(12)],
        deleted=deleted,
        volumes=set(volumes),
        attached={vm_a: {keep}, vm_b: set(to_attach)},
        to_attach=to_attach,
        to_detach=to_detach,
    )

    # Creation under way: a few parent Services exist, the rest are still being made when the parent goes.
    for service in record.created[:4]:
        await tenant.create(SERVICES, lb_service(service), new_ns)
    await _until_parents(parent, cluster, name, new_ns, 2)
    old_pid = harness.load(cluster.dir).parent.apiserver_pid
    restart = asyncio.create_task(asyncio.to_thread(harness.restart_apiserver, cluster.dir, "parent", OUTAGE))
    started = time.monotonic()
    volume_calls = [
        asyncio.create_task(driver.publish(to_attach[0], node_id(cluster.parent_namespace, vm_b))),
        asyncio.create_task(driver.unpublish(to_detach[0], node_id(cluster.parent_namespace, vm_a))),
    ]
    for service in record.created[4:8]:
        await tenant.create(SERVICES, lb_service(service), new_ns)
    for service in deleted[:4]:
        await tenant.delete(SERVICES, service, old_ns)
    down = await _parent_down(old_pid)
    # While the parent is down.
    for service in record.created[8:]:
        await tenant.create(SERVICES, lb_service(service), new_ns)
    for service in deleted[4:]:
        await tenant.delete(SERVICES, service, old_ns)
    volume_calls += [
        asyncio.create_task(driver.publish(v, node_id(cluster.parent_namespace, vm_b))) for v in to_attach[1:]
    ]
    volume_calls += [
        asyncio.create_task(driver.unpublish(v, node_id(cluster.parent_namespace, vm_a))) for v in to_detach[1:]
    ]
    await restart
    back = time.monotonic()
    record.down_seconds = back - down
    record.timings["stopping (graceful termination)"] = down - started

    async def settled(what: str, check: Check) -> None:
        """How long after the parent came back `check` first passed; the tests assert, this only measures."""
        with contextlib.suppress(AssertionError):
            await converge(check, SETTLE, what)
            record.timings[what] = time.monotonic() - back

    async def volumes_settled() -> None:
        await asyncio.gather(*volume_calls)
        record.timings["volume calls answered"] = time.monotonic() - back
        await settled("volumes", lambda: volume_problems(parent, cluster, name, record.volumes, record.attached))

    await asyncio.gather(
        settled("Services", lambda: service_problems(tenant, parent, cluster, name, in_namespaces(new_ns, old_ns))),
        volumes_settled(),
    )
    record.seen = driver.seen
    return record


async def test_services_created_during_the_outage_each_get_one_parent_and_its_ip(
    outage: Outage, cluster: harness.Cluster, tenant_client: Client, parent_client: Client
) -> None:
    assert outage.down_seconds >= OUTAGE
    await converge(
        lambda: service_problems(
            tenant_client, parent_client, cluster, outage.cluster_name, in_namespaces(outage.created_ns)
        ),
        SETTLE,
        "Services created during the outage",
    )
    tenants = (await tenant_client.list_all(SERVICES, outage.created_ns)).items
    assert sorted(s["metadata"]["name"] for s in tenants) == sorted(outage.created)
    # The tenant was told why its load balancer lagged, and then that it is there.
    for service in outage.created[8:]:
        reasons = await event_reasons(tenant_client, outage.created_ns, service)
        assert {"SyncLoadBalancerFailed", "EnsuredLoadBalancer"} <= reasons, (service, reasons)
    timings = ", ".join(f"{what} {seconds:.1f}s" for what, seconds in outage.timings.items())
    print(f"\nparent down {outage.down_seconds:.1f}s; after it came back: {timings}")


async def test_services_deleted_during_the_outage_leave_no_parent_service(
    outage: Outage, cluster: harness.Cluster, tenant_client: Client, parent_client: Client
) -> None:
    await converge(
        lambda: service_problems(
            tenant_client, parent_client, cluster, outage.cluster_name, in_namespaces(outage.deleted_ns)
        ),
        SETTLE,
        "Services deleted during the outage",
    )
    assert (await tenant_client.list_all(SERVICES, outage.deleted_ns)).items == []
    for service in outage.deleted[4:]:
        assert "DeleteLoadBalancerFailed" in await event_reasons(tenant_client, outage.deleted_ns, service)


async def _volumes_converged(outage: Outage, cluster: harness.Cluster, parent: Client) -> None:
    await converge(
        lambda: volume_problems(parent, cluster, outage.cluster_name, outage.volumes, outage.attached),
        SETTLE,
        "volumes attached and detached during the outage",
    )


async def test_volumes_attached_during_the_outage_are_attached_exactly_once(
    outage: Outage, cluster: harness.Cluster, parent_client: Client
) -> None:
    await _volumes_converged(outage, cluster, parent_client)
    vm = next(vm for vm, volumes in outage.attached.items() if set(outage.to_attach) <= volumes)
    assert outage.attached[vm] == set(outage.to_attach)
    retried = {code for what, code, _ in outage.seen if what.startswith("publish")}
    assert retried & {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}, outage.seen


async def test_volumes_detached_during_the_outage_are_gone_from_vm_and_vmi(
    outage: Outage, cluster: harness.Cluster, parent_client: Client
) -> None:
    await _volumes_converged(outage, cluster, parent_client)
    assert not any(set(outage.to_detach) & volumes for volumes in outage.attached.values())
    retried = {code for what, code, _ in outage.seen if what.startswith("unpublish")}
    assert retried & {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED}, outage.seen


async def test_nothing_of_the_cluster_is_duplicated_or_orphaned_in_the_parent(
    outage: Outage, cluster: harness.Cluster, tenant_client: Client, parent_client: Client
) -> None:
    assert await service_problems(tenant_client, parent_client, cluster, outage.cluster_name) == []
    assert await volume_problems(parent_client, cluster, outage.cluster_name, outage.volumes, outage.attached) == []
