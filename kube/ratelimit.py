"""Rate limiters with client-go semantics: a token bucket for QPS/burst, and per-item requeue delays for work queues."""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Callable, Hashable
from typing import Protocol


class TokenBucket:
    """`qps` tokens per second, holding at most `burst`; like golang.org/x/time/rate, callers may borrow ahead.

    Each reservation takes one token at once; when the bucket is empty the token count goes negative, and the
    reservation's delay is the time the bucket needs to refill back to zero, so waiters queue up in order.
    """

    def __init__(self, qps: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        if not qps > 0:
            raise ValueError(f"qps must be positive, got {qps}")
        if burst < 1:
            raise ValueError(f"burst must be at least 1, got {burst}")
        self._qps = qps
        self._burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._last = clock()

    @property
    def qps(self) -> float:
        return self._qps

    @property
    def burst(self) -> int:
        return self._burst

    def reserve(self) -> float:
        """Take a token now; return the seconds to wait before using it (0 when one was available)."""
        if math.isinf(self._qps):
            return 0.0
        self._refill()
        self._tokens -= 1
        return 0.0 if self._tokens >= 0 else -self._tokens / self._qps

    def try_take(self) -> bool:
        """Take a token only if one is available now, never borrowing ahead (client-go's TryAccept)."""
        if math.isinf(self._qps):
            return True
        self._refill()
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    async def acquire(self) -> None:
        """Wait until a token is ours; a cancelled wait hands its token back."""
        delay = self.reserve()
        if delay <= 0:
            return
        try:
            await asyncio.sleep(delay)
        except asyncio.CancelledError:
            self._refill()
            self._tokens = min(float(self._burst), self._tokens + 1)
            raise

    def _refill(self) -> None:
        now = self._clock()
        if now > self._last:
            self._tokens = min(float(self._burst), self._tokens + (now - self._last) * self._qps)
            self._last = now


class RateLimiter(Protocol):
    """Decides how long an item waits before it is retried (client-go's workqueue.RateLimiter)."""

    def when(self, item: Hashable) -> float:
        """Record a failure of `item` and return the seconds to wait before retrying it."""
        ...

    def forget(self, item: Hashable) -> None:
        """Stop tracking `item`: it succeeded, or was given up on."""
        ...

    def retries(self, item: Hashable) -> int:
        """How many failures of `item` are currently remembered."""
        ...


class ItemExponentialRateLimiter:
    """Per item: `base * 2**failures`, capped at `cap`; forgetting an item resets it."""

    def __init__(self, base: float = 0.005, cap: float = 300.0) -> None:
        if base <= 0 or cap < base:
            raise ValueError(f"need 0 < base <= cap, got base={base} cap={cap}")
        self._base = base
        self._cap = cap
        self._failures: dict[Hashable, int] = {}

    def when(self, item: Hashable) -> float:
        failures = self._failures.get(item, 0)
        self._failures[item] = failures + 1
        # Past 2**1000 the delay is capped anyway; bounding the exponent keeps the float from overflowing.
        return min(self._cap, self._base * 2.0 ** min(failures, 1000))

    def forget(self, item: Hashable) -> None:
        self._failures.pop(item, None)

    def retries(self, item: Hashable) -> int:
        return self._failures.get(item, 0)


class BucketRateLimiter:
    """One token bucket shared by all items, so a burst of failures cannot retry faster than `qps` overall."""

    def __init__(self, qps: float = 10.0, burst: int = 100, clock: Callable[[], float] = time.monotonic) -> None:
        self._bucket = TokenBucket(qps, burst, clock)

    def when(self, item: Hashable) -> float:
        return self._bucket.reserve()

    def forget(self, item: Hashable) -> None:
        """Nothing to forget: the bucket is not per item."""

    def retries(self, item: Hashable) -> int:
        return 0


class MaxOfRateLimiter:
    """The longest delay of several limiters, e.g. per-item backoff bounded below by an overall rate."""

    def __init__(self, *limiters: RateLimiter) -> None:
        if not limiters:
            raise ValueError("MaxOfRateLimiter needs at least one limiter")
        self._limiters = limiters

    def when(self, item: Hashable) -> float:
        return max(limiter.when(item) for limiter in self._limiters)

    def forget(self, item: Hashable) -> None:
        for limiter in self._limiters:
            limiter.forget(item)

    def retries(self, item: Hashable) -> int:
        return max(limiter.retries(item) for limiter in self._limiters)


def default_controller_rate_limiter() -> MaxOfRateLimiter:
    """Per-item exponential backoff from 5 ms to 300 s, and at most 10 retries/s (burst 100) overall."""
    return MaxOfRateLimiter(ItemExponentialRateLimiter(0.005, 300.0), BucketRateLimiter(10.0, 100))


def retry_backoff(attempt: int, retry_after: float | None, *, base: float, cap: float, retry_after_cap: float) -> float:
    """Seconds to wait before retry `attempt`: the server's Retry-After when it sent one (up to
    `retry_after_cap`), else `base * 2**attempt` up to `cap`, jittered between half and all of it."""
    if retry_after is not None:
        return min(retry_after, retry_after_cap)
    # Past 2**1000 the delay is capped anyway; bounding the exponent keeps the float from overflowing.
    ceiling = min(cap, base * 2.0 ** min(attempt, 1000))
    return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not cryptography
