"""Data locality: on attach, a diskful replica of the volume on the parent node where the VM runs.

A VM reading its disk from a replica on another host pays a network round trip for every I/O. When
ControllerPublish attaches a volume to a VM whose parent node (the VMI's `status.nodeName`, which is the LINSTOR
satellite's name under Piraeus) holds no diskful replica, LINSTOR is asked to make the resource available there as
diskful (`make-available` with `diskful: true`): it creates a replica, or gives the node's diskless resource a
disk, and DRBD resyncs it in the background.

- The class must allow it: the node has a diskful storage pool the parent class may use (its `storagePool`, or
  any when it names none) and the class does not pin replicas to a `nodeList`. LINSTOR's autoplacer checks the
  rest (replicas-on-same/different, free space) and may still refuse; that is reported, not retried.
- Never blocks the attach: the work is a task of its own, bounded by the LINSTOR timeout; the RPC never waits for
  it and its result never depends on it.
- One request per volume and node: LINSTOR is asked for the current replicas first (a node with a diskful replica
  is left alone), and a request in flight for a (claim, node) is not started twice.
- Never removes anything: the client has no call that deletes or shrinks a replica, so the last UpToDate replica
  is never touched. The extra replica stays after detach; trimming replica counts is the platform's LINSTOR policy.
- One Event on the tenant PVC says what was asked, or what LINSTOR refused. Nothing is recorded when nothing was
  done (replica already there, class does not allow one, LINSTOR down: logged).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from csi.linstor.errors import LinstorApiError, LinstorError
from csi.linstor.mapping import Placement
from csi.linstor.models import DELETE, Resource, StoragePool
from csi.linstor.view import LinstorView
from kube.events import NORMAL, WARNING

log = logging.getLogger(__name__)

REQUESTED_REASON = "LocalReplicaRequested"
REFUSED_REASON = "LocalReplicaRefused"
# Two reads and one write, each bounded by the LINSTOR timeout.
CALLS_PER_REQUEST = 3


class Step(Enum):
    NOTHING = "nothing"
    CREATE = "create a diskful replica"
    ADD_DISK = "give the diskless resource a disk"


@dataclass(frozen=True)
class Plan:
    step: Step
    why: str
    pools: tuple[str, ...] = ()


def local_replica_plan(
    definition: str, node: str, replicas: Sequence[Resource], pools: Sequence[StoragePool], placement: Placement
) -> Plan:
    """What to ask LINSTOR for so that `node` holds a diskful replica of `definition`; pure."""
    here = [
        r
        for r in replicas
        if r.name.lower() == definition.lower() and r.node_name.lower() == node.lower() and DELETE not in r.flags
    ]
    if any(r.diskful for r in here):
        return Plan(Step.NOTHING, f"{node} already holds a diskful replica")
    if placement.nodes and node not in placement.nodes:
        return Plan(Step.NOTHING, f"the class places replicas on {', '.join(placement.nodes)} only")
    usable = sorted(
        p.storage_pool_name
        for p in pools
        if (p.node_name or "").lower() == node.lower()
        and not p.diskless
        and (not placement.storage_pool or p.storage_pool_name == placement.storage_pool)
    )
    if not usable:
        wanted = f"storage pool {placement.storage_pool}" if placement.storage_pool else "diskful storage pool"
        return Plan(Step.NOTHING, f"{node} has no {wanted}")
    return Plan(Step.ADD_DISK if here else Step.CREATE, "", tuple(usable))


class Locality:
    def __init__(self, view: LinstorView) -> None:
        self.view = view
        self._pending: set[tuple[str, str]] = set()

    @property
    def enabled(self) -> bool:
        settings = self.view.settings
        return self.view.client is not None and settings is not None and settings.locality == "prefer"

    def prefer_local(self, volume_id: str, claim: str, node: str, vm: str) -> None:
        """Start making `claim` local to `node` in the background; returns at once."""
        key = (claim, node.lower())
        if not self.enabled or not node or key in self._pending:
            return
        self._pending.add(key)
        self.view.spawn(self._request(volume_id, claim, node, vm), lambda: self._pending.discard(key))

    async def _request(self, volume_id: str, claim: str, node: str, vm: str) -> None:
        assert self.view.settings is not None
        bound = CALLS_PER_REQUEST * self.view.settings.timeout
        try:
            async with asyncio.timeout(bound):
                await self._make_local(volume_id, claim, node, vm)
        except TimeoutError:
            log.warning("locality for %s on %s: no answer within %gs, not retried", claim, node, bound)

    async def _make_local(self, volume_id: str, claim: str, node: str, vm: str) -> None:
        view, client = self.view, self.view.client
        assert client is not None
        if view.outage.down:
            return
        backing = await view.backing_of(claim)
        placement = await view.placement_for(backing.parent_storage_class) if backing is not None else None
        if backing is None or placement is None:
            log.debug("locality for %s: not a LINSTOR volume of a known class", claim)
            return
        definition = backing.definition
        try:
            replicas = await client.resources([definition])
            pools = await client.storage_pools(nodes=[node])
            plan = local_replica_plan(definition, node, replicas, pools, placement)
            if plan.step is Step.NOTHING:
                log.debug("locality for %s on %s: nothing to do (%s)", definition, node, plan.why)
                return
            log.info("locality: asking LINSTOR to %s of %s on %s (VM %s)", plan.step.value, definition, node, vm)
            await client.make_available(definition, node, diskful=True)
        except LinstorApiError as refused:
            view.notify(volume_id, WARNING, REFUSED_REASON, refusal(definition, node, vm, refused))
            return
        except LinstorError as error:
            view.outage.failed(error)
            return
        view.outage.succeeded()
        view.forget_health(definition)
        view.notify(volume_id, NORMAL, REQUESTED_REASON, requested(definition, node, vm, plan))


def requested(definition: str, node: str, vm: str, plan: Plan) -> str:
    where = f"VM {vm} runs on parent node {node}"
    if plan.step is Step.ADD_DISK:
        done = f"which held only a diskless replica of parent volume {definition}: asked LINSTOR to give it a disk"
    else:
        done = f"which held no replica of parent volume {definition}: asked LINSTOR for a diskful replica there"
    return f"{where}, {done} (storage pool {' or '.join(plan.pools)}); it resyncs in the background"


def refusal(definition: str, node: str, vm: str, error: LinstorApiError) -> str:
    said = "; ".join(error.messages) or f"HTTP {error.status}"
    return (
        f"LINSTOR refused a diskful replica of parent volume {definition} on parent node {node}, where VM {vm} runs:"
        f" {said}; the VM keeps reading it over the network"
    )
