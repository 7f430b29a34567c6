"""Hostile CSI requests, generated, sent over gRPC to the real driver (controller and node service) against the
real parent apiserver and simulators.

Every answer is a clean status: never UNKNOWN or INTERNAL, never a traceback, never a hang; the driver stays
ready and healthy; nothing appears in the parent; and the node service, running as root on this machine, only
ever acts inside its sandbox (sentinel files around it stay untouched, nothing gets mounted). Requests that may
legitimately succeed (deleting what does not exist, listing) are allowed to; those that would create something
always carry at least one fault, so an OK from them is a finding.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
from hypothesis import given
from hypothesis import strategies as st

from csi._proto import csi_pb2, csi_pb2_grpc
from csi.app import Driver
from csi.parent import DATAVOLUMES, VIRTUALMACHINES, VOLUMESNAPSHOTS
from e2e import cluster as harness
from kube.client import Client
from kube.resources import PERSISTENTVOLUMECLAIMS
from tests.integration.csi.conftest import PARENT_CLASS, driver_config, running_driver
from tests.integration.security.conftest import hostile_settings

pb = csi_pb2
Code = grpc.StatusCode
Mode = pb.VolumeCapability.AccessMode
RPC_TIMEOUT = 30.0
NEVER = frozenset({Code.UNKNOWN, Code.INTERNAL, Code.DEADLINE_EXCEEDED, Code.CANCELLED})
NODE_VM = "hostile-vm"  # the node service's own VM, which does not exist in the parent
MiB = 1 << 20
INT64 = (1 << 63) - 1

# -- generated values ---------------------------------------------------------------------------------------

huge = st.sampled_from([1 << 10, 64 << 10, 1 << 20]).map(lambda n: "v" * n)
garbage_ids = st.one_of(
    st.sampled_from(
        [
            "",
            "pvc-" + str(uuid.UUID(int=0)),
            "../../etc/passwd",
            "pvc-../../x",
            "PVC-UPPER",
            "pvc-\x00nul",
            "tenant-test/pvc-x",
            "snapshot-" + "a" * 300,
            "pvc-\u2603",
            " pvc-x",
        ]
    ),
    st.text(max_size=80),
    huge,
)
node_ids = st.one_of(
    st.sampled_from(["", "tenant-test", "tenant-test/", "/vm", "a/b/c", "../vm", "kube-system/vm", "tenant-other/vm"]),
    st.builds(lambda vm: f"{{ns}}/{vm}", st.sampled_from([NODE_VM, "..", "VM", "vm\x00", "a" * 300])),
    st.text(max_size=60),
)
capacities = st.one_of(
    st.sampled_from([-1, -(1 << 63), 0, 1, MiB - 1, MiB + 1, INT64, INT64 - MiB + 2, 1 << 62]),
    st.integers(-(1 << 63), INT64),
)
parameter_maps = st.dictionaries(
    st.sampled_from(
        ["infraStorageClassName", "parentStorageClass", "bus", "csi.storage.k8s.io/pvc/name", "color", "", "\u2603"]
    ),
    st.sampled_from([PARENT_CLASS, "premium", "virtio", "scsi", "ide", "", "../x"]) | st.text(max_size=20) | huge,
    max_size=4,
)
secrets_maps = st.dictionaries(st.text(max_size=10), st.text(max_size=30), max_size=2)


def capability(draw: st.DrawFn) -> Any:
    mode: Any = draw(st.sampled_from([0, 1, 2, 3, 4, 5, 6, 7, 99]))  # 0 is UNKNOWN, 99 no mode at all
    kind = draw(st.sampled_from(["mount", "block", "none"]))
    if kind == "block":
        return pb.VolumeCapability(block=pb.VolumeCapability.BlockVolume(), access_mode=Mode(mode=mode))
    if kind == "none":
        return pb.VolumeCapability(access_mode=Mode(mode=mode))
    mount = pb.VolumeCapability.MountVolume(
        fs_type=draw(st.sampled_from(["", "ext4", "xfs", "vfat", "../../bin/sh", "ext4 -o x"])),
        mount_flags=draw(st.lists(st.sampled_from(["ro", "noatime", "ro,exec", "", "\x00", "bind", "x" * 300]))),
        volume_mount_group=draw(st.sampled_from(["", "", "1000", "root"])),
    )
    return pb.VolumeCapability(mount=mount, access_mode=Mode(mode=mode))


def fill(text: str, namespace: str) -> str:
    return text.replace("{ns}", namespace)


@dataclass(frozen=True)
class Call:
    """One generated RPC: which stub and method, the request, and whether OK is a legitimate answer."""

    service: str
    method: str
    request: Any
    may_succeed: bool

    def __repr__(self) -> str:
        text = str(self.request)
        return f"{self.method}({text[:300]}{'...' if len(text) > 300 else ''})"


# -- controller requests -----------------------------------------------------------------------------------

POISONS = ("negative", "required-over-limit", "unknown-parameter", "bad-bus", "class", "no-capability",
           "bad-capability", "snapshot-source", "volume-source", "no-name", "over-int64")  # fmt: skip


@st.composite
def create_volume(draw: st.DrawFn) -> Call:
    """Hostile all over, and always wrong in at least one way that must stop it before anything is made."""
    required, limit = draw(capacities), draw(capacities)
    parameters = {"infraStorageClassName": PARENT_CLASS, **draw(parameter_maps)}
    capabilities = [capability(draw) for _ in range(draw(st.integers(1, 3)))]
    request = pb.CreateVolumeRequest(name=draw(garbage_ids) or "pvc-x", secrets=draw(secrets_maps))
    poison = draw(st.sampled_from(POISONS))
    if poison == "negative":
        required = -abs(required) - 1
    elif poison == "required-over-limit":
        required, limit = max(abs(required), 2 * MiB), max(abs(required), 2 * MiB) - 1
    elif poison == "over-int64":
        required, limit = INT64 - draw(st.integers(0, MiB - 2)), 0
    elif poison == "unknown-parameter":
        parameters["unknownKey" + draw(st.text(max_size=5))] = "x"
    elif poison == "bad-bus":
        parameters["bus"] = draw(st.sampled_from(["ide", "", "SCSI", "virtio-blk"]))
    elif poison == "class":
        parameters["infraStorageClassName"] = draw(st.sampled_from(["premium", "../x", "linstor-test-2"]))
        parameters.pop("parentStorageClass", None)
    elif poison == "no-capability":
        capabilities = []
    elif poison == "bad-capability":
        capabilities.append(pb.VolumeCapability(access_mode=Mode(mode=Mode.MULTI_NODE_MULTI_WRITER)))
    elif poison == "snapshot-source":
        request.volume_content_source.snapshot.snapshot_id = draw(garbage_ids)
    elif poison == "volume-source":
        request.volume_content_source.volume.volume_id = draw(garbage_ids)
    elif poison == "no-name":
        request.name = ""
    request.parameters.update(parameters)
    request.volume_capabilities.extend(capabilities)
    if poison != "over-int64":
        request.capacity_range.required_bytes = max(-(1 << 63), min(INT64, required))
        request.capacity_range.limit_bytes = max(-(1 << 63), min(INT64, limit))
    else:
        request.capacity_range.required_bytes = required
    return Call("controller", "CreateVolume", request, may_succeed=False)


@st.composite
def controller_call(draw: st.DrawFn, namespace: str) -> Call:
    request: Any
    volume_id, node = draw(garbage_ids), fill(draw(node_ids), namespace)
    kind = draw(st.sampled_from(["delete", "publish", "unpublish", "validate", "get", "expand", "snapshot",
                                 "delete-snapshot", "list-snapshots", "list-volumes", "capacity"]))  # fmt: skip
    if kind == "delete":
        return Call("controller", "DeleteVolume", pb.DeleteVolumeRequest(volume_id=volume_id), True)
    if kind == "publish":
        request = pb.ControllerPublishVolumeRequest(
            volume_id=volume_id, node_id=node, volume_capability=capability(draw)
        )
        return Call("controller", "ControllerPublishVolume", request, False)
    if kind == "unpublish":
        request = pb.ControllerUnpublishVolumeRequest(volume_id=volume_id, node_id=node)
        return Call("controller", "ControllerUnpublishVolume", request, True)
    if kind == "validate":
        request = pb.ValidateVolumeCapabilitiesRequest(
            volume_id=volume_id, volume_capabilities=[capability(draw)], parameters=draw(parameter_maps)
        )
        return Call("controller", "ValidateVolumeCapabilities", request, False)
    if kind == "get":
        return Call("controller", "ControllerGetVolume", pb.ControllerGetVolumeRequest(volume_id=volume_id), False)
    if kind == "expand":
        request = pb.ControllerExpandVolumeRequest(
            volume_id=volume_id,
            capacity_range=pb.CapacityRange(required_bytes=draw(capacities), limit_bytes=draw(capacities)),
        )
        return Call("controller", "ControllerExpandVolume", request, False)
    if kind == "snapshot":
        request = pb.CreateSnapshotRequest(
            name=draw(garbage_ids), source_volume_id=volume_id, parameters=draw(parameter_maps)
        )
        return Call("controller", "CreateSnapshot", request, False)
    if kind == "delete-snapshot":
        return Call("controller", "DeleteSnapshot", pb.DeleteSnapshotRequest(snapshot_id=volume_id), True)
    if kind == "list-snapshots":
        request = pb.ListSnapshotsRequest(
            max_entries=draw(st.integers(-(1 << 31), (1 << 31) - 1)),
            starting_token=draw(st.sampled_from(["", "0", "1", "-1", "99999", "x"])),
            source_volume_id=draw(st.sampled_from(["", volume_id])),
            snapshot_id=draw(st.sampled_from(["", volume_id])),
        )
        return Call("controller", "ListSnapshots", request, True)
    if kind == "list-volumes":
        request = pb.ListVolumesRequest(
            max_entries=draw(st.integers(-(1 << 31), (1 << 31) - 1)),
            starting_token=draw(st.sampled_from(["", "0", "1", "-1", "99999", "x"])),
        )
        return Call("controller", "ListVolumes", request, True)
    request = pb.GetCapacityRequest(parameters=draw(parameter_maps), volume_capabilities=[capability(draw)])
    return Call("controller", "GetCapacity", request, False)


# -- node requests: every path the driver may act on lies in the sandbox ------------------------------------


@st.composite
def node_path(draw: st.DrawFn, sandbox: Path) -> str:
    kind = draw(st.sampled_from(["fresh", "existing", "traversal", "relative", "nul", "huge", "odd", "empty"]))
    if kind == "fresh":
        return str(sandbox / "paths" / uuid.uuid4().hex)
    if kind == "existing":
        made = sandbox / "paths" / uuid.uuid4().hex
        made.mkdir(parents=True)
        if draw(st.booleans()):
            (made / "data").write_text("a workload's file")
        return str(made)
    if kind == "traversal":
        # Resolves to the sentinel next to the paths: a driver that followed it would touch what it must not.
        return str(sandbox / "paths" / "x" / ".." / ".." / "outside" / "sentinel")
    if kind == "relative":
        return draw(st.sampled_from(["no-such-dir/target", "./no-such-target", "no-such/../x", "~/no-such"]))
    if kind == "nul":
        return str(sandbox / "paths" / "a\x00b")
    if kind == "huge":
        return str(sandbox / "paths" / ("d" * 5000))
    if kind == "odd":
        return str(sandbox / "paths" / draw(st.sampled_from(["ä ö\n\t", "*", "[a]", "-rf", "x;rm -rf y", "\u202e"])))
    return ""


@st.composite
def node_call(draw: st.DrawFn, sandbox: Path) -> Call:
    request: Any
    volume_id = draw(garbage_ids | st.just("pvc-node"))
    staging, target = draw(node_path(sandbox)), draw(node_path(sandbox))
    context = draw(
        st.dictionaries(
            st.sampled_from(["serial", "bus", "x"]),
            st.sampled_from(["", "/", "*", "../sda", "x" * 100, "nonexistent-serial-0", "\x00"]) | st.text(max_size=20),
            max_size=2,
        )
    )
    kind = draw(st.sampled_from(["stage", "unstage", "publish", "unpublish", "stats", "expand"]))
    if kind == "stage":
        request = pb.NodeStageVolumeRequest(
            volume_id=volume_id,
            staging_target_path=staging,
            volume_capability=capability(draw),
            volume_context=context,
            secrets=draw(secrets_maps),
        )
        return Call("node", "NodeStageVolume", request, False)
    if kind == "unstage":
        return Call(
            "node",
            "NodeUnstageVolume",
            pb.NodeUnstageVolumeRequest(volume_id=volume_id, staging_target_path=staging),
            True,
        )
    if kind == "publish":
        request = pb.NodePublishVolumeRequest(
            volume_id=volume_id,
            staging_target_path=staging,
            target_path=target,
            volume_capability=capability(draw),
            volume_context=context,
            readonly=draw(st.booleans()),
        )
        return Call("node", "NodePublishVolume", request, False)
    if kind == "unpublish":
        return Call(
            "node", "NodeUnpublishVolume", pb.NodeUnpublishVolumeRequest(volume_id=volume_id, target_path=target), True
        )
    if kind == "stats":
        request = pb.NodeGetVolumeStatsRequest(volume_id=volume_id, volume_path=target, staging_target_path=staging)
        return Call("node", "NodeGetVolumeStats", request, False)
    request = pb.NodeExpandVolumeRequest(
        volume_id=volume_id,
        volume_path=target,
        staging_target_path=staging,
        capacity_range=pb.CapacityRange(required_bytes=draw(capacities)),
    )
    return Call("node", "NodeExpandVolume", request, False)


# -- fixtures ----------------------------------------------------------------------------------------------


@dataclass
class Sandbox:
    root: Path
    sentinels: dict[Path, str]

    def untouched(self) -> list[str]:
        problems = []
        for path, digest in self.sentinels.items():
            if not path.exists():
                problems.append(f"{path} is gone")
            elif hashlib.sha256(path.read_bytes()).hexdigest() != digest:
                problems.append(f"{path} changed")
        return problems


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Sandbox:
    root = tmp_path_factory.mktemp("hostile-node")
    (root / "by-id").mkdir()
    (root / "paths").mkdir()
    sentinels = {}
    for relative in ("outside/sentinel", "paths/.keep/sentinel", "sentinel"):
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"must stay as it is: {relative}")
        sentinels[path] = hashlib.sha256(path.read_bytes()).hexdigest()
    return Sandbox(root, sentinels)


@pytest.fixture(scope="module")
async def hostile_driver(
    cluster: harness.Cluster, parent_storage: str, sandbox: Sandbox
) -> AsyncIterator[tuple[Driver, dict[str, Any]]]:
    """The whole driver, controller and node, with the node's disks looked up in the (empty) sandbox."""
    async with (
        running_driver(
            cluster,
            driver_config(cluster),
            node=True,
            node_id=f"{cluster.parent_namespace}/{NODE_VM}",
            by_id_root=sandbox.root / "by-id",
        ) as driver,
        grpc.aio.insecure_channel(f"127.0.0.1:{driver.port}") as channel,
    ):
        yield (
            driver,
            {
                "controller": csi_pb2_grpc.ControllerStub(channel),
                "node": csi_pb2_grpc.NodeStub(channel),
                "identity": csi_pb2_grpc.IdentityStub(channel),
            },
        )


