"""The ccm process: clients for both clusters, shared informers, leader election, controllers, endpoints."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import uuid
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry

from ccm.config import CloudConfig
from ccm.lifecycle import NAME as LIFECYCLE
from ccm.lifecycle import NodeLifecycleController
from ccm.nodes import NAME as NODE
from ccm.nodes import NodeController
from ccm.service import NAME as SERVICE
from ccm.service import service_controller
from ccm.views import Views
from kube import config as kube_config
from kube.client import Client
from kube.controller import Controller, ControllerMetrics
from kube.events import EventRecorder
from kube.http import HealthServer
from kube.informer import run_informers, synced_check, wait_all_synced
from kube.leaderelection import LeaderElectionSettings, LeaderElector
from lb.controller import LoadBalancerController

log = logging.getLogger(__name__)

FIELD_MANAGER = "tenant-cloud-ccm"
EVENT_COMPONENT = "cloud-controller-manager"
KNOWN_CONTROLLERS = (NODE, LIFECYCLE, SERVICE)


class StartupError(RuntimeError):
    """Configuration that cannot work; reported once and the process exits non-zero."""


def enabled_controllers(spec: str, known: tuple[str, ...] = KNOWN_CONTROLLERS) -> list[str]:
    """Resolve `--controllers` the way cloud-controller-manager does: '*' for all, '-name' to disable one."""
    chosen: set[str] = set()
    disabled: set[str] = set()
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name = item.removeprefix("-")
        if name != "*" and name not in known:
            raise StartupError(f"--controllers: unknown controller {name!r} (known: {', '.join(known)})")
        if item.startswith("-"):
            disabled.add(name)
        elif name == "*":
            chosen.update(known)
        else:
            chosen.add(name)
    return [name for name in known if name in chosen and name not in disabled]


@dataclass(frozen=True)
class Options:
    cloud_config: CloudConfig
    tenant_kubeconfig: str
    cluster_name: str
    controllers: str = "*"
    leader_elect: bool = True
    leader_election: LeaderElectionSettings = field(default_factory=LeaderElectionSettings)
    lease_name: str = "cloud-controller-manager"
    lease_namespace: str = "kube-system"
    health_bind: str = ":10259"
    metrics_bind: str = ":10258"
    identity: str = ""


class CloudControllerManager:
    def __init__(self, options: Options) -> None:
        self.options = options
        config = options.cloud_config
        parent_config = kube_config.load(config.kubeconfig, "cloud-config kubeconfig")
        namespace = config.namespace or parent_config.namespace
        if not namespace:
            raise StartupError("no parent namespace: set `namespace` in the cloud-config or in the kubeconfig context")
        self.tenant = Client.from_config(kube_config.load(options.tenant_kubeconfig, "--kubeconfig"), FIELD_MANAGER)
        self.parent = Client.from_config(parent_config, FIELD_MANAGER)
        self.registry = CollectorRegistry()
        self.health = HealthServer(self.registry, options.health_bind, options.metrics_bind)
        self.views = Views(self.tenant, self.parent, namespace, options.cluster_name, config)
        self.events = EventRecorder(self.tenant, EVENT_COMPONENT, host=socket.gethostname())
        metrics = ControllerMetrics(self.registry)
        self.controllers: list[Controller[str]] = []
        self.load_balancers: LoadBalancerController | None = None
        for name in enabled_controllers(options.controllers):
            if name == NODE and config.instances_v2.enabled:
                self.controllers.append(
                    NodeController(
                        self.tenant, self.views, config.instances_v2, self.events, self.registry, metrics
                    ).controller
                )
            elif name == LIFECYCLE and config.node_lifecycle.enabled:
                self.controllers.append(
                    NodeLifecycleController(
                        self.tenant, self.parent, self.views, config.node_lifecycle, self.events, metrics
                    ).controller
                )
            elif name == SERVICE and config.load_balancer.enabled:
                self.load_balancers = service_controller(
                    self.tenant,
                    self.parent,
                    self.views,
                    config,
                    options.cluster_name,
                    self.events,
                    self.registry,
                    metrics,
                )
                self.controllers.append(self.load_balancers.controller)
        self.informers = self.views.informers + (self.load_balancers.informers if self.load_balancers else [])
        self.health.add_readiness_check("informers-synced", synced_check(self.informers))
        self.identity = options.identity or f"{socket.gethostname()}_{uuid.uuid4()}"

    async def run(self, stop: asyncio.Event) -> None:
        """Run until `stop` is set; returns after a graceful shutdown (queues drained, Lease released)."""
        async with self.health:
            # Informers start before leadership so a standby takes over with a warm cache.
            background = [
                asyncio.create_task(run_informers(self.informers), name="informers"),
                asyncio.create_task(self.events.run(), name="events"),
            ]
            try:
                if self.options.leader_elect:
                    await self._lead(stop)
                else:
                    self.health.set_info("leader", True)
                    await self._run_controllers(stop)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.events.flush(), 5)
            finally:
                for task in background:
                    task.cancel()
                await asyncio.gather(*background, return_exceptions=True)
                await self.tenant.close()
                await self.parent.close()

    async def _run_controllers(self, stop: asyncio.Event) -> None:
        # A cache may never sync (the parent refuses our lists): a stop must still end the wait.
        synced = asyncio.create_task(wait_all_synced(self.informers))
        stopped = asyncio.create_task(stop.wait())
        await asyncio.wait((synced, stopped), return_when=asyncio.FIRST_COMPLETED)
        for waiting in (synced, stopped):
            waiting.cancel()
        if stop.is_set():
            return
        synced.result()  # a failure of the wait itself is not swallowed
        log.info("caches synced; starting controllers %s", ", ".join(c.name for c in self.controllers))
        runs = [controller.run(stop) for controller in self.controllers]
        if self.load_balancers is not None:
            runs.append(self.load_balancers.run_sweeper(stop))
        await asyncio.gather(*runs)

    async def _lead(self, stop: asyncio.Event) -> None:
        """Run controllers while we hold the Lease; exit with an error if it is lost (as upstream ccm does)."""
        lost = asyncio.Event()
        resign = asyncio.Event()
        leading: list[asyncio.Task[None]] = []

        def started() -> None:
            self.health.set_info("leader", True)
            leading.append(asyncio.create_task(self._run_controllers(lost), name="controllers"))

        def stopped() -> None:
            self.health.set_info("leader", False)
            lost.set()

        self.health.set_info("leader", False)
        elector = LeaderElector(
            self.tenant,
            self.options.lease_namespace,
            self.options.lease_name,
            self.identity,
            settings=self.options.leader_election,
            on_started_leading=started,
            on_stopped_leading=stopped,
        )
        campaign = asyncio.create_task(elector.run(resign), name="leader-election")
        waits = [asyncio.create_task(stop.wait()), asyncio.create_task(lost.wait())]
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for wait in waits:
            wait.cancel()
        lost.set()
        await asyncio.gather(*leading)  # controllers drain before the Lease is released
        resign.set()
        await campaign
        if not stop.is_set():
            raise StartupError("leader election lost; exiting so a fresh process campaigns again")
