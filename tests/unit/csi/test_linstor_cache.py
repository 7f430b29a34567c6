"""Reused answers with their own TTL, one load per key, and the outage memory, on a stepped clock."""

from __future__ import annotations

import asyncio
import logging

import pytest

from csi.linstor.cache import Outage, TtlCache


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


async def test_entries_expire_after_their_own_ttl() -> None:
    clock = Clock()
    cache: TtlCache[str, int | None] = TtlCache(clock=clock)
    cache.put("short", 1, 5)
    cache.put("long", None, 50)
    cache.put("never", 3, 0)  # ttl 0: not kept at all
    assert cache.lookup("short") == (True, 1)
    assert cache.lookup("long") == (True, None)
    assert cache.lookup("never") == (False, None)
    clock.now = 6
    assert cache.lookup("short") == (False, None)
    assert cache.lookup("long") == (True, None)


async def test_concurrent_loads_of_one_key_share_one_call() -> None:
    cache: TtlCache[str, int] = TtlCache()
    calls = 0
    gate = asyncio.Event()

    async def load() -> tuple[int, float]:
        nonlocal calls
        calls += 1
        await gate.wait()
        return 42, 10.0

    waiting = [asyncio.ensure_future(cache.get_or_load("k", load)) for _ in range(5)]
    await asyncio.sleep(0)
    gate.set()
    assert await asyncio.gather(*waiting) == [42] * 5
    assert calls == 1
    assert await cache.get_or_load("k", load) == 42 and calls == 1


async def test_a_caller_giving_up_does_not_cancel_the_shared_load() -> None:
    cache: TtlCache[str, int] = TtlCache()
    gate = asyncio.Event()

    async def load() -> tuple[int, float]:
        await gate.wait()
        return 7, 10.0

    impatient = asyncio.ensure_future(cache.get_or_load("k", load))
    patient = asyncio.ensure_future(cache.get_or_load("k", load))
    await asyncio.sleep(0)
    impatient.cancel()
    gate.set()
    assert await patient == 7
    assert impatient.cancelled()


async def test_a_failed_load_reaches_every_waiter_and_is_not_kept() -> None:
    cache: TtlCache[str, int] = TtlCache()

    async def load() -> tuple[int, float]:
        await asyncio.sleep(0)
        raise RuntimeError("boom")

    results = await asyncio.gather(*(cache.get_or_load("k", load) for _ in range(3)), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
    assert cache.lookup("k") == (False, None)


async def test_begin_and_finish_for_batched_loads() -> None:
    cache: TtlCache[str, str | None] = TtlCache()
    pending = cache.begin("rd")
    assert cache.loading("rd") is pending
    cache.finish("rd", "healthy", 30)
    assert await pending == "healthy"
    assert cache.loading("rd") is None and cache.lookup("rd") == (True, "healthy")


def test_outage_is_remembered_for_retry_after_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    outage = Outage(10, clock)
    assert not outage.down
    with caplog.at_level(logging.INFO, logger="csi.linstor.cache"):
        outage.failed(RuntimeError("refused"))
        clock.now = 4
        outage.failed(RuntimeError("refused"))
        assert outage.down
        clock.now = 15
        assert not outage.down  # time to ask again
        outage.succeeded()
        outage.succeeded()
    assert [r.levelname for r in caplog.records] == ["WARNING", "INFO"]
    assert "refused" in caplog.records[0].getMessage()
