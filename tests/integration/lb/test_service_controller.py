"""Tenant LoadBalancer Services through the ccm to parent Services on (simulated) Cilium LB-IPAM."""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Any

from ccm.app import CloudControllerManager
from e2e import cluster as harness
from e2e.cluster import nodes
from kube.client import Client, Object
from kube.errors import NotFound
from kube.resources import ENDPOINTSLICES, EVENTS, NODES, SERVICES
from lb.translate import FINALIZER, parent_service_name
from tests.integration.ccm_runner import eventually
from tests.integration.lb.conftest import ALLOWED, NODE_IPS, POOL_V4

Service = dict[str, Any]
ANNOTATIONS_LIMIT = 256 * 1024  # the apiserver's limit on the total size of an object's annotations


def lb_service(name: str, **spec: Any) -> Service:
    annotations = spec.pop("annotations", {})
    ports = spec.pop("ports", [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080}])
    return {
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"type": "LoadBalancer", "ports": ports, "selector": {"app": name}, **spec},
    }


async def parent_of(parent: Client, cluster: harness.Cluster, tenant: Object) -> Object | None:
    try:
        return await parent.get(SERVICES, parent_service_name(tenant), cluster.parent_namespace)
    except NotFound:
        return None


async def ingress_ips(tenant_client: Client, namespace: str, name: str) -> list[str]:
    svc = await tenant_client.get(SERVICES, name, namespace)
    return [i.get("ip", "") for i in ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []]


async def reasons(tenant_client: Client, namespace: str, name: str) -> set[str]:
    listed = await tenant_client.list_all(EVENTS, namespace, field_selector=f"involvedObject.name={name}")
    return {e["reason"] for e in listed.items}


async def delete_and_wait(tenant_client: Client, namespace: str, name: str) -> None:
    await tenant_client.delete(SERVICES, name, namespace)

    async def gone() -> bool:
        try:
            await tenant_client.get(SERVICES, name, namespace)
        except NotFound:
            return True
        return False

    await eventually(gone)


async def test_service_gets_an_ip_and_the_parent_only_what_is_allowed(
    lb_ccm: CloudControllerManager,
    tenant_client: Client,
    parent_client: Client,
    cluster: harness.Cluster,
    tenant_ns: str,
) -> None:
    body = lb_service(
        "web",
        ports=[{"name": "http", "protocol": "TCP", "port": 80}, {"name": "dns", "protocol": "UDP", "port": 53}],
        annotations={"example.com/keep": "yes", "secret.example/drop": "no"},
        externalIPs=["203.0.113.9"],
    )
    created = await tenant_client.create(SERVICES, body, tenant_ns)

    async def has_ip() -> bool:
        return bool(await ingress_ips(tenant_client, tenant_ns, "web"))

    await eventually(has_ip, timeout=20)
    [ip] = await ingress_ips(tenant_client, tenant_ns, "web")
    assert ipaddress.ip_address(ip) in ipaddress.ip_network(POOL_V4)
    tenant = await tenant_client.get(SERVICES, "web", tenant_ns)
    assert FINALIZER in tenant["metadata"]["finalizers"]
    parent = await parent_of(parent_client, cluster, created)
    assert parent is not None
    node_ports = {p["name"]: p["nodePort"] for p in tenant["spec"]["ports"]}
    assert [(p["name"], p["protocol"], p["port"], p["targetPort"]) for p in parent["spec"]["ports"]] == [
        ("http", "TCP", 80, node_ports["http"]),
        ("dns", "UDP", 53, node_ports["dns"]),
    ]
    assert parent["metadata"]["annotations"] == {"example.com/keep": "yes", "platform.example/tier": "tenant"}
    assert "externalIPs" not in parent["spec"]
    assert parent["spec"]["loadBalancerClass"] == "io.cilium/l2-announcer"
    assert parent["spec"]["allocateLoadBalancerNodePorts"] is False
    assert {"EnsuringLoadBalancer", "EnsuredLoadBalancer"} <= await reasons(tenant_client, tenant_ns, "web")
    # Selectorless: our EndpointSlices send traffic to both nodes' VM IPs on the NodePorts.
    slices = await parent_client.list_all(
        ENDPOINTSLICES,
        cluster.parent_namespace,
        label_selector=f"kubernetes.io/service-name={parent['metadata']['name']}",
    )
    addresses = sorted(a for s in slices.items for e in s["endpoints"] for a in e["addresses"])
    assert addresses == sorted(ip for ips in NODE_IPS.values() for ip in ips)
    await delete_and_wait(tenant_client, tenant_ns, "web")
    assert await parent_of(parent_client, cluster, created) is None


