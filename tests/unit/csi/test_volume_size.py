"""The size CreateVolume and ControllerExpandVolume provision: whole MiB within the range, or a clean refusal."""

from __future__ import annotations

import pytest

from csi._proto import csi_pb2
from csi.errors import InvalidArgument, OutOfRange
from csi.volumes import MAX_SIZE, MIB, size_for

GIB = 1 << 30


@pytest.mark.parametrize(
    ("required", "limit", "expected"),
    [
        (0, 0, GIB),  # nothing asked: the default
        (1, 0, MIB),
        (MIB + 1, 0, 2 * MIB),
        (0, 3 * MIB + 5, 3 * MIB),  # the default, cut to the limit
        (MIB + 1, 3 * MIB, 2 * MIB),
        (MAX_SIZE - MAX_SIZE % MIB, 0, MAX_SIZE - MAX_SIZE % MIB),
    ],
)
def test_sizes_are_whole_mib_within_the_range(required: int, limit: int, expected: int) -> None:
    assert size_for(csi_pb2.CapacityRange(required_bytes=required, limit_bytes=limit), GIB) == expected


@pytest.mark.parametrize(
    ("required", "limit", "error"),
    [
        (-1, 0, InvalidArgument),
        (0, -(1 << 63), InvalidArgument),
        (2 * MIB, MIB, InvalidArgument),
        (MIB + 1, MIB + 2, OutOfRange),
        (MAX_SIZE, 0, OutOfRange),  # rounds up past int64
        (MAX_SIZE - MIB + 2, 0, OutOfRange),
    ],
)
def test_impossible_sizes_are_refused(required: int, limit: int, error: type[Exception]) -> None:
    with pytest.raises(error):
        size_for(csi_pb2.CapacityRange(required_bytes=required, limit_bytes=limit), GIB)
