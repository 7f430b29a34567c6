"""The identifiers the driver hands to Kubernetes, compatible with kubevirt-csi-driver's.

- volume ID: the parent DataVolume's name (the CreateVolume request name, e.g. `pvc-<uuid>`);
- node ID: `<parent namespace>/<vm name>`, the VM taken from the tenant Node's providerID `kubevirt://<vm>`;
- snapshot ID: the parent VolumeSnapshot's name;
- volume_context: `bus` and the disk `serial` the VM sees.
"""

from __future__ import annotations

import hashlib
import re

BUS_KEY = "bus"
SERIAL_KEY = "serial"
# QEMU passes at most this many serial characters to the guest per bus (longer ones are cut).
SERIAL_LIMITS = {"scsi": 36, "sata": 20, "virtio": 20}
DEFAULT_BUS = "scsi"
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class InvalidID(ValueError):
    """An ID that cannot name a parent object at all (malformed, traversal, wrong shape)."""


def valid_name(value: str) -> bool:
    """A DNS-1123 subdomain: what a DataVolume or VolumeSnapshot may be called."""
    return bool(_NAME.match(value)) and ".." not in value


def parent_name(prefix: str, request_name: str) -> str:
    """The parent object a CSI request name maps to, deterministically.

    `pvc-<uuid>` from the provisioner is kept as is (kubevirt-csi-driver's volume IDs stay valid); any other
    name the spec allows (upper case, 128 characters...) becomes `<prefix>-<hash>`, a valid label either way.
    """
    if request_name.startswith(f"{prefix}-") and _LABEL.match(request_name):
        return request_name
    candidate = f"{prefix}-{request_name}"
    if _LABEL.match(candidate):
        return candidate
    return f"{prefix}-{hashlib.sha256(request_name.encode()).hexdigest()[:40]}"


def disk_serial(uid: str, bus: str) -> str:
    """A serial the guest sees unchanged on this bus: the DataVolume UID, shortened to the bus's limit."""
    limit = SERIAL_LIMITS.get(bus, 20)
    return uid if len(uid) <= limit else uid.replace("-", "")[:limit]


def node_id(namespace: str, vm: str) -> str:
    return f"{namespace}/{vm}"


def parse_node_id(value: str) -> tuple[str, str]:
    namespace, sep, vm = value.partition("/")
    if not sep or not _LABEL.match(namespace) or not valid_name(vm):
        raise InvalidID(f"node ID {value!r} is not <namespace>/<vm>")
    return namespace, vm
