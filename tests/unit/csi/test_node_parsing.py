"""Pure decisions of the node OS layer: mountinfo, lsblk and blkid output, serial matching, exit codes, health."""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Collection
from pathlib import Path

import pytest

from csi.node.commands import CommandResult
from csi.node.devices import (
    SerialDeviceFinder,
    by_id_name_matches,
    parse_lsblk_serials,
    serial_candidates,
)
from csi.node.errors import (
    AmbiguousDevice,
    CommandFailed,
    DeviceNotFound,
    FilesystemCorrupted,
    UnsupportedFilesystem,
    trim,
)
from csi.node.filesystems import DiskFormat, FsckResult, disk_format_from_blkid, fsck_outcome, mkfs_argv
from csi.node.health import read_only_problem
from csi.node.mountinfo import MountInfo, mount_at, parse_mountinfo, parse_mountinfo_line, unescape
from csi.node.mounts import is_corrupted_mount, mount_options_for
from csi.node.resize import grow_argv
from csi.node.stats import volume_stats_from_statvfs

UUID = "6b1f3a52-7d0e-4c8a-9f21-3e5d7c9a0b14"

# --- mountinfo ---------------------------------------------------------------------------------------------------


def test_parse_mountinfo_line_reads_every_field() -> None:
    line = "36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue"  # proc(5)'s example
    assert parse_mountinfo_line(line) == MountInfo(
        mount_id=36,
        parent_id=35,
        major=98,
        minor=0,
        root="/mnt1",
        mount_point=Path("/mnt2"),
        mount_options=("rw", "noatime"),
        optional_fields=("master:1",),
        fs_type="ext3",
        source="/dev/root",
        super_options=("rw", "errors=continue"),
    )


@pytest.mark.parametrize(
    ("line", "root", "mount_point", "optional_fields", "source", "read_only"),
    [
        pytest.param(
            "42 27 7:0 / /tmp/m rw,relatime - ext4 /dev/loop0 rw",
            "/",
            "/tmp/m",
            (),
            "/dev/loop0",
            False,
            id="no optional fields",
        ),
        pytest.param(
            "50 27 8:16 / /var/lib/x rw shared:7 master:2 propagate_from:1 - xfs /dev/sdb rw,nouuid",
            "/",
            "/var/lib/x",
            ("shared:7", "master:2", "propagate_from:1"),
            "/dev/sdb",
            False,
            id="several optional fields",
        ),
        pytest.param(
            r"60 27 7:1 / /pods/a\040b\011c\012d\134e ro,relatime - ext4 /dev/loop1 rw",
            "/",
            "/pods/a b\tc\nd\\e",
            (),
            "/dev/loop1",
            True,
            id="octal escapes",
        ),
        pytest.param(
            "43 27 0:6 /loop0 /publish/vol rw,relatime - devtmpfs devtmpfs rw,size=1024k,mode=755",
            "/loop0",
            "/publish/vol",
            (),
            "devtmpfs",
            False,
            id="block device bound onto a file",
        ),
    ],
)
def test_parse_mountinfo_line(
    line: str, root: str, mount_point: str, optional_fields: tuple[str, ...], source: str, read_only: bool
) -> None:
    found = parse_mountinfo_line(line)
    assert (found.root, found.mount_point, found.optional_fields) == (root, Path(mount_point), optional_fields)
    assert (found.source, found.read_only) == (source, read_only)


@pytest.mark.parametrize(
    "line",
    [
        pytest.param("42 27 7:0 / /tmp/m rw,relatime ext4 /dev/loop0 rw", id="no separator"),
        pytest.param("42 27 7-0 / /tmp/m rw - ext4 /dev/loop0 rw", id="bad device number"),
        pytest.param("x 27 7:0 / /tmp/m rw - ext4 /dev/loop0 rw", id="bad mount id"),
        pytest.param("42 27 7:0 / /tmp/m rw - ext4", id="truncated after separator"),
    ],
)
def test_malformed_mountinfo_line_is_rejected(line: str) -> None:
    with pytest.raises(ValueError, match="malformed mountinfo line"):
        parse_mountinfo_line(line)


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ("/plain/path", "/plain/path"),
        (r"/with\040space", "/with space"),
        (r"\134\040\011\012", "\\ \t\n"),
        (r"/not\08escape", r"/not\08escape"),
    ],
)
def test_unescape(field: str, expected: str) -> None:
    assert unescape(field) == expected


