"""What CDI's DataVolume controllers decide, as pure functions: the claim a DataVolume asks for, where its bytes
come from, and the status (phase, progress, Bound/Ready/Running conditions) CDI reports for it.

Modelled on CDI's datavolume package (controller-base.go, conditions.go, import/pvc-clone/snapshot-clone and
external-population controllers). The simulated "importer" and "cloner" pods report through the same PVC
annotations the real pods' controllers write (`cdi.kubevirt.io/storage.pod.phase`, `...condition.running*`).
CDI's populator path (PVC prime + rebind) is not simulated: claims are populated in place, as CDI does when
`cdi.kubevirt.io/storage.usePopulator` is "false".
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from e2e.sims._cdi_meta import annotations_of, labels_of, metadata, name_of, namespace_of, spec, status, uid_of
from e2e.sims._cdi_quantity import format_binary, parse_quantity
from kube.client import Object

API_VERSION = "cdi.kubevirt.io/v1beta1"
KIND = "DataVolume"

# PVC annotations and labels, with the names CDI's controller/common package gives them.
POD_PHASE = "cdi.kubevirt.io/storage.pod.phase"
POD_RESTARTS = "cdi.kubevirt.io/storage.pod.restarts"
RUNNING = "cdi.kubevirt.io/storage.condition.running"
RUNNING_MESSAGE = "cdi.kubevirt.io/storage.condition.running.message"
RUNNING_REASON = "cdi.kubevirt.io/storage.condition.running.reason"
IMPORT_POD = "cdi.kubevirt.io/storage.import.importPodName"
IMPORT_SOURCE = "cdi.kubevirt.io/storage.import.source"
CONTENT_TYPE = "cdi.kubevirt.io/storage.contentType"
PREALLOCATION_REQUESTED = "cdi.kubevirt.io/storage.preallocation.requested"
CREATED_FOR = "cdi.kubevirt.io/createdForDataVolume"
EXTERNAL_POPULATION = "cdi.kubevirt.io/externalPopulation"
CLONE_REQUEST = "k8s.io/CloneRequest"
CLONE_OF = "k8s.io/CloneOf"
DELETE_AFTER_COMPLETION = "cdi.kubevirt.io/storage.deleteAfterCompletion"
CDI_LABELS = {
    "app": "containerized-data-importer",
    "app.kubernetes.io/component": "storage",
    "app.kubernetes.io/managed-by": "cdi-controller",
}
FILLING_UP_LABEL = "alerts.k8s.io/KubePersistentVolumeFillingUp"
DEFAULT_VIRT_CLASS = "storageclass.kubevirt.io/is-default-virt-class"
DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"

PENDING, PVC_BOUND, SUCCEEDED, FAILED, UNKNOWN = "Pending", "PVCBound", "Succeeded", "Failed", "Unknown"
IMPORT_SCHEDULED, IMPORT_IN_PROGRESS = "ImportScheduled", "ImportInProgress"
CLONE_SCHEDULED, CLONE_IN_PROGRESS = "CloneScheduled", "CloneInProgress"
PROGRESS_DONE, PROGRESS_UNKNOWN = "100.0%", "N/A"
# CDI's PodRunningReason and the importer's and cloner's termination messages.
POD_RUNNING_REASON = "Pod is running"
COMPLETED_REASON = "Completed"
IMPORT_COMPLETE, CLONE_COMPLETE = "Import Complete", "Clone Complete"
CLONE_WITHOUT_SOURCE = "CloneWithoutSource"
CLONE_VALIDATION_FAILED = "CloneValidationFailed"

NORMAL, WARNING = "Normal", "Warning"

# Where a DataVolume's bytes come from.
BLANK, PVC, SNAPSHOT, POPULATOR, DATA_SOURCE, UNSUPPORTED, NONE = (
    "blank",
    "pvc",
    "snapshot",
    "populator",
    "datasource",
    "unsupported",
    "none",
)


@dataclass(frozen=True)
class Source:
    kind: str
    namespace: str = ""
    name: str = ""

    @property
    def cloned(self) -> bool:
        return self.kind in (PVC, SNAPSHOT)

    @property
    def transferred(self) -> bool:
        """Sources CDI fills with its own pods (importer, cloner), as opposed to the provisioner or nobody."""
        return self.kind in (BLANK, PVC, SNAPSHOT)


@dataclass(frozen=True)
class Obstacle:
    """Why no claim can be made yet; `in_status` obstacles show in the conditions, the others only as an Event."""

    reason: str
    message: str
    in_status: bool = True


Event = tuple[str, str, str]


def _storage_template(dv: Mapping[str, Any]) -> Mapping[str, Any]:
    return spec(dv).get("storage") or spec(dv).get("pvc") or {}


def source_of(dv: Mapping[str, Any]) -> Source:
    """The population source, as CDI's getDataVolumeOp sees it (sourceRef, then source, then dataSourceRef)."""
    namespace = namespace_of(dv)
    ref = spec(dv).get("sourceRef")
    if ref:
        return Source(DATA_SOURCE, ref.get("namespace") or namespace, str(ref.get("name") or ""))
    source = spec(dv).get("source") or {}
    for kind in (PVC, SNAPSHOT):
        if kind in source:
            origin = source[kind] or {}
            return Source(kind, origin.get("namespace") or namespace, str(origin.get("name") or ""))
    if "blank" in source:
        return Source(BLANK)
    if source:
        return Source(UNSUPPORTED, name=next(iter(source)))
    template = _storage_template(dv)
    populator = template.get("dataSourceRef") or template.get("dataSource")
    if populator:
        return Source(POPULATOR, populator.get("namespace") or namespace, str(populator.get("name") or ""))
    return Source(NONE)


