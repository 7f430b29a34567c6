"""CDI's DataVolume controllers, thin: make the claim, run the simulated importer/cloner, write the status.

Also the garbage collector's share (the parent runs no kube-controller-manager): a DataVolume's claim goes when
the DataVolume does, honouring the `foregroundDeletion` and `orphan` finalizers.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cachetools import LRUCache

from e2e.sims._cdi_claims import capacity_bytes
from e2e.sims._cdi_datavolume import (
    BLANK,
    DATA_SOURCE,
    NONE,
    POPULATOR,
    PVC,
    SNAPSHOT,
    SUCCEEDED,
    UNSUPPORTED,
    WARNING,
    Obstacle,
    Source,
    claim_for,
    claim_spec,
    clone_obstacle,
    controlled_by,
    datavolume_owner,
    default_storage_class,
    events_for,
    requested_size,
    resolve_data_source,
    source_of,
    source_populated,
    source_size,
    status_for,
    transfer_finished,
    transfer_started,
    transfer_state,
)
from e2e.sims._cdi_images import Images
from e2e.sims._cdi_meta import (
    deleting,
    finalizers,
    metadata,
    name_of,
    namespace_of,
    now,
    rfc3339,
    uid_of,
    without,
)
from e2e.sims._cdi_meta import status as status_of
from e2e.sims._cdi_runtime import Recorders, set_finalizers
from e2e.sims._cdi_view import BY_OWNER, DATAVOLUMES, ParentView
from kube.client import Client, Object
from kube.controller import Controller
from kube.errors import AlreadyExists, Conflict, NotFound
from kube.resources import PERSISTENTVOLUMECLAIMS

log = logging.getLogger(__name__)

COMPONENTS = {
    BLANK: "datavolume-import-controller",
    PVC: "datavolume-pvc-clone-controller",
    SNAPSHOT: "datavolume-snapshot-clone-controller",
    DATA_SOURCE: "datavolume-pvc-clone-controller",
    POPULATOR: "datavolume-external-population-controller",
    UNSUPPORTED: "datavolume-import-controller",
    NONE: "datavolume-import-controller",
}
FOREGROUND, ORPHAN = "foregroundDeletion", "orphan"


class DataVolumeController:
    def __init__(
        self, parent: Client, view: ParentView, images: Images, recorders: Recorders, workers: int = 4
    ) -> None:
        self.parent = parent
        self.view = view
        self.images = images
        self.recorders = recorders
        self.controller: Controller[str] = Controller("cdi-datavolumes", self.reconcile, workers=workers)
        # Claims whose transfer finished here, so a reconcile on a cache that lags our own write does not redo it.
        self._transferred: LRUCache[str, bool] = LRUCache(maxsize=4096)

    def _event(self, dv: Mapping[str, Any], source: Source, kind: str, reason: str, message: str) -> None:
        self.recorders.emit(COMPONENTS[source.kind], DATAVOLUMES, dv, kind, reason, message)

    async def reconcile(self, key: str) -> None:
        dv = self.view.datavolumes.store.get(key)
        if dv is None:
            await self._collect_claims(key)
            return
        if deleting(dv):
            await self._finalize(dv)
            return
        source = self._source(dv)
        if source.kind in (NONE, UNSUPPORTED):
            log.debug("datavolume %s: no source this simulator populates (%s)", key, source.name or "none")
            return
        claim = self.view.claim(namespace_of(dv), name_of(dv))
        obstacle: Obstacle | None = None
        if claim is None:
            claim, obstacle = await self._create_claim(dv, source)
        elif not controlled_by(claim, dv):
            message = f'Resource "{name_of(claim)}" already exists and is not managed by DataVolume'
            self._event(dv, source, WARNING, "ErrResourceExists", message)
            return
        await self._write_status(dv, source, claim, obstacle)
        if claim is not None and source.transferred:
            await self._transfer(dv, source, claim)

    def _source(self, dv: Object) -> Source:
        source = source_of(dv)
        if source.kind == DATA_SOURCE:
            source = resolve_data_source(source, self.view.data_source(source.namespace, source.name))
        return source

    def _origins(self, source: Source) -> tuple[Object | None, Object | None]:
        claim = self.view.claim(source.namespace, source.name) if source.kind == PVC else None
        snapshot = self.view.snapshot(source.namespace, source.name) if source.kind == SNAPSHOT else None
        return claim, snapshot

    async def _create_claim(self, dv: Object, source: Source) -> tuple[Object | None, Obstacle | None]:
        source_claim, source_snapshot = self._origins(source)
        requested = requested_size(dv)
        obstacle, ready = clone_obstacle(source, source_claim, source_snapshot, requested)
        if obstacle is not None and not obstacle.in_status:
            self._event(dv, source, WARNING, obstacle.reason, obstacle.message)
        if not ready:
            return None, obstacle
        size = None if requested else source_size(source, source_claim, source_snapshot)
        if requested is None and size is None:
            self._event(dv, source, WARNING, "ErrClaimNotValid", "DataVolume.storage spec is missing the storage size")
            return None, None
        default_class = default_storage_class(self.view.classes.store.values(), for_virt=True)
        body = claim_for(dv, source, claim_spec(dv, default_class, size))
        try:
            created: Object = await self.parent.create(PERSISTENTVOLUMECLAIMS, body)
        except AlreadyExists:
            return self.view.claim(namespace_of(dv), name_of(dv)), None
        log.info("datavolume %s/%s: created claim (%s source)", namespace_of(dv), name_of(dv), source.kind)
        return created, None

    async def _write_status(self, dv: Object, source: Source, claim: Object | None, obstacle: Obstacle | None) -> None:
        current = dict(status_of(dv))
        wanted = status_for(dv, source, claim, obstacle, rfc3339(now()))
        if wanted == current:
            return
        try:
            await self.parent.patch(
                DATAVOLUMES, name_of(dv), {"status": wanted}, namespace_of(dv), subresource="status"
            )
        except NotFound:
            return
        for kind, reason, message in events_for(dv, source, current, wanted):
            if reason:
                self._event(dv, source, kind, reason, message)

    def _origin_image(self, source: Source) -> Path | None:
        """The bytes a clone copies, once its source is still there and populated; None for blank volumes."""
        if source.kind == BLANK:
            return None
        source_claim, source_snapshot = self._origins(source)
        origin = source_claim if source.kind == PVC else source_snapshot
        if origin is None or not source_populated(source, origin):
            raise _SourceGone(source)
        if source.kind == PVC:
            return self.images.volume(source.namespace, source.name)
        return self.images.snapshot(source.namespace, source.name)

    async def _transfer(self, dv: Object, source: Source, claim: Object) -> None:
        """The importer/cloner pod: start (annotate), copy the bytes, finish (annotate); one step per reconcile."""
        state = transfer_state(claim)
        if status_of(claim).get("phase") != "Bound" or state == SUCCEEDED or uid_of(claim) in self._transferred:
            return
        namespace, name = namespace_of(claim), name_of(claim)
        if state != "Running":
            await self._annotate(claim, transfer_started(source, claim))
            return
        try:
            origin = self._origin_image(source)
        except _SourceGone:
            log.info(
                "datavolume %s/%s: source %s %s gone mid-transfer; waiting", namespace, name, source.kind, source.name
            )
            return
        target, size = self.images.volume(namespace, name), capacity_bytes(claim)
        if origin is not None:
            await self.images.copy(origin, target, size)
        elif size is not None:
            await self.images.grow(target, size)
        await self._annotate(claim, transfer_finished(source))
        self._transferred[uid_of(claim)] = True
        log.info("datavolume %s/%s: %s transfer complete", namespace, name, source.kind)

    async def _annotate(self, claim: Object, notes: dict[str, str]) -> None:
        patch = {"metadata": {"annotations": notes}}
        await self.parent.patch(PERSISTENTVOLUMECLAIMS, name_of(claim), patch, namespace_of(claim))

    # --- what the garbage collector would do ------------------------------------------------------------------

    async def _collect_claims(self, key: str) -> None:
        """Delete claims whose controlling DataVolume is gone (checked against the API, as the GC does)."""
        for claim in self.view.claims.store.by_index(BY_OWNER, key):
            owner = datavolume_owner(claim)
            if owner is None or deleting(claim) or await self._owner_exists(namespace_of(claim), *owner):
                continue
            log.info(
                "claim %s/%s: owner DataVolume %s is gone; deleting", namespace_of(claim), name_of(claim), owner[0]
            )
            with contextlib.suppress(NotFound):
                await self.parent.delete(
                    PERSISTENTVOLUMECLAIMS,
                    name_of(claim),
                    namespace_of(claim),
                    uid=uid_of(claim),
                    propagation_policy="Background",
                )

    async def _owner_exists(self, namespace: str, name: str, uid: str) -> bool:
        try:
            live = await self.parent.get(DATAVOLUMES, name, namespace)
        except NotFound:
            return False
        return uid_of(live) == uid

    async def _finalize(self, dv: Object) -> None:
        """Foreground deletion removes the claim first; orphaning drops the claim's owner reference."""
        held = finalizers(dv)
        owned = [c for c in self.view.claims.store.by_index(BY_OWNER, _key(dv)) if controlled_by(c, dv)]
        if ORPHAN in held:
            for claim in owned:
                refs = [r for r in metadata(claim).get("ownerReferences") or () if r.get("uid") != uid_of(dv)]
                patch = {
                    "metadata": {"ownerReferences": refs, "resourceVersion": metadata(claim).get("resourceVersion")}
                }
                with contextlib.suppress(Conflict, NotFound):  # a newer version brings this DataVolume back
                    await self.parent.patch(PERSISTENTVOLUMECLAIMS, name_of(claim), patch, namespace_of(claim))
            await self._drop_finalizer(dv, ORPHAN)
        elif FOREGROUND in held:
            for claim in owned:
                if not deleting(claim):
                    await self.parent.delete(
                        PERSISTENTVOLUMECLAIMS, name_of(claim), namespace_of(claim), uid=uid_of(claim)
                    )
            if not owned:
                await self._drop_finalizer(dv, FOREGROUND)

    async def _drop_finalizer(self, dv: Object, finalizer: str) -> None:
        await set_finalizers(self.parent, DATAVOLUMES, dv, without(finalizers(dv), finalizer))


class _SourceGone(Exception):
    def __init__(self, source: Source) -> None:
        super().__init__(f"{source.kind} {source.namespace}/{source.name}")


def _key(obj: Mapping[str, Any]) -> str:
    return f"{namespace_of(obj)}/{name_of(obj)}"
