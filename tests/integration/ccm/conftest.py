"""A ccm (node controllers only) running in-process against the harness for the node tests."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from ccm.app import CloudControllerManager
from e2e import cluster as harness
from e2e.cluster import nodes
from tests.integration.ccm_runner import running_ccm

GRACE = 1.0


@pytest.fixture(scope="module")
async def ccm(cluster: harness.Cluster) -> AsyncIterator[CloudControllerManager]:
    config = {"nodeLifecycle": {"deleteGracePeriod": GRACE}, "loadBalancer": {"enabled": False}}
    async with running_ccm(cluster, config) as manager:
        yield manager


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
