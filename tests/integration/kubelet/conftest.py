"""Two tenant nodes with a kubelet stand-in each (node A as its own process, node B in-process), our CSI
controller service in-process, and a namespace whose pods are all gone before the stand-ins stop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from csi._proto import csi_pb2_grpc
from e2e import cluster as harness
from e2e.cluster import nodes
from e2e.kubelet.harness import settings_for, start, stop, unmount_leftovers
from e2e.kubelet.manager import VolumeManager
from kube.client import Client
from kube.errors import AlreadyExists, NotFound
from kube.resources import CSINODES, NAMESPACES, PODS, SERVICEACCOUNTS, STORAGECLASSES
from tests.integration.csi.conftest import driver_config, parent_storage, running_driver
from tests.integration.kubelet.actors import DRIVER, STORAGE_CLASS, wait_gone

__all__ = ["parent_storage"]  # a fixture these tests use, defined with the CSI tests

NAMESPACE = "kubelet-e2e"
NODE_A, NODE_B = "kubelet-a", "kubelet-b"


@dataclass
class StandIns:
    cluster: harness.Cluster
    a: harness.Process
    b: VolumeManager | None

    async def stop_a(self) -> None:
        """Stop node A's stand-in; like kubelet, it leaves every mount in place."""
        await asyncio.to_thread(stop, self.cluster, self.a)

    async def start_a(self) -> None:
        self.a = await asyncio.to_thread(start, self.cluster, NODE_A)


@pytest.fixture(scope="module")
async def namespace(tenant_client: Client) -> str:
    """A namespace with its `default` ServiceAccount (kube-controller-manager would create it) and the class of
    the test's claims (the API only lets claims of an expandable class grow)."""
    storage_class = {
        "metadata": {"name": STORAGE_CLASS},
        "provisioner": DRIVER,
        "allowVolumeExpansion": True,
        "volumeBindingMode": "Immediate",
    }
    for resource, body in (
        (NAMESPACES, {"metadata": {"name": NAMESPACE}}),
        (SERVICEACCOUNTS, {"metadata": {"name": "default", "namespace": NAMESPACE}}),
        (STORAGECLASSES, storage_class),
    ):
        with contextlib.suppress(AlreadyExists):
            await tenant_client.create(resource, body)
    return NAMESPACE


@pytest.fixture(scope="module")
async def tenant_nodes(cluster: harness.Cluster, tenant_client: Client) -> AsyncIterator[tuple[str, str]]:
    async with nodes.clients(cluster) as c:
        for name in (NODE_A, NODE_B):
            await nodes.ensure_absent(c, name)
            await nodes.add_node(c, name, ips=["10.40.0.1"])
        yield NODE_A, NODE_B
        for name in (NODE_A, NODE_B):
            await nodes.ensure_absent(c, name)
            with contextlib.suppress(NotFound):
                await tenant_client.delete(CSINODES, name)  # no garbage collector without kube-controller-manager


@pytest.fixture(scope="module")
async def controller(cluster: harness.Cluster, parent_storage: str) -> AsyncIterator[Any]:
    """Our CSI controller service, as the sidecars would call it."""
    config = driver_config(cluster, provision_timeout=20.0, attach_timeout=20.0)
    async with (
        running_driver(cluster, config) as driver,
        grpc.aio.insecure_channel(f"127.0.0.1:{driver.port}") as channel,
    ):
        yield csi_pb2_grpc.ControllerStub(channel)


@pytest.fixture(scope="module")
async def stand_ins(
    cluster: harness.Cluster, tenant_client: Client, tenant_nodes: tuple[str, str], namespace: str
) -> AsyncIterator[StandIns]:
    running = StandIns(cluster, await asyncio.to_thread(start, cluster, NODE_A), None)
    try:
        async with VolumeManager(await settings_for(cluster, tenant_client, NODE_B)) as running.b:
            try:
                yield running
            finally:
                await _delete_pods(tenant_client, namespace)
    finally:
        await asyncio.to_thread(stop, cluster, running.a)
        unmount_leftovers(cluster)


async def _delete_pods(tenant: Client, namespace: str) -> None:
    """Pods of a failed test: their stand-in tears their volumes down and deletes them."""
    for pod in (await tenant.list(PODS, namespace)).items:
        with contextlib.suppress(NotFound):
            await tenant.delete(PODS, pod["metadata"]["name"], namespace)
        with contextlib.suppress(TimeoutError):
            await wait_gone(tenant, PODS, pod["metadata"]["name"], namespace, 30)
