"""The Cilium LB-IPAM simulator that the harness runs, seen only through the parent kube-apiserver."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import itertools
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest

from e2e import cluster as harness
from e2e.sims.cilium import POOLS, REQUEST_SATISFIED, SERVICE_NAMESPACE_LABEL
from kube.client import Client, Object
from kube.errors import NotFound
from kube.resources import NAMESPACES, SERVICES

# A random /16 of 100.64.0.0/10 and a random fd00::/8 prefix per run, one /24 (or /120) per pool, so pools
# neither overlap each other nor another module's (an overlap would mark the newer pool conflicting).
_V4_BASE = ipaddress.IPv4Network(f"100.{random.randrange(64, 128)}.0.0/16")
_V6_BASE = ipaddress.IPv6Network(f"fd{random.randrange(256):02x}:{random.randrange(65536):x}::/104")
_SUBNETS = itertools.count()

T = TypeVar("T")


async def eventually(probe: Callable[[], Awaitable[T]], check: Callable[[T], object], timeout: float = 10.0) -> T:
    """Poll `probe` until its result passes `check` (the simulator watches; only the test polls)."""
    async with asyncio.timeout(timeout):
        while True:
            result = await probe()
            if check(result):
                return result
            await asyncio.sleep(0.05)


def v4_subnet() -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network((int(_V4_BASE.network_address) + (next(_SUBNETS) << 8), 24))


def v6_subnet() -> ipaddress.IPv6Network:
    return ipaddress.IPv6Network((int(_V6_BASE.network_address) + (next(_SUBNETS) << 8), 120))


def ingress(service: Object) -> list[str]:
    return [e["ip"] for e in ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []]


def satisfied(service: Object) -> dict[str, Any] | None:
    conditions = (service.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == REQUEST_SATISFIED), None)


def reason(service: Object) -> str | None:
    found = satisfied(service)
    return found["reason"] if found else None


@dataclass
class Lab:
    """One test's namespace, pools and Services on the parent; `close` removes them, Services first."""

    api: Client
    namespace: str
    pools: list[str] = field(default_factory=list)

    async def pool(self, *blocks: dict[str, str], labels: dict[str, str] | None = None, **spec: Any) -> str:
        """A pool for this namespace only (plus `labels`), so other modules' Services never draw from it."""
        name = f"{self.namespace}-{len(self.pools)}"
        selector = {"matchLabels": {SERVICE_NAMESPACE_LABEL: self.namespace, **(labels or {})}}
        body = {"metadata": {"name": name}, "spec": {"blocks": list(blocks), "serviceSelector": selector, **spec}}
        await self.api.create(POOLS, body)
        self.pools.append(name)
        return name

    async def service(
        self,
        name: str,
        ports: tuple[int, ...] = (80,),
        labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None,
        **spec: Any,
    ) -> Object:
        body = {
            "metadata": {"name": name, "labels": labels or {}, "annotations": annotations or {}},
            "spec": {"type": "LoadBalancer", "ports": [{"port": p, "protocol": "TCP"} for p in ports], **spec},
        }
        return await self.api.create(SERVICES, body, self.namespace)

    async def get(self, name: str) -> Object:
        return await self.api.get(SERVICES, name, self.namespace)

    async def wait(self, name: str, check: Callable[[Object], object]) -> Object:
        return await eventually(lambda: self.get(name), check)

    async def wait_reason(self, name: str, wanted: str) -> Object:
        return await self.wait(name, lambda s: reason(s) == wanted)

    async def close(self) -> None:
        # The harness runs no namespace controller, so nothing deletes a namespace's contents for us.
        for service in (await self.api.list_all(SERVICES, self.namespace)).items:
            with contextlib.suppress(NotFound):
                await self.api.delete(SERVICES, service["metadata"]["name"], self.namespace)
        for name in self.pools:
            with contextlib.suppress(NotFound):
                await self.api.delete(POOLS, name)
        with contextlib.suppress(NotFound):
            await self.api.delete(NAMESPACES, self.namespace)


@pytest.fixture
async def lab(cluster: harness.Cluster, parent_client: Client) -> AsyncIterator[Lab]:
    namespace = f"lbipam-{uuid.uuid4().hex[:8]}"
    await parent_client.create(NAMESPACES, {"metadata": {"name": namespace}})
    created = Lab(parent_client, namespace)
    yield created
    await created.close()