MOUNTINFO = """\
1 0 254:0 / / rw,relatime - ext4 /dev/vda rw
42 1 7:0 / /stage rw,relatime - ext4 /dev/loop0 rw
43 1 7:0 / /publish rw,relatime - ext4 /dev/loop0 rw
44 43 7:1 / /publish ro,relatime - xfs /dev/loop1 ro,nouuid
"""


@pytest.mark.parametrize(
    ("path", "mount_id"),
    [
        ("/stage", 42),
        ("/stage/", 42),
        ("/publish", 44),
        ("/stage/sub", None),
        ("/elsewhere", None),
    ],
)
def test_mount_at_takes_the_topmost_mount(path: str, mount_id: int | None) -> None:
    found = mount_at(parse_mountinfo(MOUNTINFO), Path(path))
    assert (found.mount_id if found else None) == mount_id


# --- devices -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("serial", "expected"),
    [
        ("short", ["short"]),
        (UUID, [UUID, UUID[:20]]),
        ("x" * 40, ["x" * 40, "x" * 20, "x" * 36]),
    ],
)
def test_serial_candidates_cut_at_hardware_limits(serial: str, expected: list[str]) -> None:
    assert serial_candidates(serial) == expected


@pytest.mark.parametrize(
    ("name", "serial", "matches"),
    [
        (f"scsi-0QEMU_QEMU_HARDDISK_{UUID}", UUID, True),
        (f"scsi-SQEMU_QEMU_HARDDISK_{UUID}", UUID, True),
        (f"ata-QEMU_HARDDISK_{UUID}", UUID, True),
        (f"scsi-0QEMU_QEMU_HARDDISK_{UUID}-part1", UUID, False),
        (f"virtio-{UUID[:20]}", UUID[:20], True),
        (f"virtio-{UUID[:20]}-part1", UUID[:20], False),
        ("virtio-xabc", "abc", False),
        ("scsi-0QEMU_QEMU_HARDDISK_xabc", "abc", False),
        ("wwn-0x5000c500a1b2c3d4", "abc", False),
    ],
)
def test_by_id_name_matches(name: str, serial: str, matches: bool) -> None:
    assert by_id_name_matches(name, serial) is matches


LSBLK_WITH_PATHS = json.dumps(
    {
        "blockdevices": [
            {"name": "/dev/vda", "serial": None, "type": "disk"},
            {"name": "/dev/sda", "serial": UUID, "type": "disk"},
            {"name": "/dev/vdb", "serial": f"{UUID[:20]}  ", "type": "disk"},
            {"name": "/dev/loop0", "serial": "loopy", "type": "loop"},
            {"name": "/dev/sr0", "serial": "QM00003", "type": "rom"},
        ]
    }
)


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        pytest.param(LSBLK_WITH_PATHS, {Path("/dev/sda"): UUID, Path("/dev/vdb"): UUID[:20]}, id="full paths"),
        pytest.param(
            '{"blockdevices": [{"name": "sdc", "serial": "abc", "type": "disk"}]}',
            {Path("/dev/sdc"): "abc"},
            id="bare names",
        ),
        pytest.param('{"blockdevices": []}', {}, id="no devices"),
        pytest.param("{}", {}, id="no list"),
    ],
)
def test_parse_lsblk_serials(output: str, expected: dict[Path, str]) -> None:
    assert parse_lsblk_serials(output) == expected


