"""The node service without a kernel: request validation, decisions read from a mount table, error meanings.

Servicer methods are called directly with real protobuf messages and no gRPC context (the service never reads
it), so domain errors arrive as raised, before the interceptor would map them. The OS layer is the real one,
fed a scripted command runner and a mountinfo file of the test's making.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from pathlib import Path
from typing import Any

import pytest

from csi._proto import csi_pb2
from csi.errors import (
    AlreadyExistsIncompatible,
    Busy,
    DriverError,
    FailedPrecondition,
    InvalidArgument,
    OperationPending,
    VolumeNotFound,
)
from csi.node.commands import CommandResult
from csi.node.devices import SerialDeviceFinder
from csi.node.errors import (
    AmbiguousDevice,
    CommandFailed,
    CommandTimedOut,
    DeviceNotFound,
    FilesystemCorrupted,
    NotABlockDevice,
    NotEmpty,
    UnsafeToFormat,
    UnsupportedFilesystem,
)
from csi.node.filesystems import BlkidProbe, DiskFormat, FsckChecker, SafeFormatter
from csi.node.health import VolumeHealthChecker
from csi.node.mountinfo import MountTable, parse_mountinfo, parse_mountinfo_line
from csi.node.mounts import SystemMounter
from csi.node.resize import FilesystemResizer
from csi.node.stats import VolumeStatsReader
from csi.nodeservice import ADVERTISED, NodeIdentity, NodeService
from csi.nodeservice_os import NodeOS, os_errors_as_statuses
from csi.nodeservice_requests import VolumeAccess
from csi.nodeservice_rules import (
    check_capacity,
    check_published,
    check_staged,
    filesystem_to_mount,
    other_publishes,
)
from csi.server import VolumeGuard

pb = csi_pb2
Mode = pb.VolumeCapability.AccessMode
NODE_ID = "tenant-ns/worker-0"
SERIAL = "6b1f3a52-7d0e-4c8a-9f21-3e5d7c9a0b14"
STAGING = "/var/lib/kubelet/plugins/kubernetes.io/csi/csi.tenant-cloud.io/abc/globalmount"
TARGET = "/var/lib/kubelet/pods/uid/volumes/kubernetes.io~csi/pvc-1/mount"


class ScriptedRunner:
    """Answers `lsblk` with no disks and records mount(8) calls; anything else means validation let a bad request by."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, ...]] = []

    async def run(self, *argv: str, ok_codes: Collection[int] = (0,)) -> CommandResult:
        self.calls.append(argv)
        if argv[0] == "lsblk":
            return CommandResult(argv, 0, '{"blockdevices": []}', "")
        if argv[0] == "mount":
            return CommandResult(argv, 0, "", "")
        raise AssertionError(f"unexpected command {argv}")


def mount_capability(fs_type: str = "ext4", mode: Any = Mode.SINGLE_NODE_WRITER, **mount: Any) -> Any:
    return pb.VolumeCapability(
        mount=pb.VolumeCapability.MountVolume(fs_type=fs_type, **mount), access_mode=Mode(mode=mode)
    )


def block_capability(mode: Any = Mode.SINGLE_NODE_WRITER) -> Any:
    return pb.VolumeCapability(block=pb.VolumeCapability.BlockVolume(), access_mode=Mode(mode=mode))


def mountinfo_line(mount_id: int, device: str, mount_point: Path | str, options: str = "rw", root: str = "/") -> str:
    fs, source = ("devtmpfs", "devtmpfs") if device == "0:6" else ("ext4", "/dev/sdb")
    return f"{mount_id} 1 {device} {root} {mount_point} {options},relatime shared:1 - {fs} {source} rw"


def write_mounts(mountinfo: Path, *lines: str) -> None:
    mountinfo.write_text("".join(line + "\n" for line in lines))


@pytest.fixture
def runner() -> ScriptedRunner:
    return ScriptedRunner()


@pytest.fixture
def mountinfo(tmp_path: Path) -> Path:
    path = tmp_path / "mountinfo"
    path.write_text("")
    return path


@pytest.fixture
def guard() -> VolumeGuard:
    return VolumeGuard()


