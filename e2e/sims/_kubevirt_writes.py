"""How the simulated KubeVirt components write: JSON patches guarded by a test of the value they replace (as
virt-api and virt-controller patch), and reads that never act on a copy older than their own last write."""

from __future__ import annotations

from typing import Any

from e2e.sims._kubevirt_spec import Object
from kube.client import Client
from kube.errors import Invalid, NotFound
from kube.informer import Informer, resource_version
from kube.resources import Resource

# Someone wrote between a controller's read and its patch: look again shortly, from a fresh read.
RACE_RETRY = 0.005


def _pointer(path: tuple[str, ...]) -> str:
    return "".join("/" + part.replace("~", "~0").replace("/", "~1") for part in path)


def _nested(path: tuple[str, ...], value: Any) -> Any:
    for part in reversed(path):
        value = {part: value}
    return value


def set_ops(obj: Object, path: tuple[str, ...], value: Any) -> list[Object]:
    """Ops that set obj[path] to `value` (None removes it) only if it still holds what `obj` shows (missing = null)."""
    container: Any = obj
    for depth, part in enumerate(path[:-1]):
        child = container.get(part) if isinstance(container, dict) else None
        if not isinstance(child, dict):
            missing = _pointer(path[: depth + 1])
            if value is None:
                return []
            return [
                {"op": "test", "path": missing, "value": None},
                {"op": "add", "path": missing, "value": _nested(path[depth + 1 :], value)},
            ]
        container = child
    current = container.get(path[-1])
    where = _pointer(path)
    if value is None:
        return (
            []
            if current is None
            else [{"op": "test", "path": where, "value": current}, {"op": "remove", "path": where}]
        )
    return [{"op": "test", "path": where, "value": current}, {"op": "add", "path": where, "value": value}]


def lost_race(error: Invalid) -> bool:
    """The apiserver's answer to a failed JSON-patch test (someone wrote in between): Invalid without causes."""
    return not error.causes and "rejected our request" in error.message


def spec_ops(obj: Object, prefix: tuple[str, ...], spec: Object) -> list[Object]:
    """Ops replacing the volumes and disks of the VMI spec found at `prefix` with those of `spec`."""
    current: Any = obj
    for part in prefix:
        current = (current or {}).get(part) or {}
    disks = ((spec.get("domain") or {}).get("devices") or {}).get("disks") or []
    ops = []
    if (current.get("volumes") or []) != (spec.get("volumes") or []):
        ops += set_ops(obj, (*prefix, "volumes"), spec.get("volumes") or [])
    if (((current.get("domain") or {}).get("devices") or {}).get("disks") or []) != disks:
        ops += set_ops(obj, (*prefix, "domain", "devices", "disks"), disks)
    return ops


class LatestObjects:
    """An informer's objects, except that a key we wrote since the informer last caught up is read from the API."""

    def __init__(self, client: Client, informer: Informer) -> None:
        self.client = client
        self.informer = informer
        self.resource: Resource = informer.resource
        self._written: dict[str, str] = {}

    def wrote(self, key: str, obj: Object) -> Object:
        self._written[key] = resource_version(obj)
        return obj

    def forget(self, key: str) -> None:
        self._written.pop(key, None)

    def distrust(self, key: str) -> None:
        """After losing a race, read the key from the API next time."""
        self._written[key] = ""

    async def get(self, key: str) -> Object | None:
        cached = self.informer.store.get(key)
        written = self._written.get(key)
        if written is None:
            return cached
        if cached is not None and resource_version(cached) == written:
            self.forget(key)
            return cached
        namespace, _, name = key.partition("/")
        try:
            fresh = await self.client.get(self.resource, name, namespace)
        except NotFound:
            self.forget(key)
            return None
        if cached is not None and resource_version(cached) == resource_version(fresh):
            self.forget(key)  # the informer has caught up (someone wrote after us)
        return fresh
