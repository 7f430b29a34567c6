"""End-to-end scenarios: a harness of their own with the tenant's kube-controller-manager, and tenant-cloud deployed
as the charts deploy it (e2e.cluster.workloads: the ccm, our CSI controller with the real sidecars, the tenant's
snapshot-controller). Tests act only as a tenant user would (PVCs, pods bound to Nodes, Services, namespaces)
and assert what Kubernetes and the parent show.

Hooks for scenarios that also need the node side (mount, data, moving a pod): `tenant_nodes` (two Nodes,
initialised by the ccm), `e2e` (the harness, the deployed `stack` with its driver name and classes, clients).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from csi.app import resolve_node_id
from e2e import cluster as harness
from e2e.cluster import nodes, workloads
from kube.client import Client, Object
from kube.config import from_kubeconfig
from kube.errors import NotFound
from kube.resources import CSINODES, NAMESPACES, NODES, PERSISTENTVOLUMECLAIMS, PODS, SERVICEACCOUNTS

FIELD_MANAGER = "tenant-cloud-e2e"
NODE_NAMES = ("e2e-node-a", "e2e-node-b")
NODE_ID_ANNOTATION = "csi.volume.kubernetes.io/nodeid"
# What the chart's ccm waits before deleting the Node of a vanished VM; short, so node removal is quick.
DELETE_GRACE_PERIOD = 3


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in str(item.path):
            item.add_marker(pytest.mark.e2e)
            item.add_marker(pytest.mark.integration)


async def until(check: Callable[[], Awaitable[Any]], what: str, timeout: float = 60.0) -> Any:
    """Poll `check` until it returns something truthy, and return that; fail naming `what`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (result := await check()):
        assert loop.time() < deadline, f"not in {timeout:.0f}s: {what}"
        await asyncio.sleep(0.2)
    return result


async def gone(client: Client, resource: Any, name: str, namespace: str | None = None) -> bool:
    try:
        await client.get(resource, name, namespace)
    except NotFound:
        return True
    return False


@pytest.fixture(scope="package")
def e2e_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[harness.Cluster]:
    """A harness of its own, with kube-controller-manager; TENANT_CLOUD_E2E_DIR keeps it (and its logs) there."""
    keep = os.environ.get("TENANT_CLOUD_E2E_DIR")
    directory = Path(keep) if keep else tmp_path_factory.mktemp("e2e")
    running = harness.up(directory, "e2e", controller_manager=True)
    try:
        yield running
    finally:
        if not keep:
            harness.down(directory)


@pytest.fixture(scope="package")
def stack(e2e_cluster: harness.Cluster) -> workloads.Stack:
    """tenant-cloud deployed: its processes are stopped with the harness."""
    values = {"ccm": {"nodeLifecycle": {"deleteGracePeriod": DELETE_GRACE_PERIOD}}}
    return workloads.start(e2e_cluster, values=values)


@pytest.fixture(scope="package")
async def tenant(e2e_cluster: harness.Cluster) -> AsyncIterator[Client]:
    async with Client.from_config(from_kubeconfig(e2e_cluster.tenant_kubeconfig), FIELD_MANAGER) as client:
        yield client


@pytest.fixture(scope="package")
async def parent(e2e_cluster: harness.Cluster) -> AsyncIterator[Client]:
    async with Client.from_config(from_kubeconfig(e2e_cluster.parent_kubeconfig), FIELD_MANAGER) as client:
        yield client


@dataclass(frozen=True)
class E2E:
    """What a scenario acts through: the harness, what was deployed, and clients for both planes."""

    cluster: harness.Cluster
    stack: workloads.Stack
    tenant: Client
    parent: Client

    @property
    def parent_namespace(self) -> str:
        return self.cluster.parent_namespace


@pytest.fixture(scope="package")
def e2e(e2e_cluster: harness.Cluster, stack: workloads.Stack, tenant: Client, parent: Client) -> E2E:
    return E2E(e2e_cluster, stack, tenant, parent)