@pytest.fixture
def node(tmp_path: Path, runner: ScriptedRunner, mountinfo: Path, guard: VolumeGuard) -> NodeService:
    (tmp_path / "by-id").mkdir()
    table = MountTable(mountinfo)
    probe = BlkidProbe(runner)
    node_os = NodeOS(
        finder=SerialDeviceFinder(runner, tmp_path / "by-id"),
        probe=probe,
        formatter=SafeFormatter(runner, probe),
        checker=FsckChecker(runner),
        resizer=FilesystemResizer(runner, probe),
        mounter=SystemMounter(runner, table),
        mount_table=table,
        stats=VolumeStatsReader(tmp_path / "sys"),
        health=VolumeHealthChecker(table, tmp_path / "sys"),
    )
    return NodeService(NodeIdentity(NODE_ID, 16), node_os, guard)


def stage(**fields: Any) -> Any:
    defaults: dict[str, Any] = {
        "volume_id": "pvc-1",
        "staging_target_path": STAGING,
        "volume_capability": mount_capability(),
        "volume_context": {"serial": SERIAL, "bus": "scsi"},
    }
    return pb.NodeStageVolumeRequest(**{**defaults, **fields})


def publish(**fields: Any) -> Any:
    defaults: dict[str, Any] = {
        "volume_id": "pvc-1",
        "staging_target_path": STAGING,
        "target_path": TARGET,
        "volume_capability": mount_capability(),
        "volume_context": {"serial": SERIAL},
    }
    return pb.NodePublishVolumeRequest(**{**defaults, **fields})


