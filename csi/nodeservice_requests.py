"""Checks on node RPC requests: required fields, safe paths, and the access a volume capability asks for.

Paths kubelet sends are always absolute; a relative path or a `..` component is either a bug or an attack, and
is refused before anything touches the filesystem. The one exception is the path a CO asks *about* (stats,
expansion): csi-sanity sends `some/path` there and expects NOT_FOUND, since no volume can be published at it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from csi import capabilities
from csi._proto import csi_pb2
from csi.errors import InvalidArgument, VolumeNotFound
from csi.ids import SERIAL_KEY

Mode = csi_pb2.VolumeCapability.AccessMode
MAX_PATH_BYTES = 4096  # PATH_MAX on Linux


@dataclass(frozen=True)
class VolumeAccess:
    """How the CO wants to use the volume: a raw block device, or a filesystem mounted with flags."""

    block: bool
    mode: int
    fs_type: str = ""  # "" = whatever the disk holds, ext4 when it is blank
    mount_flags: tuple[str, ...] = ()

    @property
    def read_only(self) -> bool:
        return "ro" in self.mount_flags

    @property
    def single_writer(self) -> bool:
        return self.mode == Mode.SINGLE_NODE_SINGLE_WRITER


def required(value: str, field: str) -> str:
    if not value:
        raise InvalidArgument(f"{field} is required")
    return value


def _refuse_malformed(value: str, field: str) -> None:
    if "\0" in value:
        raise InvalidArgument(f"{field} contains a NUL byte")
    if len(value.encode()) > MAX_PATH_BYTES:
        raise InvalidArgument(f"{field} is longer than {MAX_PATH_BYTES} bytes")
    if ".." in PurePosixPath(value).parts:
        raise InvalidArgument(f"{field} {value!r} must not contain '..'")


def safe_path(value: str, field: str) -> Path:
    """A path the driver will create, mount or remove: required, absolute, without `..`."""
    required(value, field)
    _refuse_malformed(value, field)
    if not value.startswith("/"):
        raise InvalidArgument(f"{field} {value!r} must be an absolute path")
    return Path(value)


def optional_safe_path(value: str, field: str) -> Path | None:
    return safe_path(value, field) if value else None


def published_path(value: str, field: str) -> Path:
    """A path the CO asks about: a relative one cannot hold a volume, which the spec answers with NOT_FOUND."""
    required(value, field)
    _refuse_malformed(value, field)
    if not value.startswith("/"):
        raise VolumeNotFound(f"no volume is published at {value!r}: {field} must be an absolute path")
    return Path(value)


def serial_of(volume_context: Any) -> str:
    """The disk serial the controller put in the volume context; without it the disk cannot be found."""
    serial = str(volume_context.get(SERIAL_KEY, ""))
    if not serial:
        raise InvalidArgument(f"volume_context.{SERIAL_KEY} is required (the volume context from CreateVolume)")
    if "/" in serial or "\0" in serial:
        raise InvalidArgument(f"volume_context.{SERIAL_KEY} {serial!r} is not a disk serial")
    return serial


def volume_access(capability: Any) -> VolumeAccess:
    """Parse a VolumeCapability with the same rules the controller applies, plus what only the node sees."""
    if reason := capabilities.problem(capability):
        raise InvalidArgument(reason)
    mode = capability.access_mode.mode
    if capability.HasField("block"):
        return VolumeAccess(block=True, mode=mode)
    mount = capability.mount
    if mount.volume_mount_group:
        raise InvalidArgument("volume_mount_group is not supported (no VOLUME_MOUNT_GROUP capability)")
    for flag in mount.mount_flags:
        # One flag per entry: a comma would smuggle extra options past these checks into `mount -o`.
        if not flag or "," in flag or "\0" in flag:
            raise InvalidArgument(f"mount flag {flag!r} is not a single mount option")
    return VolumeAccess(block=False, mode=mode, fs_type=mount.fs_type, mount_flags=tuple(mount.mount_flags))


def requested_access(request: Any) -> VolumeAccess:
    if not request.HasField("volume_capability"):
        raise InvalidArgument("volume_capability is required")
    return volume_access(request.volume_capability)
