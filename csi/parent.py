"""The parent cluster as the CSI driver sees it: this cluster's DataVolumes, VMs, VMIs and VolumeSnapshots.

Reads come from informers scoped to the parent namespace and this cluster's labels; a parent object without
those labels (and, for volumes, the volume prefix) does not exist for the driver, whatever ID it is given.
Writes go through the parent kube-apiserver, KubeVirt's subresource API included.
"""

from __future__ import annotations

from typing import Any

from csi.config import DriverConfig
from csi.ids import DEFAULT_BUS, disk_serial
from kube.client import Client, Object
from kube.errors import NotFound
from kube.informer import Changes, Informer, label_indexer
from kube.resources import PERSISTENTVOLUMECLAIMS, Resource

DATAVOLUMES = Resource("cdi.kubevirt.io", "v1beta1", "datavolumes", "DataVolume")
VIRTUALMACHINES = Resource("kubevirt.io", "v1", "virtualmachines", "VirtualMachine")
VIRTUALMACHINEINSTANCES = Resource("kubevirt.io", "v1", "virtualmachineinstances", "VirtualMachineInstance")
VM_SUBRESOURCES = Resource("subresources.kubevirt.io", "v1", "virtualmachines", "VirtualMachine")
VMI_SUBRESOURCES = Resource("subresources.kubevirt.io", "v1", "virtualmachineinstances", "VirtualMachineInstance")
VOLUMESNAPSHOTS = Resource("snapshot.storage.k8s.io", "v1", "volumesnapshots", "VolumeSnapshot")
SOURCE_VOLUME_LABEL = "tenant-cloud.io/source-volume"


def _selector(labels: dict[str, str]) -> str | None:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or None


BUS_ANNOTATION = "tenant-cloud.io/bus"


def bus_of(volume: Object) -> str:
    return str((volume["metadata"].get("annotations") or {}).get(BUS_ANNOTATION, DEFAULT_BUS))


def serial_of(volume: Object) -> str:
    return disk_serial(volume["metadata"]["uid"], bus_of(volume))


def claim_name(volume: Object) -> str:
    """DataVolumes and plain PVCs alike are backed by a PVC of their own name."""
    return str(volume["metadata"]["name"])


def vm_volume_names(vm: Object) -> set[str]:
    template = ((vm.get("spec") or {}).get("template") or {}).get("spec") or {}
    return {v.get("name", "") for v in template.get("volumes") or []}


def vmi_volume_names(vmi: Object) -> set[str]:
    return {v.get("name", "") for v in (vmi.get("spec") or {}).get("volumes") or []}


def vmi_volume_status(vmi: Object, name: str) -> Object | None:
    for status in (vmi.get("status") or {}).get("volumeStatus") or []:
        if status.get("name") == name:
            return dict(status)
    return None


def vmi_volume_phase(vmi: Object, name: str) -> str | None:
    status = vmi_volume_status(vmi, name)
    return None if status is None else str(status.get("phase") or "")


def hotplug_progress(vmi: Object | None, name: str) -> str:
    """Where KubeVirt is with a hot-plugged volume, in its own words (phase, reason, message)."""
    if vmi is None:
        return "the VM has no running instance"
    status = vmi_volume_status(vmi, name)
    if status is None:
        return "not in the VMI's volumeStatus"
    said = ": ".join(str(status[k]) for k in ("reason", "message") if status.get(k))
    return f"{status.get('phase') or 'no phase'}" + (f" ({said})" if said else "")


def volume_progress(volume: Object) -> str:
    """Where CDI is with a parent volume: its phase and what its conditions that are not True say."""
    status = volume.get("status") or {}
    parts = [f"phase {status.get('phase') or 'unknown'}"]
    for condition in status.get("conditions") or []:
        said = ": ".join(str(condition[k]) for k in ("reason", "message") if condition.get(k))
        if condition.get("status") != "True" and said:
            parts.append(f"{condition.get('type')} {said}")
    return "; ".join(parts)


class Parent:
    def __init__(self, client: Client, config: DriverConfig) -> None:
        self.client = client
        self.config = config
        self.namespace = config.namespace
        kind = DATAVOLUMES if config.volume_kind == "DataVolume" else PERSISTENTVOLUMECLAIMS
        self.volume_resource = kind
        ours = _selector(config.labels)
        self.volumes = Informer(client, kind, namespace=self.namespace, label_selector=ours)
        self.vms = Informer(
            client, VIRTUALMACHINES, namespace=self.namespace, label_selector=_selector(config.vm_selector)
        )
        self.vmis = Informer(
            client, VIRTUALMACHINEINSTANCES, namespace=self.namespace, label_selector=_selector(config.vm_selector)
        )
        self.snapshots = Informer(
            client,
            VOLUMESNAPSHOTS,
            namespace=self.namespace,
            label_selector=ours,
            indexers={"source": label_indexer(SOURCE_VOLUME_LABEL)},
        )
        self.changes = Changes(self.informers)

    @property
    def informers(self) -> list[Informer]:
        return [self.volumes, self.vms, self.vmis, self.snapshots]

    def _key(self, name: str) -> str:
        return f"{self.namespace}/{name}"

    def owns(self, obj: Object, *, prefixed: bool = False) -> bool:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        if any(labels.get(k) != v for k, v in self.config.labels.items()):
            return False
        return not prefixed or str(obj["metadata"]["name"]).startswith(self.config.volume_prefix)

    def volume(self, name: str) -> Object | None:
        found = self.volumes.store.get(self._key(name))
        return found if found is not None and self.owns(found, prefixed=True) else None

    async def volume_live(self, name: str) -> Object | None:
        """A live read for a name the watch may not have seen yet (we just created it)."""
        found = self.volume(name)
        if found is not None:
            return found
        try:
            live = await self.client.get(self.volume_resource, name, self.namespace)
        except NotFound:
            return None
        return live if self.owns(live, prefixed=True) else None

    def vm(self, name: str) -> Object | None:
        return self.vms.store.get(self._key(name))

    def vmi(self, name: str) -> Object | None:
        return self.vmis.store.get(self._key(name))

    def vmis_using(self, volume: str) -> list[Object]:
        """Running VMIs whose spec or status lists the volume (the RWO check looks at both)."""
        found = []
        for vmi in self.vmis.store.values():
            listed = volume in vmi_volume_names(vmi) or vmi_volume_phase(vmi, volume) is not None
            if listed and (vmi.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
                found.append(vmi)
        return found

    def vms_with(self, volume: str) -> list[Object]:
        return [vm for vm in self.vms.store.values() if volume in vm_volume_names(vm)]

    def snapshot(self, name: str) -> Object | None:
        found = self.snapshots.store.get(self._key(name))
        return found if found is not None and self.owns(found) else None

    async def claim(self, name: str) -> Object | None:
        try:
            return await self.client.get(PERSISTENTVOLUMECLAIMS, name, self.namespace)
        except NotFound:
            return None

    async def call_vm(self, vm: str, action: str, body: dict[str, Any]) -> None:
        await self.client.call("PUT", VM_SUBRESOURCES, vm, action, self.namespace, body=body, idempotent=False)

    async def call_vmi(self, vmi: str, action: str, body: dict[str, Any]) -> None:
        await self.client.call("PUT", VMI_SUBRESOURCES, vmi, action, self.namespace, body=body, idempotent=False)