async def add_initialised_node(c: nodes.Clients, name: str, ip: str) -> Object:
    """A VM in the parent and its kubelet's Node in the tenant, once the ccm has initialised it."""
    await nodes.add_node(c, name, ips=[ip], zone="zone-a")

    async def initialised() -> Object | None:
        node = await c.tenant.get(NODES, name)
        taints = node["spec"].get("taints") or []
        ready = node["spec"].get("providerID") and not any(t["key"] == nodes.UNINITIALIZED["key"] for t in taints)
        return node if ready else None

    found: Object = await until(initialised, f"the ccm initialises Node {name}")
    return found


async def register_driver(tenant: Client, node: str, driver: str, parent_namespace: str) -> str:
    """What kubelet's plugin registration writes once node-driver-registrar announces the node plugin: the
    CSINode entry (owned by the Node) and the Node annotation, with the node ID our NodeGetInfo reports. For
    scenarios without the kubelet stand-in; with it, the stand-in registers the real node plugin itself."""
    node_id = await resolve_node_id(tenant, node, parent_namespace)
    owner = await tenant.get(NODES, node)
    await tenant.apply(
        CSINODES,
        {
            "metadata": {
                "name": node,
                "ownerReferences": [
                    {"apiVersion": "v1", "kind": "Node", "name": node, "uid": owner["metadata"]["uid"]}
                ],
            },
            "spec": {"drivers": [{"name": driver, "nodeID": node_id, "topologyKeys": None}]},
        },
        force=True,
    )
    annotation = json.dumps({driver: node_id})
    await tenant.patch(NODES, node, {"metadata": {"annotations": {NODE_ID_ANNOTATION: annotation}}})
    return node_id


@pytest.fixture(scope="package")
async def tenant_nodes(e2e_cluster: harness.Cluster, stack: workloads.Stack) -> AsyncIterator[list[str]]:
    """Two tenant Nodes (VMs in the parent), initialised by the ccm; node A, node B."""
    async with nodes.clients(e2e_cluster) as c:
        for index, name in enumerate(NODE_NAMES):
            await add_initialised_node(c, name, f"10.50.0.{index + 1}")
        yield list(NODE_NAMES)
        for name in NODE_NAMES:
            await nodes.ensure_absent(c, name)


@pytest.fixture
async def namespace(tenant: Client, stack: workloads.Stack) -> AsyncIterator[str]:
    """A fresh tenant namespace whose `default` ServiceAccount exists (pods need it); deleted afterwards."""
    name = f"e2e-{uuid.uuid4().hex[:6]}"
    await tenant.create(NAMESPACES, {"metadata": {"name": name}})

    async def has_default_account() -> bool:
        return not await gone(tenant, SERVICEACCOUNTS, "default", name)

    await until(has_default_account, "kube-controller-manager creates the default ServiceAccount")
    yield name
    with contextlib.suppress(NotFound):
        await tenant.delete(NAMESPACES, name)


def claim(name: str, storage_class: str, size: str = "1Gi", **spec: Any) -> Object:
    return {
        "metadata": {"name": name},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": storage_class,
            "resources": {"requests": {"storage": size}},
            **spec,
        },
    }


def pod_on(node: str, name: str, claim_name: str) -> Object:
    """A pod already bound to `node` (as the scheduler would leave it) that mounts the claim."""
    return {
        "metadata": {"name": name},
        "spec": {
            "nodeName": node,
            "automountServiceAccountToken": False,
            "terminationGracePeriodSeconds": 0,
            "containers": [
                {
                    "name": "app",
                    "image": "registry.k8s.io/pause:3.10",
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                }
            ],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim_name}}],
        },
    }


async def bound(tenant: Client, namespace: str, name: str) -> Object:
    """The claim once bound, by csi-provisioner's volume and kube-controller-manager's PV controller."""

    async def is_bound() -> Object | None:
        found = await tenant.get(PERSISTENTVOLUMECLAIMS, name, namespace)
        return found if (found.get("status") or {}).get("phase") == "Bound" else None

    found: Object = await until(is_bound, f"PVC {namespace}/{name} is bound")
    return found


async def delete_pod_now(tenant: Client, namespace: str, name: str) -> None:
    """No kubelet confirms the pod's termination, so delete it as a force delete does."""
    with contextlib.suppress(NotFound):
        await tenant.delete(PODS, name, namespace, grace_period_seconds=0)
