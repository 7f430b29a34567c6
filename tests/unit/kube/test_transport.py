"""Retries, Retry-After and error mapping, against a small real HTTP server on loopback."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial

import pytest
from aiohttp import web

from kube.client import Client
from kube.config import ClusterConfig, StaticToken
from kube.errors import ConnectionFailed, NotFound, ServerError, TooManyRequests
from kube.resources import CONFIGMAPS
from kube.transport import Transport, TransportSettings

Answer = Callable[[], web.Response]


class Script:
    """Answers requests in order (repeating the last answer) and remembers what it saw."""

    def __init__(self, answers: list[Answer]) -> None:
        self.answers = answers
        self.seen: list[tuple[str, str, float, str]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append((request.method, request.path_qs, time.monotonic(), request.headers.get("Authorization", "")))
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        return answer()


Serve = Callable[[list[Answer]], Awaitable[tuple[Script, str]]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    runners: list[web.AppRunner] = []

    async def start(answers: list[Answer]) -> tuple[Script, str]:
        script = Script(answers)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", script.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = runner.addresses[0][1]
        return script, f"http://127.0.0.1:{port}"

    yield start
    for runner in runners:
        await runner.cleanup()


def status(code: int, reason: str, headers: dict[str, str] | None = None) -> Answer:
    body = {"kind": "Status", "code": code, "reason": reason, "message": reason}
    return partial(web.json_response, body, status=code, headers=headers)


def ok(body: dict[str, object], code: int = 200) -> Answer:
    return partial(web.json_response, body, status=code)


def client_for(server: str, max_retries: int = 5) -> Client:
    config = ClusterConfig(server=server, ssl_context=False, credentials=StaticToken("s3cr3t-token"))
    settings = TransportSettings(backoff_base=0.01, max_retries=max_retries, timeout=5)
    return Client(Transport(config, settings), "tests")


async def test_retry_after_is_honoured(serve: Serve) -> None:
    script, server = await serve(
        [status(429, "TooManyRequests", {"Retry-After": "0.3"}), ok({"metadata": {"name": "a"}})]
    )
    async with client_for(server) as api:
        got = await api.get(CONFIGMAPS, "a", "ns")
    assert got["metadata"]["name"] == "a"
    assert len(script.seen) == 2
    assert script.seen[1][2] - script.seen[0][2] >= 0.29
    assert script.seen[0][3] == "Bearer s3cr3t-token"


async def test_posts_are_retried_only_when_throttled(serve: Serve) -> None:
    script, server = await serve([status(503, "ServiceUnavailable")])
    async with client_for(server) as api:
        with pytest.raises(ServerError):
            await api.create(CONFIGMAPS, {"metadata": {"name": "a"}}, "ns")
        assert len(script.seen) == 1  # a 503 POST may have been applied: never resent
        with pytest.raises(ServerError):
            await api.get(CONFIGMAPS, "a", "ns")
    assert len(script.seen) == 1 + 1 + 5  # GET: first try plus max_retries


async def test_throttled_posts_are_resent(serve: Serve) -> None:
    script, server = await serve(
        [status(429, "TooManyRequests", {"Retry-After": "0"}), ok({"metadata": {"name": "a"}}, 201)]
    )
    async with client_for(server) as api:
        await api.create(CONFIGMAPS, {"metadata": {"name": "a"}}, "ns")
    assert [s[0] for s in script.seen] == ["POST", "POST"]
    assert "fieldManager=tests" in script.seen[0][1]


async def test_gives_up_after_max_retries(serve: Serve) -> None:
    script, server = await serve([status(429, "TooManyRequests", {"Retry-After": "0"})])
    async with client_for(server, max_retries=2) as api:
        with pytest.raises(TooManyRequests):
            await api.get(CONFIGMAPS, "a", "ns")
    assert len(script.seen) == 3


async def test_not_found_is_not_retried(serve: Serve) -> None:
    script, server = await serve([status(404, "NotFound")])
    async with client_for(server) as api:
        with pytest.raises(NotFound):
            await api.get(CONFIGMAPS, "a", "ns")
    assert len(script.seen) == 1


async def test_connection_refused_is_typed_and_token_free() -> None:
    async with client_for("http://127.0.0.1:9", max_retries=1) as api:
        with pytest.raises(ConnectionFailed) as failed:
            await api.get(CONFIGMAPS, "a", "ns")
    assert "s3cr3t" not in str(failed.value)
    assert "s3cr3t" not in repr(api.transport.config.credentials)