async def test_allocates_from_a_cidr_then_a_range(lab: Lab) -> None:
    cidr, other = next(v4_subnet().subnets(new_prefix=30)), v4_subnet()
    start, stop = other[10], other[11]
    await lab.pool({"cidr": str(cidr)}, {"start": str(start), "stop": str(stop)}, allowFirstLastIPs="No")
    got = []
    for name in ("a", "b", "c"):
        await lab.service(name)
        got.append(ingress(await lab.wait(name, ingress)))
    assert got == [[str(cidr[1])], [str(cidr[2])], [str(start)]]
    service = await lab.get("a")
    condition = satisfied(service)
    assert condition is not None
    assert (condition["status"], condition["reason"], condition["message"]) == ("True", "satisfied", "")
    # Services carry no metadata.generation, so observedGeneration is 0 and omitted, as with the operator.
    assert condition.get("observedGeneration", 0) == service["metadata"].get("generation", 0)
    assert condition["lastTransitionTime"]
    managers = {(m["manager"], m.get("subresource")) for m in service["metadata"]["managedFields"]}
    assert ("sim-cilium", "status") in managers


async def test_dual_stack_gets_one_address_per_family(lab: Lab) -> None:
    v4, v6 = v4_subnet(), v6_subnet()
    await lab.pool({"cidr": str(v4)}, {"cidr": str(v6)})
    await lab.service("both", ipFamilyPolicy="RequireDualStack", ipFamilies=["IPv4", "IPv6"])
    await lab.service("six", ipFamilyPolicy="SingleStack", ipFamilies=["IPv6"])
    both = await lab.wait("both", lambda s: len(ingress(s)) == 2)
    six = await lab.wait("six", ingress)
    addresses = sorted((ipaddress.ip_address(ip) for ip in ingress(both)), key=lambda a: a.version)
    assert addresses[0] in v4 and addresses[1] in v6
    assert ipaddress.ip_address(ingress(six)[0]) in v6
    assert reason(both) == reason(six) == "satisfied"


async def test_no_pool_until_a_matching_pool_appears(lab: Lab) -> None:
    await lab.pool({"cidr": str(v4_subnet())}, labels={"color": "red"})
    await lab.service("blue", labels={"color": "blue"})
    waiting = await lab.wait_reason("blue", "no_pool")
    condition = satisfied(waiting)
    assert condition is not None and condition["status"] == "False"
    assert condition["message"] == "There are no enabled CiliumLoadBalancerIPPools that match this service"
    assert ingress(waiting) == []
    later = v4_subnet()
    await lab.pool({"cidr": str(later)}, labels={"color": "blue"})
    served = await lab.wait_reason("blue", "satisfied")
    assert ipaddress.ip_address(ingress(served)[0]) in later


async def test_out_of_ips_until_a_delete_frees_one(lab: Lab) -> None:
    only = v4_subnet()[7]
    await lab.pool({"cidr": f"{only}/32"})
    await lab.service("first")
    assert ingress(await lab.wait("first", ingress)) == [str(only)]
    await lab.service("second")
    full = await lab.wait_reason("second", "out_of_ips")
    assert ingress(full) == []
    await lab.api.delete(SERVICES, "first", lab.namespace)
    reused = await lab.wait_reason("second", "satisfied")
    assert ingress(reused) == [str(only)]


async def test_requested_addresses_by_annotation_and_load_balancer_ip(lab: Lab) -> None:
    subnet = v4_subnet()
    await lab.pool({"cidr": str(subnet)})
    wanted = [str(subnet[5]), str(subnet[9])]
    await lab.service("annotated", annotations={"lbipam.cilium.io/ips": ",".join(wanted)})
    await lab.service("legacy", loadBalancerIP=str(subnet[6]))
    assert ingress(await lab.wait_reason("annotated", "satisfied")) == wanted
    assert ingress(await lab.wait_reason("legacy", "satisfied")) == [str(subnet[6])]
    await lab.service("taken", loadBalancerIP=str(subnet[6]))
    refused = satisfied(await lab.wait_reason("taken", "already_allocated")) or {}
    assert (refused["status"], refused["message"]) == (
        "False",
        f"The IP '{subnet[6]}' is already allocated to another service",
    )


async def test_requests_outside_a_matching_pool_are_refused(lab: Lab) -> None:
    mine, others = v4_subnet(), v4_subnet()
    await lab.pool({"cidr": str(mine)})
    await lab.pool({"cidr": str(others)}, labels={"color": "red"})
    await lab.service("nowhere", loadBalancerIP="192.0.2.77")
    await lab.service("not-selected", annotations={"lbipam.cilium.io/ips": str(others[3])})
    nowhere = await lab.wait_reason("nowhere", "no_pool")
    not_selected = await lab.wait_reason("not-selected", "pool_selector_mismatch")
    assert (satisfied(nowhere) or {})["message"] == "No pool exists with a CIDR containing '192.0.2.77'"
    assert (satisfied(not_selected) or {})["message"] == (
        f"The pool with the CIDR containing '{others[3]}', doesn't select this service"
    )
    assert ingress(nowhere) == ingress(not_selected) == []


