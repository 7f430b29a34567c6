"""The simulated cluster as the LINSTOR REST API v1 shows it: ResourceWithVolumes, StoragePool and
QuerySizeInfoResponse JSON with the field names and nesting of linstor-server's docs/rest_v1_openapi.yaml.

DRBD state is derived the way DRBD 9 behaves: a replica sees the peers it is connected to, has quorum with a
majority of all replicas (the tie-breaker votes), and may be promoted when nobody uses the volume, it has quorum
and UpToDate data is reachable. A replica make-available added is Inconsistent and a SyncTarget of an UpToDate peer
(`state.replication_states`) until its resync is done. Tests override any of it per replica.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from e2e.sims._linstor_state import DEFAULT_GROUP, DISKLESS_POOL, ClassPlacement, Definition, Linstor, Replica

DISKLESS_CAPACITY = 2**63 - 1  # LINSTOR reports Long.MAX_VALUE for diskless pools
PEER_SLOTS = 7
META_KIB = 4 * 1024


def _uuid(*parts: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "/".join(parts)))


def _connection(replica: Replica, peer: Replica) -> dict[str, Any]:
    if not replica.state.connected:
        return {"connected": False, "message": "StandAlone"}
    if not peer.state.connected:
        return {"connected": False, "message": "Connecting"}
    return {"connected": True, "message": "Connected"}


def _reachable(replica: Replica, replicas: Sequence[Replica]) -> list[Replica]:
    return [replica] + [p for p in replicas if p is not replica and _connection(replica, p)["connected"]]


def _promotion(replica: Replica, replicas: Sequence[Replica]) -> tuple[bool, int]:
    reachable = _reachable(replica, replicas)
    quorum = 2 * len(reachable) > len(replicas)
    data = any(not r.diskless and r.disk_state == "UpToDate" for r in reachable)
    local = not replica.diskless and replica.disk_state == "UpToDate"
    score = 10000 + 100 * local + len(reachable) if quorum and data else 0
    may = quorum and data and not any(r.state.in_use for r in replicas)
    if replica.state.may_promote is not None:
        may = replica.state.may_promote
    if replica.state.promotion_score is not None:
        score = replica.state.promotion_score
    return may, score


def _storage_volume(replica: Replica) -> dict[str, Any]:
    definition = replica.definition
    size = 0 if replica.diskless else definition.size_kib + META_KIB
    return {
        "volume_number": 0,
        "device_path": "" if replica.diskless else f"/dev/vg-{replica.pool}/{definition.name}_00000",
        "allocated_size_kib": size,
        "usable_size_kib": size,
        "disk_state": "[]",
    }


def _drbd_volume(replica: Replica) -> dict[str, Any]:
    definition = replica.definition
    volume: dict[str, Any] = {
        "drbd_volume_definition": {"resource_name_suffix": "", "volume_number": 0, "minor_number": definition.minor},
        "device_path": f"/dev/drbd{definition.minor}",
        "backing_device": _storage_volume(replica)["device_path"],
        "meta_disk": "internal",
        "allocated_size_kib": 0 if replica.diskless else definition.size_kib + META_KIB,
        "usable_size_kib": definition.size_kib,
    }
    if replica.state.online:
        volume["disk_state"] = replica.disk_state
    return volume


def _replication(replica: Replica, replicas: Sequence[Replica]) -> dict[str, Any]:
    """DRBD's per-peer replication state of a resyncing replica (SyncTarget) and of its source (SyncSource)."""
    if not replica.state.online:
        return {}
    sources = [r for r in replicas if not r.diskless and r.resync_done is None and r.disk_state == "UpToDate"]
    if not sources:
        return {}
    if replica.resync_done is not None:
        return {sources[0].node: _sync("SyncTarget", replica.resync_done)}
    if replica is sources[0]:
        return {r.node: _sync("SyncSource", r.resync_done) for r in replicas if r.resync_done is not None}
    return {}


def _sync(state: str, done: float | None) -> dict[str, Any]:
    return {"replication_state": state, "done_percentage": round(done or 0.0, 1)}


def _flags(replica: Replica) -> list[str]:
    if not replica.diskless:
        return []
    return ["DISKLESS", "DRBD_DISKLESS"] + ["TIE_BREAKER"] * replica.tie_breaker


