"""Leader failover while 200 Services are being created: two ccm processes share a Lease; the leader is
SIGKILLed a third of the way through. The standby takes over and every Service gets its IP exactly once —
one parent Service per tenant Service over the whole run, and no tenant IP ever changes once shown."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from e2e import cluster as harness
from e2e.bench.common import bounded
from kube.client import Client
from kube.resources import SERVICES
from tests.integration.reliability.components import CCM, CLUSTER_LABEL, ccm_component, stopped_at_exit
from tests.integration.reliability.conftest import ip_pool, lb_service, scenario_name, tenant_namespaces
from tests.integration.reliability.history import ServiceHistory, Tally, informer, watching
from tests.integration.reliability.state import converge, in_namespaces, service_problems

SERVICES_CREATED = 200


async def _leader(candidates: list[CCM], timeout: float = 30.0) -> CCM:
    deadline = time.monotonic() + timeout
    while True:
        leading = [c for c in candidates if await asyncio.to_thread(c.leading)]
        if leading:
            assert len(leading) == 1, [c.name for c in leading]
            return leading[0]
        assert time.monotonic() < deadline, "no ccm took the Lease"
        await asyncio.sleep(0.1)


async def test_leader_killed_while_200_services_are_created(
    cluster: harness.Cluster, tenant_client: Client, parent_client: Client, tmp_path: Path
) -> None:
    name = scenario_name("failover")
    candidates = [ccm_component(cluster, tmp_path, f"ccm-{i}", name, lease=f"{name}-ccm") for i in range(2)]
    parents = informer(parent_client, SERVICES, cluster.parent_namespace, f"{CLUSTER_LABEL}={name}")
    async with (
        ip_pool(parent_client, name, [{"cidr": "100.73.0.0/23"}]),
        tenant_namespaces(tenant_client, parent_client, cluster, name, "failover") as [namespace],
    ):
        tenants = informer(tenant_client, SERVICES, namespace)
        tally, history = Tally(parents), ServiceHistory(parents, tenants)
        async with watching(parents, tenants):
            with stopped_at_exit(*candidates):
                for candidate in candidates:
                    candidate.start()
                leader = await _leader(candidates)
                names = [f"svc-{i:03d}" for i in range(SERVICES_CREATED)]
                started = time.monotonic()
                creating = asyncio.create_task(
                    bounded([tenant_client.create(SERVICES, lb_service(n), namespace) for n in names], 16)
                )
                await asyncio.wait_for(tally.until(SERVICES_CREATED // 3), 120)
                done_before = len(history.ips)
                leader.kill()
                killed = time.monotonic()
                successor = await _leader([c for c in candidates if c is not leader])
                failover = time.monotonic() - killed
                await creating
                await converge(
                    lambda: service_problems(tenant_client, parent_client, cluster, name, in_namespaces(namespace)),
                    180,
                    "Services after the failover",
                )
                total = time.monotonic() - started
        keys = {f"{namespace}/{n}" for n in names}
        assert set(history.ips) == keys
        assert history.recreated() == {}
        assert history.unstable() == {}
        assert {k for k, uids in history.parent_uids.items() if len(uids) == 1} == keys
        print(
            f"\nleader {leader.name} killed with {done_before}/{SERVICES_CREATED} IPs shown; {successor.name} led "
            f"{failover:.1f}s later; all {SERVICES_CREATED} had their IPs {total:.1f}s after the first create"
        )
