"""LINSTOR through the driver's gRPC API: GetCapacity follows the pools, volume conditions follow DRBD, and every
RPC works the same without LINSTOR or while it is down."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable
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
from tests.integration.csi.test_linstor import eventually

SATELLITES = ("sat-a", "sat-b", "sat-c")
POOL = "data"  # the storagePool parameter of the harness's parent class
DEFAULT_POOL_KIB = 100 * 1024 * 1024
Mode = csi_pb2.VolumeCapability.AccessMode
RWO_MOUNT = csi_pb2.VolumeCapability(
    mount=csi_pb2.VolumeCapability.MountVolume(fs_type="ext4"),
    access_mode=csi_pb2.VolumeCapability.AccessMode(mode=Mode.SINGLE_NODE_WRITER),
)
GET_CAPACITY = csi_pb2.ControllerServiceCapability.RPC.GET_CAPACITY


class Linstor:
    def __init__(self, url: str) -> None:
        self.url = url

    async def control(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        async with aiohttp.ClientSession() as http, http.request(method, self.url + path, json=body) as response:
            assert response.status == 200, await response.text()
            return await response.json()

    async def replicas(self, definition: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = await self.control("GET", f"/v1/view/resources?resources={definition}")
        return found

    async def diskful_nodes(self, definition: str) -> list[str]:
        return sorted(r["node_name"] for r in await self.replicas(definition) if "DISKLESS" not in r["flags"])

    async def calls(self, method: str = "", contains: str = "") -> list[dict[str, str]]:
        """The /v1 requests the simulator saw, optionally only those of `method` whose path has `contains`."""
        seen: list[dict[str, str]] = await self.control("GET", "/sim/calls")
        return [c for c in seen if (not method or c["method"] == method) and contains in c["path"]]


async def definition_of(parent_client: Client, namespace: str, volume_id: str) -> str:
    """The LINSTOR resource definition behind a tenant volume: DataVolume -> claim -> PV volume handle."""
    dv = await parent_client.get(DATAVOLUMES, volume_id, namespace)
    claim = await parent_client.get(PERSISTENTVOLUMECLAIMS, dv["metadata"]["name"], namespace)
    volume = await parent_client.get(PERSISTENTVOLUMES, claim["spec"]["volumeName"])
    return str(volume["spec"]["csi"]["volumeHandle"])


async def create_volume(controller: Any, name: str | None = None) -> Any:
    request = csi_pb2.CreateVolumeRequest(
        name=name or f"pvc-{uuid.uuid4()}",
        capacity_range=csi_pb2.CapacityRange(required_bytes=1 << 30),
        volume_capabilities=[RWO_MOUNT],
        parameters={"infraStorageClassName": PARENT_CLASS},
    )
    return (await controller.CreateVolume(request)).volume


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


async def unpublish(controller: Any, volume_id: str, node_id: str) -> None:
    request = csi_pb2.ControllerUnpublishVolumeRequest(volume_id=volume_id, node_id=node_id)
    await controller.ControllerUnpublishVolume(request)


async def discard(controller: Any, volume_id: str, node_id: str) -> None:
    """Teardown that works after a failure too: detach (a no-op when detached), then delete."""
    with contextlib.suppress(grpc.aio.AioRpcError):
        await unpublish(controller, volume_id, node_id)
    await controller.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id=volume_id))


async def conditions(controller: Any, volume_id: str) -> list[Any]:
    """The volume's condition as ControllerGetVolume and as ListVolumes report it."""
    got = await controller.ControllerGetVolume(csi_pb2.ControllerGetVolumeRequest(volume_id=volume_id))
    listed = await controller.ListVolumes(csi_pb2.ListVolumesRequest())
    entry = next(e for e in listed.entries if e.volume.volume_id == volume_id)
    return [got.status.volume_condition, entry.status.volume_condition]


@pytest.fixture(scope="module")
async def watched(controller: Any, parent_client: Client, cluster: harness.Cluster) -> AsyncIterator[tuple[str, str]]:
    """A two-replica volume (and its tie-breaker): (volume ID, resource definition)."""
    volume = await create_volume(controller)
    try:
        yield volume.volume_id, await definition_of(parent_client, cluster.parent_namespace, volume.volume_id)
    finally:
        await controller.DeleteVolume(csi_pb2.DeleteVolumeRequest(volume_id=volume.volume_id))


def link(x: str, y: str, said: dict[str, str]) -> str:
    p, q = sorted((x, y))
    return f"DRBD connection {p} <-> {q} is down ({p}: {said[p]}, {q}: {said[q]})"


