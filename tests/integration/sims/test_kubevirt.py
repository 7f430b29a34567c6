"""The KubeVirt simulator that the harness runs, seen through the parent kube-apiserver (the hotplug API by
aggregation, VM/VMI objects) and through the guest's disks (loop devices linked under DIR/nodes/<vmi>/by-id)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import functools
import os
import re
import signal
import ssl
import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import pytest
import yaml

from e2e import cluster as harness
from e2e.cluster import nodes
from e2e.cluster.identities import service_account_kubeconfig
from e2e.sims._disks import volume_image
from e2e.sims._kubevirt_disks import by_id_path, by_id_root
from e2e.sims._kubevirt_requests import decode_add_volume, queue_volume_request
from e2e.sims._kubevirt_vm import VirtualMachineController
from kube.client import Client, Object
from kube.config import StaticToken, from_kubeconfig
from kube.errors import BadRequest, Conflict, Forbidden, NotFound
from kube.informer import Informer
from kube.resources import PERSISTENTVOLUMECLAIMS, PERSISTENTVOLUMES, Resource

SUBRESOURCE_VMS = Resource("subresources.kubevirt.io", "v1", "virtualmachines", "VirtualMachine")
SUBRESOURCE_VMIS = Resource("subresources.kubevirt.io", "v1", "virtualmachineinstances", "VirtualMachineInstance")
APISERVICES = Resource("apiregistration.k8s.io", "v1", "apiservices", "APIService", namespaced=False)
ROLES = Resource("rbac.authorization.k8s.io", "v1", "roles", "Role")
ROLEBINDINGS = Resource("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding")
MI = 2**20

T = TypeVar("T")


async def eventually(probe: Callable[[], Awaitable[T]], check: Callable[[T], object], timeout: float = 10.0) -> T:
    """Poll `probe` until its result passes `check` (the simulator watches; only the test polls)."""
    async with asyncio.timeout(timeout):
        while True:
            result = await probe()
            if check(result):
                return result
            await asyncio.sleep(0.02)


def loop_devices_of(image: Path) -> list[str]:
    out = subprocess.run(["losetup", "-j", str(image)], capture_output=True, text=True, check=True).stdout
    return [line.split(":", 1)[0] for line in out.splitlines() if line.strip()]


def links_in(root: Path) -> list[Path]:
    return [path for path in root.iterdir() if path.is_symlink()] if root.is_dir() else []


def device_size(device: str) -> int:
    return int(subprocess.run(["blockdev", "--getsize64", device], capture_output=True, text=True, check=True).stdout)


def token_client(kubeconfig: Path) -> Client:
    """A client sending the kubeconfig's bearer token (set explicitly: from_kubeconfig drops static tokens with
    the kubernetes package's newer loaders, which key the token as BearerToken)."""
    token = yaml.safe_load(kubeconfig.read_text())["users"][0]["user"]["token"]
    config = dataclasses.replace(from_kubeconfig(kubeconfig), credentials=StaticToken(token))
    return Client.from_config(config, "tenant-cloud-tests")


