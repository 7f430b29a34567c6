"""Running a storage simulator: informers first, then one controller per concern, Events per component."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from e2e.sims._cdi_meta import finalizers_patch, name_of, namespace_of
from kube.client import Client, Object, with_type
from kube.controller import Controller
from kube.errors import Conflict, NotFound
from kube.events import EventRecorder
from kube.informer import Informer, run_informers, wait_all_synced
from kube.resources import Resource

SYNC_TIMEOUT = 30.0


class Recorders:
    """One EventRecorder per reporting component, as each real controller reports under its own name."""

    def __init__(self, client: Client, components: Iterable[str]) -> None:
        self._recorders = {component: EventRecorder(client, component) for component in components}

    def emit(
        self, component: str, resource: Resource, obj: Mapping[str, Any], kind: str, reason: str, message: str
    ) -> None:
        """Record an Event; listed objects carry no apiVersion/kind, so they come from `resource`."""
        self._recorders[component].event(with_type(resource, dict(obj)), kind, reason, message)

    def tasks(self) -> list[Callable[[], Any]]:
        return [recorder.run for recorder in self._recorders.values()]


async def set_finalizers(
    client: Client, resource: Resource, obj: Mapping[str, Any], wanted: Sequence[str]
) -> Object | None:
    """Write the finalizer list we decided on from `obj`; None when `obj` was stale or is gone.

    A Conflict means a newer version exists, whose watch event brings the object back to its controller.
    """
    namespace = namespace_of(obj) if resource.namespaced else None
    try:
        patched: Object = await client.patch(resource, name_of(obj), finalizers_patch(obj, wanted), namespace)
    except (Conflict, NotFound):
        return None
    return patched


def on_change(informer: Informer, handler: Callable[[Object], None]) -> None:
    """The same handler for adds, updates (with the new object) and deletes (with the last known state)."""
    informer.add_handlers(handler, lambda _old, new: handler(new), handler)


async def run_simulator(
    informers: Iterable[Informer],
    controllers: Iterable[Controller[str]],
    recorders: Recorders,
    on_ready: Callable[[], None],
) -> None:
    """Sync every cache before any controller acts, report ready, then run until cancelled."""
    informers, controllers = list(informers), list(controllers)
    async with asyncio.TaskGroup() as group:
        group.create_task(run_informers(informers))
        for run in recorders.tasks():
            group.create_task(run())
        await wait_all_synced(informers, SYNC_TIMEOUT)
        for controller in controllers:
            group.create_task(controller.run(), name=controller.name)
        on_ready()
