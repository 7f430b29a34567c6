"""Run a ccm in-process against the harness, with timings shortened for tests."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from ccm.app import CloudControllerManager, Options
from ccm.config import CloudConfig
from e2e import cluster as harness
from kube.leaderelection import LeaderElectionSettings

FAST_ELECTION = LeaderElectionSettings(lease_duration=3, renew_deadline=2, retry_period=0.5)


@contextlib.asynccontextmanager
async def running_ccm(
    cluster: harness.Cluster,
    cloud_config: dict[str, Any],
    *,
    cluster_name: str | None = None,
    tenant_kubeconfig: Path | None = None,
    lease_name: str = "cloud-controller-manager",
) -> AsyncIterator[CloudControllerManager]:
    config = CloudConfig.model_validate(
        {"kubeconfig": str(cluster.parent_kubeconfig), "namespace": cluster.parent_namespace, **cloud_config}
    )
    options = Options(
        cloud_config=config,
        tenant_kubeconfig=str(tenant_kubeconfig or cluster.tenant_kubeconfig),
        cluster_name=cluster_name or cluster.cluster_name,
        leader_election=FAST_ELECTION,
        lease_name=lease_name,
        health_bind="127.0.0.1:0",
        metrics_bind="127.0.0.1:0",
    )
    manager = CloudControllerManager(options)
    stop = asyncio.Event()
    task = asyncio.create_task(manager.run(stop))
    try:
        yield manager
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def eventually(condition: Callable[[], Awaitable[bool] | bool], timeout: float = 20.0) -> None:
    """Poll an async or sync condition until it is truthy."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)