class LsblkRunner:
    """Answers the finder's lsblk fallback with canned JSON."""

    def __init__(self, devices: list[tuple[str, str]]) -> None:
        self.output = json.dumps({"blockdevices": [{"name": n, "serial": s, "type": "disk"} for n, s in devices]})

    async def run(self, *argv: str, ok_codes: Collection[int] = (0,)) -> CommandResult:
        assert argv[0] == "lsblk"
        return CommandResult(tuple(argv), 0, self.output, "")


@pytest.mark.parametrize(
    ("devices", "serial", "expected"),
    [
        pytest.param([("/dev/sda", "other"), ("/dev/sdb", UUID)], UUID, "/dev/sdb", id="exact"),
        pytest.param([("/dev/vdb", UUID[:20])], UUID, "/dev/vdb", id="cut to the virtio limit"),
        pytest.param([("/dev/sda", UUID), ("/dev/vdb", UUID[:20])], UUID, "/dev/sda", id="exact beats cut"),
        pytest.param([("/dev/vdb", UUID[:19])], UUID, None, id="cut elsewhere never matches"),
        pytest.param([("/dev/sda", "abc")], "abcd", None, id="shared prefix never matches"),
        pytest.param([], UUID, None, id="nothing attached"),
    ],
)
async def test_finder_falls_back_to_lsblk(
    tmp_path: Path, devices: list[tuple[str, str]], serial: str, expected: str | None
) -> None:
    finder = SerialDeviceFinder(LsblkRunner(devices), by_id_root=tmp_path / "no-udev")
    if expected is None:
        with pytest.raises(DeviceNotFound):
            await finder.find_by_serial(serial)
    else:
        assert await finder.find_by_serial(serial) == Path(expected)


async def test_two_devices_with_one_serial_are_ambiguous(tmp_path: Path) -> None:
    finder = SerialDeviceFinder(LsblkRunner([("/dev/vdb", UUID[:20]), ("/dev/vdc", UUID[:20])]), tmp_path)
    with pytest.raises(AmbiguousDevice, match=r"vdb.*vdc"):
        await finder.find_by_serial(UUID)


# --- filesystems -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exit_code", "output", "expected", "blank"),
    [
        pytest.param(2, "", DiskFormat(), True, id="nothing found"),
        pytest.param(
            0,
            "DEVNAME=/dev/loop0\nUUID=a280dc59\nVERSION=1.0\nBLOCK_SIZE=1024\nTYPE=ext4\nUSAGE=filesystem\n",
            DiskFormat(fs_type="ext4", usage="filesystem"),
            False,
            id="ext4",
        ),
        pytest.param(
            0, "DEVNAME=/dev/sdb\nTYPE=xfs\nUSAGE=filesystem\n", DiskFormat("xfs", "", "filesystem"), False, id="xfs"
        ),
        pytest.param(0, "DEVNAME=/dev/loop0\nPTTYPE=dos\n", DiskFormat(partition_table="dos"), False, id="mbr"),
        pytest.param(
            0, "PTUUID=1a2b\nPTTYPE=gpt\n", DiskFormat(partition_table="gpt"), False, id="gpt without filesystem"
        ),
        pytest.param(0, "TYPE=LVM2_member\nUSAGE=raid\n", DiskFormat("LVM2_member", "", "raid"), False, id="lvm"),
        pytest.param(0, "TYPE=crypto_LUKS\nUSAGE=crypto\n", DiskFormat("crypto_LUKS", "", "crypto"), False, id="luks"),
        pytest.param(
            8, "", DiskFormat(unrecognised="several conflicting signatures"), False, id="ambivalent probe is data"
        ),
        pytest.param(
            0,
            "DEVNAME=/dev/loop0\n",
            DiskFormat(unrecognised="signatures blkid could not name"),
            False,
            id="success without a type is data",
        ),
        pytest.param(0, "LABEL=a=b\nTYPE=ext4\n", DiskFormat(fs_type="ext4"), False, id="value with equals sign"),
    ],
)
def test_disk_format_from_blkid(exit_code: int, output: str, expected: DiskFormat, blank: bool) -> None:
    found = disk_format_from_blkid(exit_code, output)
    assert found == expected
    assert found.blank is blank


