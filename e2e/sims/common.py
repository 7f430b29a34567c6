"""What every simulator process shares: its command line, clients for the harness, readiness, shutdown.

A simulator module defines `async def simulate(sim: Simulation) -> None`, which runs until cancelled, and
ends with `if __name__ == "__main__": run(simulate)`. It calls `sim.ready()` once it serves, so that
`e2e.cluster up` returns only when every simulator is ready.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path

from e2e import cluster as harness
from kube.client import Client
from kube.config import from_kubeconfig
from kube.controller import install_signal_handlers
from kube.logging import configure_logging

READY_DIR = "run"


def ready_file(directory: Path, name: str) -> Path:
    return directory / READY_DIR / f"{name}.ready"


@dataclass
class Simulation:
    name: str
    cluster: harness.Cluster
    parent: Client
    tenant: Client
    log: logging.Logger

    def ready(self) -> None:
        path = ready_file(self.cluster.dir, self.name)
        path.parent.mkdir(exist_ok=True)
        path.write_text("ok\n")
        self.log.info("ready")


@contextlib.asynccontextmanager
async def simulation(name: str, directory: Path) -> AsyncIterator[Simulation]:
    cluster = harness.load(directory)
    field_manager = f"sim-{name}"
    async with (
        Client.from_config(from_kubeconfig(cluster.parent_kubeconfig), field_manager) as parent,
        Client.from_config(from_kubeconfig(cluster.tenant_kubeconfig), field_manager) as tenant,
    ):
        yield Simulation(name, cluster, parent, tenant, logging.getLogger(f"sim.{name}"))


def run(simulate: Callable[[Simulation], Coroutine[None, None, None]], name: str | None = None) -> None:
    """Entry point of a simulator module: `python -m e2e.sims.<name> --dir DIR`."""
    module = sys.modules["__main__"].__spec__
    name = name or (module.name.rsplit(".", 1)[-1] if module else "sim")
    parser = argparse.ArgumentParser(prog=f"python -m e2e.sims.{name}")
    parser.add_argument("--dir", required=True, type=Path)
    parser.add_argument("--v", type=int, default=2)
    args = parser.parse_args()
    configure_logging(args.v, "logfmt")

    async def main() -> None:
        stop = asyncio.Event()
        install_signal_handlers(stop)
        async with simulation(name, args.dir) as sim:
            task = asyncio.create_task(simulate(sim))
            await asyncio.wait([task, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    asyncio.run(main())
