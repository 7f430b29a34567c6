"""The backing bytes of simulated LINSTOR volumes and snapshots: `_disks` images, off the event loop."""

from __future__ import annotations

import asyncio
from pathlib import Path

from e2e.sims import _disks


def _grow_or_create(path: Path, size: int) -> bool:
    if not path.exists():
        _disks.create(path, size)
        return True
    return _disks.grow(path, size)


class Images:
    """Volume images per parent PVC and snapshot images per VolumeSnapshot, under the harness directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def volume(self, namespace: str, claim: str) -> Path:
        return _disks.volume_image(self.directory, namespace, claim)

    def snapshot(self, namespace: str, snapshot: str) -> Path:
        return _disks.snapshot_image(self.directory, namespace, snapshot)

    async def create_blank(self, path: Path, size: int) -> None:
        await asyncio.to_thread(_disks.create, path, size)

    async def copy(self, source: Path, target: Path, size: int | None = None) -> None:
        await asyncio.to_thread(_disks.copy, source, target, size)

    async def grow(self, path: Path, size: int) -> bool:
        """Grow to `size` bytes (a missing image is created); True when the image changed."""
        return await asyncio.to_thread(_grow_or_create, path, size)

    async def remove(self, path: Path) -> None:
        await asyncio.to_thread(_disks.remove, path)