def resolve_data_source(source: Source, data_source: Mapping[str, Any] | None) -> Source:
    """A DataSource (cdi.kubevirt.io) names a PVC or a snapshot; anything else leaves the source unresolved."""
    if source.kind != DATA_SOURCE or data_source is None:
        return source
    inner = spec(data_source).get("source") or {}
    for kind in (PVC, SNAPSHOT):
        if kind in inner:
            origin = inner[kind] or {}
            return Source(kind, origin.get("namespace") or namespace_of(data_source), str(origin.get("name") or ""))
    return source


def requested_size(dv: Mapping[str, Any]) -> str | None:
    request = ((_storage_template(dv).get("resources") or {}).get("requests") or {}).get("storage")
    return None if request in (None, "") else str(request)


def source_size(source: Source, claim: Mapping[str, Any] | None, snapshot: Mapping[str, Any] | None) -> int | None:
    """The size a clone needs: the source claim's capacity, or the snapshot's restoreSize."""
    if source.kind == PVC and claim is not None:
        capacity = (status(claim).get("capacity") or {}).get("storage")
        return parse_quantity(capacity) if capacity is not None else None
    if source.kind == SNAPSHOT and snapshot is not None:
        restore = status(snapshot).get("restoreSize")
        return parse_quantity(restore) if restore is not None else None
    return None


def clone_obstacle(
    source: Source,
    source_claim: Mapping[str, Any] | None,
    source_snapshot: Mapping[str, Any] | None,
    requested: str | None,
) -> tuple[Obstacle | None, bool]:
    """(obstacle, ready): CloneWithoutSource when the source is missing; not ready while it is being populated."""
    if source.kind == DATA_SOURCE:
        return Obstacle(CLONE_WITHOUT_SOURCE, f"The source DataSource {source.name} doesn't exist"), False
    if not source.cloned:
        return None, True
    origin = source_claim if source.kind == PVC else source_snapshot
    if origin is None:
        return Obstacle(CLONE_WITHOUT_SOURCE, f"The source {source.kind} {source.name} doesn't exist"), False
    if not source_populated(source, origin):
        return None, False
    size = source_size(source, source_claim, source_snapshot)
    if requested is not None and size is not None and parse_quantity(requested) < size:
        return Obstacle(CLONE_VALIDATION_FAILED, "The clone doesn't meet the validation requirements", False), False
    return None, True


def source_populated(source: Source, origin: Mapping[str, Any]) -> bool:
    """A source claim must be bound (and done, if CDI fills it); a source snapshot must be readyToUse."""
    if source.kind == SNAPSHOT:
        return status(origin).get("readyToUse") is True
    if status(origin).get("phase") != "Bound":
        return False
    filled_by_cdi = CREATED_FOR in annotations_of(origin) and EXTERNAL_POPULATION not in annotations_of(origin)
    return not filled_by_cdi or annotations_of(origin).get(POD_PHASE) == SUCCEEDED


