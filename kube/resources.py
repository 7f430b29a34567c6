"""Addressing any API resource (group/version/plural, namespaced or not), with cached discovery."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from cachetools import TTLCache

from kube.errors import NotFound

if TYPE_CHECKING:
    from kube.transport import Transport


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    plural: str
    kind: str = ""
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def base(self) -> str:
        return f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"

    def path(self, namespace: str | None = None, name: str | None = None, subresource: str | None = None) -> str:
        """The URL path of the collection, one object, or one object's subresource."""
        if namespace in (".", ".."):
            raise ValueError(f"invalid namespace {namespace!r}")
        if self.namespaced and namespace:
            path = f"{self.base}/namespaces/{quote(namespace, safe='')}/{self.plural}"
        elif self.namespaced or not namespace:
            path = f"{self.base}/{self.plural}"
        else:
            raise ValueError(f"{self.plural} is cluster-scoped; no namespace expected")
        if name is not None:
            if name in ("", ".", ".."):
                raise ValueError(f"invalid {self.kind or self.plural} name {name!r}")
            path += f"/{quote(name, safe='')}"
            if subresource:
                path += f"/{subresource}"
        return path

    def __str__(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural


def _core(plural: str, kind: str, namespaced: bool = True) -> Resource:
    return Resource("", "v1", plural, kind, namespaced)


NAMESPACES = _core("namespaces", "Namespace", namespaced=False)
NODES = _core("nodes", "Node", namespaced=False)
PODS = _core("pods", "Pod")
SERVICES = _core("services", "Service")
ENDPOINTS = _core("endpoints", "Endpoints")
CONFIGMAPS = _core("configmaps", "ConfigMap")
SECRETS = _core("secrets", "Secret")
EVENTS = _core("events", "Event")
SERVICEACCOUNTS = _core("serviceaccounts", "ServiceAccount")
PERSISTENTVOLUMECLAIMS = _core("persistentvolumeclaims", "PersistentVolumeClaim")
PERSISTENTVOLUMES = _core("persistentvolumes", "PersistentVolume", namespaced=False)
LEASES = Resource("coordination.k8s.io", "v1", "leases", "Lease")
ENDPOINTSLICES = Resource("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice")
STORAGECLASSES = Resource("storage.k8s.io", "v1", "storageclasses", "StorageClass", namespaced=False)
VOLUMEATTACHMENTS = Resource("storage.k8s.io", "v1", "volumeattachments", "VolumeAttachment", namespaced=False)
CSINODES = Resource("storage.k8s.io", "v1", "csinodes", "CSINode", namespaced=False)


class Discovery:
    """Resolves apiVersion + kind to a Resource from the server's discovery documents, cached with a TTL."""

    def __init__(self, transport: Transport, ttl: float = 600.0) -> None:
        self._transport = transport
        self._cache: TTLCache[str, dict[str, Resource]] = TTLCache(maxsize=256, ttl=ttl)

    async def resources(self, api_version: str) -> dict[str, Resource]:
        """Kind -> Resource for one group/version (subresources left out)."""
        cached = self._cache.get(api_version)
        if cached is not None:
            return cached
        group, _, version = api_version.rpartition("/")
        path = f"/apis/{api_version}" if group else f"/api/{version}"
        document: dict[str, Any] = await self._transport.request("GET", path)
        by_kind = {
            item["kind"]: Resource(group, version, item["name"], item["kind"], bool(item.get("namespaced")))
            for item in document.get("resources", [])
            if "/" not in item["name"]
        }
        self._cache[api_version] = by_kind
        return by_kind

    async def resolve(self, api_version: str, kind: str) -> Resource:
        by_kind = await self.resources(api_version)
        if kind not in by_kind:
            self._cache.pop(api_version, None)  # a CRD may have been installed since we looked
            by_kind = await self.resources(api_version)
        if kind not in by_kind:
            raise NotFound(status=404, reason="NotFound", message=f"no kind {kind} in {api_version}")
        return by_kind[kind]
