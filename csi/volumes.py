"""CreateVolume, DeleteVolume, ListVolumes, ControllerGetVolume, ValidateVolumeCapabilities, expansion."""

from __future__ import annotations

import contextlib
from typing import Any

from csi import capabilities
from csi._proto import csi_pb2
from csi.config import DriverConfig
from csi.errors import (
    AlreadyExistsIncompatible,
    FailedPrecondition,
    InvalidArgument,
    InvalidToken,
    OperationPending,
    OutOfRange,
    VolumeNotFound,
)
from csi.ids import BUS_KEY, DEFAULT_BUS, SERIAL_KEY, SERIAL_LIMITS, node_id, parent_name, valid_name
from csi.linstor.health import Health
from csi.linstor.view import LinstorView
from csi.parent import BUS_ANNOTATION, Parent, bus_of, claim_name, serial_of, vmi_volume_phase, volume_progress
from csi.server import VolumeGuard
from kube.client import Object
from kube.errors import NotFound
from kube.informer import wait_for_object
from kube.quantity import parse_quantity
from kube.resources import PERSISTENTVOLUMECLAIMS

MIB = 1 << 20
MAX_SIZE = (1 << 63) - 1  # int64, the type of every size in the CSI protocol
STORAGE_CLASS_KEYS = ("infraStorageClassName", "parentStorageClass")
KNOWN_PARAMETERS = frozenset({*STORAGE_CLASS_KEYS, "bus"})
FORWARDED_PREFIX = "csi.storage.k8s.io/"  # the provisioner's own extra metadata: ignored
DELETE_AFTER_COMPLETION = "cdi.kubevirt.io/storage.deleteAfterCompletion"
REQUEST_NAME_ANNOTATION = "tenant-cloud.io/csi-request-name"
READY_PHASES = frozenset({"Succeeded", "WaitForFirstConsumer", "PendingPopulation"})


