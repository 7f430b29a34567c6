"""`python -m e2e.kubelet --dir DIR --node NODE`: kubelet's CSI volume manager for one tenant node of the harness."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from e2e import cluster as harness
from e2e.kubelet.harness import ready_file, settings_for
from e2e.kubelet.manager import DEFAULT_DRIVER, FIELD_MANAGER, VolumeManager
from e2e.kubelet.plugin import PluginError
from kube.client import Client
from kube.config import from_kubeconfig
from kube.controller import install_signal_handlers
from kube.errors import ApiError
from kube.flags import add_logging_flags
from kube.logging import configure_logging

log = logging.getLogger("e2e.kubelet")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m e2e.kubelet", description=__doc__)
    parser.add_argument("--dir", required=True, type=Path, help="the harness directory (e2e.cluster up --dir)")
    parser.add_argument("--node", required=True, help="the tenant Node to act as kubelet for")
    parser.add_argument("--driver-name", default=DEFAULT_DRIVER)
    parser.add_argument("--endpoint", default="", help="use this running node plugin instead of starting ours")
    add_logging_flags(parser)
    return parser


async def _run(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    install_signal_handlers(stop)
    cluster = harness.load(args.dir)
    async with Client.from_config(from_kubeconfig(cluster.tenant_kubeconfig), FIELD_MANAGER) as tenant:
        settings = await settings_for(
            cluster, tenant, args.node, driver=args.driver_name, endpoint=args.endpoint, verbosity=args.v
        )
    async with VolumeManager(settings) as manager:
        ready = ready_file(cluster, args.node)
        ready.parent.mkdir(parents=True, exist_ok=True)
        ready.write_text("ok\n")
        try:
            await manager.wait(stop)
        finally:
            ready.unlink(missing_ok=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args.v, args.log_format)
    try:
        asyncio.run(_run(args))
    except (PluginError, ApiError, OSError, TimeoutError) as error:
        log.error("%s", error)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
