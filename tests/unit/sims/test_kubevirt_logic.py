"""The KubeVirt simulator's pure logic: request decoding and checks, volumeRequests, phases, targets, by-id names."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
from multidict import CIMultiDict

from e2e.sims import _kubevirt_phases as phases
from e2e.sims._kubevirt_api import (
    Caller,
    api_resource_list,
    caller_from_headers,
    denial,
    resource_attributes,
)
from e2e.sims._kubevirt_disks import by_id_name, by_id_path, by_id_root
from e2e.sims._kubevirt_errors import StatusError, conflict, not_found
from e2e.sims._kubevirt_requests import (
    apply_volume_request,
    decode_add_volume,
    decode_remove_volume,
    dry_run,
    queue_volume_request,
    trim_done_requests,
    verify_volume_option,
)
from e2e.sims._kubevirt_spec import claim_size, quantity_bytes
from e2e.sims._kubevirt_writes import set_ops, spec_ops

Object = dict[str, Any]


def add(name: str, *, claim: str | None = None, serial: str = "s1", bus: str = "scsi", pvc: bool = False) -> Object:
    source = {"persistentVolumeClaim": {"claimName": claim or name}} if pvc else {"dataVolume": {"name": claim or name}}
    return decode_add_volume({"name": name, "disk": {"serial": serial, "disk": {"bus": bus}}, "volumeSource": source})


def remove(name: str) -> Object:
    return decode_remove_volume({"name": name})


def hotplugged(name: str, claim: str | None = None) -> Object:
    return {"name": name, "dataVolume": {"name": claim or name, "hotpluggable": True}}


def pvc(name: str, phase: str | None = "Bound", capacity: str = "1Gi") -> Object:
    status: Object = {"phase": phase, "capacity": {"storage": capacity}} if phase else {}
    return {
        "metadata": {"name": name, "namespace": "ns"},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "1Gi"}},
            "volumeMode": "Block",
        },
        "status": status,
    }


def vmi_with(volumes: list[Object], disks: list[Object] | None = None, statuses: list[Object] | None = None) -> Object:
    disks = (
        disks
        if disks is not None
        else [{"name": v["name"], "serial": v["name"], "disk": {"bus": "scsi"}} for v in volumes]
    )
    return {
        "metadata": {"name": "vm", "namespace": "ns"},
        "spec": {"domain": {"devices": {"disks": disks}}, "volumes": volumes},
        "status": {"phase": "Running", "volumeStatus": statuses or []},
    }


def pods() -> phases.AttachmentPod:
    return phases.AttachmentPod("hp-volume-abcde", "uid-1")


# --- requests (virt-api) ---


def test_add_volume_is_normalised_like_virt_api() -> None:
    request = add("data", claim="dv-1", serial="serial-1")["addVolumeOptions"]
    assert request["disk"]["name"] == "data"
    assert request["volumeSource"]["dataVolume"] == {"name": "dv-1", "hotpluggable": True}
    assert add("data", pvc=True)["addVolumeOptions"]["volumeSource"]["persistentVolumeClaim"]["hotpluggable"] is True


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (None, "AddVolumeOptions requires name to be set"),
        ({"name": ""}, "AddVolumeOptions requires name to be set"),
        ({"name": "v"}, "AddVolumeOptions requires disk to not be nil"),
        ({"name": "v", "disk": {}}, "AddVolumeOptions requires VolumeSource to not be nil"),
    ],
)
def test_add_volume_requires_name_disk_and_source(body: Any, message: str) -> None:
    with pytest.raises(StatusError) as raised:
        decode_add_volume(body)
    assert (raised.value.code, raised.value.reason, raised.value.message) == (400, "BadRequest", message)


@pytest.mark.parametrize("body", [["not", "an", "object"], {"name": 3}, {"name": "v", "disk": "scsi"}])
def test_malformed_bodies_are_bad_requests(body: Any) -> None:
    with pytest.raises(StatusError) as raised:
        decode_add_volume(body)
    assert raised.value.code == 400
    assert raised.value.message.startswith("Can not unmarshal Request body to struct")


def test_remove_volume_requires_a_name() -> None:
    with pytest.raises(StatusError, match="RemoveVolumeOptions requires name to be set"):
        decode_remove_volume({})


def test_dry_run_only_for_all() -> None:
    assert dry_run(decode_remove_volume({"name": "v", "dryRun": ["All"]}))
    assert not dry_run(remove("v"))


@pytest.mark.parametrize(
    ("volumes", "request_", "message"),
    [
        ([hotplugged("v")], add("v"), "Unable to add volume [v] because volume with that name already exists"),
        (
            [hotplugged("other", claim="dv")],
            add("v", claim="dv"),
            "Unable to add volume source [dv] because it already exists",
        ),
        ([], remove("v"), "Unable to remove volume [v] because it does not exist"),
        (
            [{"name": "root", "dataVolume": {"name": "root"}}],
            remove("root"),
            "Unable to remove volume [root] because it is not hotpluggable",
        ),
        ([hotplugged("v")], add("w"), None),
        ([hotplugged("v", claim="dv")], remove("dv"), None),
    ],
)
def test_verify_volume_option(volumes: list[Object], request_: Object, message: str | None) -> None:
    assert verify_volume_option(volumes, request_) == message


def test_queueing_volume_requests() -> None:
    queued = queue_volume_request([], add("v"))
    with pytest.raises(ValueError, match=r"add volume request for volume \[v\] already exists"):
        queue_volume_request(queued, add("v"))
    assert queue_volume_request(queued, remove("v")) == [remove("v")]  # a remove cancels the queued add
    with pytest.raises(ValueError, match="still being processed"):
        queue_volume_request([remove("v")], add("v"))
    with pytest.raises(ValueError, match=r"a remove volume request for volume \[v\] already exists"):
        queue_volume_request([remove("v")], remove("v"))


def test_apply_and_trim_requests() -> None:
    spec = apply_volume_request({"domain": {"devices": {"disks": []}}}, add("v", serial="abc"))
    assert spec["volumes"] == [{"name": "v", "dataVolume": {"name": "v", "hotpluggable": True}}]
    assert spec["domain"]["devices"]["disks"] == [{"name": "v", "serial": "abc", "disk": {"bus": "scsi"}}]
    assert apply_volume_request(spec, add("v", serial="other")) == spec
    assert trim_done_requests([add("v"), remove("w")], spec) == []
    assert trim_done_requests([add("x"), remove("v")], spec) == [add("x"), remove("v")]
    emptied = apply_volume_request(spec, remove("v"))
    assert emptied["volumes"] == [] and emptied["domain"]["devices"]["disks"] == []


def test_status_errors_read_like_apimachinery() -> None:
    assert not_found("virtualmachine", "vm1").body() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'virtualmachine.kubevirt.io "vm1" not found',
        "reason": "NotFound",
        "details": {"name": "vm1", "group": "kubevirt.io", "kind": "virtualmachine"},
        "code": 404,
    }
    assert (
        conflict("virtualmachine", "vm1", "boom").message
        == 'Operation cannot be fulfilled on virtualmachine.kubevirt.io "vm1": boom'
    )


# --- JSON patches ---


def test_set_ops_guard_what_they_replace() -> None:
    assert set_ops({"status": {"a": [1]}}, ("status", "a"), [2]) == [
        {"op": "test", "path": "/status/a", "value": [1]},
        {"op": "add", "path": "/status/a", "value": [2]},
    ]
    assert set_ops({}, ("status", "a"), [2]) == [
        {"op": "test", "path": "/status", "value": None},
        {"op": "add", "path": "/status", "value": {"a": [2]}},
    ]
    assert set_ops({"status": {"a": [1]}}, ("status", "a"), None)[-1] == {"op": "remove", "path": "/status/a"}
    assert set_ops({"status": {}}, ("status", "a"), None) == []


def test_spec_ops_touch_only_what_changed() -> None:
    vm: Object = {"spec": {"template": {"spec": {"domain": {"devices": {"disks": []}}}}}}
    spec = apply_volume_request(vm["spec"]["template"]["spec"], add("v"))
    ops = spec_ops(vm, ("spec", "template", "spec"), spec)
    assert [op["path"] for op in ops] == ["/spec/template/spec/volumes"] * 2 + [
        "/spec/template/spec/domain/devices/disks"
    ] * 2
    assert spec_ops({"spec": spec}, ("spec",), spec) == []


# --- phases (virt-controller, virt-handler) ---


@pytest.mark.parametrize(
    ("index", "name"),
    [(0, "sda"), (1, "sdb"), (25, "sdz"), (26, "sdaa"), (51, "sdaz"), (52, "sdba"), (701, "sdzz"), (702, "sdaaa")],
)
def test_target_names_follow_linux(index: int, name: str) -> None:
    assert phases.target_name("sd", index) == name


def test_next_target_per_bus() -> None:
    assert phases.next_target("scsi", set()) == "sda"
    assert phases.next_target("scsi", {"sda", "sdc"}) == "sdb"
    assert phases.next_target("virtio", {"sda"}) == "vda"
    assert phases.next_target("sata", {"sda"}) == "sdb"


@pytest.mark.parametrize(
    ("claim", "expected"),
    [
        (None, ("Pending", "FailedPvcNotFound", "PVC c not found")),
        (pvc("c", "Pending"), ("Pending", "PVCNotReady", "PVC is in phase ClaimPending")),
        (pvc("c", "Bound"), ("Bound", "PVCNotReady", "PVC is in phase Bound")),
        (pvc("c", "Lost"), ("Pending", "PVCNotReady", "PVC is in phase Lost")),
    ],
)
def test_claim_phase(claim: Object | None, expected: tuple[str, str, str]) -> None:
    assert phases.claim_phase("c", claim) == expected


def progress(vmi: Object, claims: dict[str, Object]) -> list[list[Object]]:
    """Every step until the status settles."""
    steps: list[list[Object]] = []
    for _ in range(10):
        statuses = phases.volume_status_step(vmi, claims.get, pods)
        if statuses == vmi["status"]["volumeStatus"]:
            return steps
        steps.append(statuses)
        vmi = {**vmi, "status": {**vmi["status"], "volumeStatus": statuses}}
    raise AssertionError("volume status never settled")


def test_a_bound_volume_steps_to_ready() -> None:
    steps = progress(vmi_with([hotplugged("v")]), {"v": pvc("v")})
    assert [s[0]["phase"] for s in steps] == ["Bound", "AttachedToNode", "MountedToPod", "Ready"]
    assert [s[0]["reason"] for s in steps] == ["PVCNotReady", "SuccessfulCreate", "VolumeMountedToPod", "VolumeReady"]
    ready = steps[-1][0]
    assert ready["target"] == "sda"
    assert ready["message"] == "Successfully attach hotplugged volume v to VM"
    assert ready["hotplugVolume"] == {"attachPodName": "hp-volume-abcde", "attachPodUID": "uid-1"}
    assert steps[1][0]["message"] == "Created hotplug attachment pod hp-volume-abcde, for volume v"
    assert ready["persistentVolumeClaimInfo"]["capacity"] == {"storage": "1Gi"}
    assert all(s[0]["target"] == "" for s in steps[:-1])


def test_a_volume_without_its_pvc_stays_pending() -> None:
    steps = progress(vmi_with([hotplugged("v")]), {})
    assert [(s[0]["phase"], s[0]["reason"]) for s in steps] == [("Pending", "FailedPvcNotFound")]
    steps = progress(vmi_with([hotplugged("v")]), {"v": pvc("v", "Pending")})
    assert [s[0]["phase"] for s in steps] == ["Pending"]


def test_targets_and_order_across_volumes() -> None:
    volumes = [hotplugged("b"), hotplugged("a"), hotplugged("c")]
    disks = [
        {"name": "b", "serial": "b", "disk": {"bus": "scsi"}},
        {"name": "a", "serial": "a", "disk": {"bus": "virtio"}},
        {"name": "c", "serial": "c", "disk": {"bus": "scsi"}},
    ]
    taken = {"name": "root", "target": "sda"}
    vmi = vmi_with([{"name": "root", "containerDisk": {"image": "x"}}, *volumes], disks, [taken])
    final = progress(vmi, {n: pvc(n) for n in "abc"})[-1]
    assert [(s["name"], s.get("target")) for s in final] == [("a", "vda"), ("b", "sdb"), ("c", "sdc"), ("root", "sda")]


def test_removed_volume_detaches_then_disappears() -> None:
    ready = progress(vmi_with([hotplugged("v")]), {"v": pvc("v")})[-1]
    vmi = vmi_with([], [], ready)
    steps = progress(vmi, {"v": pvc("v")})
    assert [[(s["name"], s["phase"], s["reason"]) for s in step] for step in steps] == [
        [("v", "Detaching", "SuccessfulDelete")],
        [],
    ]
    assert steps[0][0]["message"] == "Deleted hotplug attachment pod hp-volume-abcde, for volume v"


def test_capacity_growth_is_reported() -> None:
    ready = progress(vmi_with([hotplugged("v")]), {"v": pvc("v")})[-1]
    grown = phases.volume_status_step(
        vmi_with([hotplugged("v")], statuses=ready), {"v": pvc("v", capacity="2Gi")}.get, pods
    )
    assert grown[0]["phase"] == "Ready"
    assert grown[0]["persistentVolumeClaimInfo"]["capacity"] == {"storage": "2Gi"}


def test_ready_volumes_are_hotplugged_ones_still_in_spec() -> None:
    statuses = [{"name": n, "phase": "Ready"} for n in ("a", "b", "root")] + [{"name": "c", "phase": "Bound"}]
    root = {"name": "root", "persistentVolumeClaim": {"claimName": "root"}}
    vmi = vmi_with([hotplugged("a"), hotplugged("c"), root], statuses=statuses)
    assert set(phases.ready_volumes(vmi)) == {"a"}


def test_attachment_pods_look_like_kubevirts() -> None:
    names = {phases.new_attachment_pod().name for _ in range(20)}
    assert len(names) == 20
    assert all(name.startswith("hp-volume-") and len(name) == len("hp-volume-") + 5 for name in names)


# --- guest disks, sizes ---


def test_by_id_names_follow_udev() -> None:
    serial = "0123456789abcdef0123456789abcdef0123456789"
    assert by_id_name("scsi", serial) == f"scsi-0QEMU_QEMU_HARDDISK_{serial[:36]}"
    assert by_id_name("virtio", serial) == f"virtio-{serial[:20]}"
    assert by_id_path(Path("/d"), "vm-1", "scsi", "s") == by_id_root(Path("/d"), "vm-1") / "scsi-0QEMU_QEMU_HARDDISK_s"
    assert by_id_root(Path("/d"), "vm-1") == Path("/d/nodes/vm-1/by-id")


@pytest.mark.parametrize(
    ("quantity", "size"),
    [
        ("1Gi", 2**30),
        ("1G", 10**9),
        ("1.5Gi", 3 * 2**29),
        ("5e9", 5 * 10**9),
        ("1E3", 1000),
        ("100m", 1),
        ("1024", 1024),
        (64, 64),
    ],
)
def test_quantities(quantity: str | int, size: int) -> None:
    assert quantity_bytes(quantity) == size


def test_claim_size_prefers_capacity() -> None:
    assert claim_size(pvc("c", capacity="2Gi")) == 2**30 * 2
    assert claim_size(pvc("c", phase=None)) == 2**30


# --- virt-api authorisation ---


def test_caller_from_front_proxy_headers() -> None:
    headers = CIMultiDict(
        [
            ("X-Remote-User", "alice"),
            ("X-Remote-Group", "devs"),
            ("X-Remote-Group", "system:authenticated"),
            ("X-Remote-Extra-Scopes%2Fone", "a"),
            ("X-Remote-Extra-Scopes%2Fone", "b"),
        ]
    )
    caller = caller_from_headers(headers)
    assert caller == Caller("alice", ("devs", "system:authenticated"), {"scopes/one": ["a", "b"]})
    with pytest.raises(StatusError, match="valid group header"):
        caller_from_headers(CIMultiDict([("X-Remote-User", "alice")]))
    with pytest.raises(StatusError, match="valid user header"):
        caller_from_headers(CIMultiDict())


def test_put_addvolume_is_an_update_of_the_subresource() -> None:
    attributes = resource_attributes("PUT", "ns", "virtualmachines", "vm", "addvolume")
    assert attributes == {
        "namespace": "ns",
        "verb": "update",
        "group": "subresources.kubevirt.io",
        "version": "v1",
        "resource": "virtualmachines",
        "subresource": "addvolume",
        "name": "vm",
    }
    refused = denial(Caller("bob", ("g",)), attributes, "")
    assert (refused.code, refused.reason) == (403, "Forbidden")
    assert refused.message == (
        'virtualmachines.subresources.kubevirt.io "vm" is forbidden: User "bob" cannot update resource '
        '"virtualmachines/addvolume" in API group "subresources.kubevirt.io" in the namespace "ns"'
    )


def test_discovery_lists_the_hotplug_subresources() -> None:
    names = {resource["name"] for resource in api_resource_list()["resources"]}
    expected = {
        f"{r}/{a}"
        for r, a in itertools.product(("virtualmachines", "virtualmachineinstances"), ("addvolume", "removevolume"))
    }
    assert names == expected
