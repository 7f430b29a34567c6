"""Claims of LINSTOR StorageClasses, thin: provision (external-provisioner + linstor-csi), bind (PV controller),
expand (csi-resizer), and let go of `kubernetes.io/pvc-protection` once no VMI uses a deleted claim."""

from __future__ import annotations

import logging
from pathlib import Path

from cachetools import LRUCache

from e2e.sims._cdi_claims import (
    DRIVER,
    DataSource,
    capacity_bytes,
    claim_binding_patch,
    claim_status_patch,
    data_source_of,
    is_our_volume,
    persistent_volume_for,
    protection_release,
    provisioned_by_us,
    provisioner_identity,
    requested_bytes,
    resize_for,
    source_problem,
    volume_name_for,
)
from e2e.sims._cdi_datavolume import default_storage_class
from e2e.sims._cdi_images import Images
from e2e.sims._cdi_meta import deleting, name_of, namespace_of, spec, status, uid_of
from e2e.sims._cdi_quantity import format_binary, linstor_volume_size, parse_quantity
from e2e.sims._cdi_runtime import Recorders, set_finalizers
from e2e.sims._cdi_view import ParentView
from kube.client import Client, Object
from kube.controller import Controller
from kube.errors import AlreadyExists, NotFound
from kube.resources import PERSISTENTVOLUMECLAIMS, PERSISTENTVOLUMES

log = logging.getLogger(__name__)

PROVISIONER = f"{DRIVER}_sim-cdi"
RESIZER = f"external-resizer {DRIVER}"
PV_CONTROLLER = "persistentvolume-controller"
NORMAL, WARNING = "Normal", "Warning"