async def test_changes_propagate_and_a_resync_writes_nothing(
    lb_ccm: CloudControllerManager,
    tenant_client: Client,
    parent_client: Client,
    cluster: harness.Cluster,
    tenant_ns: str,
) -> None:
    created = await tenant_client.create(SERVICES, lb_service("app"), tenant_ns)
    await eventually(lambda: _has_ip(tenant_client, tenant_ns, "app"), timeout=20)
    await tenant_client.patch(
        SERVICES, "app", {"spec": {"externalTrafficPolicy": "Local", "ipFamilyPolicy": "PreferDualStack"}}, tenant_ns
    )

    async def dual_stack_local() -> bool:
        parent = await parent_of(parent_client, cluster, created)
        return bool(
            parent
            and parent["spec"]["externalTrafficPolicy"] == "Local"
            and parent["spec"].get("ipFamilies") == ["IPv4", "IPv6"]
        )

    await eventually(dual_stack_local)

    async def two_ips() -> bool:
        return len(await ingress_ips(tenant_client, tenant_ns, "app")) == 2

    await eventually(two_ips)
    assert lb_ccm.load_balancers is not None
    await asyncio.sleep(0.5)
    before = _writes(lb_ccm)
    lb_ccm.load_balancers.resync()
    await asyncio.sleep(1.0)
    assert _writes(lb_ccm) == before
    await delete_and_wait(tenant_client, tenant_ns, "app")


def _writes(manager: CloudControllerManager) -> float:
    total = 0.0
    for metric in manager.registry.collect():
        if metric.name == "tenant_cloud_lb_writes":
            total += sum(s.value for s in metric.samples if s.name.endswith("_total"))
    return total


async def _has_ip(tenant_client: Client, namespace: str, name: str) -> bool:
    return bool(await ingress_ips(tenant_client, namespace, name))


async def test_requested_ips_inside_and_outside_the_allowed_range(
    lb_ccm: CloudControllerManager,
    tenant_client: Client,
    parent_client: Client,
    cluster: harness.Cluster,
    tenant_ns: str,
) -> None:
    allowed = str(next(ipaddress.ip_network(ALLOWED).hosts()) + 5)
    await tenant_client.create(SERVICES, lb_service("pinned", annotations={"lbipam.cilium.io/ips": allowed}), tenant_ns)

    async def pinned() -> bool:
        return await ingress_ips(tenant_client, tenant_ns, "pinned") == [allowed]

    await eventually(pinned, timeout=20)
    # A later change of the request moves the IP in the parent, and the tenant follows.
    moved = str(ipaddress.ip_address(allowed) + 1)
    await tenant_client.patch(
        SERVICES, "pinned", {"metadata": {"annotations": {"lbipam.cilium.io/ips": moved}}}, tenant_ns
    )

    async def followed() -> bool:
        return await ingress_ips(tenant_client, tenant_ns, "pinned") == [moved]

    await eventually(followed, timeout=20)
    outside = "198.51.100.7"
    created = await tenant_client.create(SERVICES, lb_service("greedy", loadBalancerIP=outside), tenant_ns)
    await eventually(lambda: _has_ip(tenant_client, tenant_ns, "greedy"), timeout=20)
    assert await ingress_ips(tenant_client, tenant_ns, "greedy") != [outside]
    parent = await parent_of(parent_client, cluster, created)
    assert parent is not None and "lbipam.cilium.io/ips" not in parent["metadata"]["annotations"]
    assert "IPRequestIgnored" in await reasons(tenant_client, tenant_ns, "greedy")
    await delete_and_wait(tenant_client, tenant_ns, "pinned")
    await delete_and_wait(tenant_client, tenant_ns, "greedy")


