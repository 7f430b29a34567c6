"""The LINSTOR simulator's REST face, driven through our client and its test controls, without Kubernetes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from csi.linstor.capacity import space_from_size_info
from csi.linstor.client import LinstorClient
from csi.linstor.errors import LinstorNotFound
from csi.linstor.health import health
from csi.linstor.models import AutoSelectFilter
from csi.linstor.settings import LinstorSettings
from e2e.sims._linstor_api import build_app
from e2e.sims._linstor_state import DRIVER, Linstor, class_placement

GIB_KIB = 1024 * 1024
P = f"{DRIVER}/"


def storage_class(name: str, **parameters: str) -> dict[str, Any]:
    return {"metadata": {"name": name}, "provisioner": DRIVER, "parameters": parameters}


def persistent_volume(handle: str, storage_class: str, size: str = "1Gi") -> dict[str, Any]:
    return {
        "metadata": {"name": handle},
        "spec": {
            "capacity": {"storage": size},
            "storageClassName": storage_class,
            "csi": {"driver": DRIVER, "volumeHandle": handle},
        },
    }


@dataclass
class Sim:
    state: Linstor
    url: str
    client: LinstorClient
    http: aiohttp.ClientSession

    async def control(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        async with self.http.request(method, self.url + path, json=body) as response:
            return response.status, await response.json()

    async def raw(self, path: str) -> Any:
        async with self.http.get(self.url + path) as response:
            return await response.json()


@pytest.fixture
async def sim() -> AsyncIterator[Sim]:
    state = Linstor()
    state.class_seen(storage_class("two", **{f"{P}placementCount": "2", f"{P}resourceGroup": "rg-two"}))
    state.class_seen(storage_class("three", placementCount="3", storagePool="data", resourceGroup="rg-three"))
    state.class_seen(storage_class("one"))
    runner = web.AppRunner(build_app(state), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    async with LinstorClient(LinstorSettings(urls=(url,))) as client, aiohttp.ClientSession() as http:
        yield Sim(state, url, client, http)
    await runner.cleanup()


@pytest.mark.parametrize(
    ("parameters", "group", "pool", "count"),
    [
        ({f"{P}resourceGroup": "rg", f"{P}storagePool": "data", f"{P}placementCount": "2"}, "rg", "data", 2),
        ({"resourceGroup": "rg", "autoPlace": "3"}, "rg", None, 3),
        ({"placementCount": "x"}, None, None, 1),
    ],
)
def test_class_placement(parameters: dict[str, str], group: str | None, pool: str | None, count: int) -> None:
    placement = class_placement({"parameters": parameters})
    assert (placement.storage_pool, placement.place_count) == (pool, count)
    assert placement.resource_group == group if group else placement.resource_group.startswith("sc-")


async def test_replicas_follow_the_placement_count(sim: Sim) -> None:
    for handle, cls in (("pvc-two", "two"), ("pvc-three", "three"), ("pvc-one", "one")):
        sim.state.volume_seen(persistent_volume(handle, cls), 0)
    found = await sim.client.resources(["pvc-two", "pvc-three", "pvc-one"])
    by_name: dict[str, list[tuple[bool, bool]]] = {}
    for r in found:
        by_name.setdefault(r.name, []).append((r.diskful, r.tie_breaker))
    assert sorted(by_name["pvc-two"]) == [(False, True), (True, False), (True, False)]
    assert by_name["pvc-three"] == [(True, False)] * 3
    assert by_name["pvc-one"] == [(True, False)]
    assert all(not health(name, found).abnormal for name in by_name)


async def test_rest_shape_of_a_resource(sim: Sim) -> None:
    sim.state.volume_seen(persistent_volume("pvc-two", "two"), 1700000000000)
    listed = await sim.raw("/v1/view/resources?resources=PVC-TWO")  # names are case-insensitive
    assert len(listed) == 3
    diskful = next(r for r in listed if not r["flags"])
    drbd = diskful["layer_object"]["drbd"]
    assert diskful["layer_object"]["type"] == "DRBD"
    assert diskful["layer_object"]["children"][0]["type"] == "STORAGE"
    assert set(drbd["connections"]) == {r["node_name"] for r in listed} - {diskful["node_name"]}
    assert drbd["may_promote"] is True and drbd["promotion_score"] > 10000
    assert diskful["volumes"][0]["state"] == {"disk_state": "UpToDate"}
    assert diskful["volumes"][0]["usable_size_kib"] == GIB_KIB
    assert diskful["state"] == {"in_use": False}
    witness = next(r for r in listed if r["flags"])
    assert witness["flags"] == ["DISKLESS", "DRBD_DISKLESS", "TIE_BREAKER"]
    assert witness["volumes"][0]["provider_kind"] == "DISKLESS"


async def test_test_controls_change_what_linstor_reports(sim: Sim) -> None:
    sim.state.volume_seen(persistent_volume("pvc-two", "two"), 0)
    nodes = [r.node_name for r in await sim.client.resources(["pvc-two"]) if r.diskful]
    status, _ = await sim.control("PUT", f"/sim/resources/pvc-two/nodes/{nodes[1]}", {"disk_state": "Outdated"})
    assert status == 200
    verdict = health("pvc-two", await sim.client.resources(["pvc-two"]))
    assert verdict == (True, f"replica on {nodes[1]}: volume 0 is Outdated")
    await sim.control("PUT", f"/sim/resources/pvc-two/nodes/{nodes[0]}", {"disk_state": "Outdated"})
    verdict = health("pvc-two", await sim.client.resources(["pvc-two"]))
    # With no good data anywhere DRBD refuses promotion everywhere too.
    assert (
        verdict.abnormal
        and "no UpToDate diskful replica" in verdict.message
        and "cannot be promoted" in verdict.message
    )
    for node in nodes:
        await sim.control("DELETE", f"/sim/resources/pvc-two/nodes/{node}")
    assert not health("pvc-two", await sim.client.resources(["pvc-two"])).abnormal


async def test_disconnect_shows_on_both_ends(sim: Sim) -> None:
    sim.state.volume_seen(persistent_volume("pvc-three", "three"), 0)
    node = (await sim.client.resources(["pvc-three"]))[0].node_name
    await sim.control("PUT", f"/sim/resources/pvc-three/nodes/{node}", {"connected": False})
    replicas = await sim.client.resources(["pvc-three"])
    verdict = health("pvc-three", replicas)
    assert verdict.abnormal and verdict.message.count("is down") == 2
    assert f"{node}: StandAlone" in verdict.message
    # The isolated node lost quorum; the other two still may promote.
    assert {r.node_name: r.drbd.may_promote for r in replicas if r.drbd}[node] is False


async def test_offline_satellite_has_no_state(sim: Sim) -> None:
    sim.state.volume_seen(persistent_volume("pvc-one", "one"), 0)
    node = (await sim.client.resources(["pvc-one"]))[0].node_name
    await sim.control("PUT", f"/sim/resources/pvc-one/nodes/{node}", {"online": False})
    verdict = health("pvc-one", await sim.client.resources(["pvc-one"]))
    assert verdict == (True, f"pvc-one has no UpToDate diskful replica ({node} unknown)")


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/sim/resources/pvc-one/nodes/sat-x", {"disk_state": "Outdated"}, 404),
        ("/sim/resources/pvc-nope/nodes/sat-a", {"disk_state": "Outdated"}, 404),
        ("/sim/resources/pvc-one/nodes/{node}", {"colour": "red"}, 400),
        ("/sim/resources/pvc-one/nodes/{node}", {"connected": "no"}, 400),
        ("/sim/storage-pools/data/nodes/sat-x", {"total_capacity": 1}, 404),
    ],
)
async def test_bad_controls_are_refused(sim: Sim, path: str, body: dict[str, Any], status: int) -> None:
    sim.state.volume_seen(persistent_volume("pvc-one", "one"), 0)
    node = (await sim.client.resources(["pvc-one"]))[0].node_name
    got, reply = await sim.control("PUT", path.format(node=node), body)
    assert got == status
    assert reply[0]["message"]


async def set_free(sim: Sim, pool: str, gib: dict[str, int]) -> None:
    for node, free in gib.items():
        status, _ = await sim.control(
            "PUT", f"/sim/storage-pools/{pool}/nodes/{node}", {"free_capacity": free * GIB_KIB}
        )
        assert status == 200


@pytest.mark.parametrize(("count", "available", "largest"), [(1, 60, 30), (2, 30, 20), (3, 10, 10)])
async def test_size_info_spreads_over_replicas(sim: Sim, count: int, available: int, largest: int) -> None:
    await set_free(sim, "data", {"sat-a": 10, "sat-b": 20, "sat-c": 30})
    answer = await sim.client.size_info("rg-three", AutoSelectFilter(place_count=count))
    assert answer.space_info is not None
    space = space_from_size_info(answer.space_info)
    assert space is not None
    assert (space.available, space.maximum_volume) == (available * 2**30, largest * 2**30)


async def test_size_info_when_a_pool_is_full(sim: Sim) -> None:
    await set_free(sim, "data", {"sat-a": 0, "sat-b": 20, "sat-c": 30})
    answer = await sim.client.size_info("rg-three")  # the group's own count: 3
    assert answer.space_info is not None
    assert (answer.space_info.max_vlm_size_in_kib, answer.space_info.available_size_in_kib) == (0, 0)
    assert answer.reports and answer.reports[0].message


async def test_unknown_resource_group(sim: Sim) -> None:
    with pytest.raises(LinstorNotFound, match="rg-none"):
        await sim.client.size_info("rg-none")


async def test_storage_pools_and_allocation(sim: Sim) -> None:
    before = {(p.node_name, p.storage_pool_name): p for p in await sim.client.storage_pools()}
    assert before[("sat-a", "DfltDisklessStorPool")].diskless
    assert before[("sat-a", "data")].free_capacity == 100 * GIB_KIB
    sim.state.volume_seen(persistent_volume("pvc-big", "three", size="10Gi"), 0)
    after = {p.node_name: p.free_capacity for p in await sim.client.storage_pools(["data"])}
    assert after == dict.fromkeys(("sat-a", "sat-b", "sat-c"), 90 * GIB_KIB)
    sim.state.volume_gone(persistent_volume("pvc-big", "three"))
    assert await sim.client.resources(["pvc-big"]) == []
