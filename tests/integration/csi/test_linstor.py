"""LinstorView on the real parent API and the LINSTOR simulator the harness runs: DataVolume -> claim -> PV ->
resource definition -> DRBD health; storage class -> capacity; tenant Events; degradation when LINSTOR is away."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
import pytest

from csi.linstor.events import ABNORMAL_REASON, HEALTHY_REASON, TenantVolumeEvents
from csi.linstor.health import Health
from csi.linstor.settings import LinstorSettings
from csi.linstor.view import LinstorView
from csi.parent import DATAVOLUMES
from e2e import cluster as harness
from kube.client import Client, Object
from kube.errors import NotFound
from kube.resources import (
    EVENTS,
    NAMESPACES,
    PERSISTENTVOLUMECLAIMS,
    PERSISTENTVOLUMES,
    STORAGECLASSES,
    Resource,
)

T = TypeVar("T")
DRIVER = "linstor.csi.linbit.com"
TENANT_DRIVER = "csi.tenant-cloud.io"
GIB = 2**30
GIB_KIB = 2**20
TIMEOUT = 30.0  # generous: the machine is shared


async def eventually(probe: Callable[[], Awaitable[T]], check: Callable[[T], object], timeout: float = TIMEOUT) -> T:
    """Poll `probe` until its result passes `check` (the simulators watch; only the test polls)."""
    async with asyncio.timeout(timeout):
        while True:
            result = await probe()
            if check(result):
                return result
            await asyncio.sleep(0.05)


async def tenant_claim(tenant: Client, namespace: str, claim: str, volume_id: str) -> None:
    """The tenant PVC and PV of a volume ID, as the provisioner would have bound them (Events land on the PVC)."""
    created = await tenant.create(
        PERSISTENTVOLUMECLAIMS,
        {
            "metadata": {"name": claim},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "16Mi"}},
                "storageClassName": "",
                "volumeName": f"tenant-{volume_id}",
            },
        },
        namespace,
    )
    await tenant.create(
        PERSISTENTVOLUMES,
        {
            "metadata": {"name": f"tenant-{volume_id}"},
            "spec": {
                "capacity": {"storage": "16Mi"},
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": "",
                "claimRef": {"namespace": namespace, "name": claim, "uid": created["metadata"]["uid"]},
                "csi": {"driver": TENANT_DRIVER, "volumeHandle": volume_id},
            },
        },
    )


async def drop_tenant_claims(tenant: Client, namespace: str, volume_ids: list[str]) -> None:
    """Delete what tenant_claim made, and the namespace."""
    # No PV or namespace controllers on the tenant: drop the protection finalizers, then delete.
    targets: list[tuple[Resource, str, str | None]] = [(PERSISTENTVOLUMES, f"tenant-{v}", None) for v in volume_ids]
    targets += [
        (PERSISTENTVOLUMECLAIMS, c["metadata"]["name"], namespace)
        for c in (await tenant.list_all(PERSISTENTVOLUMECLAIMS, namespace)).items
    ]
    for resource, name, ns in targets:
        with contextlib.suppress(NotFound):
            await tenant.patch(resource, name, {"metadata": {"finalizers": None}}, ns)
            await tenant.delete(resource, name, ns)
    with contextlib.suppress(NotFound):
        await tenant.delete(NAMESPACES, namespace)


@dataclass
class Parent:
    """This module's namespace, LINSTOR classes and simulator controls on the parent."""

    api: Client
    namespace: str
    url: str
    pool: str
    classes: dict[str, str] = field(default_factory=dict)

    def settings(self, **extra: Any) -> LinstorSettings:
        return LinstorSettings.model_validate({"urls": [self.url], "health_ttl": 0, "capacity_ttl": 0} | extra)

    async def control(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        async with aiohttp.ClientSession() as http, http.request(method, self.url + path, json=body) as response:
            assert response.status == 200, await response.text()
            return await response.json()

    async def volume(self, name: str, storage_class: str, size: str = "16Mi") -> str:
        """A blank DataVolume; returns the LINSTOR resource definition of its bound PV."""
        body = {
            "metadata": {"name": name},
            "spec": {
                "source": {"blank": {}},
                "storage": {"resources": {"requests": {"storage": size}}, "storageClassName": storage_class},
            },
        }
        await self.api.create(DATAVOLUMES, body, self.namespace)
        claim = await eventually(lambda: self._get(PERSISTENTVOLUMECLAIMS, name), lambda c: _phase(c) == "Bound")
        assert claim is not None
        volume = await self.api.get(PERSISTENTVOLUMES, claim["spec"]["volumeName"])
        assert volume["spec"]["csi"]["driver"] == DRIVER
        return str(volume["spec"]["csi"]["volumeHandle"])

    async def diskful_nodes(self, definition: str) -> list[str]:
        listed = await self.control("GET", f"/v1/view/resources?resources={definition}")
        return sorted(r["node_name"] for r in listed if "DISKLESS" not in r["flags"])

    async def _get(self, resource: Any, name: str) -> Object | None:
        try:
            found: Object = await self.api.get(resource, name, self.namespace)
        except NotFound:
            return None
        return found

    async def close(self) -> None:
        # No namespace controller on the parent: empty the namespace ourselves.
        for resource in (DATAVOLUMES, PERSISTENTVOLUMECLAIMS):
            for item in (await self.api.list_all(resource, self.namespace)).items:
                with contextlib.suppress(NotFound):
                    await self.api.delete(resource, item["metadata"]["name"], self.namespace)
        await eventually(lambda: self.api.list_all(PERSISTENTVOLUMECLAIMS, self.namespace), lambda c: not c.items)
        for name in self.classes.values():
            with contextlib.suppress(NotFound):
                await self.api.delete(STORAGECLASSES, name)
        with contextlib.suppress(NotFound):
            await self.api.delete(NAMESPACES, self.namespace)


def _phase(obj: Object | None) -> str | None:
    return None if obj is None else (obj.get("status") or {}).get("phase")


def linstor_url(cluster: harness.Cluster) -> str:
    return (cluster.dir / "run" / "linstor.url").read_text().strip()


@pytest.fixture(scope="module")
async def parent(cluster: harness.Cluster, parent_client: Client) -> AsyncIterator[Parent]:
    suffix = uuid.uuid4().hex[:8]
    lab = Parent(parent_client, f"linstor-{suffix}", linstor_url(cluster), f"pool-{suffix}")
    await parent_client.create(NAMESPACES, {"metadata": {"name": lab.namespace}})
    p = f"{DRIVER}/"
    wanted = {
        "two": {f"{p}placementCount": "2", f"{p}resourceGroup": f"rg-two-{suffix}", f"{p}storagePool": lab.pool},
        "three": {"placementCount": "3", "resourceGroup": f"rg-three-{suffix}", "storagePool": lab.pool},
        "pools-only": {"autoPlace": "2", "storagePool": lab.pool},  # no group: capacity from the storage pools
    }
    for role, parameters in wanted.items():
        name = lab.classes[role] = f"linstor-{role}-{suffix}"
        body = {
            "metadata": {"name": name},
            "provisioner": DRIVER,
            "parameters": parameters,
            "reclaimPolicy": "Delete",
            "volumeBindingMode": "Immediate",
            "allowVolumeExpansion": True,
        }
        await parent_client.create(STORAGECLASSES, body)
    yield lab
    await lab.close()


@pytest.fixture(scope="module")
async def disk(parent: Parent) -> str:
    """A DataVolume `disk` on the two-replica class; its LINSTOR resource definition."""
    return await parent.volume("disk", parent.classes["two"])


@contextlib.asynccontextmanager
async def linstor_view(parent: Parent, settings: LinstorSettings | None, **kwargs: Any) -> AsyncIterator[LinstorView]:
    view = LinstorView(parent.api, parent.namespace, settings, **kwargs)
    try:
        yield view
    finally:
        await view.close()


async def healthy(view: LinstorView, claim: str) -> Health:
    found = await eventually(lambda: view.condition_for(claim), lambda h: h is not None and not h.abnormal)
    assert found is not None
    return found


async def test_claim_to_resource_to_health(parent: Parent, disk: str) -> None:
    changes: list[tuple[str, Health | None, Health]] = []
    async with linstor_view(parent, parent.settings(), listeners=[lambda *c: changes.append(c)]) as view:
        assert view.configured
        found = await healthy(view, "disk")
        nodes = await parent.diskful_nodes(disk)
        assert found.message.startswith(f"2 UpToDate diskful replicas on {', '.join(nodes)}; diskless on ")
        assert "(tie-breaker)" in found.message

        await parent.control("PUT", f"/sim/resources/{disk}/nodes/{nodes[1]}", {"disk_state": "Outdated"})
        broken = await view.condition_for("disk")
        assert broken == (True, f"replica on {nodes[1]}: volume 0 is Outdated")

        await parent.control("DELETE", f"/sim/resources/{disk}/nodes/{nodes[1]}")
        assert not (await healthy(view, "disk")).abnormal
    assert [(name, new.abnormal) for name, _, new in changes] == [("disk", True), ("disk", False)]


async def test_many_claims_at_once(parent: Parent, disk: str) -> None:
    other = await parent.volume("other", parent.classes["three"])
    async with linstor_view(parent, parent.settings()) as view:
        answers = await eventually(
            lambda: view.conditions_for(["disk", "other", "no-such-claim"]),
            lambda found: all(found[n] is not None for n in ("disk", "other")),
        )
    assert answers["no-such-claim"] is None
    assert answers["other"] is not None and answers["other"].message.startswith("3 UpToDate diskful replicas")
    assert await parent.diskful_nodes(other) == ["sat-a", "sat-b", "sat-c"]


async def test_answers_are_reused_for_their_ttl(parent: Parent, disk: str) -> None:
    async with linstor_view(parent, parent.settings(health_ttl=60)) as view:
        before = await healthy(view, "disk")
        node = (await parent.diskful_nodes(disk))[0]
        await parent.control("PUT", f"/sim/resources/{disk}/nodes/{node}", {"connected": False})
        try:
            assert await view.condition_for("disk") == before  # cached: LINSTOR is not asked again
            async with linstor_view(parent, parent.settings()) as fresh:
                now = await fresh.condition_for("disk")
            assert now is not None and now.abnormal and f"{node}: StandAlone" in now.message
        finally:
            await parent.control("DELETE", f"/sim/resources/{disk}/nodes/{node}")


async def test_capacity_honours_placement_count(parent: Parent) -> None:
    for node, free in (("sat-a", 10), ("sat-b", 20), ("sat-c", 30)):
        await parent.control("PUT", f"/sim/storage-pools/{parent.pool}/nodes/{node}", {"free_capacity": free * GIB_KIB})
    async with linstor_view(parent, parent.settings()) as view:
        # Two replicas: 20 GiB on (20, 30) then 10 GiB on (10, 10) -- LINSTOR's own spreading rule.
        assert await view.capacity_for(parent.classes["two"]) == 30 * GIB
        assert await view.capacity_for(parent.classes["three"]) == 10 * GIB
        assert await view.capacity_for(parent.classes["pools-only"]) == 30 * GIB
        space = await view.space_for(parent.classes["two"])
        assert space is not None and space.maximum_volume == 20 * GIB
        assert await view.capacity_for("no-such-class") is None


async def test_classes_of_other_provisioners_have_no_linstor_capacity(parent: Parent, parent_client: Client) -> None:
    name = f"other-{uuid.uuid4().hex[:8]}"
    await parent_client.create(STORAGECLASSES, {"metadata": {"name": name}, "provisioner": "example.com/nfs"})
    try:
        async with linstor_view(parent, parent.settings()) as view:
            assert await view.capacity_for(name) is None
    finally:
        await parent_client.delete(STORAGECLASSES, name)


@pytest.fixture
def blackhole() -> Iterator[str]:
    """A port that accepts connections and never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


async def test_unreachable_linstor_is_unknown_quickly(parent: Parent, disk: str, blackhole: str) -> None:
    settings = LinstorSettings(urls=("http://127.0.0.1:1", blackhole), timeout=0.5, health_ttl=0, capacity_ttl=0)
    async with linstor_view(parent, settings) as view:
        started = time.monotonic()
        assert await view.condition_for("disk") is None
        assert time.monotonic() - started < 2.0
        # Remembered as down: the next questions do not wait for the timeout again.
        started = time.monotonic()
        assert await view.condition_for("disk") is None
        assert await view.capacity_for(parent.classes["two"]) is None
        assert time.monotonic() - started < 0.4
        assert view.outage.down


async def test_without_linstor_everything_is_unknown(parent: Parent, disk: str) -> None:
    async with linstor_view(parent, None) as view:
        assert not view.configured
        assert await view.condition_for("disk") is None
        assert await view.conditions_for(["disk", "x"]) == {"disk": None, "x": None}
        assert await view.capacity_for(parent.classes["two"]) is None


async def test_health_changes_become_events_on_the_tenant_claim(
    parent: Parent, disk: str, tenant_client: Client
) -> None:
    namespace = f"linstor-events-{uuid.uuid4().hex[:8]}"
    await tenant_client.create(NAMESPACES, {"metadata": {"name": namespace}})
    await tenant_claim(tenant_client, namespace, "data", "disk")
    events = TenantVolumeEvents(tenant_client, TENANT_DRIVER, component="tenant-cloud-csi-tests")
    running = asyncio.create_task(events.run())
    node = (await parent.diskful_nodes(disk))[0]
    try:
        await events.volumes.wait_synced(TIMEOUT)
        async with linstor_view(parent, parent.settings(), listeners=[events.health_changed]) as view:
            await healthy(view, "disk")
            await parent.control("PUT", f"/sim/resources/{disk}/nodes/{node}", {"disk_state": "Inconsistent"})
            await view.condition_for("disk")
            await parent.control("DELETE", f"/sim/resources/{disk}/nodes/{node}")
            await healthy(view, "disk")

        async def recorded() -> dict[str, str]:
            listed = await tenant_client.list_all(EVENTS, namespace, field_selector="involvedObject.name=data")
            return {e["reason"]: e["message"] for e in listed.items}

        found = await eventually(recorded, lambda r: len(r) == 2)
        assert found[ABNORMAL_REASON] == f"parent volume disk: replica on {node}: volume 0 is Inconsistent"
        assert found[HEALTHY_REASON].startswith("parent volume disk: 2 UpToDate diskful replicas")
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
        await parent.control("DELETE", f"/sim/resources/{disk}/nodes/{node}")
        await drop_tenant_claims(tenant_client, namespace, ["disk"])
