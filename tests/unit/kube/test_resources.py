"""Resource paths for core, grouped, namespaced and cluster-scoped resources and subresources."""

from __future__ import annotations

import pytest

from kube.resources import CONFIGMAPS, NODES, Resource

VM = Resource("kubevirt.io", "v1", "virtualmachines", "VirtualMachine")
VM_SUBRESOURCES = Resource("subresources.kubevirt.io", "v1", "virtualmachines", "VirtualMachine")


@pytest.mark.parametrize(
    ("resource", "namespace", "name", "subresource", "path"),
    [
        (CONFIGMAPS, None, None, None, "/api/v1/configmaps"),
        (CONFIGMAPS, "ns", None, None, "/api/v1/namespaces/ns/configmaps"),
        (CONFIGMAPS, "ns", "a.b", None, "/api/v1/namespaces/ns/configmaps/a.b"),
        (NODES, None, "n1", "status", "/api/v1/nodes/n1/status"),
        (VM, "t", "vm-1", None, "/apis/kubevirt.io/v1/namespaces/t/virtualmachines/vm-1"),
        (
            VM_SUBRESOURCES,
            "t",
            "vm-1",
            "addvolume",
            "/apis/subresources.kubevirt.io/v1/namespaces/t/virtualmachines/vm-1/addvolume",
        ),
        (CONFIGMAPS, "ns", "../../secrets", None, "/api/v1/namespaces/ns/configmaps/..%2F..%2Fsecrets"),
    ],
)
def test_paths(resource: Resource, namespace: str | None, name: str | None, subresource: str | None, path: str) -> None:
    assert resource.path(namespace, name, subresource) == path


def test_rejects_namespace_for_cluster_scoped_and_empty_names() -> None:
    with pytest.raises(ValueError, match="cluster-scoped"):
        NODES.path("ns")
    for bad in ("", ".", ".."):
        with pytest.raises(ValueError, match="invalid"):
            CONFIGMAPS.path("ns", bad)
    with pytest.raises(ValueError, match="invalid namespace"):
        CONFIGMAPS.path("..", "x")


def test_api_version() -> None:
    assert (CONFIGMAPS.api_version, VM.api_version) == ("v1", "kubevirt.io/v1")
