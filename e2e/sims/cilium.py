"""Cilium LB-IPAM stand-in: addresses from CiliumLoadBalancerIPPools for parent Services of type LoadBalancer.

Behaves like the cilium-operator's lbipam package: which Services it serves, how pools (cilium.io/v2) select
them, requested IPs, sharing keys, the `cilium.io/IPAMRequestSatisfied` condition with the operator's reasons
and messages, and the pool's count and conflict conditions. It stays dormant until the first pool exists.
Allocation is plain in-memory bookkeeping (`Ipam`, no I/O); the process part watches, reconciles one Service
at a time and patches status only when it differs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network
from typing import Any

from e2e.sims.common import Simulation, run
from kube.client import Client, Object, PatchType
from kube.config import from_kubeconfig
from kube.controller import Controller
from kube.errors import NotFound
from kube.informer import Informer, object_key, run_informers, wait_all_synced
from kube.resources import SERVICES, Resource
from kube.transport import TransportSettings

log = logging.getLogger(__name__)

POOLS = Resource("cilium.io", "v2", "ciliumloadbalancerippools", "CiliumLoadBalancerIPPool", namespaced=False)

LB_CLASSES = frozenset({"io.cilium/l2-announcer", "io.cilium/bgp-control-plane"})
# Each annotation with the older io.cilium/ alias the operator still reads.
IPS_ANNOTATIONS = ("lbipam.cilium.io/ips", "io.cilium/lb-ipam-ips")
SHARING_KEY_ANNOTATIONS = ("lbipam.cilium.io/sharing-key", "io.cilium/lb-ipam-sharing-key")
SHARING_NAMESPACE_ANNOTATIONS = (
    "lbipam.cilium.io/sharing-cross-namespace",
    "io.cilium/lb-ipam-sharing-cross-namespace",
)
ANY_NAMESPACE = "*"
SERVICE_NAMESPACE_LABEL = "io.kubernetes.service.namespace"
SERVICE_NAME_LABEL = "io.kubernetes.service.name"

REQUEST_SATISFIED = "cilium.io/IPAMRequestSatisfied"
POOL_CONFLICT = "cilium.io/PoolConflict"
IPS_TOTAL = "cilium.io/IPsTotal"
IPS_AVAILABLE = "cilium.io/IPsAvailable"
IPS_USED = "cilium.io/IPsUsed"

SATISFIED = "satisfied"
NO_POOL = "no_pool"
OUT_OF_IPS = "out_of_ips"
POOL_SELECTOR_MISMATCH = "pool_selector_mismatch"
ALREADY_ALLOCATED = "already_allocated"
ALREADY_ALLOCATED_INCOMPATIBLE = "already_allocated_incompatible_service"

Address = IPv4Address | IPv6Address
Span = tuple[str, Address, Address]
Failure = tuple[str, str]
FAMILIES = {"IPv4": 4, "IPv6": 6}


def parse_address(text: str) -> Address | None:
    try:
        return ip_address(text.strip())
    except ValueError:
        return None


def _address(version: int, number: int) -> Address:
    return IPv4Address(number) if version == 4 else IPv6Address(number)


# --- pools -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Block:
    """One CIDR or start-stop range of a pool."""

    pool: str
    first: Address
    last: Address
    # allowFirstLastIPs: No on a CIDR of more than two addresses keeps its network and broadcast addresses out.
    reserve_edges: bool = False

    @property
    def span(self) -> Span:
        return (self.pool, self.first, self.last)

    @property
    def version(self) -> int:
        return self.first.version

    @property
    def size(self) -> int:
        return int(self.last) - int(self.first) + 1

    def __contains__(self, address: Address) -> bool:
        return address.version == self.version and int(self.first) <= int(address) <= int(self.last)

    def reserved(self, address: Address) -> bool:
        return self.reserve_edges and address in (self.first, self.last)

    def overlaps(self, other: Block) -> bool:
        return other.first in self or self.first in other

    def __str__(self) -> str:
        return f"{self.first} - {self.last}"


@dataclass(frozen=True)
class Pool:
    name: str
    blocks: tuple[Block, ...]
    selector: Mapping[str, Any] | None = None
    disabled: bool = False
    created: str = ""
    generation: int = 0
    # The PoolConflict message when this pool overlaps an older one; the operator then allocates nothing from it.
    conflict: str | None = None

    @property
    def allocatable(self) -> bool:
        return not self.disabled and self.conflict is None


def parse_block(pool: str, block: Mapping[str, Any], allow_first_last: bool) -> Block | None:
    """A pool block, or None when it does not parse (the operator rejects the pool; we skip the block)."""
    try:
        if cidr := block.get("cidr"):
            network = ip_network(str(cidr), strict=False)
            first, last = network.network_address, network.broadcast_address
            return Block(pool, first, last, not allow_first_last and network.num_addresses > 2)
        first = ip_address(str(block.get("start", "")))
        last = ip_address(str(block["stop"])) if block.get("stop") else first
    except (ValueError, KeyError):
        return None
    if first.version != last.version or int(first) > int(last):
        return None
    return Block(pool, first, last)


def parse_pool(obj: Object) -> Pool:
    metadata, spec = obj.get("metadata") or {}, obj.get("spec") or {}
    name = str(metadata.get("name", ""))
    # Only an explicit "No" reserves first and last addresses (the default became "Yes" in Cilium 1.16).
    allow_first_last = spec.get("allowFirstLastIPs") != "No"
    blocks = (parse_block(name, block, allow_first_last) for block in spec.get("blocks") or ())
    return Pool(
        name=name,
        blocks=tuple(block for block in blocks if block is not None),
        selector=spec.get("serviceSelector"),
        disabled=bool(spec.get("disabled")),
        created=str(metadata.get("creationTimestamp", "")),
        generation=int(metadata.get("generation") or 0),
    )


def _first_overlap(blocks: Sequence[Block], others: Sequence[Block]) -> tuple[Block, Block] | None:
    for block in blocks:
        for other in others:
            if other is not block and block.overlaps(other):
                return block, other
    return None


def settle_conflicts(pools: Iterable[Pool]) -> list[Pool]:
    """Oldest first; a pool overlapping itself or an older accepted pool is marked conflicting, like the operator."""
    settled: list[Pool] = []
    accepted: list[Block] = []
    for pool in sorted(pools, key=lambda p: (p.created, p.name)):
        clash, owner = _first_overlap(pool.blocks, pool.blocks), pool.name
        if clash is None:
            clash = _first_overlap(pool.blocks, accepted)
            owner = clash[1].pool if clash else owner
        if clash is None:
            accepted.extend(pool.blocks)
            settled.append(replace(pool, conflict=None))
        else:
            message = f"Pool conflicts since range '{clash[0]}' overlaps range '{clash[1]}' from IP Pool '{owner}'"
            settled.append(replace(pool, conflict=message))
    return settled


def selector_matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """metav1.LabelSelector semantics; no selector selects everything, an invalid one nothing."""
    if selector is None:
        return True
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    return all(_expression_matches(e, labels) for e in selector.get("matchExpressions") or ())


def _expression_matches(expression: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    key, values = str(expression.get("key", "")), list(expression.get("values") or ())
    match expression.get("operator"):
        case "In":
            return bool(values) and key in labels and labels[key] in values
        case "NotIn":
            return bool(values) and labels.get(key) not in values
        case "Exists":
            return not values and key in labels
        case "DoesNotExist":
            return not values and key not in labels
    return False


# --- services ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServiceView:
    """What LB-IPAM reads from a Service."""

    key: str
    namespace: str
    labels: Mapping[str, str]
    generation: int = 0
    families: frozenset[int] = frozenset({4})
    requested: tuple[Address, ...] = ()
    sharing_key: str = ""
    sharing_namespaces: frozenset[str] = frozenset()
    ports: frozenset[int] = frozenset()
    traffic_policy: str = "Cluster"
    selector: Mapping[str, str] = field(default_factory=dict)


def is_served(service: Object) -> bool:
    """LoadBalancer Services without a class or with one of Cilium's (default-lb-service-ipam=lbipam)."""
    spec = service.get("spec") or {}
    if spec.get("type") != "LoadBalancer":
        return False
    lb_class = spec.get("loadBalancerClass")
    return lb_class is None or lb_class in LB_CLASSES


