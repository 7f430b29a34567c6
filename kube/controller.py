"""A controller: N workers take keys from a work queue and reconcile them, sample-controller style.

Success forgets the key's failures (and honours an explicit `requeue_after`); an exception is logged once, here,
and the key is requeued with the queue's rate limiter. Stopping lets in-flight reconciles finish and starts no new ones.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Hashable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from kube.errors import ApiError
from kube.logging import log_context
from kube.workqueue import QueueMetrics, ShutDown, WorkQueue

K = TypeVar("K", bound=Hashable)

_log = logging.getLogger(__name__)

# Well inside the 30 s default termination grace period of a pod, so a drain finishes before SIGKILL.
DEFAULT_DRAIN_TIMEOUT = 20.0
# How far ahead run_until_idle looks for delayed adds: retries this soon still count as pending work.
DEFAULT_IDLE_HORIZON = 0.1
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@dataclass(frozen=True)
class Result:
    """A successful reconcile that wants another look in `requeue_after` seconds, e.g. while waiting on others."""

    requeue_after: float | None = None

    def __post_init__(self) -> None:
        if self.requeue_after is not None and self.requeue_after < 0:
            raise ValueError(f"requeue_after must not be negative, got {self.requeue_after}")


class ControllerMetrics:
    """Reconcile counts, errors, durations and busy workers per controller, plus the `workqueue_*` family.

    Make one per registry and share it between controllers; give queues you build yourself `metrics.queue`.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.queue = QueueMetrics(registry)
        self.reconciles = Counter(
            "controller_reconcile_total",
            "Reconciles per controller and result (success, requeue_after, error).",
            ["controller", "result"],
            registry=registry,
        )
        self.errors = Counter(
            "controller_reconcile_errors_total", "Reconciles that raised.", ["controller"], registry=registry
        )
        self.duration = Histogram(
            "controller_reconcile_time_seconds", "How long reconciles take.", ["controller"], registry=registry
        )
        self.active_workers = Gauge(
            "controller_active_workers", "Workers currently reconciling a key.", ["controller"], registry=registry
        )