def _classes_marked(classes: Iterable[Mapping[str, Any]], annotation: str) -> list[Mapping[str, Any]]:
    marked = [c for c in classes if annotations_of(c).get(annotation) == "true"]
    # Like the DefaultStorageClass admission plugin: the newest default wins when there are several.
    return sorted(marked, key=lambda c: (str(metadata(c).get("creationTimestamp") or ""), name_of(c)), reverse=True)


def default_storage_class(classes: Iterable[Mapping[str, Any]], *, for_virt: bool = False) -> str | None:
    """CDI prefers the virtualization default class, then the cluster default."""
    classes = list(classes)
    for annotation in (DEFAULT_VIRT_CLASS, DEFAULT_CLASS) if for_virt else (DEFAULT_CLASS,):
        marked = _classes_marked(classes, annotation)
        if marked:
            return name_of(marked[0])
    return None


def claim_spec(dv: Mapping[str, Any], default_class: str | None, size: int | None) -> Object:
    """The PVC spec CDI renders from `spec.storage` (defaults filled in) or the literal `spec.pvc`."""
    template = _storage_template(dv)
    claim: Object = {
        "accessModes": list(template.get("accessModes") or ["ReadWriteOnce"]),
        "volumeMode": "Block" if template.get("volumeMode") == "Block" else "Filesystem",
    }
    resources = copy.deepcopy(dict(template.get("resources") or {}))
    requests = dict(resources.get("requests") or {})
    if requests.get("storage") in (None, "") and size is not None:
        requests["storage"] = format_binary(size)
    resources["requests"] = requests
    claim["resources"] = resources
    storage_class = template.get("storageClassName", default_class)
    if storage_class is not None:
        claim["storageClassName"] = storage_class
    for field in ("selector", "volumeName", "dataSource", "dataSourceRef"):
        if template.get(field):
            claim[field] = copy.deepcopy(template[field])
    return claim


def claim_for(dv: Mapping[str, Any], source: Source, claim: Mapping[str, Any]) -> Object:
    """The PVC CDI creates for a DataVolume: same name and namespace, controlled by it, with CDI's metadata."""
    claim_labels = {"app": CDI_LABELS["app"]}
    if claim.get("volumeMode") != "Block":
        claim_labels[FILLING_UP_LABEL] = "disabled"
    claim_labels.update(labels_of(dv))
    claim_labels.update(CDI_LABELS)
    claim_annotations = dict(annotations_of(dv))
    claim_annotations.update(
        {
            POD_RESTARTS: "0",
            CONTENT_TYPE: str(spec(dv).get("contentType") or "kubevirt"),
            PREALLOCATION_REQUESTED: "true" if spec(dv).get("preallocation") else "false",
            CREATED_FOR: uid_of(dv),
        }
    )
    if source.kind == BLANK:
        claim_annotations[IMPORT_SOURCE] = "none"
    elif source.cloned:
        claim_annotations[CLONE_REQUEST] = f"{source.namespace}/{source.name}"
    elif source.kind == POPULATOR:
        claim_annotations[EXTERNAL_POPULATION] = "true"
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": name_of(dv),
            "namespace": namespace_of(dv),
            "labels": claim_labels,
            "annotations": claim_annotations,
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": KIND,
                    "name": name_of(dv),
                    "uid": uid_of(dv),
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": dict(claim),
    }


def controlled_by(claim: Mapping[str, Any], dv: Mapping[str, Any]) -> bool:
    return any(
        ref.get("controller") and ref.get("kind") == KIND and ref.get("uid") == uid_of(dv)
        for ref in metadata(claim).get("ownerReferences") or ()
    )


def datavolume_owner(claim: Mapping[str, Any]) -> tuple[str, str] | None:
    """(name, uid) of the DataVolume controlling a claim, if one does."""
    for ref in metadata(claim).get("ownerReferences") or ():
        if ref.get("controller") and ref.get("kind") == KIND and str(ref.get("apiVersion", "")).startswith("cdi."):
            return str(ref.get("name")), str(ref.get("uid"))
    return None


