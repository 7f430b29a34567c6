"""KubeVirt, as far as the CSI driver relies on it, acting only through the real parent kube-apiserver.

- virt-api: the subresources.kubevirt.io/v1 hotplug endpoints (addvolume / removevolume on VMs and VMIs), served over
  TLS and reached through the apiserver by API aggregation, authorised with SubjectAccessReviews;
- virt-controller: VM status.volumeRequests applied to the VM template and the running VMI, and the VMI's
  status.volumeStatus driven through Pending, Bound, AttachedToNode, MountedToPod, Ready and Detaching;
- virt-handler and the guest: a Ready volume's image (e2e.sims._disks) attached as a loop device and linked under
  DIR/nodes/<vmi>/by-id (e2e.sims._kubevirt_disks), resized with its PVC, released on removal and on shutdown.

Run as `python -m e2e.sims.kubevirt --dir DIR` (the harness does).
"""

from __future__ import annotations

import asyncio

from e2e.sims._kubevirt_aggregation import issue_serving_certificate, register, serve, server_tls, wait_available
from e2e.sims._kubevirt_api import Authorizer, virt_api
from e2e.sims._kubevirt_guest import GuestDisks
from e2e.sims._kubevirt_hotplug import Hotplug
from e2e.sims._kubevirt_spec import VMIS, VMS
from e2e.sims._kubevirt_vm import VirtualMachineController
from e2e.sims._kubevirt_vmi import CLAIM_INDEX, VirtualMachineInstanceController, claims_of
from e2e.sims.common import Simulation, run
from kube.client import Client
from kube.config import from_kubeconfig
from kube.informer import Informer, run_informers, wait_all_synced
from kube.resources import PERSISTENTVOLUMECLAIMS
from kube.transport import TransportSettings

FIELD_MANAGER = "sim-kubevirt"
# Well above what a benchmark's burst of attaches needs, so the simulator never throttles the code under test.
TRANSPORT = TransportSettings(qps=500.0, burst=1000, user_agent="sim-kubevirt")
SYNC_TIMEOUT = 20.0
AVAILABLE_TIMEOUT = 20.0


async def simulate(sim: Simulation) -> None:
    directory = sim.cluster.dir
    async with Client.from_config(from_kubeconfig(sim.cluster.parent_kubeconfig), FIELD_MANAGER, TRANSPORT) as parent:
        vms = Informer(parent, VMS)
        vmis = Informer(parent, VMIS, indexers={CLAIM_INDEX: claims_of})
        pvcs = Informer(parent, PERSISTENTVOLUMECLAIMS)
        guest = GuestDisks(directory)
        vm_controller = VirtualMachineController(parent, vms, vmis)
        vmi_controller = VirtualMachineInstanceController(parent, vmis, pvcs, guest, directory)
        serving = issue_serving_certificate(directory)
        tls = server_tls(serving, sim.cluster.parent.pki / "front-proxy-ca.crt")
        runner, port = await serve(virt_api(Hotplug(parent), Authorizer(parent)), tls)
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(run_informers([vms, vmis, pvcs]))
                await wait_all_synced([vms, vmis, pvcs], SYNC_TIMEOUT)
                group.create_task(vm_controller.controller.run())
                group.create_task(vmi_controller.controller.run())
                await register(parent, port, serving.ca_pem)
                await wait_available(parent, AVAILABLE_TIMEOUT)
                sim.log.info("virt-api serves subresources.kubevirt.io/v1 on 127.0.0.1:%d", port)
                sim.ready()
        finally:
            await guest.unplug_all()  # no loop device outlives the simulator
            await runner.cleanup()


if __name__ == "__main__":
    run(simulate)