def size_for(capacity: Any, default: int) -> int:
    """The size to provision: the request rounded up to whole MiB, within the limit."""
    required, limit = capacity.required_bytes, capacity.limit_bytes
    if required < 0 or limit < 0:
        raise InvalidArgument("capacity must not be negative")
    if limit and required > limit:
        raise InvalidArgument(f"required_bytes {required} exceeds limit_bytes {limit}")
    size = max(required, MIB) if required else default
    size = -(-size // MIB) * MIB
    if limit and size > limit:
        if required > limit - (limit % MIB) or limit < MIB:
            raise OutOfRange(f"no size of whole MiB fits between {required} and {limit} bytes")
        size = limit - limit % MIB
    if size > MAX_SIZE:
        # CSI reports sizes as int64: a volume rounded up past it could be made but never described.
        raise OutOfRange(f"{required} bytes rounded up to whole MiB is more than the {MAX_SIZE} bytes CSI can express")
    return size


def parameters_of(request: Any) -> tuple[str, str]:
    """(parent storage class, bus) from StorageClass parameters; unknown keys are an error, not ignored."""
    params = dict(request.parameters)
    unknown = sorted(k for k in params if k not in KNOWN_PARAMETERS and not k.startswith(FORWARDED_PREFIX))
    if unknown:
        raise InvalidArgument(f"unknown parameters {unknown}; known: {sorted(KNOWN_PARAMETERS)}")
    classes = {params[k] for k in STORAGE_CLASS_KEYS if params.get(k)}
    if len(classes) > 1:
        raise InvalidArgument("infraStorageClassName and parentStorageClass disagree")
    bus = params.get("bus", DEFAULT_BUS)
    if bus not in SERIAL_LIMITS:
        raise InvalidArgument(f"bus {bus!r} is not one of {sorted(SERIAL_LIMITS)}")
    return (classes.pop() if classes else ""), bus


def volume_size(volume: Object) -> int:
    spec = volume.get("spec") or {}
    storage = spec.get("storage") or spec.get("pvc") or spec
    return parse_quantity(((storage.get("resources") or {}).get("requests") or {}).get("storage", 0))


class Volumes:
    def __init__(
        self, parent: Parent, config: DriverConfig, guard: VolumeGuard, linstor: LinstorView | None = None
    ) -> None:
        self.parent = parent
        self.config = config
        self.guard = guard
        self.linstor = linstor

    # -- create --------------------------------------------------------------------------------------------

    def _source(self, request: Any) -> dict[str, Any]:
        source = request.volume_content_source
        if source.HasField("snapshot"):
            snapshot = (
                self.parent.snapshot(source.snapshot.snapshot_id) if valid_name(source.snapshot.snapshot_id) else None
            )
            if snapshot is None:
                raise VolumeNotFound(f"snapshot {source.snapshot.snapshot_id!r} not found")
            return {"snapshot": {"name": snapshot["metadata"]["name"], "namespace": self.parent.namespace}}
        if source.HasField("volume"):
            origin = self.parent.volume(source.volume.volume_id) if valid_name(source.volume.volume_id) else None
            if origin is None:
                raise VolumeNotFound(f"source volume {source.volume.volume_id!r} not found")
            return {"pvc": {"name": claim_name(origin), "namespace": self.parent.namespace}}
        return {"blank": {}}

    def _manifest(
        self, name: str, request_name: str, size: int, storage_class: str, bus: str, source: dict[str, Any]
    ) -> Object:
        storage: dict[str, Any] = {"resources": {"requests": {"storage": str(size)}}}
        if storage_class:
            storage["storageClassName"] = storage_class
        annotations = {BUS_ANNOTATION: bus, REQUEST_NAME_ANNOTATION: request_name}
        metadata: dict[str, Any] = {
            "name": name,
            "namespace": self.parent.namespace,
            "labels": dict(self.config.labels),
            "annotations": annotations,
        }
        if self.config.volume_kind == "PersistentVolumeClaim":
            if "blank" not in source:
                raise InvalidArgument("snapshots and clones need CDI DataVolumes on the parent")
            spec = {**storage, "accessModes": ["ReadWriteOnce"]}
            return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": metadata, "spec": spec}
        annotations[DELETE_AFTER_COMPLETION] = "false"
        return {
            "apiVersion": "cdi.kubevirt.io/v1beta1",
            "kind": "DataVolume",
            "metadata": metadata,
            "spec": {"source": source, "storage": storage},
        }

    async def create(self, request: Any) -> Any:
        name = request.name
        if not name:
            raise InvalidArgument("name is required")
        capabilities.check(request.volume_capabilities)
        volume_name = parent_name(self.config.volume_prefix, name)
        size = size_for(request.capacity_range, self.config.default_size)
        storage_class, bus = parameters_of(request)
        if not self.config.enforcement.allows(storage_class):
            raise InvalidArgument(f"parent storage class {storage_class or '(default)'!r} is not allowed")
        source = self._source(request)
        with self.guard.hold(volume_name):
            volume = await self.parent.volume_live(volume_name)
            if volume is None:
                manifest = self._manifest(volume_name, name, size, storage_class, bus, source)
                volume = await self.parent.client.create(self.parent.volume_resource, manifest)
            else:
                self._same_request(volume, size, storage_class, source)
            ready = await self.parent.changes.wait_for(lambda: self._ready(volume_name), self.config.provision_timeout)
            if ready is None:
                current = self.parent.volume(volume_name)
                progress = volume_progress(current) if current is not None else "not seen by our watch yet"
                raise OperationPending(f"parent volume {volume_name} is not ready yet: {progress}")
        return csi_pb2.CreateVolumeResponse(volume=self._volume_message(ready, request.volume_content_source))

    def _same_request(self, volume: Object, size: int, storage_class: str, source: dict[str, Any]) -> None:
        spec = volume.get("spec") or {}
        if volume_size(volume) != size:
            raise AlreadyExistsIncompatible(
                f"volume {volume['metadata']['name']} exists with size {volume_size(volume)}, not {size}"
            )
        existing_class = (spec.get("storage") or spec).get("storageClassName") or ""
        if storage_class and existing_class != storage_class:
            raise AlreadyExistsIncompatible(f"volume exists with storage class {existing_class!r}")
        if "source" in spec and spec["source"] != source:
            raise AlreadyExistsIncompatible("volume exists with another content source")

    def _ready(self, name: str) -> Object | None:
        volume = self.parent.volume(name)
        if volume is None:
            return None
        status = volume.get("status") or {}
        phase = status.get("phase")
        done = phase in READY_PHASES if self.config.volume_kind == "DataVolume" else phase == "Bound"
        return volume if done else None

    def _volume_message(self, volume: Object, content_source: Any = None) -> Any:
        message = csi_pb2.Volume(
            volume_id=volume["metadata"]["name"],
            capacity_bytes=volume_size(volume),
            volume_context={BUS_KEY: bus_of(volume), SERIAL_KEY: serial_of(volume)},
        )
        if content_source is not None:
            message.content_source.CopyFrom(content_source)
        return message

    # -- delete, get, list, validate -----------------------------------------------------------------------

    async def delete(self, request: Any) -> Any:
        if not request.volume_id:
            raise InvalidArgument("volume_id is required")
        with self.guard.hold(request.volume_id):
            volume = self.parent.volume(request.volume_id) if valid_name(request.volume_id) else None
            if volume is None:
                return csi_pb2.DeleteVolumeResponse()  # unknown or not ours: already gone as far as we can tell
            users = [v["metadata"]["name"] for v in self.parent.vmis_using(request.volume_id)]
            if users:
                raise FailedPrecondition(f"volume {request.volume_id} is still attached to {', '.join(users)}")
            with contextlib.suppress(NotFound):  # a retry after our watch lagged behind an earlier delete
                await self.parent.client.delete(
                    self.parent.volume_resource,
                    request.volume_id,
                    self.parent.namespace,
                    uid=volume["metadata"]["uid"],
                    propagation_policy="Background",
                )
            # Callers list right after deleting: answer only once our view has caught up.
            await self.parent.changes.wait_for(lambda: self.parent.volume(request.volume_id) is None, 5.0)
        return csi_pb2.DeleteVolumeResponse()

    def owned_volume(self, volume_id: str) -> Object:
        if not volume_id:
            raise InvalidArgument("volume_id is required")
        volume = self.parent.volume(volume_id) if valid_name(volume_id) else None
        if volume is None:
            raise VolumeNotFound(f"volume {volume_id!r} not found")
        return volume

    async def _drbd_health(self, volumes: list[Object]) -> dict[str, Health | None]:
        """LINSTOR's view of the volumes' DRBD replicas, in one call; empty without LINSTOR."""
        if self.linstor is None or not volumes:
            return {}
        return await self.linstor.conditions_for([claim_name(v) for v in volumes])

    def _status(self, volume: Object, drbd: Health | None = None) -> Any:
        name = volume["metadata"]["name"]
        nodes = sorted(
            node_id(self.parent.namespace, vmi["metadata"]["name"])
            for vmi in self.parent.vmis_using(name)
            if vmi_volume_phase(vmi, name) == "Ready"
        )
        phase = (volume.get("status") or {}).get("phase", "")
        if phase == "Failed" or drbd is None:
            condition = csi_pb2.VolumeCondition(
                abnormal=phase == "Failed", message=f"parent volume phase {phase or 'unknown'}"
            )
        else:
            condition = csi_pb2.VolumeCondition(abnormal=drbd.abnormal, message=drbd.message)
        return nodes, condition

    async def get(self, request: Any) -> Any:
        volume = self.owned_volume(request.volume_id)
        drbd = await self._drbd_health([volume])
        nodes, condition = self._status(volume, drbd.get(claim_name(volume)))
        return csi_pb2.ControllerGetVolumeResponse(
            volume=self._volume_message(volume),
            status=csi_pb2.ControllerGetVolumeResponse.VolumeStatus(
                published_node_ids=nodes, volume_condition=condition
            ),
        )

    async def list(self, request: Any) -> Any:
        volumes = sorted(
            (v for v in self.parent.volumes.store.values() if self.parent.owns(v, prefixed=True)),
            key=lambda v: v["metadata"]["name"],
        )
        start = page_start(request.starting_token, len(volumes))
        end = start + request.max_entries if request.max_entries else len(volumes)
        entries = []
        page = volumes[start:end]
        drbd = await self._drbd_health(page)
        for volume in page:
            nodes, condition = self._status(volume, drbd.get(claim_name(volume)))
            entries.append(
                csi_pb2.ListVolumesResponse.Entry(
                    volume=self._volume_message(volume),
                    status=csi_pb2.ListVolumesResponse.VolumeStatus(
                        published_node_ids=nodes, volume_condition=condition
                    ),
                )
            )
        return csi_pb2.ListVolumesResponse(entries=entries, next_token=str(end) if end < len(volumes) else "")

    async def validate(self, request: Any) -> Any:
        if not request.volume_id:
            raise InvalidArgument("volume_id is required")
        if not request.volume_capabilities:
            raise InvalidArgument("volume capabilities are required")
        self.owned_volume(request.volume_id)
        reasons = [r for r in (capabilities.problem(c) for c in request.volume_capabilities) if r]
        if reasons:
            return csi_pb2.ValidateVolumeCapabilitiesResponse(message="; ".join(reasons))
        confirmed = csi_pb2.ValidateVolumeCapabilitiesResponse.Confirmed(
            volume_context=request.volume_context,
            volume_capabilities=request.volume_capabilities,
            parameters=request.parameters,
        )
        return csi_pb2.ValidateVolumeCapabilitiesResponse(confirmed=confirmed)

    # -- expand --------------------------------------------------------------------------------------------

    async def expand(self, request: Any) -> Any:
        if not request.HasField("capacity_range"):
            raise InvalidArgument("capacity_range is required")
        volume = self.owned_volume(request.volume_id)
        size = size_for(request.capacity_range, self.config.default_size)
        block = request.HasField("volume_capability") and request.volume_capability.HasField("block")
        name = claim_name(volume)
        with self.guard.hold(request.volume_id):
            claim = await self.parent.claim(name)
            if claim is None:
                raise OperationPending(f"parent claim {name} does not exist yet")
            requested = parse_quantity(claim["spec"]["resources"]["requests"]["storage"])
            if size > requested:
                await self.parent.client.patch(
                    PERSISTENTVOLUMECLAIMS,
                    name,
                    {"spec": {"resources": {"requests": {"storage": str(size)}}}},
                    self.parent.namespace,
                )
            grown = await self._wait_capacity(name, size)
        return csi_pb2.ControllerExpandVolumeResponse(capacity_bytes=grown, node_expansion_required=not block)

    async def _wait_capacity(self, name: str, size: int) -> int:
        def grown(claim: Object) -> bool:
            return claim_capacity(claim) >= size

        # Parent PVCs are not all ours, so they are not cached: watch just this one while waiting.
        claim = await wait_for_object(
            self.parent.client,
            PERSISTENTVOLUMECLAIMS,
            name,
            self.parent.namespace,
            grown,
            self.config.provision_timeout,
        )
        if claim is None:
            raise OperationPending(f"parent claim {name} has not grown to {size} bytes yet")
        return claim_capacity(claim)


def claim_capacity(claim: Object) -> int:
    return parse_quantity(((claim.get("status") or {}).get("capacity") or {}).get("storage", 0))


def page_start(token: str, total: int) -> int:
    """Where a ListVolumes/ListSnapshots page starts; a token we did not hand out is ABORTED, per the spec."""
    if not token:
        return 0
    if not token.isdigit() or int(token) > total:
        raise InvalidToken(f"starting_token {token!r} is not valid")
    return int(token)
