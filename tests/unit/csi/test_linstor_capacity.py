"""Capacity of a parent storage class: LINSTOR's spreading rule, its size-info answer, and the storage-pool fallback."""

from __future__ import annotations

import pytest

from csi.linstor.capacity import (
    KIB,
    Space,
    largest_volume_kib,
    replicated_kib,
    space_from_pools,
    space_from_size_info,
)
from csi.linstor.mapping import Placement
from csi.linstor.models import SpaceInfo, StoragePool

GIB_KIB = 1024 * 1024


@pytest.mark.parametrize(
    ("sizes", "count", "expected"),
    [
        ([10, 20, 30], 1, 60),
        ([10, 20, 30], 2, 30),  # 20 on (20,30) leaves (10,0,10), then 10 more on (10,10)
        ([10, 20, 30], 3, 10),
        ([10, 20, 30], 4, 0),
        ([100, 100], 2, 100),
        ([99, 99, 100], 2, 100),  # LINSTOR's greedy rule, not the 149 a perfect packing would reach
        ([0, 50, 50], 3, 0),
        ([], 2, 0),
        ([5], 0, 5),  # a count below one is treated as one
    ],
)
def test_replicated_kib_follows_linstor(sizes: list[int], count: int, expected: int) -> None:
    assert replicated_kib(sizes, count) == expected


@pytest.mark.parametrize(
    ("sizes", "count", "expected"),
    [([10, 20, 30], 1, 30), ([10, 20, 30], 2, 20), ([10, 20, 30], 3, 10), ([10, 20], 3, 0), ([0, 7], 2, 0)],
)
def test_largest_volume_is_the_count_th_largest_pool(sizes: list[int], count: int, expected: int) -> None:
    assert largest_volume_kib(sizes, count) == expected


def test_space_from_size_info_in_bytes() -> None:
    info = SpaceInfo(max_vlm_size_in_kib=20, available_size_in_kib=30, capacity_in_kib=150)
    assert space_from_size_info(info) == Space(30 * KIB, 20 * KIB, 150 * KIB)


def test_space_from_size_info_of_an_old_controller_is_unknown() -> None:
    assert space_from_size_info(SpaceInfo(max_vlm_size_in_kib=20)) is None


def pool(node: str, name: str, free_gib: int | None, total_gib: int = 100, kind: str = "LVM_THIN") -> StoragePool:
    free = None if free_gib is None else free_gib * GIB_KIB
    return StoragePool(
        storage_pool_name=name,
        node_name=node,
        provider_kind=kind,
        free_capacity=free,
        total_capacity=total_gib * GIB_KIB,
    )


POOLS = [
    pool("n1", "data", 10),
    pool("n2", "data", 20),
    pool("n3", "data", 30),
    pool("n1", "fast", 90),
    pool("n1", "DfltDisklessStorPool", 2**40, kind="DISKLESS"),
    pool("n4", "data", None),  # not reported yet
]


@pytest.mark.parametrize(
    ("placement", "available_gib", "largest_gib", "total_gib"),
    [
        (Placement(storage_pool="data", placement_count=2), 30, 20, 100),
        (Placement(storage_pool="data", placement_count=3), 10, 10, 100),
        (Placement(storage_pool="data", placement_count=1), 60, 30, 300),
        (Placement(storage_pool="data", placement_count=2, nodes=("n1", "n2")), 10, 10, 100),
        # No pool named: each node offers its roomiest diskful pool (n1: fast).
        (Placement(placement_count=2), 50, 30, 100),
        (Placement(storage_pool="missing", placement_count=1), 0, 0, 0),
    ],
)
def test_space_from_pools(placement: Placement, available_gib: int, largest_gib: int, total_gib: int) -> None:
    space = space_from_pools(POOLS, placement)
    assert space == Space(available_gib * 2**30, largest_gib * 2**30, total_gib * 2**30)
