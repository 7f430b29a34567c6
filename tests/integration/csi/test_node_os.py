"""The node OS layer against the real kernel: loop devices stand in for hot-plugged disks.

Every loop device and mount a test makes lives under its tmp dir and is torn down even when the test fails.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import struct
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from csi.node.commands import SubprocessRunner
from csi.node.devices import SerialDeviceFinder
from csi.node.errors import (
    AmbiguousDevice,
    CommandFailed,
    CommandNotFound,
    CommandTimedOut,
    DeviceNotFound,
    NotABlockDevice,
    NotEmpty,
    UnsafeToFormat,
)
from csi.node.filesystems import BlkidProbe, FsckChecker, FsckResult, SafeFormatter
from csi.node.health import VolumeHealthChecker
from csi.node.mountinfo import MountTable, parse_mountinfo
from csi.node.mounts import SystemMounter
from csi.node.resize import FilesystemResizer
from csi.node.stats import VolumeStatsReader

MiB = 1024 * 1024
EXT4_SIZE = 64 * MiB
XFS_SIZE = 320 * MiB  # mkfs.xfs (xfsprogs >= 5.19) refuses filesystems under 300 MB
SERIAL = "6b1f3a52-7d0e-4c8a-9f21-3e5d7c9a0b14"

needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or not Path("/dev/loop-control").exists(),
    reason="needs root and loop devices (losetup, mount, mkfs); CI runs these as root",
)


CAP_SYS_RESOURCE = 24


def has_capability(bit: int) -> bool:
    effective = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("CapEff:"))
    return bool(int(effective.split()[1], 16) >> bit & 1)


def sh(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


@dataclass
class Loop:
    """A loop device over a sparse file: the test's stand-in for a hot-plugged parent volume."""

    device: Path
    backing: Path

    def grow(self, size: int) -> None:
        """What a parent-side expansion looks like from inside the VM: the disk simply gets bigger."""
        os.truncate(self.backing, size)
        sh("losetup", "-c", str(self.device))


class Loops:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.attached: list[Loop] = []

    def attach(self, size: int, backing: Path | None = None) -> Loop:
        if backing is None:
            backing = self.root / f"disk{len(self.attached)}.img"
            with backing.open("wb") as file:
                file.truncate(size)
        loop = Loop(Path(sh("losetup", "--find", "--show", str(backing)).strip()), backing)
        self.attached.append(loop)
        return loop

    def teardown(self) -> None:
        mounts = parse_mountinfo(Path("/proc/self/mountinfo").read_text())
        for mount in reversed(mounts):
            if not mount.mount_point.is_relative_to(self.root):
                continue
            # Lazy unmount as the fallback, so one busy mount cannot strand the loop devices behind it.
            if subprocess.run(["umount", str(mount.mount_point)], capture_output=True).returncode:
                subprocess.run(["umount", "-l", str(mount.mount_point)], capture_output=True)
        for loop in self.attached:
            subprocess.run(["losetup", "-d", str(loop.device)], capture_output=True)


@pytest.fixture
def loops(tmp_path: Path) -> Iterator[Loops]:
    attached = Loops(tmp_path)
    try:
        yield attached
    finally:
        attached.teardown()


@pytest.fixture
def runner() -> SubprocessRunner:
    return SubprocessRunner(timeout=120)


@pytest.fixture
def mounter(runner: SubprocessRunner) -> SystemMounter:
    return SystemMounter(runner)


@pytest.fixture
def probe(runner: SubprocessRunner) -> BlkidProbe:
    return BlkidProbe(runner)


@pytest.fixture
def formatter(runner: SubprocessRunner, probe: BlkidProbe) -> SafeFormatter:
    return SafeFormatter(runner, probe)


def mounted_at(path: Path) -> bool:
    return any(m.mount_point == path for m in MountTable().entries())


# --- the command runner ------------------------------------------------------------------------------------------


async def test_runner_captures_output(runner: SubprocessRunner) -> None:
    result = await runner.run("sh", "-c", "echo out; echo err >&2")
    assert (result.exit_code, result.stdout, result.stderr) == (0, "out\n", "err\n")


async def test_runner_raises_with_exit_code_and_stderr(runner: SubprocessRunner) -> None:
    with pytest.raises(CommandFailed) as failure:
        await runner.run("sh", "-c", "echo 'mkfs: device busy' >&2; exit 3")
    assert (failure.value.exit_code, failure.value.stderr) == (3, "mkfs: device busy")
    assert failure.value.argv[0] == "sh"


