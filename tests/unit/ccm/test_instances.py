"""InstancesV2 decisions: VMI lookup, providerID, addresses, labels, taints, shutdown."""

from __future__ import annotations

from typing import Any

import pytest

from ccm import instances
from ccm.config import InstancesV2Config, TopologyConfig
from ccm.kubevirt import VirtualMachine, VirtualMachineInstance
from ccm.lifecycle import is_shut_down


def vmi(name: str = "vm-1", ips: list[str] | None = None, **extra: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "metadata": {"name": name, "labels": extra.pop("labels", {}), "annotations": extra.pop("annotations", {})},
        "spec": {"hostname": extra.pop("hostname", name)},
        "status": {
            "phase": extra.pop("phase", "Running"),
            "nodeName": "p1",
            "interfaces": [{"name": "default", "ipAddresses": ips if ips is not None else ["10.0.0.1"]}],
        },
    }
    return obj


def node(
    name: str = "vm-1",
    provider_id: str = "",
    labels: dict[str, str] | None = None,
    addresses: list[dict[str, str]] | None = None,
    taints: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": labels or {}, "resourceVersion": "1"},
        "spec": {
            "providerID": provider_id,
            "taints": taints
            if taints is not None
            else [{"key": instances.UNINITIALIZED_TAINT, "effect": "NoSchedule"}],
        },
        "status": {"addresses": addresses or []},
    }


@pytest.mark.parametrize(
    ("value", "name"),
    [
        ("kubevirt://vm-1", "vm-1"),
        ("kubevirt://worker.a.example", "worker.a.example"),
        ("aws:///i-1", None),
        ("kubevirt://", None),
        ("kubevirt://ns/vm", None),
    ],
)
def test_provider_id_round_trip(value: str, name: str | None) -> None:
    assert instances.vm_name_from_provider_id(value) == name
    if name:
        assert instances.provider_id(name) == value


def test_find_instance_order() -> None:
    store = {"by-label": vmi("by-label"), "n1": vmi("n1"), "other": vmi("other", hostname="n2")}

    def by_hostname(host: str) -> list[dict[str, Any]]:
        return [v for v in store.values() if v["spec"]["hostname"] == host]

    def find(n: dict[str, Any]) -> str | None:
        found = instances.find_instance(n, store.get, by_hostname)
        return found["metadata"]["name"] if found else None

    assert find(node("n1", labels={instances.INSTANCE_ID_LABEL: "by-label"})) == "by-label"
    assert find(node("n1")) == "n1"
    assert find(node("n2")) == "other"
    assert find(node("n1", provider_id="kubevirt://gone")) is None  # providerID wins, even when missing
    assert find(node("n1", provider_id="aws:///i-123")) is None
    assert find(node("unknown")) is None


def test_addresses_dual_stack_without_link_local_and_provided_ip_first() -> None:
    n = node("n1")
    n["metadata"]["annotations"] = {instances.PROVIDED_NODE_IP_ANNOTATION: "fd00::1"}
    got = instances.node_addresses(
        n, VirtualMachineInstance.read(vmi(ips=["10.0.0.1", "fe80::1", "fd00::1", "10.0.0.1"])), "default"
    )
    assert got == [
        {"type": "InternalIP", "address": "fd00::1"},
        {"type": "InternalIP", "address": "10.0.0.1"},
        {"type": "Hostname", "address": "n1"},
    ]


def test_addresses_kept_while_the_vmi_reports_none() -> None:
    previous = [{"type": "InternalIP", "address": "10.0.0.9"}, {"type": "Hostname", "address": "n1"}]
    got = instances.node_addresses(node("n1", addresses=previous), VirtualMachineInstance.read(vmi(ips=[])), "default")
    assert got == previous


def test_initialise_then_nothing_to_do() -> None:
    config = InstancesV2Config()
    v = VirtualMachineInstance.read(vmi("vm-1", annotations={"kubevirt.io/instancetype-name": "u1.small"}))
    parent = {"metadata": {"labels": {instances.ZONE_LABEL: "z1", instances.REGION_LABEL: "r1"}}}
    change = instances.initialise(node("vm-1"), v, None, parent, config)
    assert change.spec == {"providerID": "kubevirt://vm-1", "taints": []}
    assert change.labels == {
        instances.INSTANCE_TYPE_LABEL: "u1.small",
        instances.ZONE_LABEL: "z1",
        instances.REGION_LABEL: "r1",
    }
    done = node(
        "vm-1",
        provider_id="kubevirt://vm-1",
        taints=[],
        labels={k: v for k, v in change.labels.items() if v},
        addresses=change.addresses,
    )
    assert instances.initialise(done, v, None, parent, config).empty


def test_topology_from_vmi_in_least_privilege_mode() -> None:
    config = InstancesV2Config(topology=TopologyConfig(source="vmi", zone_key="example.com/zone"))
    v = VirtualMachineInstance.read(vmi(labels={"example.com/zone": "z9"}, annotations={instances.REGION_LABEL: "r9"}))
    assert instances.topology(v, None, config) == ("z9", "r9")
    assert instances.topology(v, None, InstancesV2Config(zone_and_region_enabled=False)) == (None, None)


def test_instance_type_falls_back_to_the_vm() -> None:
    v = VirtualMachineInstance.read(vmi())
    vm = VirtualMachine.read({"spec": {"instancetype": {"name": "cx1.large"}}})
    assert instances.instance_type(v, vm) == "cx1.large"
    assert instances.instance_type(v, None) is None


@pytest.mark.parametrize(
    ("vmi_phase", "vm_spec", "expected"),
    [
        ("Running", {"running": True}, False),
        ("Succeeded", {"running": False}, True),
        ("Failed", {"running": True}, True),
        (None, {"running": False}, True),
        (None, {"runStrategy": "Halted"}, True),
        (None, {"runStrategy": "Always"}, False),
        (None, None, False),
    ],
)
def test_is_shut_down(vmi_phase: str | None, vm_spec: dict[str, Any] | None, expected: bool) -> None:
    v = vmi(phase=vmi_phase) if vmi_phase else None
    vm = {"spec": vm_spec} if vm_spec is not None else None
    assert is_shut_down(v, vm) is expected
