"""Volume condition for NodeGetVolumeStats: abnormal when the device is gone or the filesystem went read-only.

Signals, all read without writing to the volume: the path cannot be stat'ed (a shut-down XFS answers EIO);
it is not a mount point; the device node behind the mount, or the kernel's sysfs entry for it, disappeared
(hot-unplug); a raw block device reports zero size (its backing went away); the filesystem is read-only while
a mount of it is read-write, or flags an emergency (ext4 `errors=remount-ro` shows `ro` on older kernels and
`emergency_ro` on newer ones).
"""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from csi.node.mountinfo import MountInfo, MountTable, mount_at
from csi.node.stats import SYS_ROOT, sysfs_block_dir

EMERGENCY_SUPER_OPTIONS = ("emergency_ro", "shutdown")


@dataclass(frozen=True)
class VolumeCondition:
    """CSI's VolumeCondition: abnormal plus a message a human can act on."""

    abnormal: bool
    message: str


HEALTHY = VolumeCondition(abnormal=False, message="volume is healthy")


class HealthChecker(Protocol):
    async def condition(self, volume_path: Path) -> VolumeCondition:
        """Judge the volume published or staged at `volume_path` (a filesystem mount or a raw block file)."""
        ...


def read_only_problem(mount: MountInfo, table: Sequence[MountInfo]) -> str | None:
    """Why the filesystem behind `mount` went read-only under its users, or None when it did not."""
    if emergency := [option for option in EMERGENCY_SUPER_OPTIONS if option in mount.super_options]:
        return f"filesystem on {mount.source} is in {emergency[0]} state"
    if "ro" not in mount.super_options:
        return None
    # A read-only filesystem is normal for a read-only volume; under a read-write mount it is a failure.
    same_filesystem = [entry for entry in table if (entry.major, entry.minor) == (mount.major, mount.minor)]
    if any(not entry.read_only for entry in same_filesystem):
        return f"filesystem on {mount.source} was remounted read-only under a read-write mount"
    return None


class VolumeHealthChecker:
    """Reads the mount table and sysfs; `sys_root` is configurable for tests and simulators."""

    def __init__(self, table: MountTable | None = None, sys_root: Path = SYS_ROOT) -> None:
        self._table = table or MountTable()
        self._sys_root = sys_root

    async def condition(self, volume_path: Path) -> VolumeCondition:
        return await asyncio.to_thread(self._condition, volume_path)

    def _condition(self, volume_path: Path) -> VolumeCondition:
        try:
            st = volume_path.stat()
        except FileNotFoundError:
            return VolumeCondition(True, f"volume path {volume_path} does not exist")
        except OSError as err:
            return VolumeCondition(True, f"volume path {volume_path} is unreachable: {err.strerror}")
        if stat.S_ISBLK(st.st_mode):
            return self._block_condition(st.st_rdev)
        table = self._table.entries()
        mount = mount_at(table, volume_path)
        if mount is None:
            return VolumeCondition(True, f"volume path {volume_path} is not mounted")
        if problem := self._device_problem(mount) or read_only_problem(mount, table):
            return VolumeCondition(True, problem)
        return HEALTHY

    def _block_condition(self, rdev: int) -> VolumeCondition:
        where = sysfs_block_dir(self._sys_root, rdev)
        try:
            sectors = int((where / "size").read_text())
        except FileNotFoundError:
            return VolumeCondition(True, f"block device {where.name} is gone")
        if sectors == 0:
            return VolumeCondition(True, f"block device {where.name} reports zero size")
        return HEALTHY

    def _device_problem(self, mount: MountInfo) -> str | None:
        if mount.source.startswith("/") and not Path(mount.source).exists():
            return f"device {mount.source} is gone"
        # Major 0 is the kernel's anonymous devices (tmpfs, overlay): no sysfs entry to look for.
        device_number = os.makedev(mount.major, mount.minor)
        if mount.major and not sysfs_block_dir(self._sys_root, device_number).exists():
            return f"device {mount.major}:{mount.minor} behind {mount.source} is gone"
        return None
