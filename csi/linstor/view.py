"""What the CSI controller asks LINSTOR: a parent claim's DRBD health, a parent storage class's capacity.

Every answer is a value or None ("unknown": LINSTOR not configured, unreachable, or the object not LINSTOR's);
nothing here raises into the RPC that asked. Parent reads and LINSTOR calls are bounded by the configured timeout,
answers are reused for their TTL, concurrent questions about one volume or class share one lookup, and after a
failure LINSTOR is left alone for `retry_after` seconds. An RWX block volume attached on two or more parent nodes
(`attached_nodes`, fed by the controller from the parent's VMIs) is also judged on whether DRBD allows two
primaries (migration.py).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass

from csi.linstor.cache import Outage, TtlCache
from csi.linstor.capacity import Space, space_from_pools, space_from_size_info
from csi.linstor.client import LinstorClient
from csi.linstor.errors import LinstorError, LinstorNotFound
from csi.linstor.events import HealthListener, HealthTransitions, NoticeListener
from csi.linstor.health import Health, health, no_replica
from csi.linstor.mapping import (
    InvalidParameter,
    Placement,
    default_class,
    linstor_class,
    placement_of,
    resource_definition_of,
    volume_name_of,
)
from csi.linstor.migration import TwoPrimaries, rwx_block, two_primaries_of, with_two_primaries
from csi.linstor.models import AutoSelectFilter
from csi.linstor.settings import LinstorSettings
from kube.client import Client, Object
from kube.errors import ApiError, NotFound
from kube.resources import PERSISTENTVOLUMECLAIMS, PERSISTENTVOLUMES, STORAGECLASSES

log = logging.getLogger(__name__)

# A bound claim keeps its PV, so the mapping outlives health answers; it is dropped when LINSTOR forgets the name.
MAPPING_TTL_FACTOR = 10
PARENT_READS = 8


@dataclass(frozen=True)
class Backing:
    """What backs a parent claim in LINSTOR: its resource definition, and what the claim says about it."""

    definition: str
    parent_storage_class: str
    rwx_block: bool


def _nowhere(_claim: str) -> Mapping[str, str]:
    return {}


class LinstorView:
    def __init__(
        self,
        parent: Client,
        namespace: str,
        settings: LinstorSettings | None,
        *,
        client: LinstorClient | None = None,
        listeners: Iterable[HealthListener] = (),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.parent = parent
        self.namespace = namespace
        self.settings = settings
        self.client = client or (LinstorClient(settings) if settings is not None else None)
        self.transitions = HealthTransitions(listeners)
        self.notices: list[NoticeListener] = []
        self.outage = Outage(settings.retry_after if settings else 0.0, clock)
        # Parent claim -> {parent node: who uses it there}; the controller plugs in its view of the VMIs.
        self.attached_nodes: Callable[[str], Mapping[str, str]] = _nowhere
        self._health: TtlCache[str, Health | None] = TtlCache(clock=clock)
        self._definitions: TtlCache[str, Backing | None] = TtlCache(clock=clock)
        self._spaces: TtlCache[str, Space | None] = TtlCache(clock=clock)
        self._two_primaries: TtlCache[str, TwoPrimaries | None] = TtlCache(clock=clock)
        self._reads = asyncio.Semaphore(PARENT_READS)
        self._background: set[asyncio.Task[None]] = set()

    @property
    def configured(self) -> bool:
        """Whether LINSTOR features may be advertised at all (GET_CAPACITY, say)."""
        return self.client is not None

    async def close(self) -> None:
        """Stop background work (it uses the client), then the client."""
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        if self.client is not None:
            await self.client.close()

    async def settle(self) -> None:
        """Wait until the background work started so far has ended (tests, orderly shutdown)."""
        while self._background:
            await asyncio.gather(*self._background, return_exceptions=True)

    def spawn(self, work: Coroutine[None, None, None], done: Callable[[], None]) -> None:
        """Run `work` in the background until it ends or the view closes; `done` runs either way."""
        task = asyncio.create_task(work)
        self._background.add(task)

        def settled(finished: asyncio.Task[None]) -> None:
            self._background.discard(finished)
            done()
            _log_failure(finished)

        task.add_done_callback(settled)

    def add_listener(self, listener: HealthListener) -> None:
        self.transitions.listeners.append(listener)

    def add_notice_listener(self, listener: NoticeListener) -> None:
        self.notices.append(listener)

    def notify(self, volume_id: str, kind: str, reason: str, message: str) -> None:
        for listener in self.notices:
            listener(volume_id, kind, reason, message)

    def forget_health(self, definition: str) -> None:
        """Drop the cached health of a resource we just changed, so the next answer shows the change."""
        self._health.forget(definition)

    # -- health ----------------------------------------------------------------------------------------------

    async def condition_for(self, parent_claim_name: str) -> Health | None:
        """DRBD health of the volume behind a parent claim; None when unknown."""
        return (await self.conditions_for([parent_claim_name]))[parent_claim_name]

    async def conditions_for(self, parent_claim_names: Sequence[str]) -> dict[str, Health | None]:
        """Health of many claims with one LINSTOR call for all those not cached (ListVolumes)."""
        names = list(dict.fromkeys(parent_claim_names))
        if self.client is None or self.settings is None:
            return dict.fromkeys(names)
        try:
            return await self._conditions(names)
        except Exception:
            # A bug here must cost the condition, never the RPC that asked.
            log.exception("volume health from LINSTOR failed")
            return dict.fromkeys(names)

    async def _conditions(self, names: list[str]) -> dict[str, Health | None]:
        backings = await asyncio.gather(*(self.backing_of(name) for name in names))
        by_definition = await self._healths([b.definition for b in backings if b is not None])
        answers: dict[str, Health | None] = {}
        for name, backing in zip(names, backings, strict=True):
            found = by_definition.get(backing.definition) if backing is not None else None
            if found is None or backing is None:
                answers[name] = None
                continue
            if found.message == no_replica(backing.definition):
                self._definitions.forget(name)  # the claim may have been re-created: look its PV up again next time
            answers[name] = found = await self._with_attachments(name, backing, found)
            self.transitions.observe(name, found)
        return answers

    async def _with_attachments(self, claim: str, backing: Backing, found: Health) -> Health:
        """An RWX block volume on two or more parent nodes needs DRBD to allow two primaries."""
        nodes = self.attached_nodes(claim) if backing.rwx_block else {}
        if len(nodes) < 2 or self.outage.down:
            return found
        setting = await self._two_primaries.get_or_load(
            backing.definition, lambda: self._read_two_primaries(backing.definition)
        )
        return with_two_primaries(found, backing.definition, nodes, setting) if setting is not None else found

    async def _read_two_primaries(self, definition: str) -> tuple[TwoPrimaries | None, float]:
        assert self.client is not None and self.settings is not None
        try:
            setting = await two_primaries_of(self.client, definition)
        except LinstorError as error:
            self.outage.failed(error)
            return None, 0.0
        self.outage.succeeded()
        return setting, self.settings.health_ttl

    async def backing_of(self, claim_name: str) -> Backing | None:
        """The LINSTOR resource behind a parent claim; None when unknown or not LINSTOR's."""
        return await self._definitions.get_or_load(claim_name, lambda: self._read_backing(claim_name))

    async def _read_backing(self, claim_name: str) -> tuple[Backing | None, float]:
        assert self.settings is not None
        unknown = (None, self.settings.health_ttl)
        try:
            async with self._reads, asyncio.timeout(self.settings.timeout):
                claim = await self.parent.get(PERSISTENTVOLUMECLAIMS, claim_name, self.namespace)
                volume_name = volume_name_of(claim)
                if volume_name is None:
                    return unknown
                volume = await self.parent.get(PERSISTENTVOLUMES, volume_name)
        except NotFound:
            return unknown
        except (ApiError, TimeoutError) as error:
            log.debug("cannot map parent claim %s to a LINSTOR resource: %s", claim_name, error)
            return None, 0.0
        definition = resource_definition_of(volume)
        if definition is None:
            return unknown
        storage_class = str((claim.get("spec") or {}).get("storageClassName") or "")
        backing = Backing(definition, storage_class, rwx_block(claim))
        return backing, self.settings.health_ttl * MAPPING_TTL_FACTOR

    async def _healths(self, definitions: Sequence[str]) -> dict[str, Health | None]:
        answers: dict[str, Health | None] = {}
        waiting: dict[str, asyncio.Future[Health | None]] = {}
        missing: list[str] = []
        for definition in dict.fromkeys(definitions):
            found, value = self._health.lookup(definition)
            if found:
                answers[definition] = value
            elif (pending := self._health.loading(definition)) is not None:
                waiting[definition] = pending
            else:
                missing.append(definition)
        if missing and self.outage.down:
            answers.update(dict.fromkeys(missing))
        elif missing:
            for definition in missing:
                waiting[definition] = self._health.begin(definition)
            # Its own task: a caller that gives up must not cancel the fetch other callers wait on.
            fetch = asyncio.ensure_future(self._fetch_healths(missing))
            fetch.add_done_callback(_log_failure)
        for definition, pending in waiting.items():
            answers[definition] = await asyncio.shield(pending)
        return answers

    async def _fetch_healths(self, definitions: list[str]) -> None:
        """One LINSTOR call for `definitions`; every waiter gets an answer, None when there is none."""
        assert self.client is not None and self.settings is not None
        answers: dict[str, Health | None] = dict.fromkeys(definitions)
        ttl = 0.0
        try:
            resources = await self.client.resources(definitions)
            self.outage.succeeded()
            answers = {definition: health(definition, resources) for definition in definitions}
            ttl = self.settings.health_ttl
        except LinstorError as error:
            self.outage.failed(error)
        finally:
            for definition in definitions:
                self._health.finish(definition, answers[definition], ttl)

    # -- capacity --------------------------------------------------------------------------------------------

    async def capacity_for(self, parent_storage_class: str) -> int | None:
        """Bytes a new volume of the parent class can still get, replicas accounted for; None when unknown.

        "" is the parent's default class, as in the tenant StorageClass parameters.
        """
        space = await self.space_for(parent_storage_class)
        return space.available if space is not None else None

    async def space_for(self, parent_storage_class: str) -> Space | None:
        """Available bytes and the largest possible volume (GetCapacity's two numbers); None when unknown."""
        if self.client is None:
            return None
        try:
            return await self._spaces.get_or_load(parent_storage_class, lambda: self._read_space(parent_storage_class))
        except Exception:
            log.exception("capacity of parent storage class %s from LINSTOR failed", parent_storage_class)
            return None

    async def placement_for(self, parent_storage_class: str) -> Placement | None:
        """Where a parent class places replicas; None when the class is unknown or not LINSTOR's."""
        storage_class = await self._storage_class(parent_storage_class)
        return _placement(parent_storage_class, storage_class) if storage_class is not None else None

    async def _read_space(self, class_name: str) -> tuple[Space | None, float]:
        assert self.client is not None and self.settings is not None
        ttl = self.settings.capacity_ttl
        storage_class = await self._storage_class(class_name)
        if storage_class is None and not class_name:
            # No class named and no parent default: the CO asks about the storage as a whole (one replica).
            placement = Placement()
        elif storage_class is None:
            return None, 0.0
        else:
            found = _placement(class_name, storage_class)
            if found is None:
                return None, ttl
            placement = found
        if self.outage.down:
            return None, 0.0
        try:
            space = await self._linstor_space(placement)
        except LinstorError as error:
            self.outage.failed(error)
            return None, 0.0
        self.outage.succeeded()
        return space, ttl

    async def _linstor_space(self, placement: Placement) -> Space:
        assert self.client is not None
        if placement.resource_group:
            select = AutoSelectFilter(
                place_count=placement.placement_count,
                storage_pool=placement.storage_pool,
                node_name_list=placement.nodes or None,
            )
            try:
                answer = await self.client.size_info(placement.resource_group, select)
            except LinstorNotFound:
                answer = None  # not created yet: linstor-csi makes the group on the first volume
            space = space_from_size_info(answer.space_info) if answer and answer.space_info else None
            if space is not None:
                return space
        pools = await self.client.storage_pools([placement.storage_pool] if placement.storage_pool else [])
        return space_from_pools(pools, placement)

    async def _storage_class(self, name: str) -> Object | None:
        assert self.settings is not None
        try:
            async with self._reads, asyncio.timeout(self.settings.timeout):
                if name:
                    return await self.parent.get(STORAGECLASSES, name)
                classes = await self.parent.list_all(STORAGECLASSES)
        except NotFound:
            return None
        except (ApiError, TimeoutError) as error:
            log.debug("cannot read parent storage class %s: %s", name or "(default)", error)
            return None
        return next((sc for sc in classes.items if default_class(sc)), None)


def _placement(name: str, storage_class: Object) -> Placement | None:
    if not linstor_class(storage_class):
        return None
    try:
        return placement_of(storage_class.get("parameters") or {})
    except InvalidParameter as error:
        log.debug("parent storage class %s: %s", name or "(default)", error)
        return None


def _log_failure(done: asyncio.Future[None]) -> None:
    if not done.cancelled() and (error := done.exception()) is not None:
        log.error("LINSTOR background work failed", exc_info=error)
