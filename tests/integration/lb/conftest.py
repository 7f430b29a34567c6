"""Fixtures for the load-balancer flows: a Cilium pool, a ccm in selectorless mode, two tenant nodes."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

import pytest

from ccm.app import CloudControllerManager
from e2e import cluster as harness
from e2e.cluster import nodes
from kube.client import Client
from kube.errors import AlreadyExists, NotFound
from kube.resources import NAMESPACES, Resource
from tests.integration.ccm_runner import running_ccm

POOLS = Resource("cilium.io", "v2", "ciliumloadbalancerippools", "CiliumLoadBalancerIPPool", namespaced=False)
POOL_V4, POOL_V6 = "198.51.100.0/24", "fd00:198:51::/112"
ALLOWED = "198.51.100.128/25"
NODE_IPS = {"lb-n1": ["10.20.0.1", "fd00:20::1"], "lb-n2": ["10.20.0.2", "fd00:20::2"]}
LB_CONFIG = {
    "loadBalancer": {
        "selectorless": True,
        "loadBalancerClass": "io.cilium/l2-announcer",
        "tenantLoadBalancerClasses": ["example.com/ours"],
        "annotationAllowList": ["example.com/*"],
        "allowIPRequests": True,
        "allowedIPRanges": [ALLOWED],
        "infraAnnotations": {"platform.example/tier": "tenant"},
    },
    "nodeLifecycle": {"deleteGracePeriod": 30},
}


async def make_pool(parent: Client, name: str, namespace: str, cidrs: list[str]) -> None:
    await parent.apply(
        POOLS,
        {
            "metadata": {"name": name},
            "spec": {
                "blocks": [{"cidr": c} for c in cidrs],
                "serviceSelector": {"matchLabels": {"io.kubernetes.service.namespace": namespace}},
            },
        },
        force=True,
    )


@pytest.fixture(scope="module")
async def lb_pool(cluster: harness.Cluster, parent_client: Client) -> AsyncIterator[str]:
    name = "tenant-cloud-lb-tests"
    await make_pool(parent_client, name, cluster.parent_namespace, [POOL_V4, POOL_V6])
    yield name
    with contextlib.suppress(NotFound):
        await parent_client.delete(POOLS, name)


@pytest.fixture(scope="module")
async def lb_nodes(cluster: harness.Cluster) -> AsyncIterator[list[str]]:
    async with nodes.clients(cluster) as c:
        for name, ips in NODE_IPS.items():
            await nodes.ensure_absent(c, name)
            await nodes.add_node(c, name, ips=ips, parent_node=f"parent-{name}")
        yield list(NODE_IPS)
        for name in NODE_IPS:
            await nodes.ensure_absent(c, name)


@pytest.fixture(scope="module")
async def lb_ccm(cluster: harness.Cluster, lb_pool: str, lb_nodes: list[str]) -> AsyncIterator[CloudControllerManager]:
    async with running_ccm(cluster, LB_CONFIG) as manager:
        yield manager


async def ensure_namespace(client: Client, name: str) -> None:
    with contextlib.suppress(AlreadyExists):
        await client.create(NAMESPACES, {"metadata": {"name": name}})


@pytest.fixture
async def tenant_ns(tenant_client: Client) -> AsyncIterator[str]:
    name = f"lb-{uuid.uuid4().hex[:6]}"
    await tenant_client.create(NAMESPACES, {"metadata": {"name": name}})
    yield name
    with contextlib.suppress(NotFound):
        await tenant_client.delete(NAMESPACES, name)
