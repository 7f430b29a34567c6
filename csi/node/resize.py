"""Grow a filesystem to fill its (already enlarged) device, online: ext4 by device, XFS by mount point.

Online ext4 growth needs CAP_SYS_RESOURCE (resize2fs fails with "Permission denied" without it) and XFS
needs CAP_SYS_ADMIN; the privileged node plugin has both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from csi.node.commands import CommandRunner
from csi.node.errors import UnsupportedFilesystem
from csi.node.filesystems import FilesystemProbe


class Resizer(Protocol):
    async def grow(self, device: Path, mount_point: Path) -> None:
        """Grow the filesystem on `device`, mounted at `mount_point`, to the device's size; a no-op if it fits."""
        ...


def grow_argv(fs_type: str, device: Path, mount_point: Path) -> list[str]:
    if fs_type == "ext4":
        return ["resize2fs", str(device)]
    if fs_type == "xfs":
        # xfs_growfs only works on a mounted filesystem and names it by mount point.
        return ["xfs_growfs", str(mount_point)]
    raise UnsupportedFilesystem(fs_type or "none")


class FilesystemResizer:
    """Probes the filesystem type from the device, so expansion needs no record of how it was formatted."""

    def __init__(self, runner: CommandRunner, probe: FilesystemProbe) -> None:
        self._runner = runner
        self._probe = probe

    async def grow(self, device: Path, mount_point: Path) -> None:
        found = await self._probe.probe(device)
        await self._runner.run(*grow_argv(found.fs_type, device, mount_point))