async def parent_objects(parent: Client, namespace: str) -> dict[str, set[str]]:
    found = {}
    for resource in (DATAVOLUMES, PERSISTENTVOLUMECLAIMS, VOLUMESNAPSHOTS):
        found[resource.plural] = {o["metadata"]["name"] for o in (await parent.list_all(resource, namespace)).items}
    vms = (await parent.list_all(VIRTUALMACHINES, namespace)).items
    found["vm-volumes"] = {
        f"{vm['metadata']['name']}:{v.get('name')}"
        for vm in vms
        for v in (((vm.get("spec") or {}).get("template") or {}).get("spec") or {}).get("volumes") or []
    }
    return found


def mounts_under(root: Path) -> list[str]:
    return [line for line in Path("/proc/self/mountinfo").read_text().splitlines() if str(root) in line]


# -- the test ----------------------------------------------------------------------------------------------


@dataclass
class Figures:
    examples: int = 0
    requests: int = 0
    codes: dict[str, int] | None = None
    started: float = 0.0


FIGURES = Figures(codes={})


async def answer(stubs: dict[str, Any], call: Call) -> tuple[Any, str]:
    """The status code (a grpc.StatusCode) and details of one call."""
    try:
        await getattr(stubs[call.service], call.method)(call.request, timeout=RPC_TIMEOUT)
    except grpc.aio.AioRpcError as error:
        return error.code(), str(error.details() or "")
    return Code.OK, ""


