"""The volume manager of one tenant node: plugin, registration, watches and the per-pod reconcile loop.

`async with VolumeManager(settings) as manager:` starts (or connects to) the CSI node plugin, registers it as
kubelet's plugin watcher would, lists and watches what it needs, and reconciles until the block exits. On the
way in it queues every pod of the node, every pod directory left on disk and a sweep of stagings, so a
restarted manager picks up exactly where the API and the disk say things are.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import grpc

from e2e.kubelet.node_status import VolumesInUse
from e2e.kubelet.operations import VolumeOperations
from e2e.kubelet.paths import KubeletPaths
from e2e.kubelet.plugin import NodeInfo, NodePlugin, PluginCommand, PluginError, grpc_address, plugin_process
from e2e.kubelet.reconciler import SWEEP, PodReconciler
from e2e.kubelet.registration import register
from e2e.kubelet.world import World
from kube.client import Client
from kube.config import from_kubeconfig
from kube.controller import Controller
from kube.errors import ApiError
from kube.events import EventRecorder
from kube.informer import run_informers, wait_all_synced

log = logging.getLogger(__name__)

FIELD_MANAGER = "e2e-kubelet"
DEFAULT_DRIVER = "csi.tenant-cloud.io"


@dataclass(frozen=True)
class Settings:
    node: str
    root: Path  # kubelet's root directory (/var/lib/kubelet on a real node)
    tenant_kubeconfig: Path
    driver: str = DEFAULT_DRIVER
    endpoint: str = ""  # an already running node plugin; empty = start `plugin`
    plugin: PluginCommand | None = None
    plugin_log: Path | None = None
    workers: int = 4
    sync_timeout: float = 60.0


class VolumeManager:
    def __init__(self, settings: Settings) -> None:
        if not settings.endpoint and settings.plugin is None:
            raise ValueError("give the plugin's endpoint or how to start it")
        self.settings = settings
        self.paths = KubeletPaths(settings.root)
        self.info: NodeInfo | None = None
        self._stack = contextlib.AsyncExitStack()
        self._stop = asyncio.Event()
        self._background: list[asyncio.Task[None]] = []
        self._controller: asyncio.Task[None] | None = None
        self._plugin_exited: asyncio.Future[int] | None = None

    async def __aenter__(self) -> VolumeManager:
        try:
            await self._start()
        except BaseException:
            await self._shutdown()
            raise
        return self

    async def __aexit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        await self._shutdown()

    async def wait(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set; raises PluginError if the node plugin dies first."""
        stopped = asyncio.ensure_future(stop.wait())
        waits: list[asyncio.Future[Any]] = [stopped, *([self._plugin_exited] if self._plugin_exited else [])]
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if self._plugin_exited is not None and self._plugin_exited.done() and not stop.is_set():
            raise PluginError(f"the CSI node plugin of {self.settings.node} exited; see {self.settings.plugin_log}")

    async def _start(self) -> None:
        s = self.settings
        tenant = await self._stack.enter_async_context(
            Client.from_config(from_kubeconfig(s.tenant_kubeconfig), FIELD_MANAGER)
        )
        plugin = NodePlugin(await self._stack.enter_async_context(grpc.aio.insecure_channel(await self._plugin())))
        if (name := await plugin.driver_name()) != s.driver:
            raise PluginError(f"the plugin serves driver {name!r}, not {s.driver!r}")
        self.info = info = await plugin.info()
        await self._register(tenant, info)
        world = World(tenant, s.node, s.driver)
        ops = VolumeOperations(plugin, info, self.paths, s.node, s.driver)
        events = EventRecorder(tenant, "kubelet", host=s.node)
        self._background = [asyncio.create_task(run_informers(world.informers)), asyncio.create_task(events.run())]
        await wait_all_synced(world.informers, s.sync_timeout)
        in_use = VolumesInUse(
            tenant,
            s.node,
            desired=lambda: world.wanted_in_use() | ops.in_use_on_disk(),
            reported=lambda: world.node_status().get("volumesInUse") or (),
        )
        reconciler = PodReconciler(tenant, world, ops, in_use, events)
        controller: Controller[str] = Controller(f"kubelet-volumes/{s.node}", reconciler.reconcile, workers=s.workers)
        world.on_changes(controller.queue.add)
        for uid in self.paths.pod_uids_on_disk():
            controller.queue.add(uid)  # pods that may be gone from the API while we were not running
        controller.queue.add(SWEEP)
        self._controller = asyncio.create_task(controller.run(self._stop))
        log.info(
            "volume manager of node %s running: driver %s, node ID %s, %d pod(s) on the node",
            s.node,
            s.driver,
            info.node_id,
            len(world.pods.store),
        )

    async def _plugin(self) -> str:
        s = self.settings
        if s.endpoint:
            return grpc_address(s.endpoint)
        assert s.plugin is not None
        log_file = s.plugin_log or s.root / "csi-node.log"
        running = await self._stack.enter_async_context(plugin_process(s.plugin, log_file))
        self._plugin_exited = running.exited
        return running.address

    async def _register(self, tenant: Client, info: NodeInfo, attempts: int = 6) -> None:
        for attempt in range(attempts):
            try:
                await register(tenant, self.settings.node, self.settings.driver, info)
                return
            except ApiError as error:
                if attempt == attempts - 1:
                    raise
                log.warning("registering the plugin on node %s failed (%s); retrying", self.settings.node, error)
                await asyncio.sleep(0.5 * 2**attempt)

    async def _shutdown(self) -> None:
        self._stop.set()
        if self._controller is not None:
            await asyncio.gather(self._controller, return_exceptions=True)  # lets in-flight reconciles finish
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self._stack.aclose()