@pytest.mark.parametrize(
    ("exit_code", "expected"),
    [
        (0, FsckResult.CLEAN),
        (1, FsckResult.REPAIRED),
        (2, FsckResult.REPAIRED),
        (3, FsckResult.REPAIRED),
        (4, None),
        (5, None),
        (8, FsckResult.SKIPPED),
        (12, None),
        (16, FsckResult.SKIPPED),
        (32, FsckResult.SKIPPED),
        (128, FsckResult.SKIPPED),
    ],
)
def test_fsck_outcome(exit_code: int, expected: FsckResult | None) -> None:
    if expected is None:
        with pytest.raises(FilesystemCorrupted, match="UNEXPECTED INCONSISTENCY"):
            fsck_outcome(Path("/dev/sdb"), exit_code, "UNEXPECTED INCONSISTENCY; RUN fsck MANUALLY.")
    else:
        assert fsck_outcome(Path("/dev/sdb"), exit_code, "") is expected


@pytest.mark.parametrize(
    ("fs_type", "argv"),
    [
        ("ext4", ["mkfs.ext4", "-F", "-m", "0", "/dev/sdb"]),
        ("xfs", ["mkfs.xfs", "/dev/sdb"]),
    ],
)
def test_mkfs_argv(fs_type: str, argv: list[str]) -> None:
    assert mkfs_argv(Path("/dev/sdb"), fs_type) == argv


@pytest.mark.parametrize(
    ("fs_type", "argv"),
    [
        ("ext4", ["resize2fs", "/dev/sdb"]),
        ("xfs", ["xfs_growfs", "/stage"]),
    ],
)
def test_grow_argv(fs_type: str, argv: list[str]) -> None:
    assert grow_argv(fs_type, Path("/dev/sdb"), Path("/stage")) == argv


@pytest.mark.parametrize("fs_type", ["btrfs", "ext3", "", "ntfs"])
def test_unsupported_filesystems_are_refused(fs_type: str) -> None:
    with pytest.raises(UnsupportedFilesystem):
        mkfs_argv(Path("/dev/sdb"), fs_type)
    with pytest.raises(UnsupportedFilesystem):
        grow_argv(fs_type, Path("/dev/sdb"), Path("/stage"))


# --- mounts ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fs_type", "options", "expected"),
    [
        ("ext4", [], []),
        ("ext4", ["ro", "noatime"], ["ro", "noatime"]),
        ("xfs", [], ["nouuid"]),
        ("xfs", ["ro"], ["ro", "nouuid"]),
        ("xfs", ["nouuid", "ro"], ["nouuid", "ro"]),
    ],
)
def test_mount_options_for(fs_type: str, options: list[str], expected: list[str]) -> None:
    assert mount_options_for(fs_type, options) == expected


@pytest.mark.parametrize(
    ("code", "corrupted"),
    [
        (errno.ENOTCONN, True),
        (errno.ESTALE, True),
        (errno.EIO, True),
        (errno.EACCES, True),
        (errno.EHOSTDOWN, True),
        (errno.ENOENT, False),
        (errno.EPERM, False),
        (errno.ENOTDIR, False),
    ],
)
def test_is_corrupted_mount(code: int, corrupted: bool) -> None:
    assert is_corrupted_mount(OSError(code, os.strerror(code))) is corrupted


# --- health and stats --------------------------------------------------------------------------------------------


def entry(line: str) -> MountInfo:
    return parse_mountinfo_line(line)


STAGE_RW = "42 1 7:0 / /stage rw,relatime - ext4 /dev/loop0 rw"
PUBLISH_RW = "43 1 7:0 / /publish rw,relatime - ext4 /dev/loop0 rw"
PUBLISH_RO = "43 1 7:0 / /publish ro,relatime - ext4 /dev/loop0 rw"


