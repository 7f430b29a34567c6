"""csi-sanity's Node Service specs against the node service alone, on loop devices.

csi-sanity creates its volumes through a controller, so a stand-in plays the parent side in miniature:
CreateVolume plugs a blank loop disk in under a fresh serial, ControllerExpandVolume grows it, DeleteVolume
unplugs it. The whole driver, with the real controller, is tested by test_sanity.py.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from csi._proto import csi_pb2, csi_pb2_grpc
from e2e.binaries import csi_sanity_binary
from tests.integration.csi.test_node_os import CAP_SYS_RESOURCE, EXT4_SIZE, Loop, has_capability, needs_root
from tests.integration.csi.test_nodeservice import Disks, real_os, serving

pb = csi_pb2
ControllerRPC = pb.ControllerServiceCapability.RPC
SUMMARY = re.compile(r"Ran (\d+) of (\d+) Specs.*?(\d+) Passed \| (\d+) Failed", re.S)
SANITY_TIMEOUT = 600.0


class LoopController(csi_pb2_grpc.ControllerServicer):  # type: ignore[misc]  # grpc's generated base is untyped
    """Just enough of a controller for csi-sanity to get disks to the node: no attach step, no snapshots."""

    def __init__(self, disks: Disks) -> None:
        self._disks = disks
        self._volumes: dict[str, tuple[str, Loop]] = {}

    async def ControllerGetCapabilities(self, request: Any, context: Any) -> Any:  # noqa: N802 - gRPC method names
        kinds = (ControllerRPC.CREATE_DELETE_VOLUME, ControllerRPC.EXPAND_VOLUME)
        capabilities = [pb.ControllerServiceCapability(rpc=ControllerRPC(type=kind)) for kind in kinds]
        return pb.ControllerGetCapabilitiesResponse(capabilities=capabilities)

    async def CreateVolume(self, request: Any, context: Any) -> Any:  # noqa: N802
        size = request.capacity_range.required_bytes or EXT4_SIZE
        if request.name not in self._volumes:
            serial = str(uuid.uuid4())
            self._volumes[request.name] = (serial, await asyncio.to_thread(self._disks.plug, serial, size))
        serial, loop = self._volumes[request.name]
        volume = pb.Volume(
            volume_id=request.name,
            capacity_bytes=loop.backing.stat().st_size,
            volume_context={"serial": serial, "bus": "scsi"},
        )
        return pb.CreateVolumeResponse(volume=volume)

    async def DeleteVolume(self, request: Any, context: Any) -> Any:  # noqa: N802
        if plugged := self._volumes.pop(request.volume_id, None):
            serial, loop = plugged
            self._disks.link(serial).unlink()
            await asyncio.to_thread(subprocess.run, ["losetup", "-d", str(loop.device)], check=True)
        return pb.DeleteVolumeResponse()

    async def ControllerExpandVolume(self, request: Any, context: Any) -> Any:  # noqa: N802
        _, loop = self._volumes[request.volume_id]
        size = request.capacity_range.required_bytes
        await asyncio.to_thread(loop.grow, size)
        return pb.ControllerExpandVolumeResponse(capacity_bytes=size, node_expansion_required=True)


@pytest.fixture
def sanity() -> Path:
    try:
        return csi_sanity_binary()
    except Exception as err:  # no Go toolchain or no network to build it
        pytest.skip(f"csi-sanity is not available: {err}")


@pytest.fixture
def disks(tmp_path: Path) -> Iterator[Disks]:
    plugged = Disks(tmp_path)
    try:
        yield plugged
    finally:
        plugged.loops.teardown()


@needs_root
@pytest.mark.parametrize("access_type", ["mount", "block"])
async def test_csi_sanity_node_service(sanity: Path, disks: Disks, access_type: str) -> None:
    skip = []
    if access_type == "mount" and not has_capability(CAP_SYS_RESOURCE):
        skip = ["--ginkgo.skip=node-expand is called after node-publish"]  # online ext4 resize, see test_nodeservice
    async with serving(real_os(disks), LoopController(disks)) as (_, port):
        process = await asyncio.create_subprocess_exec(
            str(sanity),
            f"--csi.endpoint=dns:///127.0.0.1:{port}",
            f"--csi.mountdir={disks.root / 'sanity-mount'}",
            f"--csi.stagingdir={disks.root / 'sanity-staging'}",
            f"--csi.testvolumeaccesstype={access_type}",
            f"--csi.testvolumesize={EXT4_SIZE}",
            f"--csi.testvolumeexpandsize={2 * EXT4_SIZE}",
            "--ginkgo.focus=Node Service",
            *skip,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        async with asyncio.timeout(SANITY_TIMEOUT):
            output, _ = await process.communicate()
    text = re.sub(r"\x1b\[[0-9;]*m", "", output.decode(errors="replace"))
    summary = SUMMARY.search(text)
    assert summary, text[-4000:]
    ran, _total, passed, failed = map(int, summary.groups())
    print(f"csi-sanity node service ({access_type}): {passed} of {ran} specs passed")
    assert (failed, process.returncode) == (0, 0), text[-8000:]
    assert passed == ran >= 10
