"""The CDI simulator's decisions: sizes, DataVolume claims and status, and the PV controller / provisioner /
resizer / pvc-protection choices, as plain functions of objects."""

from __future__ import annotations

from typing import Any

import pytest

from e2e.sims import _cdi_claims as claims
from e2e.sims import _cdi_datavolume as cdi
from e2e.sims._cdi_quantity import QuantityError, format_binary, linstor_volume_size, parse_quantity

AT, LATER = "2030-01-01T00:00:00Z", "2030-01-01T00:01:00Z"
MI = 2**20


def datavolume(spec: dict[str, Any], **meta: Any) -> dict[str, Any]:
    metadata = {"name": "disk", "namespace": "tenant", "uid": "dv-uid", **meta}
    return {"apiVersion": cdi.API_VERSION, "kind": cdi.KIND, "metadata": metadata, "spec": spec}


def blank(size: str = "10Mi", **storage: Any) -> dict[str, Any]:
    return datavolume({"source": {"blank": {}}, "storage": {"resources": {"requests": {"storage": size}}, **storage}})


def claim(phase: str = "Pending", notes: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "disk",
            "namespace": "tenant",
            "uid": "claim-uid",
            "annotations": {cdi.POD_RESTARTS: "0", **(notes or {})},
        },
        "spec": {"resources": {"requests": {"storage": "10Mi"}}, **spec},
        "status": {"phase": phase},
    }


def condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    found = cdi.find_condition(status["conditions"], kind)
    assert found is not None
    return dict(found)


# --- quantities --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "size"),
    [("10Gi", 10 * 2**30), ("1.5Gi", 1536 * MI), ("1G", 10**9), ("1e3", 1000), (4096, 4096), ("100m", 1), ("1k", 1000)],
)
def test_parse_quantity(text: str | int, size: int) -> None:
    assert parse_quantity(text) == size


@pytest.mark.parametrize("text", ["", "10 Gi", "Gi", "1.2.3", "10Xi"])
def test_parse_quantity_rejects_garbage(text: str) -> None:
    with pytest.raises(QuantityError):
        parse_quantity(text)


@pytest.mark.parametrize(
    ("size", "text"), [(0, "0"), (1536, "1536"), (2048, "2Ki"), (1536 * MI, "1536Mi"), (2**30, "1Gi")]
)
def test_format_binary_is_canonical(size: int, text: str) -> None:
    assert format_binary(size) == text


@pytest.mark.parametrize(("requested", "allocated"), [(1, 4096), (4096, 4096), (4097, 5120), (10000, 10240), (MI, MI)])
def test_linstor_allocates_whole_kib_and_at_least_4k(requested: int, allocated: int) -> None:
    assert linstor_volume_size(requested) == allocated


# --- where the bytes come from -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"source": {"blank": {}}}, cdi.Source(cdi.BLANK)),
        ({"source": {"pvc": {"name": "a", "namespace": "other"}}}, cdi.Source(cdi.PVC, "other", "a")),
        ({"source": {"pvc": {"name": "a"}}}, cdi.Source(cdi.PVC, "tenant", "a")),
        ({"source": {"snapshot": {"name": "s", "namespace": "tenant"}}}, cdi.Source(cdi.SNAPSHOT, "tenant", "s")),
        ({"sourceRef": {"kind": "DataSource", "name": "fedora"}}, cdi.Source(cdi.DATA_SOURCE, "tenant", "fedora")),
        ({"source": {"http": {"url": "http://x"}}}, cdi.Source(cdi.UNSUPPORTED, name="http")),
        (
            {"storage": {"dataSourceRef": {"kind": "PersistentVolumeClaim", "name": "a"}}},
            cdi.Source(cdi.POPULATOR, "tenant", "a"),
        ),
        ({"pvc": {"dataSource": {"kind": "VolumeSnapshot", "name": "s"}}}, cdi.Source(cdi.POPULATOR, "tenant", "s")),
        ({"storage": {}}, cdi.Source(cdi.NONE)),
    ],
)
def test_source_of(spec: dict[str, Any], expected: cdi.Source) -> None:
    assert cdi.source_of(datavolume(spec)) == expected


