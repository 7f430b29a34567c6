"""What the parent's PV controller, pvc-protection controller, external-provisioner, csi-resizer and LINSTOR CSI
driver decide for claims of `linstor.csi.linbit.com` StorageClasses, as pure functions.

Sizes follow linstor-csi's AllocationSizeKiB (whole KiB, at least 4 KiB); the PV's volumeAttributes are the
volume context linstor-csi returns plus the provisioner identity external-provisioner adds. The parent runs no
scheduler, so WaitForFirstConsumer classes bind immediately.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from e2e.sims._cdi_meta import (
    annotations_of,
    deleting,
    finalizers,
    metadata,
    name_of,
    namespace_of,
    spec,
    status,
    uid_of,
)
from e2e.sims._cdi_quantity import format_binary, linstor_volume_size, parse_quantity
from kube.client import Object

DRIVER = "linstor.csi.linbit.com"
PVC_PROTECTION = "kubernetes.io/pvc-protection"
PV_PROTECTION = "kubernetes.io/pv-protection"
PROVISIONER_FINALIZER = "external-provisioner.volume.kubernetes.io/finalizer"
PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
BIND_COMPLETED = "pv.kubernetes.io/bind-completed"
BOUND_BY_CONTROLLER = "pv.kubernetes.io/bound-by-controller"
STORAGE_PROVISIONER = "volume.kubernetes.io/storage-provisioner"
BETA_STORAGE_PROVISIONER = "volume.beta.kubernetes.io/storage-provisioner"
PROVISIONER_IDENTITY = "storage.kubernetes.io/csiProvisionerIdentity"
FSTYPE_PARAMETER = "csi.storage.k8s.io/fstype"
DEFAULT_FSTYPE = "ext4"  # piraeus runs csi-provisioner with --default-fstype=ext4
REMOTE_ACCESS_PARAMETERS = (f"{DRIVER}/allowRemoteVolumeAccess", "allowRemoteVolumeAccess")
SNAPSHOT_GROUP = "snapshot.storage.k8s.io"
FINISHED_VMI_PHASES = frozenset({"Succeeded", "Failed"})


def provisioner_identity(driver: str = DRIVER) -> str:
    """external-provisioner's identity: start time in ms, a random number, the driver name."""
    return f"{int(time.time() * 1000)}-{random.randint(0, 9999)}-{driver}"


def volume_name_for(claim: Mapping[str, Any]) -> str:
    """external-provisioner names the PV (and LINSTOR the resource definition) `pvc-<claim uid>`."""
    return f"pvc-{uid_of(claim)}"


def requested_bytes(claim: Mapping[str, Any]) -> int:
    return parse_quantity(((spec(claim).get("resources") or {}).get("requests") or {}).get("storage") or 0)


def capacity_bytes(obj: Mapping[str, Any]) -> int | None:
    """A claim's status.capacity or a volume's spec.capacity, in bytes."""
    capacity = (status(obj).get("capacity") or spec(obj).get("capacity") or {}).get("storage")
    return parse_quantity(capacity) if capacity is not None else None


def provisioned_by_us(storage_class: Mapping[str, Any] | None) -> bool:
    return storage_class is not None and storage_class.get("provisioner") == DRIVER


def is_our_volume(volume: Mapping[str, Any]) -> bool:
    return (spec(volume).get("csi") or {}).get("driver") == DRIVER


@dataclass(frozen=True)
class DataSource:
    """A claim's spec.dataSourceRef (or dataSource): another claim to clone or a snapshot to restore."""

    kind: str
    namespace: str
    name: str

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.namespace}/{self.name}"


def data_source_of(claim: Mapping[str, Any]) -> DataSource | None:
    """Only clones and restores; other kinds belong to volume populators, not to the provisioner."""
    ref = spec(claim).get("dataSourceRef") or spec(claim).get("dataSource")
    if not ref:
        return None
    kind, group = ref.get("kind"), ref.get("apiGroup") or ""
    if (kind, group) in (("PersistentVolumeClaim", ""), ("VolumeSnapshot", SNAPSHOT_GROUP)):
        return DataSource(str(kind), namespace_of(claim), str(ref.get("name") or ""))
    return None


