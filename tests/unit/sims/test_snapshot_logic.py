"""The snapshot simulator's decisions: errors with the snapshot-controller's messages, the content it creates,
the statuses it mirrors, and the finalizers it adds and lets go of."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from e2e.sims import snapshots as snap

MI = 2**20
AT = "2030-01-01T00:00:00Z"
CLASS = {
    "metadata": {"name": "linstor-snapshots"},
    "driver": snap.DRIVER,
    "deletionPolicy": "Delete",
}


def snapshot(class_name: str | None = "linstor-snapshots", **status: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"source": {"persistentVolumeClaimName": "disk"}}
    if class_name:
        spec["volumeSnapshotClassName"] = class_name
    obj: dict[str, Any] = {
        "metadata": {"name": "snap", "namespace": "tenant", "uid": "snap-uid", "resourceVersion": "7"},
        "spec": spec,
    }
    if status:
        obj["status"] = status
    return obj


def claim(phase: str = "Bound", **meta: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "disk", "namespace": "tenant", **meta},
        "spec": {"volumeName": "pvc-1", "volumeMode": "Block"} if phase == "Bound" else {},
        "status": {"phase": phase},
    }


VOLUME = {
    "metadata": {"name": "pvc-1"},
    "spec": {"capacity": {"storage": "10Mi"}, "csi": {"driver": snap.DRIVER, "volumeHandle": "pvc-1"}},
}


def content(policy: str = "Delete", **status: Any) -> dict[str, Any]:
    body = snap.content_for(snapshot(), claim(), VOLUME, {**CLASS, "deletionPolicy": policy})
    body["metadata"]["uid"] = "content-uid"
    if status:
        body["status"] = status
    return body


def default_class(name: str, driver: str = snap.DRIVER) -> dict[str, Any]:
    return {"metadata": {"name": name, "annotations": {snap.DEFAULT_CLASS: "true"}}, "driver": driver}


def test_names() -> None:
    assert snap.content_name_for(snapshot()) == "snapcontent-snap-uid"
    assert snap.snapshot_handle_for(content()) == "snapshot-snap-uid"


def test_missing_claim_is_the_controllers_update_error() -> None:
    problem = snap.plan_problem(snapshot(), None, None, {"linstor-snapshots": CLASS})
    assert problem == snap.Problem(
        "SnapshotContentCreationFailed",
        "Failed to create snapshot content with error snapshot controller failed to update snap on API server: "
        "cannot get claim from snapshot",
    )


def test_missing_class_quotes_the_informer_error() -> None:
    problem = snap.plan_problem(snapshot("gone"), claim(), VOLUME, {"linstor-snapshots": CLASS})
    assert problem is not None and problem.reason == "SnapshotContentCreationFailed"
    assert problem.message == (
        "Failed to create snapshot content with error failed to get input parameters to create snapshot snap: "
        '"failed to retrieve snapshot class gone from the informer: '
        '\\"volumesnapshotclass.snapshot.storage.k8s.io \\\\\\"gone\\\\\\" not found\\""'
    )


def test_unbound_and_deleted_claims() -> None:
    unbound = snap.plan_problem(snapshot(), claim("Pending"), None, {"linstor-snapshots": CLASS})
    assert unbound is not None and "the PVC disk is not yet bound to a PV" in unbound.message
    going = snap.plan_problem(snapshot(), claim(deletionTimestamp=AT), VOLUME, {"linstor-snapshots": CLASS})
    assert going is not None and going.message.endswith("cannot add finalizer on claim because it is being deleted")


def test_default_class_selection() -> None:
    assert snap.default_class_for(snap.DRIVER, [default_class("a")]) == ("a", None)
    assert snap.default_class_for(snap.DRIVER, [default_class("a", "other.csi")]) == (
        None,
        "cannot find default snapshot class",
    )
    assert snap.default_class_for(snap.DRIVER, [default_class("a"), default_class("b")]) == (
        None,
        "2 default snapshot classes were found",
    )
    problem = snap.plan_problem(snapshot(None), claim(), VOLUME, {})
    assert problem == snap.Problem(
        "SetDefaultSnapshotClassFailed",
        "Failed to set default snapshot class with error cannot find default snapshot class",
    )
    assert snap.plan_problem(snapshot(None), claim(), VOLUME, {"a": default_class("a")}) is None
    no_claim = snap.plan_problem(snapshot(None), None, None, {"a": default_class("a")})
    assert no_claim is not None and no_claim.reason == "SetDefaultSnapshotClassFailed"


def test_error_status_is_written_once_per_message() -> None:
    patch = snap.error_status_patch(snapshot(), "boom", AT)
    assert patch == {"status": {"readyToUse": False, "error": {"message": "boom", "time": AT}}}
    failed = snapshot(readyToUse=False, error={"message": "boom", "time": AT})
    assert snap.error_status_patch(failed, "boom", "later") is None
    assert snap.error_status_patch(failed, "other", AT) is not None


def test_content_is_bound_to_the_snapshot() -> None:
    body = content()
    assert body["metadata"]["name"] == "snapcontent-snap-uid"
    assert body["metadata"]["finalizers"] == [snap.CONTENT_PROTECTION]
    assert body["spec"] == {
        "volumeSnapshotRef": {
            "apiVersion": "snapshot.storage.k8s.io/v1",
            "kind": "VolumeSnapshot",
            "name": "snap",
            "namespace": "tenant",
            "uid": "snap-uid",
            "resourceVersion": "7",
        },
        "source": {"volumeHandle": "pvc-1"},
        "volumeSnapshotClassName": "linstor-snapshots",
        "deletionPolicy": "Delete",
        "driver": snap.DRIVER,
        "sourceVolumeMode": "Block",
    }
    assert content("Retain")["metadata"]["finalizers"] == []
    assert snap.bound_both_ways(snapshot(), body)
    assert not snap.bound_both_ways({**snapshot(), "metadata": {"name": "snap", "uid": "new"}}, body)


def test_cut_status_and_its_mirror_on_the_snapshot() -> None:
    created = datetime(2030, 1, 1, tzinfo=UTC)
    cut = snap.cut_status(content(), 10 * MI, created)["status"]
    assert cut == {
        "snapshotHandle": "snapshot-snap-uid",
        "creationTime": 1893456000 * 10**9,
        "restoreSize": 10 * MI,
        "readyToUse": True,
    }
    mirrored = snap.snapshot_status_for(snapshot(), content(**cut))
    assert mirrored == {
        "status": {
            "boundVolumeSnapshotContentName": "snapcontent-snap-uid",
            "readyToUse": True,
            "creationTime": AT,
            "restoreSize": "10Mi",
            "error": None,
        }
    }
    done = snapshot(**{k: v for k, v in mirrored["status"].items() if v is not None})
    assert snap.snapshot_status_for(done, content(**cut)) is None
    pending = snap.snapshot_status_for(snapshot(), content())
    assert pending == {"status": {"boundVolumeSnapshotContentName": "snapcontent-snap-uid", "readyToUse": False}}


def test_finalizers_while_alive() -> None:
    assert snap.wanted_finalizers(snapshot(), None) == [snap.SOURCE_PROTECTION]
    bound = snapshot(boundVolumeSnapshotContentName="snapcontent-snap-uid")
    assert snap.wanted_finalizers(bound, content()) == [snap.SOURCE_PROTECTION, snap.BOUND_PROTECTION]
    assert snap.wanted_finalizers(bound, content("Retain")) == [snap.SOURCE_PROTECTION]


def deleted(*held: str) -> dict[str, Any]:
    obj = snapshot(boundVolumeSnapshotContentName="snapcontent-snap-uid")
    obj["metadata"].update(deletionTimestamp=AT, finalizers=list(held))
    return obj


def test_deleting_a_snapshot_deletes_delete_policy_content_first() -> None:
    held = (snap.SOURCE_PROTECTION, snap.BOUND_PROTECTION)
    plan = snap.deletion_for(deleted(*held), content(), False)
    assert plan == snap.Deletion(delete_content=True, finalizers=(snap.BOUND_PROTECTION,))
    assert snap.deletion_for(deleted(*held), None, False) == snap.Deletion(finalizers=())
    assert snap.deletion_for(deleted(*held), content("Retain"), False) == snap.Deletion(finalizers=())


def test_deletion_waits_for_a_restore_in_progress() -> None:
    plan = snap.deletion_for(deleted(snap.SOURCE_PROTECTION), content(), True)
    assert plan.wait and plan.finalizers == (snap.SOURCE_PROTECTION,)


def test_a_restore_in_progress_is_a_pending_claim_naming_the_snapshot() -> None:
    restoring = {
        "metadata": {"name": "copy", "namespace": "tenant"},
        "spec": {"dataSourceRef": {"kind": "VolumeSnapshot", "name": "snap"}},
        "status": {"phase": "Pending"},
    }
    assert snap.restoring(snapshot(), [restoring])
    assert not snap.restoring(snapshot(), [{**restoring, "status": {"phase": "Bound"}}])
    assert not snap.restoring(snapshot(), [{**restoring, "metadata": {"name": "copy", "namespace": "elsewhere"}}])


def test_the_source_claim_is_protected_only_while_a_snapshot_is_cut() -> None:
    protected = claim(finalizers=["kubernetes.io/pvc-protection", snap.PVC_PROTECTION])
    assert snap.claim_release(protected, [snapshot(readyToUse=False)]) is None
    assert snap.claim_release(protected, [snapshot(readyToUse=True)]) == ["kubernetes.io/pvc-protection"]
    gone = deleted()
    assert snap.claim_release(protected, [gone]) == ["kubernetes.io/pvc-protection"]
    assert snap.claim_release(claim(), []) is None
