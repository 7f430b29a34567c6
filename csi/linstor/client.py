"""A thin async client of the few LINSTOR REST endpoints we use, with controller failover and one deadline.

    GET  /v1/view/resources?resources=<rd>...       replicas with flags, DRBD layer and volume disk states
    POST /v1/resource-groups/{rg}/query-size-info    what the next spawn in a resource group could get
    GET  /v1/view/storage-pools?storage_pools=<sp>   free and total KiB per pool and node
    GET  /v1/resource-definitions?resource_definitions=<rd>   a definition's group and properties
    GET  /v1/resource-groups?resource_groups=<rg>              a group's properties
    POST /v1/resource-definitions/{rd}/resources/{node}/make-available   the only write: add a replica there

Nothing here deletes or shrinks anything: the client has no call that could remove a replica.

Controllers are tried in order, starting with the last one that answered; connection failures and 502/503/504
move on to the next, any other error status is the answer. The whole call, failover included, is bounded by
`settings.timeout`. Every failure is a `LinstorError`.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import aiohttp
from pydantic import BaseModel, TypeAdapter, ValidationError

from csi.linstor.errors import (
    LinstorApiError,
    LinstorBadResponse,
    LinstorError,
    LinstorNotFound,
    LinstorUnavailable,
)
from csi.linstor.models import (
    ApiCallRc,
    AutoSelectFilter,
    QuerySizeInfoRequest,
    QuerySizeInfoResponse,
    Resource,
    ResourceDefinition,
    ResourceGroup,
    ResourceMakeAvailable,
    StoragePool,
)
from csi.linstor.settings import LinstorSettings, ssl_context, tls_files

log = logging.getLogger(__name__)

T = TypeVar("T")
FAILOVER_STATUSES = frozenset({502, 503, 504})
# URLs stay well under proxy limits (8 KiB) with ~50 resource names of ~45 characters each.
NAMES_PER_REQUEST = 50
TLS_RECHECK_SECONDS = 60.0

_RESOURCES: TypeAdapter[list[Resource]] = TypeAdapter(list[Resource])
_POOLS: TypeAdapter[list[StoragePool]] = TypeAdapter(list[StoragePool])
_SIZE_INFO: TypeAdapter[QuerySizeInfoResponse] = TypeAdapter(QuerySizeInfoResponse)
_REPLIES: TypeAdapter[list[ApiCallRc]] = TypeAdapter(list[ApiCallRc])
_DEFINITIONS: TypeAdapter[list[ResourceDefinition]] = TypeAdapter(list[ResourceDefinition])
_GROUPS: TypeAdapter[list[ResourceGroup]] = TypeAdapter(list[ResourceGroup])


def _parse(adapter: TypeAdapter[T], body: Any, what: str) -> T:
    try:
        return adapter.validate_python(body)
    except ValidationError as error:
        # The error text would quote the input, which may hold DRBD secrets: report where, not what.
        where = ", ".join(".".join(str(p) for p in e["loc"]) for e in error.errors()[:3])
        raise LinstorBadResponse(
            f"unexpected {what} from LINSTOR ({error.error_count()} problems at {where})"
        ) from None


def _messages(body: Any) -> tuple[str, ...]:
    try:
        return tuple(rc.message for rc in _REPLIES.validate_python(body if isinstance(body, list) else [body]))
    except ValidationError:
        return ()


def _mtimes(paths: Sequence[Path]) -> tuple[float, ...]:
    return tuple(p.stat().st_mtime for p in paths)


class LinstorClient:
    def __init__(self, settings: LinstorSettings) -> None:
        self.settings = settings
        self._session: aiohttp.ClientSession | None = None
        self._preferred = 0
        self._tls_stamp: tuple[float, ...] = ()
        self._tls_checked = 0.0
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> LinstorClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- the endpoints ---------------------------------------------------------------------------------------

    async def resources(self, names: Sequence[str]) -> list[Resource]:
        """Every replica of the named resource definitions; unknown names simply have none."""
        found: list[Resource] = []
        for start in range(0, len(names), NAMES_PER_REQUEST):
            params = [("resources", name) for name in names[start : start + NAMES_PER_REQUEST]]
            body = await self._request("GET", "/v1/view/resources", params=params)
            page: list[Resource] = _parse(_RESOURCES, body, "resource list")
            found.extend(page)
        return found

    async def size_info(self, resource_group: str, select: AutoSelectFilter | None = None) -> QuerySizeInfoResponse:
        """LINSTOR's own answer to "how much fits" for a resource group; `select` overrides its filter."""
        path = f"/v1/resource-groups/{quote(resource_group, safe='')}/query-size-info"
        body = await self._request("POST", path, json=QuerySizeInfoRequest(select_filter=select))
        return _parse(_SIZE_INFO, body, "size info")

    async def storage_pools(self, names: Sequence[str] = (), nodes: Sequence[str] = ()) -> list[StoragePool]:
        params = [("storage_pools", name) for name in names] + [("nodes", node) for node in nodes]
        body = await self._request("GET", "/v1/view/storage-pools", params=params)
        return _parse(_POOLS, body, "storage pool list")

    async def resource_definitions(self, names: Sequence[str]) -> list[ResourceDefinition]:
        params = [("resource_definitions", name) for name in names]
        body = await self._request("GET", "/v1/resource-definitions", params=params)
        return _parse(_DEFINITIONS, body, "resource definition list")

    async def resource_groups(self, names: Sequence[str]) -> list[ResourceGroup]:
        params = [("resource_groups", name) for name in names]
        body = await self._request("GET", "/v1/resource-groups", params=params)
        return _parse(_GROUPS, body, "resource group list")

    async def make_available(self, definition: str, node: str, *, diskful: bool) -> tuple[str, ...]:
        """Deploy `definition` on `node` (or give its diskless resource a disk); LINSTOR's reply messages.

        LINSTOR picks the storage pool with the resource group's autoplace settings and answers 404 when none
        on the node fits; a resource already deployed as asked is a success that changes nothing.
        """
        path = f"/v1/resource-definitions/{quote(definition, safe='')}/resources/{quote(node, safe='')}/make-available"
        body = await self._request("POST", path, json=ResourceMakeAvailable(diskful=diskful))
        return _messages(body)

    # -- transport -------------------------------------------------------------------------------------------

    async def _request(
        self, method: str, path: str, *, params: list[tuple[str, str]] | None = None, json: BaseModel | None = None
    ) -> Any:
        payload = json.model_dump(exclude_none=True) if json is not None else None
        urls = self.settings.urls
        failures: list[str] = []
        try:
            async with asyncio.timeout(self.settings.timeout):
                session = await self._current_session()
                for step in range(len(urls)):
                    index = (self._preferred + step) % len(urls)
                    try:
                        body = await self._send(session, method, urls[index] + path, params, payload)
                    except _TryNext as failure:
                        failures.append(f"{urls[index]}: {failure}")
                        continue
                    self._preferred = index
                    return body
        except TimeoutError:
            failures.append(f"no answer within {self.settings.timeout:g}s")
        except (OSError, ssl.SSLError) as error:
            raise LinstorUnavailable(f"LINSTOR TLS files unusable: {error}") from None
        raise LinstorUnavailable(f"{method} {path}: " + "; ".join(failures))

    async def _send(
        self,
        session: aiohttp.ClientSession,
        method: str,
        url: str,
        params: list[tuple[str, str]] | None,
        payload: dict[str, Any] | None,
    ) -> Any:
        try:
            async with session.request(method, url, params=params, json=payload) as response:
                if response.status in FAILOVER_STATUSES:
                    raise _TryNext(f"HTTP {response.status}")
                body = await response.json(content_type=None)
        except aiohttp.ClientError as error:
            raise _TryNext(type(error).__name__ + (f" ({error})" if str(error) else "")) from None
        except ValueError:
            raise LinstorBadResponse(f"{method} {url}: answer is not JSON") from None
        if response.status >= 400:
            kind = LinstorNotFound if response.status == 404 else LinstorApiError
            raise kind(response.status, f"{method} {response.url.path}", _messages(body))
        return body

    async def _current_session(self) -> aiohttp.ClientSession:
        """The session, rebuilt when the mounted TLS files changed (Secret rotation); file reads run off the loop."""
        async with self._lock:
            now = time.monotonic()
            files = tls_files(self.settings)
            if self._session is not None and (not files or now - self._tls_checked < TLS_RECHECK_SECONDS):
                return self._session
            self._tls_checked = now
            stamp = await asyncio.to_thread(_mtimes, files) if files else ()
            if self._session is not None and stamp == self._tls_stamp:
                return self._session
            context = await asyncio.to_thread(ssl_context, self.settings)
            if self._session is not None:
                log.info("LINSTOR TLS files changed; reconnecting with the new certificates")
                await self._session.close()
            self._tls_stamp = stamp
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.settings.connect_timeout)
            connector = aiohttp.TCPConnector(ssl=context if context is not None else True, limit=16)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=timeout, headers={"Accept": "application/json"}
            )
            return self._session


class _TryNext(LinstorError):
    """This controller did not answer; try the next one."""
