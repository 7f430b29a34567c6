"""The LINSTOR cluster the simulator pretends to run, in memory: satellites, storage pools, resource groups from the
parent's StorageClasses, one resource definition per linstor-csi PV, and the DRBD state tests set per replica.

Satellites: three storage nodes (`sat-a/b/c`, where new volumes are autoplaced, each with every class's pool) and
one per parent Node, named after it as Piraeus names satellites after Kubernetes nodes; those start with the
diskless pool only, tests give them storage pools. Replicas are autoplaced on the storage nodes; `make-available`
(_linstor_writes) adds replicas anywhere, which resync for `resync_seconds` before they are UpToDate.

Pure bookkeeping; `_linstor_views` turns it into the REST API's JSON.
"""

from __future__ import annotations

import time
import uuid
import zlib
from collections.abc import Callable, Mapping
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
RESYNC_SECONDS = 3.0
# linstor-csi copies StorageClass parameters in this namespace to the resource definition's properties.
PROPERTY_PREFIX = f"property.{DRIVER}/"
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
    properties: Mapping[str, str] = field(default_factory=dict)


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
    properties = {k[len(PROPERTY_PREFIX) :]: v for k, v in parameters.items() if k.startswith(PROPERTY_PREFIX)}
    return ClassPlacement(group, pool, count, properties)


@dataclass
class ReplicaOverride:
    """What a test made of one replica; None leaves the simulator's own derivation."""

    disk_state: str | None = None
    connected: bool = True
    in_use: bool = False
    may_promote: bool | None = None
    promotion_score: int | None = None
    online: bool = True  # False: the satellite is gone, LINSTOR has no current state for the replica
    diskless: bool = False  # True: the replica lost its disk (toggled diskless), only DRBD's client side is left


_OVERRIDE_TYPES: dict[str, tuple[type, ...]] = {
    "disk_state": (str, type(None)),
    "connected": (bool,),
    "in_use": (bool,),
    "may_promote": (bool, type(None)),
    "promotion_score": (int, type(None)),
    "online": (bool,),
    "diskless": (bool,),
}


@dataclass
class PoolSetting:
    total_kib: int = DEFAULT_TOTAL_KIB
    free_kib: int | None = None  # None: total minus what the replicas on it allocate


@dataclass(frozen=True)
class Placed:
    """A replica added by make-available (not by the autoplacer): its DRBD node id, pool and resync start."""

    node_id: int
    pool: str
    since: float
    diskless: bool = False


@dataclass
class Definition:
    """A resource definition, named after the PV's volume handle."""

    name: str
    size_kib: int
    storage_class: str
    uuid: str
    created_ms: int
    minor: int
    props: dict[str, str] = field(default_factory=dict)
    claim: str = ""  # namespace/name of the parent PVC bound to the PV
    rwx_block: bool = False
    placed: dict[str, Placed] = field(default_factory=dict)  # by node


@dataclass(frozen=True)
class Replica:
    definition: Definition
    node: str
    node_id: int
    pool: str
    diskless: bool = False
    tie_breaker: bool = False
    state: ReplicaOverride = field(default_factory=ReplicaOverride)
    resync_done: float | None = None  # percent, while a new replica catches up

    @property
    def disk_state(self) -> str:
        if self.state.disk_state:
            return self.state.disk_state
        if self.diskless:
            return "Diskless"
        return "Inconsistent" if self.resync_done is not None else "UpToDate"


def _rwx_block(spec: Mapping[str, Any]) -> bool:
    return "ReadWriteMany" in (spec.get("accessModes") or ()) and spec.get("volumeMode") == "Block"


