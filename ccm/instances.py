"""InstancesV2 decisions as pure functions: which VMI backs a Node, and what the Node should then say.

Nothing here does I/O; the node controllers feed it objects from their informers and write the result.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ccm.config import InstancesV2Config
from ccm.kubevirt import INSTANCETYPE_ANNOTATION, VirtualMachine, VirtualMachineInstance

PROVIDER_PREFIX = "kubevirt://"
INSTANCE_ID_LABEL = "node.kubernetes.io/instance-id"
INSTANCE_TYPE_LABEL = "node.kubernetes.io/instance-type"
ZONE_LABEL = "topology.kubernetes.io/zone"
REGION_LABEL = "topology.kubernetes.io/region"
UNINITIALIZED_TAINT = "node.cloudprovider.kubernetes.io/uninitialized"
SHUTDOWN_TAINT = "node.cloudprovider.kubernetes.io/shutdown"
PROVIDED_NODE_IP_ANNOTATION = "alpha.kubernetes.io/provided-node-ip"

Taint = dict[str, Any]
Address = dict[str, str]


def provider_id(vmi_name: str) -> str:
    return PROVIDER_PREFIX + vmi_name


def vm_name_from_provider_id(value: str) -> str | None:
    """`kubevirt://<name>` -> name; any valid object name, dots included (upstream's regex rejects dots)."""
    if not value.startswith(PROVIDER_PREFIX):
        return None
    name = value[len(PROVIDER_PREFIX) :]
    return name if name and "/" not in name else None


def candidate_instance_names(node: dict[str, Any]) -> list[str]:
    """VMI names that may back this Node, most authoritative first (providerID, instance-id label, name)."""
    metadata = node.get("metadata") or {}
    names = [
        vm_name_from_provider_id(str((node.get("spec") or {}).get("providerID") or "")),
        (metadata.get("labels") or {}).get(INSTANCE_ID_LABEL),
        metadata.get("name"),
    ]
    return list(dict.fromkeys(n for n in names if n))


def find_instance(
    node: dict[str, Any],
    by_name: Callable[[str], dict[str, Any] | None],
    by_hostname: Callable[[str], list[dict[str, Any]]],
) -> dict[str, Any] | None:
    """The VMI backing `node`: its providerID once set; before that the instance-id label, the VMI named
    like the Node, or the one VMI whose spec.hostname is the Node's name."""
    metadata = node.get("metadata") or {}
    current = str((node.get("spec") or {}).get("providerID") or "")
    if current:
        name = vm_name_from_provider_id(current)
        return by_name(name) if name else None  # another provider's node is never ours
    instance_id = (metadata.get("labels") or {}).get(INSTANCE_ID_LABEL)
    if instance_id:
        return by_name(instance_id)
    node_name = str(metadata.get("name", ""))
    named = by_name(node_name)
    if named is not None:
        return named
    by_host = by_hostname(node_name)
    return by_host[0] if len(by_host) == 1 else None


def has_taint(node: dict[str, Any], key: str) -> bool:
    return any(t.get("key") == key for t in (node.get("spec") or {}).get("taints") or ())


def without_taint(taints: list[Taint], key: str) -> list[Taint]:
    return [t for t in taints if t.get("key") != key]


def with_taint(taints: list[Taint], key: str, effect: str) -> list[Taint]:
    if any(t.get("key") == key and t.get("effect") == effect for t in taints):
        return taints
    return [*taints, {"key": key, "effect": effect}]


def _usable_ip(value: str) -> str | None:
    try:
        ip = ipaddress.ip_address(value.split("/")[0])
    except ValueError:
        return None
    # The guest agent reports link-local and loopback addresses too; neither reaches the node.
    return None if ip.is_link_local or ip.is_loopback or ip.is_unspecified else str(ip)


def interface_ips(vmi: VirtualMachineInstance, interface_name: str) -> list[str]:
    """The usable IPs the VMI reports on one interface, deduplicated, in reported order."""
    interface = vmi.interface(interface_name)
    ips = (_usable_ip(v) for v in (interface.ips if interface else ()))
    return list(dict.fromkeys(ip for ip in ips if ip))


def node_addresses(node: dict[str, Any], vmi: VirtualMachineInstance, interface_name: str) -> list[Address]:
    """InternalIP for every usable IP of the interface (dual-stack), then Hostname.

    While the VMI briefly reports no IP (guest agent restarting), the Node keeps the IPs it had.
    """
    name = str((node.get("metadata") or {}).get("name", ""))
    ips = interface_ips(vmi, interface_name)
    if not ips:
        previous = (node.get("status") or {}).get("addresses") or []
        ips = [a["address"] for a in previous if a.get("type") == "InternalIP" and a.get("address")]
    provided = ((node.get("metadata") or {}).get("annotations") or {}).get(PROVIDED_NODE_IP_ANNOTATION)
    if provided in ips:
        ips.remove(provided)
        ips.insert(0, provided)  # kubelet's --node-ip choice goes first, as the cloud node controller does
    ips = list(dict.fromkeys(ips))
    return [*({"type": "InternalIP", "address": ip} for ip in ips), {"type": "Hostname", "address": name}]


def instance_type(vmi: VirtualMachineInstance, vm: VirtualMachine | None) -> str | None:
    annotated = vmi.metadata.annotations.get(INSTANCETYPE_ANNOTATION)
    if annotated:
        return annotated
    if vm is not None and vm.spec.instancetype is not None and vm.spec.instancetype.name:
        return vm.spec.instancetype.name
    return None


def topology(
    vmi: VirtualMachineInstance, parent_node: dict[str, Any] | None, config: InstancesV2Config
) -> tuple[str | None, str | None]:
    """Zone and region, from the parent Node running the VMI or from the VMI itself (least privilege)."""
    if not config.zone_and_region_enabled:
        return None, None
    settings = config.topology
    if settings.source == "parentNode":
        labels = ((parent_node or {}).get("metadata") or {}).get("labels") or {}
        return labels.get(ZONE_LABEL), labels.get(REGION_LABEL)

    def from_vmi(key: str) -> str | None:
        return vmi.metadata.labels.get(key) or vmi.metadata.annotations.get(key)

    return from_vmi(settings.zone_key), from_vmi(settings.region_key)


@dataclass(frozen=True)
class NodeChange:
    """The writes that bring a Node in line with its VMI; empty parts mean nothing to write."""

    spec: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, str | None] = field(default_factory=dict)
    addresses: list[Address] | None = None

    @property
    def empty(self) -> bool:
        return not self.spec and not self.labels and self.addresses is None