def resource_view(replica: Replica, replicas: Sequence[Replica]) -> dict[str, Any]:
    """One ResourceWithVolumes."""
    definition = replica.definition
    may_promote, score = _promotion(replica, replicas)
    drbd: dict[str, Any] = {
        "drbd_resource_definition": {
            "resource_name_suffix": "",
            "peer_slots": PEER_SLOTS,
            "al_stripes": 1,
            "al_stripe_size_kib": 32,
            "port": 7000 + definition.minor - 1000,
            "transport_type": "IP",
            "secret": "sim-not-a-secret",
            "down": False,
        },
        "node_id": replica.node_id,
        "peer_slots": PEER_SLOTS,
        "al_stripes": 1,
        "al_size": 32,
        "flags": ["INITIALIZED"],
        "drbd_volumes": [_drbd_volume(replica)],
        "connections": {},
    }
    if replica.state.online:
        drbd["connections"] = {p.node: _connection(replica, p) for p in replicas if p is not replica}
        drbd["promotion_score"] = score
        drbd["may_promote"] = may_promote
    volume: dict[str, Any] = {
        "volume_number": 0,
        "storage_pool_name": replica.pool,
        "provider_kind": "DISKLESS" if replica.diskless else "LVM",
        "device_path": f"/dev/drbd{definition.minor}",
        "allocated_size_kib": _drbd_volume(replica)["allocated_size_kib"],
        "usable_size_kib": definition.size_kib,
        "props": {"Satellite/Device/Symlinks/0": f"/dev/drbd/by-res/{definition.name}/0"},
        "flags": [],
        "layer_data_list": [
            {"type": "DRBD", "data": _drbd_volume(replica)},
            {"type": "STORAGE", "data": _storage_volume(replica)},
        ],
        "uuid": _uuid(definition.uuid, replica.node, "0"),
        "reports": [],
    }
    if replica.state.online:
        volume["state"] = {"disk_state": replica.disk_state}
        if replication := _replication(replica, replicas):
            volume["state"]["replication_states"] = replication
    return {
        "name": definition.name,
        "node_name": replica.node,
        "props": {"StorPoolName": replica.pool},
        "flags": _flags(replica),
        "layer_object": {
            "children": [
                {
                    "type": "STORAGE",
                    "resource_name_suffix": "",
                    "storage": {"storage_volumes": [_storage_volume(replica)]},
                }
            ],
            "resource_name_suffix": "",
            "type": "DRBD",
            "drbd": drbd,
        },
        "state": {"in_use": replica.state.in_use} if replica.state.online else {},
        "uuid": _uuid(definition.uuid, replica.node),
        "create_timestamp": definition.created_ms,
        "volumes": [volume],
    }


def resources_view(
    state: Linstor, names: Iterable[str] = (), nodes: Iterable[str] = (), pools: Iterable[str] = ()
) -> list[dict[str, Any]]:
    """GET /v1/view/resources with its `resources`, `nodes` and `storage_pools` filters (case-insensitive)."""
    wanted = {n.lower() for n in names}
    on_nodes = {n.lower() for n in nodes}
    in_pools = {p.lower() for p in pools}
    found = []
    for definition in sorted(state.definitions.values(), key=lambda d: d.name):
        if wanted and definition.name.lower() not in wanted:
            continue
        replicas = state.replicas(definition)
        for replica in replicas:
            if on_nodes and replica.node.lower() not in on_nodes:
                continue
            if in_pools and replica.pool.lower() not in in_pools:
                continue
            found.append(resource_view(replica, replicas))
    return found


def storage_pool_view(state: Linstor, pool: str, node: str) -> dict[str, Any]:
    diskless = pool == DISKLESS_POOL
    return {
        "storage_pool_name": pool,
        "node_name": node,
        "provider_kind": "DISKLESS" if diskless else "LVM",
        "props": {} if diskless else {"StorDriver/StorPoolName": f"vg-{pool}"},
        "static_traits": {"SupportsSnapshots": "false"} | ({} if diskless else {"Provisioning": "Fat"}),
        "free_capacity": DISKLESS_CAPACITY if diskless else state.free_kib(pool, node),
        "total_capacity": DISKLESS_CAPACITY if diskless else state.pools[(pool, node)].total_kib,
        "free_space_mgr_name": f"{node};{pool}",
        "uuid": _uuid("pool", node, pool),
        "reports": [],
        "supports_snapshots": False,
        "external_locking": False,
    }


def storage_pools_view(state: Linstor, names: Iterable[str] = (), nodes: Iterable[str] = ()) -> list[dict[str, Any]]:
    """GET /v1/view/storage-pools: every diskful pool plus the diskless pool on each satellite."""
    wanted = {n.lower() for n in names}
    on_nodes = {n.lower() for n in nodes}
    return [
        storage_pool_view(state, pool, node)
        for node in state.satellites
        for pool in [DISKLESS_POOL, *(p for p in state.pool_names() if (p, node) in state.pools)]
        if (not wanted or pool.lower() in wanted) and (not on_nodes or node.lower() in on_nodes)
    ]


