"""Decisions of the node service, read from the disk's signatures and the mount table, never from stored state.

The mount table is the record of what is staged and published: a restarted plugin or a retried call finds the
work done and answers OK, or ALREADY_EXISTS when what is there conflicts with the request. Functions that stat
paths are synchronous; the service runs them in a thread because stat on a dead mount can hang.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from csi.errors import AlreadyExistsIncompatible, FailedPrecondition, OperationPending, VolumeNotFound
from csi.node.errors import NotABlockDevice
from csi.node.filesystems import SUPPORTED_FILESYSTEMS, DiskFormat
from csi.node.mountinfo import MountInfo
from csi.node.mounts import is_corrupted_mount
from csi.nodeservice_requests import VolumeAccess

DEFAULT_FS_TYPE = "ext4"
VolumeKind = Literal["filesystem", "block", "unreachable"]


def _access(read_only: bool) -> str:
    return "read-only" if read_only else "read-write"


def filesystem_to_mount(found: DiskFormat, requested: str, device: Path) -> str:
    """The filesystem to mount: the requested one (ext4 by default) on a blank disk, else the one already there."""
    if found.blank:
        return requested or DEFAULT_FS_TYPE
    if found.fs_type not in SUPPORTED_FILESYSTEMS:
        raise FailedPrecondition(f"{device} holds {found.describe()}, which this driver does not mount or reformat")
    if requested and requested != found.fs_type:
        raise FailedPrecondition(
            f"{device} holds {found.fs_type}, not the requested {requested}; it is never reformatted"
        )
    return found.fs_type


def from_device(mount: MountInfo, rdev: int) -> bool:
    return (mount.major, mount.minor) == (os.major(rdev), os.minor(rdev))


def same_tree(a: MountInfo, b: MountInfo) -> bool:
    """Mounts of the same directory of the same filesystem (a bind of a subdirectory, e.g. a subPath, is not)."""
    return (a.major, a.minor, a.root) == (b.major, b.minor, b.root)


def check_staged(staged: MountInfo, device: Path, rdev: int, access: VolumeAccess) -> None:
    """What is mounted at the staging path is this disk, staged as asked; anything else is a conflict."""
    where = staged.mount_point
    if not from_device(staged, rdev):
        raise AlreadyExistsIncompatible(f"{where} already holds {staged.source}, not {device}")
    if access.fs_type and staged.fs_type != access.fs_type:
        raise AlreadyExistsIncompatible(f"the volume is staged at {where} as {staged.fs_type}, not {access.fs_type}")
    if staged.read_only != access.read_only:
        raise AlreadyExistsIncompatible(f"the volume is staged at {where} {_access(staged.read_only)}")


def check_published(published: MountInfo, staged: MountInfo, read_only: bool) -> None:
    """What is mounted at the target is this volume's staging mount, bound as asked; anything else conflicts."""
    where = published.mount_point
    if not same_tree(published, staged):
        raise AlreadyExistsIncompatible(f"{where} already holds another volume ({published.source})")
    # A bind of a read-only staging mount is read-only whatever the publish asked for.
    if published.read_only != (read_only or staged.read_only):
        raise AlreadyExistsIncompatible(f"the volume is already published at {where} {_access(published.read_only)}")


def check_block_published(published: MountInfo, bound_rdev: int | None, rdev: int, read_only: bool) -> None:
    where = published.mount_point
    if bound_rdev != rdev:
        raise AlreadyExistsIncompatible(f"{where} already holds something other than this volume's disk")
    if published.read_only != read_only:
        raise AlreadyExistsIncompatible(f"the volume is already published at {where} {_access(published.read_only)}")


def other_publishes(entries: Sequence[MountInfo], staged: MountInfo, target: Path) -> list[Path]:
    """Where else the staging mount is bound: the publishes of other workloads."""
    excluded = {staged.mount_point, Path(os.path.realpath(target))}
    return [e.mount_point for e in entries if same_tree(e, staged) and e.mount_point not in excluded]


def block_rdev(device: Path) -> int:
    st = device.stat()
    if not stat.S_ISBLK(st.st_mode):
        raise NotABlockDevice(device)
    return st.st_rdev


def bound_block_device(path: Path) -> int | None:
    """The device number of the block device node at `path`, or None when something else (or nothing) is there."""
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_rdev if stat.S_ISBLK(st.st_mode) else None


def block_publishes(entries: Sequence[MountInfo], device: Path, target: Path) -> list[Path]:
    """Where else the device node is bound; only mounts from the filesystem holding the node are stat'ed."""
    node = device.stat()
    holder = (os.major(node.st_dev), os.minor(node.st_dev))
    excluded = Path(os.path.realpath(target))
    return [
        e.mount_point
        for e in entries
        if (e.major, e.minor) == holder
        and e.mount_point != excluded
        and bound_block_device(e.mount_point) == node.st_rdev
    ]


def device_behind(mount: MountInfo) -> Path:
    """The block device a filesystem mount came from, checked against the device number the kernel reports."""
    source = Path(mount.source)
    if source.is_absolute() and bound_block_device(source) == os.makedev(mount.major, mount.minor):
        return source
    raise FailedPrecondition(f"the device behind {mount.mount_point} ({mount.source}) is gone")


def volume_kind(path: Path) -> VolumeKind:
    """What is at a published or staged path; NOT_FOUND when it cannot be a volume at all."""
    try:
        st = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        raise VolumeNotFound(f"no volume is published at {path}") from None
    except OSError as err:
        if is_corrupted_mount(err):
            return "unreachable"
        raise
    if stat.S_ISBLK(st.st_mode):
        return "block"
    if stat.S_ISDIR(st.st_mode):
        return "filesystem"
    raise VolumeNotFound(f"{path} is neither a mounted filesystem nor a block device")


def check_capacity(capacity: int, required_bytes: int) -> None:
    """A disk smaller than asked means the guest has not seen the parent-side expansion yet: retry, don't finish."""
    if capacity < required_bytes:
        raise OperationPending(
            f"the disk is {capacity} bytes but {required_bytes} were requested: the VM has not seen the expansion yet"
        )
