"""The verbs: get, list, create, update, patch, apply, delete and subresources, with a field manager on writes."""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from kube.config import ClusterConfig
from kube.resources import Discovery, Resource
from kube.transport import Transport, TransportSettings

Object = dict[str, Any]


class PatchType(enum.StrEnum):
    JSON = "application/json-patch+json"
    MERGE = "application/merge-patch+json"
    STRATEGIC = "application/strategic-merge-patch+json"
    APPLY = "application/apply-patch+yaml"


@dataclass
class ObjectList:
    items: list[Object]
    resource_version: str
    continue_token: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)


def namespace_of(body: Object) -> str | None:
    namespace = body.get("metadata", {}).get("namespace")
    return str(namespace) if namespace else None


def with_type(resource: Resource, body: Object) -> Object:
    """Fill in apiVersion and kind, which custom resources require on every write."""
    if resource.kind and ("apiVersion" not in body or "kind" not in body):
        return {"apiVersion": resource.api_version, "kind": resource.kind, **body}
    return body


def name_of(body: Object) -> str:
    return str(body.get("metadata", {}).get("name") or "")


class Client:
    """One API server. Every write carries `field_manager`; objects are plain JSON dicts."""

    def __init__(self, transport: Transport, field_manager: str) -> None:
        if not field_manager:
            raise ValueError("a field manager is required for every write")
        self.transport = transport
        self.field_manager = field_manager
        self.discovery = Discovery(transport)

    @classmethod
    def from_config(
        cls, config: ClusterConfig, field_manager: str, settings: TransportSettings | None = None
    ) -> Client:
        return cls(Transport(config, settings), field_manager)

    @property
    def default_namespace(self) -> str | None:
        return self.transport.config.namespace

    async def close(self) -> None:
        await self.transport.close()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    def _write_params(self, dry_run: bool, **extra: str) -> dict[str, str]:
        params = {"fieldManager": self.field_manager, **extra}
        if dry_run:
            params["dryRun"] = "All"
        return params

    async def get(
        self, resource: Resource, name: str, namespace: str | None = None, *, subresource: str | None = None
    ) -> Object:
        result: Object = await self.transport.request("GET", resource.path(namespace, name, subresource))
        return result

    async def list(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int = 500,
        continue_token: str | None = None,
        resource_version: str | None = None,
    ) -> ObjectList:
        """One page. Use `list_all` to follow `continue` tokens."""
        params: dict[str, str] = {"limit": str(limit)}
        if label_selector:
            params["labelSelector"] = label_selector
        if field_selector:
            params["fieldSelector"] = field_selector
        if continue_token:
            params["continue"] = continue_token
        if resource_version is not None:
            params["resourceVersion"] = resource_version
        raw: Object = await self.transport.request("GET", resource.path(namespace), params=params)
        metadata = raw.get("metadata") or {}
        return ObjectList(
            items=raw.get("items") or [],
            resource_version=str(metadata.get("resourceVersion", "")),
            continue_token=str(metadata.get("continue") or ""),
            metadata=metadata,
        )

    async def pages(
        self,
        resource: Resource,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int = 500,
    ) -> AsyncIterator[ObjectList]:
        """Every page of a consistent list (all pages share the first page's snapshot)."""
        token: str | None = None
        while True:
            page = await self.list(
                resource,
                namespace,
                label_selector=label_selector,
                field_selector=field_selector,
                limit=limit,
                continue_token=token,
            )
            yield page
            if not page.continue_token:
                return
            token = page.continue_token

    async def list_all(self, resource: Resource, namespace: str | None = None, **selectors: Any) -> ObjectList:
        items: list[Object] = []
        resource_version = ""
        async for page in self.pages(resource, namespace, **selectors):
            items.extend(page.items)
            resource_version = page.resource_version
        return ObjectList(items=items, resource_version=resource_version)

    async def create(
        self, resource: Resource, body: Object, namespace: str | None = None, *, dry_run: bool = False
    ) -> Object:
        namespace = namespace or namespace_of(body)
        result: Object = await self.transport.request(
            "POST", resource.path(namespace), params=self._write_params(dry_run), body=with_type(resource, body)
        )
        return result

    async def update(
        self,
        resource: Resource,
        body: Object,
        namespace: str | None = None,
        *,
        subresource: str | None = None,
        dry_run: bool = False,
    ) -> Object:
        """PUT the whole object; its metadata.resourceVersion makes a stale write a Conflict."""
        namespace = namespace or namespace_of(body)
        result: Object = await self.transport.request(
            "PUT",
            resource.path(namespace, name_of(body), subresource),
            params=self._write_params(dry_run),
            body=with_type(resource, body),
        )
        return result

    async def patch(
        self,
        resource: Resource,
        name: str,
        patch: Any,
        namespace: str | None = None,
        *,
        patch_type: PatchType = PatchType.MERGE,
        subresource: str | None = None,
        force: bool = False,
        dry_run: bool = False,
    ) -> Object:
        params = self._write_params(dry_run)
        if force:
            params["force"] = "true"
        result: Object = await self.transport.request(
            "PATCH",
            resource.path(namespace, name, subresource),
            params=params,
            body=patch,
            content_type=patch_type.value,
            idempotent=patch_type is not PatchType.JSON,
        )
        return result

    async def apply(
        self,
        resource: Resource,
        body: Object,
        namespace: str | None = None,
        *,
        subresource: str | None = None,
        force: bool = False,
        dry_run: bool = False,
    ) -> Object:
        """Server-side apply: `body` is the full intent of our field manager (apiVersion and kind included)."""
        body = with_type(resource, body)
        return await self.patch(
            resource,
            name_of(body),
            body,
            namespace or namespace_of(body),
            patch_type=PatchType.APPLY,
            subresource=subresource,
            force=force,
            dry_run=dry_run,
        )

    async def delete(
        self,
        resource: Resource,
        name: str,
        namespace: str | None = None,
        *,
        uid: str | None = None,
        resource_version: str | None = None,
        propagation_policy: str | None = None,
        grace_period_seconds: int | None = None,
        dry_run: bool = False,
    ) -> Object | None:
        """Delete one object; `uid`/`resource_version` preconditions make sure it is the one we looked at."""
        body: Object = {"apiVersion": "v1", "kind": "DeleteOptions"}
        preconditions = {k: v for k, v in (("uid", uid), ("resourceVersion", resource_version)) if v}
        if preconditions:
            body["preconditions"] = preconditions
        if propagation_policy:
            body["propagationPolicy"] = propagation_policy
        if grace_period_seconds is not None:
            body["gracePeriodSeconds"] = grace_period_seconds
        if dry_run:
            body["dryRun"] = ["All"]
        result: Object | None = await self.transport.request("DELETE", resource.path(namespace, name), body=body)
        return result

    async def call(
        self,
        method: str,
        resource: Resource,
        name: str,
        subresource: str,
        namespace: str | None = None,
        *,
        body: Any = None,
        params: dict[str, str] | None = None,
        idempotent: bool | None = None,
    ) -> Any:
        """Any other subresource, e.g. `PUT .../virtualmachines/{vm}/addvolume`."""
        return await self.transport.request(
            method, resource.path(namespace, name, subresource), body=body, params=params, idempotent=idempotent
        )
