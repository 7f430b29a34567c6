"""The simulator's HTTP face: the LINSTOR REST endpoints our driver uses, plus test-only controls under /sim.

    GET  /v1/controller/version
    GET  /v1/view/resources?resources=&nodes=&storage_pools=
    GET  /v1/view/storage-pools?storage_pools=&nodes=
    POST /v1/resource-groups/{rg}/query-size-info
    GET  /v1/resource-definitions?resource_definitions=
    GET  /v1/resource-groups?resource_groups=
    POST /v1/resource-definitions/{rd}/resources/{node}/make-available   {"diskful": bool, "layer_list": [...]}
    PUT|DELETE /sim/resources/{rd}/nodes/{node}        {"disk_state", "connected", "in_use", "may_promote",
                                                        "promotion_score", "online", "diskless"}; DELETE restores
    PUT|DELETE /sim/storage-pools/{pool}/nodes/{node}   {"total_capacity": KiB, "free_capacity": KiB | null}
    PUT  /sim/resource-definitions/{rd}/props           {key: value | null}: set or delete properties
    PUT  /sim/holds                                     {"make-available": true | false}: hold such requests
                                                        (as a controller waiting for its satellites) until false
    GET  /sim/calls                                     every /v1 request so far: [{"method", "path", "query"}]

Errors come back as LINSTOR's ApiCallRc lists. Any other /v1 path is a 404, and is recorded like the rest, so a test
can tell that nothing tried to delete or shrink a replica.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from e2e.sims._linstor_state import Linstor, NotFoundError
from e2e.sims._linstor_views import (
    replica_view,
    resource_definitions_view,
    resource_groups_view,
    resources_view,
    size_info,
    storage_pools_view,
)
from e2e.sims._linstor_writes import make_available, set_props

STATE: web.AppKey[Linstor] = web.AppKey("linstor", Linstor)
CALLS: web.AppKey[list[dict[str, str]]] = web.AppKey("calls", list)
HOLDS: web.AppKey[dict[str, asyncio.Event]] = web.AppKey("holds", dict)
MASK_ERROR = -(2**62)  # LINSTOR's ret_code error bit (0xC000000000000000 as a signed long)
MASK_SUCCESS = 0
MASK_CREATED = 0x4000000  # MASK_CRT | MASK_RSC, enough for a success reply
API_VERSION = "1.24.0"


def api_error(status: int, message: str, cause: str = "") -> web.Response:
    reply: dict[str, Any] = {"ret_code": MASK_ERROR | status, "message": message}
    if cause:
        reply["cause"] = cause
    return web.json_response([reply], status=status)


def _state(request: web.Request) -> Linstor:
    return request.app[STATE]


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json() if request.can_read_body else {}
    except json.JSONDecodeError as error:
        raise web.HTTPBadRequest(text=json.dumps([{"ret_code": MASK_ERROR, "message": str(error)}])) from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text=json.dumps([{"ret_code": MASK_ERROR, "message": "expected a JSON object"}]))
    return body


async def version(_request: web.Request) -> web.Response:
    return web.json_response({"version": "1.29.0", "git_hash": "simulated", "rest_api_version": API_VERSION})


async def view_resources(request: web.Request) -> web.Response:
    query = request.query
    found = resources_view(
        _state(request), query.getall("resources", []), query.getall("nodes", []), query.getall("storage_pools", [])
    )
    return web.json_response(found)


async def view_storage_pools(request: web.Request) -> web.Response:
    query = request.query
    return web.json_response(
        storage_pools_view(_state(request), query.getall("storage_pools", []), query.getall("nodes", []))
    )


async def query_size_info(request: web.Request) -> web.Response:
    body = await _body(request)
    select = body.get("select_filter") or {}
    try:
        return web.json_response(size_info(_state(request), request.match_info["rg"], select))
    except NotFoundError:
        return api_error(404, f"Resource group '{request.match_info['rg']}' not found")


async def view_resource_definitions(request: web.Request) -> web.Response:
    names = request.query.getall("resource_definitions", [])
    return web.json_response(resource_definitions_view(_state(request), names))


async def view_resource_groups(request: web.Request) -> web.Response:
    return web.json_response(resource_groups_view(_state(request), request.query.getall("resource_groups", [])))


async def post_make_available(request: web.Request) -> web.Response:
    body = await _body(request)
    await _gate(request.app, "make-available").wait()
    try:
        outcome = make_available(
            _state(request), request.match_info["rd"], request.match_info["node"], diskful=bool(body.get("diskful"))
        )
    except NotFoundError as error:
        return api_error(404, str(error.args[0]))
    code = MASK_CREATED if outcome.changed else MASK_SUCCESS
    replies = [{"ret_code": code, "message": message} for message in outcome.messages]
    return web.json_response(replies, status=201 if outcome.changed else 200)


async def set_definition_props(request: web.Request) -> web.Response:
    try:
        return web.json_response(set_props(_state(request), request.match_info["rd"], await _body(request)))
    except NotFoundError as error:
        return api_error(404, str(error.args[0]))
    except ValueError as error:
        return api_error(400, str(error))


async def calls(request: web.Request) -> web.Response:
    return web.json_response(request.app[CALLS])


def _gate(app: web.Application, name: str) -> asyncio.Event:
    """Open unless a test holds it."""
    if name not in app[HOLDS]:
        app[HOLDS][name] = asyncio.Event()
        app[HOLDS][name].set()
    return app[HOLDS][name]


async def set_holds(request: web.Request) -> web.Response:
    body = await _body(request)
    if not all(isinstance(v, bool) for v in body.values()):
        return api_error(400, "holds are true or false")
    for name, held in body.items():
        gate = _gate(request.app, name)
        gate.clear() if held else gate.set()
    return web.json_response({name: not gate.is_set() for name, gate in request.app[HOLDS].items()})


@web.middleware
async def record_calls(request: web.Request, handler: Any) -> web.StreamResponse:
    if request.path.startswith("/v1/"):
        request.app[CALLS].append({"method": request.method, "path": request.path, "query": request.query_string})
    response: web.StreamResponse = await handler(request)
    return response


async def set_replica(request: web.Request) -> web.Response:
    name, node = request.match_info["rd"], request.match_info["node"]
    try:
        if request.method == "DELETE":
            _state(request).reset_replica(name, node)
        else:
            _state(request).set_replica(name, node, await _body(request))
        return web.json_response(replica_view(_state(request), name, node))
    except NotFoundError as error:
        return api_error(404, str(error.args[0]))
    except ValueError as error:
        return api_error(400, str(error))


async def set_pool(request: web.Request) -> web.Response:
    pool, node = request.match_info["pool"], request.match_info["node"]
    try:
        if request.method == "DELETE":
            _state(request).drop_pool(pool, node)
            return web.json_response({})
        setting = _state(request).set_pool(pool, node, await _body(request))
    except NotFoundError as error:
        return api_error(404, str(error.args[0]))
    except (TypeError, ValueError) as error:
        return api_error(400, str(error))
    return web.json_response({"total_capacity": setting.total_kib, "free_capacity": setting.free_kib})


def build_app(state: Linstor) -> web.Application:
    app = web.Application(middlewares=[record_calls])
    app[STATE] = state
    app[CALLS] = []
    app[HOLDS] = {}
    app.router.add_get("/v1/controller/version", version)
    app.router.add_get("/v1/view/resources", view_resources)
    app.router.add_get("/v1/view/storage-pools", view_storage_pools)
    app.router.add_post("/v1/resource-groups/{rg}/query-size-info", query_size_info)
    app.router.add_get("/v1/resource-definitions", view_resource_definitions)
    app.router.add_get("/v1/resource-groups", view_resource_groups)
    app.router.add_post("/v1/resource-definitions/{rd}/resources/{node}/make-available", post_make_available)
    app.router.add_route("PUT", "/sim/resources/{rd}/nodes/{node}", set_replica)
    app.router.add_route("DELETE", "/sim/resources/{rd}/nodes/{node}", set_replica)
    app.router.add_route("PUT", "/sim/storage-pools/{pool}/nodes/{node}", set_pool)
    app.router.add_route("DELETE", "/sim/storage-pools/{pool}/nodes/{node}", set_pool)
    app.router.add_put("/sim/resource-definitions/{rd}/props", set_definition_props)
    app.router.add_get("/sim/calls", calls)
    app.router.add_put("/sim/holds", set_holds)
    return app
