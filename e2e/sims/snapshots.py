"""CSI snapshot stand-in on the parent: the snapshot-controller plus csi-snapshotter for the LINSTOR driver.

VolumeSnapshots of PVCs get a VolumeSnapshotContent named `snapcontent-<snapshot uid>`, bound both ways, with
the class's driver and deletionPolicy; the "sidecar" cuts the snapshot by copying the claim's `_disks` image to
the snapshot image and reports snapshotHandle, restoreSize (bytes), creationTime (ns) and readyToUse on the
content, which the snapshot's status mirrors (restoreSize as a quantity). Errors go to `status.error` with the
real controller's messages; unlike the real one, every error is retried when the objects it names change.
Finalizers are the real ones: the snapshot's as-source and bound protection, the content's bound protection
(only when the content is to be deleted with the snapshot), and the source PVC's as-source protection while a
snapshot is cut. Pre-provisioned snapshots (`source.volumeSnapshotContentName`) are left alone.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from e2e.sims._cdi_images import Images
from e2e.sims._cdi_meta import (
    annotations_of,
    deleting,
    finalizers,
    go_quote,
    key,
    metadata,
    name_of,
    namespace_of,
    now,
    rfc3339,
    spec,
    status,
    uid_of,
    without,
)
from e2e.sims._cdi_quantity import format_binary, parse_quantity
from e2e.sims._cdi_runtime import Recorders, on_change, run_simulator, set_finalizers
from e2e.sims.common import Simulation, run
from kube.client import Client, Object
from kube.controller import Controller
from kube.errors import AlreadyExists, NotFound
from kube.informer import Informer
from kube.resources import PERSISTENTVOLUMECLAIMS, PERSISTENTVOLUMES, Resource

log = logging.getLogger("e2e.sims.snapshots")

GROUP = "snapshot.storage.k8s.io"
VOLUMESNAPSHOTS = Resource(GROUP, "v1", "volumesnapshots", "VolumeSnapshot")
CONTENTS = Resource(GROUP, "v1", "volumesnapshotcontents", "VolumeSnapshotContent", namespaced=False)
CLASSES = Resource(GROUP, "v1", "volumesnapshotclasses", "VolumeSnapshotClass", namespaced=False)
DRIVER = "linstor.csi.linbit.com"

DEFAULT_CLASS = "snapshot.storage.kubernetes.io/is-default-class"
SOURCE_PROTECTION = "snapshot.storage.kubernetes.io/volumesnapshot-as-source-protection"
BOUND_PROTECTION = "snapshot.storage.kubernetes.io/volumesnapshot-bound-protection"
CONTENT_PROTECTION = "snapshot.storage.kubernetes.io/volumesnapshotcontent-bound-protection"
PVC_PROTECTION = "snapshot.storage.kubernetes.io/pvc-as-source-protection"
BEING_DELETED = "snapshot.storage.kubernetes.io/volumesnapshot-being-deleted"

CONTROLLER = "snapshot-controller"
SIDECAR = f"csi-snapshotter {DRIVER}"
NORMAL, WARNING = "Normal", "Warning"
BY_CLAIM = "claim"


# --- decisions ---------------------------------------------------------------------------------------------


def content_name_for(snapshot: Mapping[str, Any]) -> str:
    """The snapshot-controller's GetDynamicSnapshotContentNameForSnapshot."""
    return f"snapcontent-{uid_of(snapshot)}"


def snapshot_handle_for(content: Mapping[str, Any]) -> str:
    """csi-snapshotter asks for `snapshot-<VolumeSnapshot uid>`; linstor-csi names the LINSTOR snapshot so and
    returns that name as the snapshot id."""
    return f"snapshot-{(spec(content).get('volumeSnapshotRef') or {}).get('uid', '')}"


def claim_name_of(snapshot: Mapping[str, Any]) -> str | None:
    name = (spec(snapshot).get("source") or {}).get("persistentVolumeClaimName")
    return str(name) if name else None


@dataclass(frozen=True)
class Problem:
    """A snapshot that cannot be cut yet: the Event reason and the `status.error` message."""

    reason: str
    message: str


