"""Informer benchmark: startup (list to synced) time and RSS for N ConfigMaps, and events/s through a watch.

The informer runs in a child process so its memory is measured alone; this process creates and changes
the objects through the real kube-apiserver.

    python -m e2e.bench.informer [--dir HARNESS_DIR] [--objects 10000] [--updates 5000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from e2e.bench.common import bounded, harness_for, mib, rss_bytes
from kube.client import Client
from kube.config import from_kubeconfig
from kube.errors import AlreadyExists
from kube.informer import Informer
from kube.resources import CONFIGMAPS, NAMESPACES
from kube.transport import TransportSettings

NAMESPACE = "bench-informer"
FAST = TransportSettings(qps=5000, burst=5000)


def _configmap(i: int) -> dict[str, object]:
    # Roughly the size of a typical small controller-managed object.
    return {
        "metadata": {"name": f"cm-{i:05d}", "labels": {"app": "bench", "shard": str(i % 16)}},
        "data": {"config": "x" * 200, "index": str(i)},
    }


async def populate(kubeconfig: Path, objects: int) -> float:
    async with Client.from_config(from_kubeconfig(kubeconfig), "tenant-cloud-bench", FAST) as api:
        with contextlib.suppress(AlreadyExists):
            await api.create(NAMESPACES, {"metadata": {"name": NAMESPACE}})
        existing = len((await api.list_all(CONFIGMAPS, NAMESPACE)).items)
        started = time.monotonic()
        await bounded([api.create(CONFIGMAPS, _configmap(i), NAMESPACE) for i in range(existing, objects)], 64)
        return time.monotonic() - started


async def churn(kubeconfig: Path, objects: int, updates: int) -> float:
    async with Client.from_config(from_kubeconfig(kubeconfig), "tenant-cloud-bench", FAST) as api:
        started = time.monotonic()
        await bounded(
            [
                api.patch(CONFIGMAPS, f"cm-{i % objects:05d}", {"data": {"rev": str(i)}}, NAMESPACE)
                for i in range(updates)
            ],
            64,
        )
        return time.monotonic() - started


async def child(kubeconfig: Path, updates: int) -> None:
    """Sync an informer, report, then count `updates` MODIFIED events as they arrive."""
    gc.collect()
    before = rss_bytes()
    async with Client.from_config(from_kubeconfig(kubeconfig), "tenant-cloud-bench", FAST) as api:
        informer = Informer(api, CONFIGMAPS, namespace=NAMESPACE)
        seen: list[float] = []
        all_seen = asyncio.Event()

        def count(_old: object, _new: object) -> None:
            seen.append(time.monotonic())
            if len(seen) >= updates:
                all_seen.set()

        informer.add_handlers(on_update=count)
        started = time.monotonic()
        task = asyncio.create_task(informer.run())
        await informer.wait_synced()
        synced = time.monotonic() - started
        gc.collect()
        after = rss_bytes()
        print(
            json.dumps(
                {
                    "phase": "synced",
                    "objects": len(informer.store),
                    "sync_seconds": synced,
                    "rss_before": before,
                    "rss_after": after,
                }
            ),
            flush=True,
        )
        await all_seen.wait()
        print(
            json.dumps(
                {"phase": "watched", "events": len(seen), "first": seen[0], "last": seen[-1], "now": time.monotonic()}
            ),
            flush=True,
        )
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m e2e.bench.informer", description=__doc__)
    parser.add_argument("--dir", type=Path, help="reuse a running harness")
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--updates", type=int, default=5_000)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        asyncio.run(child(args.child, args.updates))
        return 0
    with harness_for(args.dir) as running:
        kubeconfig = running.parent_kubeconfig
        created_in = asyncio.run(populate(kubeconfig, args.objects))
        print(f"created {args.objects} ConfigMaps in {created_in:.1f}s", file=sys.stderr)
        proc = subprocess.Popen(
            [sys.executable, "-m", "e2e.bench.informer", "--child", str(kubeconfig), "--updates", str(args.updates)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        synced = json.loads(proc.stdout.readline())
        written_in = asyncio.run(churn(kubeconfig, args.objects, args.updates))
        watched = json.loads(proc.stdout.readline())
        proc.wait(timeout=60)
    per_object = (synced["rss_after"] - synced["rss_before"]) / max(1, synced["objects"])
    watch_seconds = watched["last"] - watched["first"]
    results = {
        "objects": synced["objects"],
        "sync_seconds": round(synced["sync_seconds"], 3),
        "create_seconds": round(created_in, 2),
        "rss_before_sync_bytes": synced["rss_before"],
        "rss_after_sync_bytes": synced["rss_after"],
        "rss_per_object_bytes": round(per_object),
        "updates": args.updates,
        "write_seconds": round(written_in, 3),
        "watch_events_per_second": round(watched["events"] / watch_seconds) if watch_seconds else None,
        "writes_per_second": round(args.updates / written_in),
    }
    print(
        f"informer sync of {results['objects']} ConfigMaps: {results['sync_seconds']}s, "
        f"RSS {mib(synced['rss_after'])} ({per_object:.0f} B/object over a {mib(synced['rss_before'])} baseline)"
    )
    print(
        f"watch: {results['watch_events_per_second']} events/s received while the apiserver accepted "
        f"{results['writes_per_second']} writes/s"
    )
    print(json.dumps({"benchmark": "informer", **results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
