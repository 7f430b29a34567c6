"""Volume capabilities the driver cannot serve are INVALID_ARGUMENT with a reason, whatever the CO sends."""

from __future__ import annotations

import pytest

from csi import capabilities
from csi._proto import csi_pb2
from csi.errors import InvalidArgument

Mode = csi_pb2.VolumeCapability.AccessMode


@pytest.mark.parametrize(("mode", "shown"), [(0, "UNKNOWN"), (99, "99"), (-3, "-3")])
def test_an_unknown_access_mode_is_refused_by_name_or_number(mode: int, shown: str) -> None:
    capability = csi_pb2.VolumeCapability(block=csi_pb2.VolumeCapability.BlockVolume())
    capability.access_mode.mode = mode  # type: ignore[assignment]  # a number no CSI version defines
    assert capabilities.problem(capability) == f"access mode {shown} is not supported"
    with pytest.raises(InvalidArgument, match=f"access mode {shown} "):
        capabilities.check([capability])