@dataclass
class Lab:
    """One test's VMs, claims and images in the parent namespace; `close` removes them."""

    c: nodes.Clients
    vms: list[str] = field(default_factory=list)
    claims: list[str] = field(default_factory=list)

    @property
    def api(self) -> Client:
        return self.c.parent

    @property
    def namespace(self) -> str:
        return self.c.namespace

    @property
    def directory(self) -> Path:
        return self.c.cluster.dir

    async def vm(self) -> str:
        """A running VM + VMI, as the platform makes a tenant node."""
        name = f"kv-{uuid.uuid4().hex[:8]}"
        self.vms.append(name)
        await nodes.add_node(self.c, name, register=False)
        return name

    async def claim(self, name: str | None = None, size: str = "64Mi", *, bound: bool = True) -> str:
        """A parent PVC bound to its own PV (no controller-manager runs, so the test binds it)."""
        name = name or f"dv-{uuid.uuid4().hex[:8]}"
        self.claims.append(name)
        pv = {
            "metadata": {"name": f"pv-{name}"},
            "spec": {
                "capacity": {"storage": size},
                "accessModes": ["ReadWriteOnce"],
                "hostPath": {"path": f"/tmp/{name}"},
                "claimRef": {"namespace": self.namespace, "name": name},
                "storageClassName": "",
            },
        }
        pvc = {
            "metadata": {"name": name},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": size}},
                "volumeName": f"pv-{name}",
                "storageClassName": "",
            },
        }
        await self.api.create(PERSISTENTVOLUMES, pv)
        await self.api.create(PERSISTENTVOLUMECLAIMS, pvc, self.namespace)
        if bound:
            await self.set_claim_status(name, size)
        return name

    async def set_claim_status(self, name: str, size: str) -> None:
        status = {"phase": "Bound", "capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"]}
        await self.api.patch(PERSISTENTVOLUMECLAIMS, name, {"status": status}, self.namespace, subresource="status")

    async def add_volume(
        self, target: str, claim: str, *, serial: str = "", bus: str = "scsi", vmi: bool = False
    ) -> None:
        body = {
            "name": claim,
            "disk": {"serial": serial or f"serial-{claim}", "disk": {"bus": bus}},
            "volumeSource": {"dataVolume": {"name": claim}},
        }
        resource = SUBRESOURCE_VMIS if vmi else SUBRESOURCE_VMS
        await self.api.call("PUT", resource, target, "addvolume", self.namespace, body=body)

    async def remove_volume(self, target: str, claim: str, *, vmi: bool = False) -> None:
        resource = SUBRESOURCE_VMIS if vmi else SUBRESOURCE_VMS
        await self.api.call("PUT", resource, target, "removevolume", self.namespace, body={"name": claim})

    async def vmi_object(self, name: str) -> Object:
        return await self.api.get(nodes.VMIS, name, self.namespace)

    async def vm_object(self, name: str) -> Object:
        return await self.api.get(nodes.VMS, name, self.namespace)

    async def volume_status(self, vmi: str, volume: str) -> Object | None:
        statuses = ((await self.vmi_object(vmi)).get("status") or {}).get("volumeStatus") or []
        return next((s for s in statuses if s["name"] == volume), None)

    async def until_phase(self, vmi: str, volume: str, phase: str) -> Object:
        status = await eventually(
            lambda: self.volume_status(vmi, volume), lambda s: s is not None and s.get("phase") == phase
        )
        assert status is not None
        return status

    async def until_gone(self, vmi: str, volume: str) -> None:
        await eventually(lambda: self.volume_status(vmi, volume), lambda s: s is None)

    def image(self, claim: str) -> Path:
        return volume_image(self.directory, self.namespace, claim)

    async def close(self) -> None:
        for name in self.vms:
            await nodes.ensure_absent(self.c, name)
        for name in self.claims:
            with contextlib.suppress(NotFound):
                await self.api.delete(PERSISTENTVOLUMECLAIMS, name, self.namespace)
            with contextlib.suppress(NotFound):
                await self.api.delete(PERSISTENTVOLUMES, f"pv-{name}")
        for name in self.vms:
            root = by_id_root(self.directory, name)
            await eventually(functools.partial(asyncio.to_thread, links_in, root), lambda links: not links)
        for name in self.claims:
            self.image(name).unlink(missing_ok=True)


@pytest.fixture
async def lab(cluster: harness.Cluster) -> AsyncIterator[Lab]:
    async with nodes.clients(cluster) as clients:
        lab = Lab(clients)
        yield lab
        await lab.close()