# --- the simulated importer and cloner pods ----------------------------------------------------------------


def transfer_state(claim: Mapping[str, Any]) -> str:
    """ "" before the transfer pod ran, then its phase as CDI records it on the claim."""
    return str(annotations_of(claim).get(POD_PHASE) or "")


def transfer_started(source: Source, claim: Mapping[str, Any]) -> dict[str, str]:
    """Annotations the import/clone controllers write while their pod runs."""
    started = {POD_PHASE: "Running", RUNNING: "true", RUNNING_MESSAGE: "", RUNNING_REASON: POD_RUNNING_REASON}
    if source.kind == BLANK:
        started[IMPORT_POD] = f"importer-{name_of(claim)}"
    return started


def transfer_finished(source: Source) -> dict[str, str]:
    """Annotations once the pod terminated: reason Completed, its termination message, and CloneOf for clones."""
    finished = {
        POD_PHASE: SUCCEEDED,
        RUNNING: "false",
        RUNNING_MESSAGE: CLONE_COMPLETE if source.cloned else IMPORT_COMPLETE,
        RUNNING_REASON: COMPLETED_REASON,
    }
    if source.cloned:
        finished[CLONE_OF] = "true"
    return finished


# --- status ------------------------------------------------------------------------------------------------


def find_condition(conditions: Iterable[Mapping[str, Any]], kind: str) -> Mapping[str, Any] | None:
    return next((c for c in conditions if c.get("type") == kind), None)


def set_condition(
    conditions: Sequence[Mapping[str, Any]], kind: str, state: str, reason: str, message: str, at: str
) -> list[dict[str, Any]]:
    """CDI's updateCondition: a new status moves both timestamps, a new reason or message only the heartbeat."""
    result = [dict(c) for c in conditions]
    current = next((c for c in result if c.get("type") == kind), None)
    if current is None:
        current = {"type": kind}
        result.append(current)
    changed_status = current.get("status") != state
    changed_text = current.get("reason", "") != reason or current.get("message", "") != message
    if changed_status:
        current["lastTransitionTime"] = at
    if changed_status or changed_text:
        current["lastHeartbeatTime"] = at
        current.pop("reason", None)
        current.pop("message", None)
        if message:
            current["message"] = message
        if reason:
            current["reason"] = reason
    current["status"] = state
    return result


def _bound_condition(claim: Mapping[str, Any] | None, obstacle: Obstacle | None) -> tuple[str, str, str]:
    if claim is None:
        if obstacle is not None and obstacle.in_status:
            return "False", obstacle.reason, obstacle.message
        return "False", "NotFound", "No PVC found"
    phase = status(claim).get("phase")
    if phase == "Bound":
        return "True", "Bound", f"PVC {name_of(claim)} Bound"
    if phase == "Pending":
        return "False", "Pending", f"PVC {name_of(claim)} Pending"
    if phase == "Lost":
        return "False", "ClaimLost", "Claim Lost"
    return "False", "", ""


def _running_condition(claim: Mapping[str, Any] | None) -> tuple[str, str, str]:
    notes = annotations_of(claim) if claim is not None else {}
    running = str(notes.get(RUNNING, "")).lower()
    state = "True" if running == "true" else "False" if running in ("false", "") else "Unknown"
    return state, str(notes.get(RUNNING_REASON) or ""), str(notes.get(RUNNING_MESSAGE) or "")


def _transfer_phase(source: Source, claim: Mapping[str, Any], phase: str) -> str:
    pod = transfer_state(claim)
    scheduled, in_progress = (
        (CLONE_SCHEDULED, CLONE_IN_PROGRESS) if source.cloned else (IMPORT_SCHEDULED, IMPORT_IN_PROGRESS)
    )
    if pod == "Running":
        return in_progress
    if pod == "Pending":
        return scheduled
    waiting_pod = CLONE_REQUEST if source.cloned else IMPORT_POD
    return scheduled if waiting_pod in annotations_of(claim) else phase


