"""Shared pieces of the benchmarks: a harness to run on, process memory, percentiles."""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import tempfile
from collections.abc import Awaitable, Iterator, Sequence
from pathlib import Path

from e2e import cluster as harness


@contextlib.contextmanager
def harness_for(directory: Path | None) -> Iterator[harness.Cluster]:
    """Reuse a running harness in `directory`, or start a throwaway one."""
    if directory is not None and (directory / harness.STATE_FILE).exists():
        yield harness.load(directory)
        return
    with tempfile.TemporaryDirectory(prefix="tenant-cloud-bench-") as tmp:
        running = harness.up(Path(tmp), "bench")
        try:
            yield running
        finally:
            harness.down(Path(tmp))


def rss_bytes(pid: int | str = "self") -> int:
    """Resident set size of a process now (not the peak); this one by default."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS in /proc/{pid}/status")


async def bounded(coroutines: Sequence[Awaitable[object]], limit: int) -> None:
    """Await all, at most `limit` at a time (so a burst does not open thousands of connections)."""
    gate = asyncio.Semaphore(limit)

    async def run(coro: Awaitable[object]) -> None:
        async with gate:
            await coro

    await asyncio.gather(*(run(c) for c in coroutines))


def percentile(values: list[float], pct: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(pct) - 1]


def mib(value: float) -> str:
    return f"{value / 2**20:.1f} MiB"
