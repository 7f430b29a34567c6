"""Load: LoadBalancer Services and volumes created, changed and deleted while the ccm is restarted twice (once
SIGKILLed mid-creation, once stopped gracefully mid-change). At the end the parent holds exactly what should
exist. Reports the duration and the peak RSS of the ccm and CSI processes.

The CI run uses 100 Services and 20 volumes; `pytest -m long` (`make test-long`) runs 1000 and 200.
"""

from __future__ import annotations

import asyncio
import functools
import json
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from csi.ids import node_id
from e2e import cluster as harness
from e2e.bench.common import bounded, mib
from kube.client import Client
from kube.resources import SERVICES
from tests.integration.reliability.components import (
    CLUSTER_LABEL,
    ccm_component,
    csi_component,
    sample_rss,
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
from tests.integration.reliability.history import Tally, informer, watching
from tests.integration.reliability.sidecars import GIB, Sidecar, sidecar
from tests.integration.reliability.state import converge, in_namespaces, service_problems, volume_problems

VMS = 4
CONCURRENCY = 32


@dataclass
class Plan:
    """What the run does to each Service and volume, and so what must exist at the end."""

    services: list[str]
    volumes: list[str]
    vms: list[str]

    def service_fate(self, index: int) -> str:
        return ("delete", "clusterip", "change", "change", "keep")[index % 5]

    def volume_fate(self, index: int) -> str:
        return ("delete", "expand-detach", "move", "keep", "detach")[index % 5]

    def first_vm(self, index: int) -> str:
        return self.vms[index % len(self.vms)]

    def final_vm(self, index: int) -> str | None:
        fate = self.volume_fate(index)
        if fate in ("delete", "expand-detach", "detach"):
            return None
        return self.vms[(index + 1) % len(self.vms)] if fate == "move" else self.first_vm(index)

    def attached(self) -> dict[str, set[str]]:
        placed = {vm: set[str]() for vm in self.vms}
        for index, volume in enumerate(self.volumes):
            vm = self.final_vm(index)
            if vm is not None:
                placed[vm].add(volume)
        return placed

    def remaining_volumes(self) -> set[str]:
        return {v for i, v in enumerate(self.volumes) if self.volume_fate(i) != "delete"}


async def _services_workload(tenant: Client, namespace: str, plan: Plan, changing: asyncio.Event) -> None:
    names = plan.services
    await bounded([tenant.create(SERVICES, lb_service(n), namespace) for n in names], CONCURRENCY)
    changing.set()
    ports = [
        {"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080},
        {"name": "dns", "protocol": "UDP", "port": 53, "targetPort": 5353},
    ]
    changes = []
    for index, name in enumerate(names):
        fate = plan.service_fate(index)
        if fate == "change":
            changes.append(tenant.patch(SERVICES, name, {"spec": {"ports": ports}}, namespace))
        elif fate == "clusterip":
            changes.append(tenant.patch(SERVICES, name, {"spec": {"type": "ClusterIP"}}, namespace))
    await bounded(changes, CONCURRENCY)
    deletes = [tenant.delete(SERVICES, n, namespace) for i, n in enumerate(names) if plan.service_fate(i) == "delete"]
    await bounded(deletes, CONCURRENCY)


async def _volume_lifecycle(driver: Sidecar, cluster: harness.Cluster, plan: Plan, index: int) -> None:
    volume, fate = plan.volumes[index], plan.volume_fate(index)
    first = node_id(cluster.parent_namespace, plan.first_vm(index))
    await driver.create(volume, STORAGE_CLASS)
    await driver.publish(volume, first)
    if fate == "expand-detach":
        await driver.expand(volume, 2 * GIB)
    if fate in ("delete", "expand-detach", "detach", "move"):
        await driver.unpublish(volume, first)
    if fate == "move":
        await driver.publish(volume, node_id(cluster.parent_namespace, str(plan.final_vm(index))))
    if fate == "delete":
        await driver.delete(volume)


async def run_load(
    cluster: harness.Cluster,
    tenant: Client,
    parent: Client,
    workdir: Path,
    enforcement: Path,
    services: int,
    volumes: int,
    cidr: str,
) -> dict[str, float]:
    name = scenario_name("load")
    ccm = ccm_component(cluster, workdir, "ccm", name, lease=f"{name}-ccm")
    csi = csi_component(cluster, workdir, "csi", name, enforcement)
    parents = informer(parent, SERVICES, cluster.parent_namespace, f"{CLUSTER_LABEL}={name}")
    tally = Tally(parents)
    async with (
        ip_pool(parent, name, [{"cidr": cidr}]),
        tenant_namespaces(tenant, parent, cluster, name, "load") as [namespace],
        scenario_vms(cluster, name, VMS) as vms,
        watching(parents),
    ):
        plan = Plan([f"svc-{i:04d}" for i in range(services)], [f"pvc-{name}-{i:04d}" for i in range(volumes)], vms)
        with stopped_at_exit(ccm, csi):
            sampler = asyncio.create_task(sample_rss([ccm, csi]))
            ccm.start()
            csi.start()
            await csi.wait_ready()
            started = time.monotonic()
            async with sidecar(csi.target) as driver:
                changing = asyncio.Event()
                workloads = asyncio.gather(
                    _services_workload(tenant, namespace, plan, changing),
                    bounded([_volume_lifecycle(driver, cluster, plan, i) for i in range(volumes)], 8),
                )
                await asyncio.wait_for(tally.until(services // 3), 600)
                ccm.kill()  # mid-creation, no goodbye
                ccm.start()
                await changing.wait()
                ccm.stop()  # mid-change, a rolling update's graceful stop
                ccm.start()
                await workloads
                workloads_done = time.monotonic() - started
                only_ours = in_namespaces(namespace)
                await converge(
                    functools.partial(service_problems, tenant, parent, cluster, name, only_ours),
                    max(180.0, services * 0.5),
                    "Services under load",
                )
                await converge(
                    functools.partial(
                        volume_problems, parent, cluster, name, plan.remaining_volumes(), plan.attached()
                    ),
                    180,
                    "volumes under load",
                )
                total = time.monotonic() - started
            sampler.cancel()
            await asyncio.gather(sampler, return_exceptions=True)
            for component in (ccm, csi):
                component.sample_rss()
    figures = {
        "services": services,
        "volumes": volumes,
        "ccm_starts": ccm.starts,
        "workload_seconds": round(workloads_done, 1),
        "converged_seconds": round(total, 1),
        "ccm_peak_rss_bytes": ccm.peak_rss,
        "csi_peak_rss_bytes": csi.peak_rss,
    }
    print(
        f"\n{services} Services and {volumes} volumes created, changed and deleted with the ccm restarted twice: "
        f"workload {workloads_done:.1f}s, all converged after {total:.1f}s; peak RSS ccm {mib(ccm.peak_rss)}, "
        f"csi {mib(csi.peak_rss)}\n{json.dumps({'reliability': 'load', **figures})}"
    )
    return figures


@pytest.mark.parametrize(
    ("services", "volumes", "cidr"),
    [
        pytest.param(100, 20, "100.76.0.0/24", id="ci"),
        pytest.param(1000, 200, "100.77.0.0/20", id="full", marks=pytest.mark.long),
    ],
)
async def test_load_with_two_ccm_restarts(
    cluster: harness.Cluster,
    tenant_client: Client,
    parent_client: Client,
    parent_storage_class: str,
    enforcement: Path,
    tmp_path: Path,
    services: int,
    volumes: int,
    cidr: str,
) -> None:
    figures = await run_load(cluster, tenant_client, parent_client, tmp_path, enforcement, services, volumes, cidr)
    assert figures["ccm_starts"] == 3