class Linstor:
    def __init__(
        self,
        satellites: tuple[str, ...] = SATELLITES,
        *,
        clock: Callable[[], float] = time.monotonic,
        resync_seconds: float = RESYNC_SECONDS,
    ) -> None:
        self.storage_nodes = satellites
        self.satellites: tuple[str, ...] = satellites
        self.clock = clock
        self.resync_seconds = resync_seconds
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
        for node in self.storage_nodes:
            self.pools.setdefault((placement.storage_pool or DEFAULT_POOL, node), PoolSetting())

    def class_gone(self, storage_class: Mapping[str, Any]) -> None:
        self.classes.pop(str((storage_class.get("metadata") or {}).get("name")), None)

    def node_seen(self, node: Mapping[str, Any]) -> None:
        """A parent Node: a satellite of the same name (kept when the Node goes, as LINSTOR keeps nodes)."""
        name = str((node.get("metadata") or {}).get("name") or "")
        if name and name not in self.satellites:
            self.satellites = (*self.satellites, name)

    def volume_seen(self, volume: Mapping[str, Any], created_ms: int) -> None:
        spec = volume.get("spec") or {}
        csi = spec.get("csi") or {}
        if csi.get("driver") != DRIVER or not csi.get("volumeHandle"):
            return
        name = str(csi["volumeHandle"])
        size_kib = -(-parse_quantity((spec.get("capacity") or {}).get("storage", 0)) // KIB)
        ref = spec.get("claimRef") or {}
        claim = f"{ref.get('namespace')}/{ref.get('name')}" if ref.get("name") else ""
        known = self.definitions.get(name)
        if known is not None:
            known.size_kib = size_kib
            known.claim = claim or known.claim
            return
        self._minors += 1
        storage_class = str(spec.get("storageClassName") or "")
        definition = Definition(name, size_kib, storage_class, str(uuid.uuid4()), created_ms, self._minors)
        known_class = self.classes.get(storage_class)
        definition.props = dict(known_class.properties) if known_class is not None else {}
        definition.claim, definition.rwx_block = claim, _rwx_block(spec)
        self.definitions[name] = definition

    def volume_gone(self, volume: Mapping[str, Any]) -> None:
        handle = ((volume.get("spec") or {}).get("csi") or {}).get("volumeHandle")
        self.definitions.pop(str(handle), None)
        self.overrides = {k: v for k, v in self.overrides.items() if k[0] != handle}

    # -- placement -------------------------------------------------------------------------------------------

    def placement_of(self, definition: Definition) -> ClassPlacement:
        return self.classes.get(definition.storage_class) or ClassPlacement(DEFAULT_GROUP, None, 1)

    def autoplaced(self, definition: Definition) -> list[tuple[str, bool]]:
        """(node, tie-breaker?): diskful on `place_count` storage nodes rotated by name; with two, a tie-breaker."""
        placement = self.placement_of(definition)
        start = zlib.crc32(definition.name.encode()) % len(self.storage_nodes)
        order = self.storage_nodes[start:] + self.storage_nodes[:start]
        count = min(placement.place_count, len(order))
        nodes = [(node, False) for node in order[:count]]
        if count == 2 and len(order) > 2:
            nodes.append((order[2], True))  # LINSTOR's auto-tiebreaker keeps quorum possible with two replicas
        return nodes

    def replicas(self, definition: Definition) -> list[Replica]:
        """The autoplaced replicas, then those make-available added (which may have given a tie-breaker a disk)."""
        pool = self.placement_of(definition).storage_pool or DEFAULT_POOL
        found = []
        for node_id, (node, witness) in enumerate(self.autoplaced(definition)):
            placed = definition.placed.get(node)
            if placed is not None:
                found.append(self._placed_replica(definition, node, placed))
                continue
            override = self.overrides.get((definition.name, node), ReplicaOverride())
            diskless = witness or override.diskless
            found.append(
                Replica(
                    definition,
                    node,
                    node_id,
                    DISKLESS_POOL if diskless else pool,
                    diskless=diskless,
                    tie_breaker=witness,
                    state=override,
                )
            )
        seen = {r.node for r in found}
        found.extend(self._placed_replica(definition, n, p) for n, p in definition.placed.items() if n not in seen)
        return found

    def _placed_replica(self, definition: Definition, node: str, placed: Placed) -> Replica:
        override = self.overrides.get((definition.name, node), ReplicaOverride())
        done = 100.0 * (self.clock() - placed.since) / self.resync_seconds if self.resync_seconds > 0 else 100.0
        diskless = placed.diskless or override.diskless
        return Replica(
            definition,
            node,
            placed.node_id,
            DISKLESS_POOL if diskless else placed.pool,
            diskless=diskless,
            state=override,
            resync_done=None if diskless or done >= 100.0 else max(0.0, done),
        )

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
        node = self.satellite(node)
        setting = self.pools.setdefault((pool, node), PoolSetting())
        if "total_capacity" in changes:
            setting.total_kib = int(changes["total_capacity"])
        if "free_capacity" in changes:
            free = changes["free_capacity"]
            setting.free_kib = None if free is None else int(free)
        return setting

    def drop_pool(self, pool: str, node: str) -> None:
        if self.pools.pop((pool, self.satellite(node)), None) is None:
            raise NotFoundError(f"no storage pool {pool} on {node}")

    def satellite(self, node: str) -> str:
        for known in self.satellites:
            if known.lower() == node.lower():
                return known
        raise NotFoundError(f"Node '{node}' not found.")

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