def source_problem(
    claim: Mapping[str, Any], source: DataSource, origin: Mapping[str, Any] | None, origin_size: int | None
) -> str | None:
    """Why external-provisioner cannot provision this clone or restore yet (its ProvisioningFailed message)."""
    prefix = f"error getting handle for DataSource Type {source.kind} by Name {source.name}"
    if source.kind == "VolumeSnapshot":
        if origin is None:
            missing = f'volumesnapshots.{SNAPSHOT_GROUP} "{source.name}" not found'
            return f"{prefix}: error getting snapshot {source.name} from api server: {missing}"
        if status(origin).get("readyToUse") is not True:
            return f"{prefix}: snapshot {source.name} is not Ready"
    else:
        if origin is None or deleting(origin):
            missing = f'persistentvolumeclaims "{source.name}" not found'
            return f"{prefix}: error getting PVC {source.name} from api server: {missing}"
        if status(origin).get("phase") != "Bound":
            return f"{prefix}: the source PVC {source.name} should be bound"
    requested = requested_bytes(claim)
    if origin_size is not None and requested < origin_size:
        what = "snapshot" if source.kind == "VolumeSnapshot" else "PVC"
        return (
            f"requested volume size {requested} is less than the size {origin_size} for the source {what} {source.name}"
        )
    return None


def _remote_access_policy(parameters: Mapping[str, str]) -> str:
    for key in REMOTE_ACCESS_PARAMETERS:
        if key in parameters:
            value = parameters[key].strip().lower()
            return value if value in ("true", "false") else parameters[key]
    return "true"


def volume_context(parameters: Mapping[str, str], identity: str) -> dict[str, str]:
    """linstor-csi's VolumeContext.ToMap() plus external-provisioner's identity attribute."""
    return {
        f"{DRIVER}/mount-options": parameters.get(f"{DRIVER}/mountOpts", parameters.get("mountOpts", "")),
        f"{DRIVER}/post-mount-xfs-opts": parameters.get(
            f"{DRIVER}/postMountXfsOpts", parameters.get("postMountXfsOpts", "")
        ),
        f"{DRIVER}/remote-access-policy": _remote_access_policy(parameters),
        f"{DRIVER}/uses-volume-context": "true",
        PROVISIONER_IDENTITY: identity,
    }


def persistent_volume_for(
    claim: Mapping[str, Any], storage_class: Mapping[str, Any], size: int, identity: str
) -> Object:
    """The PV external-provisioner creates from linstor-csi's CreateVolume answer, pre-bound to the claim."""
    parameters: Mapping[str, str] = storage_class.get("parameters") or {}
    volume_mode = spec(claim).get("volumeMode") or "Filesystem"
    reclaim = str(storage_class.get("reclaimPolicy") or "Delete")
    csi: dict[str, Any] = {
        "driver": DRIVER,
        "volumeHandle": volume_name_for(claim),
        "volumeAttributes": volume_context(parameters, identity),
    }
    if volume_mode == "Filesystem":
        csi["fsType"] = parameters.get(FSTYPE_PARAMETER, DEFAULT_FSTYPE)
    volume: Object = {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": volume_name_for(claim),
            "annotations": {PROVISIONED_BY: DRIVER},
            # Only volumes the provisioner must delete carry its finalizer.
            "finalizers": [PROVISIONER_FINALIZER] if reclaim == "Delete" else [],
        },
        "spec": {
            "accessModes": list(spec(claim).get("accessModes") or ["ReadWriteOnce"]),
            "capacity": {"storage": format_binary(size)},
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": namespace_of(claim),
                "name": name_of(claim),
                "uid": uid_of(claim),
                "resourceVersion": str(metadata(claim).get("resourceVersion") or ""),
            },
            "csi": csi,
            "persistentVolumeReclaimPolicy": reclaim,
            "storageClassName": name_of(storage_class),
            "volumeMode": volume_mode,
        },
    }
    if storage_class.get("mountOptions"):
        volume["spec"]["mountOptions"] = list(storage_class["mountOptions"])
    return volume