# (RPC, request, expected error, words the message must contain)
INVALID_REQUESTS: list[tuple[str, Any, type[DriverError], str]] = [
    # csi-sanity's shapes first: exactly what it sends, and the code it expects.
    ("NodeStageVolume", stage(volume_id=""), InvalidArgument, "volume_id"),
    ("NodeStageVolume", stage(staging_target_path=""), InvalidArgument, "staging_target_path"),
    (
        "NodeStageVolume",
        pb.NodeStageVolumeRequest(volume_id="pvc-1", staging_target_path=STAGING),
        InvalidArgument,
        "volume_capability",
    ),
    ("NodeUnstageVolume", pb.NodeUnstageVolumeRequest(staging_target_path=STAGING), InvalidArgument, "volume_id"),
    ("NodeUnstageVolume", pb.NodeUnstageVolumeRequest(volume_id="pvc-1"), InvalidArgument, "staging_target_path"),
    ("NodePublishVolume", pb.NodePublishVolumeRequest(), InvalidArgument, "volume_id"),
    ("NodePublishVolume", pb.NodePublishVolumeRequest(volume_id="pvc-1"), InvalidArgument, "target_path"),
    (
        "NodePublishVolume",
        pb.NodePublishVolumeRequest(volume_id="pvc-1", target_path=TARGET),
        InvalidArgument,
        "volume_capability",
    ),
    ("NodeUnpublishVolume", pb.NodeUnpublishVolumeRequest(), InvalidArgument, "volume_id"),
    ("NodeUnpublishVolume", pb.NodeUnpublishVolumeRequest(volume_id="pvc-1"), InvalidArgument, "target_path"),
    ("NodeGetVolumeStats", pb.NodeGetVolumeStatsRequest(volume_path="some/path"), InvalidArgument, "volume_id"),
    ("NodeGetVolumeStats", pb.NodeGetVolumeStatsRequest(volume_id="pvc-1"), InvalidArgument, "volume_path"),
    (
        "NodeGetVolumeStats",
        pb.NodeGetVolumeStatsRequest(volume_id="pvc-1", volume_path="some/path"),
        VolumeNotFound,
        "some/path",
    ),
    (
        "NodeExpandVolume",
        pb.NodeExpandVolumeRequest(volume_path="/tmp", volume_capability=mount_capability()),
        InvalidArgument,
        "volume_id",
    ),
    (
        "NodeExpandVolume",
        pb.NodeExpandVolumeRequest(volume_id="pvc-1", volume_capability=mount_capability()),
        InvalidArgument,
        "volume_path",
    ),
    (
        "NodeExpandVolume",
        pb.NodeExpandVolumeRequest(volume_id="pvc-1", volume_path="some/path"),
        VolumeNotFound,
        "some/path",
    ),
    # Capabilities the node cannot serve.
    ("NodeStageVolume", stage(volume_capability=mount_capability("btrfs")), InvalidArgument, "btrfs"),
    ("NodeStageVolume", stage(volume_capability=mount_capability("ext3")), InvalidArgument, "ext3"),
    (
        "NodeStageVolume",
        stage(volume_capability=pb.VolumeCapability(access_mode=Mode(mode=Mode.SINGLE_NODE_WRITER))),
        InvalidArgument,
        "access type",
    ),
    ("NodeStageVolume", stage(volume_capability=mount_capability(mode=Mode.UNKNOWN)), InvalidArgument, "UNKNOWN"),
    (
        "NodeStageVolume",
        stage(volume_capability=mount_capability(mode=Mode.MULTI_NODE_MULTI_WRITER)),
        InvalidArgument,
        "multi-node",
    ),
    (
        "NodeStageVolume",
        stage(volume_capability=mount_capability(mount_flags=["noatime,dev"])),
        InvalidArgument,
        "single mount option",
    ),
    (
        "NodeStageVolume",
        stage(volume_capability=mount_capability(volume_mount_group="1000")),
        InvalidArgument,
        "volume_mount_group",
    ),
    ("NodePublishVolume", publish(volume_capability=mount_capability("zfs")), InvalidArgument, "zfs"),
    (
        "NodeExpandVolume",
        pb.NodeExpandVolumeRequest(volume_id="pvc-1", volume_path="/tmp", volume_capability=mount_capability("ntfs")),
        InvalidArgument,
        "ntfs",
    ),
    # The disk serial the node looks for.
    ("NodeStageVolume", stage(volume_context={}), InvalidArgument, "serial"),
    ("NodeStageVolume", stage(volume_context={"serial": "../../sda"}), InvalidArgument, "serial"),
    ("NodePublishVolume", publish(volume_capability=block_capability(), volume_context={}), InvalidArgument, "serial"),
    # Hostile paths: relative, traversal, NUL, absurdly long.
    ("NodeStageVolume", stage(staging_target_path="globalmount"), InvalidArgument, "absolute"),
    ("NodeStageVolume", stage(staging_target_path="/var/lib/kubelet/../../etc"), InvalidArgument, "'..'"),
    ("NodeStageVolume", stage(staging_target_path="/var/lib/kubelet/x\0y"), InvalidArgument, "NUL"),
    ("NodeStageVolume", stage(staging_target_path="/" + "a" * 5000), InvalidArgument, "longer"),
    (
        "NodeUnstageVolume",
        pb.NodeUnstageVolumeRequest(volume_id="pvc-1", staging_target_path="./stage"),
        InvalidArgument,
        "absolute",
    ),
    (
        "NodeUnstageVolume",
        pb.NodeUnstageVolumeRequest(volume_id="pvc-1", staging_target_path="/a/../../"),
        InvalidArgument,
        "'..'",
    ),
    ("NodePublishVolume", publish(target_path="pods/uid/mount"), InvalidArgument, "absolute"),
    ("NodePublishVolume", publish(target_path="/var/lib/kubelet/pods/../../../root"), InvalidArgument, "'..'"),
    ("NodePublishVolume", publish(staging_target_path="/var/lib/../etc"), InvalidArgument, "'..'"),
    ("NodePublishVolume", publish(staging_target_path="staging"), InvalidArgument, "absolute"),
    ("NodePublishVolume", publish(target_path=STAGING), InvalidArgument, "differ"),
    (
        "NodeUnpublishVolume",
        pb.NodeUnpublishVolumeRequest(volume_id="pvc-1", target_path="mount"),
        InvalidArgument,
        "absolute",
    ),
    (
        "NodeUnpublishVolume",
        pb.NodeUnpublishVolumeRequest(volume_id="pvc-1", target_path="/var/lib/kubelet/../.."),
        InvalidArgument,
        "'..'",
    ),
    (
        "NodeGetVolumeStats",
        pb.NodeGetVolumeStatsRequest(volume_id="pvc-1", volume_path="/var/lib/../../etc"),
        InvalidArgument,
        "'..'",
    ),
    (
        "NodeGetVolumeStats",
        pb.NodeGetVolumeStatsRequest(volume_id="pvc-1", volume_path=TARGET, staging_target_path="stage"),
        InvalidArgument,
        "absolute",
    ),
    (
        "NodeExpandVolume",
        pb.NodeExpandVolumeRequest(volume_id="pvc-1", volume_path="/pods/../../etc"),
        InvalidArgument,
        "'..'",
    ),
    (
        "NodeExpandVolume",
        pb.NodeExpandVolumeRequest(volume_id="pvc-1", volume_path=TARGET, staging_target_path="/a/../b"),
        InvalidArgument,
        "'..'",
    ),
    # Nothing to find where nothing is.
    (
        "NodeGetVolumeStats",
        pb.NodeGetVolumeStatsRequest(volume_id="pvc-1", volume_path="/nonexistent/tenant-cloud"),
        VolumeNotFound,
        "no volume",
    ),
    (
        "NodeExpandVolume",
        pb.NodeExpandVolumeRequest(volume_id="pvc-1", volume_path="/nonexistent/tenant-cloud"),
        VolumeNotFound,
        "no volume",
    ),
    # The spec's answer to a publish without staging when STAGE_UNSTAGE_VOLUME is advertised.
    ("NodePublishVolume", publish(staging_target_path=""), FailedPrecondition, "staging_target_path"),
]


