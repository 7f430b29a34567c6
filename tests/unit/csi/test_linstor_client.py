"""The LINSTOR REST client against small real HTTP(S) servers on loopback: failover, deadline, errors, TLS."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from csi.linstor.client import NAMES_PER_REQUEST, LinstorClient
from csi.linstor.errors import LinstorApiError, LinstorBadResponse, LinstorNotFound, LinstorUnavailable
from csi.linstor.models import AutoSelectFilter
from csi.linstor.settings import LinstorSettings
from e2e.cluster.pki import CertificateAuthority

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
REFUSED = "http://127.0.0.1:1"


class Server:
    """Answers with `handler` and remembers (method, path, query, body) of what it saw."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.seen: list[tuple[str, str, list[tuple[str, str]], Any]] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json() if request.can_read_body else None
        self.seen.append((request.method, request.path, list(request.query.items()), body))
        return await self.handler(request)


Serve = Callable[..., Awaitable[Server]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    runners: list[web.AppRunner] = []

    async def start(handler: Handler, tls: ssl.SSLContext | None = None) -> Server:
        server = Server(handler)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", server.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls).start()
        runners.append(runner)
        server.url = f"{'https' if tls else 'http'}://127.0.0.1:{runner.addresses[0][1]}"
        return server

    yield start
    for runner in runners:
        await runner.cleanup()


def answer(body: Any, status: int = 200) -> Handler:
    async def handler(_request: web.Request) -> web.StreamResponse:
        return web.json_response(body, status=status)

    return handler


def settings(*urls: str, **extra: Any) -> LinstorSettings:
    return LinstorSettings(urls=list(urls), **({"timeout": 2.0, "connect_timeout": 0.5} | extra))


RESOURCE = {
    "name": "pvc-1",
    "node_name": "n1",
    "flags": [],
    "layer_object": {"type": "DRBD", "drbd": {"may_promote": True, "secret": "s3cret-drbd"}},
    "state": {"in_use": False},
    "volumes": [{"volume_number": 0, "state": {"disk_state": "UpToDate"}}],
}


async def test_resources_filter_by_name(serve: Serve) -> None:
    server = await serve(answer([RESOURCE]))
    async with LinstorClient(settings(server.url)) as client:
        found = await client.resources(["pvc-1", "pvc-2"])
    assert [(r.name, r.node_name, r.disk_states()) for r in found] == [("pvc-1", "n1", [(0, "UpToDate")])]
    assert server.seen == [("GET", "/v1/view/resources", [("resources", "pvc-1"), ("resources", "pvc-2")], None)]


async def test_many_names_are_split_into_short_requests(serve: Serve) -> None:
    server = await serve(answer([]))
    names = [f"pvc-{i}" for i in range(2 * NAMES_PER_REQUEST + 3)]
    async with LinstorClient(settings(server.url)) as client:
        assert await client.resources(names) == []
    assert [len(query) for _, _, query, _ in server.seen] == [NAMES_PER_REQUEST, NAMES_PER_REQUEST, 3]


async def test_size_info_posts_the_select_filter(serve: Serve) -> None:
    body = {"space_info": {"max_vlm_size_in_kib": 20, "available_size_in_kib": 30, "capacity_in_kib": 100}}
    server = await serve(answer(body))
    async with LinstorClient(settings(server.url)) as client:
        info = await client.size_info("rg/odd name", AutoSelectFilter(place_count=2, storage_pool="data"))
    assert info.space_info is not None and info.space_info.available_size_in_kib == 30
    method, path, _, sent = server.seen[0]
    assert (method, path) == ("POST", "/v1/resource-groups/rg/odd name/query-size-info")
    assert sent == {"select_filter": {"place_count": 2, "storage_pool": "data"}}


async def test_storage_pools_by_name(serve: Serve) -> None:
    pools = [{"storage_pool_name": "data", "node_name": "n1", "provider_kind": "LVM", "free_capacity": 5}]
    server = await serve(answer(pools))
    async with LinstorClient(settings(server.url)) as client:
        found = await client.storage_pools(["data"])
    assert [(p.node_name, p.free_capacity) for p in found] == [("n1", 5)]
    assert server.seen[0][2] == [("storage_pools", "data")]


async def test_make_available_posts_diskful_and_returns_linstors_messages(serve: Serve) -> None:
    server = await serve(answer([{"ret_code": 0x4000000, "message": "New resource 'pvc-1' on node 'n 1' registered."}]))
    async with LinstorClient(settings(server.url)) as client:
        said = await client.make_available("pvc-1", "n 1", diskful=True)
    assert said == ("New resource 'pvc-1' on node 'n 1' registered.",)
    assert server.seen == [
        ("POST", "/v1/resource-definitions/pvc-1/resources/n 1/make-available", [], {"diskful": True})
    ]


async def test_make_available_refused(serve: Serve) -> None:
    no_pool = {"ret_code": -(2**62) | 404, "message": "Autoplacer could not find diskful stor pool on node n1"}
    server = await serve(answer([no_pool], status=404))
    async with LinstorClient(settings(server.url)) as client:
        with pytest.raises(LinstorNotFound, match="could not find diskful stor pool") as refused:
            await client.make_available("pvc-1", "n1", diskful=True)
    assert refused.value.messages == (no_pool["message"],)


async def test_definitions_and_groups_with_their_properties(serve: Serve) -> None:
    props = {"DrbdOptions/Net/allow-two-primaries": "yes"}
    definition = {"name": "pvc-1", "resource_group_name": "rg", "props": props, "layer_data": [{"type": "DRBD"}]}
    server = await serve(answer([definition]))
    async with LinstorClient(settings(server.url)) as client:
        found = await client.resource_definitions(["pvc-1"])
    assert [(d.name, d.resource_group_name, d.props) for d in found] == [("pvc-1", "rg", props)]
    assert server.seen[0][:3] == ("GET", "/v1/resource-definitions", [("resource_definitions", "pvc-1")])
    groups = await serve(answer([{"name": "rg", "props": {}, "select_filter": {"place_count": 2}}]))
    async with LinstorClient(settings(groups.url)) as client:
        assert [g.name for g in await client.resource_groups(["rg"])] == ["rg"]
    assert groups.seen[0][:3] == ("GET", "/v1/resource-groups", [("resource_groups", "rg")])


async def test_failover_to_the_next_controller_and_stay_there(serve: Serve) -> None:
    standby = await serve(answer([{"ret_code": 0, "message": "proxy"}], status=503))
    active = await serve(answer([RESOURCE]))
    async with LinstorClient(settings(REFUSED, standby.url, active.url)) as client:
        await client.resources(["pvc-1"])
        await client.resources(["pvc-1"])
    assert (len(standby.seen), len(active.seen)) == (1, 2)


async def test_every_controller_down_is_unavailable_naming_each(serve: Serve) -> None:
    standby = await serve(answer([], status=503))
    async with LinstorClient(settings(REFUSED, standby.url)) as client:
        with pytest.raises(LinstorUnavailable) as caught:
            await client.resources(["pvc-1"])
    assert REFUSED in str(caught.value) and f"{standby.url}: HTTP 503" in str(caught.value)


async def test_an_api_error_is_the_answer_not_a_reason_to_fail_over(serve: Serve) -> None:
    failing = await serve(answer([{"ret_code": -4611686018427387904, "message": "Satellite sat-a rejected"}], 500))
    spare = await serve(answer([]))
    async with LinstorClient(settings(failing.url, spare.url)) as client:
        with pytest.raises(LinstorApiError, match="500 on GET /v1/view/resources: Satellite sat-a rejected"):
            await client.resources(["pvc-1"])
    assert not spare.seen


async def test_unknown_resource_group_is_not_found(serve: Serve) -> None:
    server = await serve(answer([{"ret_code": -1, "message": "Resource group 'rg' not found"}], 404))
    async with LinstorClient(settings(server.url)) as client:
        with pytest.raises(LinstorNotFound, match="not found"):
            await client.size_info("rg")


async def test_not_json_is_a_bad_response(serve: Serve) -> None:
    async def html(_request: web.Request) -> web.StreamResponse:
        return web.Response(text="<html>login</html>", content_type="text/html")

    server = await serve(html)
    async with LinstorClient(settings(server.url)) as client:
        with pytest.raises(LinstorBadResponse, match="not JSON"):
            await client.resources(["pvc-1"])


async def test_wrong_shape_is_reported_without_quoting_the_body(serve: Serve) -> None:
    broken = {**RESOURCE, "node_name": None}
    server = await serve(answer([broken]))
    async with LinstorClient(settings(server.url)) as client:
        with pytest.raises(LinstorBadResponse) as caught:
            await client.resources(["pvc-1"])
    assert "0.node_name" in str(caught.value)
    assert "s3cret" not in str(caught.value)


async def test_a_hanging_controller_costs_at_most_the_timeout(serve: Serve) -> None:
    release = asyncio.Event()

    async def hang(_request: web.Request) -> web.StreamResponse:
        await release.wait()
        return web.json_response([])

    server = await serve(hang)
    started = time.monotonic()
    async with LinstorClient(settings(server.url, timeout=0.3)) as client:
        with pytest.raises(LinstorUnavailable, match=r"no answer within 0\.3s"):
            await client.resources(["pvc-1"])
    assert time.monotonic() - started < 1.5
    release.set()


def tls_files(tmp_path: Path) -> tuple[CertificateAuthority, ssl.SSLContext]:
    ca = CertificateAuthority("linstor-ca")
    ca.pair.write(tmp_path, "ca")
    ca.issue("linstor-controller", ips=("127.0.0.1",), server=True).write(tmp_path, "server")
    ca.issue("tenant-cloud-csi", client=True).write(tmp_path, "client")
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(tmp_path / "ca.crt"))
    server.load_cert_chain(str(tmp_path / "server.crt"), str(tmp_path / "server.key"))
    server.verify_mode = ssl.CERT_REQUIRED
    return ca, server


