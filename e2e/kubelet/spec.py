"""What kubelet derives from a Pod, its claims and their PVs before calling a CSI node plugin: pure functions.

The access-mode mapping, the capability, the volume context with pod info and the node-expansion check follow
kubelet's CSI volume plugin (pkg/volume/csi) and its node expander (pkg/volume/util/operationexecutor).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from csi._proto import csi_pb2
from e2e.kubelet.paths import unique_volume_name
from kube.client import Object
from kube.quantity import parse_quantity

Mode = csi_pb2.VolumeCapability.AccessMode
Action = Literal["setup", "teardown", "delete"]
STORAGE = "storage"
NODE_RESIZE_PENDING = "NodeResizePending"
NODE_RESIZE_IN_PROGRESS = "NodeResizeInProgress"
FS_RESIZE_PENDING = "FileSystemResizePending"
# The conditions kubelet drops from a claim once node expansion finished (MergeResizeConditionOnPVC).
RESIZE_CONDITIONS = frozenset({"Resizing", FS_RESIZE_PENDING, "ControllerResizeError", "NodeResizeError"})
POD_INFO_PREFIX = "csi.storage.k8s.io/"


class Waiting(Exception):
    """Something another component must do first (bind the claim, attach the volume): wait for its event."""


@dataclass(frozen=True)
class ClaimRef:
    """A pod volume backed by a claim: `persistentVolumeClaim`, or the claim of a generic ephemeral volume."""

    volume: str
    claim: str
    read_only: bool


@dataclass(frozen=True)
class CSIVolume:
    """One bound CSI PersistentVolume as a pod on this node uses it."""

    pv_name: str
    driver: str
    handle: str
    block: bool
    access_mode: str
    fs_type: str = ""
    mount_options: tuple[str, ...] = ()
    attributes: dict[str, str] = field(default_factory=dict)
    read_only: bool = False
    claim_namespace: str = ""
    claim_name: str = ""

    @property
    def unique_name(self) -> str:
        return unique_volume_name(self.driver, self.handle)


def meta(obj: Object) -> dict[str, Any]:
    return obj.get("metadata") or {}


def action_for(pod: Object) -> Action:
    """Terminating pods are torn down and deleted, finished ones only torn down, the rest set up."""
    if meta(pod).get("deletionTimestamp"):
        return "delete"
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return "teardown"
    return "setup"


def claimed_volumes(pod: Object) -> list[ClaimRef]:
    refs = []
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        if source := volume.get("persistentVolumeClaim"):
            refs.append(ClaimRef(volume["name"], source.get("claimName", ""), bool(source.get("readOnly"))))
        elif "ephemeral" in volume:
            refs.append(ClaimRef(volume["name"], f"{meta(pod).get('name')}-{volume['name']}", False))
    return refs


def csi_volume(ref: ClaimRef, namespace: str, pvc: Object | None, pv: Object | None, driver: str) -> CSIVolume | None:
    """The CSI volume behind a claim, None when it belongs to another driver; Waiting while it is not bound."""
    if pvc is None:
        raise Waiting(f"PersistentVolumeClaim {namespace}/{ref.claim} not found")
    volume_name = (pvc.get("spec") or {}).get("volumeName")
    if (pvc.get("status") or {}).get("phase") != "Bound" or not volume_name:
        raise Waiting(f"PersistentVolumeClaim {namespace}/{ref.claim} is not bound")
    if pv is None:
        raise Waiting(f"PersistentVolume {volume_name} of claim {namespace}/{ref.claim} not found")
    spec = pv.get("spec") or {}
    claim_ref = spec.get("claimRef") or {}
    if claim_ref.get("uid") and claim_ref.get("uid") != meta(pvc).get("uid"):
        raise Waiting(f"PersistentVolume {volume_name} is bound to another claim")
    source = spec.get("csi") or {}
    if source.get("driver") != driver:
        return None
    return CSIVolume(
        pv_name=str(meta(pv)["name"]),
        driver=driver,
        handle=str(source.get("volumeHandle", "")),
        block=spec.get("volumeMode") == "Block",
        access_mode=(spec.get("accessModes") or ["ReadWriteOnce"])[0],
        fs_type=str(source.get("fsType") or ""),
        mount_options=tuple(spec.get("mountOptions") or ()),
        attributes=dict(source.get("volumeAttributes") or {}),
        read_only=ref.read_only or bool(source.get("readOnly")),
        claim_namespace=namespace,
        claim_name=ref.claim,
    )


def csi_access_mode(mode: str, single_node_multi_writer: bool) -> Any:
    """kubelet's asCSIAccessModeV1 / asSingleNodeMultiWriterCapableCSIAccessModeV1."""
    if mode == "ReadOnlyMany":
        return Mode.MULTI_NODE_READER_ONLY
    if mode == "ReadWriteMany":
        return Mode.MULTI_NODE_MULTI_WRITER
    if mode == "ReadWriteOncePod":
        return Mode.SINGLE_NODE_SINGLE_WRITER if single_node_multi_writer else Mode.SINGLE_NODE_WRITER
    if mode == "ReadWriteOnce":
        return Mode.SINGLE_NODE_MULTI_WRITER if single_node_multi_writer else Mode.SINGLE_NODE_WRITER
    return Mode.UNKNOWN


