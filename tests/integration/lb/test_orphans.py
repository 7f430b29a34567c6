"""Parent objects left behind while the ccm was down are collected when it comes back."""

from __future__ import annotations

import uuid

from e2e import cluster as harness
from kube.client import Client
from kube.errors import NotFound
from kube.resources import SERVICES
from lb.translate import FINALIZER, parent_service_name
from tests.integration.ccm_runner import eventually, running_ccm
from tests.integration.lb.conftest import LB_CONFIG, ensure_namespace
from tests.integration.lb.test_service_controller import ingress_ips, lb_service


async def test_orphans_left_while_the_ccm_was_down_are_collected(
    cluster: harness.Cluster,
    tenant_client: Client,
    parent_client: Client,
    lb_pool: str,
    lb_nodes: list[str],
) -> None:
    namespace = f"orphan-{uuid.uuid4().hex[:6]}"
    await ensure_namespace(tenant_client, namespace)
    async with running_ccm(cluster, LB_CONFIG):
        created = await tenant_client.create(SERVICES, lb_service("leaver"), namespace)

        async def has_ip() -> bool:
            return bool(await ingress_ips(tenant_client, namespace, "leaver"))

        await eventually(has_ip, timeout=30)
    # The ccm is down; the Service goes away without it (its finalizer removed by hand).
    current = await tenant_client.get(SERVICES, "leaver", namespace)
    await tenant_client.patch(
        SERVICES,
        "leaver",
        {
            "metadata": {
                "finalizers": [f for f in current["metadata"]["finalizers"] if f != FINALIZER] or None,
                "resourceVersion": current["metadata"]["resourceVersion"],
            }
        },
        namespace,
    )
    await tenant_client.delete(SERVICES, "leaver", namespace)
    orphan = parent_service_name(created)
    await parent_client.get(SERVICES, orphan, cluster.parent_namespace)  # still there
    async with running_ccm(cluster, LB_CONFIG):

        async def collected() -> bool:
            try:
                await parent_client.get(SERVICES, orphan, cluster.parent_namespace)
            except NotFound:
                return True
            return False

        await eventually(collected, timeout=30)