async def test_type_change_releases_and_other_classes_are_ignored(
    lb_ccm: CloudControllerManager,
    tenant_client: Client,
    parent_client: Client,
    cluster: harness.Cluster,
    tenant_ns: str,
) -> None:
    created = await tenant_client.create(SERVICES, lb_service("flip"), tenant_ns)
    await eventually(lambda: _has_ip(tenant_client, tenant_ns, "flip"), timeout=20)
    await tenant_client.patch(SERVICES, "flip", {"spec": {"type": "ClusterIP"}}, tenant_ns)

    async def released() -> bool:
        svc = await tenant_client.get(SERVICES, "flip", tenant_ns)
        return FINALIZER not in (svc["metadata"].get("finalizers") or []) and not (
            (svc.get("status") or {}).get("loadBalancer") or {}
        ).get("ingress")

    await eventually(released)
    assert await parent_of(parent_client, cluster, created) is None
    assert "DeletedLoadBalancer" in await reasons(tenant_client, tenant_ns, "flip")
    # Back to LoadBalancer, now with a class someone else serves: still nothing of ours in the parent.
    await tenant_client.patch(
        SERVICES, "flip", {"spec": {"type": "LoadBalancer", "loadBalancerClass": "example.com/someone-else"}}, tenant_ns
    )
    await asyncio.sleep(1.0)
    assert await parent_of(parent_client, cluster, created) is None
    flipped = await tenant_client.get(SERVICES, "flip", tenant_ns)
    assert FINALIZER not in (flipped["metadata"].get("finalizers") or [])
    foreign = await tenant_client.create(
        SERVICES, lb_service("foreign", loadBalancerClass="example.com/someone-else"), tenant_ns
    )
    ours = await tenant_client.create(SERVICES, lb_service("ours", loadBalancerClass="example.com/ours"), tenant_ns)
    await eventually(lambda: _has_ip(tenant_client, tenant_ns, "ours"), timeout=20)
    assert await parent_of(parent_client, cluster, foreign) is None
    assert await parent_of(parent_client, cluster, ours) is not None
    await delete_and_wait(tenant_client, tenant_ns, "ours")


