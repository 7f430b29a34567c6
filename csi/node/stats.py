"""Capacity and inode numbers for NodeGetVolumeStats: statvfs for filesystems, sysfs for raw block volumes."""

from __future__ import annotations

import asyncio
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from csi.node.errors import NotABlockDevice

SYS_ROOT = Path("/sys")
SECTOR_BYTES = 512


@dataclass(frozen=True)
class VolumeStats:
    """Filesystem usage as kubelet reports it: available is what an unprivileged writer can still use."""

    total_bytes: int
    available_bytes: int
    used_bytes: int
    total_inodes: int
    free_inodes: int
    used_inodes: int


class StatsReader(Protocol):
    async def filesystem_stats(self, path: Path) -> VolumeStats:
        """Usage of the filesystem mounted at (or containing) `path`."""
        ...


class BlockSizeReader(Protocol):
    async def size_bytes(self, device: Path) -> int:
        """Size of the block device at `device`, which may be a node or a file it is bind-mounted onto."""
        ...


def volume_stats_from_statvfs(st: os.statvfs_result) -> VolumeStats:
    return VolumeStats(
        total_bytes=st.f_blocks * st.f_frsize,
        available_bytes=st.f_bavail * st.f_frsize,
        used_bytes=(st.f_blocks - st.f_bfree) * st.f_frsize,
        total_inodes=st.f_files,
        free_inodes=st.f_ffree,
        used_inodes=st.f_files - st.f_ffree,
    )


def sysfs_block_dir(sys_root: Path, rdev: int) -> Path:
    """/sys/dev/block/MAJOR:MINOR, which exists for as long as the kernel knows the device."""
    return sys_root / "dev" / "block" / f"{os.major(rdev)}:{os.minor(rdev)}"


def read_block_size(sys_root: Path, device: Path) -> int:
    st = device.stat()
    if not stat.S_ISBLK(st.st_mode):
        raise NotABlockDevice(device)
    # sysfs counts 512-byte sectors whatever the device's logical block size; no subprocess per stats call.
    sectors = (sysfs_block_dir(sys_root, st.st_rdev) / "size").read_text()
    return int(sectors) * SECTOR_BYTES


class VolumeStatsReader:
    """statvfs and sysfs reads, off the event loop because a failing disk can stall them."""

    def __init__(self, sys_root: Path = SYS_ROOT) -> None:
        self._sys_root = sys_root

    async def filesystem_stats(self, path: Path) -> VolumeStats:
        return volume_stats_from_statvfs(await asyncio.to_thread(os.statvfs, path))

    async def size_bytes(self, device: Path) -> int:
        return await asyncio.to_thread(read_block_size, self._sys_root, device)
