"""The health server answers probes like kube-apiserver and exposes our own registry, over real sockets."""

from __future__ import annotations

import socket
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import aiohttp
import pytest
from prometheus_client import CollectorRegistry, Counter

from kube.http import BindAddress, HealthServer, parse_bind_address

LOOPBACK = "127.0.0.1:0"


async def get(
    address: tuple[str, int] | None, path: str, headers: Mapping[str, str] | None = None
) -> aiohttp.ClientResponse:
    """GET a path from a started listener; the body is read before the session closes."""
    assert address is not None, "endpoint not bound"
    host, port = address
    async with aiohttp.ClientSession() as session, session.get(f"http://{host}:{port}{path}", headers=headers) as resp:
        await resp.read()
        return resp


@contextmanager
def occupied_port() -> Iterator[int]:
    """A loopback port with a listener on it, so binding there fails."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        (":10258", BindAddress(None, 10258)),
        ("127.0.0.1:0", BindAddress("127.0.0.1", 0)),
        ("0.0.0.0:8080", BindAddress("0.0.0.0", 8080)),
        ("[::1]:9090", BindAddress("::1", 9090)),
        ("localhost:80", BindAddress("localhost", 80)),
        ("0", None),
        ("", None),
    ],
)
def test_parse_bind_address(address: str, expected: BindAddress | None) -> None:
    assert parse_bind_address(address) == expected


@pytest.mark.parametrize("address", ["10258", "host:", "host:port", ":65536", ":-1"])
def test_parse_bind_address_rejects_garbage(address: str) -> None:
    with pytest.raises(ValueError, match="invalid bind address"):
        parse_bind_address(address)


async def test_readiness_flips_from_503_to_200() -> None:
    synced: str | bool = "waiting for services, endpointslices"
    async with HealthServer(CollectorRegistry(), LOOPBACK, "0") as server:
        server.add_readiness_check("informers-synced", lambda: synced)

        not_ready = await get(server.health_address, "/readyz")
        assert not_ready.status == 503
        assert await not_ready.text() == (
            "[-]informers-synced failed: waiting for services, endpointslices\nreadyz check failed\n"
        )

        synced = True
        ready = await get(server.health_address, "/readyz")
        assert (ready.status, await ready.text()) == (200, "ok")
        assert ready.content_type == "text/plain"
        assert ready.headers["X-Content-Type-Options"] == "nosniff"


async def test_verbose_lists_every_check_and_the_info_lines() -> None:
    async with HealthServer(CollectorRegistry(), LOOPBACK, "0") as server:
        server.add_liveness_check("event-loop", lambda: True)
        server.add_readiness_check("informers-synced", lambda: True)
        server.add_readiness_check("parent-cluster", lambda: False)
        server.set_info("leader", True)
        server.set_info("leader-identity", "ccm-7f9c")

        readyz = await get(server.health_address, "/readyz?verbose")
        healthz = await get(server.health_address, "/healthz?verbose")

    assert readyz.status == 503
    assert (await readyz.text()).splitlines() == [
        "[+]event-loop ok",
        "[+]informers-synced ok",
        "[-]parent-cluster failed",
        "leader: true",
        "leader-identity: ccm-7f9c",
        "readyz check failed",
    ]
    assert healthz.status == 200
    assert (await healthz.text()).splitlines() == [
        "[+]event-loop ok",
        "leader: true",
        "leader-identity: ccm-7f9c",
        "healthz check passed",
    ]


async def test_liveness_failure_fails_both_probes_but_readiness_failure_only_readyz() -> None:
    alive, ready = True, False
    async with HealthServer(CollectorRegistry(), LOOPBACK, "0") as server:
        server.add_liveness_check("event-loop", lambda: alive or "blocked for 12s")
        server.add_readiness_check("informers-synced", lambda: ready)

        assert (await get(server.health_address, "/healthz")).status == 200
        assert (await get(server.health_address, "/readyz")).status == 503

        alive, ready = False, True
        healthz = await get(server.health_address, "/healthz")
        readyz = await get(server.health_address, "/readyz")

    assert (healthz.status, await healthz.text()) == (
        503,
        "[-]event-loop failed: blocked for 12s\nhealthz check failed\n",
    )
    assert (readyz.status, await readyz.text()) == (503, "[-]event-loop failed: blocked for 12s\nreadyz check failed\n")


async def test_a_raising_check_fails_with_its_error() -> None:
    def broken() -> bool:
        raise RuntimeError("cache closed")

    async with HealthServer(CollectorRegistry(), LOOPBACK, "0") as server:
        server.add_readiness_check("informers-synced", broken)
        readyz = await get(server.health_address, "/readyz")

    assert readyz.status == 503
    assert "[-]informers-synced failed: check raised RuntimeError: cache closed" in await readyz.text()


def test_check_names_are_unique_across_probes() -> None:
    server = HealthServer(CollectorRegistry(), LOOPBACK, "0")
    server.add_liveness_check("ping", lambda: True)
    with pytest.raises(ValueError, match="already registered"):
        server.add_readiness_check("ping", lambda: True)


async def test_metrics_come_from_the_given_registry_on_a_shared_listener() -> None:
    registry = CollectorRegistry()
    reconciles = Counter("tenant_cloud_reconciles", "Reconciles handled.", ["controller"], registry=registry)
    reconciles.labels(controller="service").inc(3)

    async with HealthServer(registry, LOOPBACK, LOOPBACK) as server:
        assert server.metrics_address == server.health_address
        metrics = await get(server.metrics_address, "/metrics")
        healthz = await get(server.health_address, "/healthz")

    assert metrics.status == 200
    assert metrics.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    body = await metrics.text()
    assert 'tenant_cloud_reconciles_total{controller="service"} 3.0' in body.splitlines()
    # The process/platform collectors live in the global registry, which we never serve.
    assert "process_cpu_seconds_total" not in body
    assert healthz.status == 200


async def test_metrics_negotiate_openmetrics() -> None:
    registry = CollectorRegistry()
    Counter("tenant_cloud_events", "Events recorded.", registry=registry).inc()

    async with HealthServer(registry, "0", LOOPBACK) as server:
        metrics = await get(server.metrics_address, "/metrics", {"Accept": "application/openmetrics-text"})

    assert metrics.headers["Content-Type"].startswith("application/openmetrics-text")
    body = await metrics.text()
    assert "tenant_cloud_events_total 1.0" in body
    assert body.endswith("# EOF\n")


async def test_separate_listeners_serve_only_their_own_paths() -> None:
    async with HealthServer(CollectorRegistry(), LOOPBACK, f"127.0.0.1:{free_port()}") as server:
        assert server.health_address is not None
        assert server.metrics_address is not None
        assert server.health_address != server.metrics_address
        assert (await get(server.health_address, "/metrics")).status == 404
        assert (await get(server.metrics_address, "/healthz")).status == 404
        assert (await get(server.metrics_address, "/metrics")).status == 200


async def test_disabled_endpoints_are_not_bound() -> None:
    async with HealthServer(CollectorRegistry(), LOOPBACK, "0") as server:
        assert server.metrics_address is None
        assert (await get(server.health_address, "/healthz")).status == 200
    async with HealthServer(CollectorRegistry(), "", "0") as server:
        assert (server.health_address, server.metrics_address) == (None, None)


async def test_stop_releases_the_port() -> None:
    server = HealthServer(CollectorRegistry(), LOOPBACK, "0")
    await server.start()
    address = server.health_address
    with pytest.raises(RuntimeError, match="already started"):
        await server.start()
    await server.stop()
    await server.stop()

    assert server.health_address is None
    with pytest.raises(aiohttp.ClientConnectorError):
        await get(address, "/healthz")


async def test_a_failed_start_leaves_nothing_bound() -> None:
    health_port = free_port()
    with occupied_port() as metrics_port:
        server = HealthServer(CollectorRegistry(), f"127.0.0.1:{health_port}", f"127.0.0.1:{metrics_port}")
        with pytest.raises(OSError):
            await server.start()

    assert (server.health_address, server.metrics_address) == (None, None)
    with pytest.raises(aiohttp.ClientConnectorError):
        await get(("127.0.0.1", health_port), "/healthz")
