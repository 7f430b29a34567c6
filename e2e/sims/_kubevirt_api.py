"""virt-api's subresource API as the parent kube-apiserver's aggregator reaches it: discovery documents, the
hotplug endpoints, front-proxy authentication and SubjectAccessReview authorisation (virt-api's authorizer)."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from aiohttp import web
from multidict import MultiMapping

from e2e.sims._kubevirt_errors import (
    StatusError,
    bad_request,
    forbidden,
    internal,
    method_not_allowed,
    not_found_path,
    unauthorized,
)
from e2e.sims._kubevirt_hotplug import ADD_VOLUME, REMOVE_VOLUME, Hotplug
from e2e.sims._kubevirt_spec import SUBJECT_ACCESS_REVIEWS, VMIS, VMS
from kube.client import Client
from kube.errors import ApiError

log = logging.getLogger(__name__)

GROUP = "subresources.kubevirt.io"
VERSION = "v1"
GROUP_VERSION = f"{GROUP}/{VERSION}"
FRONT_PROXY_NAMES = frozenset({"front-proxy-client"})
USER_HEADER, GROUP_HEADER, EXTRA_PREFIX = "X-Remote-User", "X-Remote-Group", "X-Remote-Extra-"
RESOURCES = (VMS.plural, VMIS.plural)
ACTIONS = (ADD_VOLUME, REMOVE_VOLUME)
# virt-api publishes an OpenAPI v2 document (the aggregator merges it) and no v3 (the aggregator converts v2).
OPENAPI_V2: dict[str, Any] = {"swagger": "2.0", "info": {"title": "KubeVirt API", "version": VERSION}, "paths": {}}
RBAC_VERBS = {"PUT": "update", "POST": "create", "PATCH": "patch", "GET": "get", "DELETE": "delete"}


def api_group() -> dict[str, Any]:
    version = {"groupVersion": GROUP_VERSION, "version": VERSION}
    return {"kind": "APIGroup", "apiVersion": "v1", "name": GROUP, "versions": [version], "preferredVersion": version}


def api_resource_list() -> dict[str, Any]:
    resources = [
        {"name": f"{r}/{a}", "singularName": "", "namespaced": True, "kind": "", "verbs": []}
        for r in RESOURCES
        for a in ACTIONS
    ]
    return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": GROUP_VERSION, "resources": resources}


@dataclass(frozen=True)
class Caller:
    """Who the aggregator says is calling (request-header authentication)."""

    user: str
    groups: tuple[str, ...]
    extra: dict[str, list[str]] = field(default_factory=dict)


def caller_from_headers(headers: MultiMapping[str]) -> Caller:
    users = headers.getall(USER_HEADER, [])
    if not users:
        raise unauthorized("a valid user header is required for authorization")
    groups = headers.getall(GROUP_HEADER, [])
    if not groups:
        raise unauthorized("a valid group header is required for authorization")
    extra: dict[str, list[str]] = {}
    for key in {k for k in headers if k.lower().startswith(EXTRA_PREFIX.lower())}:
        extra[unquote(key[len(EXTRA_PREFIX) :].lower())] = list(headers.getall(key))
    return Caller(users[0], tuple(groups), extra)


def resource_attributes(method: str, namespace: str, resource: str, name: str, subresource: str) -> dict[str, str]:
    """What virt-api asks a SubjectAccessReview: PUT .../virtualmachines/{vm}/addvolume is `update` of it."""
    verb = RBAC_VERBS.get(method.upper())
    if verb is None:
        raise unauthorized(f"unknown http verb in request: {method}")
    return {
        "namespace": namespace,
        "verb": verb,
        "group": GROUP,
        "version": VERSION,
        "resource": resource,
        "subresource": subresource,
        "name": name,
    }


def denial(caller: Caller, attributes: dict[str, str], reason: str) -> StatusError:
    what = f"{attributes['resource']}/{attributes['subresource']}"
    message = (
        f'User "{caller.user}" cannot {attributes["verb"]} resource "{what}" in API group "{GROUP}" '
        f'in the namespace "{attributes["namespace"]}"'
    )
    return forbidden(attributes["resource"], GROUP, attributes["name"], f"{message}: {reason}" if reason else message)


class Authorizer:
    def __init__(self, client: Client) -> None:
        self.client = client

    async def authorize(self, caller: Caller, attributes: dict[str, str]) -> None:
        spec: dict[str, Any] = {"user": caller.user, "groups": list(caller.groups), "resourceAttributes": attributes}
        if caller.extra:
            spec["extra"] = caller.extra
        try:
            review = await self.client.create(SUBJECT_ACCESS_REVIEWS, {"spec": spec})
        except ApiError as error:
            raise internal(f"unable to review access: {error}") from error
        status = review.get("status") or {}
        if not status.get("allowed"):
            raise denial(caller, attributes, str(status.get("reason") or ""))


def _peer_name(request: web.Request) -> str | None:
    transport = request.transport
    cert = transport.get_extra_info("peercert") if transport is not None else None
    for rdn in (cert or {}).get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return str(value)
    return None


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def front_proxy_only(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Only the aggregator (a client certificate from the front-proxy CA, with an allowed name) gets in."""
    try:
        if _peer_name(request) not in FRONT_PROXY_NAMES:
            raise unauthorized("request is not authenticated")
        return await handler(request)
    except StatusError as error:
        if error.code >= 500:
            log.warning("%s %s: %s", request.method, request.path, error)
        return web.json_response(error.body(), status=error.code)
    except web.HTTPMethodNotAllowed:
        refused = method_not_allowed(request.method)
        return web.json_response(refused.body(), status=refused.code)
    except web.HTTPNotFound:
        missing = not_found_path(request.path)
        return web.json_response(missing.body(), status=missing.code)


def _json(document: dict[str, Any]) -> Handler:
    async def handler(_: web.Request) -> web.StreamResponse:
        return web.json_response(document)

    return handler


async def _body(request: web.Request) -> Any:
    raw = await request.read()
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError as error:
        raise bad_request(f"Can not unmarshal Request body to struct, error: {error}") from error


def virt_api(hotplug: Hotplug, authorizer: Authorizer) -> web.Application:
    async def volume_request(request: web.Request) -> web.StreamResponse:
        namespace, resource, name, action = (request.match_info[k] for k in ("namespace", "resource", "name", "action"))
        if resource not in RESOURCES or action not in ACTIONS:
            raise not_found_path(request.path)
        caller = caller_from_headers(request.headers)
        await authorizer.authorize(caller, resource_attributes(request.method, namespace, resource, name, action))
        await hotplug.handle(resource, action, namespace, name, await _body(request))
        log.debug("%s %s/%s %s by %s", action, namespace, name, resource, caller.user)
        return web.Response(status=202)

    base = f"/apis/{GROUP_VERSION}"
    app = web.Application(middlewares=[front_proxy_only])
    app.add_routes(
        [
            web.get("/", _json({"paths": ["/apis", f"/apis/{GROUP}", base, "/healthz", "/openapi/v2"]})),
            web.get("/apis", _json({"kind": "APIGroupList", "apiVersion": "v1", "groups": [api_group()]})),
            web.get(f"/apis/{GROUP}", _json(api_group())),
            web.get(base, _json(api_resource_list())),
            web.get("/healthz", _json({"apiserver": "ok"})),
            web.get("/openapi/v2", _json(OPENAPI_V2)),
            web.put(base + "/namespaces/{namespace}/{resource}/{name}/{action}", volume_request),
        ]
    )
    return app
