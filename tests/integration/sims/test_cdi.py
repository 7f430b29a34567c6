"""The CDI + LINSTOR simulator that the harness runs, seen only through the parent kube-apiserver and the images."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from e2e import cluster as harness
from e2e.sims import _disks
from e2e.sims._cdi_view import DATAVOLUMES, VMIS, VOLUMESNAPSHOTS
from kube.client import Client, Object
from kube.errors import NotFound
from kube.resources import EVENTS, NAMESPACES, PERSISTENTVOLUMECLAIMS, PERSISTENTVOLUMES, STORAGECLASSES

T = TypeVar("T")
MI = 2**20
DRIVER = "linstor.csi.linbit.com"
TIMEOUT = 30.0


async def eventually(probe: Callable[[], Awaitable[T]], check: Callable[[T], object], timeout: float = TIMEOUT) -> T:
    """Poll `probe` until its result passes `check` (the simulator watches; only the test polls)."""
    async with asyncio.timeout(timeout):
        while True:
            result = await probe()
            if check(result):
                return result
            await asyncio.sleep(0.05)


def write_at(path: Path, offset: int, data: bytes) -> None:
    with path.open("r+b") as image:
        image.seek(offset)
        image.write(data)


def read_at(path: Path, offset: int, length: int) -> bytes:
    with path.open("rb") as image:
        image.seek(offset)
        return image.read(length)


def size_of(path: Path) -> int | None:
    return path.stat().st_size if path.exists() else None


def phase(obj: Object | None) -> str | None:
    return None if obj is None else (obj.get("status") or {}).get("phase")


def condition(obj: Object, kind: str) -> dict[str, Any]:
    return next(c for c in obj["status"]["conditions"] if c["type"] == kind)


def version(obj: Object) -> str:
    return str(obj["metadata"]["resourceVersion"])


async def storage_class(
    api: Client, provisioner: str = DRIVER, annotations: dict[str, str] | None = None, **fields: Any
) -> str:
    name = f"sim-cdi-{uuid.uuid4().hex[:8]}"
    metadata = {"name": name, "annotations": annotations or {}}
    body = {"metadata": metadata, "provisioner": provisioner, "allowVolumeExpansion": True, **fields}
    await api.create(STORAGECLASSES, body)
    return name


@dataclass
class Lab:
    """One test's namespace on the parent; `close` deletes what it made and waits for the volumes to go."""

    api: Client
    cluster: harness.Cluster
    namespace: str
    linstor: str

    def image(self, claim: str) -> Path:
        return _disks.volume_image(self.cluster.dir, self.namespace, claim)

    async def image_size(self, claim: str) -> int | None:
        return size_of(self.image(claim))

    async def datavolume(
        self,
        name: str,
        source: dict[str, Any] | None = None,
        size: str | None = "10Mi",
        storage_class: str | None = "",
        annotations: dict[str, str] | None = None,
        **storage: Any,
    ) -> Object:
        """A DataVolume on the test's LINSTOR class (`storage_class=None` for the default class)."""
        spec: dict[str, Any] = {"storage": dict(storage)}
        if source is not None:
            spec["source"] = source
        if size is not None:
            spec["storage"]["resources"] = {"requests": {"storage": size}}
        if storage_class is not None:
            spec["storage"]["storageClassName"] = storage_class or self.linstor
        body = {"metadata": {"name": name, "annotations": annotations or {}}, "spec": spec}
        created: Object = await self.api.create(DATAVOLUMES, body, self.namespace)
        return created

    async def claim(self, name: str, size: str = "10Mi", storage_class: str = "", **spec: Any) -> Object:
        body = {
            "metadata": {"name": name},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": size}},
                "storageClassName": storage_class or self.linstor,
                **spec,
            },
        }
        created: Object = await self.api.create(PERSISTENTVOLUMECLAIMS, body, self.namespace)
        return created

    async def get(self, resource: Any, name: str) -> Object | None:
        try:
            found: Object = await self.api.get(
                resource, name, None if resource is PERSISTENTVOLUMES else self.namespace
            )
        except NotFound:
            return None
        return found

    async def succeeded(self, name: str) -> Object:
        dv = await eventually(lambda: self.get(DATAVOLUMES, name), lambda d: phase(d) == "Succeeded")
        assert dv is not None
        return dv

    async def bound_claim(self, name: str) -> Object:
        claim = await eventually(lambda: self.get(PERSISTENTVOLUMECLAIMS, name), lambda c: phase(c) == "Bound")
        assert claim is not None
        return claim

    async def volume_of(self, claim: Object) -> Object:
        volume = await self.get(PERSISTENTVOLUMES, claim["spec"]["volumeName"])
        assert volume is not None
        return volume

    async def event_reasons(self, name: str) -> set[str]:
        listed = await self.api.list_all(EVENTS, self.namespace, field_selector=f"involvedObject.name={name}")
        return {e["reason"] for e in listed.items}

    async def gone(self, resource: Any, name: str) -> None:
        await eventually(lambda: self.get(resource, name), lambda found: found is None)

    async def close(self) -> None:
        # No namespace controller on the parent: empty the namespace ourselves, snapshots before their sources.
        for resource in (VOLUMESNAPSHOTS, DATAVOLUMES, PERSISTENTVOLUMECLAIMS, VMIS):
            for item in (await self.api.list_all(resource, self.namespace)).items:
                with contextlib.suppress(NotFound):
                    await self.api.delete(resource, item["metadata"]["name"], self.namespace)
        await eventually(lambda: self.api.list_all(PERSISTENTVOLUMECLAIMS, self.namespace), lambda c: not c.items)
        await eventually(self._volumes, lambda volumes: not volumes)
        with contextlib.suppress(NotFound):
            await self.api.delete(NAMESPACES, self.namespace)

    async def _volumes(self) -> list[Object]:
        """This namespace's Delete-policy volumes (Retain ones stay by design)."""
        volumes = (await self.api.list_all(PERSISTENTVOLUMES)).items
        return [
            v
            for v in volumes
            if (v["spec"].get("claimRef") or {}).get("namespace") == self.namespace
            and v["spec"].get("persistentVolumeReclaimPolicy") == "Delete"
        ]


