"""LINSTOR PersistentVolumes after their claim: Released (PV controller), deleted with their bytes when the
reclaim policy says Delete (external-provisioner + linstor-csi DeleteVolume), and their finalizers let go of
(pv-protection controller, external-provisioner)."""

from __future__ import annotations

import logging

from e2e.sims._cdi_claims import (
    PROVISIONER_FINALIZER,
    is_our_volume,
    reclaim_policy,
    released,
    volume_finalizers_after_delete,
)
from e2e.sims._cdi_images import Images
from e2e.sims._cdi_meta import deleting, finalizers, spec, status, uid_of
from e2e.sims._cdi_runtime import set_finalizers
from e2e.sims._cdi_view import ParentView
from kube.client import Client, Object
from kube.controller import Controller
from kube.errors import NotFound
from kube.resources import PERSISTENTVOLUMECLAIMS, PERSISTENTVOLUMES

log = logging.getLogger(__name__)


class VolumeController:
    def __init__(self, parent: Client, view: ParentView, images: Images, workers: int = 2) -> None:
        self.parent = parent
        self.view = view
        self.images = images
        self.controller: Controller[str] = Controller("cdi-volumes", self.reconcile, workers=workers)

    async def reconcile(self, name: str) -> None:
        volume = self.view.volumes.store.get(name)
        if volume is None or not is_our_volume(volume):
            return
        ref = spec(volume).get("claimRef") or {}
        claim = self.view.claim(str(ref.get("namespace") or ""), str(ref.get("name") or ""))
        if deleting(volume):
            await self._finalize(volume, claim)
            return
        if released(volume, claim):
            if claim is None and await self._claim_exists(ref):
                return  # our cache is behind; the claim's own events bring us back
            volume = await self.parent.patch(
                PERSISTENTVOLUMES, name, {"status": {"phase": "Released"}}, subresource="status"
            )
            log.info("volume %s: claim %s/%s is gone; Released", name, ref.get("namespace"), ref.get("name"))
        if status(volume).get("phase") == "Released" and reclaim_policy(volume) == "Delete":
            await self._remove_bytes(volume, claim)
            try:
                await self.parent.delete(PERSISTENTVOLUMES, name, uid=uid_of(volume))
            except NotFound:
                return
            log.info("volume %s: deleted (reclaim policy Delete)", name)

    async def _claim_exists(self, ref: dict[str, object]) -> bool:
        try:
            live = await self.parent.get(PERSISTENTVOLUMECLAIMS, str(ref.get("name")), str(ref.get("namespace")))
        except NotFound:
            return False
        return uid_of(live) == ref.get("uid")

    async def _remove_bytes(self, volume: Object, claim: Object | None) -> None:
        """linstor-csi DeleteVolume; the image path is per claim name, so a newer claim of that name keeps its image."""
        ref = spec(volume).get("claimRef") or {}
        if claim is not None and uid_of(claim) != ref.get("uid"):
            return
        await self.images.remove(self.images.volume(str(ref.get("namespace")), str(ref.get("name"))))

    async def _finalize(self, volume: Object, claim: Object | None) -> None:
        deleted_bytes = False
        if PROVISIONER_FINALIZER in finalizers(volume) and status(volume).get("phase") != "Bound":
            if reclaim_policy(volume) == "Delete":
                await self._remove_bytes(volume, claim)
            deleted_bytes = True
        kept = volume_finalizers_after_delete(volume, deleted_bytes)
        if kept == finalizers(volume):
            return
        await set_finalizers(self.parent, PERSISTENTVOLUMES, volume, kept)
