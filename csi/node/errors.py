"""Typed errors of the node-side OS operations, so the node service can map them to gRPC codes by type."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

STDERR_LIMIT = 1024


def trim(text: str, limit: int = STDERR_LIMIT) -> str:
    """Strip and cut command output to its last `limit` characters; tools print the actual error last."""
    text = text.strip()
    return text if len(text) <= limit else "..." + text[-limit:]


class NodeOSError(Exception):
    """Base of everything the node OS layer raises on purpose."""


class CommandFailed(NodeOSError):
    """A command exited with a status its caller did not expect."""

    def __init__(self, argv: Sequence[str], exit_code: int, stderr: str) -> None:
        self.argv = tuple(argv)
        self.exit_code = exit_code
        self.stderr = trim(stderr)
        detail = f": {self.stderr}" if self.stderr else ""
        super().__init__(f"{' '.join(self.argv)} exited with {exit_code}{detail}")


class CommandNotFound(CommandFailed):
    """The executable is not installed (exit code 127, as a shell would report it)."""

    def __init__(self, argv: Sequence[str]) -> None:
        super().__init__(argv, 127, f"{argv[0]}: command not found")


class CommandTimedOut(CommandFailed):
    """The command ran past its deadline and was killed."""

    def __init__(self, argv: Sequence[str], timeout: float, stderr: str = "") -> None:
        self.timeout = timeout
        super().__init__(argv, -9, stderr or f"killed after {timeout:g}s")


class DeviceNotFound(NodeOSError):
    """No block device carries the serial (yet: hot-plug may still be in flight, so callers retry)."""

    def __init__(self, serial: str) -> None:
        self.serial = serial
        super().__init__(f"no block device with serial {serial!r}")


class AmbiguousDevice(NodeOSError):
    """More than one block device matches the serial, so picking one could hand out someone else's disk."""

    def __init__(self, serial: str, devices: Sequence[Path]) -> None:
        self.serial = serial
        self.devices = tuple(devices)
        super().__init__(f"serial {serial!r} matches several devices: {', '.join(map(str, self.devices))}")


class UnsupportedFilesystem(NodeOSError):
    """The filesystem type is not one this driver formats, checks or grows."""

    def __init__(self, fs_type: str) -> None:
        self.fs_type = fs_type
        super().__init__(f"unsupported filesystem type {fs_type!r}")


class UnsafeToFormat(NodeOSError):
    """The device is not blank (filesystem, partition table or unrecognised signatures); formatting would lose data."""

    def __init__(self, device: Path, found: str) -> None:
        self.device = device
        self.found = found
        super().__init__(f"refusing to format {device}: it already holds {found}")


class FilesystemCorrupted(NodeOSError):
    """fsck found errors it could not correct; mounting would spread the damage."""

    def __init__(self, device: Path, output: str) -> None:
        self.device = device
        self.output = trim(output)
        super().__init__(f"filesystem on {device} has uncorrected errors: {self.output}")


class StillMounted(NodeOSError):
    """The path is still a mount point after unmounting it (stacked mounts or a busy filesystem)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        super().__init__(f"{path} is still mounted")


class NotABlockDevice(NodeOSError):
    """The path was expected to be (or to be bind-mounted from) a block device."""

    def __init__(self, path: Path) -> None:
        self.path = path
        super().__init__(f"{path} is not a block device")


class NotEmpty(NodeOSError):
    """A directory to clean up is no mount point yet holds files: someone's data, never removed by us."""

    def __init__(self, path: Path) -> None:
        self.path = path
        super().__init__(f"{path} is not a mount point and is not empty; it is left as it is")