async def test_runner_accepts_expected_exit_codes(runner: SubprocessRunner) -> None:
    assert (await runner.run("sh", "-c", "exit 2", ok_codes=(0, 2))).exit_code == 2


async def test_runner_reports_missing_executables(runner: SubprocessRunner) -> None:
    with pytest.raises(CommandNotFound) as failure:
        await runner.run("mkfs.tenant-cloud-does-not-exist", "/dev/null")
    assert failure.value.exit_code == 127


async def test_runner_kills_commands_past_their_deadline() -> None:
    with pytest.raises(CommandTimedOut):
        await SubprocessRunner(timeout=0.2).run("sleep", "30")


async def test_runner_uses_the_c_locale_and_no_stdin(runner: SubprocessRunner) -> None:
    result = await runner.run("sh", "-c", 'echo "$LC_ALL"; cat')
    assert result.stdout == "C\n"


# --- finding the disk --------------------------------------------------------------------------------------------


@needs_root
async def test_finds_the_disk_through_its_by_id_link(tmp_path: Path, loops: Loops, runner: SubprocessRunner) -> None:
    ours, other = loops.attach(EXT4_SIZE), loops.attach(EXT4_SIZE)
    by_id = tmp_path / "by-id"
    by_id.mkdir()
    (by_id / f"scsi-0QEMU_QEMU_HARDDISK_{SERIAL}").symlink_to(ours.device)
    (by_id / f"scsi-SQEMU_QEMU_HARDDISK_{SERIAL}").symlink_to(ours.device)  # udev makes several links per disk
    (by_id / f"scsi-0QEMU_QEMU_HARDDISK_{SERIAL}-part1").symlink_to(other.device)
    (by_id / "scsi-0QEMU_QEMU_HARDDISK_someone-else").symlink_to(other.device)
    assert await SerialDeviceFinder(runner, by_id).find_by_serial(SERIAL) == ours.device


@needs_root
async def test_finds_a_virtio_disk_by_its_truncated_serial(
    tmp_path: Path, loops: Loops, runner: SubprocessRunner
) -> None:
    loop = loops.attach(EXT4_SIZE)
    by_id = tmp_path / "by-id"
    by_id.mkdir()
    (by_id / f"virtio-{SERIAL[:20]}").symlink_to(loop.device)
    assert await SerialDeviceFinder(runner, by_id).find_by_serial(SERIAL) == loop.device


@needs_root
async def test_two_disks_with_one_serial_are_ambiguous(tmp_path: Path, loops: Loops, runner: SubprocessRunner) -> None:
    first, second = loops.attach(EXT4_SIZE), loops.attach(EXT4_SIZE)
    by_id = tmp_path / "by-id"
    by_id.mkdir()
    (by_id / f"scsi-0QEMU_QEMU_HARDDISK_{SERIAL}").symlink_to(first.device)
    (by_id / f"ata-QEMU_HARDDISK_{SERIAL}").symlink_to(second.device)
    with pytest.raises(AmbiguousDevice):
        await SerialDeviceFinder(runner, by_id).find_by_serial(SERIAL)


async def test_a_disk_not_plugged_in_yet_is_not_found(tmp_path: Path, runner: SubprocessRunner) -> None:
    by_id = tmp_path / "by-id"
    by_id.mkdir()
    (by_id / f"scsi-0QEMU_QEMU_HARDDISK_{SERIAL}").symlink_to(tmp_path / "sdz")  # unplugged: the link dangles
    with pytest.raises(DeviceNotFound):
        await SerialDeviceFinder(runner, by_id).find_by_serial(SERIAL)


# --- formatting --------------------------------------------------------------------------------------------------


@needs_root
@pytest.mark.parametrize(("fs_type", "size"), [("ext4", EXT4_SIZE), ("xfs", XFS_SIZE)])
async def test_formats_a_blank_disk(
    loops: Loops, probe: BlkidProbe, formatter: SafeFormatter, fs_type: str, size: int
) -> None:
    loop = loops.attach(size)
    assert (await probe.probe(loop.device)).blank
    await formatter.format(loop.device, fs_type)
    found = await probe.probe(loop.device)
    assert (found.fs_type, found.blank) == (fs_type, False)


@needs_root
async def test_ext4_reserves_no_blocks_for_root(loops: Loops, formatter: SafeFormatter) -> None:
    loop = loops.attach(EXT4_SIZE)
    await formatter.format(loop.device, "ext4")
    assert "Reserved block count:     0\n" in sh("dumpe2fs", "-h", str(loop.device))