def initialise(
    node: dict[str, Any],
    vmi: VirtualMachineInstance,
    vm: VirtualMachine | None,
    parent_node: dict[str, Any] | None,
    config: InstancesV2Config,
) -> NodeChange:
    """What the Node must change to describe `vmi`: providerID, addresses, labels, uninitialized taint gone."""
    spec = node.get("spec") or {}
    metadata = node.get("metadata") or {}
    labels = metadata.get("labels") or {}
    spec_change: dict[str, Any] = {}
    if not spec.get("providerID"):
        spec_change["providerID"] = provider_id(vmi.metadata.name)
    taints = list(spec.get("taints") or [])
    if has_taint(node, UNINITIALIZED_TAINT):
        spec_change["taints"] = without_taint(taints, UNINITIALIZED_TAINT)
    wanted = {INSTANCE_TYPE_LABEL: instance_type(vmi, vm)}
    zone, region = topology(vmi, parent_node, config)
    if config.zone_and_region_enabled:
        wanted |= {ZONE_LABEL: zone, REGION_LABEL: region}
    # A value that vanished (say, the parent Node lost its zone label) is not removed: never flap topology.
    label_change: dict[str, str | None] = {k: v for k, v in wanted.items() if v is not None and labels.get(k) != v}
    addresses = node_addresses(node, vmi, config.interface_name)
    current = (node.get("status") or {}).get("addresses") or []
    return NodeChange(
        spec=spec_change,
        labels=label_change,
        addresses=None if _same_addresses(current, addresses) else addresses,
    )


def _same_addresses(current: list[dict[str, Any]], wanted: list[Address]) -> bool:
    return [(a.get("type"), a.get("address")) for a in current] == [(a["type"], a["address"]) for a in wanted]