@pytest.mark.parametrize(
    ("rpc", "request_message", "error", "words"),
    INVALID_REQUESTS,
    ids=[f"{i:02d}-{case[0]}-{case[3]}" for i, case in enumerate(INVALID_REQUESTS)],
)
async def test_invalid_requests_are_refused_before_touching_the_node(
    node: NodeService, runner: ScriptedRunner, rpc: str, request_message: Any, error: type[DriverError], words: str
) -> None:
    with pytest.raises(DriverError) as raised:
        await getattr(node, rpc)(request_message, None)
    assert type(raised.value) is error
    assert words in str(raised.value)
    assert runner.calls == []


async def test_node_info_is_the_identity_without_topology(node: NodeService) -> None:
    info = await node.NodeGetInfo(pb.NodeGetInfoRequest(), None)
    assert (info.node_id, info.max_volumes_per_node) == (NODE_ID, 16)
    assert not info.HasField("accessible_topology")


async def test_capabilities_are_what_the_service_implements(node: NodeService) -> None:
    response = await node.NodeGetCapabilities(pb.NodeGetCapabilitiesRequest(), None)
    kinds = {capability.rpc.type for capability in response.capabilities}
    rpc = pb.NodeServiceCapability.RPC
    assert kinds == set(ADVERTISED)
    assert rpc.STAGE_UNSTAGE_VOLUME in kinds and rpc.EXPAND_VOLUME in kinds and rpc.VOLUME_CONDITION in kinds
    assert rpc.VOLUME_MOUNT_GROUP not in kinds


@pytest.mark.parametrize(("node_id", "limit"), [("", 0), ("x" * 257, 0), (NODE_ID, -1)])
def test_node_identity_refuses_what_the_spec_forbids(node_id: str, limit: int) -> None:
    with pytest.raises(ValueError):
        NodeIdentity(node_id, limit)


async def test_a_disk_that_has_not_appeared_yet_is_retryable(node: NodeService, runner: ScriptedRunner) -> None:
    with pytest.raises(OperationPending, match=SERIAL):
        await node.NodeStageVolume(stage(), None)
    assert runner.calls == [("lsblk", "-J", "-d", "-p", "-o", "NAME,SERIAL,TYPE")]


async def test_a_second_operation_on_a_busy_volume_is_aborted(
    node: NodeService, guard: VolumeGuard, runner: ScriptedRunner
) -> None:
    with guard.hold("pvc-1"):
        for rpc, request in [
            ("NodeStageVolume", stage()),
            ("NodeUnstageVolume", pb.NodeUnstageVolumeRequest(volume_id="pvc-1", staging_target_path=STAGING)),
            ("NodePublishVolume", publish()),
            ("NodeUnpublishVolume", pb.NodeUnpublishVolumeRequest(volume_id="pvc-1", target_path=TARGET)),
            ("NodeExpandVolume", pb.NodeExpandVolumeRequest(volume_id="pvc-1", volume_path=TARGET)),
        ]:
            with pytest.raises(Busy):
                await getattr(node, rpc)(request, None)
    assert runner.calls == []


# --- publish decisions, read from a mount table ------------------------------------------------------------------


@pytest.fixture
def paths(tmp_path: Path) -> tuple[Path, Path]:
    staging = tmp_path / "staging"
    staging.mkdir()
    return staging, tmp_path / "pods" / "uid" / "mount"


async def test_publish_needs_a_staged_volume(node: NodeService, paths: tuple[Path, Path]) -> None:
    staging, target = paths
    with pytest.raises(FailedPrecondition, match="NodeStageVolume"):
        await node.NodePublishVolume(publish(staging_target_path=str(staging), target_path=str(target)), None)


