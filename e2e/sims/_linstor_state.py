"""The LINSTOR cluster the simulator pretends to run, in memory: satellites, storage pools, resource groups from the
parent's StorageClasses, one resource definition per linstor-csi PV, and the DRBD state tests set per replica.

Pure bookkeeping; `_linstor_views` turns it into the REST API's JSON.
"""

from __future__ import annotations

import uuid
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from kube.quantity import parse_quantity

DRIVER = "linstor.csi.linbit.com"
SATELLITES = ("sat-a", "sat-b", "sat-c")
DEFAULT_GROUP = "DfltRscGrp"
DEFAULT_POOL = "DfltStorPool"
DISKLESS_POOL = "DfltDisklessStorPool"
DEFAULT_TOTAL_KIB = 100 * 1024 * 1024  # 100 GiB per pool and satellite
KIB = 1024
# linstor-csi's namespace for generated resource groups (pkg/linstor/const.go).
_GROUP_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_DNS, f"resourcegroup.{DRIVER}")


class NotFoundError(KeyError):
    """No such resource group, resource or storage pool."""


@dataclass(frozen=True)
class ClassPlacement:
    """What a parent StorageClass asks of LINSTOR (linstor-csi's parameter reading, simplified)."""

    resource_group: str
    storage_pool: str | None
    place_count: int


def _driver_parameter(parameters: Mapping[str, str], *names: str) -> str | None:
    wanted = {n.lower() for n in names}
    bare = [v for k, v in parameters.items() if "/" not in k and k.lower() in wanted]
    prefixed = [v for k, v in parameters.items() if k.lower() in {f"{DRIVER}/{n}" for n in wanted}]
    found = prefixed or bare
    return found[0] if found else None


def class_placement(storage_class: Mapping[str, Any]) -> ClassPlacement:
    parameters: Mapping[str, str] = storage_class.get("parameters") or {}
    count_text = _driver_parameter(parameters, "placementCount", "autoPlace") or "1"
    try:
        count = max(1, int(count_text))
    except ValueError:
        count = 1
    pool = _driver_parameter(parameters, "storagePool") or None
    group = _driver_parameter(parameters, "resourceGroup")
    if not group:
        # linstor-csi derives a group name from the parameters; any stable name serves the simulation.
        group = "sc-" + str(uuid.uuid5(_GROUP_NAMESPACE, repr(sorted(parameters.items()))))
    return ClassPlacement(group, pool, count)


@dataclass
class ReplicaOverride:
    """What a test made of one replica; None leaves the simulator's own derivation."""

    disk_state: str | None = None
    connected: bool = True
    in_use: bool = False
    may_promote: bool | None = None
    promotion_score: int | None = None
    online: bool = True  # False: the satellite is gone, LINSTOR has no current state for the replica


_OVERRIDE_TYPES: dict[str, tuple[type, ...]] = {
    "disk_state": (str, type(None)),
    "connected": (bool,),
    "in_use": (bool,),
    "may_promote": (bool, type(None)),
    "promotion_score": (int, type(None)),
    "online": (bool,),
}


@dataclass
class PoolSetting:
    total_kib: int = DEFAULT_TOTAL_KIB
    free_kib: int | None = None  # None: total minus what the replicas on it allocate


@dataclass
class Definition:
    """A resource definition, named after the PV's volume handle."""

    name: str
    size_kib: int
    storage_class: str
    uuid: str
    created_ms: int
    minor: int


@dataclass(frozen=True)
class Replica:
    definition: Definition
    node: str
    node_id: int
    pool: str
    diskless: bool = False
    tie_breaker: bool = False
    state: ReplicaOverride = field(default_factory=ReplicaOverride)

    @property
    def disk_state(self) -> str:
        if self.state.disk_state:
            return self.state.disk_state
        return "Diskless" if self.diskless else "UpToDate"


