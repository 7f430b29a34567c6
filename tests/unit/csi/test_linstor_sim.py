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
from csi.linstor.migration import ALLOW_TWO_PRIMARIES, TwoPrimaries, two_primaries_of
from csi.linstor.models import AutoSelectFilter
from csi.linstor.settings import LinstorSettings
from e2e.sims._linstor_api import build_app
from e2e.sims._linstor_state import DRIVER, Linstor, class_placement
from e2e.sims._linstor_writes import ParentUsers

GIB_KIB = 1024 * 1024
P = f"{DRIVER}/"


def storage_class(name: str, **parameters: str) -> dict[str, Any]:
    return {"metadata": {"name": name}, "provisioner": DRIVER, "parameters": parameters}


def persistent_volume(handle: str, storage_class: str, size: str = "1Gi", **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": handle},
        "spec": {
            "capacity": {"storage": size},
            "storageClassName": storage_class,
            "csi": {"driver": DRIVER, "volumeHandle": handle},
            **spec,
        },
    }


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Sim:
    state: Linstor
    url: str
    client: LinstorClient
    http: aiohttp.ClientSession
    clock: Clock

    async def control(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        async with self.http.request(method, self.url + path, json=body) as response:
            return response.status, await response.json()

    async def raw(self, path: str) -> Any:
        async with self.http.get(self.url + path) as response:
            return await response.json()


@pytest.fixture
async def sim() -> AsyncIterator[Sim]:
    clock = Clock()
    state = Linstor(clock=clock, resync_seconds=10)
    state.class_seen(storage_class("two", **{f"{P}placementCount": "2", f"{P}resourceGroup": "rg-two"}))
    state.class_seen(storage_class("three", placementCount="3", storagePool="data", resourceGroup="rg-three"))
    state.class_seen(storage_class("one"))
    runner = web.AppRunner(build_app(state), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    async with LinstorClient(LinstorSettings(urls=(url,))) as client, aiohttp.ClientSession() as http:
        yield Sim(state, url, client, http, clock)
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


async def test_parent_nodes_are_diskless_satellites_until_given_a_pool(sim: Sim) -> None:
    sim.state.node_seen({"metadata": {"name": "parent-a-1"}})
    sim.state.node_seen({"metadata": {"name": "parent-a-1"}})  # seen again: still one satellite
    pools = [(p.storage_pool_name, p.diskless) for p in await sim.client.storage_pools(nodes=["parent-a-1"])]
    assert pools == [("DfltDisklessStorPool", True)]
    status, _ = await sim.control("PUT", "/sim/storage-pools/data/nodes/parent-a-1", {"total_capacity": 10 * GIB_KIB})
    assert status == 200
    assert {p.storage_pool_name for p in await sim.client.storage_pools(nodes=["parent-a-1"])} == {
        "DfltDisklessStorPool",
        "data",
    }
    status, _ = await sim.control("DELETE", "/sim/storage-pools/data/nodes/parent-a-1")
    assert status == 200
    assert len(await sim.client.storage_pools(nodes=["parent-a-1"])) == 1
    # New volumes are still autoplaced on the storage satellites only.
    sim.state.volume_seen(persistent_volume("pvc-three", "three"), 0)
    assert {r.node_name for r in await sim.client.resources(["pvc-three"])} == {"sat-a", "sat-b", "sat-c"}


async def test_make_available_adds_a_diskful_replica_that_resyncs(sim: Sim) -> None:
    sim.state.node_seen({"metadata": {"name": "parent-a-1"}})
    await sim.control("PUT", "/sim/storage-pools/data/nodes/parent-a-1", {"total_capacity": 10 * GIB_KIB})
    sim.state.volume_seen(persistent_volume("pvc-three", "three"), 0)
    assert await sim.client.make_available("pvc-three", "parent-a-1", diskful=True)
    sim.clock.now += 4
    found = {r.node_name: r for r in await sim.client.resources(["pvc-three"])}
    local = found["parent-a-1"]
    assert local.diskful and local.disk_states() == [(0, "Inconsistent")]
    assert local.resync_progress == pytest.approx(40.0)
    assert local.volumes[0].storage_pool_name == "data"
    verdict = health("pvc-three", list(found.values()))
    assert verdict == (False, "3 UpToDate diskful replicas on sat-a, sat-b, sat-c; resyncing on parent-a-1 (40%)")
    sim.clock.now += 6
    found = {r.node_name: r for r in await sim.client.resources(["pvc-three"])}
    assert found["parent-a-1"].disk_states() == [(0, "UpToDate")] and found["parent-a-1"].resync_progress is None
    assert health("pvc-three", list(found.values())).message.startswith("4 UpToDate diskful replicas")
    # The replica takes its space from the node's pool.
    free = {p.node_name: p.free_capacity for p in await sim.client.storage_pools(["data"])}
    assert free["parent-a-1"] == 9 * GIB_KIB


async def test_make_available_gives_a_diskless_resource_a_disk(sim: Sim) -> None:
    sim.state.volume_seen(persistent_volume("pvc-two", "two"), 0)
    witness = next(r for r in await sim.client.resources(["pvc-two"]) if r.tie_breaker)
    await sim.client.make_available("pvc-two", witness.node_name, diskful=True)
    after = next(r for r in await sim.client.resources(["pvc-two"]) if r.node_name == witness.node_name)
    assert after.diskful and not after.tie_breaker
    assert after.drbd is not None and witness.drbd is not None and after.drbd.node_id == witness.drbd.node_id
    assert len(await sim.client.resources(["pvc-two"])) == 3  # toggled, not added


async def test_make_available_already_deployed_changes_nothing(sim: Sim) -> None:
    sim.state.volume_seen(persistent_volume("pvc-two", "two"), 0)
    before = await sim.raw("/v1/view/resources?resources=pvc-two")
    node = next(r["node_name"] for r in before if not r["flags"])
    status, reply = await sim.control(
        "POST", f"/v1/resource-definitions/pvc-two/resources/{node}/make-available", {"diskful": True}
    )
    assert (status, reply[0]["message"]) == (200, "Resource already deployed as requested")
    assert await sim.raw("/v1/view/resources?resources=pvc-two") == before
    calls = await sim.raw("/sim/calls")
    path = f"/v1/resource-definitions/pvc-two/resources/{node}/make-available"
    assert {"method": "POST", "path": path, "query": ""} in calls


@pytest.mark.parametrize(
    ("node", "definition", "message"),
    [
        ("parent-a-1", "pvc-three", "Autoplacer could not find diskful stor pool on node parent-a-1"),
        ("parent-zz", "pvc-three", "Node 'parent-zz' not found."),
        ("parent-a-1", "pvc-none", "resource definition pvc-none not found"),
    ],
)
async def test_make_available_refusals_are_404(sim: Sim, node: str, definition: str, message: str) -> None:
    sim.state.node_seen({"metadata": {"name": "parent-a-1"}})  # diskless only: no pool for a replica
    sim.state.volume_seen(persistent_volume("pvc-three", "three"), 0)
    with pytest.raises(LinstorNotFound) as refused:
        await sim.client.make_available(definition, node, diskful=True)
    assert message in str(refused.value)
    assert len(await sim.client.resources(["pvc-three"])) == 3


async def test_a_diskless_make_available_needs_a_diskful_peer(sim: Sim) -> None:
    sim.state.node_seen({"metadata": {"name": "parent-a-1"}})
    sim.state.volume_seen(persistent_volume("pvc-one", "one"), 0)
    await sim.client.make_available("pvc-one", "parent-a-1", diskful=False)
    client_side = next(r for r in await sim.client.resources(["pvc-one"]) if r.node_name == "parent-a-1")
    assert not client_side.diskful and client_side.flags == ("DISKLESS", "DRBD_DISKLESS")


async def test_class_properties_land_on_the_definition_and_groups_are_listed(sim: Sim) -> None:
    prop = f"property.{DRIVER}/{ALLOW_TWO_PRIMARIES}"
    sim.state.class_seen(storage_class("migratable", **{prop: "yes", "resourceGroup": "rg-vm"}))
    sim.state.volume_seen(persistent_volume("pvc-vm", "migratable"), 0)
    sim.state.volume_seen(persistent_volume("pvc-two", "two"), 0)
    definitions = {d.name: d for d in await sim.client.resource_definitions(["pvc-vm", "pvc-two"])}
    assert definitions["pvc-vm"].props == {ALLOW_TWO_PRIMARIES: "yes"}
    assert definitions["pvc-two"].resource_group_name == "rg-two"
    assert [g.name for g in await sim.client.resource_groups(["rg-two"])] == ["rg-two"]
    assert await two_primaries_of(sim.client, "pvc-vm") == TwoPrimaries("yes", "resource definition pvc-vm")
    unset = TwoPrimaries(None, "resource definition pvc-two and resource group rg-two")
    assert await two_primaries_of(sim.client, "pvc-two") == unset
    status, props = await sim.control("PUT", "/sim/resource-definitions/pvc-vm/props", {ALLOW_TWO_PRIMARIES: "no"})
    assert (status, props) == (200, {ALLOW_TWO_PRIMARIES: "no"})
    assert not (await two_primaries_of(sim.client, "pvc-vm")).allowed
    status, _ = await sim.control("PUT", "/sim/resource-definitions/pvc-vm/props", {ALLOW_TWO_PRIMARIES: 1})
    assert status == 400


def vmi(name: str, node: str, claim: str, target: str | None = None, done: bool = False) -> dict[str, Any]:
    status: dict[str, Any] = {"nodeName": node}
    if target:
        status["migrationState"] = {"sourceNode": node, "targetNode": target, "completed": done}
    volume = {"name": claim, "dataVolume": {"name": claim, "hotpluggable": True}}
    return {"metadata": {"name": name, "namespace": "ns"}, "spec": {"volumes": [volume]}, "status": status}


async def test_linstor_csi_allows_two_primaries_while_a_second_node_uses_an_rwx_block_volume(sim: Sim) -> None:
    users = ParentUsers(sim.state)
    rwx: dict[str, Any] = {
        "accessModes": ["ReadWriteMany"],
        "volumeMode": "Block",
        "claimRef": {"namespace": "ns", "name": "disk"},
    }
    sim.state.volume_seen(persistent_volume("pvc-rwx", "two", **rwx), 0)
    rwo: dict[str, Any] = {
        "accessModes": ["ReadWriteOnce"],
        "volumeMode": "Block",
        "claimRef": {"namespace": "ns", "name": "other"},
    }
    sim.state.volume_seen(persistent_volume("pvc-rwo", "two", **rwo), 0)

    async def props(name: str) -> dict[str, str]:
        return (await sim.client.resource_definitions([name]))[0].props

    users.vmi_seen(vmi("vm-a", "n1", "disk"))
    users.vmi_seen(vmi("vm-b", "n1", "other", target="n2"))
    assert await props("pvc-rwx") == {} and await props("pvc-rwo") == {}  # one node; RWO is never shared
    users.vmi_seen(vmi("vm-a", "n1", "disk", target="n2"))
    assert await props("pvc-rwx") == {ALLOW_TWO_PRIMARIES: "yes"}
    # linstor-csi acts on publish and unpublish only: a change in between stays.
    await sim.control("PUT", "/sim/resource-definitions/pvc-rwx/props", {ALLOW_TWO_PRIMARIES: None})
    users.vmi_seen(vmi("vm-a", "n1", "disk", target="n2"))
    assert await props("pvc-rwx") == {}
    await sim.control("PUT", "/sim/resource-definitions/pvc-rwx/props", {ALLOW_TWO_PRIMARIES: "yes"})
    users.vmi_seen(vmi("vm-a", "n2", "disk", target="n2", done=True))
    assert await props("pvc-rwx") == {}
