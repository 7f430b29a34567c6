"""Event recorder (core/v1 Events) that aggregates repeats and rate-limits per object, like client-go's.

Recording never blocks the caller: events go through a bounded buffer to one background task.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cachetools import LRUCache

from kube.client import Client, Object
from kube.errors import ApiError, NotFound
from kube.ratelimit import TokenBucket
from kube.resources import EVENTS

log = logging.getLogger(__name__)

NORMAL, WARNING = "Normal", "Warning"
MESSAGE_LIMIT = 1024
# client-go's EventSourceObjectSpamFilter: a burst of 25 per object, then one per five minutes.
SPAM_BURST, SPAM_QPS = 25, 1.0 / 300.0
AGGREGATE_WINDOW = 600.0


@dataclass
class _Seen:
    name: str
    namespace: str
    count: int
    first: str
    last_sent: float


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def object_reference(obj: Object) -> dict[str, str]:
    metadata = obj.get("metadata") or {}
    ref = {
        "apiVersion": str(obj.get("apiVersion", "")),
        "kind": str(obj.get("kind", "")),
        "name": str(metadata.get("name", "")),
        "namespace": str(metadata.get("namespace", "")),
        "uid": str(metadata.get("uid", "")),
        "resourceVersion": str(metadata.get("resourceVersion", "")),
    }
    return {k: v for k, v in ref.items() if v}


class EventRecorder:
    def __init__(
        self,
        client: Client,
        component: str,
        *,
        host: str = "",
        buffer: int = 1000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.component = component
        self.host = host
        self._clock = clock
        self._queue: asyncio.Queue[tuple[dict[str, str], str, str, str]] = asyncio.Queue(buffer)
        self._seen: LRUCache[tuple[str, ...], _Seen] = LRUCache(maxsize=4096)
        self._spam: LRUCache[str, TokenBucket] = LRUCache(maxsize=4096)
        self.dropped = 0

    def event(self, obj: Object, type_: str, reason: str, message: str) -> None:
        """Record an Event about `obj` (Normal or Warning); returns at once."""
        if type_ not in (NORMAL, WARNING):
            raise ValueError(f"event type must be {NORMAL} or {WARNING}, not {type_!r}")
        try:
            self._queue.put_nowait((object_reference(obj), type_, reason, message[:MESSAGE_LIMIT]))
        except asyncio.QueueFull:
            self.dropped += 1

    def normal(self, obj: Object, reason: str, message: str) -> None:
        self.event(obj, NORMAL, reason, message)

    def warning(self, obj: Object, reason: str, message: str) -> None:
        self.event(obj, WARNING, reason, message)

    async def run(self) -> None:
        """Write queued events until cancelled."""
        while True:
            item = await self._queue.get()
            try:
                await self._write(*item)
            finally:
                self._queue.task_done()

    async def flush(self) -> None:
        """Wait until every event recorded so far was written (or given up on)."""
        await self._queue.join()

    def _allowed(self, ref: dict[str, str]) -> bool:
        key = ref.get("uid") or f"{ref.get('kind')}/{ref.get('namespace')}/{ref.get('name')}"
        bucket = self._spam.get(key)
        if bucket is None:
            bucket = self._spam[key] = TokenBucket(SPAM_QPS, SPAM_BURST, clock=self._clock)
        return bucket.try_take()

    async def _write(self, ref: dict[str, str], type_: str, reason: str, message: str) -> None:
        key = (
            ref.get("uid", ""),
            ref.get("kind", ""),
            ref.get("namespace", ""),
            ref.get("name", ""),
            type_,
            reason,
            message,
        )
        seen = self._seen.get(key)
        if seen is not None and self._clock() - seen.last_sent < AGGREGATE_WINDOW and await self._bump(seen):
            return
        if not self._allowed(ref):
            log.debug(
                "event %s on %s/%s dropped by the per-object rate limit", reason, ref.get("kind"), ref.get("name")
            )
            return
        namespace = ref.get("namespace") or "default"
        now = _now()
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": f"{ref.get('name', 'object')}.{secrets.token_hex(8)}", "namespace": namespace},
            "involvedObject": ref,
            "reason": reason,
            "message": message,
            "type": type_,
            "source": {"component": self.component, **({"host": self.host} if self.host else {})},
            "reportingComponent": self.component,
            "reportingInstance": self.host or self.component,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            created = await self.client.create(EVENTS, body, namespace)
        except ApiError as error:
            log.warning("could not record event %s on %s %s: %s", reason, ref.get("kind"), ref.get("name"), error)
            return
        self._seen[key] = _Seen(created["metadata"]["name"], namespace, 1, now, self._clock())

    async def _bump(self, seen: _Seen) -> bool:
        """Aggregate a repeat into the existing Event; False when that Event is gone."""
        seen.count += 1
        seen.last_sent = self._clock()
        patch = {"count": seen.count, "lastTimestamp": _now()}
        try:
            await self.client.patch(EVENTS, seen.name, patch, seen.namespace)
        except NotFound:
            return False
        except ApiError as error:
            log.warning("could not update event %s: %s", seen.name, error)
        return True