def claim_problem(snapshot: Mapping[str, Any], claim: Mapping[str, Any] | None) -> str | None:
    """What stops the controller from reaching a bound PV through the snapshot's source claim."""
    name = name_of(snapshot)
    if claim is None:
        return f"snapshot controller failed to update {name} on API server: cannot get claim from snapshot"
    if deleting(claim):
        return (
            f"snapshot controller failed to update {name_of(claim)} on API server: "
            "cannot add finalizer on claim because it is being deleted"
        )
    if status(claim).get("phase") != "Bound" or not spec(claim).get("volumeName"):
        reason = f"the PVC {name_of(claim)} is not yet bound to a PV, will not attempt to take a snapshot"
        return f"failed to get input parameters to create snapshot {name}: {go_quote(reason)}"
    return None


def default_class_for(driver: str, classes: Iterable[Mapping[str, Any]]) -> tuple[str | None, str | None]:
    """(class name, error) for the driver's default class, as SetDefaultSnapshotClass decides."""
    defaults = [c for c in classes if c.get("driver") == driver and annotations_of(c).get(DEFAULT_CLASS) == "true"]
    if not defaults:
        return None, "cannot find default snapshot class"
    if len(defaults) > 1:
        return None, f"{len(defaults)} default snapshot classes were found"
    return name_of(defaults[0]), None


def plan_problem(
    snapshot: Mapping[str, Any],
    claim: Mapping[str, Any] | None,
    volume: Mapping[str, Any] | None,
    classes: Mapping[str, Mapping[str, Any]],
) -> Problem | None:
    """The first thing the controller would fail on, with its Event reason and message; None when all is there."""
    class_name = spec(snapshot).get("volumeSnapshotClassName")
    error: str | None
    if not class_name:
        if claim is None:
            missing = go_quote(f'persistentvolumeclaim "{claim_name_of(snapshot)}" not found')
            error = f"failed to retrieve PVC {claim_name_of(snapshot)} from the lister: {missing}"
        elif volume is None:
            error = claim_problem(snapshot, claim) or f"failed to retrieve PV {spec(claim).get('volumeName')}"
        else:
            error = default_class_for(str((spec(volume).get("csi") or {}).get("driver")), classes.values())[1]
        if error:
            return Problem("SetDefaultSnapshotClassFailed", f"Failed to set default snapshot class with error {error}")
        return None
    problem = claim_problem(snapshot, claim)
    if problem is None and str(class_name) not in classes:
        missing = go_quote(f'volumesnapshotclass.{GROUP} "{class_name}" not found')
        reason = f"failed to retrieve snapshot class {class_name} from the informer: {missing}"
        problem = f"failed to get input parameters to create snapshot {name_of(snapshot)}: {go_quote(reason)}"
    if problem is None and volume is None:
        problem = f"failed to get input parameters to create snapshot {name_of(snapshot)}: PV missing"
    if problem is not None:
        return Problem("SnapshotContentCreationFailed", f"Failed to create snapshot content with error {problem}")
    return None


def error_status_patch(snapshot: Mapping[str, Any], message: str, at: str) -> Object | None:
    """readyToUse false and the error, unless this very message is already there."""
    if (status(snapshot).get("error") or {}).get("message") == message:
        return None
    return {"status": {"readyToUse": False, "error": {"message": message, "time": at}}}


def content_for(
    snapshot: Mapping[str, Any], claim: Mapping[str, Any], volume: Mapping[str, Any], snapshot_class: Mapping[str, Any]
) -> Object:
    policy = str(snapshot_class.get("deletionPolicy") or "Delete")
    return {
        "apiVersion": f"{GROUP}/v1",
        "kind": "VolumeSnapshotContent",
        "metadata": {
            "name": content_name_for(snapshot),
            # Only content that goes with its snapshot needs protecting until the sidecar deleted the snapshot.
            "finalizers": [CONTENT_PROTECTION] if policy == "Delete" else [],
        },
        "spec": {
            "volumeSnapshotRef": {
                "apiVersion": f"{GROUP}/v1",
                "kind": "VolumeSnapshot",
                "name": name_of(snapshot),
                "namespace": namespace_of(snapshot),
                "uid": uid_of(snapshot),
                "resourceVersion": str(metadata(snapshot).get("resourceVersion") or ""),
            },
            "source": {"volumeHandle": (spec(volume).get("csi") or {}).get("volumeHandle")},
            "volumeSnapshotClassName": name_of(snapshot_class),
            "deletionPolicy": policy,
            "driver": snapshot_class.get("driver"),
            "sourceVolumeMode": spec(claim).get("volumeMode") or "Filesystem",
        },
    }