def spread(sizes: list[int], place_count: int) -> int:
    """linstor-server's CtrlQuerySizeInfoHelper.simulate, step for step."""
    total = 0
    sizes = list(sizes)
    while len(sizes) >= place_count:
        sizes.sort()
        first = len(sizes) - place_count
        nth = sizes[first]
        total += nth
        for index in range(first, len(sizes)):
            sizes[index] -= nth
        sizes = [s for s in sizes if s != 0]
    return total


def size_info(state: Linstor, group_name: str, select: Mapping[str, Any]) -> dict[str, Any]:
    """POST /v1/resource-groups/{rg}/query-size-info; the request's select_filter overrides the group's."""
    group = state.group(group_name)
    place_count = int(select.get("place_count") or group.place_count)
    pool = select.get("storage_pool") or group.storage_pool
    nodes = select.get("node_name_list") or list(state.satellites)
    candidates: list[tuple[int, int, str, str]] = []
    for node in state.satellites:
        if node not in nodes:
            continue
        choices = [p for p in ([pool] if pool else state.pool_names()) if (p, node) in state.pools]
        if choices:
            # One replica per node: the node's roomiest matching pool is the one the autoplacer would pick.
            free, name = max((state.free_kib(p, node), p) for p in choices)
            candidates.append((free, state.pools[(name, node)].total_kib, node, name))
    candidates.sort(reverse=True)
    selected = candidates[:place_count] if len(candidates) >= place_count and candidates[place_count - 1][0] > 0 else []
    reports = []
    if not selected:
        reports.append({"ret_code": 0, "message": "Not enough available nodes"})
    return {
        "space_info": {
            "max_vlm_size_in_kib": min((c[0] for c in selected), default=0),
            "available_size_in_kib": spread([c[0] for c in candidates], place_count) if selected else 0,
            "capacity_in_kib": spread([c[1] for c in candidates], place_count),
            "default_max_oversubscription_ratio": 20.0,
            "max_oversubscription_ratio": 20.0,
            "max_free_capacity_oversubscription_ratio": 20.0,
            "max_total_capacity_oversubscription_ratio": 20.0,
            "next_spawn_result": [
                {
                    "node_name": node,
                    "stor_pool_name": name,
                    "stor_pool_oversubscription_ratio": 20.0,
                    "stor_pool_free_capacity_oversubscription_ratio": 20.0,
                    "stor_pool_total_capacity_oversubscription_ratio": 20.0,
                }
                for _, _, node, name in selected
            ],
        },
        "reports": reports,
    }


def replica_view(state: Linstor, name: str, node: str) -> dict[str, Any]:
    replica = state.replica(name, node)
    return resource_view(replica, state.replicas(replica.definition))


def resource_definitions_view(state: Linstor, names: Iterable[str] = ()) -> list[dict[str, Any]]:
    """GET /v1/resource-definitions with its `resource_definitions` filter."""
    wanted = {n.lower() for n in names}
    return [
        _definition_view(state, d)
        for d in sorted(state.definitions.values(), key=lambda d: d.name)
        if not wanted or d.name.lower() in wanted
    ]


def _definition_view(state: Linstor, definition: Definition) -> dict[str, Any]:
    return {
        "name": definition.name,
        "resource_group_name": state.placement_of(definition).resource_group,
        "props": dict(definition.props),
        "flags": [],
        "layer_data": [{"type": "DRBD", "data": {"port": 7000 + definition.minor - 1000}}, {"type": "STORAGE"}],
        "uuid": definition.uuid,
    }


def resource_groups_view(state: Linstor, names: Iterable[str] = ()) -> list[dict[str, Any]]:
    """GET /v1/resource-groups with its `resource_groups` filter: the default group and one per class."""
    wanted = {n.lower() for n in names}
    groups: dict[str, ClassPlacement] = {DEFAULT_GROUP: ClassPlacement(DEFAULT_GROUP, None, 1)}
    for placement in state.classes.values():
        groups.setdefault(placement.resource_group, placement)
    found = []
    for name, placement in sorted(groups.items()):
        if wanted and name.lower() not in wanted:
            continue
        select: dict[str, Any] = {"place_count": placement.place_count}
        if placement.storage_pool:
            select["storage_pool"] = placement.storage_pool
        found.append({"name": name, "props": {}, "select_filter": select, "uuid": _uuid("group", name)})
    return found
