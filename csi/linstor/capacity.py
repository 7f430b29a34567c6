"""How much a parent storage class can still provision, honouring how many replicas each volume needs.

LINSTOR answers this itself (query-size-info, asked with the class's place count): `available_size_in_kib` is
already spread over the replicas and `max_vlm_size_in_kib` is the largest single volume the autoplacer could place
next. For resource groups LINSTOR cannot be asked about (linstor-csi's generated `sc-<uuid>` groups, older
controllers) the same figures are computed here from the storage pools, with LINSTOR's own spreading rule.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from csi.linstor.mapping import Placement
from csi.linstor.models import SpaceInfo, StoragePool

KIB = 1024


@dataclass(frozen=True)
class Space:
    """Bytes: what GetCapacity reports (`available`, `maximum_volume`) plus the class's replicated total."""

    available: int
    maximum_volume: int
    total: int | None = None


def replicated_kib(sizes_kib: Iterable[int], placement_count: int) -> int:
    """Data that fits when every volume needs `placement_count` replicas on distinct pools.

    LINSTOR's rule (CtrlQuerySizeInfoHelper.simulate): repeatedly fill the `placement_count` fullest pools by the
    smallest of them, until fewer than `placement_count` pools have room left.
    """
    count = max(1, placement_count)
    sizes = sorted(s for s in sizes_kib if s > 0)
    placed = 0
    while len(sizes) >= count:
        nth = sizes[-count]
        placed += nth
        sizes = sorted([*sizes[:-count], *(s - nth for s in sizes[-count:])])
        sizes = [s for s in sizes if s > 0]
    return placed


def largest_volume_kib(sizes_kib: Iterable[int], placement_count: int) -> int:
    """The biggest single volume with `placement_count` replicas: the count-th largest free pool."""
    sizes = sorted((s for s in sizes_kib if s > 0), reverse=True)
    count = max(1, placement_count)
    return sizes[count - 1] if len(sizes) >= count else 0


def space_from_size_info(info: SpaceInfo) -> Space | None:
    """LINSTOR's query-size-info answer in bytes; None when the controller is too old to report availability."""
    if info.available_size_in_kib is None:
        return None
    total = info.capacity_in_kib * KIB if info.capacity_in_kib is not None else None
    return Space(info.available_size_in_kib * KIB, info.max_vlm_size_in_kib * KIB, total)


def pools_for(pools: Sequence[StoragePool], placement: Placement) -> list[StoragePool]:
    """The diskful pools the class may place on, one per node (a node holds at most one replica of a volume)."""
    best: dict[str, StoragePool] = {}
    for pool in pools:
        if pool.diskless or pool.free_capacity is None:
            continue
        if placement.storage_pool and pool.storage_pool_name != placement.storage_pool:
            continue
        node = pool.node_name or pool.storage_pool_name
        if placement.nodes and node not in placement.nodes:
            continue
        if node not in best or (best[node].free_capacity or 0) < pool.free_capacity:
            best[node] = pool
    return list(best.values())


def space_from_pools(pools: Sequence[StoragePool], placement: Placement) -> Space:
    usable = pools_for(pools, placement)
    free = [p.free_capacity or 0 for p in usable]
    total = [p.total_capacity or 0 for p in usable]
    count = placement.placement_count
    return Space(
        replicated_kib(free, count) * KIB,
        largest_volume_kib(free, count) * KIB,
        replicated_kib(total, count) * KIB,
    )
