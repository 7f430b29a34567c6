"""The controller runner: outcomes of a reconcile, per-key exclusivity, graceful stop, metrics and signals."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import pytest_asyncio
from prometheus_client import CollectorRegistry

from kube.clock import FakeClock
from kube.controller import Controller, ControllerMetrics, Result, install_signal_handlers
from kube.errors import Conflict
from kube.logging import ContextFilter, record_fields
from kube.ratelimit import ItemExponentialRateLimiter
from kube.workqueue import WorkQueue

# The leak check must see the tests' tasks, so fixture and tests share the session loop.
pytestmark = pytest.mark.asyncio(loop_scope="session")

Reconcile = Callable[[str], Awaitable[Result | None]]


@pytest_asyncio.fixture(autouse=True)
async def no_leaked_tasks() -> AsyncIterator[None]:
    """Every task a test starts, the controller's workers included, must be finished when it ends."""
    before = asyncio.all_tasks()
    yield
    leaked = asyncio.all_tasks() - before - {asyncio.current_task()}
    for task in leaked:
        task.cancel()
    assert not leaked, f"tasks still running: {leaked}"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def queue(clock: FakeClock) -> WorkQueue[str]:
    return WorkQueue("test", rate_limiter=ItemExponentialRateLimiter(base=1.0, cap=60.0), clock=clock)


class Reconciler:
    """Records calls and answers each with the next scripted outcome (an exception is raised, not returned)."""

    def __init__(self, *outcomes: Result | Exception | None) -> None:
        self.outcomes = list(outcomes)
        self.calls: list[str] = []

    async def __call__(self, key: str) -> Result | None:
        self.calls.append(key)
        outcome = self.outcomes.pop(0) if self.outcomes else None
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