def phase_for(dv: Mapping[str, Any], source: Source, claim: Mapping[str, Any] | None, obstacle: Obstacle | None) -> str:
    """The phase CDI's updateStatus derives from the claim and the transfer pod's phase."""
    phase = str(status(dv).get("phase") or "")
    if claim is None:
        # A clone without its source keeps whatever phase it had (none, for a new DataVolume).
        return phase if obstacle is not None and obstacle.in_status else PENDING
    if source.transferred and transfer_state(claim) == SUCCEEDED:
        return SUCCEEDED
    claim_phase = status(claim).get("phase")
    if claim_phase == "Pending":
        return PENDING
    if claim_phase == "Lost":
        return FAILED
    if claim_phase != "Bound":
        return UNKNOWN if claim_phase else phase
    if phase in ("", PENDING, "WaitForFirstConsumer", UNKNOWN):
        phase = PVC_BOUND
    if not source.transferred:
        return SUCCEEDED  # populated by the provisioner (CSI clone or restore) or an external populator
    return _transfer_phase(source, claim, phase)


def status_for(
    dv: Mapping[str, Any], source: Source, claim: Mapping[str, Any] | None, obstacle: Obstacle | None, at: str
) -> dict[str, Any]:
    """The whole status CDI would write; equal to the current one when nothing changed."""
    current = dict(status(dv))
    phase = phase_for(dv, source, claim, obstacle)
    wanted: dict[str, Any] = {k: v for k, v in current.items() if k not in ("phase", "conditions")}
    if phase:
        wanted["phase"] = phase
    if claim is not None:
        wanted["claimName"] = name_of(claim)
        restarts = str(annotations_of(claim).get(POD_RESTARTS, ""))
        if restarts.isdigit():
            wanted["restartCount"] = int(restarts)
        if phase == SUCCEEDED and source.transferred:
            wanted["progress"] = PROGRESS_DONE
        wanted.setdefault("progress", PROGRESS_UNKNOWN)
    text = (obstacle.reason, obstacle.message) if claim is None and obstacle and obstacle.in_status else ("", "")
    ready = {SUCCEEDED: "True", UNKNOWN: "Unknown"}.get(phase, "False")
    running = _running_condition(claim)
    conditions: list[dict[str, Any]] = list(current.get("conditions") or ())
    conditions = set_condition(conditions, "Bound", *_bound_condition(claim, obstacle), at)
    if running[0] == "True":
        conditions = set_condition(conditions, "Ready", "False", "TransferRunning", "", at)
    else:
        conditions = set_condition(conditions, "Ready", ready, text[0], text[1], at)
    conditions = set_condition(conditions, "Running", *running, at)
    wanted["conditions"] = conditions
    return wanted


def events_for(dv: Mapping[str, Any], source: Source, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[Event]:
    """Events CDI emits: the Bound condition whenever it changes, and one per phase transition."""
    events: list[Event] = []
    old_bound = find_condition(old.get("conditions") or (), "Bound")
    new_bound = find_condition(new.get("conditions") or (), "Bound")
    text = ("status", "reason", "message")
    if new_bound and (old_bound is None or any(old_bound.get(f) != new_bound.get(f) for f in text)):
        events.append((NORMAL, str(new_bound.get("reason", "")), str(new_bound.get("message", ""))))
    phase = new.get("phase")
    if phase != old.get("phase"):
        claim = str(new.get("claimName") or name_of(dv))
        where = f"{source.namespace}/{source.name} into {namespace_of(dv)}/{name_of(dv)}"
        phase_events = {
            IMPORT_SCHEDULED: (NORMAL, IMPORT_SCHEDULED, f"Import into {claim} scheduled"),
            IMPORT_IN_PROGRESS: (NORMAL, IMPORT_IN_PROGRESS, f"Import into {claim} in progress"),
            CLONE_SCHEDULED: (NORMAL, CLONE_SCHEDULED, f"Cloning from {where} scheduled"),
            CLONE_IN_PROGRESS: (NORMAL, CLONE_IN_PROGRESS, f"Cloning from {where} in progress"),
        }
        if phase == SUCCEEDED and source.kind == BLANK:
            events.append((NORMAL, "ImportSucceeded", f"Successfully imported into PVC {claim}"))
        elif phase == SUCCEEDED and source.cloned:
            events.append((NORMAL, "CloneSucceeded", f"Successfully cloned from {where}"))
        elif phase in phase_events:
            events.append(phase_events[str(phase)])
    return events
