"""The snapshot simulator (snapshot-controller + LINSTOR csi-snapshotter) that the harness runs, together with the
CDI simulator that provisions the claims snapshots are cut from and restored into."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from e2e import cluster as harness
from e2e.sims import _disks
from e2e.sims._cdi_view import DATAVOLUMES
from e2e.sims.snapshots import (
    BOUND_PROTECTION,
    CLASSES,
    CONTENT_PROTECTION,
    CONTENTS,
    DEFAULT_CLASS,
    PVC_PROTECTION,
    SOURCE_PROTECTION,
    VOLUMESNAPSHOTS,
)
from kube.client import Client, Object
from kube.errors import NotFound
from kube.resources import NAMESPACES, PERSISTENTVOLUMECLAIMS, STORAGECLASSES
from tests.integration.sims.test_cdi import (
    DRIVER,
    MI,
    Lab,
    condition,
    eventually,
    read_at,
    size_of,
    storage_class,
    version,
    write_at,
)


async def snapshot_class(api: Client, policy: str = "Delete", default: bool = False) -> str:
    name = f"sim-snap-{uuid.uuid4().hex[:8]}"
    annotations = {DEFAULT_CLASS: "true"} if default else {}
    body = {"metadata": {"name": name, "annotations": annotations}, "driver": DRIVER, "deletionPolicy": policy}
    await api.create(CLASSES, body)
    return name


@dataclass
class Snapshots:
    """VolumeSnapshots in the lab's namespace, on the module's class unless told otherwise."""

    lab: Lab
    snapshot_class: str

    @property
    def api(self) -> Client:
        return self.lab.api

    def image(self, snapshot: str) -> Path:
        return _disks.snapshot_image(self.lab.cluster.dir, self.lab.namespace, snapshot)

    async def image_size(self, snapshot: str) -> int | None:
        return size_of(self.image(snapshot))

    async def take(self, name: str, claim: str, snapshot_class: str | None = "") -> Object:
        spec: dict[str, Any] = {"source": {"persistentVolumeClaimName": claim}}
        if snapshot_class is not None:
            spec["volumeSnapshotClassName"] = snapshot_class or self.snapshot_class
        created: Object = await self.api.create(
            VOLUMESNAPSHOTS, {"metadata": {"name": name}, "spec": spec}, self.lab.namespace
        )
        return created

    async def get(self, name: str) -> Object | None:
        try:
            found: Object = await self.api.get(VOLUMESNAPSHOTS, name, self.lab.namespace)
        except NotFound:
            return None
        return found

    async def content(self, name: str) -> Object | None:
        try:
            found: Object = await self.api.get(CONTENTS, name)
        except NotFound:
            return None
        return found

    async def ready(self, name: str) -> Object:
        found = await eventually(lambda: self.get(name), lambda s: s and (s.get("status") or {}).get("readyToUse"))
        assert found is not None
        return found

    async def error(self, name: str) -> str:
        found = await eventually(lambda: self.get(name), lambda s: s and (s.get("status") or {}).get("error"))
        assert found is not None
        return str(found["status"]["error"]["message"])

    async def source(self, name: str, data: bytes, offset: int = 4096) -> None:
        """A blank DataVolume with `data` written into its image."""
        await self.lab.datavolume(name, {"blank": {}})
        await self.lab.succeeded(name)
        write_at(self.lab.image(name), offset, data)


@pytest.fixture(scope="module")
async def classes(cluster: harness.Cluster, parent_client: Client) -> AsyncIterator[tuple[str, str]]:
    linstor, snapshots = await storage_class(parent_client), await snapshot_class(parent_client)
    yield linstor, snapshots
    await parent_client.delete(STORAGECLASSES, linstor)
    await parent_client.delete(CLASSES, snapshots)


@pytest.fixture
async def snaps(cluster: harness.Cluster, parent_client: Client, classes: tuple[str, str]) -> AsyncIterator[Snapshots]:
    namespace = f"sim-snap-{uuid.uuid4().hex[:8]}"
    await parent_client.create(NAMESPACES, {"metadata": {"name": namespace}})
    lab = Lab(parent_client, cluster, namespace, classes[0])
    yield Snapshots(lab, classes[1])
    await lab.close()


async def test_snapshot_is_cut_from_the_claims_bytes(snaps: Snapshots) -> None:
    await snaps.source("disk", b"before the snapshot")
    taken = await snaps.take("snap", "disk")
    snapshot = await snaps.ready("snap")
    content_name = f"snapcontent-{taken['metadata']['uid']}"
    status = snapshot["status"]
    assert (status["boundVolumeSnapshotContentName"], status["restoreSize"]) == (content_name, "10Mi")
    assert status["creationTime"] and "error" not in status
    assert snapshot["metadata"]["finalizers"] == [SOURCE_PROTECTION, BOUND_PROTECTION]

    content = await snaps.content(content_name)
    assert content is not None
    claim = await snaps.lab.bound_claim("disk")
    ref = content["spec"]["volumeSnapshotRef"]
    assert (ref["name"], ref["namespace"], ref["uid"]) == ("snap", snaps.lab.namespace, taken["metadata"]["uid"])
    assert content["spec"]["source"] == {"volumeHandle": claim["spec"]["volumeName"]}
    assert (content["spec"]["driver"], content["spec"]["deletionPolicy"]) == (DRIVER, "Delete")
    assert content["spec"]["volumeSnapshotClassName"] == snaps.snapshot_class
    assert content["metadata"]["finalizers"] == [CONTENT_PROTECTION]
    cut = content["status"]
    assert (cut["readyToUse"], cut["restoreSize"], cut["snapshotHandle"]) == (
        True,
        10 * MI,
        f"snapshot-{taken['metadata']['uid']}",
    )
    assert isinstance(cut["creationTime"], int) and cut["creationTime"] > 10**18

    assert read_at(snaps.image("snap"), 4096, 19) == b"before the snapshot"
    write_at(snaps.lab.image("disk"), 4096, b"after")
    assert read_at(snaps.image("snap"), 4096, 6) == b"before"
    released = await eventually(
        lambda: snaps.lab.get(PERSISTENTVOLUMECLAIMS, "disk"),
        lambda c: c and PVC_PROTECTION not in c["metadata"]["finalizers"],
    )
    assert released is not None


async def test_the_default_class_is_written_into_the_snapshot(snaps: Snapshots, parent_client: Client) -> None:
    default = await snapshot_class(parent_client, default=True)
    try:
        await snaps.source("disk", b"x")
        await asyncio.sleep(0.5)  # the controller reads classes from its cache; let the new default reach it
        await snaps.take("snap", "disk", snapshot_class=None)
        snapshot = await snaps.ready("snap")
        assert snapshot["spec"]["volumeSnapshotClassName"] == default
    finally:
        await parent_client.delete(CLASSES, default)


async def test_restoring_a_datavolume_from_a_snapshot(snaps: Snapshots) -> None:
    await snaps.source("disk", b"restore me")
    await snaps.take("snap", "disk")
    await snaps.ready("snap")
    namespace = snaps.lab.namespace
    await snaps.lab.datavolume("restored", {"snapshot": {"name": "snap", "namespace": namespace}}, size="20Mi")
    dv = await snaps.lab.succeeded("restored")
    assert dv["status"]["progress"] == "100.0%"
    assert read_at(snaps.lab.image("restored"), 4096, 10) == b"restore me"
    assert size_of(snaps.lab.image("restored")) == 20 * MI


async def test_restore_waits_for_a_missing_snapshot_then_recovers(snaps: Snapshots) -> None:
    namespace = snaps.lab.namespace
    await snaps.lab.datavolume("restored", {"snapshot": {"name": "snap", "namespace": namespace}})
    dv = await eventually(
        lambda: snaps.lab.get(DATAVOLUMES, "restored"), lambda d: d and (d.get("status") or {}).get("conditions")
    )
    assert dv is not None
    bound = condition(dv, "Bound")
    assert (bound["reason"], bound["message"]) == ("CloneWithoutSource", "The source snapshot snap doesn't exist")
    await snaps.source("disk", b"at last")
    await snaps.take("snap", "disk")
    await snaps.lab.succeeded("restored")
    assert read_at(snaps.lab.image("restored"), 4096, 7) == b"at last"


async def test_restoring_a_claim_from_its_data_source(snaps: Snapshots) -> None:
    await snaps.source("disk", b"through the provisioner")
    await snaps.take("snap", "disk")
    await snaps.ready("snap")
    source = {"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": "snap"}
    await snaps.lab.claim("copy", size="10Mi", dataSourceRef=source)
    await snaps.lab.bound_claim("copy")
    assert read_at(snaps.lab.image("copy"), 4096, 23) == b"through the provisioner"


async def test_missing_claim_is_reported_then_recovers(snaps: Snapshots) -> None:
    await snaps.take("early", "later")
    message = await snaps.error("early")
    assert message == (
        "Failed to create snapshot content with error snapshot controller failed to update early on API server: "
        "cannot get claim from snapshot"
    )
    snapshot = await snaps.get("early")
    assert snapshot is not None and snapshot["status"]["readyToUse"] is False
    await snaps.lab.claim("later")
    recovered = await snaps.ready("early")
    assert "error" not in recovered["status"] and recovered["status"]["restoreSize"] == "10Mi"
    assert size_of(snaps.image("early")) == 10 * MI


async def test_missing_class_is_reported_then_recovers(snaps: Snapshots, parent_client: Client) -> None:
    await snaps.source("disk", b"classy")
    name = f"sim-snap-{uuid.uuid4().hex[:8]}"
    await snaps.take("snap", "disk", snapshot_class=name)
    message = await snaps.error("snap")
    assert message.startswith("Failed to create snapshot content with error failed to get input parameters")
    assert f"failed to retrieve snapshot class {name} from the informer" in message
    await parent_client.create(CLASSES, {"metadata": {"name": name}, "driver": DRIVER, "deletionPolicy": "Delete"})
    try:
        await snaps.ready("snap")
    finally:
        for snapshot in (await parent_client.list_all(VOLUMESNAPSHOTS, snaps.lab.namespace)).items:
            await parent_client.delete(VOLUMESNAPSHOTS, snapshot["metadata"]["name"], snaps.lab.namespace)
        await eventually(lambda: snaps.get("snap"), lambda s: s is None)
        await parent_client.delete(CLASSES, name)


async def test_deleting_a_snapshot_deletes_its_content_and_image(snaps: Snapshots) -> None:
    await snaps.source("disk", b"short-lived")
    taken = await snaps.take("snap", "disk")
    await snaps.ready("snap")
    await snaps.api.delete(VOLUMESNAPSHOTS, "snap", snaps.lab.namespace)
    await eventually(lambda: snaps.get("snap"), lambda s: s is None)
    await eventually(lambda: snaps.content(f"snapcontent-{taken['metadata']['uid']}"), lambda c: c is None)
    await eventually(lambda: snaps.image_size("snap"), lambda size: size is None)


async def test_retain_policy_keeps_content_and_image(snaps: Snapshots, parent_client: Client) -> None:
    retain = await snapshot_class(parent_client, policy="Retain")
    content_name = ""
    try:
        await snaps.source("disk", b"kept")
        taken = await snaps.take("snap", "disk", snapshot_class=retain)
        content_name = f"snapcontent-{taken['metadata']['uid']}"
        await snaps.ready("snap")
        await snaps.api.delete(VOLUMESNAPSHOTS, "snap", snaps.lab.namespace)
        await eventually(lambda: snaps.get("snap"), lambda s: s is None)
        content = await snaps.content(content_name)
        assert content is not None and content["spec"]["deletionPolicy"] == "Retain"
        assert read_at(snaps.image("snap"), 4096, 4) == b"kept"
    finally:
        with contextlib.suppress(NotFound):
            await parent_client.delete(CONTENTS, content_name)
        await parent_client.delete(CLASSES, retain)


async def test_settled_snapshots_are_not_rewritten(snaps: Snapshots) -> None:
    await snaps.source("disk", b"calm")
    taken = await snaps.take("snap", "disk")
    await snaps.ready("snap")
    content = await snaps.content(f"snapcontent-{taken['metadata']['uid']}")
    assert content is not None
    await asyncio.sleep(0.5)  # the claim's as-source protection is let go of right after
    touched = await snaps.api.patch(
        VOLUMESNAPSHOTS, "snap", {"metadata": {"labels": {"touched": "yes"}}}, snaps.lab.namespace
    )
    await asyncio.sleep(1.5)
    after, content_after = await snaps.get("snap"), await snaps.content(content["metadata"]["name"])
    assert after is not None and content_after is not None
    assert (version(after), version(content_after)) == (version(touched), version(content))
