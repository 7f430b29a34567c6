"""The CSI node plugin kubelet talks to: our driver's node service as a child process on a unix socket, or any
endpoint given, and the calls kubelet makes on it (with kubelet's 2-minute csiTimeout per call)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from csi._proto import csi_pb2, csi_pb2_grpc

log = logging.getLogger(__name__)

CSI_TIMEOUT = 120.0  # kubelet's csiTimeout
UNIX_PATH_MAX = 107  # sun_path is 108 bytes including the terminating NUL
Capability = csi_pb2.NodeServiceCapability.RPC


class PluginError(RuntimeError):
    """The node plugin could not be started or reached."""


@dataclass(frozen=True)
class NodeInfo:
    node_id: str
    max_volumes: int
    topology: dict[str, str]
    stage_unstage: bool
    expand: bool
    single_node_multi_writer: bool


@dataclass(frozen=True)
class PluginCommand:
    """How to run our driver's node service for one tenant node, the way the chart's node DaemonSet does."""

    node: str
    socket: Path
    by_id_root: Path
    parent_namespace: str
    tenant_kubeconfig: Path
    driver_name: str
    verbosity: int = 2

    def argv(self) -> list[str]:
        argv = [
            sys.executable,
            "-m",
            "csi",
            f"--endpoint=unix:{self.socket}",
            f"--node-name={self.node}",
            f"--driver-name={self.driver_name}",
            "--run-controller-service=false",
            "--run-node-service=true",
            f"--infra-cluster-namespace={self.parent_namespace}",
            f"--tenant-cluster-kubeconfig={self.tenant_kubeconfig}",
            f"--by-id-root={self.by_id_root}",
            "--health-bind-address=0",
            "--metrics-bind-address=0",
            f"--v={self.verbosity}",
        ]
        # The plugin must not outlive us even when we are SIGKILLed (`down` escalates after 10 s).
        setpriv = shutil.which("setpriv")
        return [setpriv, "--pdeathsig", "TERM", "--", *argv] if setpriv else argv


@dataclass(frozen=True)
class RunningPlugin:
    address: str
    exited: asyncio.Future[int]  # done when the process ends, with its exit code


@contextlib.asynccontextmanager
async def plugin_process(command: PluginCommand, log_file: Path) -> AsyncIterator[RunningPlugin]:
    """Run the node plugin until the block exits; yields its gRPC address once it answers."""
    if len(str(command.socket)) > UNIX_PATH_MAX:
        raise PluginError(f"socket path {command.socket} is longer than a unix socket allows; use a shorter --dir")
    command.socket.parent.mkdir(parents=True, exist_ok=True)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as out:
        process = await asyncio.create_subprocess_exec(
            *command.argv(), stdout=out, stderr=asyncio.subprocess.STDOUT, stdin=asyncio.subprocess.DEVNULL
        )
    log.info("started CSI node plugin for %s (pid %d, log %s)", command.node, process.pid, log_file)
    running = RunningPlugin(f"unix://{command.socket}", asyncio.ensure_future(process.wait()))
    try:
        await _wait_serving(running, log_file)
        yield running
    finally:
        await _stop(process)
        running.exited.cancel()


async def _wait_serving(plugin: RunningPlugin, log_file: Path, timeout: float = 30.0) -> None:
    async with grpc.aio.insecure_channel(plugin.address) as channel:
        ready = asyncio.ensure_future(channel.channel_ready())
        done, _ = await asyncio.wait({ready, plugin.exited}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        if plugin.exited in done:
            raise PluginError(f"the CSI node plugin exited with {plugin.exited.result()}; see {log_file}")
        if ready not in done:
            raise PluginError(
                f"the CSI node plugin did not serve on {plugin.address} within {timeout:.0f}s; see {log_file}"
            )


async def _stop(process: asyncio.subprocess.Process, grace: float = 10.0) -> None:
    if process.returncode is not None:
        return
    process.terminate()
    try:
        await asyncio.wait_for(process.wait(), grace)
    except TimeoutError:
        process.kill()
        await process.wait()


def grpc_address(endpoint: str) -> str:
    """`unix:/path`, `unix:///path` or `tcp://host:port` as a gRPC target."""
    if endpoint.startswith("unix:"):
        return "unix://" + "/" + endpoint.removeprefix("unix:").lstrip("/")
    return endpoint.removeprefix("tcp://")


class NodePlugin:
    """kubelet's csiDriverClient: the node RPCs with kubelet's arguments and timeout."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._node = csi_pb2_grpc.NodeStub(channel)
        self._identity = csi_pb2_grpc.IdentityStub(channel)

    async def info(self) -> NodeInfo:
        info = await self._node.NodeGetInfo(csi_pb2.NodeGetInfoRequest(), timeout=CSI_TIMEOUT)
        capabilities = await self._node.NodeGetCapabilities(csi_pb2.NodeGetCapabilitiesRequest(), timeout=CSI_TIMEOUT)
        kinds = {c.rpc.type for c in capabilities.capabilities}
        return NodeInfo(
            node_id=info.node_id,
            max_volumes=info.max_volumes_per_node,
            topology=dict(info.accessible_topology.segments),
            stage_unstage=Capability.STAGE_UNSTAGE_VOLUME in kinds,
            expand=Capability.EXPAND_VOLUME in kinds,
            single_node_multi_writer=Capability.SINGLE_NODE_MULTI_WRITER in kinds,
        )

    async def driver_name(self) -> str:
        response = await self._identity.GetPluginInfo(csi_pb2.GetPluginInfoRequest(), timeout=CSI_TIMEOUT)
        return str(response.name)

    async def stage(self, request: Any) -> None:
        await self._node.NodeStageVolume(request, timeout=CSI_TIMEOUT)

    async def unstage(self, volume_id: str, staging: Path) -> None:
        request = csi_pb2.NodeUnstageVolumeRequest(volume_id=volume_id, staging_target_path=str(staging))
        await self._node.NodeUnstageVolume(request, timeout=CSI_TIMEOUT)

    async def publish(self, request: Any) -> None:
        await self._node.NodePublishVolume(request, timeout=CSI_TIMEOUT)

    async def unpublish(self, volume_id: str, target: Path) -> None:
        request = csi_pb2.NodeUnpublishVolumeRequest(volume_id=volume_id, target_path=str(target))
        await self._node.NodeUnpublishVolume(request, timeout=CSI_TIMEOUT)

    async def expand(self, request: Any) -> int:
        response = await self._node.NodeExpandVolume(request, timeout=CSI_TIMEOUT)
        return int(response.capacity_bytes)