async def test_mutual_tls(serve: Serve, tmp_path: Path) -> None:
    _, server_tls = tls_files(tmp_path)
    server = await serve(answer([RESOURCE]), tls=server_tls)
    files = {"ca": tmp_path / "ca.crt", "client_cert": tmp_path / "client.crt", "client_key": tmp_path / "client.key"}
    async with LinstorClient(settings(server.url, **files)) as client:
        assert len(await client.resources(["pvc-1"])) == 1


async def test_tls_without_client_certificate_is_refused(serve: Serve, tmp_path: Path) -> None:
    _, server_tls = tls_files(tmp_path)
    server = await serve(answer([RESOURCE]), tls=server_tls)
    async with LinstorClient(settings(server.url, ca=tmp_path / "ca.crt")) as client:
        with pytest.raises(LinstorUnavailable):
            await client.resources(["pvc-1"])
    assert not server.seen


async def test_unknown_controller_certificate_is_refused(serve: Serve, tmp_path: Path) -> None:
    _, server_tls = tls_files(tmp_path)
    CertificateAuthority("someone-else").pair.write(tmp_path, "other")
    server = await serve(answer([RESOURCE]), tls=server_tls)
    files = {
        "ca": tmp_path / "other.crt",
        "client_cert": tmp_path / "client.crt",
        "client_key": tmp_path / "client.key",
    }
    async with LinstorClient(settings(server.url, **files)) as client:
        with pytest.raises(LinstorUnavailable, match="Certificate"):
            await client.resources(["pvc-1"])


async def test_missing_tls_files_are_unavailable_not_a_crash(tmp_path: Path) -> None:
    missing = tmp_path / "nope.crt"
    async with LinstorClient(settings("https://127.0.0.1:1", ca=missing)) as client:
        with pytest.raises(LinstorUnavailable, match="TLS files"):
            await client.resources(["pvc-1"])