def test_a_data_source_resolves_to_its_pvc_or_snapshot() -> None:
    source = cdi.Source(cdi.DATA_SOURCE, "tenant", "fedora")
    data_source = {"metadata": {"namespace": "golden"}, "spec": {"source": {"snapshot": {"name": "f40"}}}}
    assert cdi.resolve_data_source(source, data_source) == cdi.Source(cdi.SNAPSHOT, "golden", "f40")
    assert cdi.resolve_data_source(source, None) == source


def test_clone_obstacles() -> None:
    pvc = cdi.Source(cdi.PVC, "tenant", "origin")
    obstacle, ready = cdi.clone_obstacle(pvc, None, None, "10Mi")
    assert obstacle == cdi.Obstacle("CloneWithoutSource", "The source pvc origin doesn't exist") and not ready
    snapshot = cdi.Source(cdi.SNAPSHOT, "tenant", "s")
    obstacle, _ = cdi.clone_obstacle(snapshot, None, None, "10Mi")
    assert obstacle is not None and obstacle.message == "The source snapshot s doesn't exist"
    assert cdi.clone_obstacle(pvc, claim("Pending"), None, "10Mi") == (None, False)
    bound = claim("Bound")
    bound["status"]["capacity"] = {"storage": "20Mi"}
    obstacle, ready = cdi.clone_obstacle(pvc, bound, None, "10Mi")
    assert obstacle is not None and obstacle.reason == "CloneValidationFailed" and not obstacle.in_status
    assert cdi.clone_obstacle(pvc, bound, None, "20Mi") == (None, True)
    assert cdi.clone_obstacle(snapshot, None, {"status": {"readyToUse": False}}, None) == (None, False)
    assert cdi.clone_obstacle(cdi.Source(cdi.BLANK), None, None, "1Mi") == (None, True)


def test_a_claim_cdi_fills_is_a_source_only_once_its_transfer_succeeded() -> None:
    pvc = cdi.Source(cdi.PVC, "tenant", "origin")
    filling = claim("Bound", {cdi.CREATED_FOR: "x", cdi.POD_PHASE: "Running"})
    assert not cdi.source_populated(pvc, filling)
    assert cdi.source_populated(pvc, claim("Bound", {cdi.CREATED_FOR: "x", cdi.POD_PHASE: "Succeeded"}))
    assert cdi.source_populated(pvc, claim("Bound"))


# --- the claim ---------------------------------------------------------------------------------------------


def test_claim_spec_defaults_like_a_storage_profile() -> None:
    rendered = cdi.claim_spec(blank(), "fast", None)
    assert rendered == {
        "accessModes": ["ReadWriteOnce"],
        "volumeMode": "Filesystem",
        "resources": {"requests": {"storage": "10Mi"}},
        "storageClassName": "fast",
    }
    block = cdi.claim_spec(blank(volumeMode="Block", accessModes=["ReadWriteMany"], storageClassName="x"), "fast", None)
    assert (block["volumeMode"], block["accessModes"], block["storageClassName"]) == ("Block", ["ReadWriteMany"], "x")
    assert "storageClassName" not in cdi.claim_spec(blank(), None, None)


def test_claim_spec_takes_the_older_pvc_field_and_a_detected_size() -> None:
    dv = datavolume({"source": {"pvc": {"name": "a"}}, "pvc": {"accessModes": ["ReadWriteOnce"]}})
    assert cdi.claim_spec(dv, None, 5 * MI)["resources"] == {"requests": {"storage": "5Mi"}}


def test_default_storage_class_prefers_the_virt_default() -> None:
    classes: list[dict[str, Any]] = [
        {"metadata": {"name": "k8s", "annotations": {cdi.DEFAULT_CLASS: "true"}}},
        {"metadata": {"name": "virt", "annotations": {cdi.DEFAULT_VIRT_CLASS: "true"}}},
        {"metadata": {"name": "plain"}},
    ]
    assert cdi.default_storage_class(classes, for_virt=True) == "virt"
    assert cdi.default_storage_class(classes) == "k8s"
    assert cdi.default_storage_class(classes[2:]) is None


