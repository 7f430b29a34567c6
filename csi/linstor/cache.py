"""Answers worth reusing for a while, one load per key at a time, and a memory of LINSTOR being down.

The CSI sidecars call ListVolumes, ControllerGetVolume and GetCapacity on their own schedules, for many volumes
and classes at once; these keep that from turning into a request storm against LINSTOR or the parent API.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from cachetools import TLRUCache

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass(frozen=True)
class _Entry(Generic[V]):
    value: V
    ttl: float


class TtlCache(Generic[K, V]):
    """Values (None included) that expire after their own time-to-live; loads of one key are shared."""

    def __init__(self, *, maxsize: int = 8192, clock: Callable[[], float] = time.monotonic) -> None:
        self._items: TLRUCache[K, _Entry[V]] = TLRUCache(
            maxsize=maxsize, ttu=lambda _key, entry, now: now + entry.ttl, timer=clock
        )
        self._loading: dict[K, asyncio.Future[V]] = {}

    def lookup(self, key: K) -> tuple[bool, V | None]:
        entry = self._items.get(key)
        return (True, entry.value) if entry is not None else (False, None)

    def put(self, key: K, value: V, ttl: float) -> None:
        if ttl > 0:
            self._items[key] = _Entry(value, ttl)

    def forget(self, key: K) -> None:
        self._items.pop(key, None)

    def clear(self) -> None:
        self._items.clear()

    def loading(self, key: K) -> asyncio.Future[V] | None:
        return self._loading.get(key)

    def begin(self, key: K) -> asyncio.Future[V]:
        """Announce a load of `key` that the caller will `finish`; concurrent readers wait for it."""
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._loading[key] = future
        return future

    def finish(self, key: K, value: V, ttl: float) -> None:
        self.put(key, value, ttl)
        future = self._loading.pop(key, None)
        if future is not None and not future.done():
            future.set_result(value)

    async def get_or_load(self, key: K, load: Callable[[], Awaitable[tuple[V, float]]]) -> V:
        """The cached value, else the result of the load already running for `key`, else of a new `load()`.

        The load runs as its own task, so a caller that gives up (a gRPC deadline) does not cancel it for others.
        """
        found, value = self.lookup(key)
        if found:
            return value  # type: ignore[return-value]
        pending = self._loading.get(key)
        if pending is None:
            pending = self._loading[key] = asyncio.ensure_future(self._load(key, load))
            pending.add_done_callback(lambda done: self._settled(key, done))
        return await asyncio.shield(pending)

    async def _load(self, key: K, load: Callable[[], Awaitable[tuple[V, float]]]) -> V:
        value, ttl = await load()
        self.put(key, value, ttl)
        return value

    def _settled(self, key: K, done: asyncio.Future[V]) -> None:
        if self._loading.get(key) is done:
            del self._loading[key]
        if not done.cancelled():
            done.exception()  # retrieved here; a load nobody awaits any more must not warn


class Outage:
    """After a failure, LINSTOR is not asked again for `retry_after` seconds; logs only when the state flips."""

    def __init__(self, retry_after: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.retry_after = retry_after
        self._clock = clock
        self._since: float | None = None
        self._until = 0.0

    @property
    def down(self) -> bool:
        return self._since is not None and self._clock() < self._until

    def failed(self, error: Exception) -> None:
        if self._since is None:
            self._since = self._clock()
            log.warning("LINSTOR unavailable, volume health and capacity are unknown until it answers: %s", error)
        self._until = self._clock() + self.retry_after

    def succeeded(self) -> None:
        if self._since is not None:
            log.info("LINSTOR answers again after %.0fs", self._clock() - self._since)
            self._since = None
