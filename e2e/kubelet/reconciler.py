"""One reconcile per pod (by UID), level-triggered: bring the node's mounts to what the API says the pod needs.

A pod that should run gets its volumes listed in volumesInUse, waits for their VolumeAttachments, is staged and
published, and then reported Running and Ready; a pending node expansion is finished afterwards. A terminating
pod is unpublished, its volumes unstaged when no other pod here uses them, and then deleted for good (what
kubelet does last); a pod gone from the API is torn down from what is on disk. A sweep (after each teardown,
and under the empty key at start) unstages what no pod uses, e.g. after a failure between stage and publish.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
from collections.abc import Iterator
from typing import Any

import grpc

from e2e.kubelet.node_status import VolumesInUse
from e2e.kubelet.operations import Staged, VolumeOperations
from e2e.kubelet.paths import unique_volume_name
from e2e.kubelet.spec import (
    NODE_RESIZE_IN_PROGRESS,
    STORAGE,
    CSIVolume,
    Waiting,
    action_for,
    expansion_finished_status,
    meta,
    pending_node_expansion,
    publish_volume_context,
    running_status,
)
from e2e.kubelet.world import World
from kube.client import Client, Object
from kube.errors import ApiError, Conflict, NotFound
from kube.events import EventRecorder
from kube.resources import PERSISTENTVOLUMECLAIMS, PODS

log = logging.getLogger(__name__)

SWEEP = ""  # the work-queue key of the node-wide sweep


class OperationFailed(RuntimeError):
    """A CSI operation failed; the controller logs it once and retries the pod with backoff."""


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class PodReconciler:
    def __init__(
        self, tenant: Client, world: World, ops: VolumeOperations, in_use: VolumesInUse, events: EventRecorder
    ) -> None:
        self.tenant = tenant
        self.world = world
        self.ops = ops
        self.in_use = in_use
        self.events = events
        self._waiting: dict[str, str] = {}  # pod UID -> what it waits for, to log each wait once

    async def reconcile(self, uid: str) -> None:
        if uid == SWEEP:
            await self.sweep()
            return
        pod = self.world.pod(uid)
        try:
            if pod is None:
                await self.teardown(uid)
            elif (action := action_for(pod)) == "setup":
                await self.setup(pod)
            else:
                await self.teardown(uid, pod)
                if action == "delete":
                    await self._delete(pod)
        except Waiting as waiting:
            if self._waiting.get(uid) != str(waiting):
                log.info("pod %s waits: %s", _name(pod) if pod else uid, waiting)
                self._waiting[uid] = str(waiting)
            return
        self._waiting.pop(uid, None)

    async def setup(self, pod: Object) -> None:
        volumes = self.world.csi_volumes(pod)
        # Listed in volumesInUse before anything is mounted, so the attach/detach controller keeps them attached.
        await self.in_use.sync()
        if missing := [v.pv_name for v in volumes if v.unique_name not in self.in_use.reported]:
            raise RuntimeError(f"volumes {missing} are not in the Node's volumesInUse yet")
        targets = {}
        for volume in volumes:
            publish_context = self.world.publish_context(volume)
            context = publish_volume_context(volume, pod, self.world.pod_info_on_mount())
            async with self.ops.lock(volume.handle):
                with self._reported(pod, f"MountVolume.MountDevice failed for volume {volume.pv_name!r}"):
                    await self.ops.stage(volume, publish_context)
                with self._reported(pod, f"MountVolume.SetUp failed for volume {volume.pv_name!r}"):
                    targets[volume.pv_name] = await self.ops.publish(volume, pod, publish_context, context)
        status = running_status(pod, _now())
        if status is not None:
            body = {"metadata": {"name": _name_only(pod), "namespace": meta(pod)["namespace"]}, "status": status}
            await self.tenant.apply(PODS, body, subresource="status", force=True)
            log.info("pod %s is Running with %d CSI volume(s): %s", _name(pod), len(volumes), sorted(targets))
        for volume in volumes:
            await self._expand_if_pending(pod, volume)

    async def teardown(self, uid: str, pod: Object | None = None) -> None:
        for published in self.ops.published_on_disk(uid):
            async with self.ops.lock(published.handle):
                what = f"UnmountVolume.TearDown failed for volume {published.pv_name!r}"
                with self._reported(pod, what, "FailedUnMount"):
                    await self.ops.unpublish(uid, published)
                if not self.ops.users(published.handle, but=uid):
                    staged = next((s for s in self.ops.staged_on_disk() if s.handle == published.handle), None)
                    if staged is not None:
                        await self.ops.unstage(staged)
        self.ops.forget_pod(uid)
        await self.sweep()  # also what a setup that failed between stage and publish left staged

    async def sweep(self) -> None:
        """Unstage volumes staged here that no pod has published and no pod that should run here needs."""
        wanted = self.world.wanted_in_use()
        for staged in self.ops.staged_on_disk():
            async with self.ops.lock(staged.handle):
                # A pod's teardown may have unstaged it while we waited for the lock.
                if staged in self.ops.staged_on_disk() and self._orphaned(staged, wanted):
                    log.info("unstaging %s: no pod on this node uses it", staged.pv_name or staged.handle)
                    await self.ops.unstage(staged)
        await self.in_use.sync()

    def _orphaned(self, staged: Staged, wanted: set[str]) -> bool:
        return unique_volume_name(self.ops.driver, staged.handle) not in wanted and not self.ops.users(staged.handle)

    async def _delete(self, pod: Object) -> None:
        """The last thing kubelet does for a terminated pod: delete it with grace 0, if it is still this pod."""
        try:
            await self.tenant.delete(
                PODS, _name_only(pod), meta(pod)["namespace"], uid=meta(pod)["uid"], grace_period_seconds=0
            )
        except (NotFound, Conflict):
            return
        log.info("deleted pod %s after tearing down its volumes", _name(pod))

    async def _expand_if_pending(self, pod: Object, volume: CSIVolume) -> None:
        """kubelet's NodeExpander: mark the claim in progress, NodeExpandVolume, then record the new capacity."""
        pvc = self.world.claim(volume.claim_namespace, volume.claim_name)
        pv = self.world.persistent_volume(volume.pv_name)
        if pvc is None or pv is None or (size := pending_node_expansion(pvc, pv)) is None:
            return
        if not self.ops.info.expand:
            log.warning("volume %s waits for node expansion, which the plugin does not offer", volume.pv_name)
            return
        resize = (pvc.get("status") or {}).get("allocatedResourceStatuses") or {}
        if resize.get(STORAGE) != NODE_RESIZE_IN_PROGRESS:
            pvc = await self._patch_claim_status(pvc, {"allocatedResourceStatuses": {STORAGE: NODE_RESIZE_IN_PROGRESS}})
        async with self.ops.lock(volume.handle):
            with self._reported(pod, f"MountVolume.NodeExpandVolume failed for volume {volume.pv_name!r}"):
                capacity = await self.ops.expand(volume, meta(pod)["uid"], size)
        await self._patch_claim_status(pvc, expansion_finished_status(pvc, pv))
        message = f"MountVolume.NodeExpandVolume succeeded for volume {volume.pv_name!r} {self.world.node}"
        self.events.normal(pod, "FileSystemResizeSuccessful", message)
        self.events.normal(pvc, "FileSystemResizeSuccessful", message)
        log.info("expanded %s on the node to %d bytes (plugin reports %d)", volume.pv_name, size, capacity)

    async def _patch_claim_status(self, pvc: Object, status: dict[str, Any]) -> Object:
        """A merge patch guarded by resourceVersion, like kubelet's PatchPVCStatus."""
        patch = {"metadata": {"resourceVersion": meta(pvc)["resourceVersion"]}, "status": status}
        return await self.tenant.patch(
            PERSISTENTVOLUMECLAIMS, meta(pvc)["name"], patch, meta(pvc)["namespace"], subresource="status"
        )

    @contextlib.contextmanager
    def _reported(self, pod: Object | None, what: str, reason: str = "FailedMount") -> Iterator[None]:
        """A failed operation becomes a Warning Event on the pod, as with kubelet, and one clear error line."""
        try:
            yield
        except grpc.aio.AioRpcError as error:
            failure = OperationFailed(f"{what}: {error.code().name}: {error.details()}")
            self._warn(pod, reason, str(failure))
            raise failure from None  # the status says it all; the gRPC traceback adds nothing
        except (OSError, ApiError) as error:
            self._warn(pod, reason, f"{what}: {error}")
            raise

    def _warn(self, pod: Object | None, reason: str, message: str) -> None:
        if pod is not None:
            self.events.warning(pod, reason, message)


def _name_only(pod: Object) -> str:
    return str(meta(pod)["name"])


def _name(pod: Object | None) -> str:
    return f"{meta(pod).get('namespace')}/{meta(pod).get('name')}" if pod else "?"