async def test_publish_binds_the_staging_mount(
    node: NodeService, runner: ScriptedRunner, mountinfo: Path, paths: tuple[Path, Path]
) -> None:
    staging, target = paths
    write_mounts(mountinfo, mountinfo_line(40, "8:16", staging))
    await node.NodePublishVolume(publish(staging_target_path=str(staging), target_path=str(target)), None)
    assert runner.calls == [("mount", "--bind", str(staging), str(target))]
    assert target.is_dir()


@pytest.mark.parametrize(
    ("published", "read_only", "outcome"),
    [
        (mountinfo_line(41, "8:16", "{target}"), False, None),
        (mountinfo_line(41, "8:16", "{target}", options="ro"), True, None),
        (mountinfo_line(41, "8:16", "{target}"), True, AlreadyExistsIncompatible),
        (mountinfo_line(41, "8:16", "{target}", options="ro"), False, AlreadyExistsIncompatible),
        (mountinfo_line(41, "8:32", "{target}"), False, AlreadyExistsIncompatible),
        (mountinfo_line(41, "8:16", "{target}", root="/subdir"), False, AlreadyExistsIncompatible),
    ],
    ids=["same", "same-read-only", "now-read-only", "now-read-write", "other-disk", "other-directory"],
)
async def test_publish_again_at_the_same_target(
    node: NodeService,
    runner: ScriptedRunner,
    mountinfo: Path,
    paths: tuple[Path, Path],
    published: str,
    read_only: bool,
    outcome: type[DriverError] | None,
) -> None:
    staging, target = paths
    write_mounts(mountinfo, mountinfo_line(40, "8:16", staging), published.format(target=target))
    request = publish(staging_target_path=str(staging), target_path=str(target), readonly=read_only)
    if outcome is None:
        await node.NodePublishVolume(request, None)
    else:
        with pytest.raises(outcome):
            await node.NodePublishVolume(request, None)
    assert runner.calls == []


@pytest.mark.parametrize(
    ("mode", "allowed"),
    [
        (Mode.SINGLE_NODE_SINGLE_WRITER, False),
        (Mode.SINGLE_NODE_MULTI_WRITER, True),
        # Kubernetes RWO before SINGLE_NODE_MULTI_WRITER: several pods on one node publish it.
        (Mode.SINGLE_NODE_WRITER, True),
        (Mode.SINGLE_NODE_READER_ONLY, True),
    ],
)
async def test_a_second_target_follows_the_access_mode(
    node: NodeService, runner: ScriptedRunner, mountinfo: Path, paths: tuple[Path, Path], mode: Any, allowed: bool
) -> None:
    staging, target = paths
    first = staging.parent / "pods" / "first" / "mount"
    write_mounts(mountinfo, mountinfo_line(40, "8:16", staging), mountinfo_line(41, "8:16", first))
    request = publish(
        staging_target_path=str(staging), target_path=str(target), volume_capability=mount_capability(mode=mode)
    )
    if allowed:
        await node.NodePublishVolume(request, None)
        assert runner.calls == [("mount", "--bind", str(staging), str(target))]
    else:
        with pytest.raises(FailedPrecondition, match=str(first)):
            await node.NodePublishVolume(request, None)
        assert runner.calls == []


async def test_stats_of_a_directory_with_nothing_mounted_is_not_found(node: NodeService, tmp_path: Path) -> None:
    request = pb.NodeGetVolumeStatsRequest(volume_id="pvc-1", volume_path=str(tmp_path))
    with pytest.raises(VolumeNotFound, match="mounted"):
        await node.NodeGetVolumeStats(request, None)


async def test_expanding_a_raw_block_volume_at_a_directory_is_a_no_op(
    node: NodeService, runner: ScriptedRunner, tmp_path: Path
) -> None:
    request = pb.NodeExpandVolumeRequest(
        volume_id="pvc-1", volume_path=str(tmp_path), volume_capability=block_capability()
    )
    response = await node.NodeExpandVolume(request, None)
    assert not response.capacity_bytes
    assert runner.calls == []


# --- rules -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("found", "requested", "expected"),
    [
        (DiskFormat(), "", "ext4"),
        (DiskFormat(), "xfs", "xfs"),
        (DiskFormat(fs_type="xfs"), "", "xfs"),
        (DiskFormat(fs_type="ext4"), "ext4", "ext4"),
        (DiskFormat(fs_type="xfs"), "ext4", FailedPrecondition),
        (DiskFormat(fs_type="btrfs"), "", FailedPrecondition),
        (DiskFormat(partition_table="gpt"), "ext4", FailedPrecondition),
        (DiskFormat(unrecognised="several conflicting signatures"), "", FailedPrecondition),
    ],
)
def test_filesystem_to_mount_never_reformats(found: DiskFormat, requested: str, expected: str | type) -> None:
    if isinstance(expected, str):
        assert filesystem_to_mount(found, requested, Path("/dev/sdb")) == expected
    else:
        with pytest.raises(expected, match="/dev/sdb"):
            filesystem_to_mount(found, requested, Path("/dev/sdb"))