def bound_both_ways(snapshot: Mapping[str, Any], content: Mapping[str, Any] | None) -> bool:
    ref = spec(content).get("volumeSnapshotRef") or {} if content is not None else {}
    return content is not None and ref.get("uid") == uid_of(snapshot) and ref.get("name") == name_of(snapshot)


def cut_status(content: Mapping[str, Any], size: int, created: datetime) -> Object:
    """What csi-snapshotter writes once linstor-csi CreateSnapshot returned ready."""
    nanoseconds = int(created.timestamp()) * 1_000_000_000
    return {
        "status": {
            "snapshotHandle": snapshot_handle_for(content),
            "creationTime": nanoseconds,
            "restoreSize": size,
            "readyToUse": True,
        }
    }


def snapshot_status_for(snapshot: Mapping[str, Any], content: Mapping[str, Any]) -> Object | None:
    """The snapshot's status mirroring its content's; None when it already does."""
    cut = status(content)
    wanted: dict[str, Any] = {
        "boundVolumeSnapshotContentName": name_of(content),
        "readyToUse": cut.get("readyToUse") is True,
    }
    if cut.get("creationTime") is not None:
        wanted["creationTime"] = rfc3339(datetime.fromtimestamp(int(cut["creationTime"]) / 1e9, UTC))
    if cut.get("restoreSize") is not None:
        wanted["restoreSize"] = format_binary(int(cut["restoreSize"]))
    current = status(snapshot)
    same = all(current.get(k) == v for k, v in wanted.items())
    if same and not (wanted["readyToUse"] and current.get("error")):
        return None
    if wanted["readyToUse"]:
        wanted["error"] = None
    return {"status": wanted}


def wanted_finalizers(snapshot: Mapping[str, Any], content: Mapping[str, Any] | None) -> list[str]:
    """As-source protection always; bound protection once bound to content that is deleted with the snapshot."""
    held = finalizers(snapshot)
    wanted = held + [f for f in (SOURCE_PROTECTION,) if f not in held]
    delete_with_snapshot = content is not None and spec(content).get("deletionPolicy") == "Delete"
    if (
        delete_with_snapshot
        and status(snapshot).get("boundVolumeSnapshotContentName")
        and BOUND_PROTECTION not in wanted
    ):
        wanted.append(BOUND_PROTECTION)
    return wanted


def restoring(snapshot: Mapping[str, Any], claims: Iterable[Mapping[str, Any]]) -> bool:
    """A Pending claim is being provisioned from this snapshot (its dataSource names it)."""
    for claim in claims:
        source = spec(claim).get("dataSourceRef") or spec(claim).get("dataSource") or {}
        if (
            namespace_of(claim) == namespace_of(snapshot)
            and source.get("kind") == "VolumeSnapshot"
            and source.get("name") == name_of(snapshot)
            and status(claim).get("phase") == "Pending"
        ):
            return True
    return False


@dataclass(frozen=True)
class Deletion:
    wait: bool = False
    delete_content: bool = False
    finalizers: tuple[str, ...] = ()


def deletion_for(snapshot: Mapping[str, Any], content: Mapping[str, Any] | None, restore_pending: bool) -> Deletion:
    """The snapshot-controller's checkandRemoveSnapshotFinalizersAndCheckandDeleteContent."""
    if content is not None and not bound_both_ways(snapshot, content):
        content = None
    if content is not None and restore_pending:
        return Deletion(wait=True, finalizers=tuple(finalizers(snapshot)))
    delete_content = content is not None and spec(content).get("deletionPolicy") == "Delete"
    drop = (SOURCE_PROTECTION,) if delete_content else (SOURCE_PROTECTION, BOUND_PROTECTION)
    return Deletion(delete_content=delete_content, finalizers=tuple(without(finalizers(snapshot), *drop)))