async def test_local_policy_follows_endpoints_and_vmis(
    lb_ccm: CloudControllerManager,
    tenant_client: Client,
    parent_client: Client,
    cluster: harness.Cluster,
    tenant_ns: str,
) -> None:
    created = await tenant_client.create(SERVICES, lb_service("local", externalTrafficPolicy="Local"), tenant_ns)
    parent_name = parent_service_name(created)

    async def endpoint_ips() -> list[tuple[str, str]]:
        listed = await parent_client.list_all(
            ENDPOINTSLICES, cluster.parent_namespace, label_selector=f"kubernetes.io/service-name={parent_name}"
        )
        return sorted((a, e.get("nodeName", "")) for s in listed.items for e in s["endpoints"] for a in e["addresses"])

    async def no_endpoints() -> bool:
        return await endpoint_ips() == []

    await eventually(no_endpoints)  # no ready endpoint on any node yet
    tenant_slice = {
        "metadata": {"name": "local-abc", "labels": {"kubernetes.io/service-name": "local"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "protocol": "TCP", "port": 8080}],
        "endpoints": [
            {"addresses": ["10.244.1.5"], "nodeName": "lb-n1", "conditions": {"ready": True}},
            {"addresses": ["10.244.1.6"], "conditions": {"ready": True}},
        ],
    }
    await tenant_client.create(ENDPOINTSLICES, tenant_slice, tenant_ns)

    async def on_n1() -> bool:
        return await endpoint_ips() == [("10.20.0.1", "parent-lb-n1"), ("fd00:20::1", "parent-lb-n1")]

    await eventually(on_n1)
    await tenant_client.patch(
        ENDPOINTSLICES,
        "local-abc",
        {"endpoints": [{"addresses": ["10.244.2.5"], "nodeName": "lb-n2", "conditions": {"ready": True}}]},
        tenant_ns,
    )

    async def on_n2() -> bool:
        return await endpoint_ips() == [("10.20.0.2", "parent-lb-n2"), ("fd00:20::2", "parent-lb-n2")]

    await eventually(on_n2)
    async with nodes.clients(cluster) as c:
        await nodes.migrate_node(c, "lb-n2", "parent-lb-elsewhere")
        await nodes.set_vmi_status(c, "lb-n2", ips=["10.20.0.22"])

        async def moved() -> bool:
            return await endpoint_ips() == [("10.20.0.22", "parent-lb-elsewhere")]

        await eventually(moved)
        await nodes.set_vmi_status(c, "lb-n2", ips=NODE_IPS["lb-n2"])

    async def dual_stack_again() -> bool:  # one slice per family; the VM stays on the node it moved to
        return [address for address, _ in await endpoint_ips()] == ["10.20.0.2", "fd00:20::2"]

    await eventually(dual_stack_again)
    # A slice deleted by someone else comes back.
    slices = (
        await parent_client.list_all(
            ENDPOINTSLICES, cluster.parent_namespace, label_selector=f"kubernetes.io/service-name={parent_name}"
        )
    ).items
    assert sorted(s["addressType"] for s in slices) == ["IPv4", "IPv6"]
    [gone] = [s for s in slices if s["addressType"] == "IPv4"]
    await parent_client.delete(ENDPOINTSLICES, gone["metadata"]["name"], cluster.parent_namespace)
    await eventually(dual_stack_again)
    await delete_and_wait(tenant_client, tenant_ns, "local")


async def test_excluded_nodes_leave_the_backends(
    lb_ccm: CloudControllerManager,
    tenant_client: Client,
    parent_client: Client,
    cluster: harness.Cluster,
    tenant_ns: str,
) -> None:
    created = await tenant_client.create(SERVICES, lb_service("spread"), tenant_ns)
    parent_name = parent_service_name(created)

    async def addresses() -> set[str]:
        listed = await parent_client.list_all(
            ENDPOINTSLICES, cluster.parent_namespace, label_selector=f"kubernetes.io/service-name={parent_name}"
        )
        return {a for s in listed.items for e in s["endpoints"] for a in e["addresses"]}

    async def both() -> bool:
        return await addresses() == {ip for ips in NODE_IPS.values() for ip in ips}

    await eventually(both)
    label = "node.kubernetes.io/exclude-from-external-load-balancers"
    await tenant_client.patch(NODES, "lb-n1", {"metadata": {"labels": {label: "true"}}})
    try:

        async def only_n2() -> bool:
            return await addresses() == set(NODE_IPS["lb-n2"])

        await eventually(only_n2)
    finally:
        await tenant_client.patch(NODES, "lb-n1", {"metadata": {"labels": {label: None}}})
    await eventually(both)
    await delete_and_wait(tenant_client, tenant_ns, "spread")


async def test_ipam_failure_is_an_event(
    lb_ccm: CloudControllerManager,
    tenant_client: Client,
    tenant_ns: str,
) -> None:
    taken = str(ipaddress.ip_network(ALLOWED).broadcast_address - 3)
    for name in ("first", "second"):
        await tenant_client.create(SERVICES, lb_service(name, annotations={"lbipam.cilium.io/ips": taken}), tenant_ns)

    async def one_winner() -> bool:
        return [bool(await ingress_ips(tenant_client, tenant_ns, n)) for n in ("first", "second")].count(True) == 1

    await eventually(one_winner, timeout=20)
    winner, loser = ("first", "second") if await _has_ip(tenant_client, tenant_ns, "first") else ("second", "first")
    await eventually(lambda: _has_reason(tenant_client, tenant_ns, loser, "IPAMRequestNotSatisfied"), timeout=20)
    assert await ingress_ips(tenant_client, tenant_ns, loser) == []
    await delete_and_wait(tenant_client, tenant_ns, winner)
    await eventually(lambda: _has_ip(tenant_client, tenant_ns, loser), timeout=20)  # freed, then granted
    await delete_and_wait(tenant_client, tenant_ns, loser)