class Controller(Generic[K]):
    """Reconciles keys from `queue` with `workers` concurrent workers; a key is never reconciled twice at once."""

    def __init__(
        self,
        name: str,
        reconcile: Callable[[K], Awaitable[Result | None]],
        queue: WorkQueue[K] | None = None,
        workers: int = 1,
        logger: logging.Logger | logging.LoggerAdapter[logging.Logger] | None = None,
        *,
        metrics: ControllerMetrics | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError(f"a controller needs at least one worker, got {workers}")
        self.name = name
        self.queue: WorkQueue[K] = (
            queue if queue is not None else WorkQueue(name, metrics=metrics.queue if metrics is not None else None)
        )
        self._reconcile = reconcile
        self._workers = workers
        self._log = logger if logger is not None else _log
        self._metrics = metrics
        self._running = False
        self._stopping = False
        # Set whenever a worker finishes a key; run_until_idle re-checks idleness then.
        self._progress = asyncio.Event()

    async def run(self, stop: asyncio.Event | None = None, *, drain_timeout: float = DEFAULT_DRAIN_TIMEOUT) -> None:
        """Reconcile until `stop` is set or the call is cancelled, then shut the queue down and drain.

        Draining waits up to `drain_timeout` seconds for in-flight reconciles, then cancels what is left.
        """
        stop = stop if stop is not None else asyncio.Event()
        workers = self._start_workers()
        try:
            await stop.wait()
        finally:
            await self._drain(workers, drain_timeout)

    # The timeout is part of this test helper's contract, not a caller-side cancellation scope.
    async def run_until_idle(self, timeout: float, *, horizon: float = DEFAULT_IDLE_HORIZON) -> None:
        """For tests: reconcile until nothing is queued, in flight or due within `horizon` seconds.

        The queue stays open, so a test can add keys and call this again. Raises TimeoutError after `timeout`.
        """
        workers = self._start_workers()
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                while not self._idle(horizon):
                    self._progress.clear()
                    next_due = self.queue.next_ready_in()
                    # A delayed add falling due changes the answer without any worker finishing a key.
                    wake = loop.call_later(next_due, self._progress.set) if next_due is not None else None
                    try:
                        await self._progress.wait()
                    finally:
                        if wake is not None:
                            wake.cancel()
        finally:
            await self._cancel(workers)

    def _start_workers(self) -> list[asyncio.Task[None]]:
        if self._running:
            raise RuntimeError(f"controller {self.name} is already running")
        if self.queue.shutting_down:
            raise RuntimeError(f"controller {self.name} has stopped: its queue is shut down")
        self._running = True
        return [
            asyncio.create_task(self._worker(), name=f"controller/{self.name}/worker-{i}") for i in range(self._workers)
        ]

    def _idle(self, horizon: float) -> bool:
        next_due = self.queue.next_ready_in()
        return not self.queue and not self.queue.in_flight and (next_due is None or next_due > horizon)

    async def _drain(self, workers: list[asyncio.Task[None]], drain_timeout: float) -> None:
        self._stopping = True
        self.queue.shutdown()
        try:
            _, unfinished = await asyncio.wait(workers, timeout=drain_timeout)
            if unfinished:
                self._log.warning(
                    "controller %s: %d reconciles still running after %.1fs; cancelling them",
                    self.name,
                    len(unfinished),
                    drain_timeout,
                )
        finally:
            await self._cancel(workers)

    async def _cancel(self, workers: list[asyncio.Task[None]]) -> None:
        for worker in workers:
            worker.cancel()
        # Shielded so that a second cancellation of the caller still leaves no worker behind unawaited.
        outcomes = await asyncio.shield(asyncio.gather(*workers, return_exceptions=True))
        self._running = False
        for outcome in outcomes:
            if isinstance(outcome, Exception):
                raise outcome

    async def _worker(self) -> None:
        while True:
            try:
                key = await self.queue.get()
            except ShutDown:
                return
            if self._stopping:
                self.queue.done(key)
                return
            try:
                await self._process(key)
            finally:
                self.queue.done(key)
                self._progress.set()

    async def _process(self, key: K) -> None:
        with log_context(controller=self.name, object=str(key)), self._busy():
            started = time.perf_counter()
            try:
                result = await self._reconcile(key)
            except Exception as error:
                self.queue.add_rate_limited(key)
                self._log.error(
                    "controller %s: reconcile of %s failed; requeued with backoff: %s",
                    self.name,
                    key,
                    error,
                    # An API server's answer (a conflict, an outage) says all there is; a traceback is for bugs.
                    exc_info=not isinstance(error, ApiError),
                    extra={"fields": {"failures": self.queue.num_requeues(key)}},
                )
                self._observe("error", time.perf_counter() - started)
                return
            self.queue.forget(key)
            if result is not None and result.requeue_after is not None:
                self.queue.add_after(key, result.requeue_after)
                self._observe("requeue_after", time.perf_counter() - started)
            else:
                self._observe("success", time.perf_counter() - started)

    def _busy(self) -> AbstractContextManager[object]:
        if self._metrics is None:
            return nullcontext()
        return self._metrics.active_workers.labels(self.name).track_inprogress()

    def _observe(self, result: str, seconds: float) -> None:
        if self._metrics is None:
            return
        self._metrics.reconciles.labels(self.name, result).inc()
        self._metrics.duration.labels(self.name).observe(seconds)
        if result == "error":
            self._metrics.errors.labels(self.name).inc()


def install_signal_handlers(stop: asyncio.Event, loop: asyncio.AbstractEventLoop | None = None) -> None:
    """Set `stop` on SIGTERM or SIGINT; like client-go's SetupSignalHandler, a second signal gets the default action."""
    loop = loop if loop is not None else asyncio.get_running_loop()

    def on_signal(received: signal.Signals) -> None:
        _log.info("received %s; shutting down", received.name)
        stop.set()
        for sig in _STOP_SIGNALS:
            loop.remove_signal_handler(sig)

    for sig in _STOP_SIGNALS:
        loop.add_signal_handler(sig, on_signal, sig)