class PhaseRecorder:
    """Every phase one volume of one VMI goes through, as a watcher of the VMI sees them."""

    def __init__(self, api: Client, namespace: str, vmi: str, volume: str) -> None:
        self.informer = Informer(api, nodes.VMIS, namespace=namespace, field_selector=f"metadata.name={vmi}")
        self.volume = volume
        self.phases: list[str] = []
        self.informer.add_handlers(on_add=self._record, on_update=lambda _old, new: self._record(new))

    def _record(self, vmi: Object) -> None:
        statuses = (vmi.get("status") or {}).get("volumeStatus") or []
        phase = next((s.get("phase") for s in statuses if s["name"] == self.volume), None) or "absent"
        if not self.phases or self.phases[-1] != phase:
            self.phases.append(phase)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[PhaseRecorder]:
        task = asyncio.create_task(self.informer.run())
        try:
            await self.informer.wait_synced(10)
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def test_virt_api_is_aggregated_into_the_parent(lab: Lab) -> None:
    apiservice = await lab.api.get(APISERVICES, "v1.subresources.kubevirt.io")
    assert apiservice["spec"]["service"]["namespace"] == "kubevirt"
    conditions = {c["type"]: c["status"] for c in apiservice["status"]["conditions"]}
    assert conditions["Available"] == "True"
    listing = await lab.api.transport.request("GET", "/apis/subresources.kubevirt.io/v1")
    assert {"virtualmachines/addvolume", "virtualmachineinstances/removevolume"} <= {
        r["name"] for r in listing["resources"]
    }


async def test_vm_addvolume_reaches_template_vmi_and_guest(lab: Lab) -> None:
    vm, claim = await lab.vm(), await lab.claim(size="64Mi")
    async with PhaseRecorder(lab.api, lab.namespace, vm, claim).running() as recorder:
        await lab.add_volume(vm, claim, serial="0a1b2c3d-serial")
        status = await lab.until_phase(vm, claim, "Ready")
    assert recorder.phases == ["absent", "Bound", "AttachedToNode", "MountedToPod", "Ready"]
    assert status["target"] == "sda"
    assert status["reason"] == "VolumeReady"
    assert status["hotplugVolume"]["attachPodName"].startswith("hp-volume-")
    assert status["hotplugVolume"]["attachPodUID"]
    assert status["persistentVolumeClaimInfo"]["capacity"] == {"storage": "64Mi"}

    template = (await lab.vm_object(vm))["spec"]["template"]["spec"]
    expected_volume = {"name": claim, "dataVolume": {"name": claim, "hotpluggable": True}}
    assert expected_volume in template["volumes"]
    assert {"name": claim, "serial": "0a1b2c3d-serial", "disk": {"bus": "scsi"}} in template["domain"]["devices"][
        "disks"
    ]
    assert expected_volume in (await lab.vmi_object(vm))["spec"]["volumes"]
    vm_status = (await lab.vm_object(vm)).get("status") or {}
    assert not vm_status.get("volumeRequests")

    link = by_id_path(lab.directory, vm, "scsi", "0a1b2c3d-serial")
    assert link.name == "scsi-0QEMU_QEMU_HARDDISK_0a1b2c3d-serial"
    device = str(link.readlink())
    assert device.startswith("/dev/loop")
    assert loop_devices_of(lab.image(claim)) == [device]
    assert device_size(device) == 64 * MI == lab.image(claim).stat().st_size


@contextlib.contextmanager
def simulator_paused(cluster: harness.Cluster, name: str) -> Iterator[None]:
    """SIGSTOP one of the harness's simulators, so only the test's own copy of its controllers acts."""
    pid = next(p.pid for p in harness.load(cluster.dir).processes if p.name == name)
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


