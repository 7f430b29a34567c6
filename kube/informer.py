"""List-watch informer: a local cache of one resource kept current by a watch, with handlers and indexers.

List, then watch from the list's resourceVersion with bookmarks; on 410 Gone relist and report what
changed meanwhile (including deletions); an inactivity timeout kills half-open watches; failures back off
exponentially with jitter and resume from the last seen resourceVersion.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from kube.client import Client, Object
from kube.errors import ApiError, Gone, error_from_response
from kube.ratelimit import retry_backoff
from kube.resources import Resource

log = logging.getLogger(__name__)
T = TypeVar("T")

Indexer = Callable[[Object], Iterable[str]]
OnAdd = Callable[[Object], None]
OnUpdate = Callable[[Object, Object], None]
OnDelete = Callable[[Object], None]
Transform = Callable[[Object], Object]

NOISY_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",)


def strip_noise(obj: Object) -> Object:
    """Drop what controllers never read but costs the most memory: managedFields, last-applied copies."""
    metadata = obj.get("metadata")
    if isinstance(metadata, dict):
        metadata.pop("managedFields", None)
        annotations = metadata.get("annotations")
        if annotations:
            for key in NOISY_ANNOTATIONS:
                annotations.pop(key, None)
    return obj


def object_key(obj: Object) -> str:
    """`namespace/name`, or `name` for cluster-scoped objects (client-go's MetaNamespaceKeyFunc)."""
    metadata = obj.get("metadata") or {}
    namespace, name = metadata.get("namespace"), metadata.get("name", "")
    return f"{namespace}/{name}" if namespace else str(name)


def resource_version(obj: Object) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion", ""))


def label_indexer(label: str) -> Indexer:
    """Index objects by the value of one label."""

    def index(obj: Object) -> Iterable[str]:
        value = ((obj.get("metadata") or {}).get("labels") or {}).get(label)
        return (value,) if value is not None else ()

    return index


class Store:
    """Objects by key, plus named secondary indices kept in step on every change."""

    def __init__(self, indexers: dict[str, Indexer] | None = None) -> None:
        self._objects: dict[str, Object] = {}
        self._indexers = dict(indexers or {})
        self._indices: dict[str, dict[str, set[str]]] = {name: {} for name in self._indexers}

    def __len__(self) -> int:
        return len(self._objects)

    def __contains__(self, key: str) -> bool:
        return key in self._objects

    def get(self, key: str) -> Object | None:
        return self._objects.get(key)

    def keys(self) -> list[str]:
        return list(self._objects)

    def values(self) -> list[Object]:
        return list(self._objects.values())

    def by_index(self, index: str, value: str) -> list[Object]:
        return [self._objects[key] for key in self._indices[index].get(value, ())]

    def put(self, key: str, obj: Object) -> Object | None:
        old = self._objects.get(key)
        if old is not None:
            self._unindex(key, old)
        self._objects[key] = obj
        for name, indexer in self._indexers.items():
            for value in indexer(obj):
                self._indices[name].setdefault(value, set()).add(key)
        return old

    def remove(self, key: str) -> Object | None:
        old = self._objects.pop(key, None)
        if old is not None:
            self._unindex(key, old)
        return old

    def _unindex(self, key: str, obj: Object) -> None:
        for name, indexer in self._indexers.items():
            index = self._indices[name]
            for value in indexer(obj):
                keys = index.get(value)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del index[value]


@dataclass(frozen=True)
class Handlers:
    on_add: OnAdd | None = None
    on_update: OnUpdate | None = None
    on_delete: OnDelete | None = None


@dataclass(frozen=True)
class InformerSettings:
    page_size: int = 500
    # Longer than the apiserver's bookmark interval (about a minute), so a healthy idle watch never trips it.
    inactivity_timeout: float = 150.0
    # Server-side watch length; randomised like client-go so many watchers do not reconnect in step.
    watch_timeout_min: int = 300
    watch_timeout_max: int = 600
    backoff_base: float = 0.5
    backoff_cap: float = 30.0


def retry_delay(failures: int, error: ApiError, settings: InformerSettings) -> float:
    """How long to wait before the next list or watch after `failures` consecutive failures.

    A server that says when to come back (429 while a restarted apiserver's watch cache initialises, 503 with
    Retry-After) is believed, up to the cap; otherwise exponential backoff with jitter.
    """
    told = error.retry_after or None  # Retry-After: 0 is no hint; back off as for any other failure
    delay = retry_backoff(
        failures, told, base=settings.backoff_base, cap=settings.backoff_cap, retry_after_cap=settings.backoff_cap
    )
    # Every informer of a restarted apiserver hears the same Retry-After; jitter keeps them from coming back in step.
    return delay + random.uniform(0, settings.backoff_base) if told else delay  # noqa: S311


class Informer:
    def __init__(
        self,
        client: Client,
        resource: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        transform: Transform = strip_noise,
        indexers: dict[str, Indexer] | None = None,
        settings: InformerSettings | None = None,
    ) -> None:
        self.client = client
        self.resource = resource
        self.namespace = namespace
        self.label_selector = label_selector
        self.field_selector = field_selector
        self.store = Store(indexers)
        self.synced = asyncio.Event()
        self.settings = settings or InformerSettings()
        self._transform = transform
        self._handlers: list[Handlers] = []
        self._resource_version: str | None = None
        self.relists = 0
        self.watch_restarts = 0
        self.events = 0
        self._failures = 0

    def __repr__(self) -> str:
        scope = f" in {self.namespace}" if self.namespace else ""
        return f"Informer({self.resource}{scope})"

    def add_handlers(
        self, on_add: OnAdd | None = None, on_update: OnUpdate | None = None, on_delete: OnDelete | None = None
    ) -> None:
        """Register callbacks; they must be quick (typically: enqueue a key). Existing objects are replayed."""
        handlers = Handlers(on_add, on_update, on_delete)
        self._handlers.append(handlers)
        if on_add is not None:
            for obj in self.store.values():
                on_add(obj)

    async def wait_synced(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self.synced.wait(), timeout)

    async def run(self) -> None:
        """Keep the store current until cancelled."""
        self._failures = 0
        while True:
            try:
                if self._resource_version is None:
                    await self._relist()
                    self._failures = 0
                await self._watch()
                self._failures = 0
            except Gone:
                log.info("%r: resourceVersion %s expired; relisting", self, self._resource_version)
                self._resource_version = None
                await asyncio.sleep(random.uniform(0, self.settings.backoff_base))  # noqa: S311
            except ApiError as error:
                self._failures += 1
                delay = retry_delay(self._failures, error, self.settings)
                log.warning("%r: %s; retrying in %.1fs", self, error, delay)
                await asyncio.sleep(delay)

    async def _relist(self) -> None:
        fresh: dict[str, Object] = {}
        resource_version = ""
        async for page in self.client.pages(
            self.resource,
            self.namespace,
            label_selector=self.label_selector,
            field_selector=self.field_selector,
            limit=self.settings.page_size,
        ):
            for item in page.items:
                # List items carry no apiVersion/kind; Events and owner references need them.
                item.setdefault("apiVersion", self.resource.api_version)
                item.setdefault("kind", self.resource.kind)
                obj = self._transform(item)
                fresh[object_key(obj)] = obj
            resource_version = page.resource_version
        self.relists += 1
        for key in self.store.keys():  # noqa: SIM118 - keys() is a copy; deleting while iterating is safe
            if key not in fresh:
                self._deleted(key)  # vanished while we were not watching: a delete nobody else will report
        for key, obj in fresh.items():
            self._upsert(key, obj)
        self._resource_version = resource_version
        self.synced.set()

    async def _watch(self) -> None:
        params = {
            "watch": "1",
            "allowWatchBookmarks": "true",
            "resourceVersion": self._resource_version or "",
            "timeoutSeconds": str(random.randint(self.settings.watch_timeout_min, self.settings.watch_timeout_max)),  # noqa: S311
        }
        if self.label_selector:
            params["labelSelector"] = self.label_selector
        if self.field_selector:
            params["fieldSelector"] = self.field_selector
        self.watch_restarts += 1
        async with self.client.transport.stream(
            self.resource.path(self.namespace), params, read_timeout=self.settings.inactivity_timeout
        ) as stream:
            # The server accepted our resourceVersion: a later break starts the backoff afresh, so a watch that
            # ran for hours is not resumed at the delay its last outage had climbed to.
            self._failures = 0
            async for line in stream:
                if line.strip():
                    self._handle(json.loads(line))

    def _handle(self, event: dict[str, Any]) -> None:
        kind, raw = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            raise error_from_response(
                int(raw.get("code") or 500),
                json.dumps(raw).encode(),
                method="WATCH",
                path=self.resource.path(self.namespace),
            )
        self.events += 1
        if kind == "BOOKMARK":
            self._resource_version = resource_version(raw)
            return
        obj = self._transform(raw)
        key = object_key(obj)
        if kind == "DELETED":
            self._deleted(key, obj)
        else:
            self._upsert(key, obj)
        self._resource_version = resource_version(obj)

    def _upsert(self, key: str, obj: Object) -> None:
        old = self.store.get(key)
        if old is not None and resource_version(old) == resource_version(obj):
            return
        self.store.put(key, obj)
        for handlers in self._handlers:
            if old is None and handlers.on_add is not None:
                handlers.on_add(obj)
            elif old is not None and handlers.on_update is not None:
                handlers.on_update(old, obj)

    def _deleted(self, key: str, final: Object | None = None) -> None:
        old = self.store.remove(key)
        last = final if final is not None else old
        if last is None:
            return
        for handlers in self._handlers:
            if handlers.on_delete is not None:
                handlers.on_delete(last)


async def run_informers(informers: Iterable[Informer]) -> None:
    """Run several informers until cancelled; one failing for good cancels the rest."""
    async with asyncio.TaskGroup() as group:
        for informer in informers:
            group.create_task(informer.run(), name=repr(informer))


async def wait_all_synced(informers: Iterable[Informer], timeout: float | None = None) -> None:
    waits: list[Awaitable[None]] = [informer.wait_synced() for informer in informers]
    await asyncio.wait_for(asyncio.gather(*waits), timeout)


def synced_check(informers: Iterable[Informer]) -> Callable[[], bool | str]:
    """A readiness check (see kube.http) that passes once every informer has synced."""
    watched = list(informers)

    def check() -> bool | str:
        waiting = [repr(informer) for informer in watched if not informer.synced.is_set()]
        return True if not waiting else "not synced: " + ", ".join(waiting)

    return check


class Changes:
    """Lets a coroutine wait, without polling, until a condition over informer stores holds."""

    def __init__(self, informers: Iterable[Informer]) -> None:
        self._waiters: set[asyncio.Event] = set()
        for informer in informers:
            informer.add_handlers(self._poke, lambda _old, new: self._poke(new), self._poke)

    def _poke(self, _: Object) -> None:
        for waiter in self._waiters:
            waiter.set()

    async def wait_for(self, condition: Callable[[], T | None], timeout: float) -> T | None:
        """The first truthy value of `condition()`, re-checked on every change; None after `timeout`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            waiter = asyncio.Event()
            self._waiters.add(waiter)
            try:
                result = condition()
                if result:
                    return result
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return None
                try:
                    await asyncio.wait_for(waiter.wait(), remaining)
                except TimeoutError:
                    result = condition()
                    return result or None
            finally:
                self._waiters.discard(waiter)


async def wait_for_object(
    client: Client,
    resource: Resource,
    name: str,
    namespace: str | None,
    condition: Callable[[Object], bool],
    timeout: float,
) -> Object | None:
    """Watch one object (by field selector) until `condition` holds; None if it does not within `timeout`."""
    try:
        async with asyncio.timeout(timeout):
            current = await client.get(resource, name, namespace)
            if condition(current):
                return current
            params = {
                "watch": "1",
                "fieldSelector": f"metadata.name={name}",
                "resourceVersion": resource_version(current),
                "allowWatchBookmarks": "true",
            }
            while True:
                async with client.transport.stream(resource.path(namespace), params, read_timeout=timeout) as stream:
                    async for line in stream:
                        event = json.loads(line) if line.strip() else {}
                        if event.get("type") in ("ADDED", "MODIFIED") and condition(event["object"]):
                            return dict(event["object"])
                        if event.get("object"):
                            params["resourceVersion"] = resource_version(event["object"])
    except TimeoutError:
        return None
