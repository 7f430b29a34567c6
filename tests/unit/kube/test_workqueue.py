"""The work queue's client-go guarantees: dedup, one in-flight processing per key, FIFO, delays, shutdown, metrics."""

from __future__ import annotations

import asyncio

import prometheus_client
import pytest
from prometheus_client import CollectorRegistry

from kube.clock import FakeClock
from kube.ratelimit import ItemExponentialRateLimiter
from kube.workqueue import QueueMetrics, ShutDown, WorkQueue


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=1000.0)


@pytest.fixture
def queue(clock: FakeClock) -> WorkQueue[str]:
    return WorkQueue("test", rate_limiter=ItemExponentialRateLimiter(base=1.0, cap=60.0), clock=clock)


async def drain(queue: WorkQueue[str]) -> list[str]:
    """Get and finish everything currently queued, in order."""
    keys = []
    while len(queue):
        key = await queue.get()
        queue.done(key)
        keys.append(key)
    return keys


@pytest.mark.parametrize(
    ("adds", "expected"),
    [
        (["a", "b", "c"], ["a", "b", "c"]),
        (["a", "b", "a", "c", "b", "a"], ["a", "b", "c"]),
        (["a"] * 10, ["a"]),
        ([], []),
    ],
)
async def test_keys_come_out_fifo_and_deduplicated(queue: WorkQueue[str], adds: list[str], expected: list[str]) -> None:
    for key in adds:
        queue.add(key)
    assert len(queue) == len(expected)
    assert await drain(queue) == expected


async def test_key_readded_while_processing_is_queued_again_only_after_done(queue: WorkQueue[str]) -> None:
    queue.add("a")
    assert await queue.get() == "a"
    for _ in range(3):
        queue.add("a")
    queue.add("b")
    assert len(queue) == 1
    assert await queue.get() == "b"
    queue.done("b")
    assert len(queue) == 0
    queue.done("a")
    assert await drain(queue) == ["a"]


async def test_key_in_flight_is_not_handed_to_a_second_getter(queue: WorkQueue[str]) -> None:
    queue.add("a")
    first = await queue.get()
    queue.add("a")
    second = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    assert not second.done()
    assert queue.in_flight == 1
    queue.done(first)
    assert await asyncio.wait_for(second, 1) == "a"
    queue.done("a")
    assert queue.in_flight == 0


async def test_get_waits_for_an_add_and_getters_share_keys(queue: WorkQueue[str]) -> None:
    getters = [asyncio.create_task(queue.get()) for _ in range(3)]
    await asyncio.sleep(0)
    assert not any(getter.done() for getter in getters)
    for key in ("x", "y", "z"):
        queue.add(key)
    keys = await asyncio.wait_for(asyncio.gather(*getters), 1)
    assert sorted(keys) == ["x", "y", "z"]
    assert queue.in_flight == 3


async def test_done_for_a_key_not_in_flight_is_ignored(queue: WorkQueue[str]) -> None:
    queue.add("a")
    queue.done("a")
    queue.done("never-added")
    assert len(queue) == 1
    assert queue.in_flight == 0


async def test_shutdown_hands_out_what_is_queued_then_raises(queue: WorkQueue[str]) -> None:
    queue.add("a")
    queue.shutdown()
    queue.add("b")
    assert queue.shutting_down
    assert await queue.get() == "a"
    with pytest.raises(ShutDown):
        await queue.get()


async def test_shutdown_wakes_waiting_getters(queue: WorkQueue[str]) -> None:
    getters = [asyncio.create_task(queue.get()) for _ in range(2)]
    await asyncio.sleep(0)
    queue.shutdown()
    results = await asyncio.wait_for(asyncio.gather(*getters, return_exceptions=True), 1)
    assert all(isinstance(result, ShutDown) for result in results)


async def test_cancelled_get_leaves_the_key_queued(queue: WorkQueue[str]) -> None:
    getter = asyncio.create_task(queue.get())
    await asyncio.sleep(0)
    queue.add("a")
    getter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await getter
    assert len(queue) == 1
    assert await drain(queue) == ["a"]


async def test_shutdown_with_drain_waits_for_keys_in_flight(queue: WorkQueue[str]) -> None:
    queue.add("a")
    key = await queue.get()
    draining = asyncio.create_task(queue.shutdown_with_drain(timeout=1))
    await asyncio.sleep(0)
    assert not draining.done()
    queue.add("late")
    queue.done(key)
    await asyncio.wait_for(draining, 1)
    assert len(queue) == 0


async def test_shutdown_with_drain_times_out_on_a_stuck_key(queue: WorkQueue[str]) -> None:
    queue.add("a")
    await queue.get()
    with pytest.raises(TimeoutError):
        await queue.shutdown_with_drain(timeout=0.01)


async def test_shutdown_with_drain_returns_at_once_when_idle(queue: WorkQueue[str]) -> None:
    await asyncio.wait_for(queue.shutdown_with_drain(timeout=1), 0.5)


@pytest.mark.parametrize("delay", [0.0, -1.0])
async def test_add_after_without_a_delay_adds_at_once(queue: WorkQueue[str], delay: float) -> None:
    queue.add_after("a", delay)
    assert len(queue) == 1
    assert queue.next_ready_in() is None


