"""The load-balancer reconciler: one tenant Service in, its parent Service (+ EndpointSlices) and status out.

Level-triggered and idempotent: every reconcile compares what is with what should be and writes only the
difference, so a resync of unchanged Services writes nothing. Parent objects are touched only when they
carry this cluster's label and point back at the tenant Service being reconciled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from typing import TypeVar

from prometheus_client import CollectorRegistry, Counter

from kube.client import Client, Object
from kube.controller import Controller, ControllerMetrics
from kube.errors import AlreadyExists, ApiError, Conflict, Invalid, NotFound
from kube.events import EventRecorder
from kube.informer import Informer, label_indexer
from kube.resources import ENDPOINTSLICES, SERVICES
from lb.endpoints import SERVICE_NAME_LABEL, Backends, backend_nodes, parent_slices, slice_differs
from lb.translate import (
    FINALIZER,
    Scope,
    class_changed,
    ipam_problem,
    merged_for_update,
    parent_service_for,
    parent_service_name,
    qualifies,
    service_differs,
    tenant_key,
    tenant_status_for,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

NAME = "service"


def _key(obj: Object) -> str:
    metadata = obj.get("metadata") or {}
    return f"{metadata.get('namespace')}/{metadata.get('name')}"


def _tenant_index(parent: Object) -> list[str]:
    key = tenant_key(parent)
    return [key] if key else []


class LoadBalancerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.writes = Counter(
            "tenant_cloud_lb_writes_total",
            "API writes made by the load-balancer controller.",
            ["cluster", "resource", "verb"],
            registry=registry,
        )
        self.orphans = Counter(
            "tenant_cloud_lb_orphans_deleted_total", "Parent objects deleted by the orphan sweep.", registry=registry
        )


class LoadBalancerController:
    def __init__(
        self,
        tenant: Client,
        parent: Client,
        scope: Scope,
        nodes: Informer,
        backends: Backends,
        events: EventRecorder,
        registry: CollectorRegistry,
        controller_metrics: ControllerMetrics,
        workers: int = 8,
    ) -> None:
        self.tenant = tenant
        self.parent = parent
        self.scope = scope
        self.config = scope.config
        self.nodes = nodes
        self.backends = backends
        self.events = events
        self.metrics = LoadBalancerMetrics(registry)
        ours = f"{scope.cluster_label}={scope.cluster_name}"
        self.services = Informer(tenant, SERVICES)
        self.parent_services = Informer(
            parent, SERVICES, namespace=scope.namespace, label_selector=ours, indexers={"tenant": _tenant_index}
        )
        self.tenant_slices: Informer | None = None
        self.parent_slices: Informer | None = None
        if self.config.owns_endpoints:
            self.tenant_slices = Informer(
                tenant,
                ENDPOINTSLICES,
                label_selector=SERVICE_NAME_LABEL,
                indexers={
                    "service": lambda s: [f"{s['metadata']['namespace']}/{s['metadata']['labels'][SERVICE_NAME_LABEL]}"]
                },
            )
            self.parent_slices = Informer(
                parent,
                ENDPOINTSLICES,
                namespace=scope.namespace,
                label_selector=ours,
                indexers={"service": label_indexer(SERVICE_NAME_LABEL)},
            )
        self.controller: Controller[str] = Controller(NAME, self.reconcile, workers=workers, metrics=controller_metrics)
        self._ipam_reported: dict[str, str] = {}
        self._watch()

    @property
    def informers(self) -> list[Informer]:
        found = [self.services, self.parent_services]
        return found + [i for i in (self.tenant_slices, self.parent_slices) if i is not None]

    def _watch(self) -> None:
        enqueue = self.controller.queue.add

        def service_changed(obj: Object) -> None:
            enqueue(_key(obj))

        def parent_changed(obj: Object) -> None:
            key = tenant_key(obj)
            if key:
                enqueue(key)

        self.services.add_handlers(service_changed, lambda _old, new: service_changed(new), service_changed)
        self.parent_services.add_handlers(parent_changed, lambda _old, new: parent_changed(new), parent_changed)
        if self.tenant_slices is not None and self.parent_slices is not None:

            def tenant_slice_changed(obj: Object) -> None:
                labels = obj["metadata"].get("labels") or {}
                enqueue(f"{obj['metadata']['namespace']}/{labels.get(SERVICE_NAME_LABEL)}")

            self.tenant_slices.add_handlers(
                tenant_slice_changed, lambda _old, new: tenant_slice_changed(new), tenant_slice_changed
            )
            self.parent_slices.add_handlers(parent_changed, lambda _old, new: parent_changed(new), parent_changed)

    def backends_changed(self) -> None:
        """Nodes or their VMs changed: every Service that owns endpoints must look again."""
        if not self.config.owns_endpoints:
            return
        for service in self.services.store.values():
            if qualifies(service, self.config):
                self.controller.queue.add(_key(service))

    def resync(self) -> None:
        """Look at every Service again (a level-triggered safety net; unchanged Services cost no writes)."""
        for service in self.services.store.values():
            if qualifies(service, self.config) or FINALIZER in (service["metadata"].get("finalizers") or []):
                self.controller.queue.add(_key(service))

    # -- reconcile ---------------------------------------------------------------------------------------

    async def reconcile(self, key: str) -> None:
        tenant = self.services.store.get(key)
        namespace, _, name = key.partition("/")
        if tenant is None:
            await self._delete_parent_objects(namespace, name)
            return
        metadata = tenant["metadata"]
        has_finalizer = FINALIZER in (metadata.get("finalizers") or [])
        releasing = bool(metadata.get("deletionTimestamp")) or not qualifies(tenant, self.config)
        try:
            if releasing:
                if has_finalizer:
                    await self._release(tenant)
                return
            if not has_finalizer:
                tenant = await self._set_finalizer(tenant, add=True)  # before anything exists in the parent
            await self._ensure(tenant)
        except Conflict:
            raise  # our cache was behind; the retry reads the newer object, nothing for the tenant to see
        except ApiError as error:
            # The tenant sees why its load balancer lags (a parent outage, say); the queue retries with backoff.
            reason, doing = (
                ("DeleteLoadBalancerFailed", "deleting") if releasing else ("SyncLoadBalancerFailed", "syncing")
            )
            self.events.warning(
                tenant, reason, f"Error {doing} load balancer: {error.reason or error.status}; retrying"
            )
            raise

    async def _ensure(self, tenant: Object) -> None:
        namespace, name = tenant["metadata"]["namespace"], tenant["metadata"]["name"]
        translation = parent_service_for(tenant, self.scope)
        desired = translation.service
        if not desired["spec"]["ports"]:
            self.events.warning(tenant, "SyncLoadBalancerFailed", "no port can be exposed; see earlier warnings")
            for reason, message in translation.warnings:
                self.events.warning(tenant, reason, message)
            return
        parent_name = desired["metadata"]["name"]
        await self._delete_parent_objects(namespace, name, keep=parent_name)
        current = self.parent_services.store.get(f"{self.scope.namespace}/{parent_name}")
        if current is None:
            current = await self._unwatched_parent(parent_name)
        if current is None:
            self._announce(tenant, translation.warnings)
            # EnsuredLoadBalancer follows once the parent reports an address (see _sync_status).
            current = await self._create_parent(tenant, desired)
        elif not self.scope.owned_by(current, namespace, name):
            self.events.warning(
                tenant,
                "SyncLoadBalancerFailed",
                f"parent Service {self.scope.namespace}/{parent_name} exists but is not owned by this cluster's "
                f"{namespace}/{name}; leaving it alone",
            )
            return
        elif class_changed(current, desired):
            self._announce(tenant, translation.warnings)
            await self._delete_parent_service(current)
            current = await self._create_parent(tenant, desired)
            if current is not None:
                self.events.normal(tenant, "EnsuredLoadBalancer", "recreated the parent Service: its class changed")
        elif service_differs(current, desired):
            self._announce(tenant, translation.warnings)
            current = await self._update_parent(tenant, current, desired)
            if current is not None:
                self.events.normal(
                    tenant, "EnsuredLoadBalancer", f"updated parent Service {self.scope.namespace}/{parent_name}"
                )
        if current is None:
            return
        if self.parent_slices is not None:
            await self._ensure_slices(tenant, desired)
        await self._sync_status(tenant, current)

    def _announce(self, tenant: Object, warnings: list[tuple[str, str]]) -> None:
        """Events for a write we are about to make (never on a no-op reconcile)."""
        self.events.normal(tenant, "EnsuringLoadBalancer", "ensuring the parent load balancer")
        for reason, message in warnings:
            self.events.warning(tenant, reason, message)

    async def _unwatched_parent(self, parent_name: str) -> Object | None:
        """A live look for a name our watch does not show: another owner's Service, or one created a moment ago."""
        try:
            return await self.parent.get(SERVICES, parent_name, self.scope.namespace)
        except NotFound:
            return None

    async def _update_parent(self, tenant: Object, current: Object, desired: Object) -> Object | None:
        try:
            return await self._write(
                "parent", "services", "update", self.parent.update(SERVICES, merged_for_update(current, desired))
            )
        except Invalid as error:
            try:
                await self.parent.create(SERVICES, desired, dry_run=True)
            except AlreadyExists:
                pass  # valid as a new Service: the change just cannot be made in place
            except Invalid as refused:
                # Not valid at all (annotations too large, ...): recreating would only lose the address.
                message = f"the parent refused the change, the load balancer stays as it was: {refused.message}"
                self.events.warning(tenant, "SyncLoadBalancerFailed", message)
                return current
            # Some changes (the primary IP family) cannot be made in place; the Service is made again.
            log.info("parent Service %s: %s; recreating it", desired["metadata"]["name"], error)
            await self._delete_parent_service(current)
            return await self._create_parent(tenant, desired)

    async def _create_parent(self, tenant: Object, desired: Object) -> Object | None:
        """Create the parent Service; None when the parent refuses what the tenant asked for (annotations too
        large, ...): only a change to the tenant Service can help, and that change is watched, so no retry."""
        try:
            return await self._write("parent", "services", "create", self.parent.create(SERVICES, desired))
        except Invalid as error:
            self.events.warning(
                tenant, "SyncLoadBalancerFailed", f"the parent refused the load balancer: {error.message}"
            )
            return None

    async def _ensure_slices(self, tenant: Object, desired_service: Object) -> None:
        assert self.parent_slices is not None and self.tenant_slices is not None
        parent_name = desired_service["metadata"]["name"]
        local = self.tenant_slices.store.by_index("service", _key(tenant))
        names = backend_nodes(tenant, self.nodes.store.values(), local)
        backends = [b for b in (self.backends.backend(n) for n in names) if b is not None]
        desired = parent_slices(
            parent_name,
            self.scope.namespace,
            desired_service["spec"]["ports"],
            backends,
            self.scope.ownership_labels(tenant),
        )
        current = {s["metadata"]["name"]: s for s in self.parent_slices.store.by_index("service", parent_name)}
        for want in desired:
            have = current.pop(want["metadata"]["name"], None)
            if have is None:
                try:
                    await self._write("parent", "endpointslices", "create", self.parent.create(ENDPOINTSLICES, want))
                    continue
                except AlreadyExists:
                    # Our watch has not seen the slice we made a moment ago; compare with the live one.
                    have = await self.parent.get(ENDPOINTSLICES, want["metadata"]["name"], self.scope.namespace)
                    if not self.scope.owned_by_cluster(have):
                        raise
            if slice_differs(have, want):
                want["metadata"]["resourceVersion"] = have["metadata"]["resourceVersion"]
                await self._write("parent", "endpointslices", "update", self.parent.update(ENDPOINTSLICES, want))
        for stale in current.values():
            await self._delete_slice(stale)

    async def _sync_status(self, tenant: Object, parent: Object) -> None:
        want = tenant_status_for(parent)
        have = (tenant.get("status") or {}).get("loadBalancer") or {}
        if have != want:
            patch = {"status": {"loadBalancer": want or {"ingress": None}}}
            await self._write(
                "tenant",
                "services",
                "patch-status",
                self.tenant.patch(
                    SERVICES, tenant["metadata"]["name"], patch, tenant["metadata"]["namespace"], subresource="status"
                ),
            )
            if want:
                ips = ", ".join(i.get("ip") or i.get("hostname", "") for i in want["ingress"])
                self.events.normal(tenant, "EnsuredLoadBalancer", f"load balancer address {ips}")
        uid = tenant["metadata"]["uid"]
        problem = ipam_problem(parent)
        if problem is None:
            self._ipam_reported.pop(uid, None)
        elif self._ipam_reported.get(uid) != problem[0]:
            self._ipam_reported[uid] = problem[0]
            self.events.warning(tenant, "IPAMRequestNotSatisfied", f"parent LB-IPAM: {problem[0]}: {problem[1]}")

    # -- release and garbage collection -------------------------------------------------------------------

    async def _release(self, tenant: Object) -> None:
        """The Service is being deleted or stopped qualifying: remove parent objects, then the finalizer."""
        metadata = tenant["metadata"]
        await self._delete_parent_objects(metadata["namespace"], metadata["name"])
        if not metadata.get("deletionTimestamp") and (tenant.get("status") or {}).get("loadBalancer"):
            await self._write(
                "tenant",
                "services",
                "patch-status",
                self.tenant.patch(
                    SERVICES,
                    metadata["name"],
                    {"status": {"loadBalancer": {"ingress": None}}},
                    metadata["namespace"],
                    subresource="status",
                ),
            )
        await self._set_finalizer(tenant, add=False)
        self._ipam_reported.pop(metadata.get("uid", ""), None)
        self.events.normal(tenant, "DeletedLoadBalancer", "deleted the parent load balancer")

    async def _delete_parent_objects(self, namespace: str, name: str, keep: str = "") -> None:
        """Delete this tenant Service's parent Services and their slices, checking ownership; `keep` is spared.

        Parent Services of an earlier tenant Service of the same name (deleted and made again while our watch
        was away, so its own deletion was never seen) go too: their names carry the old UID.
        """
        for parent in self.parent_services.store.by_index("tenant", f"{namespace}/{name}"):
            if parent["metadata"]["name"] != keep and self.scope.owned_by(parent, namespace, name):
                await self._delete_parent_service(parent)

    async def _delete_parent_service(self, parent: Object) -> None:
        parent_name = parent["metadata"]["name"]
        if self.parent_slices is not None:
            for endpoint_slice in self.parent_slices.store.by_index("service", parent_name):
                if self.scope.owned_by_cluster(endpoint_slice):
                    await self._delete_slice(endpoint_slice)
        with contextlib.suppress(NotFound):
            await self._write(
                "parent",
                "services",
                "delete",
                self.parent.delete(SERVICES, parent_name, self.scope.namespace, uid=parent["metadata"]["uid"]),
            )

    async def _delete_slice(self, endpoint_slice: Object) -> None:
        with contextlib.suppress(NotFound):
            await self._write(
                "parent",
                "endpointslices",
                "delete",
                self.parent.delete(
                    ENDPOINTSLICES,
                    endpoint_slice["metadata"]["name"],
                    self.scope.namespace,
                    uid=endpoint_slice["metadata"]["uid"],
                ),
            )

    async def _set_finalizer(self, tenant: Object, *, add: bool) -> Object:
        metadata = tenant["metadata"]
        finalizers = [f for f in metadata.get("finalizers") or [] if f != FINALIZER]
        if add:
            finalizers.append(FINALIZER)
        patch = {"metadata": {"finalizers": finalizers or None, "resourceVersion": metadata["resourceVersion"]}}
        try:
            return await self._write(
                "tenant",
                "services",
                "patch",
                self.tenant.patch(SERVICES, metadata["name"], patch, metadata["namespace"]),
            )
        except NotFound:
            return tenant

    async def sweep_orphans(self) -> int:
        """Delete parent Services and slices of this cluster whose tenant Service is gone or changed identity."""
        deleted = 0
        for parent in list(self.parent_services.store.values()):
            key = tenant_key(parent)
            tenant = self.services.store.get(key) if key else None
            wanted = (
                tenant is not None
                and qualifies(tenant, self.config)
                and not tenant["metadata"].get("deletionTimestamp")
                and parent_service_name(tenant) == parent["metadata"]["name"]
            )
            if not wanted and self.scope.owned_by_cluster(parent):
                log.info("deleting orphaned parent Service %s (tenant Service %s)", parent["metadata"]["name"], key)
                await self._delete_parent_service(parent)
                deleted += 1
        if self.parent_slices is not None:
            for endpoint_slice in list(self.parent_slices.store.values()):
                service = (endpoint_slice["metadata"].get("labels") or {}).get(SERVICE_NAME_LABEL, "")
                if f"{self.scope.namespace}/{service}" not in self.parent_services.store:
                    await self._delete_slice(endpoint_slice)
                    deleted += 1
        self.metrics.orphans.inc(deleted)
        return deleted

    async def run_sweeper(self, stop: asyncio.Event) -> None:
        """Sweep at start-up, then every orphanSweepInterval seconds, until `stop`."""
        while not stop.is_set():
            try:
                await self.sweep_orphans()
            except ApiError as error:
                log.warning("orphan sweep failed: %s", error)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.config.orphan_sweep_interval)

    async def _write(self, cluster: str, resource: str, verb: str, request: Awaitable[T]) -> T:
        """Every write goes through here, so the writes metric proves a no-op resync writes nothing."""
        self.metrics.writes.labels(cluster, resource, verb).inc()
        return await request
