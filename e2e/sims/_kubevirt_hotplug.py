"""virt-api's addvolume / removevolume behind the HTTP layer. With the HotplugVolumes feature gate a VM-level
request is queued in the VM's status.volumeRequests (virt-controller applies it); a VMI-level request patches
the running VMI's spec directly. Every patch carries a JSON-patch test of what it read, as virt-api's do."""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from typing import Any

from e2e.sims._kubevirt_errors import StatusError, conflict, internal, not_found
from e2e.sims._kubevirt_requests import (
    apply_volume_request,
    decode_add_volume,
    decode_remove_volume,
    dry_run,
    queue_volume_request,
    verify_volume_option,
)
from e2e.sims._kubevirt_spec import VMIS, VMS, Object, is_running, volumes_of
from e2e.sims._kubevirt_writes import lost_race, set_ops, spec_ops
from kube.client import Client, PatchType
from kube.errors import ApiError, Invalid, NotFound
from kube.resources import Resource

VM_KIND = "virtualmachine"
VMI_KIND = "virtualmachineinstance"
VMI_NOT_RUNNING = "VMI is not running"
ADD_VOLUME = "addvolume"
REMOVE_VOLUME = "removevolume"
# A JSON-patch test that failed because a controller wrote in between is retried from a fresh read.
_ATTEMPTS = 8
_RETRY_JITTER = 0.005


def passthrough(error: Invalid) -> StatusError:
    causes = [{"field": c.field, "reason": c.reason, "message": c.message} for c in error.causes]
    return StatusError(422, "Invalid", error.message, {**error.details, "causes": causes} if causes else error.details)


class Hotplug:
    def __init__(self, client: Client) -> None:
        self.client = client
        # Requests for one object take turns, so concurrent attaches to one VM never race each other's patch.
        self._turns: defaultdict[tuple[str, str, str], asyncio.Lock] = defaultdict(asyncio.Lock)

    async def handle(self, resource: str, action: str, namespace: str, name: str, body: Any) -> None:
        request = decode_add_volume(body) if action == ADD_VOLUME else decode_remove_volume(body)
        async with self._turns[(resource, namespace, name)]:
            await self._apply(resource, namespace, name, request)

    async def _apply(self, resource: str, namespace: str, name: str, request: Object) -> None:
        for attempt in range(_ATTEMPTS):
            try:
                if resource == VMS.plural:
                    await self._queue_on_vm(namespace, name, request)
                else:
                    await self._patch_vmi(namespace, name, request)
                return
            except Invalid as error:
                if not lost_race(error) or attempt == _ATTEMPTS - 1:
                    raise passthrough(error) from error
                await asyncio.sleep(random.uniform(0, _RETRY_JITTER * 2**attempt))
            except ApiError as error:
                raise internal(
                    f"unable to patch {'vm status' if resource == VMS.plural else 'vmi'}: {error}"
                ) from error

    async def _fetch(self, resource: Resource, kind: str, namespace: str, name: str) -> Object:
        try:
            return await self.client.get(resource, name, namespace)
        except NotFound as error:
            raise not_found(kind, name) from error
        except ApiError as error:
            raise internal(f"unable to retrieve {'vm' if resource is VMS else 'vmi'} [{name}]: {error}") from error

    async def _queue_on_vm(self, namespace: str, name: str, request: Object) -> None:
        vm = await self._fetch(VMS, VM_KIND, namespace, name)
        template = ((vm.get("spec") or {}).get("template") or {}).get("spec") or {}
        cause = verify_volume_option(volumes_of(template), request)
        if cause:
            raise conflict(VM_KIND, name, cause)
        try:
            requests = queue_volume_request((vm.get("status") or {}).get("volumeRequests") or [], request)
        except ValueError as error:
            raise conflict(VM_KIND, name, str(error)) from error
        ops = set_ops(vm, ("status", "volumeRequests"), requests)
        await self.client.patch(
            VMS, name, ops, namespace, patch_type=PatchType.JSON, subresource="status", dry_run=dry_run(request)
        )

    async def _patch_vmi(self, namespace: str, name: str, request: Object) -> None:
        vmi = await self._fetch(VMIS, VMI_KIND, namespace, name)
        if not is_running(vmi):
            raise conflict(VMI_KIND, name, VMI_NOT_RUNNING)
        spec = vmi.get("spec") or {}
        cause = verify_volume_option(volumes_of(spec), request)
        if cause:
            raise conflict(VMI_KIND, name, cause)
        ops = spec_ops(vmi, ("spec",), apply_volume_request(spec, request))
        if ops:
            await self.client.patch(VMIS, name, ops, namespace, patch_type=PatchType.JSON, dry_run=dry_run(request))
