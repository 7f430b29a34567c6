"""What is on a device, making a filesystem only on a blank one, and checking one before it is mounted.

Facts follow k8s mount-utils' SafeFormatAndMount: `blkid -p` exit 2 means no signature at all (blank), a
partition table counts as data, ext4 is made with `-F -m0`, and fsck runs only on existing filesystems, where
exit 1 (errors corrected) is fine and exit 4 (errors left uncorrected) stops the mount. Like mount-utils, data
that carries no signature blkid knows looks blank; unlike it, an ambivalent probe (blkid exit 8, several
signatures) or a probe that succeeds without naming a type is treated as data, never as blank.
mkfs.xfs (xfsprogs >= 5.19) refuses devices under 300 MB, so small volumes need ext4.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from csi.node.commands import CommandRunner
from csi.node.errors import CommandNotFound, FilesystemCorrupted, UnsafeToFormat, UnsupportedFilesystem

log = logging.getLogger(__name__)

SUPPORTED_FILESYSTEMS = ("ext4", "xfs")
BLKID_NOTHING_FOUND = 2
BLKID_AMBIVALENT = 8
FSCK_CORRECTED = 1
FSCK_UNCORRECTED = 4
FSCK_OPERATIONAL_ERROR = 8


@dataclass(frozen=True)
class DiskFormat:
    """What `blkid -p` found: a filesystem (or other signature) type, a partition table, or nothing at all."""

    fs_type: str = ""
    partition_table: str = ""
    usage: str = ""
    unrecognised: str = ""

    @property
    def blank(self) -> bool:
        return not (self.fs_type or self.partition_table or self.usage or self.unrecognised)

    def describe(self) -> str:
        if self.unrecognised:
            return self.unrecognised
        if self.partition_table:
            return f"a partition table ({self.partition_table})"
        if self.fs_type:
            return f"a signature of type {self.fs_type}"
        return f"{self.usage} data" if self.usage else "nothing"


class FsckResult(enum.Enum):
    CLEAN = "clean"
    REPAIRED = "repaired"
    SKIPPED = "skipped"


class FilesystemProbe(Protocol):
    async def probe(self, device: Path) -> DiskFormat:
        """What the device holds, read from its signatures (not from a cache that may be stale)."""
        ...


class Formatter(Protocol):
    async def format(self, device: Path, fs_type: str) -> None:
        """Make `fs_type` on a blank device; UnsafeToFormat if it holds anything at all."""
        ...


class FilesystemChecker(Protocol):
    async def check(self, device: Path, fs_type: str) -> FsckResult:
        """Repair what is safe to repair before a read-write mount; FilesystemCorrupted if that is not enough."""
        ...


def parse_blkid_export(output: str) -> DiskFormat:
    """`blkid -p -o export` lines (`KEY=value`) -> DiskFormat; keys other than TYPE, PTTYPE, USAGE are ignored."""
    fields: dict[str, str] = {}
    for line in output.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            fields[key.strip()] = value.strip()
    return DiskFormat(
        fs_type=fields.get("TYPE", ""), partition_table=fields.get("PTTYPE", ""), usage=fields.get("USAGE", "")
    )


def disk_format_from_blkid(exit_code: int, output: str) -> DiskFormat:
    """Only "nothing found" is blank; a success that names nothing we know is data all the same."""
    if exit_code == BLKID_NOTHING_FOUND:
        return DiskFormat()
    if exit_code == BLKID_AMBIVALENT:
        return DiskFormat(unrecognised="several conflicting signatures")
    found = parse_blkid_export(output)
    return DiskFormat(unrecognised="signatures blkid could not name") if found.blank else found


def fsck_outcome(device: Path, exit_code: int, output: str) -> FsckResult:
    """Read fsck's exit status, a bit mask: 4 stops the mount, 8 and up mean it could not judge the filesystem."""
    if exit_code & FSCK_UNCORRECTED:
        raise FilesystemCorrupted(device, output)
    if exit_code >= FSCK_OPERATIONAL_ERROR:
        return FsckResult.SKIPPED
    return FsckResult.REPAIRED if exit_code else FsckResult.CLEAN


def mkfs_argv(device: Path, fs_type: str) -> list[str]:
    if fs_type == "ext4":
        # -F: whole disks are not partitions; -m 0: no root-reserved blocks on a volume a pod owns.
        return ["mkfs.ext4", "-F", "-m", "0", str(device)]
    if fs_type == "xfs":
        # No -f: mkfs.xfs then refuses on any signature blkid missed, a second line of defence.
        return ["mkfs.xfs", str(device)]
    raise UnsupportedFilesystem(fs_type)


class BlkidProbe:
    """Probes the device itself (`blkid -p`), bypassing the blkid cache that may predate a hot-plug."""

    def __init__(self, runner: CommandRunner) -> None:
        self._runner = runner

    async def probe(self, device: Path) -> DiskFormat:
        result = await self._runner.run(
            "blkid", "-p", "-o", "export", str(device), ok_codes=(0, BLKID_NOTHING_FOUND, BLKID_AMBIVALENT)
        )
        return disk_format_from_blkid(result.exit_code, result.stdout)


class SafeFormatter:
    """Formats only after probing the device blank; a device with data is never touched."""

    def __init__(self, runner: CommandRunner, probe: FilesystemProbe) -> None:
        self._runner = runner
        self._probe = probe

    async def format(self, device: Path, fs_type: str) -> None:
        argv = mkfs_argv(device, fs_type)
        found = await self._probe.probe(device)
        if not found.blank:
            raise UnsafeToFormat(device, found.describe())
        await self._runner.run(*argv)


class FsckChecker:
    """`fsck.ext4 -p` (repair what is safe without asking); XFS checks itself at mount, so it is skipped."""

    def __init__(self, runner: CommandRunner) -> None:
        self._runner = runner

    async def check(self, device: Path, fs_type: str) -> FsckResult:
        if fs_type == "xfs":
            return FsckResult.SKIPPED
        if fs_type != "ext4":
            raise UnsupportedFilesystem(fs_type)
        try:
            result = await self._runner.run("fsck.ext4", "-p", str(device), ok_codes=range(256))
        except CommandNotFound:
            log.warning("fsck.ext4 is not installed; mounting %s unchecked", device)
            return FsckResult.SKIPPED
        outcome = fsck_outcome(device, result.exit_code, result.stdout + result.stderr)
        if outcome is FsckResult.SKIPPED:
            # e.g. the device is mounted elsewhere; mount-utils mounts anyway and so do we.
            log.warning("fsck.ext4 could not check %s (exit %d): %s", device, result.exit_code, result.stderr.strip())
        return outcome