def _annotation(annotations: Mapping[str, str], names: Sequence[str]) -> str:
    return next((annotations[name] for name in names if annotations.get(name)), "")


def requested_families(spec: Mapping[str, Any]) -> frozenset[int]:
    """One address per family: the first listed for SingleStack, all listed (or both) for dual-stack policies."""
    families = [FAMILIES[f] for f in spec.get("ipFamilies") or () if f in FAMILIES]
    policy = spec.get("ipFamilyPolicy")
    if policy == "RequireDualStack" or (policy == "PreferDualStack" and not families):
        return frozenset({4, 6})
    if policy == "PreferDualStack":
        return frozenset(families)
    return frozenset(families[:1] or [4])


def requested_addresses(service: Object) -> tuple[Address, ...]:
    """spec.loadBalancerIP, then the lbipam.cilium.io/ips list; unparsable entries are ignored."""
    annotations = (service.get("metadata") or {}).get("annotations") or {}
    texts = [str((service.get("spec") or {}).get("loadBalancerIP") or "")]
    texts += _annotation(annotations, IPS_ANNOTATIONS).split(",")
    addresses = (parse_address(text) for text in texts if text.strip())
    return tuple(dict.fromkeys(a for a in addresses if a is not None))


def service_view(service: Object) -> ServiceView:
    metadata, spec = service.get("metadata") or {}, service.get("spec") or {}
    namespace, name = str(metadata.get("namespace", "")), str(metadata.get("name", ""))
    annotations = metadata.get("annotations") or {}
    sharing_namespaces = _annotation(annotations, SHARING_NAMESPACE_ANNOTATIONS)
    return ServiceView(
        key=f"{namespace}/{name}",
        namespace=namespace,
        labels={**(metadata.get("labels") or {}), SERVICE_NAMESPACE_LABEL: namespace, SERVICE_NAME_LABEL: name},
        generation=int(metadata.get("generation") or 0),
        families=requested_families(spec),
        requested=requested_addresses(service),
        sharing_key=_annotation(annotations, SHARING_KEY_ANNOTATIONS),
        # Split without trimming, as the operator does: "a, b" permits " b", not "b".
        sharing_namespaces=frozenset(sharing_namespaces.split(",")) if sharing_namespaces else frozenset(),
        ports=frozenset(int(p["port"]) for p in spec.get("ports") or () if "port" in p),
        traffic_policy=str(spec.get("externalTrafficPolicy") or "Cluster"),
        selector=dict(spec.get("selector") or {}),
    )