def claim_release(claim: Mapping[str, Any], snapshots: Iterable[Mapping[str, Any]]) -> list[str] | None:
    """The claim's finalizers without as-source protection once no snapshot of it is still being cut."""
    if PVC_PROTECTION not in finalizers(claim):
        return None
    cutting = any(
        claim_name_of(s) == name_of(claim) and status(s).get("readyToUse") is not True and not deleting(s)
        for s in snapshots
    )
    return None if cutting else without(finalizers(claim), PVC_PROTECTION)


# --- the process -------------------------------------------------------------------------------------------


def _pvc_of(snapshot: Object) -> Iterable[str]:
    name = claim_name_of(snapshot)
    return (key(namespace_of(snapshot), name),) if name else ()


class SnapshotController:
    """Three queues: snapshots (common controller), contents (sidecar), claims (as-source protection)."""

    def __init__(self, parent: Client, images: Images) -> None:
        self.parent = parent
        self.images = images
        self.snapshots = Informer(parent, VOLUMESNAPSHOTS, indexers={BY_CLAIM: _pvc_of})
        self.contents = Informer(parent, CONTENTS)
        self.classes = Informer(parent, CLASSES)
        self.claims = Informer(parent, PERSISTENTVOLUMECLAIMS)
        self.volumes = Informer(parent, PERSISTENTVOLUMES)
        self.recorders = Recorders(parent, (CONTROLLER, SIDECAR))
        self.snapshot_controller: Controller[str] = Controller("snapshots", self.reconcile_snapshot, workers=4)
        self.content_controller: Controller[str] = Controller("snapshot-contents", self.reconcile_content, workers=4)
        self.claim_controller: Controller[str] = Controller("snapshot-sources", self.reconcile_claim)
        self._watch()

    @property
    def informers(self) -> list[Informer]:
        return [self.snapshots, self.contents, self.classes, self.claims, self.volumes]

    @property
    def controllers(self) -> list[Controller[str]]:
        return [self.snapshot_controller, self.content_controller, self.claim_controller]

    def _watch(self) -> None:
        def snapshot_changed(snapshot: Object) -> None:
            self.snapshot_controller.queue.add(key(namespace_of(snapshot), name_of(snapshot)))
            for claim in _pvc_of(snapshot):
                self.claim_controller.queue.add(claim)

        def content_changed(content: Object) -> None:
            self.content_controller.queue.add(name_of(content))
            ref = spec(content).get("volumeSnapshotRef") or {}
            self.snapshot_controller.queue.add(key(str(ref.get("namespace")), str(ref.get("name"))))

        def claim_changed(claim: Object) -> None:
            self.claim_controller.queue.add(key(namespace_of(claim), name_of(claim)))
            self._wake_snapshots_of(key(namespace_of(claim), name_of(claim)))
            source = spec(claim).get("dataSourceRef") or spec(claim).get("dataSource") or {}
            if source.get("kind") == "VolumeSnapshot":  # a restore finishing may unblock a deletion
                self.snapshot_controller.queue.add(key(namespace_of(claim), str(source.get("name"))))

        def volume_changed(volume: Object) -> None:
            ref = spec(volume).get("claimRef") or {}
            self._wake_snapshots_of(key(str(ref.get("namespace")), str(ref.get("name"))))

        def class_changed(_snapshot_class: Object) -> None:
            for snapshot in self.snapshots.store.values():
                if status(snapshot).get("readyToUse") is not True:
                    self.snapshot_controller.queue.add(key(namespace_of(snapshot), name_of(snapshot)))

        on_change(self.snapshots, snapshot_changed)
        on_change(self.contents, content_changed)
        on_change(self.claims, claim_changed)
        on_change(self.volumes, volume_changed)
        on_change(self.classes, class_changed)

    def _wake_snapshots_of(self, claim_key: str) -> None:
        for snapshot in self.snapshots.store.by_index(BY_CLAIM, claim_key):
            self.snapshot_controller.queue.add(key(namespace_of(snapshot), name_of(snapshot)))

    def _event(self, component: str, snapshot: Object, kind: str, reason: str, message: str) -> None:
        self.recorders.emit(component, VOLUMESNAPSHOTS, snapshot, kind, reason, message)

    # --- snapshot-controller ---------------------------------------------------------------------------------

    async def reconcile_snapshot(self, snapshot_key: str) -> None:
        snapshot = self.snapshots.store.get(snapshot_key)
        if snapshot is None or claim_name_of(snapshot) is None:
            return
        content = self.contents.store.get(
            str(status(snapshot).get("boundVolumeSnapshotContentName") or content_name_for(snapshot))
        )
        if deleting(snapshot):
            await self._delete(snapshot, content)
            return
        claim = self.claims.store.get(key(namespace_of(snapshot), str(claim_name_of(snapshot))))
        volume = self.volumes.store.get(str(spec(claim).get("volumeName"))) if claim is not None else None
        if content is None:
            problem = plan_problem(snapshot, claim, volume, {name_of(c): c for c in self.classes.store.values()})
            if problem is not None:
                await self._report(snapshot, problem)
                return
            if not spec(snapshot).get("volumeSnapshotClassName"):
                await self._set_default_class(snapshot, volume)
                return
            snapshot_class = self.classes.store.get(str(spec(snapshot)["volumeSnapshotClassName"]))
            if snapshot_class is None or snapshot_class.get("driver") != DRIVER or claim is None or volume is None:
                return  # another driver's snapshot: its own snapshotter cuts it
            protected = await self._ensure_finalizers(snapshot, None)
            if protected is None or not await self._protect_source(claim):
                return  # stale: the newer version's event brings the snapshot back
            content = await self._create_content(protected, claim, volume, snapshot_class)
            snapshot = protected
        if not bound_both_ways(snapshot, content):
            return
        await self._mirror(snapshot, content)

    async def _report(self, snapshot: Object, problem: Problem) -> None:
        patch = error_status_patch(snapshot, problem.message, rfc3339(now()))
        if patch is None:
            return
        with contextlib.suppress(NotFound):
            await self.parent.patch(
                VOLUMESNAPSHOTS, name_of(snapshot), patch, namespace_of(snapshot), subresource="status"
            )
        self._event(CONTROLLER, snapshot, WARNING, problem.reason, problem.message)

    async def _set_default_class(self, snapshot: Object, volume: Object | None) -> None:
        """The controller writes the default class into the snapshot's spec."""
        driver = str((spec(volume).get("csi") or {}).get("driver")) if volume is not None else ""
        name, _ = default_class_for(driver, self.classes.store.values())
        if name is not None:
            patch = {"spec": {"volumeSnapshotClassName": name}}
            await self.parent.patch(VOLUMESNAPSHOTS, name_of(snapshot), patch, namespace_of(snapshot))

    async def _ensure_finalizers(self, snapshot: Object, content: Object | None) -> Object | None:
        wanted = wanted_finalizers(snapshot, content)
        if wanted == finalizers(snapshot):
            return snapshot
        return await set_finalizers(self.parent, VOLUMESNAPSHOTS, snapshot, wanted)

    async def _protect_source(self, claim: Object) -> bool:
        if PVC_PROTECTION in finalizers(claim):
            return True
        return (
            await set_finalizers(self.parent, PERSISTENTVOLUMECLAIMS, claim, [*finalizers(claim), PVC_PROTECTION])
            is not None
        )

    async def _create_content(self, snapshot: Object, claim: Object, volume: Object, snapshot_class: Object) -> Object:
        body = content_for(snapshot, claim, volume, snapshot_class)
        try:
            content: Object = await self.parent.create(CONTENTS, body)
        except AlreadyExists:
            content = await self.parent.get(CONTENTS, name_of(body))
        message = (
            f"Waiting for a snapshot {namespace_of(snapshot)}/{name_of(snapshot)} to be created by the CSI driver."
        )
        self._event(CONTROLLER, snapshot, NORMAL, "CreatingSnapshot", message)
        return content

    async def _mirror(self, snapshot: Object, content: Object) -> None:
        """Status from the content, with the controller's SnapshotCreated and SnapshotReady Events on the way."""
        before, patch = status(snapshot), snapshot_status_for(snapshot, content)
        if patch is not None:
            snapshot = await self.parent.patch(
                VOLUMESNAPSHOTS, name_of(snapshot), patch, namespace_of(snapshot), subresource="status"
            )
            where = f"{namespace_of(snapshot)}/{name_of(snapshot)}"
            if "creationTime" in patch["status"] and not before.get("creationTime"):
                message = f"Snapshot {where} was successfully created by the CSI driver."
                self._event(CONTROLLER, snapshot, NORMAL, "SnapshotCreated", message)
            if patch["status"]["readyToUse"] and before.get("readyToUse") is not True:
                self._event(CONTROLLER, snapshot, NORMAL, "SnapshotReady", f"Snapshot {where} is ready to use.")
        await self._ensure_finalizers(snapshot, content)

    async def _delete(self, snapshot: Object, content: Object | None) -> None:
        plan = deletion_for(snapshot, content, restoring(snapshot, self.claims.store.values()))
        if plan.wait:
            self._event(
                CONTROLLER, snapshot, WARNING, "SnapshotDeletePending", "Snapshot is being used to restore a PVC"
            )
            return
        if content is not None and bound_both_ways(snapshot, content):
            if annotations_of(content).get(BEING_DELETED) != "yes":
                patch = {"metadata": {"annotations": {BEING_DELETED: "yes"}}}
                content = await self.parent.patch(CONTENTS, name_of(content), patch)
            if plan.delete_content and not deleting(content):
                with contextlib.suppress(NotFound):
                    await self.parent.delete(CONTENTS, name_of(content), uid=uid_of(content))
        if list(plan.finalizers) != finalizers(snapshot):
            await set_finalizers(self.parent, VOLUMESNAPSHOTS, snapshot, plan.finalizers)

    # --- csi-snapshotter with linstor-csi --------------------------------------------------------------------

    async def reconcile_content(self, name: str) -> None:
        content = self.contents.store.get(name)
        if content is None or spec(content).get("driver") != DRIVER:
            return
        ref = spec(content).get("volumeSnapshotRef") or {}
        image = self.images.snapshot(str(ref.get("namespace")), str(ref.get("name")))
        if deleting(content):
            if CONTENT_PROTECTION not in finalizers(content):
                return
            if spec(content).get("deletionPolicy") == "Delete" and self._image_is_ours(content):
                await self.images.remove(image)
            await set_finalizers(self.parent, CONTENTS, content, without(finalizers(content), CONTENT_PROTECTION))
            log.info("content %s: snapshot deleted", name)
            return
        if status(content).get("readyToUse") is True or not (spec(content).get("source") or {}).get("volumeHandle"):
            return
        volume = self.volumes.store.get(str(spec(content)["source"]["volumeHandle"]))
        claim_ref = spec(volume).get("claimRef") or {} if volume is not None else {}
        if volume is None or not claim_ref.get("name"):
            return  # the volume's own events bring us back
        source = self.images.volume(str(claim_ref.get("namespace")), str(claim_ref.get("name")))
        await self.images.copy(source, image)
        size = parse_quantity((spec(volume).get("capacity") or {}).get("storage") or 0)
        with contextlib.suppress(NotFound):
            await self.parent.patch(CONTENTS, name, cut_status(content, size, now()), subresource="status")
        log.info("content %s: cut %s/%s (%d bytes)", name, ref.get("namespace"), ref.get("name"), size)

    def _image_is_ours(self, content: Object) -> bool:
        """Snapshot images are per snapshot name; a newer snapshot of that name keeps its image."""
        ref = spec(content).get("volumeSnapshotRef") or {}
        current = self.snapshots.store.get(key(str(ref.get("namespace")), str(ref.get("name"))))
        return current is None or uid_of(current) == ref.get("uid")

    # --- as-source protection on the claim -------------------------------------------------------------------

    async def reconcile_claim(self, claim_key: str) -> None:
        claim = self.claims.store.get(claim_key)
        if claim is None:
            return
        kept = claim_release(claim, self.snapshots.store.by_index(BY_CLAIM, claim_key))
        if kept is None:
            return
        await set_finalizers(self.parent, PERSISTENTVOLUMECLAIMS, claim, kept)


async def simulate(sim: Simulation) -> None:
    snapshots = SnapshotController(sim.parent, Images(sim.cluster.dir))
    await run_simulator(snapshots.informers, snapshots.controllers, snapshots.recorders, sim.ready)


if __name__ == "__main__":
    run(simulate)