async def test_vm_request_reaches_a_vmi_the_cache_has_not_seen(lab: Lab) -> None:
    """A VMI informer still relisting after an apiserver restart does not hold a VMI started moments ago; the
    VM's queued request must still reach that VMI, not be trimmed as if none ran (the hot-plug would be lost)."""
    vm, claim = await lab.vm(), await lab.claim()
    vms = Informer(lab.api, nodes.VMS, namespace=lab.namespace)
    behind = Informer(lab.api, nodes.VMIS, namespace=lab.namespace)  # never run: holds no VMI at all
    controller = VirtualMachineController(lab.api, vms, behind)
    body = {"name": claim, "disk": {"disk": {"bus": "scsi"}}, "volumeSource": {"dataVolume": {"name": claim}}}
    with simulator_paused(lab.c.cluster, "kubevirt"):
        # What virt-api does on addvolume: queue the request in the VM's status.
        requests = queue_volume_request([], decode_add_volume(body))
        await lab.api.patch(
            nodes.VMS, vm, {"status": {"volumeRequests": requests}}, lab.namespace, subresource="status"
        )
        task = asyncio.create_task(vms.run())
        try:
            await vms.wait_synced(10)
            assert requested(vms.store.get(f"{lab.namespace}/{vm}"))
            await controller.reconcile(f"{lab.namespace}/{vm}")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        expected = {"name": claim, "dataVolume": {"name": claim, "hotpluggable": True}}
        assert expected in (await lab.vmi_object(vm))["spec"].get("volumes", [])
        assert expected in (await lab.vm_object(vm))["spec"]["template"]["spec"]["volumes"]
        assert not ((await lab.vm_object(vm)).get("status") or {}).get("volumeRequests")
    await lab.until_phase(vm, claim, "Ready")


def requested(vm: Object | None) -> bool:
    return bool(vm and (vm.get("status") or {}).get("volumeRequests"))


async def test_vm_removevolume_detaches_everything(lab: Lab) -> None:
    vm, claim = await lab.vm(), await lab.claim()
    await lab.add_volume(vm, claim)
    await lab.until_phase(vm, claim, "Ready")
    link = by_id_path(lab.directory, vm, "scsi", f"serial-{claim}")
    assert link.is_symlink()

    async with PhaseRecorder(lab.api, lab.namespace, vm, claim).running() as recorder:
        await lab.remove_volume(vm, claim)
        await lab.until_gone(vm, claim)
    assert recorder.phases == ["Ready", "Detaching", "absent"]
    assert not link.is_symlink()
    assert loop_devices_of(lab.image(claim)) == []
    template = (await lab.vm_object(vm))["spec"]["template"]["spec"]
    assert claim not in {v["name"] for v in template.get("volumes") or []}
    assert claim not in {d["name"] for d in template["domain"]["devices"].get("disks") or []}
    assert lab.image(claim).exists()  # the data outlives the attachment


async def test_vmi_level_hotplug_changes_only_the_vmi(lab: Lab) -> None:
    vm, claim = await lab.vm(), await lab.claim()
    await lab.add_volume(vm, claim, vmi=True, bus="virtio", serial="virtio-serial-longer-than-twenty")
    status = await lab.until_phase(vm, claim, "Ready")
    assert status["target"] == "vda"
    link = by_id_root(lab.directory, vm) / "virtio-virtio-serial-longer"  # QEMU keeps 20 characters
    assert link.is_symlink()
    template = (await lab.vm_object(vm))["spec"]["template"]["spec"]
    assert claim not in {v["name"] for v in template.get("volumes") or []}

    with pytest.raises(Conflict, match=rf"Unable to remove volume \[{claim}\] because it does not exist"):
        await lab.remove_volume(vm, claim)  # the VM never had it
    await lab.remove_volume(vm, claim, vmi=True)
    await lab.until_gone(vm, claim)
    assert not link.is_symlink()
    assert loop_devices_of(lab.image(claim)) == []