@pytest.fixture(scope="module")
async def linstor(cluster: harness.Cluster, parent_client: Client) -> AsyncIterator[str]:
    name = await storage_class(parent_client)
    yield name
    await parent_client.delete(STORAGECLASSES, name)


@pytest.fixture
async def lab(cluster: harness.Cluster, parent_client: Client, linstor: str) -> AsyncIterator[Lab]:
    namespace = f"sim-cdi-{uuid.uuid4().hex[:8]}"
    await parent_client.create(NAMESPACES, {"metadata": {"name": namespace}})
    created = Lab(parent_client, cluster, namespace, linstor)
    yield created
    await created.close()


async def test_blank_datavolume_gets_a_bound_linstor_volume(lab: Lab) -> None:
    await lab.datavolume("disk", {"blank": {}}, annotations={"cdi.kubevirt.io/storage.deleteAfterCompletion": "false"})
    dv = await lab.succeeded("disk")
    assert (dv["status"]["progress"], dv["status"]["claimName"]) == ("100.0%", "disk")
    bound, ready, running = (condition(dv, kind) for kind in ("Bound", "Ready", "Running"))
    assert (bound["status"], bound["reason"], bound["message"]) == ("True", "Bound", "PVC disk Bound")
    assert ready["status"] == "True"
    assert (running["status"], running["reason"], running["message"]) == ("False", "Completed", "Import Complete")

    claim = await lab.bound_claim("disk")
    owner = claim["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"], owner["uid"], owner["controller"]) == (
        "DataVolume",
        "disk",
        dv["metadata"]["uid"],
        True,
    )
    assert claim["metadata"]["labels"]["app"] == "containerized-data-importer"
    assert claim["metadata"]["annotations"]["cdi.kubevirt.io/storage.deleteAfterCompletion"] == "false"
    assert claim["metadata"]["annotations"]["pv.kubernetes.io/bind-completed"] == "yes"
    assert "kubernetes.io/pvc-protection" in claim["metadata"]["finalizers"]
    assert (claim["spec"]["accessModes"], claim["spec"]["volumeMode"], claim["spec"]["storageClassName"]) == (
        ["ReadWriteOnce"],
        "Filesystem",
        lab.linstor,
    )
    assert claim["status"]["capacity"] == {"storage": "10Mi"}

    volume = await lab.volume_of(claim)
    assert volume["metadata"]["name"] == f"pvc-{claim['metadata']['uid']}"
    csi = volume["spec"]["csi"]
    assert (csi["driver"], csi["volumeHandle"], csi["fsType"]) == (DRIVER, volume["metadata"]["name"], "ext4")
    assert volume["spec"]["claimRef"]["uid"] == claim["metadata"]["uid"]
    assert (volume["spec"]["persistentVolumeReclaimPolicy"], volume["spec"]["capacity"]) == (
        "Delete",
        {"storage": "10Mi"},
    )
    assert phase(volume) == "Bound"
    assert size_of(lab.image("disk")) == 10 * MI
    assert {"Pending", "Bound", "ImportSucceeded"} <= await lab.event_reasons("disk")
    assert {"Provisioning", "ProvisioningSucceeded"} <= await lab.event_reasons("disk")


