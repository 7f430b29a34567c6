"""Which tenant Nodes back a load balancer, and the parent EndpointSlices that send traffic to their VMs.

Pure functions; the VMI addresses come in through `Backend` values the ccm builds from its VMI watch.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any, Protocol

Object = dict[str, Any]

EXCLUDE_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"
AUTOSCALER_DELETION_TAINT = "ToBeDeletedByClusterAutoscaler"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
SLICE_MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
SLICE_MANAGER = "tenant-cloud-ccm"
MAX_ENDPOINTS_PER_SLICE = 100


@dataclass(frozen=True)
class Backend:
    """Where a tenant Node's traffic goes in the parent: its VM's IPs, and the parent Node it runs on."""

    node: str
    ips: tuple[str, ...]
    parent_node: str = ""


class Backends(Protocol):
    def backend(self, node_name: str) -> Backend | None: ...


def _ready(node: Object) -> bool:
    if (node.get("metadata") or {}).get("deletionTimestamp"):
        return False
    conditions = (node.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def eligible(node: Object) -> bool:
    """A Node that may receive load-balancer traffic (what the upstream service controller also excludes)."""
    labels = (node.get("metadata") or {}).get("labels") or {}
    taints = (node.get("spec") or {}).get("taints") or []
    return (
        _ready(node)
        and EXCLUDE_LABEL not in labels
        and not any(t.get("key") == AUTOSCALER_DELETION_TAINT for t in taints)
    )


def nodes_with_ready_endpoints(tenant_slices: list[Object]) -> set[str]:
    """Nodes hosting ready endpoints; endpoints without nodeName are skipped, never a crash."""
    found: set[str] = set()
    for endpoint_slice in tenant_slices:
        for endpoint in endpoint_slice.get("endpoints") or []:
            ready = (endpoint.get("conditions") or {}).get("ready")
            node = endpoint.get("nodeName")
            if node and ready is not False:  # nil means ready, as kube-proxy reads it
                found.add(str(node))
    return found


def backend_nodes(tenant: Object, nodes: list[Object], tenant_slices: list[Object]) -> list[str]:
    """Cluster policy: every eligible Node. Local: only eligible Nodes with a ready endpoint of the Service."""
    names = sorted(n["metadata"]["name"] for n in nodes if eligible(n))
    if (tenant.get("spec") or {}).get("externalTrafficPolicy") == "Local":
        local = nodes_with_ready_endpoints(tenant_slices)
        names = [n for n in names if n in local]
    return names


def _family(ip: str) -> str | None:
    try:
        return "IPv4" if ipaddress.ip_address(ip).version == 4 else "IPv6"
    except ValueError:
        return None


def parent_slices(
    service_name: str, namespace: str, ports: list[Object], backends: list[Backend], labels: dict[str, str]
) -> list[Object]:
    """EndpointSlices for the parent Service: one set per address family, at most 100 endpoints each."""
    slice_ports = [
        {k: v for k, v in (("name", p.get("name")), ("protocol", p["protocol"]), ("port", p["targetPort"])) if v}
        for p in ports
    ]
    slices: list[Object] = []
    for family in ("IPv4", "IPv6"):
        endpoints = [
            {
                "addresses": [ip],
                "conditions": {"ready": True, "serving": True, "terminating": False},
                **({"nodeName": b.parent_node} if b.parent_node else {}),
            }
            for b in sorted(backends, key=lambda b: b.node)
            for ip in b.ips
            if _family(ip) == family
        ]
        for index in range(0, len(endpoints), MAX_ENDPOINTS_PER_SLICE):
            slices.append(
                {
                    "apiVersion": "discovery.k8s.io/v1",
                    "kind": "EndpointSlice",
                    "metadata": {
                        "name": f"{service_name}-{family.lower()}-{index // MAX_ENDPOINTS_PER_SLICE}",
                        "namespace": namespace,
                        "labels": {**labels, SERVICE_NAME_LABEL: service_name, SLICE_MANAGED_BY_LABEL: SLICE_MANAGER},
                    },
                    "addressType": family,
                    "ports": slice_ports,
                    "endpoints": endpoints[index : index + MAX_ENDPOINTS_PER_SLICE],
                }
            )
    return slices


def slice_differs(current: Object, desired: Object) -> bool:
    def normal_endpoints(s: Object) -> list[tuple[Any, ...]]:
        return [
            (tuple(e.get("addresses") or ()), (e.get("conditions") or {}).get("ready"), e.get("nodeName"))
            for e in s.get("endpoints") or []
        ]

    def normal_ports(s: Object) -> list[tuple[Any, ...]]:
        return [(p.get("name"), p.get("protocol"), p.get("port")) for p in s.get("ports") or []]

    return (
        ((current.get("metadata") or {}).get("labels") or {}) != desired["metadata"]["labels"]
        or current.get("addressType") != desired["addressType"]
        or normal_ports(current) != normal_ports(desired)
        or normal_endpoints(current) != normal_endpoints(desired)
    )