def _permits(view: ServiceView, namespace: str) -> bool:
    return namespace in view.sharing_namespaces or ANY_NAMESPACE in view.sharing_namespaces


def sharing_conflict(a: ServiceView, b: ServiceView) -> str | None:
    """Why two Services may not share an address (the operator's wording), or None when they may."""
    if a.sharing_key != b.sharing_key:
        return "different sharing key"
    if a.namespace != b.namespace and not (_permits(a, b.namespace) and _permits(b, a.namespace)):
        return "different and not permitted namespace"
    # Port numbers only: Cilium's datapath cannot tell protocols apart on one address.
    if a.ports & b.ports:
        return "same port"
    if a.traffic_policy != b.traffic_policy:
        return "different ExternalTrafficPolicy"
    if a.traffic_policy == "Local" and (not a.selector or a.selector != b.selector):
        return "compatible ExternalTrafficPolicy local but selecting different set of pods"
    return None


# --- allocation --------------------------------------------------------------------------------------------


@dataclass
class Holding:
    """One allocated address and the Services using it (several when they share it)."""

    address: Address
    span: Span
    sharing_key: str
    users: dict[str, ServiceView] = field(default_factory=dict)

    def conflict_with(self, view: ServiceView) -> str | None:
        """Why `view` may not share this address with its other users, or None when it may."""
        for key, user in self.users.items():
            if key != view.key and (reason := sharing_conflict(user, view)) is not None:
                return reason
        return None


@dataclass(frozen=True)
class Outcome:
    """A Service's addresses after `Ipam.assign`, why it is (not) satisfied, and which pools' usage changed."""

    addresses: tuple[Address, ...]
    reason: str
    message: str
    pools: frozenset[str]
    freed: bool

    @property
    def satisfied(self) -> bool:
        return self.reason == SATISFIED


