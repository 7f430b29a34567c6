"""The cloud-node-lifecycle controller: shutdown taint while the VM is off, Node deletion once it is gone.

A Node is deleted only when it carries our providerID, its VMI and VM have both been absent from our
watches for the grace period, and live GETs against the parent confirm both are NotFound. An unreachable
parent is never taken as "gone": every doubt ends in a retry, not a delete.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from ccm.config import NodeLifecycleConfig
from ccm.instances import SHUTDOWN_TAINT, vm_name_from_provider_id, with_taint, without_taint
from ccm.kubevirt import VIRTUALMACHINEINSTANCES, VIRTUALMACHINES, VirtualMachine, VirtualMachineInstance
from ccm.views import Views
from kube.client import Client
from kube.controller import Controller, ControllerMetrics, Result
from kube.errors import NotFound
from kube.events import EventRecorder
from kube.resources import NODES

log = logging.getLogger(__name__)

NAME = "cloud-node-lifecycle"


def is_shut_down(vmi: dict[str, Any] | None, vm: dict[str, Any] | None) -> bool:
    """The VMI finished (Succeeded/Failed), or the VM is stopped and has no VMI."""
    if vmi is not None:
        return VirtualMachineInstance.read(vmi).finished
    return vm is not None and VirtualMachine.read(vm).stopped


class NodeLifecycleController:
    def __init__(
        self,
        tenant: Client,
        parent: Client,
        views: Views,
        config: NodeLifecycleConfig,
        events: EventRecorder,
        controller_metrics: ControllerMetrics,
        clock: Callable[[], float] = time.monotonic,
        workers: int = 2,
    ) -> None:
        self.tenant = tenant
        self.parent = parent
        self.views = views
        self.config = config
        self.events = events
        self._clock = clock
        self._missing_since: dict[str, float] = {}
        self.controller: Controller[str] = Controller(NAME, self.reconcile, workers=workers, metrics=controller_metrics)
        self._watch()

    def _watch(self) -> None:
        self.views.enqueue_on_changes(self.controller.queue.add)

    async def reconcile(self, name: str) -> Result | None:
        node = self.views.nodes.store.get(name)
        if node is None:
            self._missing_since.pop(name, None)
            return None
        vm_name = vm_name_from_provider_id(str((node.get("spec") or {}).get("providerID") or ""))
        if vm_name is None:
            return None  # not initialised by us: nothing proves which VM it is, so it is never deleted
        vmi, vm = self.views.vmi(vm_name), self.views.vm(vm_name)
        if vmi is None and vm is None:
            return await self._gone(node, vm_name)
        self._missing_since.pop(name, None)
        await self._set_shutdown_taint(node, is_shut_down(vmi, vm))
        return None

    async def _set_shutdown_taint(self, node: dict[str, Any], shut_down: bool) -> None:
        taints = list((node.get("spec") or {}).get("taints") or [])
        wanted = (
            with_taint(taints, SHUTDOWN_TAINT, "NoSchedule") if shut_down else without_taint(taints, SHUTDOWN_TAINT)
        )
        if wanted == taints:
            return
        metadata = node["metadata"]
        await self.tenant.patch(
            NODES,
            metadata["name"],
            {"metadata": {"resourceVersion": metadata["resourceVersion"]}, "spec": {"taints": wanted}},
        )
        if shut_down:
            self.events.normal(node, "NodeShutdown", "the node's VirtualMachine is shut down")
        else:
            self.events.normal(node, "NodeRunning", "the node's VirtualMachine is running again")

    async def _gone(self, node: dict[str, Any], vm_name: str) -> Result | None:
        name = node["metadata"]["name"]
        first_missed = self._missing_since.setdefault(name, self._clock())
        remaining = self.config.delete_grace_period - (self._clock() - first_missed)
        if remaining > 0:
            return Result(requeue_after=remaining)
        for resource in (VIRTUALMACHINEINSTANCES, VIRTUALMACHINES):
            try:
                await self.parent.get(resource, vm_name, self.views.namespace)
            except NotFound:
                continue
            # Our watch is behind; it will tell us again.
            self._missing_since.pop(name, None)
            return None
        self.events.normal(
            node,
            "DeletingNode",
            f"deleting node: VirtualMachineInstance and VirtualMachine {self.views.namespace}/{vm_name} are gone",
        )
        log.info("deleting node %s: VMI and VM %s/%s are gone", name, self.views.namespace, vm_name)
        with contextlib.suppress(NotFound):
            await self.tenant.delete(NODES, name, uid=node["metadata"]["uid"])
        self._missing_since.pop(name, None)
        return None
