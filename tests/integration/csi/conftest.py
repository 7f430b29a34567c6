"""The CSI driver running in-process against the harness (parent + KubeVirt/CDI/snapshot simulators)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from csi._proto import csi_pb2_grpc
from csi.app import Driver, Options
from csi.config import DriverConfig, Enforcement
from csi.linstor.settings import LinstorSettings
from e2e import cluster as harness
from e2e.cluster import nodes
from kube.client import Client
from kube.errors import NotFound
from kube.resources import STORAGECLASSES, Resource

SNAPSHOT_CLASSES = Resource(
    "snapshot.storage.k8s.io", "v1", "volumesnapshotclasses", "VolumeSnapshotClass", namespaced=False
)
PARENT_CLASS = "linstor-test"
SNAPSHOT_CLASS = "linstor-test-snapshots"
CLUSTER_LABEL = "cluster.x-k8s.io/cluster-name"


@pytest.fixture(scope="session")
async def parent_storage(parent_client: Client) -> AsyncIterator[str]:
    """A LINSTOR-like StorageClass and VolumeSnapshotClass on the parent, as the platform has them."""
    await parent_client.apply(
        STORAGECLASSES,
        {
            "metadata": {"name": PARENT_CLASS},
            "provisioner": "linstor.csi.linbit.com",
            "allowVolumeExpansion": True,
            "reclaimPolicy": "Delete",
            "volumeBindingMode": "Immediate",
            "parameters": {"linstor.csi.linbit.com/placementCount": "2", "linstor.csi.linbit.com/storagePool": "data"},
        },
        force=True,
    )
    await parent_client.apply(
        SNAPSHOT_CLASSES,
        {
            "metadata": {"name": SNAPSHOT_CLASS},
            "driver": "linstor.csi.linbit.com",
            "deletionPolicy": "Delete",
        },
        force=True,
    )
    yield PARENT_CLASS


def driver_config(cluster: harness.Cluster, **overrides: Any) -> DriverConfig:
    settings: dict[str, Any] = {
        "driver_name": "csi.tenant-cloud.io",
        "namespace": cluster.parent_namespace,
        "labels": {CLUSTER_LABEL: cluster.cluster_name},
        "enforcement": Enforcement.model_validate(
            {
                "allowAll": False,
                "allowDefault": True,
                "allowList": [PARENT_CLASS],
                "storageSnapshotMapping": [
                    {"storageClasses": [PARENT_CLASS], "volumeSnapshotClasses": [SNAPSHOT_CLASS]}
                ],
            }
        ),
        "attach_timeout": 10.0,
        "provision_timeout": 10.0,
    }
    return DriverConfig(**(settings | overrides))


@contextlib.asynccontextmanager
async def running_driver(
    cluster: harness.Cluster,
    config: DriverConfig,
    *,
    node: bool = False,
    node_id: str = "",
    by_id_root: Path | None = None,
    linstor: LinstorSettings | None = None,
) -> AsyncIterator[Driver]:
    options = Options(
        config=config,
        endpoint="tcp://127.0.0.1:0",
        parent_kubeconfig=str(cluster.parent_kubeconfig),
        tenant_kubeconfig=str(cluster.tenant_kubeconfig),
        run_controller=True,
        run_node=node,
        node_id=node_id,
        by_id_root=by_id_root or Path("/nonexistent"),
        health_bind="127.0.0.1:0",
        metrics_bind="0",
        linstor=linstor,
    )
    driver = Driver(options)
    stop, started = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(driver.run(stop, started))
    await asyncio.wait([task, asyncio.create_task(started.wait())], return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()
    assert driver.parent is not None
    await asyncio.gather(*(i.wait_synced(15) for i in driver.parent.informers))
    try:
        yield driver
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


@pytest.fixture(scope="module")
async def driver(cluster: harness.Cluster, parent_storage: str) -> AsyncIterator[Driver]:
    async with running_driver(cluster, driver_config(cluster)) as running:
        yield running


@pytest.fixture(scope="module")
async def controller(driver: Driver) -> AsyncIterator[Any]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{driver.port}") as channel:
        yield csi_pb2_grpc.ControllerStub(channel)


@pytest.fixture(scope="module")
async def vms(cluster: harness.Cluster) -> AsyncIterator[list[str]]:
    """Two running tenant-node VMs of this cluster in the parent."""
    names = ["csi-vm-a", "csi-vm-b"]
    async with nodes.clients(cluster) as c:
        for name in names:
            await nodes.ensure_absent(c, name)
            await nodes.add_node(c, name, ips=["10.30.0.1"], register=False)
        yield names
        for name in names:
            with contextlib.suppress(NotFound):
                await nodes.remove_node(c, name)