class Ipam:
    """Pools, held addresses and who holds them; every method is synchronous, so reconciles never interleave here."""

    def __init__(self) -> None:
        self.pools: dict[str, Pool] = {}
        self._blocks: list[Block] = []
        self._live: dict[Span, Block] = {}
        self._holdings: dict[Address, Holding] = {}
        self._assigned: dict[str, list[Address]] = {}
        self._shared: dict[str, list[Holding]] = {}
        self._waiting: set[str] = set()
        # Per block, a number below which nothing is free: keeps a burst of allocations linear.
        self._free_from: dict[Span, int] = {}

    def set_pools(self, pools: Iterable[Pool]) -> None:
        settled = settle_conflicts(pools)
        self.pools = {pool.name: pool for pool in settled}
        self._blocks = [block for pool in settled for block in pool.blocks]
        self._live = {block.span: block for block in self._blocks}
        self._free_from.clear()

    def tracks(self, key: str) -> bool:
        return key in self._assigned

    def holders(self) -> list[str]:
        return [key for key, addresses in self._assigned.items() if addresses]

    def waiting(self) -> list[str]:
        return sorted(self._waiting)

    def usage(self, pool: str) -> tuple[int, int]:
        """Total and used addresses of a pool; reserved first and last addresses count as used, as upstream."""
        blocks = self.pools[pool].blocks if pool in self.pools else ()
        spans = {block.span for block in blocks}
        held = sum(1 for holding in self._holdings.values() if holding.span in spans)
        reserved = sum(2 for block in blocks if block.reserve_edges)
        return sum(block.size for block in blocks), held + reserved

    def adopt(self, view: ServiceView, ingress: Iterable[str]) -> None:
        """Take over addresses a Service already shows, e.g. after a restart, before anything new is handed out."""
        addresses = self._assigned.get(view.key, [])
        for text in ingress:
            address = parse_address(text)
            if address is None or address in self._holdings or address.version not in view.families:
                continue
            if view.requested and address not in view.requested:
                continue
            if not view.requested and any(a.version == address.version for a in addresses):
                continue
            # Disabled and conflicting pools keep what they gave out, so a restart must not take it back.
            block = self._block_for(view, address, allocatable_only=False)
            if block is not None and not block.reserved(address):
                self._hold(view, address, block)
                addresses = self._assigned[view.key]

    def assign(self, view: ServiceView) -> Outcome:
        """Drop addresses the Service may no longer have, then satisfy what it asks for where pools allow."""
        addresses = self._assigned.setdefault(view.key, [])
        pools: set[str] = set()
        freed = False
        for address in list(addresses):
            holding = self._holdings[address]
            holding.users[view.key] = view
            if not self._still_valid(view, holding):
                pools.add(holding.span[0])
                freed |= self._drop(view.key, address)
        failure = self._claim_requested(view, pools) if view.requested else self._claim_families(view, pools)
        if failure is None:
            self._waiting.discard(view.key)
        else:
            self._waiting.add(view.key)
        reason, message = failure or (SATISFIED, "")
        return Outcome(tuple(addresses), reason, message, frozenset(pools), freed)

    def release(self, key: str) -> Outcome:
        """Forget a Service (deleted or no longer served); addresses nobody else shares become free."""
        self._waiting.discard(key)
        pools: set[str] = set()
        freed = False
        for address in list(self._assigned.get(key, ())):
            pools.add(self._holdings[address].span[0])
            freed |= self._drop(key, address)
        self._assigned.pop(key, None)
        return Outcome((), "", "", frozenset(pools), freed)

    def _still_valid(self, view: ServiceView, holding: Holding) -> bool:
        pool = self.pools.get(holding.span[0])
        if holding.span not in self._live or pool is None or not selector_matches(pool.selector, view.labels):
            return False
        if holding.conflict_with(view) is not None:
            return False
        if view.requested:
            return holding.address in view.requested
        return holding.address.version in view.families

    def _claim_requested(self, view: ServiceView, pools: set[str]) -> Failure | None:
        failure: Failure | None = None
        for address in view.requested:
            if address not in self._assigned[view.key]:
                failure = self._claim(view, address, pools) or failure  # the last failure is reported, as upstream
        return failure

    def _claim(self, view: ServiceView, address: Address, pools: set[str]) -> Failure | None:
        block = self._block_for(view, address, allocatable_only=True)
        if block is None:
            if any(address in b for b in self._blocks if self.pools[b.pool].allocatable):
                return (
                    POOL_SELECTOR_MISMATCH,
                    f"The pool with the CIDR containing '{address}', doesn't select this service",
                )
            return NO_POOL, f"No pool exists with a CIDR containing '{address}'"
        holding = self._holdings.get(address)
        if block.reserved(address) or (holding is not None and not view.sharing_key):
            return ALREADY_ALLOCATED, f"The IP '{address}' is already allocated to another service"
        if holding is None:
            self._hold(view, address, block)
            pools.add(block.pool)
            return None
        reason = holding.conflict_with(view)
        if reason is not None:
            message = f"The IP '{address}' is already allocated to an incompatible service. Reason: {reason}"
            return ALREADY_ALLOCATED_INCOMPATIBLE, message
        self._join(view, holding)
        return None

    def _claim_families(self, view: ServiceView, pools: set[str]) -> Failure | None:
        failure: Failure | None = None
        for version in sorted(view.families):
            if not any(a.version == version for a in self._assigned[view.key]):
                failure = self._allocate(view, version, pools) or failure
        return failure

    def _allocate(self, view: ServiceView, version: int, pools: set[str]) -> Failure | None:
        for holding in self._shared.get(view.sharing_key, ()) if view.sharing_key else ():
            if holding.address.version == version and self._joinable(view, holding):
                self._join(view, holding)
                return None
        full = False
        for block in self._blocks:
            pool = self.pools[block.pool]
            if block.version != version or not pool.allocatable or not selector_matches(pool.selector, view.labels):
                continue
            address = self._take_free(block)
            if address is None:
                full = True
                continue
            self._hold(view, address, block)
            pools.add(block.pool)
            return None
        if full:
            return (
                OUT_OF_IPS,
                "All enabled CiliumLoadBalancerIPPools that match this service ran out of allocatable IPs",
            )
        return NO_POOL, "There are no enabled CiliumLoadBalancerIPPools that match this service"

    def _joinable(self, view: ServiceView, holding: Holding) -> bool:
        pool = self.pools.get(holding.span[0])
        return (
            holding.span in self._live
            and pool is not None
            and selector_matches(pool.selector, view.labels)
            and holding.conflict_with(view) is None
        )

    def _block_for(self, view: ServiceView, address: Address, *, allocatable_only: bool) -> Block | None:
        for block in self._blocks:
            pool = self.pools[block.pool]
            usable = pool.allocatable or not allocatable_only
            if address in block and usable and selector_matches(pool.selector, view.labels):
                return block
        return None

    def _take_free(self, block: Block) -> Address | None:
        start, last = self._free_from.get(block.span, int(block.first)), int(block.last)
        for number in range(start, last + 1):
            address = _address(block.version, number)
            if address not in self._holdings and not block.reserved(address):
                self._free_from[block.span] = number + 1
                return address
        self._free_from[block.span] = last + 1
        return None

    def _hold(self, view: ServiceView, address: Address, block: Block) -> None:
        holding = Holding(address, block.span, view.sharing_key, {view.key: view})
        self._holdings[address] = holding
        if view.sharing_key:
            self._shared.setdefault(view.sharing_key, []).append(holding)
        self._assigned.setdefault(view.key, []).append(address)

    def _join(self, view: ServiceView, holding: Holding) -> None:
        holding.users[view.key] = view
        self._assigned[view.key].append(holding.address)

    def _drop(self, key: str, address: Address) -> bool:
        """Remove one Service from an address; True when that freed the address."""
        self._assigned[key].remove(address)
        holding = self._holdings[address]
        holding.users.pop(key, None)
        if holding.users:
            return False
        del self._holdings[address]
        if holding.sharing_key:
            self._shared[holding.sharing_key].remove(holding)
            if not self._shared[holding.sharing_key]:
                del self._shared[holding.sharing_key]
        for span, free_from in self._free_from.items():
            if address in self._live.get(span, ()) and int(address) < free_from:
                self._free_from[span] = int(address)
        return True