@pytest.mark.parametrize(
    ("line", "access", "conflict"),
    [
        (mountinfo_line(40, "8:16", STAGING), VolumeAccess(False, Mode.SINGLE_NODE_WRITER, "ext4"), None),
        (mountinfo_line(40, "8:16", STAGING), VolumeAccess(False, Mode.SINGLE_NODE_WRITER, ""), None),
        (mountinfo_line(40, "8:32", STAGING), VolumeAccess(False, Mode.SINGLE_NODE_WRITER), "/dev/sdb, not"),
        (mountinfo_line(40, "8:16", STAGING), VolumeAccess(False, Mode.SINGLE_NODE_WRITER, "xfs"), "as ext4"),
        (
            mountinfo_line(40, "8:16", STAGING),
            VolumeAccess(False, Mode.SINGLE_NODE_WRITER, "ext4", ("ro",)),
            "read-write",
        ),
    ],
)
def test_check_staged(line: str, access: VolumeAccess, conflict: str | None) -> None:
    staged = parse_mountinfo_line(line)
    if conflict is None:
        check_staged(staged, Path("/dev/sdb"), os.makedev(8, 16), access)
    else:
        with pytest.raises(AlreadyExistsIncompatible, match=conflict):
            check_staged(staged, Path("/dev/sdb"), os.makedev(8, 16), access)


def test_a_bind_of_a_read_only_stage_is_read_only_whatever_was_asked() -> None:
    staged = parse_mountinfo_line(mountinfo_line(40, "8:16", STAGING, options="ro"))
    check_published(parse_mountinfo_line(mountinfo_line(41, "8:16", TARGET, options="ro")), staged, False)


def test_other_publishes_ignore_the_stage_the_target_and_sub_paths() -> None:
    entries = parse_mountinfo(
        "\n".join(
            [
                mountinfo_line(40, "8:16", STAGING),
                mountinfo_line(41, "8:16", TARGET),
                mountinfo_line(42, "8:16", "/var/lib/kubelet/pods/other/volumes/mount"),
                mountinfo_line(43, "8:16", "/var/lib/kubelet/pods/uid/volume-subpaths/x", root="/data"),
                mountinfo_line(44, "8:32", "/var/lib/kubelet/pods/third/volumes/mount"),
            ]
        )
    )
    assert other_publishes(entries, entries[0], Path(TARGET)) == [Path("/var/lib/kubelet/pods/other/volumes/mount")]


def test_a_disk_smaller_than_requested_is_not_expanded_yet() -> None:
    check_capacity(2048, 2048)
    check_capacity(2048, 0)
    with pytest.raises(OperationPending, match="has not seen"):
        check_capacity(1024, 2048)


@pytest.mark.parametrize(
    ("error", "meaning"),
    [
        (DeviceNotFound(SERIAL), OperationPending),
        (AmbiguousDevice(SERIAL, [Path("/dev/sdb"), Path("/dev/sdc")]), FailedPrecondition),
        (UnsafeToFormat(Path("/dev/sdb"), "a partition table (gpt)"), FailedPrecondition),
        (FilesystemCorrupted(Path("/dev/sdb"), "UNEXPECTED INCONSISTENCY"), FailedPrecondition),
        (UnsupportedFilesystem("btrfs"), FailedPrecondition),
        (NotABlockDevice(Path("/tmp/file")), FailedPrecondition),
        (NotEmpty(Path("/var/lib/kubelet/pods/x/volumes/y")), FailedPrecondition),
        (CommandTimedOut(["mkfs.ext4", "/dev/sdb"], 300), TimeoutError),
    ],
)
def test_os_errors_get_the_status_kubelet_needs(error: Exception, meaning: type[Exception]) -> None:
    with pytest.raises(meaning) as raised, os_errors_as_statuses():
        raise error
    assert raised.value.__cause__ is error


def test_other_os_errors_stay_internal() -> None:
    failure = CommandFailed(["mount", "/dev/sdb", "/mnt"], 32, "mount: wrong fs type")
    with pytest.raises(CommandFailed), os_errors_as_statuses():
        raise failure
