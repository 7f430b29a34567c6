"""The informers the ccm's controllers share: tenant Nodes, and this cluster's VMIs, VMs (and parent Nodes).

Only VMIs and VMs in the parent namespace that carry this cluster's label exist for us, so a Node can never
be matched to another cluster's VMI, whatever its name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ccm.config import CloudConfig
from ccm.instances import candidate_instance_names
from ccm.kubevirt import VIRTUALMACHINEINSTANCES, VIRTUALMACHINES
from kube.client import Client
from kube.informer import Informer
from kube.resources import NODES

Object = dict[str, Any]


def _vmi_hostname(vmi: Object) -> list[str]:
    hostname = (vmi.get("spec") or {}).get("hostname")
    return [hostname] if hostname else []


def _vmi_parent_node(vmi: Object) -> list[str]:
    node = (vmi.get("status") or {}).get("nodeName")
    return [node] if node else []


class Views:
    def __init__(self, tenant: Client, parent: Client, namespace: str, cluster_name: str, config: CloudConfig) -> None:
        self.namespace = namespace
        selector = f"{config.cluster_label}={cluster_name}"
        self.nodes = Informer(tenant, NODES, indexers={"instance": candidate_instance_names})
        self.vmis = Informer(
            parent,
            VIRTUALMACHINEINSTANCES,
            namespace=namespace,
            label_selector=selector,
            indexers={"hostname": _vmi_hostname, "parentNode": _vmi_parent_node},
        )
        self.vms = Informer(parent, VIRTUALMACHINES, namespace=namespace, label_selector=selector)
        instances = config.instances_v2
        reads_parent_nodes = instances.zone_and_region_enabled and instances.topology.source == "parentNode"
        self.parent_nodes = Informer(parent, NODES) if reads_parent_nodes else None

    @property
    def informers(self) -> list[Informer]:
        found = [self.nodes, self.vmis, self.vms]
        return [*found, self.parent_nodes] if self.parent_nodes is not None else found

    def vmi(self, name: str) -> Object | None:
        return self.vmis.store.get(f"{self.namespace}/{name}")

    def vm(self, name: str) -> Object | None:
        return self.vms.store.get(f"{self.namespace}/{name}")

    def vmis_with_hostname(self, hostname: str) -> list[Object]:
        return self.vmis.store.by_index("hostname", hostname)

    def parent_node(self, name: str) -> Object | None:
        if self.parent_nodes is None or not name:
            return None
        return self.parent_nodes.store.get(name)

    def tenant_nodes_for(self, vmi_or_vm: Object) -> set[str]:
        """Names of tenant Nodes this VMI (or its VM, same name) may back: by name, instance id or hostname."""
        keys = [str((vmi_or_vm.get("metadata") or {}).get("name", "")), *_vmi_hostname(vmi_or_vm)]
        return {node["metadata"]["name"] for key in keys for node in self.nodes.store.by_index("instance", key)}

    def enqueue_on_changes(self, enqueue: Callable[[str], None]) -> None:
        """Call `enqueue(tenant node name)` whenever a Node, or a VMI or VM that may back one, changes."""

        def node_changed(node: Object) -> None:
            enqueue(node["metadata"]["name"])

        def instance_changed(obj: Object) -> None:
            for name in self.tenant_nodes_for(obj):
                enqueue(name)

        self.nodes.add_handlers(node_changed, lambda _old, new: node_changed(new))
        for informer in (self.vmis, self.vms):
            informer.add_handlers(instance_changed, lambda _old, new: instance_changed(new), instance_changed)

    def tenant_nodes_on_parent_node(self, parent_node: Object) -> set[str]:
        name = str((parent_node.get("metadata") or {}).get("name", ""))
        found: set[str] = set()
        for vmi in self.vmis.store.by_index("parentNode", name):
            found |= self.tenant_nodes_for(vmi)
        return found