class ClaimController:
    def __init__(
        self, parent: Client, view: ParentView, images: Images, recorders: Recorders, workers: int = 4
    ) -> None:
        self.parent = parent
        self.view = view
        self.images = images
        self.recorders = recorders
        self.identity = provisioner_identity()
        self.controller: Controller[str] = Controller("cdi-claims", self.reconcile, workers=workers)
        # Shrink requests already reported, so a claim's every update does not repeat the Event.
        self._refused: LRUCache[tuple[str, str], bool] = LRUCache(maxsize=4096)

    def _event(self, component: str, claim: Object, kind: str, reason: str, message: str) -> None:
        self.recorders.emit(component, PERSISTENTVOLUMECLAIMS, claim, kind, reason, message)

    async def reconcile(self, key: str) -> None:
        claim = self.view.claims.store.get(key)
        if claim is None:
            return
        if deleting(claim):
            await self._release_protection(claim)
            return
        volume_name = spec(claim).get("volumeName")
        if not volume_name:
            await self._provision(claim)
            return
        volume = self.view.volumes.store.get(str(volume_name))
        if volume is None or not is_our_volume(volume):
            return
        if (spec(volume).get("claimRef") or {}).get("uid") != uid_of(claim):
            return
        claim = await self._bind(claim, volume)
        await self._resize(claim, volume)

    async def _provision(self, claim: Object) -> None:
        if status(claim).get("phase") not in (None, "", "Pending"):
            return
        if "storageClassName" not in spec(claim):
            await self._assign_default_class(claim)
            return
        storage_class = self.view.storage_class(spec(claim).get("storageClassName"))
        if storage_class is None or not provisioned_by_us(storage_class):
            return  # no provisioner for this class here: the claim stays Pending, as on a real cluster
        volume = await self._existing_volume(volume_name_for(claim))
        if volume is None:
            volume = await self._create_volume(claim, storage_class)
            if volume is None:
                return
        if (spec(volume).get("claimRef") or {}).get("uid") == uid_of(claim):
            await self._bind(claim, volume)

    async def _existing_volume(self, name: str) -> Object | None:
        """From the cache, or from the API when the cache may not have caught up with our own create yet."""
        cached = self.view.volumes.store.get(name)
        if cached is not None:
            return cached
        try:
            live: Object = await self.parent.get(PERSISTENTVOLUMES, name)
        except NotFound:
            return None
        return live

    async def _assign_default_class(self, claim: Object) -> None:
        """The PV controller's retroactive default: a class-less claim gets the default class once there is one."""
        default = default_storage_class(self.view.classes.store.values())
        if default is None:
            return
        patch = {"spec": {"storageClassName": default}}
        await self.parent.patch(PERSISTENTVOLUMECLAIMS, name_of(claim), patch, namespace_of(claim))

    def _origin(self, source: DataSource) -> tuple[Object | None, int | None, Path]:
        if source.kind == "VolumeSnapshot":
            snapshot = self.view.snapshot(source.namespace, source.name)
            restore = status(snapshot).get("restoreSize") if snapshot is not None else None
            size = parse_quantity(restore) if restore is not None else None
            return snapshot, size, self.images.snapshot(source.namespace, source.name)
        origin = self.view.claim(source.namespace, source.name)
        size = capacity_bytes(origin) if origin is not None else None
        return origin, size, self.images.volume(source.namespace, source.name)

    async def _create_volume(self, claim: Object, storage_class: Object) -> Object | None:
        """linstor-csi CreateVolume (blank, clone or restore), then the PV external-provisioner writes for it."""
        namespace, name, class_name = namespace_of(claim), name_of(claim), name_of(storage_class)
        source = data_source_of(claim)
        size = linstor_volume_size(requested_bytes(claim))
        target = self.images.volume(namespace, name)
        self._event(
            PROVISIONER,
            claim,
            NORMAL,
            "Provisioning",
            f'External provisioner is provisioning volume for claim "{namespace}/{name}"',
        )
        if source is not None:
            origin, origin_size, origin_image = self._origin(source)
            problem = source_problem(claim, source, origin, origin_size)
            if problem is not None:
                message = f'failed to provision volume with StorageClass "{class_name}": {problem}'
                self._event(PROVISIONER, claim, WARNING, "ProvisioningFailed", message)
                return None
            await self.images.copy(origin_image, target, size)
        else:
            # The image path is per claim name: a new volume never inherits bytes of an older claim of that name.
            await self.images.remove(target)
            await self.images.create_blank(target, size)
        body = persistent_volume_for(claim, storage_class, size, self.identity)
        try:
            volume: Object = await self.parent.create(PERSISTENTVOLUMES, body)
        except AlreadyExists:
            volume = await self.parent.get(PERSISTENTVOLUMES, name_of(body))
        self._event(
            PROVISIONER, claim, NORMAL, "ProvisioningSucceeded", f"Successfully provisioned volume {name_of(volume)}"
        )
        log.info("claim %s/%s: provisioned %s (%d bytes)", namespace, name, name_of(volume), size)
        return volume

    async def _bind(self, claim: Object, volume: Object) -> Object:
        """The PV controller's bind, each step only if missing: volume Bound, claim's volumeName, claim Bound."""
        if status(volume).get("phase") != "Bound":
            await self.parent.patch(
                PERSISTENTVOLUMES, name_of(volume), {"status": {"phase": "Bound"}}, subresource="status"
            )
        namespace, name = namespace_of(claim), name_of(claim)
        binding = claim_binding_patch(claim, volume)
        if binding is not None:
            claim = await self.parent.patch(PERSISTENTVOLUMECLAIMS, name, binding, namespace)
        bound = claim_status_patch(claim, volume)
        if bound is not None:
            claim = await self.parent.patch(PERSISTENTVOLUMECLAIMS, name, bound, namespace, subresource="status")
            log.info("claim %s/%s: bound to %s", namespace, name, name_of(volume))
        return claim

    async def _resize(self, claim: Object, volume: Object) -> None:
        """csi-resizer with linstor-csi ControllerExpandVolume; the tenant side grows the filesystem."""
        plan = resize_for(claim, self.view.storage_class(spec(claim).get("storageClassName")))
        namespace, name = namespace_of(claim), name_of(claim)
        if plan.shrink:
            request = str(((spec(claim).get("resources") or {}).get("requests") or {}).get("storage"))
            if (uid_of(claim), request) not in self._refused:
                self._refused[(uid_of(claim), request)] = True
                current = format_binary(capacity_bytes(claim) or 0)
                message = (
                    f"requested size {request} is below the volume's capacity {current}; LINSTOR volumes cannot shrink"
                )
                self._event(RESIZER, claim, WARNING, "VolumeResizeFailed", message)
            return
        if not plan.grow:
            return
        self._event(RESIZER, claim, NORMAL, "Resizing", f"External resizer is resizing volume {name_of(volume)}")
        await self.images.grow(self.images.volume(namespace, name), plan.size)
        capacity = {"storage": format_binary(plan.size)}
        if (capacity_bytes(volume) or 0) < plan.size:
            volume = await self.parent.patch(PERSISTENTVOLUMES, name_of(volume), {"spec": {"capacity": capacity}})
        await self.parent.patch(
            PERSISTENTVOLUMECLAIMS, name, {"status": {"capacity": capacity}}, namespace, subresource="status"
        )
        self._event(RESIZER, claim, NORMAL, "VolumeResizeSuccessful", "Resize volume succeeded")
        log.info("claim %s/%s: expanded to %d bytes", namespace, name, plan.size)

    async def _release_protection(self, claim: Object) -> None:
        kept = protection_release(claim, self.view.users_of(namespace_of(claim), name_of(claim)))
        if kept is None:
            return
        await set_finalizers(self.parent, PERSISTENTVOLUMECLAIMS, claim, kept)
