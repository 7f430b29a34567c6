"""A client-go style work queue for asyncio.

Keys are deduplicated while they wait, a key is processed by at most one worker at a time (re-adding it while it
is processed marks it dirty, and it is queued again on `done`), and otherwise keys come out in FIFO order.
Delayed and rate-limited adds sit on a timer until due. Metrics are the client-go `workqueue_*` family.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
from collections import deque
from collections.abc import Hashable
from typing import Generic, Protocol, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from kube.clock import Clock, RealClock, Timer
from kube.ratelimit import RateLimiter, default_controller_rate_limiter

K = TypeVar("K", bound=Hashable)

# client-go's ExponentialBuckets(10e-9, 10, 12): 10 ns up to 1000 s.
_DURATION_BUCKETS = tuple(1e-8 * 10**i for i in range(12))


class ShutDown(Exception):
    """The queue is shut down and has nothing left to hand out."""


class QueueMetrics:
    """The `workqueue_*` collectors, labelled by queue name; make one per registry and share it between queues."""

    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ["name"]
        self.depth = Gauge("workqueue_depth", "Current depth of the work queue.", labels, registry=registry)
        self.adds = Counter("workqueue_adds_total", "Adds handled by the work queue.", labels, registry=registry)
        self.retries = Counter(
            "workqueue_retries_total", "Retries handled by the work queue.", labels, registry=registry
        )
        self.queue_duration = Histogram(
            "workqueue_queue_duration_seconds",
            "How long a key waits in the work queue before it is handed out.",
            labels,
            registry=registry,
            buckets=_DURATION_BUCKETS,
        )
        self.work_duration = Histogram(
            "workqueue_work_duration_seconds",
            "How long processing a key from the work queue takes.",
            labels,
            registry=registry,
            buckets=_DURATION_BUCKETS,
        )
        self.unfinished_work = Gauge(
            "workqueue_unfinished_work_seconds",
            "Seconds of in-progress work not yet observed by work_duration; large values mean stuck workers.",
            labels,
            registry=registry,
        )
        self.longest_running = Gauge(
            "workqueue_longest_running_processor_seconds",
            "How long the longest-running processing of a key has been going on.",
            labels,
            registry=registry,
        )


class _Instruments(Protocol):
    def added(self, key: Hashable) -> None: ...
    def started(self, key: Hashable) -> None: ...
    def finished(self, key: Hashable) -> None: ...
    def retried(self) -> None: ...
    def depth(self, depth: int) -> None: ...


class _NoInstruments:
    def added(self, key: Hashable) -> None: ...
    def started(self, key: Hashable) -> None: ...
    def finished(self, key: Hashable) -> None: ...
    def retried(self) -> None: ...
    def depth(self, depth: int) -> None: ...


class _QueueInstruments:
    """One queue's label children, plus the timestamps its durations are measured from."""

    def __init__(self, metrics: QueueMetrics, name: str, clock: Clock) -> None:
        self._clock = clock
        self._depth = metrics.depth.labels(name)
        self._adds = metrics.adds.labels(name)
        self._retries = metrics.retries.labels(name)
        self._queue_duration = metrics.queue_duration.labels(name)
        self._work_duration = metrics.work_duration.labels(name)
        self._added_at: dict[Hashable, float] = {}
        self._started_at: dict[Hashable, float] = {}
        # Computed at scrape time, so no background task has to refresh them.
        metrics.unfinished_work.labels(name).set_function(self._unfinished_work)
        metrics.longest_running.labels(name).set_function(self._longest_running)

    def added(self, key: Hashable) -> None:
        self._adds.inc()
        self._added_at.setdefault(key, self._clock.now())

    def started(self, key: Hashable) -> None:
        now = self._clock.now()
        if (added_at := self._added_at.pop(key, None)) is not None:
            self._queue_duration.observe(now - added_at)
        self._started_at[key] = now

    def finished(self, key: Hashable) -> None:
        if (started_at := self._started_at.pop(key, None)) is not None:
            self._work_duration.observe(self._clock.now() - started_at)

    def retried(self) -> None:
        self._retries.inc()

    def depth(self, depth: int) -> None:
        self._depth.set(depth)

    def _unfinished_work(self) -> float:
        now = self._clock.now()
        return sum(now - started for started in tuple(self._started_at.values()))

    def _longest_running(self) -> float:
        now = self._clock.now()
        return max((now - started for started in tuple(self._started_at.values())), default=0.0)


