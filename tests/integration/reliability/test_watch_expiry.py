"""A forced watch 410 during churn: while the ccm's tenant watch is away (the process is frozen with SIGSTOP),
Services are deleted for good (an admin strips the finalizer), one is recreated under the same name, others are
created and changed; the tenant etcd is compacted and its kube-apiserver restarted, so the ccm's watch cannot
resume and must relist. Nothing may be missed: parent Services of the deleted Services are removed, including
the old one of the recreated Service."""

from __future__ import annotations

import asyncio
from pathlib import Path

from e2e import cluster as harness
from kube.client import Client
from kube.resources import SERVICES
from lb.translate import parent_service_name
from tests.integration.etcd import compact_etcd
from tests.integration.reliability.components import ccm_component, stopped_at_exit
from tests.integration.reliability.conftest import ip_pool, lb_service, scenario_name, tenant_namespaces
from tests.integration.reliability.state import converge, in_namespaces, parent_services, service_problems

EXPIRED = "Informer(services): resourceVersion"


async def _delete_for_good(tenant: Client, namespace: str, name: str) -> None:
    """What an admin does when the ccm is not there to release a Service: strip the finalizer, delete it."""
    await tenant.patch(SERVICES, name, {"metadata": {"finalizers": None}}, namespace)
    await tenant.delete(SERVICES, name, namespace)


async def test_deletions_missed_by_an_expired_watch_are_found_by_the_relist(
    cluster: harness.Cluster, tenant_client: Client, parent_client: Client, tmp_path: Path
) -> None:
    name = scenario_name("expiry")
    # No leader election: a frozen leader would lose its Lease and exit, which is not what is tested here.
    ccm = ccm_component(cluster, tmp_path, "ccm", name, lease=f"{name}-ccm", leader_elect=False)
    async with (
        ip_pool(parent_client, name, [{"cidr": "100.74.0.0/24"}]),
        tenant_namespaces(tenant_client, parent_client, cluster, name, "expiry") as [namespace],
    ):
        only_ours = in_namespaces(namespace)
        with stopped_at_exit(ccm):
            ccm.start()
            for i in range(10):
                await tenant_client.create(SERVICES, lb_service(f"svc-{i}"), namespace)
            await converge(
                lambda: service_problems(tenant_client, parent_client, cluster, name, only_ours), 60, "setup"
            )
            reborn_before = await tenant_client.get(SERVICES, "svc-0", namespace)

            ccm.pause()
            try:
                for i in range(4):
                    await _delete_for_good(tenant_client, namespace, f"svc-{i}")
                reborn = await tenant_client.create(SERVICES, lb_service("svc-0", port=8443), namespace)
                for i in range(10, 13):
                    await tenant_client.create(SERVICES, lb_service(f"svc-{i}"), namespace)
                for i in (8, 9):
                    ports = [{"name": "http", "protocol": "TCP", "port": 90, "targetPort": 8080}]
                    await tenant_client.patch(SERVICES, f"svc-{i}", {"spec": {"ports": ports}}, namespace)
                await asyncio.to_thread(compact_etcd, cluster.tenant)
                await asyncio.to_thread(harness.restart_apiserver, cluster.dir, "tenant", 0.0)
            finally:
                ccm.resume()

            took = await converge(
                lambda: service_problems(tenant_client, parent_client, cluster, name, only_ours),
                90,
                "Services after the relist",
            )
            print(f"\nconverged {took:.1f}s after the frozen ccm was resumed against a compacted tenant")
            assert EXPIRED in ccm.log_text(), "the ccm's Service watch did not expire; nothing was tested"
        parents = {p["metadata"]["name"] for p in await parent_services(parent_client, cluster, name)}
        assert parent_service_name(reborn_before) not in parents
        assert parent_service_name(reborn) in parents
