"""HTTP to one API server over aiohttp: auth, client-side QPS limit, timeouts, retries, typed errors."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp

from kube.config import ClusterConfig
from kube.errors import ApiError, ConnectionFailed, ServerTimeout, TooManyRequests, error_from_response
from kube.ratelimit import TokenBucket, retry_backoff

log = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})
# Verbs whose repetition cannot change the outcome (PUT carries a resourceVersion precondition).
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE"})
WATCH_READ_BUFFER = 16 * 1024 * 1024  # a single watch event can carry an object up to etcd's 1.5 MiB limit


@dataclass(frozen=True)
class TransportSettings:
    """Client-side limits; defaults mirror a busy controller's, not client-go's conservative 5/10."""

    qps: float = 50.0
    burst: int = 100
    timeout: float = 30.0
    max_retries: int = 5
    backoff_base: float = 0.2
    backoff_cap: float = 10.0
    retry_after_cap: float = 60.0
    user_agent: str = "tenant-cloud"


class Transport:
    def __init__(self, config: ClusterConfig, settings: TransportSettings | None = None) -> None:
        self.config = config
        self.settings = settings or TransportSettings()
        self._bucket = TokenBucket(self.settings.qps, self.settings.burst)
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(ssl=self.config.ssl_context, limit=0)
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers={"User-Agent": self.settings.user_agent, "Accept": "application/json"},
                read_bufsize=WATCH_READ_BUFFER,
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _headers(self, content_type: str | None) -> dict[str, str]:
        headers = {}
        authorization = await self.config.credentials.authorization()
        if authorization:
            headers["Authorization"] = authorization
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        settings = self.settings
        return retry_backoff(
            attempt,
            retry_after,
            base=settings.backoff_base,
            cap=settings.backoff_cap,
            retry_after_cap=settings.retry_after_cap,
        )

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str | None = None,
        timeout: float | None = None,
        idempotent: bool | None = None,
    ) -> Any:
        """Send one API request and return the decoded JSON answer; retries what is safe to retry."""
        retry_all = method in IDEMPOTENT_METHODS if idempotent is None else idempotent
        data = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        if data is not None and content_type is None:
            content_type = "application/json"
        attempt = 0
        while True:
            try:
                return await self._send(method, path, params, data, content_type, timeout)
            except ApiError as error:
                # A 429 was never processed and a refused connection never arrived: both are safe to resend.
                safe = isinstance(error, TooManyRequests) or (
                    retry_all
                    and (error.status in RETRYABLE_STATUS or isinstance(error, ConnectionFailed | ServerTimeout))
                )
                refused = isinstance(error, ConnectionFailed) and error.reason == "ConnectionRefused"
                if attempt >= self.settings.max_retries or not (safe or refused):
                    raise
                delay = self._backoff(attempt, error.retry_after)
                log.debug("retrying %s %s in %.2fs after %s", method, path, delay, error)
                attempt += 1
                await asyncio.sleep(delay)

    async def _send(
        self,
        method: str,
        path: str,
        params: Mapping[str, str] | None,
        data: bytes | None,
        content_type: str | None,
        timeout: float | None,
    ) -> Any:
        await self._bucket.acquire()
        started = time.monotonic()
        headers = await self._headers(content_type)
        url = self.config.server + path
        client_timeout = aiohttp.ClientTimeout(total=timeout or self.settings.timeout)
        try:
            async with self.session.request(
                method, url, params=params, data=data, headers=headers, timeout=client_timeout
            ) as response:
                payload = await response.read()
                status = response.status
                response_headers = dict(response.headers)
        except TimeoutError as exc:
            raise ServerTimeout(
                status=0, reason="ClientTimeout", message="no answer in time", method=method, path=path
            ) from exc
        except aiohttp.ClientConnectorError as exc:
            raise ConnectionFailed(
                status=0, reason="ConnectionRefused", message=str(exc.os_error), method=method, path=path
            ) from exc
        except aiohttp.ClientError as exc:
            raise ConnectionFailed(
                status=0, reason=type(exc).__name__, message=str(exc)[:200], method=method, path=path
            ) from exc
        log.log(5, "%s %s -> %d in %.1fms", method, path, status, (time.monotonic() - started) * 1000)
        if status >= 400:
            raise error_from_response(status, payload, response_headers, method=method, path=path)
        return json.loads(payload) if payload else None

    @asynccontextmanager
    async def stream(
        self, path: str, params: Mapping[str, str], *, read_timeout: float
    ) -> AsyncIterator[aiohttp.StreamReader]:
        """Open a long-running GET (a watch); any read gap longer than `read_timeout` aborts it."""
        await self._bucket.acquire()
        headers = await self._headers(None)
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.settings.timeout, sock_read=read_timeout)
        try:
            async with self.session.get(
                self.config.server + path, params=params, headers=headers, timeout=timeout
            ) as response:
                if response.status >= 400:
                    payload = await response.read()
                    raise error_from_response(
                        response.status, payload, dict(response.headers), method="WATCH", path=path
                    )
                yield response.content
        except TimeoutError as exc:
            raise ServerTimeout(
                status=0, reason="WatchInactive", message=f"no data for {read_timeout:.0f}s", method="WATCH", path=path
            ) from exc
        except aiohttp.ClientConnectorError as exc:
            raise ConnectionFailed(
                status=0, reason="ConnectionRefused", message=str(exc.os_error), method="WATCH", path=path
            ) from exc
        except aiohttp.ClientError as exc:
            raise ConnectionFailed(
                status=0, reason=type(exc).__name__, message=str(exc)[:200], method="WATCH", path=path
            ) from exc
