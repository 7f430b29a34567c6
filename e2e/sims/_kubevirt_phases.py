"""virt-controller's and virt-handler's hotplug bookkeeping, as pure functions: one step of every hot-plugged
volume's `status.volumeStatus` entry through KubeVirt's phases, and the guest device name each disk gets."""

from __future__ import annotations

import secrets
import string
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from e2e.sims._kubevirt_spec import Object, claim_name, disk_bus, disk_named, hotpluggable, volumes_of

PENDING = "Pending"
BOUND = "Bound"
ATTACHED_TO_NODE = "AttachedToNode"
MOUNTED_TO_POD = "MountedToPod"
READY = "Ready"
DETACHING = "Detaching"
UNMOUNTED_FROM_POD = "UnMountedFromPod"

PVC_NOT_FOUND = "FailedPvcNotFound"
PVC_NOT_READY = "PVCNotReady"
SUCCESSFUL_CREATE = "SuccessfulCreate"
SUCCESSFUL_DELETE = "SuccessfulDelete"
MOUNTED_TO_POD_REASON = "VolumeMountedToPod"
READY_REASON = "VolumeReady"

# Without a CDI custom resource virt-controller reports CDI's default filesystem overhead.
DEFAULT_FILESYSTEM_OVERHEAD = "0.055"
_NOT_ATTACHED = ("", PENDING, BOUND, DETACHING, UNMOUNTED_FROM_POD)


@dataclass(frozen=True)
class AttachmentPod:
    """The hotplug attachment pod virt-controller would create to attach a volume to the VMI's node."""

    name: str
    uid: str


def new_attachment_pod() -> AttachmentPod:
    suffix = "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(5))
    return AttachmentPod(f"hp-volume-{suffix}", str(uuid.uuid4()))


def target_name(prefix: str, index: int) -> str:
    """Linux disk naming: sda..sdz, sdaa..sdaz, sdba..; index 0 is `a`."""
    letters, number = "", index + 1
    while number > 0:
        number, rest = divmod(number - 1, 26)
        letters = chr(ord("a") + rest) + letters
    return prefix + letters


def target_prefix(bus: str) -> str:
    return "vd" if bus == "virtio" else "sd"


def next_target(bus: str, used: set[str]) -> str:
    index = 0
    while target_name(target_prefix(bus), index) in used:
        index += 1
    return target_name(target_prefix(bus), index)


def claim_phase(claim: str, pvc: Object | None) -> tuple[str, str, str]:
    """Phase, reason and message of a volume not attached yet, from its PVC (virt-controller's wording)."""
    if pvc is None:
        return PENDING, PVC_NOT_FOUND, f"PVC {claim} not found"
    phase = (pvc.get("status") or {}).get("phase") or "Pending"
    if phase == "Bound":
        return BOUND, PVC_NOT_READY, "PVC is in phase Bound"
    if phase == "Pending":
        return PENDING, PVC_NOT_READY, "PVC is in phase ClaimPending"
    return PENDING, PVC_NOT_READY, "PVC is in phase Lost"


def claim_info(pvc: Object) -> Object:
    spec, status = pvc.get("spec") or {}, pvc.get("status") or {}
    info: Object = {
        "claimName": pvc["metadata"]["name"],
        "accessModes": spec.get("accessModes") or [],
        "capacity": status.get("capacity") or {},
        "requests": (spec.get("resources") or {}).get("requests") or {},
        "filesystemOverhead": DEFAULT_FILESYSTEM_OVERHEAD,
    }
    if spec.get("volumeMode"):
        info["volumeMode"] = spec["volumeMode"]
    return info


def _entry(status: Object | None, name: str) -> Object:
    if status is not None:
        return dict(status)
    return {"name": name, "target": "", "hotplugVolume": {}}


def _advance(entry: Object, volume: str, claim: str, pvc: Object | None, pods: Callable[[], AttachmentPod]) -> Object:
    phase = entry.get("phase") or ""
    if phase in _NOT_ATTACHED:
        next_phase, reason, message = claim_phase(claim, pvc)
        if phase == BOUND and next_phase == BOUND:
            pod = pods()
            hotplug = {"attachPodName": pod.name, "attachPodUID": pod.uid}
            message = f"Created hotplug attachment pod {pod.name}, for volume {volume}"
            return {
                **entry,
                "phase": ATTACHED_TO_NODE,
                "reason": SUCCESSFUL_CREATE,
                "message": message,
                "hotplugVolume": hotplug,
            }
        return {**entry, "phase": next_phase, "reason": reason, "message": message, "target": "", "hotplugVolume": {}}
    if phase == ATTACHED_TO_NODE:
        message = f"Volume {volume} has been mounted in virt-launcher pod"
        return {**entry, "phase": MOUNTED_TO_POD, "reason": MOUNTED_TO_POD_REASON, "message": message}
    if phase == MOUNTED_TO_POD:
        message = f"Successfully attach hotplugged volume {volume} to VM"
        return {**entry, "phase": READY, "reason": READY_REASON, "message": message}
    return entry


def _detach(entry: Object) -> Object | None:
    """A hot-plugged volume gone from the spec: Detaching while its attachment pod goes away, then no entry."""
    if entry.get("phase") == DETACHING or not entry.get("hotplugVolume"):
        return None
    pod = entry["hotplugVolume"].get("attachPodName", "")
    message = f"Deleted hotplug attachment pod {pod}, for volume {entry['name']}"
    return {**entry, "phase": DETACHING, "reason": SUCCESSFUL_DELETE, "message": message}


def volume_status_step(
    vmi: Object, pvc_of: Callable[[str], Object | None], pods: Callable[[], AttachmentPod] = new_attachment_pod
) -> list[Object]:
    """The VMI's next status.volumeStatus: every hot-plugged volume one phase further, sorted by name like KubeVirt."""
    spec = vmi.get("spec") or {}
    old: dict[str, Object] = {entry["name"]: entry for entry in (vmi.get("status") or {}).get("volumeStatus") or []}
    used = {str(entry.get("target")) for entry in old.values() if entry.get("target")}
    new: list[Object] = []
    for volume in volumes_of(spec):
        name, claim = volume["name"], claim_name(volume)
        current = old.pop(name, None)
        if not hotpluggable(volume) or claim is None:
            if current is not None:
                new.append(current)
            continue
        pvc = pvc_of(claim)
        entry = _advance(_entry(current, name), name, claim, pvc, pods)
        if entry.get("phase") == READY and not entry.get("target"):
            entry["target"] = next_target(disk_bus(disk_named(spec, name)), used)
            used.add(entry["target"])
        if pvc is not None:
            entry["persistentVolumeClaimInfo"] = claim_info(pvc)
        new.append(entry)
    for entry in old.values():
        detaching = _detach(entry)
        if detaching is not None:
            new.append(detaching)
    return sorted(new, key=lambda entry: str(entry["name"]))


def ready_volumes(vmi: Object) -> dict[str, Object]:
    """Hot-plugged volumes the guest sees: Ready entries whose volume is still in the spec, by name."""
    hotplugged = {volume["name"] for volume in volumes_of(vmi.get("spec") or {}) if hotpluggable(volume)}
    entries: list[Any] = (vmi.get("status") or {}).get("volumeStatus") or []
    return {entry["name"]: entry for entry in entries if entry.get("phase") == READY and entry["name"] in hotplugged}