def test_claim_for_carries_cdi_metadata_and_the_controller_reference() -> None:
    dv = blank()
    dv["metadata"]["labels"] = {"team": "a"}
    dv["metadata"]["annotations"] = {cdi.DELETE_AFTER_COMPLETION: "false"}
    body = cdi.claim_for(dv, cdi.Source(cdi.BLANK), cdi.claim_spec(dv, "fast", None))
    meta = body["metadata"]
    assert (meta["name"], meta["namespace"]) == ("disk", "tenant")
    assert meta["labels"] == {
        "app": "containerized-data-importer",
        "app.kubernetes.io/component": "storage",
        "app.kubernetes.io/managed-by": "cdi-controller",
        cdi.FILLING_UP_LABEL: "disabled",
        "team": "a",
    }
    assert meta["annotations"][cdi.DELETE_AFTER_COMPLETION] == "false"
    assert meta["annotations"][cdi.IMPORT_SOURCE] == "none"
    assert meta["annotations"][cdi.CREATED_FOR] == "dv-uid"
    assert meta["annotations"][cdi.POD_RESTARTS] == "0"
    owner = meta["ownerReferences"][0]
    assert owner == {
        "apiVersion": "cdi.kubevirt.io/v1beta1",
        "kind": "DataVolume",
        "name": "disk",
        "uid": "dv-uid",
        "controller": True,
        "blockOwnerDeletion": True,
    }
    assert cdi.controlled_by(body, dv) and cdi.datavolume_owner(body) == ("disk", "dv-uid")
    clone = cdi.claim_for(dv, cdi.Source(cdi.PVC, "src-ns", "origin"), {"volumeMode": "Block"})
    assert clone["metadata"]["annotations"][cdi.CLONE_REQUEST] == "src-ns/origin"
    assert cdi.FILLING_UP_LABEL not in clone["metadata"]["labels"]


# --- status ------------------------------------------------------------------------------------------------


def test_without_a_claim_the_datavolume_is_pending() -> None:
    status = cdi.status_for(blank(), cdi.Source(cdi.BLANK), None, None, AT)
    assert status["phase"] == "Pending"
    assert condition(status, "Bound") == {
        "type": "Bound",
        "status": "False",
        "reason": "NotFound",
        "message": "No PVC found",
        "lastTransitionTime": AT,
        "lastHeartbeatTime": AT,
    }
    assert [c["type"] for c in status["conditions"]] == ["Bound", "Ready", "Running"]


def test_a_clone_without_source_keeps_its_phase_and_says_why() -> None:
    source = cdi.Source(cdi.PVC, "tenant", "origin")
    obstacle = cdi.Obstacle("CloneWithoutSource", "The source pvc origin doesn't exist")
    status = cdi.status_for(datavolume({"source": {"pvc": {"name": "origin"}}}), source, None, obstacle, AT)
    assert "phase" not in status
    for kind in ("Bound", "Ready"):
        found = condition(status, kind)
        assert (found["status"], found["reason"], found["message"]) == ("False", obstacle.reason, obstacle.message)


def walk(dv: dict[str, Any], source: cdi.Source, claim_: dict[str, Any], at: str = AT) -> dict[str, Any]:
    """The status after one reconcile, stored back on the DataVolume as the API would."""
    dv["status"] = cdi.status_for(dv, source, claim_, None, at)
    return dict(dv["status"])


def test_blank_import_phases_and_conditions() -> None:
    dv, source = blank(), cdi.Source(cdi.BLANK)
    assert walk(dv, source, claim("Pending"))["phase"] == "Pending"
    bound = claim("Bound")
    status = walk(dv, source, bound)
    assert status["phase"] == "PVCBound" and status["claimName"] == "disk" and status["progress"] == "N/A"
    assert condition(status, "Bound")["message"] == "PVC disk Bound"
    bound["metadata"]["annotations"].update(cdi.transfer_started(source, bound))
    status = walk(dv, source, bound)
    assert status["phase"] == "ImportInProgress"
    assert (condition(status, "Ready")["status"], condition(status, "Ready")["reason"]) == ("False", "TransferRunning")
    assert (condition(status, "Running")["status"], condition(status, "Running")["reason"]) == (
        "True",
        "Pod is running",
    )
    bound["metadata"]["annotations"].update(cdi.transfer_finished(source))
    status = walk(dv, source, bound, LATER)
    assert (status["phase"], status["progress"], status["restartCount"]) == ("Succeeded", "100.0%", 0)
    ready, running = condition(status, "Ready"), condition(status, "Running")
    assert ready["status"] == "True" and "reason" not in ready and ready["lastTransitionTime"] == LATER
    assert (running["status"], running["reason"], running["message"]) == ("False", "Completed", "Import Complete")