async def test_add_after_adds_once_the_delay_has_passed(queue: WorkQueue[str], clock: FakeClock) -> None:
    queue.add_after("a", 5.0)
    assert len(queue) == 0
    assert queue.next_ready_in() == 5.0
    clock.advance(4.9)
    assert len(queue) == 0
    clock.advance(0.1)
    assert len(queue) == 1
    assert queue.next_ready_in() is None
    assert clock.pending_timers == 0


@pytest.mark.parametrize(
    ("delays", "ready_in"),
    [
        pytest.param([10.0, 3.0], 3.0, id="later shorter delay wins"),
        pytest.param([3.0, 10.0], 3.0, id="later longer delay is ignored"),
        pytest.param([10.0, 3.0, 7.0, 5.0], 3.0, id="shortest of many"),
    ],
)
async def test_add_after_keeps_the_earliest_time_per_key(
    queue: WorkQueue[str], clock: FakeClock, delays: list[float], ready_in: float
) -> None:
    for delay in delays:
        queue.add_after("a", delay)
    assert queue.next_ready_in() == ready_in
    clock.advance(ready_in)
    assert await drain(queue) == ["a"]
    clock.advance(max(delays))
    assert len(queue) == 0
    assert clock.pending_timers == 0


async def test_delayed_keys_are_added_in_ready_order(queue: WorkQueue[str], clock: FakeClock) -> None:
    queue.add_after("slow", 3.0)
    queue.add_after("fast", 1.0)
    queue.add_after("middle", 2.0)
    queue.add("now")
    clock.advance(2.5)
    assert await drain(queue) == ["now", "fast", "middle"]
    clock.advance(1.0)
    assert await drain(queue) == ["slow"]


async def test_delayed_add_of_a_queued_key_is_deduplicated(queue: WorkQueue[str], clock: FakeClock) -> None:
    queue.add("a")
    queue.add_after("a", 1.0)
    clock.advance(1.0)
    assert await drain(queue) == ["a"]


async def test_shutdown_drops_delayed_adds(queue: WorkQueue[str], clock: FakeClock) -> None:
    queue.add_after("a", 1.0)
    queue.shutdown()
    queue.add_after("b", 1.0)
    assert clock.pending_timers == 0
    assert queue.next_ready_in() is None
    clock.advance(2.0)
    assert len(queue) == 0


async def test_add_rate_limited_backs_off_until_forgotten(queue: WorkQueue[str], clock: FakeClock) -> None:
    readiness = []
    for _ in range(3):
        queue.add_rate_limited("a")
        readiness.append(queue.next_ready_in())
        clock.advance(60.0)
        assert await drain(queue) == ["a"]
    assert readiness == [1.0, 2.0, 4.0]
    assert queue.num_requeues("a") == 3
    queue.forget("a")
    assert queue.num_requeues("a") == 0
    queue.add_rate_limited("a")
    assert queue.next_ready_in() == 1.0


async def test_real_clock_delays_fire_on_the_event_loop() -> None:
    queue: WorkQueue[tuple[str, str]] = WorkQueue("real")
    queue.add_after(("default", "web"), 0.01)
    queue.add_after(("default", "db"), 0.005)
    async with asyncio.timeout(1):
        assert await queue.get() == ("default", "db")
        assert await queue.get() == ("default", "web")
    queue.shutdown()


def sample(registry: CollectorRegistry, name: str, queue: str = "nodes") -> float | None:
    return registry.get_sample_value(name, {"name": queue})


async def test_metrics_follow_the_queue(clock: FakeClock) -> None:
    registry = CollectorRegistry()
    queue: WorkQueue[str] = WorkQueue("nodes", clock=clock, metrics=QueueMetrics(registry))
    queue.add("a")
    queue.add("b")
    queue.add("a")
    assert sample(registry, "workqueue_adds_total") == 2
    assert sample(registry, "workqueue_depth") == 2

    clock.advance(3.0)
    key = await queue.get()
    assert sample(registry, "workqueue_depth") == 1
    assert sample(registry, "workqueue_queue_duration_seconds_sum") == 3.0
    assert sample(registry, "workqueue_queue_duration_seconds_count") == 1

    clock.advance(2.0)
    await queue.get()
    clock.advance(1.0)
    assert sample(registry, "workqueue_unfinished_work_seconds") == 3.0 + 1.0
    assert sample(registry, "workqueue_longest_running_processor_seconds") == 3.0

    queue.done(key)
    assert sample(registry, "workqueue_work_duration_seconds_sum") == 3.0
    assert sample(registry, "workqueue_work_duration_seconds_count") == 1
    assert sample(registry, "workqueue_longest_running_processor_seconds") == 1.0

    queue.add_rate_limited("a")
    queue.add_after("c", 1.0)
    assert sample(registry, "workqueue_retries_total") == 2


async def test_queues_share_metrics_by_name_without_touching_the_default_registry() -> None:
    registry = CollectorRegistry()
    metrics = QueueMetrics(registry)
    nodes: WorkQueue[str] = WorkQueue("nodes", metrics=metrics)
    services: WorkQueue[str] = WorkQueue("services", metrics=metrics)
    nodes.add("n1")
    services.add("s1")
    services.add("s2")
    assert sample(registry, "workqueue_depth", "nodes") == 1
    assert sample(registry, "workqueue_depth", "services") == 2
    assert prometheus_client.REGISTRY.get_sample_value("workqueue_depth", {"name": "nodes"}) is None
