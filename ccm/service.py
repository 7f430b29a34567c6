"""The service controller: runs lb/'s load-balancer reconciler with backends taken from this cluster's VMIs."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry

from ccm.config import CloudConfig
from ccm.instances import find_instance, interface_ips
from ccm.kubevirt import VirtualMachineInstance
from ccm.views import Views
from kube.client import Client
from kube.controller import ControllerMetrics
from kube.events import EventRecorder
from lb.controller import NAME, LoadBalancerController
from lb.endpoints import Backend, eligible
from lb.translate import Scope

__all__ = ["NAME", "VMIBackends", "service_controller"]


class VMIBackends:
    """A tenant Node's load-balancer backend: the IPs of its VMI and the parent Node it runs on."""

    def __init__(self, views: Views, interface_name: str) -> None:
        self.views = views
        self.interface_name = interface_name

    def backend(self, node_name: str) -> Backend | None:
        node = self.views.nodes.store.get(node_name)
        found = find_instance(node, self.views.vmi, self.views.vmis_with_hostname) if node else None
        if found is None:
            return None
        vmi = VirtualMachineInstance.read(found)
        return Backend(node_name, tuple(interface_ips(vmi, self.interface_name)), vmi.status.node_name)


def _backend_relevant(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Kubelet heartbeats change Nodes every few seconds; only eligibility and identity matter here."""
    return eligible(old) != eligible(new) or (old.get("spec") or {}).get("providerID") != (new.get("spec") or {}).get(
        "providerID"
    )


def _vmi_relevant(old: dict[str, Any], new: dict[str, Any]) -> bool:
    before, after = VirtualMachineInstance.read(old), VirtualMachineInstance.read(new)
    return before.status.interfaces != after.status.interfaces or before.status.node_name != after.status.node_name


def service_controller(
    tenant: Client,
    parent: Client,
    views: Views,
    config: CloudConfig,
    cluster_name: str,
    events: EventRecorder,
    registry: CollectorRegistry,
    metrics: ControllerMetrics,
) -> LoadBalancerController:
    scope = Scope(
        cluster_name=cluster_name,
        namespace=views.namespace,
        cluster_label=config.cluster_label,
        config=config.load_balancer,
        infra_labels=dict(config.infra_labels),
    )
    backends = VMIBackends(views, config.instances_v2.interface_name)
    controller = LoadBalancerController(tenant, parent, scope, views.nodes, backends, events, registry, metrics)

    def any_change(_: dict[str, Any]) -> None:
        controller.backends_changed()

    views.nodes.add_handlers(
        any_change, lambda old, new: controller.backends_changed() if _backend_relevant(old, new) else None, any_change
    )
    views.vmis.add_handlers(
        any_change, lambda old, new: controller.backends_changed() if _vmi_relevant(old, new) else None, any_change
    )
    return controller