# (what breaks, overrides by role -- a, b the diskful replicas in name order, c the tie-breaker -- and the message
# fragments, the first one leading)
DEGRADATIONS: list[tuple[str, dict[str, dict[str, Any]], Callable[[str, str, str, str], list[str]]]] = [
    (
        "a replica's disk is not UpToDate",
        {"a": {"disk_state": "Outdated"}},
        lambda rd, a, b, c: [f"replica on {a}: volume 0 is Outdated"],
    ),
    (
        "no UpToDate diskful replica",
        {"a": {"disk_state": "Outdated"}, "b": {"disk_state": "Inconsistent"}},
        lambda rd, a, b, c: [
            f"{rd} has no UpToDate diskful replica ({a} Outdated, {b} Inconsistent)",
            f"DRBD reports {rd} cannot be promoted on any node",
        ],
    ),
    (
        "diskless replicas only",
        {"a": {"diskless": True}, "b": {"diskless": True}},
        lambda rd, a, b, c: [f"{rd} has no diskful replica (diskless on {', '.join(sorted((a, b, c)))})"],
    ),
    (
        "broken connection",
        {"a": {"connected": False}},
        lambda rd, a, b, c: sorted(
            [
                link(a, b, {a: "StandAlone", b: "Connecting"}),
                link(a, c, {a: "StandAlone", c: "Connecting"}),
            ]
        ),
    ),
    (
        "DRBD cannot promote anywhere",
        {role: {"may_promote": False, "promotion_score": 0} for role in "abc"},
        lambda rd, a, b, c: [
            f"DRBD reports {rd} cannot be promoted on any node"
            f" (promotion scores: {', '.join(f'{node} 0' for node in sorted((a, b, c)))})"
        ],
    ),
]


@pytest.mark.parametrize(("overrides", "expected"), [d[1:] for d in DEGRADATIONS], ids=[d[0] for d in DEGRADATIONS])
async def test_each_degradation_has_its_condition_and_repair_clears_it(
    controller: Any,
    linstor: Linstor,
    watched: tuple[str, str],
    overrides: dict[str, dict[str, Any]],
    expected: Callable[[str, str, str, str], list[str]],
) -> None:
    volume_id, definition = watched
    a, b = await linstor.diskful_nodes(definition)
    c = next(r["node_name"] for r in await linstor.replicas(definition) if "TIE_BREAKER" in r["flags"])
    roles = {"a": a, "b": b, "c": c}
    for condition in await conditions(controller, volume_id):
        assert not condition.abnormal and condition.message.startswith(f"2 UpToDate diskful replicas on {a}, {b}")
    try:
        for role, change in overrides.items():
            await linstor.control("PUT", f"/sim/resources/{definition}/nodes/{roles[role]}", change)
        fragments = expected(definition, a, b, c)
        for condition in await conditions(controller, volume_id):
            assert condition.abnormal, condition.message
            assert condition.message.startswith(fragments[0]), condition.message
            assert all(f in condition.message for f in fragments), (fragments, condition.message)
    finally:
        for role in overrides:
            await linstor.control("DELETE", f"/sim/resources/{definition}/nodes/{roles[role]}")
    repaired = await eventually(
        lambda: conditions(controller, volume_id), lambda found: not any(c.abnormal for c in found)
    )
    assert all(c.message.startswith(f"2 UpToDate diskful replicas on {a}, {b}") for c in repaired)


@pytest.mark.parametrize("linstor_state", ["not configured", "down"])
async def test_every_rpc_works_without_linstor(
    cluster: harness.Cluster, parent_storage: str, vms: list[str], linstor_state: str
) -> None:
    down = LinstorSettings(urls=("http://127.0.0.1:1",), timeout=0.5, health_ttl=0, capacity_ttl=0)
    settings = down if linstor_state == "down" else None
    async with (
        running_driver(cluster, driver_config(cluster), linstor=settings) as driver,
        grpc.aio.insecure_channel(f"127.0.0.1:{driver.port}") as channel,
    ):
        controller = csi_pb2_grpc.ControllerStub(channel)
        kinds = (await controller.ControllerGetCapabilities(csi_pb2.ControllerGetCapabilitiesRequest())).capabilities
        assert (GET_CAPACITY in {c.rpc.type for c in kinds}) is (settings is not None)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await capacity(controller)
        assert refused.value.code() == (grpc.StatusCode.UNAVAILABLE if settings else grpc.StatusCode.UNIMPLEMENTED)
        volume = await create_volume(controller)
        node_id = f"{cluster.parent_namespace}/{vms[0]}"
        try:
            for condition in await conditions(controller, volume.volume_id):
                # Nothing known of DRBD: the driver's own view of the parent volume, not a verdict.
                assert (condition.abnormal, condition.message) == (False, "parent volume phase Succeeded")
            started = time.monotonic()
            await controller.ControllerPublishVolume(
                csi_pb2.ControllerPublishVolumeRequest(
                    volume_id=volume.volume_id, node_id=node_id, volume_capability=RWO_MOUNT
                )
            )
            assert time.monotonic() - started < driver_config(cluster).attach_timeout
            got = await controller.ControllerGetVolume(csi_pb2.ControllerGetVolumeRequest(volume_id=volume.volume_id))
            assert list(got.status.published_node_ids) == [node_id]
            await unpublish(controller, volume.volume_id, node_id)
        finally:
            await discard(controller, volume.volume_id, node_id)
        if driver.linstor is not None:
            await driver.linstor.settle()  # locality tried in the background and gave up quietly
            assert driver.linstor.outage.down is (settings is not None)