async def test_block_volume_mode(lab: Lab) -> None:
    await lab.datavolume("raw", {"blank": {}}, volumeMode="Block")
    await lab.succeeded("raw")
    claim = await lab.bound_claim("raw")
    volume = await lab.volume_of(claim)
    assert claim["spec"]["volumeMode"] == volume["spec"]["volumeMode"] == "Block"
    assert "fsType" not in volume["spec"]["csi"]
    assert size_of(lab.image("raw")) == 10 * MI


async def test_capacity_is_whole_kib_as_linstor_allocates(lab: Lab) -> None:
    await lab.datavolume("odd", {"blank": {}}, size="10000")
    await lab.succeeded("odd")
    claim = await lab.bound_claim("odd")
    assert claim["status"]["capacity"] == {"storage": "10Ki"}
    assert size_of(lab.image("odd")) == 10240


async def test_class_of_another_provisioner_stays_pending(lab: Lab, parent_client: Client) -> None:
    other = await storage_class(parent_client, provisioner="example.com/nobody")
    try:
        await lab.datavolume("elsewhere", {"blank": {}}, storage_class=other)
        claim = await eventually(lambda: lab.get(PERSISTENTVOLUMECLAIMS, "elsewhere"), lambda c: c is not None)
        await asyncio.sleep(1.0)
        claim = await lab.get(PERSISTENTVOLUMECLAIMS, "elsewhere")
        dv = await lab.get(DATAVOLUMES, "elsewhere")
        assert claim is not None and dv is not None
        assert phase(claim) == "Pending" and not claim["spec"].get("volumeName")
        assert phase(dv) == "Pending"
        assert (condition(dv, "Bound")["reason"], condition(dv, "Ready")["status"]) == ("Pending", "False")
        assert size_of(lab.image("elsewhere")) is None
    finally:
        await parent_client.delete(STORAGECLASSES, other)


async def test_default_storage_class_is_used_when_none_is_named(lab: Lab, parent_client: Client) -> None:
    default = await storage_class(parent_client, annotations={"storageclass.kubevirt.io/is-default-virt-class": "true"})
    try:
        await asyncio.sleep(0.5)  # CDI reads classes from its cache; give the new default time to reach it
        await lab.datavolume("defaulted", {"blank": {}}, storage_class=None)
        await lab.succeeded("defaulted")
        assert (await lab.bound_claim("defaulted"))["spec"]["storageClassName"] == default
    finally:
        await parent_client.delete(STORAGECLASSES, default)


