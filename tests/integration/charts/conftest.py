"""The parent chart installed for real in the harness's parent namespace, and a client acting as its
ServiceAccount (a bound token, as the tenant would hold). Everything made here is removed afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from e2e import cluster as harness
from e2e import helm
from e2e.cluster.identities import service_account_kubeconfig
from kube.client import Client, Object
from kube.config import from_kubeconfig
from kube.errors import ApiError, Forbidden, NotFound
from kube.resources import SERVICES, STORAGECLASSES, Resource

FIELD_MANAGER = "tenant-cloud-charts-tests"
SERVICE_ACCOUNT = "tenant-cloud-charts-tests"
CLUSTER_LABEL = "cluster.x-k8s.io/cluster-name"
STORAGE_CLASS = "linstor-charts"
SNAPSHOT_CLASS = "linstor-charts-snapshots"
LB_CLASS = "io.cilium/l2-announcer"
ALLOWED_V4, ALLOWED_V6 = "203.0.113.128/25", "fd00:203:113::/112"
MAX_VOLUME = "4Gi"
SNAPSHOT_CLASSES = Resource(
    "snapshot.storage.k8s.io", "v1", "volumesnapshotclasses", "VolumeSnapshotClass", namespaced=False
)


def parent_values(cluster: harness.Cluster) -> dict[str, Any]:
    """The platform's view of the harness's tenant: selectorless LBs, one LINSTOR class, a size cap."""
    return {
        "clusterName": cluster.cluster_name,
        "serviceAccount": {"name": SERVICE_ACCOUNT},
        "ccm": {"selectorless": True},
        "policies": {
            "loadBalancer": {"allowNoClass": True, "classes": [LB_CLASS], "allowedIPRanges": [ALLOWED_V4, ALLOWED_V6]},
            "storage": {
                "allowedStorageClasses": [STORAGE_CLASS],
                "allowDefaultStorageClass": False,
                "maxVolumeSize": MAX_VOLUME,
            },
        },
    }


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def denial(request: Awaitable[Any]) -> str:
    """The message of a request a ValidatingAdmissionPolicy refused."""
    with pytest.raises(Forbidden) as refused:
        await request
    message = refused.value.message
    assert "ValidatingAdmissionPolicy" in message, message
    return message


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        assert loop.time() < deadline, "not in time"
        await asyncio.sleep(0.2)


@pytest.fixture(scope="package")
async def parent_storage(parent_client: Client) -> AsyncIterator[str]:
    """A LINSTOR-like class the CDI simulator provisions and expands, and its snapshot class."""
    await parent_client.apply(
        STORAGECLASSES,
        {
            "metadata": {"name": STORAGE_CLASS},
            "provisioner": "linstor.csi.linbit.com",
            "allowVolumeExpansion": True,
            "reclaimPolicy": "Delete",
            "volumeBindingMode": "Immediate",
        },
        force=True,
    )
    await parent_client.apply(
        SNAPSHOT_CLASSES,
        {"metadata": {"name": SNAPSHOT_CLASS}, "driver": "linstor.csi.linbit.com", "deletionPolicy": "Delete"},
        force=True,
    )
    yield STORAGE_CLASS
    for resource, name in ((SNAPSHOT_CLASSES, SNAPSHOT_CLASS), (STORAGECLASSES, STORAGE_CLASS)):
        with contextlib.suppress(NotFound):
            await parent_client.delete(resource, name)


@pytest.fixture(scope="package")
def parent_release(cluster: harness.Cluster) -> Any:
    """The parent chart, applied server-side to the parent as the platform would; removed at the end."""
    text = helm.template_text(helm.PARENT_CHART, namespace=cluster.parent_namespace, values=parent_values(cluster))
    apply = ["apply", "--server-side", f"--field-manager={FIELD_MANAGER}", "--force-conflicts", "-f", "-"]
    cluster.kubectl_run("parent", *apply, stdin=text)
    yield helm.template(helm.PARENT_CHART, namespace=cluster.parent_namespace, values=parent_values(cluster))
    cluster.kubectl_run("parent", "delete", "--ignore-not-found", "--wait=false", "-f", "-", stdin=text)


@pytest.fixture(scope="package")
def sa_kubeconfig(cluster: harness.Cluster, parent_release: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("charts") / "parent-sa.kubeconfig"
    return service_account_kubeconfig(cluster, "parent", cluster.parent_namespace, SERVICE_ACCOUNT, out, create=False)


def our_service(cluster: harness.Cluster, name: str | None = None, **spec: Any) -> Object:
    labels = spec.pop("labels", {CLUSTER_LABEL: cluster.cluster_name})
    annotations = spec.pop("annotations", {})
    return {
        "metadata": {"name": name or "a" + uuid.uuid4().hex[:31], "labels": labels, "annotations": annotations},
        "spec": {
            "type": "LoadBalancer",
            "allocateLoadBalancerNodePorts": False,
            "selector": {CLUSTER_LABEL: cluster.cluster_name, "cluster.x-k8s.io/role": "worker"},
            "ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 30080}],
            **spec,
        },
    }


@pytest.fixture(scope="package")
async def as_tenant(cluster: harness.Cluster, sa_kubeconfig: Path, parent_client: Client) -> AsyncIterator[Client]:
    """Our client as the chart's ServiceAccount, once its RBAC and policies are in force."""
    async with Client.from_config(from_kubeconfig(sa_kubeconfig), "tenant-cloud-ccm") as client:
        ns = cluster.parent_namespace
        # The apiserver loads each policy on its own; the ownership policy guards deletes and is applied last.
        probe = await parent_client.create(SERVICES, our_service(cluster, labels={CLUSTER_LABEL: "probe"}), ns)

        async def owned_only() -> bool:
            try:
                await client.delete(SERVICES, probe["metadata"]["name"], ns, dry_run=True)
            except ApiError as error:
                return "ValidatingAdmissionPolicy" in error.message
            return False

        async def enforced() -> bool:
            unlabeled = our_service(cluster, labels={})
            try:
                await client.create(SERVICES, unlabeled, ns, dry_run=True)
            except ApiError as error:
                return "ValidatingAdmissionPolicy" in error.message
            return False

        async def allowed() -> bool:
            try:
                await client.create(SERVICES, our_service(cluster), ns, dry_run=True)
            except ApiError:
                return False
            return True

        try:
            await until(enforced)
            await until(allowed)
            await until(owned_only)
        finally:
            await parent_client.delete(SERVICES, probe["metadata"]["name"], ns)
        yield client
