"""The CSI driver process: the parent view and controller service, and/or the node service, over gRPC."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry

from csi.config import DriverConfig
from csi.controller import ControllerService
from csi.identity import IdentityService
from csi.ids import node_id
from csi.linstor.events import TenantVolumeEvents
from csi.linstor.settings import LinstorSettings
from csi.linstor.view import LinstorView
from csi.nodeservice import NodeService, build_node_service
from csi.parent import Parent
from csi.server import VolumeGuard, start_server
from kube import config as kube_config
from kube.client import Client
from kube.errors import ApiError
from kube.http import HealthServer
from kube.informer import run_informers, synced_check
from kube.resources import NODES

log = logging.getLogger(__name__)

FIELD_MANAGER = "tenant-cloud-csi"
INSTANCE_ID_LABEL = "node.kubernetes.io/instance-id"
TENANT_KUBECONFIG_FLAG = "--tenant-cluster-kubeconfig"


class StartupError(RuntimeError):
    pass


@dataclass(frozen=True)
class Options:
    config: DriverConfig
    endpoint: str
    parent_kubeconfig: str = ""
    tenant_kubeconfig: str = ""
    node_name: str = ""
    run_controller: bool = True
    run_node: bool = True
    node_id: str = ""
    max_volumes_per_node: int = 0
    by_id_root: Path = Path("/dev/disk/by-id")
    health_bind: str = ":9808"
    metrics_bind: str = ":9809"
    linstor: LinstorSettings | None = None


async def resolve_node_id(tenant: Client, node_name: str, namespace: str) -> str:
    """kubevirt-csi-driver's node ID: `<parent namespace>/<vm>`, the VM from the Node's providerID."""
    node = await tenant.get(NODES, node_name)
    provider = str((node.get("spec") or {}).get("providerID") or "")
    vm = provider.removeprefix("kubevirt://") if provider.startswith("kubevirt://") else ""
    vm = vm or ((node.get("metadata") or {}).get("labels") or {}).get(INSTANCE_ID_LABEL) or node_name
    return node_id(namespace, vm)


class Driver:
    def __init__(self, options: Options) -> None:
        self.options = options
        self.registry = CollectorRegistry()
        self.health = HealthServer(self.registry, options.health_bind, options.metrics_bind)
        self.guard = VolumeGuard()
        self.parent: Parent | None = None
        self.linstor: LinstorView | None = None
        self.clients: list[Client] = []
        if options.run_controller:
            client = Client.from_config(
                kube_config.load(options.parent_kubeconfig, "--infra-cluster-kubeconfig"), FIELD_MANAGER
            )
            self.clients.append(client)
            self.parent = Parent(client, options.config)
            self.linstor = LinstorView(client, options.config.namespace, options.linstor)
            self.health.add_readiness_check("informers-synced", synced_check(self.parent.informers))
        self.port = 0

    def ready(self) -> bool:
        return self.parent is None or all(i.synced.is_set() for i in self.parent.informers)

    async def run(self, stop: asyncio.Event, started: asyncio.Event | None = None) -> None:
        background: list[asyncio.Task[None]] = []
        async with self.health:
            try:
                controller = None
                if self.parent is not None:
                    background.append(asyncio.create_task(run_informers(self.parent.informers)))
                    background.extend(self._linstor_events())
                    controller = ControllerService(self.parent, self.options.config, self.guard, self.linstor)
                node = await self._node_service() if self.options.run_node else None
                identity = IdentityService(
                    self.options.config.driver_name,
                    self.options.config.version,
                    controller=controller is not None,
                    ready=self.ready,
                )
                server, self.port = await start_server(self.options.endpoint, identity, controller, node)
                log.info("serving CSI %s on %s", self.options.config.driver_name, self.options.endpoint)
                if started is not None:
                    started.set()
                await stop.wait()
                await server.stop(grace=5)
            finally:
                for task in background:
                    task.cancel()
                await asyncio.gather(*background, return_exceptions=True)
                if self.linstor is not None:
                    await self.linstor.close()
                for client in self.clients:
                    await client.close()

    def _linstor_events(self) -> list[asyncio.Task[None]]:
        """Health Events on tenant PVCs: only with LINSTOR configured, as they need the tenant API."""
        if self.linstor is None or not self.linstor.configured:
            return []
        tenant = Client.from_config(
            kube_config.load(self.options.tenant_kubeconfig, TENANT_KUBECONFIG_FLAG), FIELD_MANAGER
        )
        self.clients.append(tenant)
        events = TenantVolumeEvents(tenant, self.options.config.driver_name)
        events.follow(self.linstor)
        return [asyncio.create_task(events.run())]

    async def _node_service(self) -> NodeService:
        identity = self.options.node_id
        if not identity:
            if not self.options.node_name:
                raise StartupError("--node-name is required to run the node service")
            tenant = Client.from_config(
                kube_config.load(self.options.tenant_kubeconfig, TENANT_KUBECONFIG_FLAG), FIELD_MANAGER
            )
            self.clients.append(tenant)
            try:
                identity = await resolve_node_id(tenant, self.options.node_name, self.options.config.namespace)
            except ApiError as error:
                raise StartupError(f"cannot read tenant Node {self.options.node_name}: {error}") from error
        return build_node_service(identity, self.options.max_volumes_per_node, self.options.by_id_root, self.guard)
