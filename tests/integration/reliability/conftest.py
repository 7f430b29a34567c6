"""Fixtures for the reliability suite: parent storage, LB-IPAM pools, VMs and tenant namespaces per scenario,
each cleaned up whatever the test did to the processes it ran."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from csi.parent import DATAVOLUMES
from e2e import cluster as harness
from e2e.cluster import nodes
from kube.client import Client, Object
from kube.errors import AlreadyExists, NotFound
from kube.resources import NAMESPACES, SERVICES, STORAGECLASSES, Resource
from lb.translate import FINALIZER
from tests.integration.reliability.components import CLUSTER_LABEL

POOLS = Resource("cilium.io", "v2", "ciliumloadbalancerippools", "CiliumLoadBalancerIPPool", namespaced=False)
STORAGE_CLASS = "reliability-linstor"
# Allowed by the driver's enforcement but absent from the parent until a test creates it.
LATE_STORAGE_CLASS = "reliability-linstor-late"


def storage_class_body(name: str) -> Object:
    return {
        "metadata": {"name": name},
        "provisioner": "linstor.csi.linbit.com",
        "allowVolumeExpansion": True,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "Immediate",
    }


@pytest.fixture(scope="session")
async def parent_storage_class(parent_client: Client) -> AsyncIterator[str]:
    await parent_client.apply(STORAGECLASSES, storage_class_body(STORAGE_CLASS), force=True)
    yield STORAGE_CLASS
    with contextlib.suppress(NotFound):
        await parent_client.delete(STORAGECLASSES, STORAGE_CLASS)


def enforcement_file(directory: Path) -> Path:
    """The driver's storage-class enforcement: our two classes only."""
    path = directory / "enforcement.yaml"
    path.write_text(
        yaml.safe_dump({"allowAll": False, "allowDefault": False, "allowList": [STORAGE_CLASS, LATE_STORAGE_CLASS]})
    )
    return path


@pytest.fixture
def enforcement(tmp_path: Path) -> Path:
    return enforcement_file(tmp_path)


def scenario_name(prefix: str) -> str:
    """A cluster name (and label value) of this scenario's own."""
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


@contextlib.asynccontextmanager
async def ip_pool(
    parent: Client, cluster_name: str, blocks: list[dict[str, str]], extra_labels: dict[str, str] | None = None
) -> AsyncIterator[str]:
    """A Cilium pool serving only parent Services labelled with `cluster_name` (and `extra_labels`)."""
    name = f"reliability-{cluster_name}"
    selector = {CLUSTER_LABEL: cluster_name, **(extra_labels or {})}
    await parent.apply(
        POOLS, {"metadata": {"name": name}, "spec": {"blocks": blocks, "serviceSelector": {"matchLabels": selector}}}
    )
    try:
        yield name
    finally:
        with contextlib.suppress(NotFound):
            await parent.delete(POOLS, name)


@contextlib.asynccontextmanager
async def tenant_namespaces(
    tenant: Client, parent: Client, cluster: harness.Cluster, cluster_name: str, *prefixes: str
) -> AsyncIterator[list[str]]:
    """Fresh tenant namespaces; afterwards their Services and the scenario's parent Services are gone."""
    names = [f"{prefix}-{uuid.uuid4().hex[:6]}" for prefix in prefixes]
    for name in names:
        with contextlib.suppress(AlreadyExists):
            await tenant.create(NAMESPACES, {"metadata": {"name": name}})
    try:
        yield names
    finally:
        for name in names:
            await _drop_services(tenant, name)
            with contextlib.suppress(NotFound):
                await tenant.delete(NAMESPACES, name)
        for found in (
            await parent.list_all(SERVICES, cluster.parent_namespace, label_selector=f"{CLUSTER_LABEL}={cluster_name}")
        ).items:
            with contextlib.suppress(NotFound):
                await parent.delete(SERVICES, found["metadata"]["name"], cluster.parent_namespace)


async def _drop_services(tenant: Client, namespace: str) -> None:
    """Delete a namespace's Services even with no ccm left to remove the finalizer (as an admin would)."""
    for service in (await tenant.list_all(SERVICES, namespace)).items:
        name = service["metadata"]["name"]
        with contextlib.suppress(NotFound):
            if FINALIZER in (service["metadata"].get("finalizers") or []):
                await tenant.patch(SERVICES, name, {"metadata": {"finalizers": None}}, namespace)
            await tenant.delete(SERVICES, name, namespace)


@contextlib.asynccontextmanager
async def scenario_vms(cluster: harness.Cluster, cluster_name: str, count: int) -> AsyncIterator[list[str]]:
    """`count` running VMs (+ VMIs) of the scenario's cluster in the parent; afterwards they and the
    scenario's DataVolumes are gone."""
    names = [f"{cluster_name}-vm-{i}" for i in range(count)]
    async with nodes.clients(cluster) as c:
        for name in names:
            await nodes.add_node(c, name, ips=["10.40.0.1"], cluster_name=cluster_name, register=False)
        try:
            yield names
        finally:
            for name in names:
                await nodes.remove_node(c, name)
            selector = f"{CLUSTER_LABEL}={cluster_name}"
            for dv in (await c.parent.list_all(DATAVOLUMES, cluster.parent_namespace, label_selector=selector)).items:
                with contextlib.suppress(NotFound):
                    await c.parent.delete(DATAVOLUMES, dv["metadata"]["name"], cluster.parent_namespace)


def lb_service(name: str, port: int = 80, **spec: Any) -> Object:
    return {
        "metadata": {"name": name},
        "spec": {
            "type": "LoadBalancer",
            "selector": {"app": name},
            "ports": [{"name": "http", "protocol": "TCP", "port": port, "targetPort": 8080}],
            **spec,
        },
    }
