"""virt-api's hotplug request logic, as pure functions: decoding AddVolumeOptions / RemoveVolumeOptions, checking
them against a spec, queueing them in a VM's status.volumeRequests and applying them to a VMI spec."""

from __future__ import annotations

import copy
from typing import Any

from e2e.sims._kubevirt_errors import bad_request
from e2e.sims._kubevirt_spec import Object, disks_of, hotpluggable, volumes_of

DRY_RUN_ALL = "All"
_SOURCES = ("dataVolume", "persistentVolumeClaim")


def _object(body: Any, what: str) -> Object:
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise bad_request(
            f"Can not unmarshal Request body to struct, error: cannot unmarshal into Go value of type {what}"
        )
    return body


def _check_types(options: Object, what: str) -> None:
    for key, kind in (("name", str), ("disk", dict), ("volumeSource", dict), ("dryRun", list)):
        value = options.get(key)
        if value is not None and not isinstance(value, kind):
            raise bad_request(
                f"Can not unmarshal Request body to struct, error: cannot unmarshal {type(value).__name__} "
                f"into Go struct field {what}.{key}"
            )


def decode_add_volume(body: Any) -> Object:
    """AddVolumeOptions as virt-api stores them: disk named after the volume, the source marked hotpluggable."""
    options = copy.deepcopy(_object(body, "v1.AddVolumeOptions"))
    _check_types(options, "AddVolumeOptions")
    if not options.get("name"):
        raise bad_request("AddVolumeOptions requires name to be set")
    if options.get("disk") is None:
        raise bad_request("AddVolumeOptions requires disk to not be nil")
    if options.get("volumeSource") is None:
        raise bad_request("AddVolumeOptions requires VolumeSource to not be nil")
    options["disk"]["name"] = options["name"]
    for source in _SOURCES:
        if isinstance(options["volumeSource"].get(source), dict):
            options["volumeSource"][source]["hotpluggable"] = True
            break
    return {"addVolumeOptions": options}


def decode_remove_volume(body: Any) -> Object:
    options = copy.deepcopy(_object(body, "v1.RemoveVolumeOptions"))
    _check_types(options, "RemoveVolumeOptions")
    if not options.get("name"):
        raise bad_request("RemoveVolumeOptions requires name to be set")
    return {"removeVolumeOptions": options}


def dry_run(request: Object) -> bool:
    options = request.get("addVolumeOptions") or request.get("removeVolumeOptions") or {}
    modes = options.get("dryRun") or []
    return bool(modes) and modes[0] == DRY_RUN_ALL


def _source_name(options: Object) -> str:
    source = options.get("volumeSource") or {}
    if source.get("dataVolume"):
        return str(source["dataVolume"].get("name") or "")
    if source.get("persistentVolumeClaim"):
        return str(source["persistentVolumeClaim"].get("claimName") or "")
    return ""


def _uses_source(volume: Object, name: str) -> bool:
    return bool(
        (volume.get("dataVolume") and volume["dataVolume"].get("name") == name)
        or (volume.get("persistentVolumeClaim") and volume["persistentVolumeClaim"].get("claimName") == name)
    )


def verify_volume_option(volumes: list[Object], request: Object) -> str | None:
    """Why a request cannot apply to these volumes (virt-api answers 409 with it), or None."""
    add, remove = request.get("addVolumeOptions"), request.get("removeVolumeOptions")
    for volume in volumes:
        if add is not None:
            source = _source_name(add)
            if volume.get("name") == add["name"]:
                return f"Unable to add volume [{add['name']}] because volume with that name already exists"
            if _uses_source(volume, source):
                return f"Unable to add volume source [{source}] because it already exists"
        elif remove is not None and (volume.get("name") == remove["name"] or _uses_source(volume, remove["name"])):
            if not hotpluggable(volume):
                return f"Unable to remove volume [{volume.get('name')}] because it is not hotpluggable"
            return None
    if remove is not None:
        return f"Unable to remove volume [{remove['name']}] because it does not exist"
    return None


def _is_add(request: Object, name: str) -> bool:
    return bool(request.get("addVolumeOptions")) and request["addVolumeOptions"].get("name") == name


def _is_remove(request: Object, name: str) -> bool:
    return bool(request.get("removeVolumeOptions")) and request["removeVolumeOptions"].get("name") == name


def queue_volume_request(requests: list[Object], request: Object) -> list[Object]:
    """The VM's status.volumeRequests with `request` appended; raises ValueError with virt-api's message."""
    if request.get("addVolumeOptions"):
        name = request["addVolumeOptions"]["name"]
        for queued in requests:
            if _is_add(queued, name):
                raise ValueError(f"add volume request for volume [{name}] already exists")
            if _is_remove(queued, name):
                raise ValueError(
                    f"unable to add volume since a remove volume request for volume [{name}] "
                    "already exists and is still being processed"
                )
        return [*requests, request]
    name = request["removeVolumeOptions"]["name"]
    kept = []
    for queued in requests:
        if _is_add(queued, name):
            continue  # a remove cancels a queued add of the same volume
        if _is_remove(queued, name):
            raise ValueError(f"a remove volume request for volume [{name}] already exists and is still being processed")
        kept.append(queued)
    return [*kept, request]


def apply_volume_request(spec: Object, request: Object) -> Object:
    """A copy of a VMI spec (or VM template spec) with one request applied; adding an existing name is a no-op."""
    spec = copy.deepcopy(spec)
    volumes, disks = volumes_of(spec), disks_of(spec)
    add, remove = request.get("addVolumeOptions"), request.get("removeVolumeOptions")
    if add is not None:
        if any(volume.get("name") == add["name"] for volume in volumes):
            return spec
        volume: Object = {"name": add["name"]}
        for source in _SOURCES:
            if (add.get("volumeSource") or {}).get(source):
                volume[source] = {**add["volumeSource"][source], "hotpluggable": True}
                break
        volumes.append(volume)
        if add.get("disk") is not None:
            disks.append({**copy.deepcopy(add["disk"]), "name": add["name"]})
    elif remove is not None:
        volumes = [volume for volume in volumes if volume.get("name") != remove["name"]]
        disks = [disk for disk in disks if disk.get("name") != remove["name"]]
    spec["volumes"] = volumes
    spec.setdefault("domain", {}).setdefault("devices", {})["disks"] = disks
    return spec


def apply_volume_requests(spec: Object, requests: list[Object]) -> Object:
    for request in requests:
        spec = apply_volume_request(spec, request)
    return spec


def trim_done_requests(requests: list[Object], template_spec: Object) -> list[Object]:
    """Requests the VM template does not reflect yet; the VM controller drops the rest from the status."""
    volumes = {volume.get("name") for volume in volumes_of(template_spec)}
    disks = {disk.get("name") for disk in disks_of(template_spec)}
    remaining = []
    for request in requests:
        add, remove = request.get("addVolumeOptions"), request.get("removeVolumeOptions")
        name = (add or remove or {}).get("name")
        done = (add is not None and name in volumes and name in disks) or (
            remove is not None and name not in volumes and name not in disks
        )
        if not done:
            remaining.append(request)
    return remaining
