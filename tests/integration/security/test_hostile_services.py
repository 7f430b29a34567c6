"""Hostile tenant Services, generated, pushed through the real tenant apiserver while the real ccm runs.

Whatever the tenant apiserver refuses is skipped; everything it accepts is what a tenant can really write. For
each batch: the ccm stays up, leading and healthy; every parent Service and EndpointSlice of this cluster holds
only what the allow-lists let through (checked here against the documented rules, not against lb/'s code); and
other clusters' parent objects, in our namespace and in another one, keep their resourceVersions. Then the
batch is deleted and the ccm must clean up after it, touching nothing else.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import json
import re
import time
from dataclasses import dataclass
from typing import Any

from hypothesis import given, note
from hypothesis import strategies as st

from e2e import cluster as harness
from kube.client import Client, Object
from kube.errors import AlreadyExists, ApiError, BadRequest, Invalid, NotFound
from kube.resources import ENDPOINTSLICES, SERVICES
from lb.translate import (
    CILIUM_IPS_ANNOTATION,
    FINALIZER,
    MANAGED_BY,
    MANAGED_BY_LABEL,
    SOURCE_RANGES_ANNOTATION,
    TENANT_NAME_LABEL,
    TENANT_NAMESPACE_LABEL,
)
from tests.integration.ccm_runner import eventually
from tests.integration.lb.strategies import tenant_services
from tests.integration.security.conftest import (
    ALLOWED_RANGES,
    ANNOTATION_ALLOW_LIST,
    CLUSTER_LABEL,
    HOSTILE_NAMESPACE,
    INFRA_ANNOTATIONS,
    INFRA_LABELS,
    PARENT_CLASS,
    SHARED_NAME,
    TENANT_CLASS,
    Kept,
    hostile_settings,
    unchanged,
)
from tests.integration.security.processes import Running

SETTLE_TIMEOUT = 60.0
ANNOTATIONS_LIMIT = 256 * 1024  # the apiserver's limit on the total size of an object's annotations
ALLOWED = [ipaddress.ip_network(r) for r in ALLOWED_RANGES]
# Spec fields the parent apiserver fills in itself; everything else on a parent Service must come from us.
SERVER_FILLED = frozenset({"clusterIP", "clusterIPs", "internalTrafficPolicy", "healthCheckNodePort"})
OURS = frozenset(
    {
        "type",
        "ports",
        "externalTrafficPolicy",
        "sessionAffinity",
        "sessionAffinityConfig",
        "ipFamilies",
        "ipFamilyPolicy",
        "loadBalancerSourceRanges",
        "allocateLoadBalancerNodePorts",
        "loadBalancerClass",
    }
)
SLICE_LABELS = {"kubernetes.io/service-name", "endpointslice.kubernetes.io/managed-by"}

# -- generators --------------------------------------------------------------------------------------------

names = st.sampled_from([SHARED_NAME, "a" * 63, "a" * 64, "-web", "Web", "web.x", "x"]) | st.from_regex(
    r"\A[a-z]([-a-z0-9]{0,61}[a-z0-9])?\Z"
)
label_keys = st.sampled_from(
    [
        CLUSTER_LABEL,
        TENANT_NAME_LABEL,
        TENANT_NAMESPACE_LABEL,
        MANAGED_BY_LABEL,
        "cluster.x-k8s.io/role",
        "kubernetes.io/service-name",
        "endpointslice.kubernetes.io/managed-by",
        *INFRA_LABELS,
        "example.com/x",
    ]
)
# Mostly values the tenant apiserver takes (what is refused tests nothing here), some it refuses.
label_values = st.sampled_from(["other", "test", "", SHARED_NAME, "a" * 63, MANAGED_BY, "a" * 64, "two words"])
crafted_ips = st.sampled_from(
    [
        "198.51.100.130",
        "198.51.100.130,198.51.100.131",
        "198.51.100.1",
        "10.0.0.1",
        "0.0.0.0",
        "::",
        "fd00:198:51::8001",
        "not-an-ip",
        ",,,",
        " 198.51.100.140 , 203.0.113.1",
        ",".join(f"198.51.100.{n}" for n in range(128, 256)),
    ]
)
valid_ranges = st.sampled_from(["0.0.0.0/0", "::/0", "10.0.0.1/32", "fe80::/10", "198.51.100.0/24"])
crafted_ranges = valid_ranges | st.sampled_from(["1.2.3.4", "300.0.0.0/8", "10.0.0.0/33", " 10.0.0.0/8"])
annotation_keys = st.sampled_from(
    [
        CILIUM_IPS_ANNOTATION,
        "lbipam.cilium.io/sharing-key",
        "lbipam.cilium.io/sharing-cross-namespace",
        "io.cilium/lb-ipam-ips",
        "service.beta.kubernetes.io/aws-load-balancer-internal",
        *INFRA_ANNOTATIONS,
        "example.com/x",
        "example.com/y",
        "evil.example/x",
    ]
)
annotation_values = crafted_ips | st.text(max_size=50) | st.sampled_from(["*", "tenant-other", "\u202eevil", "a\nb"])
hostile_port = st.fixed_dictionaries(
    {
        "port": st.sampled_from([1, 53, 443, 65535]) | st.integers(1, 65535),
        "protocol": st.sampled_from(["TCP", "UDP", "SCTP"]),
    },
    optional={
        "appProtocol": st.sampled_from(["kubernetes.io/h2c", "http", "https", "kubernetes.io/ws", "a/\u2603", "x" * 64])
    },
)
odd_ports = st.sampled_from(
    [
        {"port": 0, "protocol": "TCP"},
        {"port": 65536, "protocol": "TCP"},
        {"port": 80, "protocol": "HTTP"},
        {"port": 80, "protocol": "tcp"},
        {"port": 80, "protocol": "ICMP"},
        {"name": "a" * 16, "port": 80, "protocol": "TCP"},
        {"name": "UPPER", "port": 80, "protocol": "TCP"},
        {"port": 80, "protocol": "TCP", "targetPort": "x" * 16},
    ]
)
spec_extras: dict[str, st.SearchStrategy[Any]] = {
    "type": st.sampled_from(["NodePort", "ClusterIP", "ExternalName", "loadbalancer"]),
    "loadBalancerClass": st.sampled_from([TENANT_CLASS, "io.cilium/bgp-control-plane", "evil.example/x"]),
    "loadBalancerSourceRanges": st.lists(crafted_ranges, max_size=3),
    "loadBalancerIP": crafted_ips,
    "externalIPs": st.lists(st.sampled_from(["198.51.100.130", "10.1.2.3", "fd00::1"]), max_size=2),
    "allocateLoadBalancerNodePorts": st.booleans(),
    "healthCheckNodePort": st.integers(30000, 32767),
    "ipFamilies": st.sampled_from([["IPv6"], ["IPv6", "IPv4"], ["IPv4", "IPv4"]]),
    "selector": st.dictionaries(label_keys, label_values, max_size=2),
    "publishNotReadyAddresses": st.booleans(),
}


ODDITIES = ("name", "labels", "source-ranges", "huge", "many-ports", "odd-port", "spec", "spec")


@st.composite
def hostile_services(draw: st.DrawFn) -> Object:
    """A tenant Service of the translation property's kind with crafted annotations, then pushed to one limit or
    odd value at a time (several at once would mostly be refused, and what is refused tests nothing here)."""
    service = draw(tenant_services())
    metadata, spec = service["metadata"], service["spec"]
    metadata.pop("namespace")
    # The base's odd source ranges and port names are this generator's business (below), one at a time.
    metadata["annotations"].pop(SOURCE_RANGES_ANNOTATION, None)
    for port in spec["ports"]:
        port["name"] = re.sub("-+", "-", port["name"])
    metadata["annotations"].update(draw(st.dictionaries(annotation_keys, annotation_values, max_size=4)))
    metadata["labels"] = {}
    oddity = draw(st.sampled_from(ODDITIES))
    if oddity == "name":
        metadata["name"] = draw(names)
    elif oddity == "labels":
        metadata["labels"] = draw(st.dictionaries(label_keys, label_values, min_size=1, max_size=4))
    elif oddity == "source-ranges":
        ranges = draw(st.lists(crafted_ranges, min_size=1, max_size=3))
        metadata["annotations"][SOURCE_RANGES_ANNOTATION] = ",".join(ranges)
    elif oddity == "huge":
        # Right at the apiserver's limit, from just under to just over; allow-listed, so the ccm would copy it.
        budget = ANNOTATIONS_LIMIT - sum(len(k) + len(str(v)) for k, v in metadata["annotations"].items())
        key = "example.com/huge"
        metadata["annotations"][key] = "x" * max(0, budget - len(key) + draw(st.integers(-64, 16)))
    elif oddity == "many-ports":
        ports = draw(st.lists(hostile_port, min_size=1, max_size=30, unique_by=lambda p: p["port"]))
        spec["ports"] = [{"name": f"p{i}", **port} for i, port in enumerate(ports)]
    elif oddity == "odd-port":
        spec["ports"] = [*spec["ports"][:1], {"name": "odd", **draw(odd_ports)}]
    else:
        for key in draw(st.lists(st.sampled_from(sorted(spec_extras)), min_size=1, max_size=2, unique=True)):
            spec[key] = draw(spec_extras[key])
    return service


# -- what a parent object may hold -------------------------------------------------------------------------


def requested_ips(tenant: Object) -> list[str]:
    spec, annotations = tenant["spec"], tenant["metadata"].get("annotations") or {}
    ips = [ip.strip() for ip in annotations.get(CILIUM_IPS_ANNOTATION, "").split(",") if ip.strip()]
    return ips + ([spec["loadBalancerIP"]] if spec.get("loadBalancerIP") else [])


def in_allowed_ranges(ip: str) -> bool:
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(address in network for network in ALLOWED)


def tenant_ranges(tenant: Object) -> set[str]:
    raw = tenant["spec"].get("loadBalancerSourceRanges") or [
        part for part in (tenant["metadata"].get("annotations") or {}).get(SOURCE_RANGES_ANNOTATION, "").split(",")
    ]
    normal = set()
    for value in raw:
        try:
            normal.add(str(ipaddress.ip_network(value.strip(), strict=False)))
        except ValueError:
            continue
    return normal


def forbidden_on_service(parent: Object, tenant: Object, cluster_name: str) -> list[str]:
    """Everything on a parent Service that the documented allow-lists do not let through."""
    problems = []
    meta, tenant_meta = parent["metadata"], tenant["metadata"]
    expected_labels = {
        **INFRA_LABELS,
        CLUSTER_LABEL: cluster_name,
        TENANT_NAME_LABEL: tenant_meta["name"],
        TENANT_NAMESPACE_LABEL: tenant_meta["namespace"],
        MANAGED_BY_LABEL: MANAGED_BY,
    }
    if meta.get("labels") != expected_labels:
        problems.append(f"labels {meta.get('labels')} instead of {expected_labels}")
    tenant_annotations = tenant_meta.get("annotations") or {}
    annotations = meta.get("annotations") or {}
    for key, value in INFRA_ANNOTATIONS.items():
        if annotations.get(key) != value:
            problems.append(f"platform annotation {key}={annotations.get(key)!r}, not {value!r}")
    for key, value in annotations.items():
        if key in INFRA_ANNOTATIONS:
            continue
        if key == CILIUM_IPS_ANNOTATION:
            ips = value.split(",")
            if not all(in_allowed_ranges(ip) for ip in ips) or set(ips) != set(requested_ips(tenant)):
                problems.append(f"IP request {value!r} (tenant asked for {requested_ips(tenant)})")
        elif key in ("lbipam.cilium.io/sharing-cross-namespace", SOURCE_RANGES_ANNOTATION):
            problems.append(f"annotation {key} copied")
        elif not any(fnmatch.fnmatchcase(key, pattern) for pattern in ANNOTATION_ALLOW_LIST):
            problems.append(f"annotation {key} is not allow-listed")
        elif tenant_annotations.get(key) != value:
            problems.append(f"annotation {key}={value[:40]!r} is not the tenant's")
    spec, tenant_spec = parent["spec"], tenant["spec"]
    if extra := set(spec) - OURS - SERVER_FILLED:
        problems.append(f"spec fields {sorted(extra)}")
    if spec.get("loadBalancerClass") != PARENT_CLASS or spec.get("allocateLoadBalancerNodePorts") is not False:
        problems.append(f"class {spec.get('loadBalancerClass')}, allocateLoadBalancerNodePorts set")
    tenant_ports = {
        (p.get("name", ""), p.get("protocol", "TCP"), p["port"]): p.get("nodePort") for p in tenant_spec["ports"]
    }
    for port in spec.get("ports") or []:
        port_key = (port.get("name", ""), port["protocol"], port["port"])
        if port_key not in tenant_ports or port.get("targetPort") != tenant_ports[port_key]:
            problems.append(f"port {port} is not a tenant port to its NodePort")
    if not set(spec.get("loadBalancerSourceRanges") or []) <= tenant_ranges(tenant):
        problems.append(f"source ranges {spec.get('loadBalancerSourceRanges')}")
    if spec.get("sessionAffinityConfig") and tenant_spec.get("sessionAffinity") != "ClientIP":
        problems.append("sessionAffinityConfig without the tenant's ClientIP affinity")
    return problems


def forbidden_on_slice(endpoint_slice: Object, parent_name: str) -> list[str]:
    labels = endpoint_slice["metadata"].get("labels") or {}
    allowed = {CLUSTER_LABEL, TENANT_NAME_LABEL, TENANT_NAMESPACE_LABEL, MANAGED_BY_LABEL, *INFRA_LABELS, *SLICE_LABELS}
    problems = [f"slice label {key}" for key in set(labels) - allowed]
    if labels.get("kubernetes.io/service-name") != parent_name:
        problems.append(f"slice for {labels.get('kubernetes.io/service-name')}, not {parent_name}")
    return problems


# -- the test ----------------------------------------------------------------------------------------------


@dataclass
class Figures:
    examples: int = 0
    generated: int = 0
    accepted: int = 0
    exposed: int = 0
    started: float = 0.0


FIGURES = Figures()


async def push(tenant_client: Client, batch: list[Object]) -> list[Object]:
    """Create what the tenant apiserver accepts; the rest is what no tenant can write, so it is skipped."""
    created = []
    for service in batch:
        try:
            created.append(await tenant_client.create(SERVICES, service, HOSTILE_NAMESPACE))
        except (Invalid, BadRequest, AlreadyExists):
            continue
        except ApiError as error:
            assert error.status == 413, error  # too large for the apiserver: also refused, also skipped
    return created


def qualifies(tenant: Object) -> bool:
    spec = tenant["spec"]
    return spec.get("type") == "LoadBalancer" and spec.get("loadBalancerClass") in (None, TENANT_CLASS)


async def ours(parent: Client, cluster: harness.Cluster, resource: Any) -> list[Object]:
    selector = f"{CLUSTER_LABEL}={cluster.cluster_name},{TENANT_NAMESPACE_LABEL}={HOSTILE_NAMESPACE}"
    return (await parent.list_all(resource, cluster.parent_namespace, label_selector=selector)).items


async def settled(tenant_client: Client, parent: Client, cluster: harness.Cluster, created: list[Object]) -> bool:
    """Every qualifying Service carries the finalizer and, where a NodePort makes it exposable, has its parent."""
    parents = {(s["metadata"]["labels"] or {}).get(TENANT_NAME_LABEL) for s in await ours(parent, cluster, SERVICES)}
    for service in created:
        current = await tenant_client.get(SERVICES, service["metadata"]["name"], HOSTILE_NAMESPACE)
        if not qualifies(current):
            continue
        if FINALIZER not in (current["metadata"].get("finalizers") or []):
            return False
        exposable = any(
            p.get("nodePort") and p.get("protocol", "TCP") in ("TCP", "UDP", "SCTP") for p in current["spec"]["ports"]
        )
        if exposable and not _too_big_for_the_parent(current) and current["metadata"]["name"] not in parents:
            return False
    return True


def _too_big_for_the_parent(tenant: Object) -> bool:
    """Copied annotations plus the platform's may pass the parent's limit; the ccm then cannot expose it."""
    annotations = tenant["metadata"].get("annotations") or {}
    copied = sum(
        len(k) + len(v) for k, v in annotations.items() if any(fnmatch.fnmatchcase(k, p) for p in ANNOTATION_ALLOW_LIST)
    )
    return copied + sum(len(k) + len(v) for k, v in INFRA_ANNOTATIONS.items()) > ANNOTATIONS_LIMIT - 1024


async def new_in_the_parent(parent: Client, cluster: harness.Cluster, resource: Any, known: set[str]) -> list[Object]:
    """Every object of `resource` in our parent namespace that was not there before the first batch, whatever its
    labels say: a parent object the ccm mislabelled must not hide from the checks."""
    listed = (await parent.list_all(resource, cluster.parent_namespace)).items
    return [o for o in listed if o["metadata"]["name"] not in known]


async def check_parent_objects(
    tenant_client: Client, parent: Client, cluster: harness.Cluster, baseline: dict[str, set[str]]
) -> list[str]:
    problems = []
    services = await new_in_the_parent(parent, cluster, SERVICES, baseline["services"])
    for service in services:
        name = (service["metadata"].get("labels") or {}).get(TENANT_NAME_LABEL, "")
        try:
            tenant = await tenant_client.get(SERVICES, name, HOSTILE_NAMESPACE)
        except NotFound:
            problems.append(f"parent Service {service['metadata']['name']} for a tenant Service {name!r} that is gone")
            continue
        problems += [
            f"{service['metadata']['name']}: {p}" for p in forbidden_on_service(service, tenant, cluster.cluster_name)
        ]
    names = {s["metadata"]["name"] for s in services}
    for endpoint_slice in await new_in_the_parent(parent, cluster, ENDPOINTSLICES, baseline["endpointslices"]):
        owner = (endpoint_slice["metadata"].get("labels") or {}).get("kubernetes.io/service-name", "")
        problems += forbidden_on_slice(endpoint_slice, owner if owner in names else "<one of ours>")
    return problems


BASELINE: dict[str, set[str]] = {}


async def baseline(parent: Client, cluster: harness.Cluster) -> dict[str, set[str]]:
    """The parent namespace's Services and slices before the first batch (other tests', the foreign ones)."""
    if not BASELINE:
        for resource in (SERVICES, ENDPOINTSLICES):
            listed = (await parent.list_all(resource, cluster.parent_namespace)).items
            BASELINE[resource.plural] = {o["metadata"]["name"] for o in listed}
    return BASELINE


async def healthy(ccm: Running) -> list[str]:
    if not ccm.alive:
        return [f"the ccm exited ({ccm.process.returncode})"]
    problems = []
    status, body = await ccm.probe("/healthz")
    if (status, body) != (200, "ok"):
        problems.append(f"/healthz {status}: {body}")
    status, body = await ccm.probe("/readyz?verbose")
    if status != 200 or "leader: true" not in body:
        problems.append(f"/readyz {status}: {body}")
    return problems


async def delete_all(tenant_client: Client, parent: Client, cluster: harness.Cluster, created: list[Object]) -> None:
    for service in created:
        try:
            await tenant_client.delete(SERVICES, service["metadata"]["name"], HOSTILE_NAMESPACE)
        except NotFound:
            continue

    async def cleaned_up() -> bool:
        left = await tenant_client.list_all(SERVICES, HOSTILE_NAMESPACE)
        return (
            not left.items
            and not await ours(parent, cluster, SERVICES)
            and not await ours(parent, cluster, ENDPOINTSLICES)
        )

    await eventually(cleaned_up, timeout=SETTLE_TIMEOUT)


@hostile_settings(ci_examples=20)
@given(batch=st.lists(hostile_services(), min_size=1, max_size=8, unique_by=lambda s: str(s["metadata"]["name"])))
async def test_hostile_services_never_crash_the_ccm_leak_to_the_parent_or_touch_others(
    batch: list[Object],
    hostile_ccm: Running,
    foreign_services: list[Kept],
    tenant_client: Client,
    parent_client: Client,
    cluster: harness.Cluster,
) -> None:
    FIGURES.started = FIGURES.started or time.monotonic()  # from the first example on
    before = await baseline(parent_client, cluster)
    FIGURES.examples += 1
    FIGURES.generated += len(batch)
    created = await push(tenant_client, batch)
    FIGURES.accepted += len(created)
    note(json.dumps([s["metadata"]["name"] for s in created]))
    try:
        await eventually(lambda: settled(tenant_client, parent_client, cluster, created), timeout=SETTLE_TIMEOUT)
        FIGURES.exposed += len(await ours(parent_client, cluster, SERVICES))
        assert await healthy(hostile_ccm) == []
        assert await check_parent_objects(tenant_client, parent_client, cluster, before) == []
        assert await unchanged(parent_client, foreign_services) == []
    finally:
        await delete_all(tenant_client, parent_client, cluster, created)
    assert await unchanged(parent_client, foreign_services) == []
    assert await healthy(hostile_ccm) == []


async def test_hostile_figures(hostile_ccm: Running) -> None:
    """Runs after the property: the figures for docs/reliability.md, and the ccm never logged a traceback."""
    print(
        f"hostile Services: {FIGURES.examples} batches, {FIGURES.generated} generated, {FIGURES.accepted} accepted by "
        f"the tenant apiserver, {FIGURES.exposed} parent Services checked, {time.monotonic() - FIGURES.started:.0f}s"
    )
    assert FIGURES.accepted > 0
    assert "Traceback" not in hostile_ccm.output()