async def test_expansion_grows_volume_claim_and_image(lab: Lab) -> None:
    await lab.datavolume("grow", {"blank": {}})
    await lab.succeeded("grow")
    claim = await lab.bound_claim("grow")
    patch = {"spec": {"resources": {"requests": {"storage": "20Mi"}}}}
    await lab.api.patch(PERSISTENTVOLUMECLAIMS, "grow", patch, lab.namespace)
    grown = await eventually(
        lambda: lab.get(PERSISTENTVOLUMECLAIMS, "grow"), lambda c: c and c["status"]["capacity"]["storage"] == "20Mi"
    )
    assert grown is not None
    volume = await lab.volume_of(grown)
    assert volume["spec"]["capacity"] == {"storage": "20Mi"}
    assert volume["metadata"]["name"] == claim["spec"]["volumeName"]
    assert size_of(lab.image("grow")) == 20 * MI
    assert {"Resizing", "VolumeResizeSuccessful"} <= await lab.event_reasons("grow")


async def test_clone_copies_the_source_bytes(lab: Lab) -> None:
    await lab.datavolume("origin", {"blank": {}})
    await lab.succeeded("origin")
    write_at(lab.image("origin"), 4096, b"tenant data")
    await lab.datavolume("copy", {"pvc": {"name": "origin", "namespace": lab.namespace}}, size=None)
    dv = await lab.succeeded("copy")
    assert dv["status"]["progress"] == "100.0%"
    assert condition(dv, "Running")["message"] == "Clone Complete"
    claim = await lab.bound_claim("copy")
    assert claim["status"]["capacity"] == {"storage": "10Mi"}  # taken from the source, none was requested
    assert read_at(lab.image("copy"), 4096, 11) == b"tenant data"
    assert {"CloneScheduled", "CloneSucceeded"} <= await lab.event_reasons("copy")


async def test_clone_without_source_waits_then_recovers(lab: Lab) -> None:
    await lab.datavolume("early", {"pvc": {"name": "later", "namespace": lab.namespace}})
    dv = await eventually(
        lambda: lab.get(DATAVOLUMES, "early"), lambda d: d and (d.get("status") or {}).get("conditions")
    )
    assert dv is not None
    bound = condition(dv, "Bound")
    assert (bound["status"], bound["reason"], bound["message"]) == (
        "False",
        "CloneWithoutSource",
        "The source pvc later doesn't exist",
    )
    assert phase(dv) != "Succeeded"
    assert await lab.get(PERSISTENTVOLUMECLAIMS, "early") is None
    await lab.datavolume("later", {"blank": {}})
    await lab.succeeded("later")
    write_at(lab.image("later"), 0, b"arrived")
    await lab.succeeded("early")
    assert read_at(lab.image("early"), 0, 7) == b"arrived"


async def test_data_source_ref_is_cloned_by_the_provisioner(lab: Lab) -> None:
    await lab.datavolume("base", {"blank": {}})
    await lab.succeeded("base")
    write_at(lab.image("base"), 8192, b"csi clone")
    await lab.datavolume("csi-copy", dataSourceRef={"kind": "PersistentVolumeClaim", "name": "base"})
    dv = await lab.succeeded("csi-copy")
    assert dv["status"]["progress"] == "N/A"
    assert read_at(lab.image("csi-copy"), 8192, 9) == b"csi clone"


async def test_deleting_the_datavolume_removes_claim_volume_and_image(lab: Lab) -> None:
    await lab.datavolume("short", {"blank": {}})
    await lab.succeeded("short")
    volume = await lab.volume_of(await lab.bound_claim("short"))
    await lab.api.delete(DATAVOLUMES, "short", lab.namespace)
    await lab.gone(PERSISTENTVOLUMECLAIMS, "short")
    await lab.gone(PERSISTENTVOLUMES, volume["metadata"]["name"])
    assert size_of(lab.image("short")) is None


