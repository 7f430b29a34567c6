"""Mount, bind (read-only honoured), publish a raw block device onto a file, unmount, clean up a mount point.

Unmounting and cleanup are idempotent, because kubelet retries them: nothing mounted is success. Cleanup
follows mount-utils' CleanupMountPoint: a path whose stat fails the way dead mounts fail (ENOTCONN, ESTALE,
EIO, EACCES, EHOSTDOWN) is unmounted, not treated as an error.
"""

from __future__ import annotations

import asyncio
import errno
import stat
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, Protocol

from csi.node.commands import CommandRunner
from csi.node.errors import CommandFailed, NotABlockDevice, NotEmpty, StillMounted
from csi.node.mountinfo import MountPointChecker, MountTable

CORRUPTED_MOUNT_ERRNOS = frozenset({errno.ENOTCONN, errno.ESTALE, errno.EIO, errno.EACCES, errno.EHOSTDOWN})


class Mounter(Protocol):
    async def mount(self, source: Path, target: Path, fs_type: str, options: Sequence[str] = ()) -> None:
        """Mount the filesystem on `source` at directory `target` (created if missing)."""
        ...


class BindMounter(Protocol):
    async def bind(self, source: Path, target: Path, *, read_only: bool = False) -> None:
        """Bind `source` onto `target` (created like `source`, directory or file, if missing)."""
        ...


class BlockPublisher(Protocol):
    async def publish_block(self, device: Path, target: Path, *, read_only: bool = False) -> None:
        """Bind the block device onto a regular file at `target` (created if missing): a raw block volume.

        `read_only` makes the mount read-only, but the kernel still lets a device node be opened for writing
        through a read-only mount; what keeps a read-only raw block volume unwritten is the container runtime's
        device rule ("rm" instead of "rwm") that kubelet asks for.
        """
        ...


class Unmounter(Protocol):
    async def unmount(self, target: Path) -> None:
        """Unmount `target`; success when nothing is mounted there (or it does not exist)."""
        ...


class MountPointCleaner(Protocol):
    async def cleanup(self, target: Path) -> None:
        """Unmount `target` if mounted (or dead) and remove it; success when it is already gone."""
        ...


def is_corrupted_mount(err: OSError) -> bool:
    """Whether a stat error means a dead mount (FUSE daemon gone, stale NFS handle) rather than a real problem."""
    return err.errno in CORRUPTED_MOUNT_ERRNOS


def mount_options_for(fs_type: str, options: Sequence[str]) -> list[str]:
    """Caller options plus what the filesystem needs: XFS clones and snapshots share a UUID, so `nouuid`."""
    wanted = list(options)
    if fs_type == "xfs" and "nouuid" not in wanted:
        wanted.append("nouuid")
    return wanted


def _ensure_target(target: Path, *, like: Path) -> None:
    """Create `target` as a directory when `like` is one, else as an empty file (what a bind needs to land on)."""
    if like.is_dir():
        target.mkdir(parents=True, exist_ok=True)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.touch(exist_ok=True)


def _ensure_block_target(device: Path, target: Path) -> None:
    if not stat.S_ISBLK(device.stat().st_mode):
        raise NotABlockDevice(device)
    _ensure_target(target, like=device)


def _path_state(target: Path) -> Literal["missing", "corrupted", "present"]:
    try:
        target.stat()
    except FileNotFoundError:
        return "missing"
    except OSError as err:
        if not is_corrupted_mount(err):
            raise
        return "corrupted"
    return "present"


def _remove(target: Path) -> None:
    if target.is_dir() and not target.is_symlink():
        try:
            target.rmdir()
        except OSError as err:
            if err.errno == errno.ENOTEMPTY:
                raise NotEmpty(target) from None
            raise
    else:
        target.unlink(missing_ok=True)


class SystemMounter:
    """mount(8) and umount(8) in this mount namespace; mount state comes from the mount table, not from output.

    Path checks run in a thread: stat on a hung mount blocks, and must not block every other RPC with it.
    """

    def __init__(self, runner: CommandRunner, table: MountPointChecker | None = None) -> None:
        self._runner = runner
        self._table = table or MountTable()

    async def mount(self, source: Path, target: Path, fs_type: str, options: Sequence[str] = ()) -> None:
        await asyncio.to_thread(target.mkdir, parents=True, exist_ok=True)
        argv = ["mount", "-t", fs_type]
        if wanted := mount_options_for(fs_type, options):
            argv += ["-o", ",".join(wanted)]
        await self._runner.run(*argv, str(source), str(target))

    async def bind(self, source: Path, target: Path, *, read_only: bool = False) -> None:
        await asyncio.to_thread(_ensure_target, target, like=source)
        await self._bind(source, target, read_only=read_only)

    async def publish_block(self, device: Path, target: Path, *, read_only: bool = False) -> None:
        await asyncio.to_thread(_ensure_block_target, device, target)
        await self._bind(device, target, read_only=read_only)

    async def unmount(self, target: Path) -> None:
        if not await self._table.is_mount_point(target):
            return
        try:
            await self._runner.run("umount", str(target))
        except CommandFailed:
            # Someone else may have unmounted it meanwhile; only a mount still in place is a failure.
            if await self._table.is_mount_point(target):
                raise

    async def cleanup(self, target: Path) -> None:
        state = await asyncio.to_thread(_path_state, target)
        if state == "missing":
            return
        if state == "corrupted" or await self._table.is_mount_point(target):
            await self._runner.run("umount", str(target))
            if await self._table.is_mount_point(target):
                raise StillMounted(target)
        await asyncio.to_thread(_remove, target)

    async def _bind(self, source: Path, target: Path, *, read_only: bool) -> None:
        await self._runner.run("mount", "--bind", str(source), str(target))
        if not read_only:
            return
        # The kernel ignores `ro` on the bind itself; only a remount makes the new mount read-only.
        try:
            await self._runner.run("mount", "-o", "remount,bind,ro", str(target))
        except CommandFailed:
            await self.unmount(target)
            raise
