"""CreateSnapshot, DeleteSnapshot, ListSnapshots over parent VolumeSnapshots of this cluster's volumes."""

from __future__ import annotations

import contextlib
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from csi._proto import csi_pb2
from csi.config import DriverConfig
from csi.errors import AlreadyExistsIncompatible, InvalidArgument
from csi.ids import parent_name, valid_name
from csi.parent import SOURCE_VOLUME_LABEL, VOLUMESNAPSHOTS, Parent, claim_name
from csi.server import VolumeGuard
from csi.volumes import Volumes, page_start
from kube.client import Object
from kube.errors import NotFound
from kube.quantity import parse_quantity


def _timestamp(value: str | None) -> Timestamp:
    stamp = Timestamp()
    if value:
        stamp.FromJsonString(value)
    return stamp


class Snapshots:
    def __init__(self, parent: Parent, volumes: Volumes, config: DriverConfig, guard: VolumeGuard) -> None:
        self.parent = parent
        self.volumes = volumes
        self.config = config
        self.guard = guard

    def _message(self, snapshot: Object) -> Any:
        status = snapshot.get("status") or {}
        labels = snapshot["metadata"].get("labels") or {}
        return csi_pb2.Snapshot(
            snapshot_id=snapshot["metadata"]["name"],
            source_volume_id=labels.get(SOURCE_VOLUME_LABEL, ""),
            size_bytes=parse_quantity(status.get("restoreSize") or 0),
            creation_time=_timestamp(status.get("creationTime") or snapshot["metadata"].get("creationTimestamp")),
            ready_to_use=bool(status.get("readyToUse")),
        )

    async def create(self, request: Any) -> Any:
        if not request.name:
            raise InvalidArgument("name is required")
        if not request.source_volume_id:
            raise InvalidArgument("source_volume_id is required")
        name = parent_name("snapshot", request.name)
        volume = self.volumes.owned_volume(request.source_volume_id)
        existing = self.parent.snapshot(name) or await self._live(name)
        if existing is not None:
            source = (existing["metadata"].get("labels") or {}).get(SOURCE_VOLUME_LABEL)
            if source != request.source_volume_id:
                raise AlreadyExistsIncompatible(f"snapshot {request.name!r} exists for volume {source}")
            return csi_pb2.CreateSnapshotResponse(snapshot=self._message(existing))
        spec: dict[str, Any] = {"source": {"persistentVolumeClaimName": claim_name(volume)}}
        storage_class = ((volume.get("spec") or {}).get("storage") or volume.get("spec") or {}).get("storageClassName")
        snapshot_class = self.config.enforcement.snapshot_class_for(storage_class or "")
        if snapshot_class:
            spec["volumeSnapshotClassName"] = snapshot_class
        with self.guard.hold(name):
            created = await self.parent.client.create(
                VOLUMESNAPSHOTS,
                {
                    "metadata": {
                        "name": name,
                        "namespace": self.parent.namespace,
                        "labels": {**self.config.labels, SOURCE_VOLUME_LABEL: request.source_volume_id},
                    },
                    "spec": spec,
                },
            )
        # Not ready yet is fine: the snapshotter calls again until ready_to_use. Waiting briefly for our own
        # watch keeps a ListSnapshots right after this call consistent with it.
        seen = await self.parent.changes.wait_for(lambda: self.parent.snapshot(name), 5.0)
        return csi_pb2.CreateSnapshotResponse(snapshot=self._message(seen or created))

    async def _live(self, name: str) -> Object | None:
        try:
            live = await self.parent.client.get(VOLUMESNAPSHOTS, name, self.parent.namespace)
        except NotFound:
            return None
        if not self.parent.owns(live):
            raise AlreadyExistsIncompatible(f"a VolumeSnapshot {name} that is not ours exists in the parent")
        return live

    async def delete(self, request: Any) -> Any:
        if not request.snapshot_id:
            raise InvalidArgument("snapshot_id is required")
        snapshot = self.parent.snapshot(request.snapshot_id) if valid_name(request.snapshot_id) else None
        if snapshot is not None:
            with contextlib.suppress(NotFound):
                await self.parent.client.delete(
                    VOLUMESNAPSHOTS, request.snapshot_id, self.parent.namespace, uid=snapshot["metadata"]["uid"]
                )
            await self.parent.changes.wait_for(lambda: self._gone(request.snapshot_id), 5.0)
        return csi_pb2.DeleteSnapshotResponse()

    def _gone(self, name: str) -> bool:
        found = self.parent.snapshot(name)
        return found is None or bool(found["metadata"].get("deletionTimestamp"))

    async def list(self, request: Any) -> Any:
        if request.snapshot_id:
            found = self.parent.snapshot(request.snapshot_id) if valid_name(request.snapshot_id) else None
            snapshots = [found] if found is not None else []
        elif request.source_volume_id:
            snapshots = self.parent.snapshots.store.by_index("source", request.source_volume_id)
        else:
            snapshots = self.parent.snapshots.store.values()
        # A snapshot being deleted (finalizers still on it) is gone as far as the CO is concerned.
        live = (s for s in snapshots if self.parent.owns(s) and not s["metadata"].get("deletionTimestamp"))
        snapshots = sorted(live, key=lambda s: s["metadata"]["name"])
        start = page_start(request.starting_token, len(snapshots))
        end = start + request.max_entries if request.max_entries else len(snapshots)
        entries = [csi_pb2.ListSnapshotsResponse.Entry(snapshot=self._message(s)) for s in snapshots[start:end]]
        return csi_pb2.ListSnapshotsResponse(entries=entries, next_token=str(end) if end < len(snapshots) else "")
