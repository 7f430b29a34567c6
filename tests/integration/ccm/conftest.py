"""A ccm running in-process against the harness, with timings shortened for tests."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from ccm.app import CloudControllerManager, Options
from ccm.config import CloudConfig
from e2e import cluster as harness
from e2e.cluster import nodes
from kube.leaderelection import LeaderElectionSettings

GRACE = 1.0


@pytest.fixture(scope="module")
async def ccm(cluster: harness.Cluster) -> AsyncIterator[CloudControllerManager]:
    config = CloudConfig.model_validate(
        {
            "kubeconfig": str(cluster.parent_kubeconfig),
            "namespace": cluster.parent_namespace,
            "nodeLifecycle": {"deleteGracePeriod": GRACE},
        }
    )
    options = Options(
        cloud_config=config,
        tenant_kubeconfig=str(cluster.tenant_kubeconfig),
        cluster_name=cluster.cluster_name,
        leader_election=LeaderElectionSettings(lease_duration=3, renew_deadline=2, retry_period=0.5),
        health_bind="127.0.0.1:0",
        metrics_bind="127.0.0.1:0",
    )
    manager = CloudControllerManager(options)
    stop = asyncio.Event()
    task = asyncio.create_task(manager.run(stop))
    yield manager
    stop.set()
    await asyncio.wait_for(task, 30)


@pytest.fixture
async def c(cluster: harness.Cluster) -> AsyncIterator[nodes.Clients]:
    async with nodes.clients(cluster) as clients:
        yield clients


@pytest.fixture
async def node_name(c: nodes.Clients) -> AsyncIterator[str]:
    """A fresh node name with dots in it (upstream rejects those); cleaned up after the test."""
    name = f"worker.{uuid.uuid4().hex[:6]}.example"
    yield name
    await nodes.ensure_absent(c, name)


async def eventually(condition: Callable[[], Awaitable[bool] | bool], timeout: float = 10.0) -> None:
    """Poll an async or sync condition until it is truthy."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)
