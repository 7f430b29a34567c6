"""What changes the simulated LINSTOR on request: make-available, resource-definition properties, and linstor-csi's
toggling of `allow-two-primaries` for RWX block volumes used on two parent nodes.

make-available follows linstor-server's CtrlRscMakeAvailableApiCallHandler: a resource already deployed as asked
is a success that changes nothing; a DRBD diskless resource asked to be diskful gets a disk (toggle-disk); a node
without the resource gets a diskful one, or a diskless one when that was asked and a diskful peer exists. The
storage pool is chosen like the autoplacer restricted to that node: the resource group's pool, else any diskful
pool, with room for the volume; none is a 404 (FAIL_NOT_FOUND_STOR_POOL). Nothing here ever removes a replica.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from e2e.sims._kubevirt_spec import claim_name
from e2e.sims._linstor_state import DISKLESS_POOL, Definition, Linstor, NotFoundError, Placed

ALLOW_TWO_PRIMARIES = "DrbdOptions/Net/allow-two-primaries"
ALREADY_DEPLOYED = "Resource already deployed as requested"


@dataclass(frozen=True)
class Outcome:
    changed: bool
    messages: tuple[str, ...]


def make_available(state: Linstor, name: str, node: str, *, diskful: bool) -> Outcome:
    definition = state.definition(name)
    node = state.satellite(node)
    replicas = state.replicas(definition)
    existing = next((r for r in replicas if r.node == node), None)
    if existing is not None and (not existing.diskless or not diskful):
        return Outcome(False, (ALREADY_DEPLOYED,))
    if existing is None and not diskful and any(not r.diskless for r in replicas):
        definition.placed[node] = Placed(_next_node_id(state, definition), DISKLESS_POOL, state.clock(), diskless=True)
        return Outcome(True, (f"New resource '{definition.name}' on node '{node}' registered.",))
    pool = _pool_on(state, definition, node)
    if existing is not None:
        definition.placed[node] = Placed(existing.node_id, pool, state.clock())
        override = state.overrides.get((definition.name, node))
        if override is not None:
            state.overrides[(definition.name, node)] = replace(override, diskless=False)
        return Outcome(True, (f"Addition of disk to resource '{definition.name}' on node '{node}' registered",))
    definition.placed[node] = Placed(_next_node_id(state, definition), pool, state.clock())
    return Outcome(True, (f"New resource '{definition.name}' on node '{node}' registered.",))


def _pool_on(state: Linstor, definition: Definition, node: str) -> str:
    wanted = state.placement_of(definition).storage_pool
    roomy = [
        (state.free_kib(pool, node), pool)
        for pool, on in state.pools
        if on == node and (wanted is None or pool == wanted) and state.free_kib(pool, node) >= definition.size_kib
    ]
    if not roomy:
        raise NotFoundError(
            f"Autoplacer could not find diskful stor pool on node {node} matching resource-groups autoplace-settings"
        )
    return max(roomy)[1]


def _next_node_id(state: Linstor, definition: Definition) -> int:
    return max((r.node_id for r in state.replicas(definition)), default=-1) + 1


def set_props(state: Linstor, name: str, changes: Mapping[str, Any]) -> dict[str, str]:
    """Override (a string) or delete (null) resource-definition properties, as `rd set-property` does."""
    definition = state.definition(name)
    for key, value in changes.items():
        if value is not None and not isinstance(value, str):
            raise ValueError(f"property {key!r} must be a string or null, not {value!r}")
    for key, value in changes.items():
        if value is None:
            definition.props.pop(key, None)
        else:
            definition.props[key] = value
    return dict(definition.props)


def _using_nodes(vmi: Mapping[str, Any]) -> frozenset[str]:
    status = vmi.get("status") or {}
    nodes = {str(status["nodeName"])} if status.get("nodeName") else set()
    migration = status.get("migrationState") or {}
    if migration.get("targetNode") and not migration.get("completed") and not migration.get("failed"):
        nodes.add(str(migration["targetNode"]))
    return frozenset(nodes)


class ParentUsers:
    """Parent nodes using each claim (VMI nodes and migration targets), and linstor-csi's reaction to them.

    linstor-csi sets allow-two-primaries on an RWX block volume's definition when it publishes it to a second node
    while another uses it, and deletes the property when only one user is left. It acts on those transitions only,
    so a test may change the property in between and see it stay changed.
    """

    def __init__(self, state: Linstor) -> None:
        self.state = state
        self._by_vmi: dict[str, dict[str, frozenset[str]]] = {}
        self._shared: set[str] = set()

    def vmi_seen(self, vmi: Mapping[str, Any]) -> None:
        metadata = vmi.get("metadata") or {}
        namespace = str(metadata.get("namespace") or "")
        nodes = _using_nodes(vmi)
        claims = {claim_name(v) for v in (vmi.get("spec") or {}).get("volumes") or []}
        self._by_vmi[f"{namespace}/{metadata.get('name')}"] = {f"{namespace}/{c}": nodes for c in claims if c}
        self.reconcile()

    def vmi_gone(self, vmi: Mapping[str, Any]) -> None:
        metadata = vmi.get("metadata") or {}
        self._by_vmi.pop(f"{metadata.get('namespace')}/{metadata.get('name')}", None)
        self.reconcile()

    def nodes_using(self, claim: str) -> set[str]:
        return {node for claims in self._by_vmi.values() for node in claims.get(claim, ())}

    def reconcile(self) -> None:
        self._shared &= set(self.state.definitions)
        for definition in self.state.definitions.values():
            if not definition.rwx_block or not definition.claim:
                continue
            shared = len(self.nodes_using(definition.claim)) >= 2
            if shared and definition.name not in self._shared:
                self._shared.add(definition.name)
                definition.props[ALLOW_TWO_PRIMARIES] = "yes"
            elif not shared and definition.name in self._shared:
                self._shared.discard(definition.name)
                definition.props.pop(ALLOW_TWO_PRIMARIES, None)
