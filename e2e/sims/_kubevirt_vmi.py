"""virt-controller's and virt-handler's hotplug work on a running VMI: each hot-plugged volume's status.volumeStatus
entry steps through KubeVirt's phases, one write per step, and the guest gets (or loses) the disk on the way:
plugged before the entry turns Ready, unplugged before it turns Detaching, resized when its PVC grows."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from pathlib import Path

from e2e.sims._disks import volume_image
from e2e.sims._kubevirt_guest import GuestDisks
from e2e.sims._kubevirt_phases import ready_volumes, volume_status_step
from e2e.sims._kubevirt_spec import (
    VMIS,
    Object,
    claim_name,
    claim_size,
    disk_bus,
    disk_named,
    is_running,
    key_of,
    split_key,
    volumes_of,
)
from e2e.sims._kubevirt_writes import RACE_RETRY, LatestObjects, lost_race, set_ops
from kube.client import Client, PatchType
from kube.controller import Controller, Result
from kube.errors import Invalid
from kube.informer import Informer, object_key

log = logging.getLogger(__name__)

CLAIM_INDEX = "claim"
# Pause between two phase writes of one volume: watchers can see each phase, and publish stays fast.
STEP_DELAY = 0.002
# Steps one reconcile takes before handing the key back to the queue (a full attach or detach needs four).
STEPS_PER_RECONCILE = 8


def claims_of(vmi: Object) -> Iterable[str]:
    """Index VMIs by the namespace/name of every PVC their volumes use, so a PVC change finds its VMIs."""
    namespace = (vmi.get("metadata") or {}).get("namespace") or ""
    claims = (claim_name(volume) for volume in volumes_of(vmi.get("spec") or {}))
    return {key_of(namespace, claim) for claim in claims if claim}


class VirtualMachineInstanceController:
    def __init__(
        self,
        client: Client,
        vmis: Informer,
        pvcs: Informer,
        guest: GuestDisks,
        directory: Path,
        *,
        step_delay: float = STEP_DELAY,
        workers: int = 8,
    ) -> None:
        self.client = client
        self.vmis = LatestObjects(client, vmis)
        self.pvcs = pvcs
        self.guest = guest
        self.directory = directory
        self.step_delay = step_delay
        self.controller: Controller[str] = Controller("kubevirt-vmi", self.reconcile, workers=workers)
        vmis.add_handlers(on_add=self._enqueue, on_update=lambda _old, new: self._enqueue(new), on_delete=self._enqueue)
        pvcs.add_handlers(
            on_add=self._claim_changed,
            on_update=lambda _old, new: self._claim_changed(new),
            on_delete=self._claim_changed,
        )

    def _enqueue(self, vmi: Object) -> None:
        self.controller.queue.add(object_key(vmi))

    def _claim_changed(self, pvc: Object) -> None:
        for vmi in self.vmis.informer.store.by_index(CLAIM_INDEX, object_key(pvc)):
            self._enqueue(vmi)

    def _pvc(self, namespace: str, claim: str) -> Object | None:
        return self.pvcs.store.get(key_of(namespace, claim))

    async def reconcile(self, key: str) -> Result | None:
        try:
            return await self._step_volumes(key)
        except Invalid as error:
            if not lost_race(error):
                raise
            self.vmis.distrust(key)
            return Result(requeue_after=RACE_RETRY)

    async def _step_volumes(self, key: str) -> Result | None:
        namespace, name = split_key(key)
        vmi = await self.vmis.get(key)
        if vmi is None or not is_running(vmi):
            await self.guest.unplug_vmi(namespace, name)  # the guest and its disks are gone
            return None
        for _ in range(STEPS_PER_RECONCILE):
            old = (vmi.get("status") or {}).get("volumeStatus") or []
            new = volume_status_step(vmi, lambda claim: self._pvc(namespace, claim))
            await self._sync_guest(vmi, new)
            if new == old:
                return None
            ops = set_ops(vmi, ("status", "volumeStatus"), new or None)
            vmi = self.vmis.wrote(
                key,
                await self.client.patch(VMIS, name, ops, namespace, patch_type=PatchType.JSON, subresource="status"),
            )
            await asyncio.sleep(self.step_delay)
        return Result(requeue_after=self.step_delay)

    async def _sync_guest(self, vmi: Object, statuses: list[Object]) -> None:
        """Make the guest's disks match the Ready volumes of the status about to be written."""
        namespace, name = vmi["metadata"]["namespace"], vmi["metadata"]["name"]
        spec = vmi.get("spec") or {}
        ready = ready_volumes({"spec": spec, "status": {"volumeStatus": statuses}})
        for volume in self.guest.plugged(namespace, name).keys() - ready.keys():
            await self.guest.unplug(namespace, name, volume)
        volumes = {volume["name"]: volume for volume in volumes_of(spec)}
        for volume_name in ready:
            claim = claim_name(volumes[volume_name])
            disk = disk_named(spec, volume_name) or {}
            if claim is None or not disk.get("serial"):
                continue  # udev names by-id links after the serial; without one there is nothing to link
            pvc = self._pvc(namespace, claim)
            size = claim_size(pvc) if pvc is not None else 0
            image = volume_image(self.directory, namespace, claim)
            await self.guest.plug(
                namespace, name, volume_name, bus=disk_bus(disk), serial=str(disk["serial"]), image=image, size=size
            )
            await self.guest.resize(namespace, name, volume_name, size)
