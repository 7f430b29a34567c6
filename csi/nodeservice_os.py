"""The node's OS operations as one bundle for the node service, their system wiring, and their gRPC meaning."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from csi.errors import FailedPrecondition, OperationPending
from csi.node.commands import CommandRunner, SubprocessRunner
from csi.node.devices import DEFAULT_BY_ID_ROOT, DeviceFinder, SerialDeviceFinder
from csi.node.errors import (
    AmbiguousDevice,
    CommandTimedOut,
    DeviceNotFound,
    FilesystemCorrupted,
    NotABlockDevice,
    NotEmpty,
    UnsafeToFormat,
    UnsupportedFilesystem,
)
from csi.node.filesystems import BlkidProbe, FilesystemChecker, FilesystemProbe, Formatter, FsckChecker, SafeFormatter
from csi.node.health import HealthChecker, VolumeHealthChecker
from csi.node.mountinfo import MountInfo, MountTable
from csi.node.mounts import BindMounter, BlockPublisher, Mounter, MountPointCleaner, SystemMounter
from csi.node.resize import FilesystemResizer, Resizer
from csi.node.stats import BlockSizeReader, StatsReader, VolumeStatsReader


class NodeMounter(Mounter, BindMounter, BlockPublisher, MountPointCleaner, Protocol):
    """Mount at staging, bind to targets, publish raw devices, and tear all of it down."""


class VolumeStats(StatsReader, BlockSizeReader, Protocol):
    """Filesystem usage and block device sizes."""


class MountEntries(Protocol):
    def entries(self) -> list[MountInfo]:
        """The mount table of this mount namespace, read now."""
        ...


@dataclass(frozen=True)
class NodeOS:
    """Every OS side effect the node service has, each behind its one-method Protocol from csi.node."""

    finder: DeviceFinder
    probe: FilesystemProbe
    formatter: Formatter
    checker: FilesystemChecker
    resizer: Resizer
    mounter: NodeMounter
    mount_table: MountEntries
    stats: VolumeStats
    health: HealthChecker


def system_node_os(by_id_root: Path = DEFAULT_BY_ID_ROOT, runner: CommandRunner | None = None) -> NodeOS:
    """The real thing: util-linux, e2fsprogs and xfsprogs through one runner, the kernel's mount table and sysfs."""
    runner = runner or SubprocessRunner()
    table = MountTable()
    probe = BlkidProbe(runner)
    return NodeOS(
        finder=SerialDeviceFinder(runner, by_id_root),
        probe=probe,
        formatter=SafeFormatter(runner, probe),
        checker=FsckChecker(runner),
        resizer=FilesystemResizer(runner, probe),
        mounter=SystemMounter(runner, table),
        mount_table=table,
        stats=VolumeStatsReader(),
        health=VolumeHealthChecker(table),
    )


@contextlib.contextmanager
def os_errors_as_statuses() -> Iterator[None]:
    """Give the OS layer's errors the status that makes kubelet react right; the rest stay INTERNAL."""
    try:
        yield
    except DeviceNotFound as err:
        # The hot-plug is still settling. kubelet retries UNAVAILABLE with backoff and, as for ABORTED or
        # DEADLINE_EXCEEDED, treats it as "may still be in progress" rather than a final failure.
        raise OperationPending(f"{err}: the hot-plugged disk has not appeared in the VM yet") from err
    except (
        AmbiguousDevice,
        UnsafeToFormat,
        FilesystemCorrupted,
        UnsupportedFilesystem,
        NotABlockDevice,
        NotEmpty,
    ) as err:
        raise FailedPrecondition(str(err)) from err
    except CommandTimedOut as err:
        raise TimeoutError(str(err)) from err