async def test_errors_read_like_virt_api(lab: Lab) -> None:
    vm, claim = await lab.vm(), await lab.claim()
    with pytest.raises(NotFound, match=re.escape('virtualmachine.kubevirt.io "no-such-vm" not found')):
        await lab.add_volume("no-such-vm", claim)
    with pytest.raises(NotFound, match=re.escape('virtualmachineinstance.kubevirt.io "no-such-vmi" not found')):
        await lab.add_volume("no-such-vmi", claim, vmi=True)
    with pytest.raises(BadRequest, match="AddVolumeOptions requires name to be set"):
        await lab.api.call("PUT", SUBRESOURCE_VMS, vm, "addvolume", lab.namespace, body={"disk": {}})
    with pytest.raises(Conflict, match=rf"Unable to remove volume \[{claim}\] because it does not exist"):
        await lab.remove_volume(vm, claim)

    await lab.add_volume(vm, claim)
    await lab.until_phase(vm, claim, "Ready")
    with pytest.raises(Conflict) as duplicate:
        await lab.add_volume(vm, claim)
    assert duplicate.value.message == (
        f'Operation cannot be fulfilled on virtualmachine.kubevirt.io "{vm}": '
        f"Unable to add volume [{claim}] because volume with that name already exists"
    )
    with pytest.raises(Conflict, match=r"Unable to add volume source \[.*\] because it already exists"):
        await lab.api.call(
            "PUT",
            SUBRESOURCE_VMS,
            vm,
            "addvolume",
            lab.namespace,
            body={"name": "other", "disk": {"disk": {"bus": "scsi"}}, "volumeSource": {"dataVolume": {"name": claim}}},
        )


async def test_dry_run_changes_nothing(lab: Lab) -> None:
    vm, claim = await lab.vm(), await lab.claim()
    body = {"name": claim, "disk": {"serial": "s"}, "volumeSource": {"dataVolume": {"name": claim}}, "dryRun": ["All"]}
    await lab.api.call("PUT", SUBRESOURCE_VMS, vm, "addvolume", lab.namespace, body=body)
    await asyncio.sleep(0.3)
    assert not ((await lab.vm_object(vm)).get("status") or {}).get("volumeRequests")
    assert claim not in {v["name"] for v in (await lab.vmi_object(vm))["spec"].get("volumes") or []}


async def test_a_volume_without_its_pvc_waits_pending(lab: Lab) -> None:
    vm = await lab.vm()
    claim = f"dv-{uuid.uuid4().hex[:8]}"
    await lab.add_volume(vm, claim)
    status = await lab.until_phase(vm, claim, "Pending")
    assert (status["reason"], status["message"]) == ("FailedPvcNotFound", f"PVC {claim} not found")
    await asyncio.sleep(0.2)
    assert (await lab.volume_status(vm, claim) or {}).get("phase") == "Pending"

    await lab.claim(claim, bound=False)
    status = await lab.until_phase(vm, claim, "Pending")
    await eventually(lambda: lab.volume_status(vm, claim), lambda s: (s or {}).get("reason") == "PVCNotReady")
    await lab.set_claim_status(claim, "64Mi")
    await lab.until_phase(vm, claim, "Ready")
    assert by_id_path(lab.directory, vm, "scsi", f"serial-{claim}").is_symlink()


async def test_one_volume_on_two_running_vmis(lab: Lab) -> None:
    first, second, claim = await lab.vm(), await lab.vm(), await lab.claim()
    await lab.add_volume(first, claim)
    await lab.add_volume(second, claim, vmi=True)
    await lab.until_phase(first, claim, "Ready")
    await lab.until_phase(second, claim, "Ready")
    devices = {str(by_id_path(lab.directory, vmi, "scsi", f"serial-{claim}").readlink()) for vmi in (first, second)}
    assert len(devices) == 2
    assert sorted(loop_devices_of(lab.image(claim))) == sorted(devices)


async def test_capacity_growth_reaches_the_guest(lab: Lab) -> None:
    vm, claim = await lab.vm(), await lab.claim(size="64Mi")
    await lab.add_volume(vm, claim)
    await lab.until_phase(vm, claim, "Ready")
    device = str(by_id_path(lab.directory, vm, "scsi", f"serial-{claim}").readlink())
    assert device_size(device) == 64 * MI

    await lab.set_claim_status(claim, "128Mi")  # what the resizer reports once the parent volume grew
    await eventually(lambda: asyncio.to_thread(device_size, device), lambda size: size == 128 * MI)
    status = await eventually(
        lambda: lab.volume_status(vm, claim),
        lambda s: (s or {}).get("persistentVolumeClaimInfo", {}).get("capacity") == {"storage": "128Mi"},
    )
    assert status is not None and status["phase"] == "Ready"


