"""End-to-end scenarios: a harness of their own with the tenant's kube-controller-manager, and tenant-cloud deployed
as the charts deploy it (e2e.cluster.workloads: the ccm, our CSI controller with the real sidecars, the tenant's
snapshot-controller). Tests act only as a tenant user would (PVCs, pods bound to Nodes, Services, namespaces)
and assert what Kubernetes and the parent show.

The node side is the kubelet stand-in (e2e.kubelet): `tenant_nodes` are two Nodes initialised by the ccm, each
with a stand-in running our CSI node plugin on its VM's hot-plugged disks, which registers the driver on the
Node, mounts the volumes of its pods and reports them Running. `e2e` has the harness, the deployed `stack`
(driver name, classes) and clients for both planes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from csi.node.mountinfo import MountInfo, MountTable, mount_at
from e2e import cluster as harness
from e2e.cluster import nodes, workloads
from e2e.kubelet import harness as stand_in
from e2e.kubelet.paths import KubeletPaths
from kube.client import Client, Object
from kube.config import from_kubeconfig
from kube.errors import NotFound
from kube.informer import wait_for_object
from kube.resources import NAMESPACES, NODES, PERSISTENTVOLUMECLAIMS, PODS, SERVICEACCOUNTS, Resource

FIELD_MANAGER = "tenant-cloud-e2e"
NODE_NAMES = ("e2e-node-a", "e2e-node-b")
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


async def watch_until(
    client: Client,
    resource: Resource,
    name: str,
    namespace: str | None,
    condition: Callable[[Object], bool],
    what: str,
    timeout: float = 60.0,
) -> Object:
    """Watch one object until `condition` holds, and return it; fail naming `what`."""
    found = await wait_for_object(client, resource, name, namespace, condition, timeout)
    assert found is not None, f"not in {timeout:.0f}s: {what}"
    return found


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


async def start_kubelet(cluster: harness.Cluster, node: str, driver: str) -> harness.Process:
    """The node's kubelet stand-in, once it has registered our node plugin on the Node (CSINode, node ID)."""
    return await asyncio.to_thread(stand_in.start, cluster, node, driver=driver)


async def stop_kubelet(cluster: harness.Cluster, process: harness.Process) -> None:
    """Stop a stand-in; like kubelet, it leaves what it mounted in place."""
    await asyncio.to_thread(stand_in.stop, cluster, process)


@pytest.fixture(scope="package")
async def tenant_nodes(e2e_cluster: harness.Cluster, stack: workloads.Stack) -> AsyncIterator[list[str]]:
    """Two tenant Nodes (VMs in the parent), initialised by the ccm, each with its kubelet stand-in; node A,
    node B. Afterwards the stand-ins stop, what they left mounted is unmounted and the Nodes go."""
    if os.geteuid() != 0:
        pytest.skip("the node plugin needs root for loop devices and mounts")
    kubelets: list[harness.Process] = []
    async with nodes.clients(e2e_cluster) as c:
        try:
            for index, name in enumerate(NODE_NAMES):
                await add_initialised_node(c, name, f"10.50.0.{index + 1}")
                kubelets.append(await start_kubelet(e2e_cluster, name, stack.driver_name))
            yield list(NODE_NAMES)
        finally:
            for process in kubelets:
                await stop_kubelet(e2e_cluster, process)
            stand_in.unmount_leftovers(e2e_cluster)
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


def pod_on(node: str, name: str, claim_name: str, *, block: bool = False) -> Object:
    """A pod already bound to `node` (as the scheduler would leave it) that mounts the claim, or, for a `block`
    claim, gets it as a device."""
    use = (
        {"volumeDevices": [{"name": "data", "devicePath": "/dev/data"}]}
        if block
        else {"volumeMounts": [{"name": "data", "mountPath": "/data"}]}
    )
    return {
        "metadata": {"name": name},
        "spec": {
            "nodeName": node,
            "automountServiceAccountToken": False,
            "terminationGracePeriodSeconds": 0,
            "containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10", **use}],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim_name}}],
        },
    }


def is_running(pod: Object) -> bool:
    status = pod.get("status") or {}
    ready = {c["type"]: c["status"] for c in status.get("conditions") or []}
    return status.get("phase") == "Running" and ready.get("Ready") == "True"


async def running(tenant: Client, namespace: str, name: str, timeout: float = 90.0) -> Object:
    """The pod once the node's kubelet stand-in has mounted its volumes and reported it Running and Ready."""
    return await watch_until(tenant, PODS, name, namespace, is_running, f"pod {namespace}/{name} runs", timeout)


def node_paths(cluster: harness.Cluster, node: str) -> KubeletPaths:
    """kubelet's directories on `node` (its stand-in's root)."""
    return KubeletPaths(stand_in.kubelet_root(cluster, node))


def pod_mount(cluster: harness.Cluster, node: str, pod: Object, pv: str) -> Path:
    """Where kubelet publishes a filesystem volume for the pod: what its containers see at their mountPath."""
    return node_paths(cluster, node).pod_volume_dir(str(pod["metadata"]["uid"]), pv) / "mount"


def pod_device(cluster: harness.Cluster, node: str, pod: Object, pv: str) -> Path:
    """Where kubelet publishes a block volume for the pod: the device its containers get."""
    return node_paths(cluster, node).block_publish_dir(pv) / str(pod["metadata"]["uid"])


def mounted(path: Path) -> MountInfo | None:
    return mount_at(MountTable().entries(), path)


async def bound(tenant: Client, namespace: str, name: str) -> Object:
    """The claim once bound, by csi-provisioner's volume and kube-controller-manager's PV controller."""

    async def is_bound() -> Object | None:
        found = await tenant.get(PERSISTENTVOLUMECLAIMS, name, namespace)
        return found if (found.get("status") or {}).get("phase") == "Bound" else None

    found: Object = await until(is_bound, f"PVC {namespace}/{name} is bound")
    return found


async def delete_pod_now(tenant: Client, namespace: str, name: str) -> None:
    """Delete with grace 0, as a force delete does: the pod is gone from the API at once, and its node's kubelet
    stand-in, if any, unpublishes and unstages its volumes from what it finds on disk, as kubelet does."""
    with contextlib.suppress(NotFound):
        await tenant.delete(PODS, name, namespace, grace_period_seconds=0)
