"""The ccm and the CSI driver SIGKILLed at random points mid-reconcile and started again: the same end state.

A seeded RNG (RELIABILITY_SEED, printed) picks, in each of several rounds, what to create, change and delete
and after how many parent changes the process dies; its successor (and, for CSI, the sidecars' retries of the
calls that were cut) must finish the work with nothing duplicated or orphaned in the parent.
"""

from __future__ import annotations

import asyncio
import functools
import os
import random
from pathlib import Path

import grpc

from csi.ids import node_id
from csi.parent import DATAVOLUMES, VIRTUALMACHINES
from e2e import cluster as harness
from kube.client import Client
from kube.resources import SERVICES
from tests.integration.reliability.components import (
    CLUSTER_LABEL,
    ccm_component,
    csi_component,
    stopped_at_exit,
)
from tests.integration.reliability.conftest import (
    STORAGE_CLASS,
    ip_pool,
    lb_service,
    scenario_name,
    scenario_vms,
    tenant_namespaces,
)
from tests.integration.reliability.history import ServiceHistory, Tally, informer, watching
from tests.integration.reliability.sidecars import Sidecar, sidecar
from tests.integration.reliability.state import converge, in_namespaces, service_problems, volume_problems

SEED = int(os.environ.get("RELIABILITY_SEED", "20261124"))
ROUNDS = 3


async def test_ccm_killed_mid_reconcile_converges_every_time(
    cluster: harness.Cluster, tenant_client: Client, parent_client: Client, tmp_path: Path
) -> None:
    rng = random.Random(SEED)
    name = scenario_name("kill-ccm")
    ccm = ccm_component(cluster, tmp_path, "ccm", name, lease=f"{name}-ccm")
    parents = informer(parent_client, SERVICES, cluster.parent_namespace, f"{CLUSTER_LABEL}={name}")
    async with (
        ip_pool(parent_client, name, [{"cidr": "100.72.0.0/24"}]),
        tenant_namespaces(tenant_client, parent_client, cluster, name, "kill-ccm") as [namespace],
    ):
        tenants = informer(tenant_client, SERVICES, namespace)
        tally, history = Tally(parents), ServiceHistory(parents, tenants)
        async with watching(parents, tenants):
            with stopped_at_exit(ccm):
                ccm.start()
                live: list[str] = []
                killed_after = []
                for round_ in range(ROUNDS):
                    created = [f"r{round_}-{i}" for i in range(10)]
                    deleted = rng.sample(live, min(4, len(live)))
                    changed = rng.sample([s for s in live if s not in deleted], min(3, len(live) - len(deleted)))
                    kill_after = rng.randint(1, len(created))
                    start = tally.count
                    for service in created:
                        await tenant_client.create(SERVICES, lb_service(service), namespace)
                    for service in deleted:
                        await tenant_client.delete(SERVICES, service, namespace)
                    for service in changed:
                        ports = [{"name": "http", "protocol": "TCP", "port": 81 + round_, "targetPort": 8080}]
                        await tenant_client.patch(SERVICES, service, {"spec": {"ports": ports}}, namespace)
                    await asyncio.wait_for(tally.until(start + kill_after), 60)
                    ccm.kill()
                    killed_after.append(tally.count - start)
                    ccm.start()
                    live = [s for s in live if s not in deleted] + created
                    await converge(
                        lambda: service_problems(tenant_client, parent_client, cluster, name, in_namespaces(namespace)),
                        90,
                        f"round {round_} (seed {SEED})",
                    )
                print(f"\nseed {SEED}: ccm killed after {killed_after} parent changes; {ccm.starts} starts")
        assert history.recreated() == {}
        assert history.unstable() == {}


async def _volume_flow(driver: Sidecar, volume: str, node: str) -> None:
    await driver.create(volume, STORAGE_CLASS)
    await driver.publish(volume, node)


async def _release_flow(driver: Sidecar, volume: str, node: str) -> None:
    await driver.unpublish(volume, node)
    await driver.delete(volume)


async def test_csi_killed_mid_operation_converges_every_time(
    cluster: harness.Cluster, parent_client: Client, parent_storage_class: str, enforcement: Path, tmp_path: Path
) -> None:
    rng = random.Random(SEED + 1)
    name = scenario_name("kill-csi")
    csi = csi_component(cluster, tmp_path, "csi", name, enforcement)
    selector = f"{CLUSTER_LABEL}={name}"
    dvs = informer(parent_client, DATAVOLUMES, cluster.parent_namespace, selector)
    vms = informer(parent_client, VIRTUALMACHINES, cluster.parent_namespace, selector)
    tally = Tally(dvs, vms)
    async with scenario_vms(cluster, name, 2) as machines, watching(dvs, vms):
        with stopped_at_exit(csi):
            csi.start()
            await csi.wait_ready()
            async with sidecar(csi.target) as driver:
                placed: dict[str, str] = {}
                killed_after = []
                for round_ in range(ROUNDS):
                    created = {f"pvc-{name}-{round_}-{i}": rng.choice(machines) for i in range(4)}
                    released = rng.sample(sorted(placed), min(2, len(placed)))
                    kill_after = rng.randint(1, len(created))
                    start = tally.count
                    calls = [
                        _volume_flow(driver, v, node_id(cluster.parent_namespace, vm)) for v, vm in created.items()
                    ] + [_release_flow(driver, v, node_id(cluster.parent_namespace, placed[v])) for v in released]
                    flows = [asyncio.create_task(call) for call in calls]
                    await asyncio.wait_for(tally.until(start + kill_after), 60)
                    csi.kill()
                    killed_after.append(tally.count - start)
                    csi.start()
                    await asyncio.gather(*flows)  # the sidecars retry what the kill cut off
                    placed = {v: vm for v, vm in placed.items() if v not in released} | created
                    attached = {vm: {v for v, on in placed.items() if on == vm} for vm in machines}
                    await converge(
                        functools.partial(volume_problems, parent_client, cluster, name, set(placed), attached),
                        90,
                        f"round {round_} (seed {SEED + 1})",
                    )
                cut = [what for what, code, _ in driver.seen if code == grpc.StatusCode.UNAVAILABLE]
                print(f"\nseed {SEED + 1}: csi killed after {killed_after} parent changes; {len(cut)} calls retried")
                assert cut, "no call was in flight when the driver died"
