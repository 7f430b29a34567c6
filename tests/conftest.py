"""Shared fixtures. Integration tests share one real parent + tenant harness for the whole run."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from e2e import cluster as harness
from kube.client import Client
from kube.config import from_kubeconfig

# Fails the run when a credential appears in any log line of the suite (see tests/logscan.py).
pytest_plugins = ["tests.logscan"]


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[harness.Cluster]:
    """The harness; TENANT_CLOUD_HARNESS_DIR reuses one already started with `python -m e2e.cluster up`."""
    reuse = os.environ.get("TENANT_CLOUD_HARNESS_DIR")
    if reuse and (Path(reuse) / harness.STATE_FILE).exists():
        yield harness.load(reuse)
        return
    directory = tmp_path_factory.mktemp("harness")
    running = harness.up(directory, "test")
    try:
        yield running
    finally:
        harness.down(directory)


@pytest.fixture(scope="session")
async def parent_client(cluster: harness.Cluster) -> AsyncIterator[Client]:
    """Our own client, as cluster-admin on the parent."""
    async with Client.from_config(from_kubeconfig(cluster.parent_kubeconfig), "tenant-cloud-tests") as api:
        yield api


@pytest.fixture(scope="session")
async def tenant_client(cluster: harness.Cluster) -> AsyncIterator[Client]:
    """Our own client, as cluster-admin on the tenant."""
    async with Client.from_config(from_kubeconfig(cluster.tenant_kubeconfig), "tenant-cloud-tests") as api:
        yield api
