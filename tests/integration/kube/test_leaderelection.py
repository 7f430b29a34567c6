"""Leader election on real Leases: one leader at a time, failover within lease + retry, instant handover."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from kube.client import Client
from kube.leaderelection import LeaderElectionSettings, LeaderElector
from kube.resources import LEASES

FAST = LeaderElectionSettings(lease_duration=3.0, renew_deadline=2.0, retry_period=0.5)


async def eventually(condition: Callable[[], bool], timeout: float) -> float:
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, "condition not met in time"
        await asyncio.sleep(0.02)
    return time.monotonic() - started


class Candidate:
    def __init__(self, client: Client, namespace: str, identity: str) -> None:
        self.transitions: list[bool] = []
        self.stop = asyncio.Event()
        self.elector = LeaderElector(
            client,
            namespace,
            "ccm",
            identity,
            settings=FAST,
            on_started_leading=lambda: self.transitions.append(True),
            on_stopped_leading=lambda: self.transitions.append(False),
        )
        self.task = asyncio.create_task(self.elector.run(self.stop))

    async def shutdown(self) -> None:
        self.stop.set()
        await self.task

    def crash(self) -> None:
        self.task.cancel()


async def test_one_leader_and_clean_handover(parent_client: Client, namespace: str) -> None:
    a = Candidate(parent_client, namespace, "a")
    await eventually(lambda: a.elector.is_leader, 5)
    b = Candidate(parent_client, namespace, "b")
    await asyncio.sleep(FAST.lease_duration + FAST.retry_period)
    assert (a.elector.is_leader, b.elector.is_leader) == (True, False)
    lease = await parent_client.get(LEASES, "ccm", namespace)
    assert lease["spec"]["holderIdentity"] == "a"
    await a.shutdown()
    assert a.transitions == [True, False]
    # A clean shutdown releases the Lease: the standby takes over within one retry period, not a lease duration.
    took = await eventually(lambda: b.elector.is_leader, FAST.lease_duration)
    assert took <= FAST.retry_period + 0.5
    lease = await parent_client.get(LEASES, "ccm", namespace)
    assert lease["spec"]["holderIdentity"] == "b"
    assert lease["spec"]["leaseTransitions"] >= 1
    await b.shutdown()


async def test_failover_when_the_leader_dies(parent_client: Client, namespace: str) -> None:
    a = Candidate(parent_client, namespace, "a")
    await eventually(lambda: a.elector.is_leader, 5)
    b = Candidate(parent_client, namespace, "b")
    await asyncio.sleep(FAST.retry_period * 2)
    a.crash()  # no release: b must wait for the lease to expire by its own clock
    await asyncio.gather(a.task, return_exceptions=True)
    took = await eventually(lambda: b.elector.is_leader, FAST.lease_duration + FAST.retry_period + 1)
    assert took <= FAST.lease_duration + FAST.retry_period + 0.5
    await b.shutdown()
