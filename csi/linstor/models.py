"""Narrow pydantic models of the LINSTOR REST API v1 (docs/rest_v1_openapi.yaml of linstor-server): only the
fields we read, every one optional as the spec has them, unknown fields ignored so newer controllers still parse.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

DISKLESS = "DISKLESS"
DRBD_DISKLESS = "DRBD_DISKLESS"
NVME_INITIATOR = "NVME_INITIATOR"
TIE_BREAKER = "TIE_BREAKER"
INACTIVE = "INACTIVE"
DELETE = "DELETE"
DISKLESS_FLAGS = frozenset({DISKLESS, DRBD_DISKLESS, NVME_INITIATOR, TIE_BREAKER})
DISKLESS_PROVIDER = "DISKLESS"
UP_TO_DATE = "UpToDate"
SYNC_TARGET = "SyncTarget"
DRBD_LAYER = "DRBD"


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class ApiCallRc(_Model):
    """LINSTOR's reply entry; error answers are a list of these."""

    ret_code: int = 0
    message: str = ""
    cause: str | None = None


class DrbdConnection(_Model):
    connected: bool | None = None
    message: str | None = Field(None, description="DRBD connection state: Connected, StandAlone, Connecting, ...")


class DrbdVolume(_Model):
    disk_state: str | None = None


class DrbdResource(_Model):
    node_id: int | None = None
    flags: tuple[str, ...] = ()
    drbd_volumes: tuple[DrbdVolume, ...] = ()
    connections: dict[str, DrbdConnection] = Field(default_factory=dict, description="by peer node name")
    promotion_score: int | None = None
    may_promote: bool | None = None


class ResourceLayer(_Model):
    type: str | None = None
    drbd: DrbdResource | None = None
    children: tuple[ResourceLayer, ...] = ()

    def find_drbd(self) -> DrbdResource | None:
        """The DRBD layer, wherever it sits in the stack (on top, normally)."""
        if self.type == DRBD_LAYER and self.drbd is not None:
            return self.drbd
        for child in self.children:
            if (found := child.find_drbd()) is not None:
                return found
        return None


class ResourceState(_Model):
    in_use: bool | None = None


class ReplicationState(_Model):
    """How DRBD replicates one volume to one peer: `SyncTarget` while this side catches up, with its progress."""

    replication_state: str | None = None
    done_percentage: float | None = None


class VolumeState(_Model):
    disk_state: str | None = None
    replication_states: dict[str, ReplicationState] = Field(default_factory=dict, description="by peer node name")


class Volume(_Model):
    volume_number: int = 0
    storage_pool_name: str | None = None
    provider_kind: str | None = None
    allocated_size_kib: int | None = None
    state: VolumeState | None = None


class Resource(_Model):
    """One replica: a resource definition deployed on one node (ResourceWithVolumes in the spec)."""

    name: str
    node_name: str
    flags: tuple[str, ...] = ()
    layer_object: ResourceLayer | None = None
    state: ResourceState | None = None
    volumes: tuple[Volume, ...] = ()

    @property
    def diskful(self) -> bool:
        return not DISKLESS_FLAGS.intersection(self.flags)

    @property
    def tie_breaker(self) -> bool:
        return TIE_BREAKER in self.flags

    @property
    def drbd(self) -> DrbdResource | None:
        return self.layer_object.find_drbd() if self.layer_object is not None else None

    @property
    def in_use(self) -> bool | None:
        return self.state.in_use if self.state is not None else None

    @property
    def resync_progress(self) -> float | None:
        """While a volume of this replica is a DRBD SyncTarget: the least done percentage (0 when unknown)."""
        done = [
            state.done_percentage or 0.0
            for volume in self.volumes
            if volume.state is not None
            for state in volume.state.replication_states.values()
            if state.replication_state == SYNC_TARGET
        ]
        return min(done) if done else None

    def disk_states(self) -> list[tuple[int, str | None]]:
        """(volume number, disk state) per volume: the volume's own state, else the DRBD layer's."""
        drbd = self.drbd
        layered = [v.disk_state for v in drbd.drbd_volumes] if drbd is not None else []
        if self.volumes:
            return [
                (v.volume_number, (v.state.disk_state if v.state else None) or _at(layered, i))
                for i, v in enumerate(self.volumes)
            ]
        return list(enumerate(layered))


def _at(items: list[str | None], index: int) -> str | None:
    return items[index] if index < len(items) else None


class AutoSelectFilter(_Model):
    place_count: int | None = None
    storage_pool: str | None = None
    node_name_list: tuple[str, ...] | None = None


class QuerySizeInfoRequest(_Model):
    select_filter: AutoSelectFilter | None = None


class SpaceInfo(_Model):
    """QuerySizeInfoResponseSpaceInfo; all sizes in KiB and already spread over `place_count` replicas."""

    max_vlm_size_in_kib: int
    available_size_in_kib: int | None = None
    capacity_in_kib: int | None = None


class QuerySizeInfoResponse(_Model):
    space_info: SpaceInfo | None = None
    reports: tuple[ApiCallRc, ...] = ()


class StoragePool(_Model):
    storage_pool_name: str
    node_name: str | None = None
    provider_kind: str | None = None
    free_capacity: int | None = Field(None, description="KiB")
    total_capacity: int | None = Field(None, description="KiB")

    @property
    def diskless(self) -> bool:
        return self.provider_kind == DISKLESS_PROVIDER


class ResourceDefinition(_Model):
    """The parts of a resource definition we read: its group and its own properties (DRBD options among them)."""

    name: str
    resource_group_name: str | None = None
    props: dict[str, str] = Field(default_factory=dict)


class ResourceGroup(_Model):
    name: str
    props: dict[str, str] = Field(default_factory=dict)


class ResourceMakeAvailable(_Model):
    """POST .../resources/{node}/make-available: deploy on the node unless it is already; `diskful` forces a disk."""

    diskful: bool = False
    layer_list: tuple[str, ...] | None = None