async def test_sharing_key_shares_an_address_unless_ports_clash(lab: Lab) -> None:
    await lab.pool({"cidr": str(v4_subnet())})
    key = {"lbipam.cilium.io/sharing-key": "web"}
    await lab.service("http", ports=(80,), annotations=key)
    shared = ingress(await lab.wait("http", ingress))
    await lab.service("https", ports=(443,), annotations=key)
    await lab.service("clash", ports=(80,), annotations=key)
    assert ingress(await lab.wait("https", ingress)) == shared
    assert ingress(await lab.wait("clash", ingress)) not in ([], shared)
    await lab.service("pinned-clash", ports=(443,), annotations=key, loadBalancerIP=shared[0])
    refused = await lab.wait_reason("pinned-clash", "already_allocated_incompatible_service")
    assert (satisfied(refused) or {})["message"] == (
        f"The IP '{shared[0]}' is already allocated to an incompatible service. Reason: same port"
    )


async def test_only_cilium_classes_and_classless_services_are_served(lab: Lab) -> None:
    await lab.pool({"cidr": str(v4_subnet())})
    await lab.service("other", loadBalancerClass="example.com/other")
    await lab.service("cluster-ip", type="ClusterIP")
    for name, lb_class in (("l2", "io.cilium/l2-announcer"), ("bgp", "io.cilium/bgp-control-plane")):
        await lab.service(name, loadBalancerClass=lb_class)
        assert reason(await lab.wait_reason(name, "satisfied")) == "satisfied"
    await lab.service("classless")
    await lab.wait_reason("classless", "satisfied")
    for ignored in ("other", "cluster-ip"):
        service = await lab.get(ignored)
        assert (ingress(service), satisfied(service)) == ([], None)


async def test_leaving_load_balancer_releases_the_address_for_reuse(lab: Lab) -> None:
    only = v4_subnet()[1]
    await lab.pool({"cidr": f"{only}/32"})
    await lab.service("leaving")
    assert ingress(await lab.wait("leaving", ingress)) == [str(only)]
    await lab.service("next")
    await lab.wait_reason("next", "out_of_ips")
    await lab.api.patch(SERVICES, "leaving", {"spec": {"type": "ClusterIP"}}, lab.namespace)
    left = await lab.wait("leaving", lambda s: satisfied(s) is None)
    assert ingress(left) == []
    assert ingress(await lab.wait_reason("next", "satisfied")) == [str(only)]


async def test_an_unrelated_pool_event_writes_nothing(cluster: harness.Cluster, lab: Lab) -> None:
    await lab.pool({"cidr": str(v4_subnet())})
    await lab.service("steady")
    before = await lab.wait_reason("steady", "satisfied")
    writes = writes_logged(cluster, f"{lab.namespace}/steady")
    unrelated = await lab.pool({"cidr": str(v4_subnet())}, labels={"color": "none-of-ours"})
    await eventually(lambda: pool_conditions(lab, unrelated), lambda conditions: "IPsTotal" in conditions)
    await asyncio.sleep(0.5)  # a reconcile enqueued by the pool event has had ample time to write, had it wanted to
    after = await lab.get("steady")
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    # A no-op patch would leave resourceVersion alone too; the simulator logs every patch it sends.
    assert writes_logged(cluster, f"{lab.namespace}/steady") == writes


def writes_logged(cluster: harness.Cluster, key: str) -> int:
    log = (cluster.dir / "logs" / "cilium.log").read_text()
    return sum(1 for line in log.splitlines() if f"service {key}:" in line)


async def test_pools_report_counts_like_cilium(lab: Lab) -> None:
    name = await lab.pool({"cidr": str(v4_subnet())}, allowFirstLastIPs="No")
    await lab.service("counted")
    await lab.wait("counted", ingress)

    wanted = {"PoolConflict": "resolved", "IPsTotal": "256", "IPsAvailable": "253", "IPsUsed": "3"}
    await eventually(lambda: pool_conditions(lab, name), lambda conditions: conditions == wanted)


async def pool_conditions(lab: Lab, name: str) -> dict[str, str]:
    """A pool's conditions by short type: the message, or the reason where the message is empty."""
    conditions = ((await lab.api.get(POOLS, name)).get("status") or {}).get("conditions") or []
    return {c["type"].removeprefix("cilium.io/"): c["message"] or c["reason"] for c in conditions}