def claim_binding_patch(claim: Mapping[str, Any], volume: Mapping[str, Any]) -> Object | None:
    """The PV controller's bind: spec.volumeName plus its bookkeeping annotations, unless already there."""
    wanted = {
        BIND_COMPLETED: "yes",
        BOUND_BY_CONTROLLER: "yes",
        STORAGE_PROVISIONER: DRIVER,
        BETA_STORAGE_PROVISIONER: DRIVER,
    }
    missing = {k: v for k, v in wanted.items() if annotations_of(claim).get(k) != v}
    if not missing and spec(claim).get("volumeName") == name_of(volume):
        return None
    return {"metadata": {"annotations": missing}, "spec": {"volumeName": name_of(volume)}}


def claim_status_patch(claim: Mapping[str, Any], volume: Mapping[str, Any]) -> Object | None:
    """Bound, with the volume's access modes and capacity; None when the claim already says so."""
    wanted = {
        "phase": "Bound",
        "accessModes": list(spec(volume).get("accessModes") or ()),
        "capacity": {"storage": (spec(volume).get("capacity") or {}).get("storage")},
    }
    if all(status(claim).get(k) == v for k, v in wanted.items()):
        return None
    return {"status": wanted}


def bound_to(volume: Mapping[str, Any], claim: Mapping[str, Any] | None) -> bool:
    """The claim is the one in the volume's claimRef and points back at the volume."""
    ref = spec(volume).get("claimRef") or {}
    return (
        claim is not None
        and not deleting(claim)
        and ref.get("uid") == uid_of(claim)
        and spec(claim).get("volumeName") == name_of(volume)
    )


@dataclass(frozen=True)
class Resize:
    """What csi-resizer would do: grow to `size`, refuse (`shrink`), or nothing."""

    size: int
    grow: bool = False
    shrink: bool = False


def resize_for(claim: Mapping[str, Any], storage_class: Mapping[str, Any] | None) -> Resize:
    capacity = capacity_bytes(claim) or 0
    wanted = linstor_volume_size(requested_bytes(claim))
    if wanted > capacity:
        allowed = storage_class is not None and storage_class.get("allowVolumeExpansion") is True
        return Resize(wanted, grow=allowed)
    return Resize(wanted, shrink=wanted < capacity)


def vmi_claims(vmi: Mapping[str, Any]) -> list[str]:
    """`namespace/claim` of every PVC or DataVolume volume a VMI lists."""
    found = []
    for volume in spec(vmi).get("volumes") or ():
        claim = (volume.get("persistentVolumeClaim") or {}).get("claimName") or (volume.get("dataVolume") or {}).get(
            "name"
        )
        if claim:
            found.append(f"{namespace_of(vmi)}/{claim}")
    return found


def in_use(vmis: Iterable[Mapping[str, Any]]) -> bool:
    """A VMI that has not finished holds its volumes, as a running pod does for the pvc-protection controller."""
    return any(status(vmi).get("phase") not in FINISHED_VMI_PHASES and not deleting(vmi) for vmi in vmis)


def protection_release(claim: Mapping[str, Any], users: Iterable[Mapping[str, Any]]) -> list[str] | None:
    """The finalizers to keep once pvc-protection lets go, or None while it must hold on."""
    if not deleting(claim) or PVC_PROTECTION not in finalizers(claim) or in_use(users):
        return None
    return [f for f in finalizers(claim) if f != PVC_PROTECTION]


def volume_finalizers_after_delete(volume: Mapping[str, Any], image_removed: bool) -> list[str]:
    """pv-protection lets go once the volume is not Bound; the provisioner once the backing volume is gone."""
    kept = finalizers(volume)
    if status(volume).get("phase") != "Bound":
        kept = [f for f in kept if f != PV_PROTECTION]
    if image_removed:
        kept = [f for f in kept if f != PROVISIONER_FINALIZER]
    return kept


def released(volume: Mapping[str, Any], claim: Mapping[str, Any] | None) -> bool:
    """A Bound volume whose claim is gone (or is another object by now) is Released."""
    ref = spec(volume).get("claimRef") or {}
    if not ref.get("uid") or status(volume).get("phase") != "Bound":
        return False
    return claim is None or uid_of(claim) != ref.get("uid")


def reclaim_policy(volume: Mapping[str, Any]) -> str:
    return str(spec(volume).get("persistentVolumeReclaimPolicy") or "Delete")
