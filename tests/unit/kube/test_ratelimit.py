"""Token bucket and per-item rate limiters, against client-go's documented behaviour."""

from __future__ import annotations

import asyncio
import math

import pytest

from kube.clock import FakeClock
from kube.ratelimit import (
    BucketRateLimiter,
    ItemExponentialRateLimiter,
    MaxOfRateLimiter,
    RateLimiter,
    TokenBucket,
    default_controller_rate_limiter,
)


@pytest.mark.parametrize(
    ("qps", "burst", "steps", "expected"),
    [
        # (advance the clock by, then reserve) -> delay
        pytest.param(2.0, 3, [0, 0, 0, 0, 0], [0.0, 0.0, 0.0, 0.5, 1.0], id="burst then queue at 1/qps"),
        pytest.param(2.0, 1, [0, 0.5, 0.5], [0.0, 0.0, 0.0], id="refill keeps pace"),
        pytest.param(2.0, 1, [0, 0, 0.25], [0.0, 0.5, 0.75], id="queued reservations keep their place"),
        pytest.param(1.0, 2, [0, 0, 100, 0, 0, 0], [0.0, 0.0, 0.0, 0.0, 1.0, 2.0], id="refill capped at burst"),
        pytest.param(math.inf, 1, [0, 0, 0], [0.0, 0.0, 0.0], id="infinite qps never waits"),
    ],
)
def test_token_bucket_reserve(qps: float, burst: int, steps: list[float], expected: list[float]) -> None:
    clock = FakeClock()
    bucket = TokenBucket(qps, burst, clock.now)
    delays = []
    for step in steps:
        clock.advance(step)
        delays.append(bucket.reserve())
    assert delays == pytest.approx(expected)


def test_token_bucket_try_take_never_borrows() -> None:
    clock = FakeClock()
    bucket = TokenBucket(2.0, 2, clock.now)
    assert [bucket.try_take() for _ in range(3)] == [True, True, False]
    clock.advance(0.25)
    assert not bucket.try_take()
    clock.advance(0.25)
    assert bucket.try_take()
    assert bucket.reserve() == pytest.approx(0.5)
    assert not bucket.try_take()


@pytest.mark.parametrize(
    ("qps", "burst", "complaint"),
    [(0.0, 1, "qps"), (-1.0, 1, "qps"), (math.nan, 1, "qps"), (1.0, 0, "burst")],
)
def test_token_bucket_rejects_bad_settings(qps: float, burst: int, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        TokenBucket(qps, burst)


async def test_token_bucket_acquire_returns_at_once_with_tokens_left() -> None:
    bucket = TokenBucket(1.0, 2, FakeClock().now)
    async with asyncio.timeout(1):
        await bucket.acquire()
        await bucket.acquire()
    assert bucket.reserve() == pytest.approx(1.0)


async def test_token_bucket_acquire_waits_for_a_token() -> None:
    bucket = TokenBucket(200.0, 1)
    loop = asyncio.get_running_loop()
    await bucket.acquire()
    started = loop.time()
    await bucket.acquire()
    # 1/200 s, less the asyncio timer granularity.
    assert loop.time() - started >= 0.004


async def test_cancelled_acquire_returns_its_token() -> None:
    bucket = TokenBucket(1.0, 1, FakeClock().now)
    await bucket.acquire()
    waiter = asyncio.create_task(bucket.acquire())
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert bucket.reserve() == pytest.approx(1.0)


def test_item_exponential_doubles_per_failure_up_to_cap() -> None:
    limiter = ItemExponentialRateLimiter(base=0.005, cap=0.1)
    assert [limiter.when("a") for _ in range(7)] == pytest.approx([0.005, 0.01, 0.02, 0.04, 0.08, 0.1, 0.1])
    assert limiter.retries("a") == 7


def test_item_exponential_tracks_items_separately_and_forgets() -> None:
    limiter = ItemExponentialRateLimiter(base=1.0, cap=60.0)
    limiter.when("a")
    limiter.when("a")
    assert limiter.when("b") == 1.0
    assert (limiter.retries("a"), limiter.retries("b")) == (2, 1)
    limiter.forget("a")
    assert limiter.retries("a") == 0
    assert limiter.when("a") == 1.0
    limiter.forget("never-seen")


def test_item_exponential_survives_huge_failure_counts() -> None:
    limiter = ItemExponentialRateLimiter(base=1.0, cap=300.0)
    delays = [limiter.when("a") for _ in range(2000)]
    assert delays[-1] == 300.0


@pytest.mark.parametrize(("base", "cap"), [(0.0, 1.0), (-1.0, 1.0), (2.0, 1.0)])
def test_item_exponential_rejects_bad_settings(base: float, cap: float) -> None:
    with pytest.raises(ValueError, match="base"):
        ItemExponentialRateLimiter(base, cap)


def test_bucket_limiter_spreads_retries_of_all_items() -> None:
    clock = FakeClock()
    limiter = BucketRateLimiter(qps=10.0, burst=3, clock=clock.now)
    assert [limiter.when(item) for item in "abcde"] == pytest.approx([0.0, 0.0, 0.0, 0.1, 0.2])
    assert limiter.retries("a") == 0
    limiter.forget("a")
    assert limiter.when("f") == pytest.approx(0.3)


def test_max_of_takes_the_longest_delay_and_forwards_forget() -> None:
    clock = FakeClock()
    per_item = ItemExponentialRateLimiter(base=0.5, cap=60.0)
    overall = BucketRateLimiter(qps=1.0, burst=2, clock=clock.now)
    limiter: RateLimiter = MaxOfRateLimiter(per_item, overall)
    # Per-item backoff dominates while the bucket has tokens, the bucket once it is empty.
    assert [limiter.when("a"), limiter.when("a"), limiter.when("b")] == pytest.approx([0.5, 1.0, 1.0])
    assert limiter.retries("a") == 2
    limiter.forget("a")
    assert per_item.retries("a") == 0


def test_max_of_needs_a_limiter() -> None:
    with pytest.raises(ValueError, match="at least one"):
        MaxOfRateLimiter()


def test_default_controller_rate_limiter() -> None:
    limiter = default_controller_rate_limiter()
    assert [limiter.when("a") for _ in range(3)] == pytest.approx([0.005, 0.01, 0.02])
    assert max(limiter.when("b") for _ in range(40)) == 300.0
    # 43 of the 100-token burst are used; the rest still go through at once for new items.
    assert all(limiter.when(i) == 0.005 for i in range(57))
    assert limiter.when("one-too-many") == pytest.approx(0.1, abs=0.01)