# --- status ------------------------------------------------------------------------------------------------


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def find_condition(conditions: Iterable[Mapping[str, Any]], kind: str) -> Mapping[str, Any] | None:
    return next((c for c in conditions if c.get("type") == kind), None)


def condition(
    previous: Mapping[str, Any] | None, kind: str, status: str, reason: str, message: str, generation: int, at: str
) -> dict[str, Any]:
    """A metav1.Condition; lastTransitionTime moves only when the status does (meta.SetStatusCondition)."""
    unchanged = previous is not None and previous.get("status") == status and previous.get("lastTransitionTime")
    written: dict[str, Any] = {
        "type": kind,
        "status": status,
        "lastTransitionTime": previous["lastTransitionTime"] if unchanged and previous else at,
        "reason": reason,
        "message": message,
    }
    # Services have no metadata.generation; the API drops a zero observedGeneration, so we must too to compare.
    if generation:
        written["observedGeneration"] = generation
    return written


def ingress_ips(service: Object) -> list[str]:
    ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return [str(entry["ip"]) for entry in ingress if entry.get("ip")]


def service_conditions(service: Object) -> list[Mapping[str, Any]]:
    return list((service.get("status") or {}).get("conditions") or ())


def service_status_patch(
    service: Object, addresses: Sequence[str], wanted: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """A strategic-merge patch of the status subresource, or None when the Service already shows this."""
    status = service.get("status") or {}
    ingress = (status.get("loadBalancer") or {}).get("ingress") or []
    patch: dict[str, Any] = {}
    if [entry.get("ip") for entry in ingress] != list(addresses):
        kept = {entry.get("ip"): entry for entry in ingress}
        patch["loadBalancer"] = {"ingress": [kept.get(a) or {"ip": a} for a in addresses]}
    current = find_condition(service_conditions(service), REQUEST_SATISFIED)
    if wanted != current:
        # Conditions merge by type, so other controllers' conditions stay; the directive removes only ours.
        patch["conditions"] = [wanted if wanted is not None else {"$patch": "delete", "type": REQUEST_SATISFIED}]
    return {"status": patch} if patch else None


def pool_conditions(pool: Pool, total: int, used: int, current: Sequence[Mapping[str, Any]], at: str) -> list[Any]:
    """The pool's conditions with ours (conflict and counts, as the operator writes them) brought up to date."""
    ours = [
        (POOL_CONFLICT, "True", "cidr_overlap", pool.conflict)
        if pool.conflict
        else (POOL_CONFLICT, "False", "resolved", ""),
        (IPS_TOTAL, "Unknown", "noreason", str(total)),
        (IPS_AVAILABLE, "Unknown", "noreason", str(total - used)),
        (IPS_USED, "Unknown", "noreason", str(used)),
    ]
    kinds = {kind for kind, *_ in ours}
    kept = [dict(c) for c in current if c.get("type") not in kinds]
    return kept + [
        condition(find_condition(current, kind), kind, status, reason, message, pool.generation, at)
        for kind, status, reason, message in ours
    ]


# --- the process -------------------------------------------------------------------------------------------

# Pool counts change with every allocation; batching them keeps a burst of Services from rewriting pools each time.
POOL_STATUS_DELAY = 0.5
WRITE_BUDGET = TransportSettings(qps=1000, burst=1000)


class LoadBalancerIPAM:
    """Informers on parent Services and pools; one reconcile per Service; pool status coalesced per pool."""

    def __init__(self, parent: Client, workers: int = 8) -> None:
        self.parent = parent
        self.ipam = Ipam()
        self.services = Informer(parent, SERVICES)
        self.pools = Informer(parent, POOLS)
        self.service_controller: Controller[str] = Controller(
            "lbipam-services", self.reconcile_service, workers=workers
        )
        self.pool_controller: Controller[str] = Controller("lbipam-pools", self.reconcile_pool)
        self._watch()

    def _watch(self) -> None:
        def service_changed(service: Object) -> None:
            key = object_key(service)
            if is_served(service) or self.ipam.tracks(key) or _has_our_condition(service):
                self.service_controller.queue.add(key)

        def pool_updated(old: Object, new: Object) -> None:
            # Our own status writes come back as updates; only spec changes alter allocation.
            if old.get("spec") != new.get("spec"):
                self.pools_changed()

        self.services.add_handlers(service_changed, lambda _old, new: service_changed(new), service_changed)
        self.pools.add_handlers(lambda _pool: self.pools_changed(), pool_updated, lambda _pool: self.pools_changed())

    def pools_changed(self) -> None:
        self.ipam.set_pools(parse_pool(obj) for obj in self.pools.store.values())
        # Holders first, as the operator revalidates satisfied Services first: they keep what is still valid.
        for key in self.ipam.holders():
            self.service_controller.queue.add(key)
        for service in self.services.store.values():
            if is_served(service):
                self.service_controller.queue.add(object_key(service))
        for pool in self.pools.store.values():
            self.pool_controller.queue.add(object_key(pool))

    async def run(self, on_ready: Callable[[], None] = lambda: None) -> None:
        """Sync, take over the addresses Services already show, then reconcile until cancelled."""
        informers = [self.services, self.pools]
        async with asyncio.TaskGroup() as group:
            group.create_task(run_informers(informers))
            await wait_all_synced(informers)
            for service in self.services.store.values():
                if is_served(service):
                    self.ipam.adopt(service_view(service), ingress_ips(service))
            group.create_task(self.service_controller.run())
            group.create_task(self.pool_controller.run())
            on_ready()

    async def reconcile_service(self, key: str) -> None:
        service = self.services.store.get(key)
        if service is None or not is_served(service):
            was_ours = self.ipam.tracks(key)
            self._changed(self.ipam.release(key))
            if service is not None and (was_ours or _has_our_condition(service)):
                await self._write_status(service, [], None)
            return
        # Dormant without pools, like the operator: Services it never touched stay untouched.
        if not self.ipam.pools and not self.ipam.tracks(key):
            return
        view = service_view(service)
        if not self.ipam.tracks(key):
            self.ipam.adopt(view, ingress_ips(service))
        outcome = self.ipam.assign(view)
        self._changed(outcome)
        previous = find_condition(service_conditions(service), REQUEST_SATISFIED)
        status = "True" if outcome.satisfied else "False"
        wanted = condition(previous, REQUEST_SATISFIED, status, outcome.reason, outcome.message, view.generation, now())
        await self._write_status(service, [str(a) for a in outcome.addresses], wanted)

    def _changed(self, outcome: Outcome) -> None:
        for pool in outcome.pools:
            self.pool_controller.queue.add_after(pool, POOL_STATUS_DELAY)
        if outcome.freed:
            for key in self.ipam.waiting():
                self.service_controller.queue.add(key)

    async def _write_status(self, service: Object, addresses: Sequence[str], wanted: Mapping[str, Any] | None) -> None:
        patch = service_status_patch(service, addresses, wanted)
        if patch is None:
            return
        name, namespace = service["metadata"]["name"], service["metadata"]["namespace"]
        outcome = wanted["reason"] if wanted is not None else "released"
        log.info("service %s/%s: %s, ingress %s", namespace, name, outcome, ",".join(addresses) or "none")
        with contextlib.suppress(NotFound):  # deleted meanwhile: its delete event releases the addresses
            await self.parent.patch(
                SERVICES, name, patch, namespace, patch_type=PatchType.STRATEGIC, subresource="status"
            )

    async def reconcile_pool(self, name: str) -> None:
        obj, pool = self.pools.store.get(name), self.ipam.pools.get(name)
        if obj is None or pool is None:
            return
        current = list((obj.get("status") or {}).get("conditions") or ())
        wanted = pool_conditions(pool, *self.ipam.usage(name), current, now())
        if wanted == current:
            return
        # A merge patch replaces the list (custom resources take no strategic merge); others' entries are kept.
        with contextlib.suppress(NotFound):
            await self.parent.patch(POOLS, name, {"status": {"conditions": wanted}}, subresource="status")


def _has_our_condition(service: Object) -> bool:
    return find_condition(service_conditions(service), REQUEST_SATISFIED) is not None


async def simulate(sim: Simulation) -> None:
    # One status patch per Service: at the shared client's 50 QPS a 1000-Service benchmark would wait on us.
    config = from_kubeconfig(sim.cluster.parent_kubeconfig)
    async with Client.from_config(config, sim.parent.field_manager, WRITE_BUDGET) as parent:
        await LoadBalancerIPAM(parent).run(on_ready=sim.ready)


if __name__ == "__main__":
    run(simulate)
