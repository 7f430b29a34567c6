"""The cloud-node controller: initialise tenant Nodes from their VMIs and keep them in step.

Sets providerID, addresses, instance type and topology labels, then removes the uninitialized taint.
Driven by watches on tenant Nodes, this cluster's VMIs and VMs, and (optionally) parent Nodes, so
addresses and zone follow the VMI, live migration included.
"""

from __future__ import annotations

import logging
from typing import Any

from prometheus_client import CollectorRegistry, Counter

from ccm.config import InstancesV2Config
from ccm.instances import UNINITIALIZED_TAINT, find_instance, has_taint, initialise
from ccm.kubevirt import VirtualMachine, VirtualMachineInstance
from ccm.views import Views
from kube.client import Client
from kube.controller import Controller, ControllerMetrics, Result
from kube.events import EventRecorder
from kube.resources import NODES

log = logging.getLogger(__name__)

NAME = "cloud-node"


class NodeMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.initialised = Counter(
            "tenant_cloud_ccm_nodes_initialized_total", "Tenant Nodes initialised from their VMI.", registry=registry
        )
        self.lookup_failures = Counter(
            "tenant_cloud_ccm_instance_lookup_failures_total",
            "Reconciles of an uninitialised Node that found no VMI of this cluster.",
            registry=registry,
        )


class NodeController:
    def __init__(
        self,
        tenant: Client,
        views: Views,
        config: InstancesV2Config,
        events: EventRecorder,
        registry: CollectorRegistry,
        controller_metrics: ControllerMetrics,
        workers: int = 4,
    ) -> None:
        self.tenant = tenant
        self.views = views
        self.config = config
        self.events = events
        self.metrics = NodeMetrics(registry)
        self.controller: Controller[str] = Controller(NAME, self.reconcile, workers=workers, metrics=controller_metrics)
        self._watch()

    def _watch(self) -> None:
        enqueue = self.controller.queue.add
        self.views.enqueue_on_changes(enqueue)
        if self.views.parent_nodes is not None:

            def parent_node_changed(old: dict[str, Any], new: dict[str, Any]) -> None:
                if (old.get("metadata") or {}).get("labels") != (new.get("metadata") or {}).get("labels"):
                    for name in self.views.tenant_nodes_on_parent_node(new):
                        enqueue(name)

            self.views.parent_nodes.add_handlers(on_update=parent_node_changed)

    async def reconcile(self, name: str) -> Result | None:
        node = self.views.nodes.store.get(name)
        if node is None:
            return None
        found = find_instance(node, self.views.vmi, self.views.vmis_with_hostname)
        if found is None:
            if has_taint(node, UNINITIALIZED_TAINT):
                self.metrics.lookup_failures.inc()
                self.events.warning(
                    node,
                    "InstanceNotFound",
                    f"no VirtualMachineInstance of this cluster in {self.views.namespace} matches this node",
                )
            return None
        vmi = VirtualMachineInstance.read(found)
        vm_obj = self.views.vm(vmi.metadata.name)
        vm = VirtualMachine.read(vm_obj) if vm_obj is not None else None
        change = initialise(node, vmi, vm, self.views.parent_node(vmi.status.node_name), self.config)
        if change.empty:
            return None
        resource_version = node["metadata"]["resourceVersion"]
        if change.addresses is not None:
            # A merge patch replaces the list; a strategic merge would merge addresses by type.
            patched = await self.tenant.patch(
                NODES, name, {"status": {"addresses": change.addresses}}, subresource="status"
            )
            resource_version = patched["metadata"]["resourceVersion"]
        if change.spec or change.labels:
            # resourceVersion makes the patch conditional: taints are replaced whole, never over a newer list.
            metadata: dict[str, Any] = {"resourceVersion": resource_version}
            if change.labels:
                metadata["labels"] = change.labels
            await self.tenant.patch(NODES, name, {"metadata": metadata, "spec": change.spec})
        if "taints" in change.spec and has_taint(node, UNINITIALIZED_TAINT):
            self.metrics.initialised.inc()
            self.events.normal(
                node,
                "Initialized",
                f"initialised from VirtualMachineInstance {self.views.namespace}/{vmi.metadata.name}",
            )
            log.info("initialised node %s from VMI %s/%s", name, self.views.namespace, vmi.metadata.name)
        return None