def capability(volume: CSIVolume, single_node_multi_writer: bool) -> Any:
    """Block for block PVs (kubelet's fsType "block"), else mount with the PV's fsType and mountOptions."""
    access = Mode(mode=csi_access_mode(volume.access_mode, single_node_multi_writer))
    if volume.block:
        return csi_pb2.VolumeCapability(block=csi_pb2.VolumeCapability.BlockVolume(), access_mode=access)
    mount = csi_pb2.VolumeCapability.MountVolume(fs_type=volume.fs_type, mount_flags=list(volume.mount_options))
    return csi_pb2.VolumeCapability(mount=mount, access_mode=access)


def publish_volume_context(volume: CSIVolume, pod: Object, pod_info_on_mount: bool) -> dict[str, str]:
    """The PV's volumeAttributes, plus pod information when the CSIDriver asks for it (podInfoOnMount)."""
    context = dict(volume.attributes)
    if pod_info_on_mount:
        context.update(
            {
                f"{POD_INFO_PREFIX}pod.name": str(meta(pod).get("name", "")),
                f"{POD_INFO_PREFIX}pod.namespace": str(meta(pod).get("namespace", "")),
                f"{POD_INFO_PREFIX}pod.uid": str(meta(pod).get("uid", "")),
                f"{POD_INFO_PREFIX}serviceAccount.name": str((pod.get("spec") or {}).get("serviceAccountName", "")),
                f"{POD_INFO_PREFIX}ephemeral": "false",
            }
        )
    return context


def _storage(resources: dict[str, Any] | None) -> int:
    value = (resources or {}).get(STORAGE)
    return parse_quantity(value) if value is not None else 0


def pending_node_expansion(pvc: Object, pv: Object) -> int | None:
    """The size to grow to when the resizer left node expansion to kubelet, else None.

    kubelet expands when the PV is larger than the claim's status capacity and the resizer marked the claim
    NodeResizePending (or NodeResizeInProgress after an interrupted try); resizers without resize statuses
    only set the FileSystemResizePending condition.
    """
    status = pvc.get("status") or {}
    wanted = _storage((pv.get("spec") or {}).get("capacity"))
    if wanted <= _storage(status.get("capacity")):
        return None
    resize_status = (status.get("allocatedResourceStatuses") or {}).get(STORAGE)
    if resize_status in (NODE_RESIZE_PENDING, NODE_RESIZE_IN_PROGRESS):
        return wanted
    conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
    if resize_status is None and conditions.get(FS_RESIZE_PENDING) == "True":
        return wanted
    return None


def expansion_finished_status(pvc: Object, pv: Object) -> dict[str, Any]:
    """kubelet's MarkFSResizeFinished: capacity from the PV, no resize status, no resize conditions."""
    status = pvc.get("status") or {}
    capacity = dict(status.get("capacity") or {})
    capacity[STORAGE] = ((pv.get("spec") or {}).get("capacity") or {})[STORAGE]
    conditions = [c for c in status.get("conditions") or [] if c.get("type") not in RESIZE_CONDITIONS]
    return {"capacity": capacity, "allocatedResourceStatuses": {STORAGE: None}, "conditions": conditions}


def running_status(pod: Object, now: str) -> dict[str, Any] | None:
    """The status kubelet reports once the pod's volumes are ready and its containers run; None if it has it."""
    status = pod.get("status") or {}
    ready = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
    containers = [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]
    reported = {c.get("name") for c in status.get("containerStatuses") or [] if c.get("ready")}
    if status.get("phase") == "Running" and ready.get("Ready") == "True" and reported >= set(containers):
        return None
    started = status.get("startTime") or now
    conditions = [
        {"type": kind, "status": "True", "lastTransitionTime": now}
        for kind in ("PodReadyToStartContainers", "Initialized", "ContainersReady", "Ready")
    ]
    container_statuses = [
        {
            "name": container["name"],
            "image": container.get("image", ""),
            "imageID": "",
            "containerID": "",
            "ready": True,
            "started": True,
            "restartCount": 0,
            "state": {"running": {"startedAt": now}},
        }
        for container in (pod.get("spec") or {}).get("containers") or []
    ]
    return {"phase": "Running", "startTime": started, "conditions": conditions, "containerStatuses": container_statuses}
