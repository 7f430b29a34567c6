"""virt-controller's VirtualMachine loop, for volumes: a VM's queued status.volumeRequests are applied to the
running VMI's spec and to the VM template (so they survive a restart), then dropped from the status."""

from __future__ import annotations

from e2e.sims._kubevirt_requests import apply_volume_requests, trim_done_requests
from e2e.sims._kubevirt_spec import VMIS, VMS, Object, is_running, split_key
from e2e.sims._kubevirt_writes import RACE_RETRY, LatestObjects, lost_race, set_ops, spec_ops
from kube.client import Client, PatchType
from kube.controller import Controller, Result
from kube.errors import Invalid
from kube.informer import Informer, object_key

TEMPLATE_SPEC = ("spec", "template", "spec")


class VirtualMachineController:
    def __init__(self, client: Client, vms: Informer, vmis: Informer, workers: int = 4) -> None:
        self.client = client
        self.vms = LatestObjects(client, vms)
        self.vmis = LatestObjects(client, vmis)
        self.controller: Controller[str] = Controller("kubevirt-vm", self.reconcile, workers=workers)
        vms.add_handlers(on_add=self._enqueue, on_update=lambda _old, new: self._enqueue(new))
        # A VMI that starts (or comes back) picks up requests still queued on its VM.
        vmis.add_handlers(on_add=self._enqueue, on_update=lambda _old, new: self._enqueue(new))

    def _enqueue(self, obj: Object) -> None:
        self.controller.queue.add(object_key(obj))

    async def reconcile(self, key: str) -> Result | None:
        try:
            await self._apply_requests(key)
        except Invalid as error:
            if not lost_race(error):
                raise
            self.vms.distrust(key)
            self.vmis.distrust(key)
            return Result(requeue_after=RACE_RETRY)
        return None

    async def _apply_requests(self, key: str) -> None:
        namespace, name = split_key(key)
        vm = await self.vms.get(key)
        if vm is None:
            return
        requests: list[Object] = (vm.get("status") or {}).get("volumeRequests") or []
        if not requests:
            return
        vmi = await self.vmis.get(key)
        if vmi is None:
            # A VMI informer still relisting (after an apiserver restart) may miss a VMI started moments ago;
            # trimming the requests on that word would lose the hot-plug for good, so ask the API.
            self.vmis.distrust(key)
            vmi = await self.vmis.get(key)
        if vmi is not None and is_running(vmi):
            ops = spec_ops(vmi, ("spec",), apply_volume_requests(vmi.get("spec") or {}, requests))
            if ops:
                self.vmis.wrote(key, await self.client.patch(VMIS, name, ops, namespace, patch_type=PatchType.JSON))
        template = ((vm.get("spec") or {}).get("template") or {}).get("spec") or {}
        ops = spec_ops(vm, TEMPLATE_SPEC, apply_volume_requests(template, requests))
        if ops:
            vm = self.vms.wrote(key, await self.client.patch(VMS, name, ops, namespace, patch_type=PatchType.JSON))
            template = vm["spec"]["template"]["spec"]
        # Trim what the object we now hold shows: requests queued since our read stay until they are applied.
        queued: list[Object] = (vm.get("status") or {}).get("volumeRequests") or []
        remaining = trim_done_requests(queued, template)
        if remaining != queued:
            ops = set_ops(vm, ("status", "volumeRequests"), remaining or None)
            patched = await self.client.patch(
                VMS, name, ops, namespace, patch_type=PatchType.JSON, subresource="status"
            )
            self.vms.wrote(key, patched)
