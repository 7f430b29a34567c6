"""The parent objects the CDI simulator watches, cluster-wide, with the indexes its controllers look things up by."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from e2e.sims._cdi_claims import data_source_of, vmi_claims
from e2e.sims._cdi_datavolume import DATA_SOURCE, PVC, SNAPSHOT, datavolume_owner, source_of
from e2e.sims._cdi_meta import key, namespace_of
from kube.client import Client, Object
from kube.informer import Informer
from kube.resources import PERSISTENTVOLUMECLAIMS, PERSISTENTVOLUMES, STORAGECLASSES, Resource

DATAVOLUMES = Resource("cdi.kubevirt.io", "v1beta1", "datavolumes", "DataVolume")
DATASOURCES = Resource("cdi.kubevirt.io", "v1beta1", "datasources", "DataSource")
VOLUMESNAPSHOTS = Resource("snapshot.storage.k8s.io", "v1", "volumesnapshots", "VolumeSnapshot")
VMIS = Resource("kubevirt.io", "v1", "virtualmachineinstances", "VirtualMachineInstance")

BY_SOURCE = "source"
BY_OWNER = "owner"
BY_DATA_SOURCE = "data-source"
BY_CLAIM = "claim"


def source_key(kind: str, namespace: str, name: str) -> str:
    return f"{kind}:{namespace}/{name}"


def _datavolume_sources(dv: Object) -> Iterable[str]:
    source = source_of(dv)
    return (
        (source_key(source.kind, source.namespace, source.name),) if source.kind in (PVC, SNAPSHOT, DATA_SOURCE) else ()
    )


def _claim_owner(claim: Object) -> Iterable[str]:
    owner = datavolume_owner(claim)
    return (key(namespace_of(claim), owner[0]),) if owner else ()


def _claim_data_source(claim: Object) -> Iterable[str]:
    source = data_source_of(claim)
    return (source.key,) if source else ()


class ParentView:
    """Informers over DataVolumes, PVCs, PVs, StorageClasses, VMIs, VolumeSnapshots and (if served) DataSources."""

    def __init__(self, parent: Client, *, data_sources: bool) -> None:
        self.datavolumes = Informer(parent, DATAVOLUMES, indexers={BY_SOURCE: _datavolume_sources})
        self.claims = Informer(
            parent, PERSISTENTVOLUMECLAIMS, indexers={BY_OWNER: _claim_owner, BY_DATA_SOURCE: _claim_data_source}
        )
        self.volumes = Informer(parent, PERSISTENTVOLUMES)
        self.classes = Informer(parent, STORAGECLASSES)
        self.vmis = Informer(parent, VMIS, indexers={BY_CLAIM: vmi_claims})
        self.snapshots = Informer(parent, VOLUMESNAPSHOTS)
        self.data_sources = Informer(parent, DATASOURCES) if data_sources else None

    @property
    def informers(self) -> list[Informer]:
        watched = [self.datavolumes, self.claims, self.volumes, self.classes, self.vmis, self.snapshots]
        return watched + ([self.data_sources] if self.data_sources is not None else [])

    def claim(self, namespace: str, name: str) -> Object | None:
        return self.claims.store.get(key(namespace, name))

    def snapshot(self, namespace: str, name: str) -> Object | None:
        return self.snapshots.store.get(key(namespace, name))

    def storage_class(self, name: Any) -> Object | None:
        return self.classes.store.get(str(name)) if name else None

    def data_source(self, namespace: str, name: str) -> Object | None:
        return self.data_sources.store.get(key(namespace, name)) if self.data_sources is not None else None

    def users_of(self, namespace: str, claim: str) -> list[Object]:
        """VMIs listing the claim (directly or as a DataVolume) among their volumes."""
        return self.vmis.store.by_index(BY_CLAIM, key(namespace, claim))