def problems_with(call: Call, code: Any, details: str) -> list[str]:
    problems = []
    if code in NEVER:
        problems.append(f"{call!r} -> {code.name}: {details[:500]}")
    if "Traceback" in details or 'File "' in details:
        problems.append(f"{call!r} -> a traceback in the status: {details[:500]}")
    if "metadata size exceeds" in details:
        problems.append(f"{call!r} -> the answer was too large to deliver: {details[:200]}")
    if code is Code.OK and not call.may_succeed:
        problems.append(f"{call!r} -> OK, but it carries a fault")
    return problems


def calls(namespace: str, sandbox: Path) -> st.SearchStrategy[list[Call]]:
    one = create_volume() | controller_call(namespace) | node_call(sandbox)
    return st.lists(one, min_size=1, max_size=12)


async def healthy(driver: Driver, stubs: dict[str, Any]) -> list[str]:
    probe = await stubs["identity"].Probe(pb.ProbeRequest(), timeout=RPC_TIMEOUT)
    problems = [] if probe.ready.value else ["Probe: not ready"]
    address = driver.health.health_address
    assert address is not None
    async with aiohttp.ClientSession() as session, session.get(f"http://{address[0]}:{address[1]}/healthz") as health:
        if health.status != 200:
            problems.append(f"/healthz {health.status}: {await health.text()}")
    return problems


