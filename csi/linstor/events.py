"""Health changes of parent volumes, and what data locality did for them, as Events on the tenant PVCs.

Driven by what the controller already computes when the sidecars ask (ListVolumes, ControllerGetVolume): no
polling of its own. An Event is recorded when a volume is first seen abnormal, when it turns abnormal or healthy,
and when the reason it is abnormal changes; a volume that is simply healthy produces none. Locality notices
(a replica requested on the VM's node, or refused) are recorded once each, as they happen.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from cachetools import LRUCache

from csi.linstor.health import Health
from kube.client import Client, Object
from kube.events import NORMAL, WARNING, EventRecorder
from kube.informer import Informer, run_informers
from kube.resources import PERSISTENTVOLUMES

if TYPE_CHECKING:
    from csi.linstor.view import LinstorView

ABNORMAL_REASON = "ParentVolumeAbnormal"
HEALTHY_REASON = "ParentVolumeHealthy"
BY_VOLUME_HANDLE = "volume-handle"

HealthListener = Callable[[str, Health | None, Health], None]
# (volume ID, Event type, reason, message): something the driver did to a volume, worth telling its tenant.
NoticeListener = Callable[[str, str, str, str], None]


class HealthTransitions:
    """The last health seen per volume, to tell changes from repeats."""

    def __init__(self, listeners: Iterable[HealthListener] = (), maxsize: int = 8192) -> None:
        self.listeners = list(listeners)
        self._last: LRUCache[str, Health] = LRUCache(maxsize=maxsize)

    def observe(self, volume: str, current: Health) -> None:
        previous = self._last.get(volume)
        self._last[volume] = current
        if changed(previous, current):
            for listener in self.listeners:
                listener(volume, previous, current)


def changed(previous: Health | None, current: Health) -> bool:
    if previous is None:
        return current.abnormal
    if previous.abnormal != current.abnormal:
        return True
    return current.abnormal and previous.message != current.message


def volume_handle_indexer(driver_name: str) -> Callable[[Object], list[str]]:
    def index(volume: Object) -> list[str]:
        csi = (volume.get("spec") or {}).get("csi") or {}
        return [str(csi["volumeHandle"])] if csi.get("driver") == driver_name and csi.get("volumeHandle") else []

    return index


def claim_of(volume: Object) -> Object | None:
    """The tenant PVC bound to a tenant PV, as an object an Event can refer to."""
    ref: dict[str, Any] = (volume.get("spec") or {}).get("claimRef") or {}
    if not ref.get("name") or not ref.get("namespace"):
        return None
    metadata = {k: ref[k] for k in ("name", "namespace", "uid") if ref.get(k)}
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": metadata}


class TenantVolumeEvents:
    """Finds the tenant PVC of a volume ID through the tenant PVs of our driver and records the Event there."""

    def __init__(
        self,
        tenant: Client,
        driver_name: str,
        *,
        component: str = "tenant-cloud-csi",
        recorder: EventRecorder | None = None,
    ) -> None:
        self.volumes = Informer(
            tenant, PERSISTENTVOLUMES, indexers={BY_VOLUME_HANDLE: volume_handle_indexer(driver_name)}
        )
        self.recorder = recorder or EventRecorder(tenant, component)

    @property
    def informers(self) -> list[Informer]:
        return [self.volumes]

    def follow(self, view: LinstorView) -> None:
        """Record what `view` reports: health changes and locality notices."""
        view.add_listener(self.health_changed)
        view.add_notice_listener(self.notice)

    def health_changed(self, volume_id: str, previous: Health | None, current: Health) -> None:
        """A HealthListener: one Event on each tenant PVC using `volume_id`."""
        kind, reason = (WARNING, ABNORMAL_REASON) if current.abnormal else (NORMAL, HEALTHY_REASON)
        self.notice(volume_id, kind, reason, f"parent volume {volume_id}: {current.message}")

    def notice(self, volume_id: str, kind: str, reason: str, message: str) -> None:
        """A NoticeListener: the Event on each tenant PVC using `volume_id` (none when no tenant PV names it)."""
        for volume in self.volumes.store.by_index(BY_VOLUME_HANDLE, volume_id):
            claim = claim_of(volume)
            if claim is not None:
                self.recorder.event(claim, kind, reason, message)

    async def run(self) -> None:
        """Watch tenant PVs and write Events until cancelled."""
        async with asyncio.TaskGroup() as group:
            group.create_task(run_informers(self.informers))
            group.create_task(self.recorder.run())
