"""Leader election on coordination.k8s.io/v1 Leases, with client-go's semantics and defaults.

A candidate takes the Lease when it is free or its holder has not renewed within the lease duration, as
observed on our own clock (never by comparing timestamps written by another host). The leader renews every
retry period and steps down when it cannot renew within the renew deadline. A clean shutdown releases the
Lease so another candidate takes over at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from kube.client import Client, Object
from kube.errors import ApiError, NotFound
from kube.resources import LEASES

log = logging.getLogger(__name__)

Callback = Callable[[], Awaitable[None] | None]


@dataclass(frozen=True)
class LeaderElectionSettings:
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def __post_init__(self) -> None:
        if not self.lease_duration > self.renew_deadline > self.retry_period > 0:
            raise ValueError("need lease_duration > renew_deadline > retry_period > 0")


def _micro_time(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    def __init__(
        self,
        client: Client,
        namespace: str,
        name: str,
        identity: str,
        *,
        settings: LeaderElectionSettings | None = None,
        on_started_leading: Callback | None = None,
        on_stopped_leading: Callback | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.settings = settings or LeaderElectionSettings()
        self._on_started = on_started_leading
        self._on_stopped = on_stopped_leading
        self._clock = clock
        self._observed: dict[str, Any] = {}
        self._observed_at = 0.0
        self._renewed_at = 0.0
        self.is_leader = False

    @property
    def observed_holder(self) -> str:
        return str(self._observed.get("holderIdentity") or "")

    async def run(self, stop: asyncio.Event) -> None:
        """Campaign, lead and renew until `stop` is set; then release the Lease if we hold it."""
        try:
            while not stop.is_set():
                if await self._try_acquire_or_renew():
                    if not self.is_leader:
                        await self._transition(True)
                elif self.is_leader and self._clock() - self._renewed_at > self.settings.renew_deadline:
                    log.warning(
                        "lease %s/%s: could not renew within %.0fs; stepping down",
                        self.namespace,
                        self.name,
                        self.settings.renew_deadline,
                    )
                    await self._transition(False)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.settings.retry_period)
        finally:
            if self.is_leader:
                await self._release()
                await self._transition(False)

    async def _transition(self, leading: bool) -> None:
        self.is_leader = leading
        log.info(
            "lease %s/%s: %s %s",
            self.namespace,
            self.name,
            self.identity,
            "became leader" if leading else "stopped leading",
        )
        callback = self._on_started if leading else self._on_stopped
        if callback is not None:
            result = callback()
            if result is not None:
                await result

    def _record(self, now: datetime.datetime, acquire_time: str, transitions: int) -> dict[str, Any]:
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": int(self.settings.lease_duration),
            "acquireTime": acquire_time,
            "renewTime": _micro_time(now),
            "leaseTransitions": transitions,
        }

    async def _try_acquire_or_renew(self) -> bool:
        now = datetime.datetime.now(datetime.UTC)
        try:
            lease = await self.client.get(LEASES, self.name, self.namespace)
        except NotFound:
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.name, "namespace": self.namespace},
                "spec": self._record(now, _micro_time(now), 0),
            }
            return await self._write(self.client.create(LEASES, body, self.namespace))
        except ApiError as error:
            log.warning("lease %s/%s: %s", self.namespace, self.name, error)
            return False
        spec: dict[str, Any] = lease.get("spec") or {}
        if spec != self._observed:
            self._observed, self._observed_at = spec, self._clock()
        holder = str(spec.get("holderIdentity") or "")
        duration = float(spec.get("leaseDurationSeconds") or self.settings.lease_duration)
        if holder and holder != self.identity and self._clock() - self._observed_at < duration:
            return False  # someone else holds a lease that has not expired by our clock
        transitions = int(spec.get("leaseTransitions") or 0)
        acquire_time = str(spec.get("acquireTime") or _micro_time(now))
        if holder != self.identity:
            transitions, acquire_time = transitions + 1, _micro_time(now)
        lease["spec"] = self._record(now, acquire_time, transitions)
        return await self._write(self.client.update(LEASES, lease, self.namespace))

    async def _write(self, request: Awaitable[Object]) -> bool:
        try:
            lease = await request
        except ApiError as error:
            log.debug("lease %s/%s: write failed: %s", self.namespace, self.name, error)
            return False
        self._observed, self._observed_at = lease.get("spec") or {}, self._clock()
        self._renewed_at = self._clock()
        return True

    async def _release(self) -> None:
        """Give the Lease up so a standby takes over now rather than after the lease duration."""
        try:
            lease = await self.client.get(LEASES, self.name, self.namespace)
            if (lease.get("spec") or {}).get("holderIdentity") != self.identity:
                return
            now = _micro_time(datetime.datetime.now(datetime.UTC))
            lease["spec"] = {
                "leaseDurationSeconds": 1,
                "acquireTime": now,
                "renewTime": now,
                "leaseTransitions": (lease.get("spec") or {}).get("leaseTransitions", 0),
            }
            await self.client.update(LEASES, lease, self.namespace)
        except ApiError as error:
            log.warning("lease %s/%s: release failed: %s", self.namespace, self.name, error)
