"""RWX block volumes on two parent nodes at once (KubeVirt live migration): DRBD must allow two primaries.

KubeVirt live-migrates a VM by starting the target before stopping the source; both QEMUs open the volume, so
DRBD must let both nodes be Primary. linstor-csi sets `DrbdOptions/Net/allow-two-primaries=yes` on the resource
definition when it publishes an RWX block volume to a second node while another uses it, and deletes it when one
user is left (piraeusdatastore/linstor-csi#177); before that, platforms set it for good through the StorageClass
(`property.linstor.csi.linbit.com/DrbdOptions/Net/allow-two-primaries: "yes"`). The property therefore matters
while the volume is attached on two or more parent nodes: then, without it, the switch-over fails, and the
condition says so. One node without the property is the normal state of an RWX block volume.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from csi.linstor.client import LinstorClient
from csi.linstor.health import Health

ALLOW_TWO_PRIMARIES = "DrbdOptions/Net/allow-two-primaries"
READ_WRITE_MANY = "ReadWriteMany"
BLOCK = "Block"


def rwx_block(claim: Mapping[str, Any]) -> bool:
    """Whether a parent claim is ReadWriteMany in Block mode, the only kind linstor-csi lets two nodes write."""
    spec = claim.get("spec") or {}
    return READ_WRITE_MANY in (spec.get("accessModes") or ()) and spec.get("volumeMode") == BLOCK


def migration_target(vmi: Mapping[str, Any]) -> str | None:
    """The parent node a VMI is live-migrating to, while the migration runs."""
    state = (vmi.get("status") or {}).get("migrationState") or {}
    if not state.get("targetNode") or state.get("completed") or state.get("failed"):
        return None
    return str(state["targetNode"])


def parent_nodes(vmis: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Parent node -> who uses a volume there: each VMI's node, and its migration target while it moves."""
    found: dict[str, list[str]] = {}
    for vmi in vmis:
        name = str((vmi.get("metadata") or {}).get("name") or "")
        if node := (vmi.get("status") or {}).get("nodeName"):
            found.setdefault(str(node), []).append(f"VM {name}")
        if target := migration_target(vmi):
            found.setdefault(target, []).append(f"VM {name} migrating here")
    return {node: ", ".join(users) for node, users in sorted(found.items())}


@dataclass(frozen=True)
class TwoPrimaries:
    """The effective `allow-two-primaries` of a resource: its definition's value, else its group's."""

    value: str | None
    where: str

    @property
    def allowed(self) -> bool:
        return (self.value or "").lower() == "yes"


async def two_primaries_of(client: LinstorClient, definition: str) -> TwoPrimaries:
    """Read the property on the resource definition and, when unset there, on its resource group."""
    found = next(iter(await client.resource_definitions([definition])), None)
    if found is not None and ALLOW_TWO_PRIMARIES in found.props:
        return TwoPrimaries(found.props[ALLOW_TWO_PRIMARIES], f"resource definition {definition}")
    group_name = found.resource_group_name if found is not None else None
    if not group_name:
        return TwoPrimaries(None, f"resource definition {definition}")
    group = next(iter(await client.resource_groups([group_name])), None)
    if group is not None and ALLOW_TWO_PRIMARIES in group.props:
        return TwoPrimaries(group.props[ALLOW_TWO_PRIMARIES], f"resource group {group_name}")
    return TwoPrimaries(None, f"resource definition {definition} and resource group {group_name}")


def with_two_primaries(current: Health, name: str, nodes: Mapping[str, str], setting: TwoPrimaries) -> Health:
    """The volume's health once it is attached on `nodes` (two or more) with `setting`."""
    attached = ", ".join(f"{node} ({users})" for node, users in nodes.items())
    if setting.allowed:
        return Health(current.abnormal, f"{current.message}; attached on {attached}, two DRBD primaries allowed")
    state = "unset" if setting.value is None else f"{setting.value!r}"
    problem = (
        f"{name} is attached on {len(nodes)} parent nodes ({attached}) but DRBD does not allow two primaries"
        f" ({ALLOW_TWO_PRIMARIES} is {state} on {setting.where}): a live migration cannot switch over"
    )
    return Health(True, f"{current.message}; {problem}" if current.abnormal else problem)