class Gate:
    """A reconcile that blocks until opened, tracking how many run at once per key."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.started = asyncio.Event()
        self.running: Counter[str] = Counter()
        self.most_at_once: Counter[str] = Counter()
        self.finished: list[str] = []
        self.cancelled: list[str] = []

    async def __call__(self, key: str) -> None:
        self.running[key] += 1
        self.most_at_once[key] = max(self.most_at_once[key], self.running[key])
        self.started.set()
        try:
            await self.open.wait()
        except asyncio.CancelledError:
            self.cancelled.append(key)
            raise
        finally:
            self.running[key] -= 1
        self.finished.append(key)


async def test_result_rejects_a_negative_requeue_after() -> None:
    with pytest.raises(ValueError, match="requeue_after"):
        Result(requeue_after=-1.0)


async def test_controller_needs_a_worker() -> None:
    with pytest.raises(ValueError, match="worker"):
        Controller("test", Reconciler(), workers=0)


@pytest.mark.parametrize(
    ("outcome", "calls", "ready_in", "requeues"),
    [
        pytest.param(None, 1, None, 0, id="None is done"),
        pytest.param(Result(), 1, None, 0, id="empty Result is done"),
        pytest.param(Result(requeue_after=30.0), 1, 30.0, 0, id="requeue_after without backoff"),
        pytest.param(Result(requeue_after=0.0), 2, None, 0, id="requeue_after 0 requeues at once"),
        pytest.param(RuntimeError("boom"), 1, 1.0, 1, id="exception backs off"),
    ],
)
async def test_reconcile_outcomes(
    queue: WorkQueue[str], outcome: Result | Exception | None, calls: int, ready_in: float | None, requeues: int
) -> None:
    reconciler = Reconciler(outcome)
    queue.add("default/web")
    await Controller("test", reconciler, queue).run_until_idle(timeout=1)
    assert reconciler.calls == ["default/web"] * calls
    assert queue.next_ready_in() == ready_in
    assert queue.num_requeues("default/web") == requeues


async def test_success_forgets_earlier_failures(queue: WorkQueue[str], clock: FakeClock) -> None:
    reconciler = Reconciler(RuntimeError("one"), RuntimeError("two"), None)
    controller = Controller("test", reconciler, queue)
    queue.add("a")
    await controller.run_until_idle(timeout=1)
    assert queue.next_ready_in() == 1.0
    clock.advance(1.0)
    await controller.run_until_idle(timeout=1)
    assert (queue.next_ready_in(), queue.num_requeues("a")) == (2.0, 2)
    clock.advance(2.0)
    await controller.run_until_idle(timeout=1)
    assert (queue.next_ready_in(), queue.num_requeues("a")) == (None, 0)
    assert reconciler.calls == ["a", "a", "a"]


async def test_failure_is_logged_once_with_the_key(queue: WorkQueue[str], caplog: pytest.LogCaptureFixture) -> None:
    controller = Controller("services", Reconciler(RuntimeError("parent unreachable")), queue)
    queue.add("default/web")
    with caplog.at_level(logging.INFO):
        await controller.run_until_idle(timeout=1)
    [record] = caplog.records
    assert record.levelno == logging.ERROR
    assert "default/web" in record.getMessage()
    assert record.exc_info is not None
    assert str(record.exc_info[1]) == "parent unreachable"


async def test_an_api_error_is_logged_as_one_line_without_a_traceback(
    queue: WorkQueue[str], caplog: pytest.LogCaptureFixture
) -> None:
    conflict = Conflict(409, "Conflict", "the object has been modified", method="PATCH", path="/api/v1/x")
    controller = Controller("services", Reconciler(conflict), queue)
    queue.add("default/web")
    with caplog.at_level(logging.INFO):
        await controller.run_until_idle(timeout=1)
    [record] = caplog.records
    assert record.levelno == logging.ERROR and not record.exc_info
    assert record.getMessage().endswith(
        "requeued with backoff: 409 Conflict PATCH /api/v1/x: the object has been modified"
    )
    assert queue.num_requeues("default/web") == 1


async def test_reconcile_logs_carry_controller_and_key(queue: WorkQueue[str], caplog: pytest.LogCaptureFixture) -> None:
    async def reconcile(key: str) -> None:
        logging.getLogger("test.reconcile").info("reconciling")

    caplog.handler.addFilter(ContextFilter())
    queue.add("default/web")
    with caplog.at_level(logging.INFO, logger="test.reconcile"):
        await Controller("services", reconcile, queue).run_until_idle(timeout=1)
    [record] = caplog.records
    assert record_fields(record) == {"controller": "services", "object": "default/web"}


async def test_one_reconcile_per_key_at_a_time_across_workers(queue: WorkQueue[str]) -> None:
    gate = Gate()
    controller = Controller("test", gate, queue, workers=4)
    queue.add("a")
    running = asyncio.create_task(controller.run_until_idle(timeout=1))
    await asyncio.wait_for(gate.started.wait(), 1)
    queue.add("a")
    queue.add("a")
    await asyncio.sleep(0.01)
    gate.open.set()
    await running
    assert gate.most_at_once["a"] == 1
    assert gate.finished == ["a", "a"]


async def test_workers_reconcile_different_keys_concurrently(queue: WorkQueue[str]) -> None:
    keys = ["a", "b", "c"]
    all_started = asyncio.Barrier(len(keys))

    async def reconcile(key: str) -> None:
        await all_started.wait()

    for key in keys:
        queue.add(key)
    await Controller("test", reconcile, queue, workers=len(keys)).run_until_idle(timeout=1)
    assert queue.in_flight == 0


async def test_failures_within_the_horizon_are_retried() -> None:
    reconciler = Reconciler(*[RuntimeError("flaky")] * 10)
    queue: WorkQueue[str] = WorkQueue("test", rate_limiter=ItemExponentialRateLimiter(base=0.001, cap=1.0))
    queue.add("a")
    await Controller("test", reconciler, queue).run_until_idle(timeout=1, horizon=0.01)
    # Backoffs of 1, 2, 4 and 8 ms fall inside the horizon; the fifth failure's 16 ms does not.
    assert reconciler.calls == ["a"] * 5
    queue.shutdown()


async def test_run_until_idle_times_out_and_cancels_a_stuck_reconcile(queue: WorkQueue[str]) -> None:
    gate = Gate()
    queue.add("a")
    with pytest.raises(TimeoutError):
        await Controller("test", gate, queue).run_until_idle(timeout=0.01)
    assert gate.cancelled == ["a"]
    assert queue.in_flight == 0


async def test_stop_lets_in_flight_reconciles_finish_and_starts_no_new_ones(queue: WorkQueue[str]) -> None:
    gate = Gate()
    stop = asyncio.Event()
    controller = Controller("test", gate, queue)
    queue.add("a")
    running = asyncio.create_task(controller.run(stop))
    await asyncio.wait_for(gate.started.wait(), 1)
    queue.add("b")
    stop.set()
    await asyncio.sleep(0.01)
    assert not running.done()
    gate.open.set()
    await asyncio.wait_for(running, 1)
    assert gate.finished == ["a"]
    assert queue.shutting_down
    assert queue.in_flight == 0


async def test_cancelling_run_drains_too(queue: WorkQueue[str]) -> None:
    gate = Gate()
    controller = Controller("test", gate, queue)
    queue.add("a")
    running = asyncio.create_task(controller.run())
    await asyncio.wait_for(gate.started.wait(), 1)
    running.cancel()
    await asyncio.sleep(0.01)
    gate.open.set()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(running, 1)
    assert gate.finished == ["a"]


async def test_drain_timeout_cancels_stuck_reconciles(queue: WorkQueue[str], caplog: pytest.LogCaptureFixture) -> None:
    gate = Gate()
    stop = asyncio.Event()
    controller = Controller("test", gate, queue)
    queue.add("a")
    running = asyncio.create_task(controller.run(stop, drain_timeout=0.01))
    await asyncio.wait_for(gate.started.wait(), 1)
    stop.set()
    await asyncio.wait_for(running, 1)
    assert gate.cancelled == ["a"]
    assert "still running" in caplog.text


async def test_a_stopped_controller_cannot_run_again(queue: WorkQueue[str]) -> None:
    stop = asyncio.Event()
    stop.set()
    controller = Controller("test", Reconciler(), queue)
    await controller.run(stop)
    with pytest.raises(RuntimeError, match="stopped"):
        await controller.run(stop)


async def test_a_running_controller_cannot_be_started_twice(queue: WorkQueue[str]) -> None:
    stop = asyncio.Event()
    controller = Controller("test", Reconciler(), queue)
    running = asyncio.create_task(controller.run(stop))
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError, match="already running"):
        await controller.run_until_idle(timeout=1)
    stop.set()
    await running


async def test_metrics_count_reconciles_by_result() -> None:
    registry = CollectorRegistry()
    reconciler = Reconciler(None, Result(requeue_after=60.0), RuntimeError("boom"))
    # A first retry a minute away, so a slow machine never retries the failed key within the run.
    metrics = ControllerMetrics(registry)
    limiter = ItemExponentialRateLimiter(base=60.0)
    queue: WorkQueue[str] = WorkQueue("services", rate_limiter=limiter, metrics=metrics.queue)
    controller = Controller("services", reconciler, queue, metrics=metrics)
    for key in ("a", "b", "c"):
        controller.queue.add(key)
    await controller.run_until_idle(timeout=5, horizon=1.0)

    def sample(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, {"controller": "services", **labels})

    assert sample("controller_reconcile_total", result="success") == 1
    assert sample("controller_reconcile_total", result="requeue_after") == 1
    assert sample("controller_reconcile_total", result="error") == 1
    assert sample("controller_reconcile_errors_total") == 1
    assert sample("controller_reconcile_time_seconds_count") == 3
    assert sample("controller_active_workers") == 0
    assert registry.get_sample_value("workqueue_adds_total", {"name": "services"}) == 3
    controller.queue.shutdown()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_signal_sets_stop_once_then_restores_the_default(sig: signal.Signals) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    install_signal_handlers(stop, loop)
    try:
        os.kill(os.getpid(), sig)
        await asyncio.wait_for(stop.wait(), 1)
    finally:
        still_installed = [s for s in (signal.SIGTERM, signal.SIGINT) if loop.remove_signal_handler(s)]
    assert still_installed == []