@needs_root
@pytest.mark.parametrize(
    ("existing", "requested", "size"),
    [("ext4", "ext4", XFS_SIZE), ("ext4", "xfs", XFS_SIZE), ("xfs", "xfs", XFS_SIZE), ("xfs", "ext4", XFS_SIZE)],
)
async def test_never_formats_a_disk_that_holds_a_filesystem(
    tmp_path: Path,
    loops: Loops,
    formatter: SafeFormatter,
    mounter: SystemMounter,
    existing: str,
    requested: str,
    size: int,
) -> None:
    loop = loops.attach(size)
    await formatter.format(loop.device, existing)
    target = tmp_path / "mnt"
    await mounter.mount(loop.device, target, existing)
    (target / "precious").write_text("tenant data")
    await mounter.unmount(target)

    with pytest.raises(UnsafeToFormat, match=f"type {existing}"):
        await formatter.format(loop.device, requested)

    await mounter.mount(loop.device, target, existing)
    assert (target / "precious").read_text() == "tenant data"


@needs_root
async def test_never_formats_a_partitioned_disk(loops: Loops, probe: BlkidProbe, formatter: SafeFormatter) -> None:
    loop = loops.attach(EXT4_SIZE)
    mbr = bytearray(512)
    # One Linux partition from sector 2048, and the boot signature: a DOS partition table, no filesystem.
    mbr[446:462] = struct.pack("<B3sB3sII", 0, b"\x00\x02\x00", 0x83, b"\x00\x00\x00", 2048, 8192)
    mbr[510:512] = b"\x55\xaa"
    with loop.backing.open("r+b") as disk:
        disk.write(mbr)

    assert (await probe.probe(loop.device)).partition_table == "dos"
    with pytest.raises(UnsafeToFormat, match="partition table"):
        await formatter.format(loop.device, "ext4")
    assert loop.backing.read_bytes()[:512] == mbr


@needs_root
async def test_fsck_checks_ext4_and_leaves_xfs_to_the_kernel(
    tmp_path: Path, loops: Loops, runner: SubprocessRunner, formatter: SafeFormatter, mounter: SystemMounter
) -> None:
    ext4, xfs = loops.attach(EXT4_SIZE), loops.attach(XFS_SIZE)
    await formatter.format(ext4.device, "ext4")
    await formatter.format(xfs.device, "xfs")
    checker = FsckChecker(runner)
    assert await checker.check(ext4.device, "ext4") is FsckResult.CLEAN
    assert await checker.check(xfs.device, "xfs") is FsckResult.SKIPPED

    # e2fsck will not touch a mounted filesystem (exit 8); like mount-utils we go on rather than fail staging.
    await mounter.mount(ext4.device, tmp_path / "mnt", "ext4")
    assert await checker.check(ext4.device, "ext4") is FsckResult.SKIPPED


# --- mounting ----------------------------------------------------------------------------------------------------


@needs_root
async def test_mounts_at_a_path_with_spaces(
    tmp_path: Path, loops: Loops, formatter: SafeFormatter, mounter: SystemMounter
) -> None:
    loop = loops.attach(EXT4_SIZE)
    await formatter.format(loop.device, "ext4")
    target = tmp_path / "pods" / "a b\tc" / "mount"  # mountinfo escapes these as \040 and \011

    assert not await MountTable().is_mount_point(target)
    await mounter.mount(loop.device, target, "ext4", ["noatime"])
    assert await MountTable().is_mount_point(target)
    mount = next(m for m in MountTable().entries() if m.mount_point == target)
    assert (mount.source, mount.fs_type, "noatime" in mount.mount_options) == (str(loop.device), "ext4", True)


@needs_root
async def test_xfs_clones_mount_side_by_side(
    tmp_path: Path, loops: Loops, formatter: SafeFormatter, mounter: SystemMounter
) -> None:
    original = loops.attach(XFS_SIZE)
    await formatter.format(original.device, "xfs")
    clone_image = tmp_path / "clone.img"
    sh("cp", "--sparse=always", str(original.backing), str(clone_image))
    clone = loops.attach(XFS_SIZE, backing=clone_image)  # same filesystem UUID, like a parent-side snapshot

    await mounter.mount(original.device, tmp_path / "original", "xfs")
    await mounter.mount(clone.device, tmp_path / "clone", "xfs")
    mount = next(m for m in MountTable().entries() if m.mount_point == tmp_path / "clone")
    assert "nouuid" in mount.super_options


