"""The simulator's HTTP face: the LINSTOR REST endpoints our driver reads, plus test-only controls under /sim.

    GET  /v1/controller/version
    GET  /v1/view/resources?resources=&nodes=&storage_pools=
    GET  /v1/view/storage-pools?storage_pools=&nodes=
    POST /v1/resource-groups/{rg}/query-size-info
    PUT|DELETE /sim/resources/{rd}/nodes/{node}        {"disk_state", "connected", "in_use", "may_promote",
                                                        "promotion_score", "online"}; DELETE restores defaults
    PUT  /sim/storage-pools/{pool}/nodes/{node}         {"total_capacity": KiB, "free_capacity": KiB | null}

Errors come back as LINSTOR's ApiCallRc lists.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from e2e.sims._linstor_state import Linstor, NotFoundError
from e2e.sims._linstor_views import replica_view, resources_view, size_info, storage_pools_view

STATE: web.AppKey[Linstor] = web.AppKey("linstor", Linstor)
MASK_ERROR = -(2**62)  # LINSTOR's ret_code error bit (0xC000000000000000 as a signed long)
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
        setting = _state(request).set_pool(pool, node, await _body(request))
    except NotFoundError as error:
        return api_error(404, str(error.args[0]))
    except (TypeError, ValueError) as error:
        return api_error(400, str(error))
    return web.json_response({"total_capacity": setting.total_kib, "free_capacity": setting.free_kib})


def build_app(state: Linstor) -> web.Application:
    app = web.Application()
    app[STATE] = state
    app.router.add_get("/v1/controller/version", version)
    app.router.add_get("/v1/view/resources", view_resources)
    app.router.add_get("/v1/view/storage-pools", view_storage_pools)
    app.router.add_post("/v1/resource-groups/{rg}/query-size-info", query_size_info)
    app.router.add_route("PUT", "/sim/resources/{rd}/nodes/{node}", set_replica)
    app.router.add_route("DELETE", "/sim/resources/{rd}/nodes/{node}", set_replica)
    app.router.add_put("/sim/storage-pools/{pool}/nodes/{node}", set_pool)
    return app