async def test_foreground_deletion_waits_for_the_claim(lab: Lab) -> None:
    await lab.datavolume("fg", {"blank": {}})
    await lab.succeeded("fg")
    await lab.api.delete(DATAVOLUMES, "fg", lab.namespace, propagation_policy="Foreground")
    await lab.gone(DATAVOLUMES, "fg")
    assert await lab.get(PERSISTENTVOLUMECLAIMS, "fg") is None


async def test_retain_policy_keeps_a_released_volume_and_its_bytes(lab: Lab, parent_client: Client) -> None:
    retained = await storage_class(parent_client, reclaimPolicy="Retain")
    try:
        await lab.datavolume("kept", {"blank": {}}, storage_class=retained)
        await lab.succeeded("kept")
        name = (await lab.bound_claim("kept"))["spec"]["volumeName"]
        await lab.api.delete(DATAVOLUMES, "kept", lab.namespace)
        await lab.gone(PERSISTENTVOLUMECLAIMS, "kept")
        await eventually(lambda: lab.get(PERSISTENTVOLUMES, name), lambda v: phase(v) == "Released")
        assert size_of(lab.image("kept")) == 10 * MI
        await parent_client.delete(PERSISTENTVOLUMES, name)
        await lab.gone(PERSISTENTVOLUMES, name)
    finally:
        await parent_client.delete(STORAGECLASSES, retained)


async def test_claim_used_by_a_vmi_is_kept_until_the_vmi_is_done(lab: Lab) -> None:
    # A plain claim: CDI would recreate a DataVolume's deleted claim.
    await lab.claim("booted")
    await lab.bound_claim("booted")
    vmi = {
        "metadata": {"name": "guest"},
        "spec": {
            "domain": {"devices": {}},
            "volumes": [{"name": "root", "persistentVolumeClaim": {"claimName": "booted"}}],
        },
    }
    await lab.api.create(VMIS, vmi, lab.namespace)
    await lab.api.delete(PERSISTENTVOLUMECLAIMS, "booted", lab.namespace)
    await asyncio.sleep(1.0)
    held = await lab.get(PERSISTENTVOLUMECLAIMS, "booted")
    assert held is not None and held["metadata"].get("deletionTimestamp")
    assert "kubernetes.io/pvc-protection" in held["metadata"]["finalizers"]
    await lab.api.patch(VMIS, "guest", {"status": {"phase": "Succeeded"}}, lab.namespace, subresource="status")
    await lab.gone(PERSISTENTVOLUMECLAIMS, "booted")
    await eventually(lambda: lab.image_size("booted"), lambda size: size is None)


async def test_settled_objects_are_not_rewritten(lab: Lab) -> None:
    await lab.datavolume("calm", {"blank": {}})
    await lab.succeeded("calm")
    claim = await lab.bound_claim("calm")
    volume = await lab.volume_of(claim)
    # Touch both so every controller looks again, then check that nobody wrote anything back.
    touch = {"metadata": {"labels": {"touched": "yes"}}}
    dv = await lab.api.patch(DATAVOLUMES, "calm", touch, lab.namespace)
    claim = await lab.api.patch(PERSISTENTVOLUMECLAIMS, "calm", touch, lab.namespace)
    await asyncio.sleep(1.5)
    after = [await lab.get(r, n) for r, n in ((DATAVOLUMES, "calm"), (PERSISTENTVOLUMECLAIMS, "calm"))]
    assert [version(o) for o in after if o is not None] == [version(dv), version(claim)]
    still = await lab.get(PERSISTENTVOLUMES, volume["metadata"]["name"])
    assert still is not None and version(still) == version(volume)