def test_status_is_stable_once_reached() -> None:
    dv, source = blank(), cdi.Source(cdi.BLANK)
    done = claim("Bound", {**cdi.transfer_started(cdi.Source(cdi.BLANK), claim()), **cdi.transfer_finished(source)})
    first = walk(dv, source, done, AT)
    assert cdi.status_for(dv, source, done, None, LATER) == first


def test_clone_phases() -> None:
    dv, source = datavolume({"source": {"pvc": {"name": "origin"}}}), cdi.Source(cdi.PVC, "tenant", "origin")
    bound = claim("Bound", {cdi.CLONE_REQUEST: "tenant/origin"})
    assert walk(dv, source, bound)["phase"] == "CloneScheduled"
    bound["metadata"]["annotations"].update(cdi.transfer_started(source, bound))
    assert walk(dv, source, bound)["phase"] == "CloneInProgress"
    bound["metadata"]["annotations"].update(cdi.transfer_finished(source))
    status = walk(dv, source, bound)
    assert status["phase"] == "Succeeded"
    assert condition(status, "Running")["message"] == "Clone Complete"
    assert bound["metadata"]["annotations"][cdi.CLONE_OF] == "true"


def test_externally_populated_claims_succeed_once_bound() -> None:
    dv = datavolume({"storage": {"dataSourceRef": {"kind": "PersistentVolumeClaim", "name": "a"}}})
    status = walk(dv, cdi.Source(cdi.POPULATOR, "tenant", "a"), claim("Bound"))
    assert (status["phase"], status["progress"]) == ("Succeeded", "N/A")


def test_a_lost_claim_fails_the_datavolume() -> None:
    status = walk(blank(), cdi.Source(cdi.BLANK), claim("Lost"))
    assert status["phase"] == "Failed"
    assert condition(status, "Bound")["reason"] == "ClaimLost"


def test_set_condition_moves_timestamps_like_cdi() -> None:
    first = cdi.set_condition([], "Bound", "False", "Pending", "PVC a Pending", AT)
    same = cdi.set_condition(first, "Bound", "False", "Pending", "PVC a Pending", LATER)
    assert same == first
    text = cdi.set_condition(first, "Bound", "False", "Other", "changed", LATER)[0]
    assert (text["lastTransitionTime"], text["lastHeartbeatTime"]) == (AT, LATER)
    flipped = cdi.set_condition(first, "Bound", "True", "Bound", "PVC a Bound", LATER)[0]
    assert (flipped["lastTransitionTime"], flipped["lastHeartbeatTime"]) == (LATER, LATER)


def test_events_follow_the_bound_condition_and_the_phase() -> None:
    dv, source = blank(), cdi.Source(cdi.BLANK)
    old = cdi.status_for(dv, source, claim("Pending"), None, AT)
    dv["status"] = old
    done = claim("Bound", cdi.transfer_finished(source))
    new = cdi.status_for(dv, source, done, None, LATER)
    assert cdi.events_for(dv, source, old, new) == [
        ("Normal", "Bound", "PVC disk Bound"),
        ("Normal", "ImportSucceeded", "Successfully imported into PVC disk"),
    ]
    assert cdi.events_for(dv, source, new, new) == []
    clone = cdi.Source(cdi.SNAPSHOT, "tenant", "snap")
    events = cdi.events_for(dv, clone, {"phase": "CloneScheduled"}, {"phase": "CloneInProgress"})
    assert events == [("Normal", "CloneInProgress", "Cloning from tenant/snap into tenant/disk in progress")]


# --- provisioning, binding, resizing, reclaiming -----------------------------------------------------------

LINSTOR = {"metadata": {"name": "linstor"}, "provisioner": claims.DRIVER, "allowVolumeExpansion": True}