@needs_root
@pytest.mark.parametrize("read_only", [False, True])
async def test_bind_mounts_a_staged_volume(
    tmp_path: Path, loops: Loops, formatter: SafeFormatter, mounter: SystemMounter, read_only: bool
) -> None:
    loop = loops.attach(EXT4_SIZE)
    await formatter.format(loop.device, "ext4")
    stage, publish = tmp_path / "stage", tmp_path / "pods" / "volume"
    await mounter.mount(loop.device, stage, "ext4")
    (stage / "from-stage").write_text("hello")

    await mounter.bind(stage, publish, read_only=read_only)

    assert (publish / "from-stage").read_text() == "hello"
    if read_only:
        with pytest.raises(OSError) as refused:
            (publish / "from-publish").write_text("nope")
        assert refused.value.errno == errno.EROFS
        (stage / "still-writable").write_text("yes")
    else:
        (publish / "from-publish").write_text("yes")
        assert (stage / "from-publish").read_text() == "yes"


@needs_root
@pytest.mark.parametrize("read_only", [False, True])
async def test_publishes_a_raw_block_volume_onto_a_file(
    tmp_path: Path, loops: Loops, mounter: SystemMounter, read_only: bool
) -> None:
    loop = loops.attach(EXT4_SIZE)
    target = tmp_path / "volumeDevices" / "publish" / "pvc-1"

    await mounter.publish_block(loop.device, target, read_only=read_only)

    assert mounted_at(target)
    published = target.stat()
    assert stat.S_ISBLK(published.st_mode)
    assert published.st_rdev == loop.device.stat().st_rdev
    if read_only:
        # The kernel lets device nodes be written through a read-only mount; the container runtime's device rule
        # ("rm" rather than "rwm") is what keeps a read-only raw block volume unwritten. The flag still documents it.
        mount = next(m for m in MountTable().entries() if m.mount_point == target)
        assert mount.read_only
    else:
        fd = os.open(target, os.O_WRONLY)
        try:
            os.pwrite(fd, b"raw block data", MiB)
            os.fsync(fd)
        finally:
            os.close(fd)
        with loop.backing.open("rb") as disk:
            disk.seek(MiB)
            assert disk.read(14) == b"raw block data"


@needs_root
async def test_only_block_devices_are_published_as_block(tmp_path: Path, mounter: SystemMounter) -> None:
    regular = tmp_path / "not-a-disk"
    regular.write_text("")
    with pytest.raises(NotABlockDevice):
        await mounter.publish_block(regular, tmp_path / "target")


@needs_root
async def test_unmount_is_idempotent(
    tmp_path: Path, loops: Loops, formatter: SafeFormatter, mounter: SystemMounter
) -> None:
    loop = loops.attach(EXT4_SIZE)
    await formatter.format(loop.device, "ext4")
    target = tmp_path / "mnt"
    await mounter.mount(loop.device, target, "ext4")

    await mounter.unmount(target)
    assert not mounted_at(target)
    await mounter.unmount(target)
    await mounter.unmount(tmp_path / "never-existed")


@needs_root
async def test_cleanup_unmounts_and_removes_mount_points(
    tmp_path: Path, loops: Loops, formatter: SafeFormatter, mounter: SystemMounter
) -> None:
    loop = loops.attach(EXT4_SIZE)
    await formatter.format(loop.device, "ext4")
    stage, block_target = tmp_path / "stage", tmp_path / "block" / "pvc-1"
    await mounter.mount(loop.device, stage, "ext4")
    raw = loops.attach(EXT4_SIZE)
    await mounter.publish_block(raw.device, block_target)

    await mounter.cleanup(stage)
    await mounter.cleanup(block_target)
    assert not stage.exists()
    assert not block_target.exists()
    await mounter.cleanup(stage)


@needs_root
async def test_cleanup_never_deletes_data_in_a_plain_directory(tmp_path: Path, mounter: SystemMounter) -> None:
    # If the volume was already unmounted, whatever is left in the directory is not ours to delete.
    leftover = tmp_path / "not-mounted"
    leftover.mkdir()
    (leftover / "file").write_text("keep")
    with pytest.raises(NotEmpty, match="is not a mount point and is not empty"):
        await mounter.cleanup(leftover)
    assert (leftover / "file").read_text() == "keep"


# --- growing -----------------------------------------------------------------------------------------------------


