"""Backend Nodes for Cluster and Local policies, and the parent EndpointSlices built from them."""

from __future__ import annotations

from typing import Any

from lb.endpoints import EXCLUDE_LABEL, Backend, backend_nodes, parent_slices, slice_differs


def node(name: str, ready: bool = True, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": labels},
        "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


def endpoint_slice(*endpoints: dict[str, Any]) -> dict[str, Any]:
    return {"endpoints": list(endpoints)}


NODES = [node("a"), node("b"), node("c", ready=False), node("d", labels={EXCLUDE_LABEL: ""})]


def test_cluster_policy_uses_every_eligible_node() -> None:
    assert backend_nodes({"spec": {"externalTrafficPolicy": "Cluster"}}, NODES, []) == ["a", "b"]


def test_local_policy_uses_nodes_with_ready_endpoints_and_tolerates_missing_node_names() -> None:
    slices = [
        endpoint_slice(
            {"addresses": ["10.244.0.5"], "nodeName": "b", "conditions": {"ready": True}},
            {"addresses": ["10.244.0.6"], "conditions": {"ready": True}},  # no nodeName: upstream panicked here
            {"addresses": ["10.244.0.7"], "nodeName": "a", "conditions": {"ready": False}},
            {"addresses": ["10.244.0.8"], "nodeName": "d"},
        )
    ]
    assert backend_nodes({"spec": {"externalTrafficPolicy": "Local"}}, NODES, slices) == ["b"]


def test_slices_per_family_and_chunked() -> None:
    backends = [Backend(f"n{i:03d}", (f"10.0.{i // 250}.{i % 250}", f"fd00::{i:x}"), "p1") for i in range(150)]
    ports = [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 30080}]
    slices = parent_slices("aabc", "tenant-acme", ports, backends, {"cluster.x-k8s.io/cluster-name": "acme"})
    assert [(s["metadata"]["name"], s["addressType"], len(s["endpoints"])) for s in slices] == [
        ("aabc-ipv4-0", "IPv4", 100),
        ("aabc-ipv4-1", "IPv4", 50),
        ("aabc-ipv6-0", "IPv6", 100),
        ("aabc-ipv6-1", "IPv6", 50),
    ]
    first = slices[0]
    assert first["ports"] == [{"name": "http", "protocol": "TCP", "port": 30080}]
    assert first["metadata"]["labels"]["kubernetes.io/service-name"] == "aabc"
    assert first["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] == "tenant-cloud-ccm"
    assert first["endpoints"][0] == {
        "addresses": ["10.0.0.0"],
        "conditions": {"ready": True, "serving": True, "terminating": False},
        "nodeName": "p1",
    }
    assert not slice_differs(first, first)
    moved = {**first, "endpoints": [{**first["endpoints"][0], "nodeName": "p2"}, *first["endpoints"][1:]]}
    assert slice_differs(moved, first)


def test_no_backends_no_slices() -> None:
    assert parent_slices("aabc", "ns", [], [], {}) == []