@hostile_settings(ci_examples=40)
@given(data=st.data())
async def test_hostile_csi_requests_get_clean_errors_and_change_nothing(
    data: st.DataObject,
    hostile_driver: tuple[Driver, dict[str, Any]],
    sandbox: Sandbox,
    parent_client: Client,
    cluster: harness.Cluster,
) -> None:
    driver, stubs = hostile_driver
    batch = data.draw(calls(cluster.parent_namespace, sandbox.root), label="calls")
    before = await parent_objects(parent_client, cluster.parent_namespace)
    answers = await asyncio.gather(*(answer(stubs, call) for call in batch))
    FIGURES.started = FIGURES.started or time.monotonic()  # from the first example on
    FIGURES.examples += 1
    FIGURES.requests += len(batch)
    problems = []
    for call, (code, details) in zip(batch, answers, strict=True):
        assert FIGURES.codes is not None
        FIGURES.codes[code.name] = FIGURES.codes.get(code.name, 0) + 1
        problems += problems_with(call, code, details)
    assert problems == []
    assert await healthy(driver, stubs) == []
    assert await parent_objects(parent_client, cluster.parent_namespace) == before
    assert sandbox.untouched() == []
    assert mounts_under(sandbox.root) == []


@pytest.mark.parametrize("size", [64 << 10, 1 << 20, 3 << 20])
async def test_huge_ids_get_their_real_answer(hostile_driver: tuple[Driver, dict[str, Any]], size: int) -> None:
    """Errors echo the ID; the status message is cut so gRPC can still deliver it (else: RESOURCE_EXHAUSTED)."""
    _, stubs = hostile_driver
    huge_id = "v" * size
    for call in (
        Call("controller", "ControllerGetVolume", pb.ControllerGetVolumeRequest(volume_id=huge_id), False),
        Call("controller", "CreateSnapshot", pb.CreateSnapshotRequest(name="s", source_volume_id=huge_id), False),
        Call("node", "NodeGetVolumeStats", pb.NodeGetVolumeStatsRequest(volume_id="v", volume_path=huge_id), False),
    ):
        code, details = await answer(stubs, call)
        assert code in (Code.NOT_FOUND, Code.INVALID_ARGUMENT), (call.method, code, details[:200])
        assert len(details) < 2048


def test_hostile_csi_figures(sandbox: Sandbox) -> None:
    print(
        f"hostile CSI requests: {FIGURES.examples} batches, {FIGURES.requests} requests, answers {FIGURES.codes}, "
        f"{time.monotonic() - FIGURES.started:.0f}s"
    )
    assert FIGURES.requests > 0
    assert sandbox.untouched() == []