@needs_root
@pytest.mark.parametrize(("fs_type", "size"), [("ext4", EXT4_SIZE), ("xfs", XFS_SIZE)])
async def test_grows_a_mounted_filesystem_after_the_disk_grew(
    tmp_path: Path,
    loops: Loops,
    runner: SubprocessRunner,
    probe: BlkidProbe,
    formatter: SafeFormatter,
    mounter: SystemMounter,
    fs_type: str,
    size: int,
) -> None:
    if fs_type == "ext4" and not has_capability(CAP_SYS_RESOURCE):
        pytest.skip("online ext4 resize needs CAP_SYS_RESOURCE (the node DaemonSet is privileged; this sandbox is not)")
    loop = loops.attach(size)
    await formatter.format(loop.device, fs_type)
    stage = tmp_path / "stage"
    await mounter.mount(loop.device, stage, fs_type)
    stats, resizer = VolumeStatsReader(), FilesystemResizer(runner, probe)
    before = (await stats.filesystem_stats(stage)).total_bytes

    loop.grow(size * 2)
    await resizer.grow(loop.device, stage)

    after = (await stats.filesystem_stats(stage)).total_bytes
    assert after > before + size * 0.9
    await resizer.grow(loop.device, stage)  # nothing left to grow: a no-op, not an error
    assert (await stats.filesystem_stats(stage)).total_bytes == after


# --- stats -------------------------------------------------------------------------------------------------------


@needs_root
async def test_filesystem_stats_are_plausible(
    tmp_path: Path, loops: Loops, formatter: SafeFormatter, mounter: SystemMounter
) -> None:
    loop = loops.attach(EXT4_SIZE)
    await formatter.format(loop.device, "ext4")
    stage = tmp_path / "stage"
    await mounter.mount(loop.device, stage, "ext4")
    empty = await VolumeStatsReader().filesystem_stats(stage)

    with (stage / "data").open("wb") as file:
        file.write(os.urandom(8 * MiB))
        os.fsync(file.fileno())
    stats = await VolumeStatsReader().filesystem_stats(stage)

    assert 0.8 * EXT4_SIZE < stats.total_bytes <= EXT4_SIZE
    assert stats.used_bytes >= empty.used_bytes + 8 * MiB
    # -m 0 holds back nothing for root (mkfs would hold 5%); ext4 itself keeps ~2% for delayed allocation.
    assert 0 <= stats.total_bytes - stats.used_bytes - stats.available_bytes <= 0.03 * stats.total_bytes
    assert stats.used_inodes == empty.used_inodes + 1
    assert stats.total_inodes == stats.free_inodes + stats.used_inodes


@needs_root
async def test_block_size_follows_the_device_through_its_published_file(
    tmp_path: Path, loops: Loops, mounter: SystemMounter
) -> None:
    loop = loops.attach(EXT4_SIZE)
    target = tmp_path / "publish" / "pvc-1"
    await mounter.publish_block(loop.device, target)
    stats = VolumeStatsReader()
    assert await stats.size_bytes(target) == EXT4_SIZE
    assert await stats.size_bytes(loop.device) == EXT4_SIZE
    loop.grow(2 * EXT4_SIZE)
    assert await stats.size_bytes(target) == 2 * EXT4_SIZE
    with pytest.raises(NotABlockDevice):
        await stats.size_bytes(loop.backing)


# --- health ------------------------------------------------------------------------------------------------------


@needs_root
async def test_healthy_volumes_are_normal(
    tmp_path: Path, loops: Loops, formatter: SafeFormatter, mounter: SystemMounter
) -> None:
    fs, raw = loops.attach(EXT4_SIZE), loops.attach(EXT4_SIZE)
    await formatter.format(fs.device, "ext4")
    await mounter.mount(fs.device, tmp_path / "stage", "ext4")
    await mounter.bind(tmp_path / "stage", tmp_path / "publish", read_only=True)
    await mounter.publish_block(raw.device, tmp_path / "block")
    health = VolumeHealthChecker()
    for path in ("stage", "publish", "block"):
        condition = await health.condition(tmp_path / path)
        assert not condition.abnormal, (path, condition.message)


