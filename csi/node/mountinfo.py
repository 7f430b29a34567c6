"""Parse /proc/self/mountinfo (proc(5)): who is mounted where, from which device, with which options.

Line format: `ID PARENT MAJOR:MINOR ROOT MOUNT_POINT MOUNT_OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPER_OPTIONS`.
Paths escape space, tab, newline and backslash as octal (`\\040`, `\\011`, `\\012`, `\\134`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

PROC_MOUNTINFO = Path("/proc/self/mountinfo")
_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")
_CONSISTENT_READ_TRIES = 3


@dataclass(frozen=True)
class MountInfo:
    """One mountinfo line: `mount_options` are this mount's (a read-only bind), `super_options` the filesystem's."""

    mount_id: int
    parent_id: int
    major: int
    minor: int
    root: str
    mount_point: Path
    mount_options: tuple[str, ...]
    optional_fields: tuple[str, ...]
    fs_type: str
    source: str
    super_options: tuple[str, ...]

    @property
    def read_only(self) -> bool:
        return "ro" in self.mount_options


def unescape(field: str) -> str:
    """Undo the kernel's octal escapes: `a\\040b` -> `a b`."""
    return _OCTAL_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def parse_mountinfo_line(line: str) -> MountInfo:
    fields = line.split(" ")
    try:
        separator = fields.index("-", 6)
        mount_id, parent_id, device, root, mount_point, options = fields[:6]
        fs_type, source, super_options = fields[separator + 1 : separator + 4]
        major, minor = device.split(":")
        return MountInfo(
            mount_id=int(mount_id),
            parent_id=int(parent_id),
            major=int(major),
            minor=int(minor),
            root=unescape(root),
            mount_point=Path(unescape(mount_point)),
            mount_options=tuple(options.split(",")),
            optional_fields=tuple(fields[6:separator]),
            fs_type=unescape(fs_type),
            source=unescape(source),
            super_options=tuple(super_options.split(",")),
        )
    except ValueError as err:
        raise ValueError(f"malformed mountinfo line {line!r}") from err


def parse_mountinfo(text: str) -> list[MountInfo]:
    return [parse_mountinfo_line(line) for line in text.splitlines() if line.strip()]


def mount_at(entries: Sequence[MountInfo], path: Path) -> MountInfo | None:
    """The topmost mount at `path` (the last one listed wins when mounts are stacked)."""
    # Non-strict realpath: a dead FUSE or NFS mount below must not stop the lookup.
    wanted = Path(os.path.realpath(path))
    found = None
    for entry in entries:
        if entry.mount_point == wanted:
            found = entry
    return found


class MountPointChecker(Protocol):
    async def is_mount_point(self, path: Path) -> bool:
        """Whether something is mounted exactly at `path` (bind mounts included, unlike a st_dev comparison)."""
        ...


class MountTable:
    """The mount table of this process's mount namespace, read fresh on every call."""

    def __init__(self, path: Path = PROC_MOUNTINFO) -> None:
        self._path = path

    def entries(self) -> list[MountInfo]:
        return parse_mountinfo(self._consistent_read())

    async def is_mount_point(self, path: Path) -> bool:
        return mount_at(self.entries(), path) is not None

    def _consistent_read(self) -> str:
        # The kernel builds mountinfo in chunks, so a mount changing mid-read can tear it; read until two agree.
        previous = self._path.read_text()
        for _ in range(_CONSISTENT_READ_TRIES):
            current = self._path.read_text()
            if current == previous:
                return current
            previous = current
        return previous
