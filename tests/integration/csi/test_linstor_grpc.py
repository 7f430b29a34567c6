"""LINSTOR through the driver's gRPC API: GetCapacity follows the pools, volume conditions follow DRBD."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import grpc
import pytest

from csi._proto import csi_pb2, csi_pb2_grpc
from csi.linstor.settings import LinstorSettings
from csi.parent import DATAVOLUMES
from e2e import cluster as harness
from kube.client import Client
from kube.resources import PERSISTENTVOLUMECLAIMS, PERSISTENTVOLUMES
from tests.integration.csi.conftest import PARENT_CLASS, driver_config, running_driver

SATELLITES = ("sat-a", "sat-b", "sat-c")
POOL = "data"  # the storagePool parameter of the harness's parent class
DEFAULT_POOL_KIB = 100 * 1024 * 1024
Mode = csi_pb2.VolumeCapability.AccessMode


class Linstor:
    def __init__(self, url: str) -> None:
        self.url = url

    async def control(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        async with aiohttp.ClientSession() as http, http.request(method, self.url + path, json=body) as response:
            assert response.status == 200, await response.text()
            return await response.json()


@pytest.fixture(scope="module")
async def linstor(cluster: harness.Cluster) -> Linstor:
    return Linstor((cluster.dir / "run" / "linstor.url").read_text().strip())


@pytest.fixture(scope="module")
async def controller(cluster: harness.Cluster, parent_storage: str, linstor: Linstor) -> AsyncIterator[Any]:
    settings = LinstorSettings.model_validate({"urls": [linstor.url], "health_ttl": 0, "capacity_ttl": 0})
    async with (
        running_driver(cluster, driver_config(cluster), linstor=settings) as driver,
        grpc.aio.insecure_channel(f"127.0.0.1:{driver.port}") as channel,
    ):
        yield csi_pb2_grpc.ControllerStub(channel)


async def capacity(controller: Any) -> int:
    answer = await controller.GetCapacity(
        csi_pb2.GetCapacityRequest(parameters={"infraStorageClassName": PARENT_CLASS})
    )
    return int(answer.available_capacity)


async def test_capacity_is_advertised_and_follows_the_pools(controller: Any, linstor: Linstor) -> None:
    kinds = (await controller.ControllerGetCapabilities(csi_pb2.ControllerGetCapabilitiesRequest())).capabilities
    assert csi_pb2.ControllerServiceCapability.RPC.GET_CAPACITY in {c.rpc.type for c in kinds}
    before = await capacity(controller)
    assert before > 0
    try:
        for node in SATELLITES:
            await linstor.control(
                "PUT",
                f"/sim/storage-pools/{POOL}/nodes/{node}",
                {"total_capacity": DEFAULT_POOL_KIB, "free_capacity": 1024 * 1024},
            )
        filled = await capacity(controller)
        # Two replicas (placementCount 2) of at most 1 GiB free per node.
        assert 0 < filled <= 2 * (1 << 30) < before
    finally:
        for node in SATELLITES:
            await linstor.control(
                "PUT",
                f"/sim/storage-pools/{POOL}/nodes/{node}",
                {"total_capacity": DEFAULT_POOL_KIB, "free_capacity": None},
            )
    assert await capacity(controller) == before


async def _condition(controller: Any, volume_id: str) -> Any:
    answer = await controller.ControllerGetVolume(csi_pb2.ControllerGetVolumeRequest(volume_id=volume_id))
    return answer.status.volume_condition


async def test_volume_condition_follows_drbd(
    controller: Any, linstor: Linstor, parent_client: Client, cluster: harness.Cluster
) -> None:
    capability = csi_pb2.VolumeCapability(
        mount=csi_pb2.VolumeCapability.MountVolume(fs_type="ext4"),
        access_mode=csi_pb2.VolumeCapability.AccessMode(mode=Mode.SINGLE_NODE_WRITER),
    )
    volume = (
        await controller.CreateVolume(
            csi_pb2.CreateVolumeRequest(
                name=f"pvc-{uuid.uuid4()}",
                capacity_range=csi_pb2.CapacityRange(required_bytes=1 << 30),
                volume_capabilities=[capability],
                parameters={"infraStorageClassName": PARENT_CLASS},
            )
        )
    ).volume
    try:
        dv = await parent_client.get(DATAVOLUMES, volume.volume_id, cluster.parent_namespace)
        claim = await parent_client.get(PERSISTENTVOLUMECLAIMS, dv["metadata"]["name"], cluster.parent_namespace)
        definition = (await parent_client.get(PERSISTENTVOLUMES, claim["spec"]["volumeName"]))["spec"]["csi"][
            "volumeHandle"
        ]
        healthy = await _condition(controller, volume.volume_id)
        assert not healthy.abnormal, healthy.message
        replicas = await linstor.control("GET", f"/v1/view/resources?resources={definition}")
        diskful = sorted(r["node_name"] for r in replicas if "DISKLESS" not in r["flags"])
        await linstor.control("PUT", f"/sim/resources/{definition}/nodes/{diskful[0]}", {"disk_state": "Outdated"})
        degraded = await _condition(controller, volume.volume_id)
        assert degraded.abnormal
        assert diskful[0] in degraded.message and "Outdated" in degraded.message
        await linstor.control("DELETE", f"/sim/resources/{definition}/nodes/{diskful[0]}")
        for _ in range(50):
            repaired = await _condition(controller, volume.volume_id)
            if not repaired.abnormal:
                break
            await asyncio.sleep(0.1)
        assert not repaired.abnormal, repaired.message
    finally:
        await controller.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id=volume.volume_id))
