"""Which access types and modes the driver serves: RWO filesystem/block, RWX block; RWX filesystem is refused."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from csi._proto import csi_pb2
from csi.errors import InvalidArgument

Mode = csi_pb2.VolumeCapability.AccessMode
SINGLE_NODE = frozenset(
    {
        Mode.SINGLE_NODE_WRITER,
        Mode.SINGLE_NODE_READER_ONLY,
        Mode.SINGLE_NODE_SINGLE_WRITER,
        Mode.SINGLE_NODE_MULTI_WRITER,
    }
)
MULTI_NODE = frozenset({Mode.MULTI_NODE_READER_ONLY, Mode.MULTI_NODE_SINGLE_WRITER, Mode.MULTI_NODE_MULTI_WRITER})
FS_TYPES = frozenset({"", "ext4", "xfs"})


def problem(capability: Any) -> str | None:
    """Why a capability cannot be served, or None when it can."""
    mode = capability.access_mode.mode
    block = capability.HasField("block")
    if not block and not capability.HasField("mount"):
        return "volume capability needs an access type (block or mount)"
    if mode not in SINGLE_NODE | MULTI_NODE:
        return f"access mode {_mode_name(mode)} is not supported"
    if mode in MULTI_NODE and not block:
        return "multi-node filesystem volumes (RWX filesystem) are not supported; use block volumes for RWX"
    if not block and capability.mount.fs_type not in FS_TYPES:
        return f"filesystem {capability.mount.fs_type!r} is not supported (ext4, xfs)"
    return None


def _mode_name(mode: int) -> str:
    """The mode's name; a number no CSI version defines (a newer CO, or garbage) is shown as it came."""
    try:
        return str(Mode.Mode.Name(mode))
    except ValueError:
        return str(mode)


def check(capabilities: Iterable[Any]) -> None:
    listed = list(capabilities)
    if not listed:
        raise InvalidArgument("volume capabilities are required")
    for capability in listed:
        reason = problem(capability)
        if reason:
            raise InvalidArgument(reason)


def multi_node(capabilities: Iterable[Any]) -> bool:
    return any(c.access_mode.mode in MULTI_NODE for c in capabilities)


def is_block(capabilities: Iterable[Any]) -> bool:
    return any(c.HasField("block") for c in capabilities)