class Linstor:
    def __init__(self, satellites: tuple[str, ...] = SATELLITES) -> None:
        self.satellites = satellites
        self.classes: dict[str, ClassPlacement] = {}
        self.definitions: dict[str, Definition] = {}
        self.overrides: dict[tuple[str, str], ReplicaOverride] = {}
        self.pools: dict[tuple[str, str], PoolSetting] = {(DEFAULT_POOL, node): PoolSetting() for node in satellites}
        self._minors = 1000

    # -- fed from the parent's watches -----------------------------------------------------------------------

    def class_seen(self, storage_class: Mapping[str, Any]) -> None:
        if storage_class.get("provisioner") != DRIVER:
            return
        placement = class_placement(storage_class)
        self.classes[str(storage_class["metadata"]["name"])] = placement
        for node in self.satellites:
            self.pools.setdefault((placement.storage_pool or DEFAULT_POOL, node), PoolSetting())

    def class_gone(self, storage_class: Mapping[str, Any]) -> None:
        self.classes.pop(str((storage_class.get("metadata") or {}).get("name")), None)

    def volume_seen(self, volume: Mapping[str, Any], created_ms: int) -> None:
        spec = volume.get("spec") or {}
        csi = spec.get("csi") or {}
        if csi.get("driver") != DRIVER or not csi.get("volumeHandle"):
            return
        name = str(csi["volumeHandle"])
        size_kib = -(-parse_quantity((spec.get("capacity") or {}).get("storage", 0)) // KIB)
        known = self.definitions.get(name)
        if known is not None:
            known.size_kib = size_kib
            return
        self._minors += 1
        self.definitions[name] = Definition(
            name, size_kib, str(spec.get("storageClassName") or ""), str(uuid.uuid4()), created_ms, self._minors
        )

    def volume_gone(self, volume: Mapping[str, Any]) -> None:
        handle = ((volume.get("spec") or {}).get("csi") or {}).get("volumeHandle")
        self.definitions.pop(str(handle), None)
        self.overrides = {k: v for k, v in self.overrides.items() if k[0] != handle}

    # -- placement -------------------------------------------------------------------------------------------

    def placement_of(self, definition: Definition) -> ClassPlacement:
        return self.classes.get(definition.storage_class) or ClassPlacement(DEFAULT_GROUP, None, 1)

    def replicas(self, definition: Definition) -> list[Replica]:
        """Diskful replicas on `place_count` satellites, rotated by name; with two, a tie-breaker on a third."""
        placement = self.placement_of(definition)
        start = zlib.crc32(definition.name.encode()) % len(self.satellites)
        order = self.satellites[start:] + self.satellites[:start]
        count = min(placement.place_count, len(order))
        pool = placement.storage_pool or DEFAULT_POOL
        nodes = [(node, False) for node in order[:count]]
        if count == 2 and len(order) > 2:
            nodes.append((order[2], True))  # LINSTOR's auto-tiebreaker keeps quorum possible with two replicas
        return [
            Replica(
                definition,
                node,
                node_id,
                DISKLESS_POOL if witness else pool,
                diskless=witness,
                tie_breaker=witness,
                state=self.overrides.get((definition.name, node), ReplicaOverride()),
            )
            for node_id, (node, witness) in enumerate(nodes)
        ]

    def replica(self, name: str, node: str) -> Replica:
        definition = self.definition(name)
        for replica in self.replicas(definition):
            if replica.node == node:
                return replica
        raise NotFoundError(f"resource {name} has no replica on {node}")

    def definition(self, name: str) -> Definition:
        for known, definition in self.definitions.items():
            if known.lower() == name.lower():  # LINSTOR names are case-insensitive
                return definition
        raise NotFoundError(f"resource definition {name} not found")

    # -- test controls ---------------------------------------------------------------------------------------

    def set_replica(self, name: str, node: str, changes: Mapping[str, Any]) -> Replica:
        replica = self.replica(name, node)
        for key, value in changes.items():
            kinds = _OVERRIDE_TYPES.get(key)
            if kinds is None:
                raise ValueError(f"unknown replica field {key!r}; known: {sorted(_OVERRIDE_TYPES)}")
            if not isinstance(value, kinds) or (isinstance(value, bool) and int in kinds and bool not in kinds):
                raise ValueError(f"replica field {key!r} cannot be {value!r}")
        self.overrides[(replica.definition.name, node)] = replace(replica.state, **changes)
        return self.replica(name, node)

    def reset_replica(self, name: str, node: str) -> Replica:
        replica = self.replica(name, node)
        self.overrides.pop((replica.definition.name, node), None)
        return self.replica(name, node)

    def set_pool(self, pool: str, node: str, changes: Mapping[str, Any]) -> PoolSetting:
        if node not in self.satellites:
            raise NotFoundError(f"no satellite {node}")
        setting = self.pools.setdefault((pool, node), PoolSetting())
        if "total_capacity" in changes:
            setting.total_kib = int(changes["total_capacity"])
        if "free_capacity" in changes:
            free = changes["free_capacity"]
            setting.free_kib = None if free is None else int(free)
        return setting

    # -- derived state ---------------------------------------------------------------------------------------

    def allocated_kib(self, pool: str, node: str) -> int:
        return sum(
            r.definition.size_kib
            for d in self.definitions.values()
            for r in self.replicas(d)
            if r.node == node and r.pool == pool and not r.diskless
        )

    def free_kib(self, pool: str, node: str) -> int:
        setting = self.pools.get((pool, node), PoolSetting())
        if setting.free_kib is not None:
            return setting.free_kib
        return max(0, setting.total_kib - self.allocated_kib(pool, node))

    def group(self, name: str) -> ClassPlacement:
        """A resource group exists once a StorageClass names it (linstor-csi creates it on first use)."""
        for placement in self.classes.values():
            if placement.resource_group.lower() == name.lower():
                return placement
        raise NotFoundError(f"resource group {name} not found")

    def pool_names(self) -> list[str]:
        return sorted({pool for pool, _ in self.pools})