def test_persistent_volume_for_a_filesystem_claim() -> None:
    pvc = claim("Pending", accessModes=["ReadWriteOnce"], volumeMode="Filesystem")
    pv = claims.persistent_volume_for(pvc, LINSTOR, 10 * MI, "123-4-linstor.csi.linbit.com")
    assert pv["metadata"]["name"] == "pvc-claim-uid"
    assert pv["metadata"]["annotations"] == {"pv.kubernetes.io/provisioned-by": claims.DRIVER}
    assert pv["metadata"]["finalizers"] == [claims.PROVISIONER_FINALIZER]
    spec = pv["spec"]
    assert spec["capacity"] == {"storage": "10Mi"}
    assert spec["claimRef"]["uid"] == "claim-uid" and spec["claimRef"]["namespace"] == "tenant"
    assert (spec["persistentVolumeReclaimPolicy"], spec["storageClassName"], spec["volumeMode"]) == (
        "Delete",
        "linstor",
        "Filesystem",
    )
    csi = spec["csi"]
    assert (csi["driver"], csi["volumeHandle"], csi["fsType"]) == (claims.DRIVER, "pvc-claim-uid", "ext4")
    assert csi["volumeAttributes"] == {
        "linstor.csi.linbit.com/mount-options": "",
        "linstor.csi.linbit.com/post-mount-xfs-opts": "",
        "linstor.csi.linbit.com/remote-access-policy": "true",
        "linstor.csi.linbit.com/uses-volume-context": "true",
        "storage.kubernetes.io/csiProvisionerIdentity": "123-4-linstor.csi.linbit.com",
    }


def test_persistent_volume_for_a_block_claim_with_retain_and_parameters() -> None:
    storage_class = {
        **LINSTOR,
        "reclaimPolicy": "Retain",
        "parameters": {"csi.storage.k8s.io/fstype": "xfs", "linstor.csi.linbit.com/allowRemoteVolumeAccess": "false"},
    }
    block = claims.persistent_volume_for(claim(volumeMode="Block"), storage_class, MI, "id")
    assert "fsType" not in block["spec"]["csi"] and block["spec"]["volumeMode"] == "Block"
    assert block["metadata"]["finalizers"] == []
    assert block["spec"]["csi"]["volumeAttributes"]["linstor.csi.linbit.com/remote-access-policy"] == "false"
    filesystem = claims.persistent_volume_for(claim(), storage_class, MI, "id")
    assert filesystem["spec"]["csi"]["fsType"] == "xfs"


def test_binding_patches_only_what_is_missing() -> None:
    pvc = claim("Pending", accessModes=["ReadWriteOnce"])
    pv = claims.persistent_volume_for(pvc, LINSTOR, 10 * MI, "id")
    binding = claims.claim_binding_patch(pvc, pv)
    assert binding is not None and binding["spec"] == {"volumeName": "pvc-claim-uid"}
    assert binding["metadata"]["annotations"][claims.BIND_COMPLETED] == "yes"
    bound = {**pvc, "metadata": {**pvc["metadata"], "annotations": binding["metadata"]["annotations"]}}
    bound["spec"] = {**pvc["spec"], "volumeName": "pvc-claim-uid"}
    assert claims.claim_binding_patch(bound, pv) is None
    status = claims.claim_status_patch(bound, pv)
    assert status == {"status": {"phase": "Bound", "accessModes": ["ReadWriteOnce"], "capacity": {"storage": "10Mi"}}}
    bound["status"] = status["status"]
    assert claims.claim_status_patch(bound, pv) is None
    assert claims.bound_to(pv, bound)


def test_data_sources_the_provisioner_handles() -> None:
    pvc = claim(dataSourceRef={"kind": "VolumeSnapshot", "apiGroup": "snapshot.storage.k8s.io", "name": "s"})
    assert claims.data_source_of(pvc) == claims.DataSource("VolumeSnapshot", "tenant", "s")
    assert claims.data_source_of(claim(dataSource={"kind": "PersistentVolumeClaim", "name": "a"})) is not None
    assert (
        claims.data_source_of(claim(dataSourceRef={"kind": "VolumeImportSource", "apiGroup": "cdi.kubevirt.io"}))
        is None
    )
    assert claims.data_source_of(claim()) is None


