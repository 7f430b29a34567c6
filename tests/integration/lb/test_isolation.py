"""Two tenant clusters share one parent namespace: same-named Services never interfere."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from ccm.app import CloudControllerManager
from e2e import cluster as harness
from e2e.binaries import ensure_all
from e2e.cluster import controlplane
from kube.client import Client
from kube.config import from_kubeconfig
from kube.errors import NotFound
from kube.resources import SERVICES
from lb.translate import parent_service_name
from tests.integration.ccm_runner import eventually, running_ccm
from tests.integration.lb.conftest import LB_CONFIG, ensure_namespace
from tests.integration.lb.test_service_controller import delete_and_wait, ingress_ips, lb_service


@pytest.fixture(scope="module")
async def other_tenant(cluster: harness.Cluster) -> AsyncIterator[Client]:
    """A second tenant control plane whose cluster shares the parent namespace with ours."""
    plane = controlplane.prepare(
        "tenant-b", cluster.dir / f"tenant-b-{uuid.uuid4().hex[:6]}", ensure_all(), "10.113.0.0/16"
    )
    try:
        controlplane.start_etcd(plane)
        controlplane.start_apiserver(plane)
        controlplane.wait_ready(plane)
        async with (
            running_ccm(cluster, LB_CONFIG, cluster_name="other", tenant_kubeconfig=plane.kubeconfig),
            Client.from_config(from_kubeconfig(plane.kubeconfig), "tenant-cloud-tests") as client,
        ):
            yield client
    finally:
        controlplane.stop(plane)


async def test_same_named_services_of_two_clusters_do_not_interfere(
    lb_ccm: CloudControllerManager,
    other_tenant: Client,
    tenant_client: Client,
    parent_client: Client,
    cluster: harness.Cluster,
) -> None:
    namespace = f"shared-{uuid.uuid4().hex[:6]}"
    for client in (tenant_client, other_tenant):
        await ensure_namespace(client, namespace)
    ours = await tenant_client.create(SERVICES, lb_service("web"), namespace)
    theirs = await other_tenant.create(SERVICES, lb_service("web"), namespace)

    async def both_have_ips() -> bool:
        return bool(await ingress_ips(tenant_client, namespace, "web")) and bool(
            await ingress_ips(other_tenant, namespace, "web")
        )

    await eventually(both_have_ips, timeout=30)
    assert await ingress_ips(tenant_client, namespace, "web") != await ingress_ips(other_tenant, namespace, "web")
    our_parent = await parent_client.get(SERVICES, parent_service_name(ours), cluster.parent_namespace)
    their_parent = await parent_client.get(SERVICES, parent_service_name(theirs), cluster.parent_namespace)
    assert our_parent["metadata"]["labels"]["cluster.x-k8s.io/cluster-name"] == cluster.cluster_name
    assert their_parent["metadata"]["labels"]["cluster.x-k8s.io/cluster-name"] == "other"
    # Deleting ours leaves theirs exactly as it was, and both orphan sweeps leave the other's alone.
    await delete_and_wait(tenant_client, namespace, "web")
    assert lb_ccm.load_balancers is not None
    assert await lb_ccm.load_balancers.sweep_orphans() == 0
    kept = await parent_client.get(SERVICES, parent_service_name(theirs), cluster.parent_namespace)
    assert kept["metadata"]["resourceVersion"] == their_parent["metadata"]["resourceVersion"]
    with pytest.raises(NotFound):
        await parent_client.get(SERVICES, parent_service_name(ours), cluster.parent_namespace)
    await delete_and_wait(other_tenant, namespace, "web")