class WorkQueue(Generic[K]):
    """Keys to process, each handed to one worker at a time; see the module docstring for the guarantees."""

    def __init__(
        self,
        name: str = "",
        *,
        rate_limiter: RateLimiter | None = None,
        clock: Clock | None = None,
        metrics: QueueMetrics | None = None,
    ) -> None:
        self.name = name
        self._rate_limiter = rate_limiter if rate_limiter is not None else default_controller_rate_limiter()
        self._clock = clock if clock is not None else RealClock()
        self._instruments: _Instruments = (
            _QueueInstruments(metrics, name, self._clock) if metrics is not None else _NoInstruments()
        )
        self._queue: deque[K] = deque()
        # Keys that need processing: queued, or re-added while in flight.
        self._dirty: set[K] = set()
        self._processing: set[K] = set()
        self._shutting_down = False
        self._not_empty = asyncio.Event()
        self._nothing_in_flight = asyncio.Event()
        self._nothing_in_flight.set()
        # Delayed adds: the earliest ready time per key, and a heap of (ready_at, order, key) that may hold
        # stale entries for keys whose delay was later shortened.
        self._waiting: dict[K, float] = {}
        self._waiting_heap: list[tuple[float, int, K]] = []
        self._order = itertools.count()
        self._timer: Timer | None = None
        self._timer_at = math.inf

    def __len__(self) -> int:
        return len(self._queue)

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    @property
    def in_flight(self) -> int:
        """Keys handed out by `get` and not yet `done`."""
        return len(self._processing)

    def next_ready_in(self) -> float | None:
        """Seconds until the earliest delayed add falls due, or None when none is waiting."""
        self._drop_stale_waiting()
        if not self._waiting_heap:
            return None
        return max(0.0, self._waiting_heap[0][0] - self._clock.now())

    def add(self, key: K) -> None:
        """Queue `key` unless it is already waiting; a key in flight is queued again once it is done."""
        if self._shutting_down or key in self._dirty:
            return
        self._dirty.add(key)
        self._instruments.added(key)
        if key not in self._processing:
            self._push(key)

    def add_after(self, key: K, delay: float) -> None:
        """Add `key` once `delay` seconds have passed; a pending delayed add of the same key keeps the earlier time."""
        if self._shutting_down:
            return
        self._instruments.retried()
        if delay <= 0:
            self.add(key)
            return
        ready_at = self._clock.now() + delay
        if self._waiting.get(key, math.inf) <= ready_at:
            return
        self._waiting[key] = ready_at
        heapq.heappush(self._waiting_heap, (ready_at, next(self._order), key))
        self._arm_timer()

    def add_rate_limited(self, key: K) -> None:
        """Add `key` after the delay the rate limiter gives for its next retry."""
        if self._shutting_down:
            return
        self.add_after(key, self._rate_limiter.when(key))

    def forget(self, key: K) -> None:
        """Reset the rate limiter's memory of `key`'s failures."""
        self._rate_limiter.forget(key)

    def num_requeues(self, key: K) -> int:
        return self._rate_limiter.retries(key)

    async def get(self) -> K:
        """Wait for the next key and mark it in flight; raises ShutDown once shut down and empty."""
        while not self._queue:
            if self._shutting_down:
                raise ShutDown(self.name)
            self._not_empty.clear()
            await self._not_empty.wait()
        key = self._queue.popleft()
        self._dirty.discard(key)
        self._processing.add(key)
        self._nothing_in_flight.clear()
        self._instruments.started(key)
        self._instruments.depth(len(self._queue))
        return key

    def done(self, key: K) -> None:
        """Mark `key` processed; if it was re-added meanwhile, queue it again."""
        if key not in self._processing:
            return
        self._processing.discard(key)
        self._instruments.finished(key)
        if key in self._dirty:
            self._push(key)
        if not self._processing:
            self._nothing_in_flight.set()

    def shutdown(self) -> None:
        """Stop accepting keys and drop pending delayed adds; getters drain what is queued, then get ShutDown."""
        self._shutting_down = True
        self._waiting.clear()
        self._waiting_heap.clear()
        self._cancel_timer()
        self._not_empty.set()

    # client-go's ShutDownWithDrain, bounded: the timeout is part of the contract, not a caller's cancel scope.
    async def shutdown_with_drain(self, timeout: float) -> None:
        """Shut down, then wait until every key in flight is done; raises TimeoutError after `timeout` seconds."""
        self.shutdown()
        async with asyncio.timeout(timeout):
            await self._nothing_in_flight.wait()

    def _push(self, key: K) -> None:
        self._queue.append(key)
        self._instruments.depth(len(self._queue))
        self._not_empty.set()

    def _drop_stale_waiting(self) -> None:
        heap = self._waiting_heap
        while heap and self._waiting.get(heap[0][2]) != heap[0][0]:
            heapq.heappop(heap)

    def _arm_timer(self) -> None:
        self._drop_stale_waiting()
        if not self._waiting_heap:
            self._cancel_timer()
            return
        ready_at = self._waiting_heap[0][0]
        if self._timer is not None and self._timer_at == ready_at:
            return
        self._cancel_timer()
        self._timer = self._clock.call_at(ready_at, self._add_due)
        self._timer_at = ready_at

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._timer_at = math.inf

    def _add_due(self) -> None:
        self._timer = None
        self._timer_at = math.inf
        now = self._clock.now()
        heap = self._waiting_heap
        while heap and heap[0][0] <= now:
            ready_at, _, key = heapq.heappop(heap)
            if self._waiting.get(key) == ready_at:
                del self._waiting[key]
                self.add(key)
        self._arm_timer()