def test_provisioning_failures_name_the_missing_source() -> None:
    snapshot_source = claims.DataSource("VolumeSnapshot", "tenant", "s")
    message = claims.source_problem(claim(), snapshot_source, None, None)
    assert message is not None and 'volumesnapshots.snapshot.storage.k8s.io "s" not found' in message
    not_ready = claims.source_problem(claim(), snapshot_source, {"status": {"readyToUse": False}}, None)
    assert not_ready is not None and not_ready.endswith("snapshot s is not Ready")
    too_small = claims.source_problem(claim(), snapshot_source, {"status": {"readyToUse": True}}, 20 * MI)
    assert too_small == f"requested volume size {10 * MI} is less than the size {20 * MI} for the source snapshot s"
    pvc_source = claims.DataSource("PersistentVolumeClaim", "tenant", "a")
    missing = claims.source_problem(claim(), pvc_source, None, None)
    assert missing is not None and 'persistentvolumeclaims "a" not found' in missing
    assert claims.source_problem(claim(), pvc_source, claim("Bound"), 10 * MI) is None


@pytest.mark.parametrize(
    ("request_", "capacity", "allowed", "expected"),
    [
        ("20Mi", "10Mi", True, claims.Resize(20 * MI, grow=True)),
        ("20Mi", "10Mi", False, claims.Resize(20 * MI)),
        ("10Mi", "10Mi", True, claims.Resize(10 * MI)),
        ("10000", "10Ki", True, claims.Resize(10240)),
        ("5Mi", "10Mi", True, claims.Resize(5 * MI, shrink=True)),
    ],
)
def test_resize(request_: str, capacity: str, allowed: bool, expected: claims.Resize) -> None:
    pvc = claim("Bound")
    pvc["spec"]["resources"]["requests"]["storage"] = request_
    pvc["status"]["capacity"] = {"storage": capacity}
    assert claims.resize_for(pvc, {**LINSTOR, "allowVolumeExpansion": allowed}) == expected


def vmi(*volumes: dict[str, Any], phase: str | None = None) -> dict[str, Any]:
    obj: dict[str, Any] = {"metadata": {"name": "vm", "namespace": "tenant"}, "spec": {"volumes": list(volumes)}}
    if phase:
        obj["status"] = {"phase": phase}
    return obj


def test_vmis_hold_the_claims_they_list() -> None:
    guest = vmi(
        {"name": "a", "persistentVolumeClaim": {"claimName": "disk"}}, {"name": "b", "dataVolume": {"name": "dv"}}
    )
    assert claims.vmi_claims(guest) == ["tenant/disk", "tenant/dv"]
    assert claims.in_use([vmi(phase="Running")]) and claims.in_use([vmi()])
    assert not claims.in_use([vmi(phase="Succeeded"), vmi(phase="Failed")])


def test_pvc_protection_lets_go_only_of_deleted_unused_claims() -> None:
    pvc = claim("Bound")
    pvc["metadata"]["finalizers"] = [claims.PVC_PROTECTION, "other/finalizer"]
    assert claims.protection_release(pvc, []) is None
    pvc["metadata"]["deletionTimestamp"] = AT
    assert claims.protection_release(pvc, [vmi(phase="Running")]) is None
    assert claims.protection_release(pvc, [vmi(phase="Succeeded")]) == ["other/finalizer"]


def test_volumes_are_released_when_their_claim_goes() -> None:
    pvc = claim("Bound")
    pv = claims.persistent_volume_for(pvc, LINSTOR, MI, "id")
    pv["status"] = {"phase": "Bound"}
    assert not claims.released(pv, pvc)
    assert claims.released(pv, None)
    assert claims.released(pv, {"metadata": {"uid": "someone-else"}})
    pv["status"] = {"phase": "Released"}
    assert not claims.released(pv, None)


def test_volume_finalizers_after_delete() -> None:
    pv: dict[str, Any] = {
        "metadata": {"finalizers": [claims.PV_PROTECTION, claims.PROVISIONER_FINALIZER]},
        "status": {"phase": "Bound"},
    }
    assert claims.volume_finalizers_after_delete(pv, False) == [claims.PV_PROTECTION, claims.PROVISIONER_FINALIZER]
    pv["status"]["phase"] = "Released"
    assert claims.volume_finalizers_after_delete(pv, False) == [claims.PROVISIONER_FINALIZER]
    assert claims.volume_finalizers_after_delete(pv, True) == []
