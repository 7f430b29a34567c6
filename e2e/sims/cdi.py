"""CDI + LINSTOR stand-in on the parent: DataVolumes become PVCs, PVCs of `linstor.csi.linbit.com` classes get
provisioned, bound, expanded and reclaimed, and every volume's bytes live in a `_disks` image.

Stands in for CDI's DataVolume controllers, the parent's PV, pvc-protection and garbage-collector controllers
(there is no kube-controller-manager), external-provisioner, csi-resizer and the LINSTOR CSI driver. Decisions
are pure functions (`_cdi_datavolume`, `_cdi_claims`); the controllers (`_cdi_*_controller`) only read the caches,
write what changed, and move bytes.
"""

from __future__ import annotations

import logging

from e2e.sims._cdi_claim_controller import PROVISIONER, PV_CONTROLLER, RESIZER, ClaimController
from e2e.sims._cdi_claims import vmi_claims
from e2e.sims._cdi_datavolume import DATA_SOURCE, PVC, SNAPSHOT, datavolume_owner
from e2e.sims._cdi_dv_controller import COMPONENTS, DataVolumeController
from e2e.sims._cdi_images import Images
from e2e.sims._cdi_meta import key, name_of, namespace_of, spec, status
from e2e.sims._cdi_runtime import Recorders, on_change, run_simulator
from e2e.sims._cdi_view import BY_DATA_SOURCE, BY_SOURCE, DATASOURCES, ParentView, source_key
from e2e.sims._cdi_volume_controller import VolumeController
from e2e.sims.common import Simulation, run
from kube.client import Client, Object
from kube.controller import Controller
from kube.errors import NotFound

log = logging.getLogger(__name__)


class ContainerizedDataImporter:
    """The informers, the three controllers, and which changes wake which controller."""

    def __init__(self, parent: Client, images: Images, *, data_sources: bool) -> None:
        self.view = ParentView(parent, data_sources=data_sources)
        self.recorders = Recorders(parent, {*COMPONENTS.values(), PROVISIONER, RESIZER, PV_CONTROLLER})
        self.datavolumes = DataVolumeController(parent, self.view, images, self.recorders)
        self.claims = ClaimController(parent, self.view, images, self.recorders)
        self.volumes = VolumeController(parent, self.view, images)
        self._watch()

    @property
    def controllers(self) -> list[Controller[str]]:
        return [self.datavolumes.controller, self.claims.controller, self.volumes.controller]

    def _watch(self) -> None:
        view = self.view
        on_change(view.datavolumes, self._datavolume_changed)
        on_change(view.claims, self._claim_changed)
        on_change(view.volumes, self._volume_changed)
        on_change(view.classes, self._class_changed)
        on_change(view.vmis, self._vmi_changed)
        on_change(view.snapshots, self._snapshot_changed)
        if view.data_sources is not None:
            on_change(view.data_sources, self._data_source_changed)

    def _datavolume_changed(self, dv: Object) -> None:
        self.datavolumes.controller.queue.add(key(namespace_of(dv), name_of(dv)))

    def _vmi_changed(self, vmi: Object) -> None:
        """Deleted claims wait for the VMIs using them (pvc-protection)."""
        for claim in vmi_claims(vmi):
            self.claims.controller.queue.add(claim)

    def _snapshot_changed(self, snapshot: Object) -> None:
        self._source_changed(SNAPSHOT, "VolumeSnapshot", snapshot)

    def _data_source_changed(self, data_source: Object) -> None:
        self._source_changed(DATA_SOURCE, "", data_source)

    def _claim_changed(self, claim: Object) -> None:
        namespace, name = namespace_of(claim), name_of(claim)
        self.claims.controller.queue.add(key(namespace, name))
        owner = datavolume_owner(claim)
        if owner is not None:
            self.datavolumes.controller.queue.add(key(namespace, owner[0]))
        if spec(claim).get("volumeName"):
            self.volumes.controller.queue.add(str(spec(claim)["volumeName"]))
        self._source_changed(PVC, "PersistentVolumeClaim", claim)

    def _volume_changed(self, volume: Object) -> None:
        self.volumes.controller.queue.add(name_of(volume))
        ref = spec(volume).get("claimRef") or {}
        if ref.get("name"):
            self.claims.controller.queue.add(key(str(ref.get("namespace")), str(ref["name"])))

    def _source_changed(self, dv_kind: str, claim_kind: str, origin: Object) -> None:
        """DataVolumes cloning from it and claims provisioned from it get another look."""
        namespace, name = namespace_of(origin), name_of(origin)
        for dv in self.view.datavolumes.store.by_index(BY_SOURCE, source_key(dv_kind, namespace, name)):
            self.datavolumes.controller.queue.add(key(namespace_of(dv), name_of(dv)))
        if claim_kind:
            for claim in self.view.claims.store.by_index(BY_DATA_SOURCE, source_key(claim_kind, namespace, name)):
                self.claims.controller.queue.add(key(namespace_of(claim), name_of(claim)))

    def _class_changed(self, _storage_class: Object) -> None:
        """A new or changed class (a default appearing, say) may unblock claims still waiting for one."""
        for claim in self.view.claims.store.values():
            if not spec(claim).get("volumeName") and status(claim).get("phase") in (None, "", "Pending"):
                self.claims.controller.queue.add(key(namespace_of(claim), name_of(claim)))


async def data_sources_served(parent: Client) -> bool:
    """DataSources are optional: the harness installs only the DataVolume CRD."""
    try:
        await parent.discovery.resolve(DATASOURCES.api_version, DATASOURCES.kind)
    except NotFound:
        return False
    return True


async def simulate(sim: Simulation) -> None:
    cdi = ContainerizedDataImporter(
        sim.parent, Images(sim.cluster.dir), data_sources=await data_sources_served(sim.parent)
    )
    await run_simulator(cdi.view.informers, cdi.controllers, cdi.recorders, sim.ready)


if __name__ == "__main__":
    run(simulate)
