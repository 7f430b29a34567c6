"""What the tests watch happen, through informers of their own: how many changes the parent has seen (to kill a
process after the k-th), every parent Service ever made per tenant Service, and every IP a tenant Service
ever showed — so "exactly once" and "stable once assigned" are checked over the whole run, not only at the end.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator

from kube.client import Client, Object
from kube.informer import Informer, run_informers
from kube.resources import Resource
from lb.translate import tenant_key
from tests.integration.reliability.state import ingress_ips


class Tally:
    """Counts every add, update and delete some informers see."""

    def __init__(self, *informers: Informer) -> None:
        self.count = 0
        self._changed = asyncio.Event()
        for watched in informers:
            watched.add_handlers(self._seen, lambda _old, new: self._seen(new), self._seen)

    def _seen(self, _: Object) -> None:
        self.count += 1
        self._changed.set()

    async def until(self, count: int) -> None:
        while self.count < count:
            self._changed.clear()
            await self._changed.wait()


class ServiceHistory:
    """Parent Service UIDs per tenant Service (from the parent's watch) and the IPs each tenant Service showed."""

    def __init__(self, parents: Informer, tenants: Informer) -> None:
        self.parent_uids: dict[str, set[str]] = collections.defaultdict(set)
        self.ips: dict[str, list[list[str]]] = collections.defaultdict(list)
        parents.add_handlers(self._parent, lambda _old, new: self._parent(new))
        tenants.add_handlers(self._tenant, lambda _old, new: self._tenant(new))

    def _parent(self, parent: Object) -> None:
        key = tenant_key(parent)
        if key:
            self.parent_uids[key].add(parent["metadata"]["uid"])

    def _tenant(self, tenant: Object) -> None:
        key = f"{tenant['metadata']['namespace']}/{tenant['metadata']['name']}"
        ips = ingress_ips(tenant)
        shown = self.ips[key]
        if ips and (not shown or shown[-1] != ips):
            shown.append(ips)

    def recreated(self) -> dict[str, set[str]]:
        """Tenant Services that ever had more than one parent Service."""
        return {key: uids for key, uids in self.parent_uids.items() if len(uids) > 1}

    def unstable(self) -> dict[str, list[list[str]]]:
        """Tenant Services whose IP changed after it was first assigned."""
        return {key: shown for key, shown in self.ips.items() if len(shown) > 1}


@contextlib.asynccontextmanager
async def watching(*informers: Informer) -> AsyncIterator[None]:
    task = asyncio.create_task(run_informers(informers))
    try:
        await asyncio.wait_for(asyncio.gather(*(i.wait_synced() for i in informers)), 30)
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def informer(client: Client, resource: Resource, namespace: str | None, selector: str | None = None) -> Informer:
    return Informer(client, resource, namespace=namespace, label_selector=selector)
