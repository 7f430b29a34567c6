"""KubeVirt's API objects as the simulator reads them: resources, and the volume and disk fields of a VMI spec."""

from __future__ import annotations

import math
import re
from fractions import Fraction
from typing import Any

from kube.resources import Resource

Object = dict[str, Any]

VMS = Resource("kubevirt.io", "v1", "virtualmachines", "VirtualMachine")
VMIS = Resource("kubevirt.io", "v1", "virtualmachineinstances", "VirtualMachineInstance")
APISERVICES = Resource("apiregistration.k8s.io", "v1", "apiservices", "APIService", namespaced=False)
SUBJECT_ACCESS_REVIEWS = Resource(
    "authorization.k8s.io", "v1", "subjectaccessreviews", "SubjectAccessReview", namespaced=False
)

RUNNING = "Running"
DEFAULT_HOTPLUG_BUS = "scsi"


def volumes_of(spec: Object) -> list[Object]:
    return list(spec.get("volumes") or [])


def disks_of(spec: Object) -> list[Object]:
    return list(((spec.get("domain") or {}).get("devices") or {}).get("disks") or [])


def claim_name(volume: Object) -> str | None:
    """The parent PVC behind a volume; a DataVolume's PVC has the DataVolume's name."""
    if volume.get("dataVolume"):
        return str(volume["dataVolume"].get("name") or "") or None
    if volume.get("persistentVolumeClaim"):
        return str(volume["persistentVolumeClaim"].get("claimName") or "") or None
    return None


def hotpluggable(volume: Object) -> bool:
    source = volume.get("dataVolume") or volume.get("persistentVolumeClaim") or {}
    return bool(source.get("hotpluggable"))


def disk_named(spec: Object, name: str) -> Object | None:
    return next((disk for disk in disks_of(spec) if disk.get("name") == name), None)


def disk_bus(disk: Object | None) -> str:
    """The bus of a disk or LUN; hot-plugged disks without one are SCSI, as virtctl adds them."""
    device = (disk or {}).get("disk") or (disk or {}).get("lun") or {}
    return str(device.get("bus") or DEFAULT_HOTPLUG_BUS)


def is_running(vmi: Object | None) -> bool:
    return bool(vmi) and (vmi or {}).get("status", {}).get("phase") == RUNNING and not deleting(vmi)


def deleting(obj: Object | None) -> bool:
    return bool(((obj or {}).get("metadata") or {}).get("deletionTimestamp"))


def key_of(namespace: str, name: str) -> str:
    return f"{namespace}/{name}"


def split_key(key: str) -> tuple[str, str]:
    namespace, _, name = key.partition("/")
    return namespace, name


_BINARY: dict[str, int | Fraction] = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_EXPONENT = re.compile(r"^([+-]?[0-9.]+)[eE]([+-]?[0-9]+)$")
_DECIMAL: dict[str, int | Fraction] = {
    "m": Fraction(1, 1000),
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "E": 10**18,
}


def quantity_bytes(quantity: str | int) -> int:
    """A resource.Quantity (`10Gi`, `1G`, `1.5Gi`, `5e9`) in bytes, rounded up like Quantity.Value()."""
    text = str(quantity).strip()
    exponent = _EXPONENT.match(text)
    if exponent:
        return math.ceil(Fraction(exponent[1]) * Fraction(10) ** int(exponent[2]))
    for suffixes in (_BINARY, _DECIMAL):
        for suffix in sorted(suffixes, key=len, reverse=True):
            if suffix and text.endswith(suffix):
                return math.ceil(Fraction(text[: -len(suffix)]) * suffixes[suffix])
    return math.ceil(Fraction(text))


def claim_size(pvc: Object) -> int:
    """What a PVC holds: its status capacity once bound, else what it requests."""
    capacity = ((pvc.get("status") or {}).get("capacity") or {}).get("storage")
    request = (((pvc.get("spec") or {}).get("resources") or {}).get("requests") or {}).get("storage")
    raw = capacity or request
    return quantity_bytes(raw) if raw else 0