async def test_rbac_decides_who_may_hotplug(lab: Lab, tmp_path: Path) -> None:
    vm, claim = await lab.vm(), await lab.claim()
    account = f"csi-{uuid.uuid4().hex[:6]}"
    kubeconfig = await asyncio.to_thread(
        service_account_kubeconfig, lab.c.cluster, "parent", lab.namespace, account, tmp_path / "sa.kubeconfig"
    )
    async with token_client(kubeconfig) as limited:
        body = {"name": claim, "disk": {"serial": "s"}, "volumeSource": {"dataVolume": {"name": claim}}}
        with pytest.raises(Forbidden, match="virtualmachines/addvolume"):
            await limited.call("PUT", SUBRESOURCE_VMS, vm, "addvolume", lab.namespace, body=body)

        rule = {
            "apiGroups": ["subresources.kubevirt.io"],
            "resources": ["virtualmachines/addvolume"],
            "verbs": ["update"],
        }
        await lab.api.create(ROLES, {"metadata": {"name": account}, "rules": [rule]}, lab.namespace)
        binding = {
            "metadata": {"name": account},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": account},
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": lab.namespace}],
        }
        await lab.api.create(ROLEBINDINGS, binding, lab.namespace)
        try:

            async def attempt() -> bool:
                try:
                    await limited.call("PUT", SUBRESOURCE_VMS, vm, "addvolume", lab.namespace, body=body)
                except Forbidden:
                    return False
                return True

            await eventually(attempt, bool)
            await lab.until_phase(vm, claim, "Ready")
            with pytest.raises(Forbidden, match="virtualmachines/removevolume"):
                await limited.call("PUT", SUBRESOURCE_VMS, vm, "removevolume", lab.namespace, body={"name": claim})
        finally:
            for resource in (ROLEBINDINGS, ROLES):
                with contextlib.suppress(NotFound):
                    await lab.api.delete(resource, account, lab.namespace)


async def _direct(lab: Lab, headers: dict[str, str], *, client_cert: bool = True) -> tuple[int, dict[str, Any]]:
    """Call the simulated virt-api directly, as the aggregator would (front-proxy client certificate)."""
    apiservice = await lab.api.get(APISERVICES, "v1.subresources.kubevirt.io")
    port = apiservice["spec"]["service"]["port"]
    tls = ssl.create_default_context(cadata=base64.b64decode(apiservice["spec"]["caBundle"]).decode())
    if client_cert:
        pki = lab.c.cluster.parent.pki
        tls.load_cert_chain(pki / "front-proxy-client.crt", pki / "front-proxy-client.key")
    url = f"https://127.0.0.1:{port}/apis/subresources.kubevirt.io/v1/namespaces/{lab.namespace}/virtualmachines/x/addvolume"
    async with (
        aiohttp.ClientSession() as session,
        session.put(url, json={"name": "v"}, headers=headers, ssl=tls) as response,
    ):
        return response.status, await response.json()


async def test_virt_api_authorises_the_caller_itself(lab: Lab) -> None:
    status, body = await _direct(
        lab, {"X-Remote-User": "system:serviceaccount:nowhere:nobody", "X-Remote-Group": "system:authenticated"}
    )
    assert (status, body["kind"], body["reason"]) == (403, "Status", "Forbidden")
    assert (
        'User "system:serviceaccount:nowhere:nobody" cannot update resource "virtualmachines/addvolume"'
        in body["message"]
    )

    status, body = await _direct(lab, {"X-Remote-User": "someone"})
    assert (status, body["reason"]) == (401, "Unauthorized")

    with pytest.raises(aiohttp.ClientError):
        await _direct(lab, {"X-Remote-User": "someone", "X-Remote-Group": "g"}, client_cert=False)