@pytest.mark.parametrize(
    ("mount", "table", "problem"),
    [
        pytest.param(PUBLISH_RW, [STAGE_RW, PUBLISH_RW], None, id="read-write"),
        pytest.param(PUBLISH_RO, [STAGE_RW, PUBLISH_RO], None, id="read-only bind of a writable filesystem"),
        pytest.param(
            "43 1 7:0 / /publish ro - ext4 /dev/loop0 ro",
            ["42 1 7:0 / /stage ro - ext4 /dev/loop0 ro", "43 1 7:0 / /publish ro - ext4 /dev/loop0 ro"],
            None,
            id="read-only volume",
        ),
        pytest.param(
            "43 1 7:0 / /publish rw - ext4 /dev/loop0 ro",
            ["42 1 7:0 / /stage ro - ext4 /dev/loop0 ro", "43 1 7:0 / /publish rw - ext4 /dev/loop0 ro"],
            "remounted read-only under a read-write mount",
            id="remounted read-only under a writable publish",
        ),
        pytest.param(
            "43 1 7:0 / /publish ro - ext4 /dev/loop0 ro",
            ["42 1 7:0 / /stage rw - ext4 /dev/loop0 ro", "43 1 7:0 / /publish ro - ext4 /dev/loop0 ro"],
            "remounted read-only",
            id="errors=remount-ro seen from a read-only publish",
        ),
        pytest.param(
            "42 1 7:0 / /stage rw - ext4 /dev/loop0 rw,errors=remount-ro,emergency_ro",
            [],
            "emergency_ro state",
            id="newer kernels flag emergency_ro",
        ),
        pytest.param("42 1 7:0 / /stage rw - ext4 /dev/loop0 rw,shutdown", [], "shutdown state", id="ext4 shut down"),
        pytest.param(
            "43 1 7:0 / /publish ro - ext4 /dev/loop0 ro",
            ["44 1 7:1 / /other rw - ext4 /dev/loop1 rw", "43 1 7:0 / /publish ro - ext4 /dev/loop0 ro"],
            None,
            id="other filesystems do not count",
        ),
    ],
)
def test_read_only_problem(mount: str, table: list[str], problem: str | None) -> None:
    found = read_only_problem(entry(mount), [entry(line) for line in table])
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert problem in found


def test_volume_stats_from_statvfs() -> None:
    # bsize, frsize, blocks, bfree, bavail, files, ffree, favail, flag, namemax
    st = os.statvfs_result((4096, 4096, 1000, 600, 550, 256, 200, 200, 0, 255))
    stats = volume_stats_from_statvfs(st)
    assert (stats.total_bytes, stats.available_bytes, stats.used_bytes) == (4096000, 2252800, 1638400)
    assert (stats.total_inodes, stats.free_inodes, stats.used_inodes) == (256, 200, 56)


# --- errors ------------------------------------------------------------------------------------------------------


def test_command_failed_keeps_the_tail_of_stderr() -> None:
    failure = CommandFailed(
        ["mkfs.ext4", "/dev/sdb"], 1, "noise\n" * 500 + "mkfs.ext4: Device size reported to be zero"
    )
    assert failure.exit_code == 1
    assert failure.argv == ("mkfs.ext4", "/dev/sdb")
    assert failure.stderr.startswith("...")
    assert failure.stderr.endswith("Device size reported to be zero")
    assert len(failure.stderr) <= 1024 + 3
    assert str(failure).startswith("mkfs.ext4 /dev/sdb exited with 1: ...")


@pytest.mark.parametrize(("text", "expected"), [("  ok \n", "ok"), ("", ""), ("abcdef", "...def")])
def test_trim(text: str, expected: str) -> None:
    assert trim(text, limit=3 if len(text) > 5 else 1024) == expected
