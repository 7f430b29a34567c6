"""What the volume manager watches (list-watch informers, no polling) and the lookups its reconciles make.

Pods are watched with kubelet's own field selector `spec.nodeName=<node>`; claims, PVs, VolumeAttachments and
CSIDrivers cluster-wide, as kubelet's informers (or its node-authorizer-limited gets) see them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from e2e.kubelet.paths import attachment_name
from e2e.kubelet.spec import ClaimRef, CSIVolume, Waiting, action_for, claimed_volumes, csi_volume, meta
from kube.client import Client, Object
from kube.informer import Informer
from kube.resources import NODES, PERSISTENTVOLUMECLAIMS, PERSISTENTVOLUMES, PODS, VOLUMEATTACHMENTS, Resource

CSIDRIVERS = Resource("storage.k8s.io", "v1", "csidrivers", "CSIDriver", namespaced=False)
UID_INDEX = "uid"


def _attached(node: Object) -> list[Any]:
    return list((node.get("status") or {}).get("volumesAttached") or [])


def _uid(obj: Object) -> Iterable[str]:
    uid = meta(obj).get("uid")
    return (str(uid),) if uid else ()


class World:
    def __init__(self, tenant: Client, node: str, driver: str) -> None:
        self.node = node
        self.driver = driver
        self.pods = Informer(tenant, PODS, field_selector=f"spec.nodeName={node}", indexers={UID_INDEX: _uid})
        self.claims = Informer(tenant, PERSISTENTVOLUMECLAIMS)
        self.volumes = Informer(tenant, PERSISTENTVOLUMES)
        self.attachments = Informer(tenant, VOLUMEATTACHMENTS)
        self.drivers = Informer(tenant, CSIDRIVERS, field_selector=f"metadata.name={driver}")
        self.nodes = Informer(tenant, NODES, field_selector=f"metadata.name={node}")

    @property
    def informers(self) -> list[Informer]:
        return [self.pods, self.claims, self.volumes, self.attachments, self.drivers, self.nodes]

    def on_changes(self, pod_changed: Callable[[str], None]) -> None:
        """Enqueue a pod (by UID) on its own changes, and every pod of the node on any change it may depend on."""

        def pod_event(obj: Object) -> None:
            for uid in _uid(obj):
                pod_changed(uid)

        def everything(_: Object) -> None:
            for pod in self.pods.store.values():
                pod_event(pod)

        def attached_changed(old: Object, new: Object) -> None:
            if _attached(old) != _attached(new):  # not on our own volumesInUse writes or heartbeats
                everything(new)

        self.pods.add_handlers(pod_event, lambda _old, new: pod_event(new), pod_event)
        for informer in (self.claims, self.volumes, self.attachments, self.drivers):
            informer.add_handlers(everything, lambda _old, new: everything(new), everything)
        self.nodes.add_handlers(everything, attached_changed, everything)

    def pod(self, uid: str) -> Object | None:
        found = self.pods.store.by_index(UID_INDEX, uid)
        return found[0] if found else None

    def claim(self, namespace: str, name: str) -> Object | None:
        return self.claims.store.get(f"{namespace}/{name}")

    def persistent_volume(self, name: str) -> Object | None:
        return self.volumes.store.get(name)

    def csi_volumes(self, pod: Object) -> list[CSIVolume]:
        """The pod's volumes of our driver; Waiting while any claim is not bound yet."""
        namespace = str(meta(pod).get("namespace", ""))
        found = (self._volume(ref, namespace) for ref in claimed_volumes(pod))
        return [volume for volume in found if volume is not None]

    def _volume(self, ref: ClaimRef, namespace: str) -> CSIVolume | None:
        pvc = self.claim(namespace, ref.claim)
        pv_name = ((pvc or {}).get("spec") or {}).get("volumeName")
        return csi_volume(ref, namespace, pvc, self.persistent_volume(pv_name) if pv_name else None, self.driver)

    def attach_required(self) -> bool:
        """kubelet waits for a VolumeAttachment unless the CSIDriver says attachRequired: false."""
        driver = self.drivers.store.get(self.driver)
        return driver is None or (driver.get("spec") or {}).get("attachRequired", True) is not False

    def pod_info_on_mount(self) -> bool:
        driver = self.drivers.store.get(self.driver)
        return driver is not None and bool((driver.get("spec") or {}).get("podInfoOnMount"))

    def node_status(self) -> dict[str, Any]:
        return (self.nodes.store.get(self.node) or {}).get("status") or {}

    def publish_context(self, volume: CSIVolume) -> dict[str, str]:
        """The attacher's publish context from the VolumeAttachment; Waiting until the volume is attached.

        kubelet first verifies the attach/detach controller lists the volume in the Node's volumesAttached
        (VerifyControllerAttachedVolume), then waits for the VolumeAttachment to say attached (WaitForAttach).
        """
        if not self.attach_required():
            return {}
        attached = {v.get("name") for v in self.node_status().get("volumesAttached") or []}
        if volume.unique_name not in attached:
            raise Waiting(f"volume {volume.pv_name} is not attached according to the Node's volumesAttached")
        name = attachment_name(volume.handle, volume.driver, self.node)
        attachment = self.attachments.store.get(name)
        if attachment is None:
            raise Waiting(f"VolumeAttachment {name} for {volume.pv_name} does not exist yet")
        if meta(attachment).get("deletionTimestamp"):
            raise Waiting(f"VolumeAttachment {name} for {volume.pv_name} is being deleted")
        status = attachment.get("status") or {}
        if not status.get("attached"):
            error = (status.get("attachError") or {}).get("message")
            raise Waiting(f"volume {volume.pv_name} is not attached yet" + (f": {error}" if error else ""))
        return {str(k): str(v) for k, v in (status.get("attachmentMetadata") or {}).items()}

    def wanted_in_use(self) -> set[str]:
        """Volumes of the pods that should run here, as far as their claims resolve already."""
        names = set()
        for pod in self.pods.store.values():
            if action_for(pod) != "setup":
                continue
            namespace = str(meta(pod).get("namespace", ""))
            for ref in claimed_volumes(pod):
                try:
                    volume = self._volume(ref, namespace)
                except Waiting:
                    continue
                if volume is not None:
                    names.add(volume.unique_name)
        return names