async def _has_reason(tenant_client: Client, namespace: str, name: str, reason: str) -> bool:
    return reason in await reasons(tenant_client, namespace, name)


def annotations_filling(limit: int, key: str = "example.com/bulk") -> dict[str, str]:
    """One allow-listed annotation that brings the total (keys + values) to exactly `limit` bytes."""
    return {key: "x" * (limit - len(key))}


async def _events(tenant_client: Client, namespace: str, name: str, reason: str) -> list[str]:
    listed = await tenant_client.list_all(EVENTS, namespace, field_selector=f"involvedObject.name={name}")
    return [e.get("message", "") for e in listed.items if e["reason"] == reason]


async def test_a_service_the_parent_refuses_is_a_warning_not_a_retry_loop(
    lb_ccm: CloudControllerManager,
    tenant_client: Client,
    parent_client: Client,
    cluster: harness.Cluster,
    tenant_ns: str,
) -> None:
    # At the tenant's annotation limit: copied, plus the platform's infraAnnotations, it is over the parent's.
    body = lb_service("bulky", annotations=annotations_filling(ANNOTATIONS_LIMIT))
    errors = _reconcile_errors(lb_ccm)
    created = await tenant_client.create(SERVICES, body, tenant_ns)

    async def refused() -> bool:
        return any("refused" in m for m in await _events(tenant_client, tenant_ns, "bulky", "SyncLoadBalancerFailed"))

    await eventually(refused, timeout=20)
    assert await parent_of(parent_client, cluster, created) is None
    assert _reconcile_errors(lb_ccm) == errors  # answered with an Event, not an error retried with backoff
    await delete_and_wait(tenant_client, tenant_ns, "bulky")


def _reconcile_errors(manager: CloudControllerManager) -> float:
    return manager.registry.get_sample_value("controller_reconcile_errors_total", {"controller": "service"}) or 0.0


async def test_a_change_the_parent_refuses_keeps_the_load_balancer(
    lb_ccm: CloudControllerManager,
    tenant_client: Client,
    parent_client: Client,
    cluster: harness.Cluster,
    tenant_ns: str,
) -> None:
    created = await tenant_client.create(SERVICES, lb_service("kept"), tenant_ns)
    await eventually(lambda: _has_ip(tenant_client, tenant_ns, "kept"), timeout=20)
    [ip] = await ingress_ips(tenant_client, tenant_ns, "kept")
    before = await parent_of(parent_client, cluster, created)
    assert before is not None
    patch = {"metadata": {"annotations": annotations_filling(ANNOTATIONS_LIMIT)}}
    await tenant_client.patch(SERVICES, "kept", patch, tenant_ns)

    async def refused() -> bool:
        messages = await _events(tenant_client, tenant_ns, "kept", "SyncLoadBalancerFailed")
        return any("stays as it was" in m for m in messages)

    await eventually(refused, timeout=20)
    after = await parent_of(parent_client, cluster, created)
    assert after is not None and after["metadata"]["uid"] == before["metadata"]["uid"]  # not recreated
    assert await ingress_ips(tenant_client, tenant_ns, "kept") == [ip]
    # Once the tenant takes the annotation back, the parent follows again.
    await tenant_client.patch(SERVICES, "kept", {"metadata": {"annotations": {"example.com/bulk": None}}}, tenant_ns)
    await tenant_client.patch(SERVICES, "kept", {"metadata": {"annotations": {"example.com/small": "yes"}}}, tenant_ns)

    async def synced() -> bool:
        current = await parent_of(parent_client, cluster, created)
        return current is not None and (current["metadata"].get("annotations") or {}).get("example.com/small") == "yes"

    await eventually(synced, timeout=20)
    await delete_and_wait(tenant_client, tenant_ns, "kept")
