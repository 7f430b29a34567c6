"""A tenant LoadBalancer Service through the chart's ccm: Cilium LB-IPAM (simulated) gives the parent Service an
IP, which reaches the tenant; port changes follow; a type change back to ClusterIP removes the parent Service."""

from __future__ import annotations

import ipaddress
from typing import Any

from e2e.cluster import platform
from kube.client import Object
from kube.resources import SERVICES
from lb.translate import parent_service_name
from tests.e2e.conftest import E2E, gone, until


def ingress_ips(service: Object) -> list[str]:
    ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return [str(entry["ip"]) for entry in ingress if entry.get("ip")]


def port_map(service: Object) -> dict[int, Any]:
    return {port["port"]: port.get("targetPort") for port in service["spec"]["ports"]}


async def test_a_load_balancer_gets_its_ip_and_follows_changes(
    e2e: E2E, tenant_nodes: list[str], namespace: str
) -> None:
    tenant, parent = e2e.tenant, e2e.parent
    http = {"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080}
    created = await tenant.create(
        SERVICES,
        {
            "metadata": {"name": "web"},
            "spec": {"type": "LoadBalancer", "selector": {"app": "web"}, "ports": [http]},
        },
        namespace,
    )
    parent_name, parent_namespace = parent_service_name(created), e2e.parent_namespace

    async def tenant_ips() -> list[str]:
        return ingress_ips(await tenant.get(SERVICES, "web", namespace))

    ips = await until(tenant_ips, "the tenant Service shows the parent's LB-IPAM address")
    pool = ipaddress.ip_network(platform.LB_POOL_CIDRS[0])
    assert ipaddress.ip_address(ips[0]) in pool
    in_parent = await parent.get(SERVICES, parent_name, parent_namespace)
    assert ingress_ips(in_parent) == ips
    tenant_side = await tenant.get(SERVICES, "web", namespace)
    assert port_map(in_parent) == {80: tenant_side["spec"]["ports"][0]["nodePort"]}

    https = {"name": "https", "protocol": "TCP", "port": 443, "targetPort": 8443}
    await tenant.patch(SERVICES, "web", {"spec": {"ports": [http, https]}}, namespace)
    tenant_side = await tenant.get(SERVICES, "web", namespace)
    node_ports = {port["port"]: port["nodePort"] for port in tenant_side["spec"]["ports"]}

    async def ports_followed() -> bool:
        return port_map(await parent.get(SERVICES, parent_name, parent_namespace)) == node_ports

    await until(ports_followed, "the parent Service serves the new port on its NodePort")
    assert await tenant_ips() == ips  # the address stays

    await tenant.patch(SERVICES, "web", {"spec": {"type": "ClusterIP"}}, namespace)

    async def released() -> bool:
        return await gone(parent, SERVICES, parent_name, parent_namespace) and not await tenant_ips()

    await until(released, "a ClusterIP Service has no parent Service and no ingress")