@needs_root
async def test_a_volume_that_is_not_mounted_is_abnormal(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    health = VolumeHealthChecker()
    assert (await health.condition(tmp_path / "empty")).abnormal
    assert (await health.condition(tmp_path / "missing")).abnormal


@needs_root
async def test_read_only_remount_is_abnormal(
    tmp_path: Path, loops: Loops, formatter: SafeFormatter, mounter: SystemMounter
) -> None:
    loop = loops.attach(EXT4_SIZE)
    await formatter.format(loop.device, "ext4")
    stage, publish = tmp_path / "stage", tmp_path / "publish"
    await mounter.mount(loop.device, stage, "ext4")
    await mounter.bind(stage, publish)

    sh("mount", "-o", "remount,ro", str(stage))

    condition = await VolumeHealthChecker().condition(publish)
    assert condition.abnormal
    assert "read-only" in condition.message


@needs_root
async def test_read_only_volume_is_normal(
    tmp_path: Path, loops: Loops, formatter: SafeFormatter, mounter: SystemMounter
) -> None:
    loop = loops.attach(EXT4_SIZE)
    await formatter.format(loop.device, "ext4")
    await mounter.mount(loop.device, tmp_path / "stage", "ext4", ["ro"])
    await mounter.bind(tmp_path / "stage", tmp_path / "publish", read_only=True)
    assert not (await VolumeHealthChecker().condition(tmp_path / "publish")).abnormal


@needs_root
async def test_ext4_errors_remount_ro_is_abnormal(
    tmp_path: Path, loops: Loops, formatter: SafeFormatter, mounter: SystemMounter
) -> None:
    loop = loops.attach(EXT4_SIZE)
    await formatter.format(loop.device, "ext4")
    stage = tmp_path / "stage"
    await mounter.mount(loop.device, stage, "ext4", ["errors=remount-ro"])
    trigger = Path("/sys/fs/ext4") / loop.device.name / "trigger_fs_error"
    if not trigger.exists():
        pytest.skip("this kernel has no ext4 trigger_fs_error to simulate an I/O error")

    trigger.write_text("tenant-cloud test: simulated error")

    condition = await VolumeHealthChecker().condition(stage)
    assert condition.abnormal, condition.message
    with pytest.raises(OSError) as refused:
        (stage / "x").write_text("x")
    assert refused.value.errno == errno.EROFS


@needs_root
async def test_shut_down_xfs_is_abnormal(
    tmp_path: Path, loops: Loops, formatter: SafeFormatter, mounter: SystemMounter
) -> None:
    loop = loops.attach(XFS_SIZE)
    await formatter.format(loop.device, "xfs")
    stage = tmp_path / "stage"
    await mounter.mount(loop.device, stage, "xfs")
    sh("xfs_io", "-x", "-c", "shutdown", str(stage))  # what XFS does by itself on metadata I/O errors

    condition = await VolumeHealthChecker().condition(stage)
    assert condition.abnormal
    assert "Input/output error" in condition.message


@needs_root
async def test_vanished_device_node_is_abnormal(
    tmp_path: Path, loops: Loops, formatter: SafeFormatter, mounter: SystemMounter
) -> None:
    loop = loops.attach(EXT4_SIZE)
    await formatter.format(loop.device, "ext4")
    # Mount through our own device node so the test can make it vanish, as hot-unplug removes /dev/sdX.
    node = tmp_path / "dev" / "sdx"
    node.parent.mkdir()
    rdev = loop.device.stat().st_rdev
    os.mknod(node, stat.S_IFBLK | 0o600, rdev)
    stage = tmp_path / "stage"
    await mounter.mount(node, stage, "ext4")
    assert not (await VolumeHealthChecker().condition(stage)).abnormal

    node.unlink()

    condition = await VolumeHealthChecker().condition(stage)
    assert condition.abnormal
    assert f"{node} is gone" in condition.message


@needs_root
async def test_detached_block_device_is_abnormal(tmp_path: Path, loops: Loops, mounter: SystemMounter) -> None:
    loop = loops.attach(EXT4_SIZE)
    target = tmp_path / "block"
    await mounter.publish_block(loop.device, target)

    sh("losetup", "-d", str(loop.device))  # a bind-mounted node does not hold the device open

    condition = await VolumeHealthChecker().condition(target)
    assert condition.abnormal
    assert "zero size" in condition.message


def test_node_tools_are_installed() -> None:
    """What the node layer runs (Debian: e2fsprogs, xfsprogs, util-linux, mount); a missing one fails here first."""
    tools = ("mkfs.ext4", "fsck.ext4", "resize2fs", "mkfs.xfs", "xfs_growfs", "blkid", "lsblk", "mount", "umount")
    assert [tool for tool in tools if shutil.which(tool) is None] == []
