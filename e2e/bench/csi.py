"""CSI benchmark: CreateVolume and ControllerPublishVolume latency over N volumes.

The driver runs as its own process (`python -m csi`, controller service, TCP endpoint); the CDI and KubeVirt
simulators answer at once, so the figures are the driver's own overhead plus the real apiservers'.

    python -m e2e.bench.csi [--dir HARNESS_DIR] [--volumes 100] [--vms 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc

from csi._proto import csi_pb2, csi_pb2_grpc
from e2e.bench.common import harness_for, percentile
from e2e.cluster import Cluster, nodes
from e2e.cluster.components import csi_controller_command
from e2e.cluster.controlplane import free_port
from kube.resources import STORAGECLASSES

PARENT_CLASS = "bench-linstor"
Mode = csi_pb2.VolumeCapability.AccessMode
CAPABILITY = csi_pb2.VolumeCapability(
    mount=csi_pb2.VolumeCapability.MountVolume(fs_type="ext4"),
    access_mode=csi_pb2.VolumeCapability.AccessMode(mode=Mode.SINGLE_NODE_WRITER),
)


def _start_driver(cluster: Cluster, port: int) -> subprocess.Popen[bytes]:
    log = (cluster.dir / "bench-csi.log").open("ab")
    cmd = csi_controller_command(cluster, f"tcp://127.0.0.1:{port}")
    return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)


async def _ready(identity: Any) -> None:
    for _ in range(300):
        try:
            probe = await identity.Probe(csi_pb2.ProbeRequest())
            if probe.ready.value:
                return
        except grpc.aio.AioRpcError:
            pass
        await asyncio.sleep(0.1)
    raise TimeoutError("driver not ready")


async def measure(cluster: Cluster, volumes: int, vm_count: int, port: int) -> dict[str, Any]:
    vms = [f"bench-csi-vm-{i}" for i in range(vm_count)]
    async with nodes.clients(cluster) as c:
        await c.parent.apply(
            STORAGECLASSES,
            {"metadata": {"name": PARENT_CLASS}, "provisioner": "linstor.csi.linbit.com", "allowVolumeExpansion": True},
            force=True,
        )
        for vm in vms:
            await nodes.ensure_absent(c, vm)
            await nodes.add_node(c, vm, register=False)
    creates: list[float] = []
    publishes: list[float] = []
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        controller, identity = csi_pb2_grpc.ControllerStub(channel), csi_pb2_grpc.IdentityStub(channel)
        await _ready(identity)
        made: list[tuple[str, str]] = []
        for i in range(volumes):
            started = time.monotonic()
            volume = (
                await controller.CreateVolume(
                    csi_pb2.CreateVolumeRequest(
                        name=f"pvc-{uuid.uuid4()}",
                        capacity_range=csi_pb2.CapacityRange(required_bytes=1 << 30),
                        volume_capabilities=[CAPABILITY],
                        parameters={"infraStorageClassName": PARENT_CLASS},
                    )
                )
            ).volume
            creates.append(time.monotonic() - started)
            node = f"{cluster.parent_namespace}/{vms[i % vm_count]}"
            started = time.monotonic()
            await controller.ControllerPublishVolume(
                csi_pb2.ControllerPublishVolumeRequest(
                    volume_id=volume.volume_id, node_id=node, volume_capability=CAPABILITY
                )
            )
            publishes.append(time.monotonic() - started)
            made.append((volume.volume_id, node))
        for volume_id, node in made:
            await controller.ControllerUnpublishVolume(
                csi_pb2.ControllerUnpublishVolumeRequest(volume_id=volume_id, node_id=node)
            )
            await controller.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id=volume_id))
    async with nodes.clients(cluster) as c:
        for vm in vms:
            await nodes.remove_node(c, vm)
    return {
        "volumes": volumes,
        "create_p50_seconds": round(percentile(creates, 50), 4),
        "create_p99_seconds": round(percentile(creates, 99), 4),
        "publish_p50_seconds": round(percentile(publishes, 50), 4),
        "publish_p99_seconds": round(percentile(publishes, 99), 4),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m e2e.bench.csi", description=__doc__)
    parser.add_argument("--dir", type=Path, help="reuse a running harness")
    parser.add_argument("--volumes", type=int, default=100)
    parser.add_argument("--vms", type=int, default=4)
    args = parser.parse_args(argv)
    with harness_for(args.dir) as running:
        port = free_port()
        driver = _start_driver(running, port)
        try:
            results = asyncio.run(measure(running, args.volumes, args.vms, port))
        finally:
            driver.terminate()
            driver.wait(timeout=30)
    print(
        f"CreateVolume: p50 {results['create_p50_seconds']}s, p99 {results['create_p99_seconds']}s; "
        f"ControllerPublishVolume: p50 {results['publish_p50_seconds']}s, p99 {results['publish_p99_seconds']}s "
        f"over {args.volumes} volumes"
    )
    print(json.dumps({"benchmark": "csi", **results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
