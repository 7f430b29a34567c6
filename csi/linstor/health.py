"""A parent volume's DRBD health from its LINSTOR replicas, as CSI's VolumeCondition: abnormal + a precise message.

Abnormal when any of these holds (the most severe first in the message):
- LINSTOR knows no replica, or no diskful one, or no diskful replica is UpToDate on every volume;
- nobody uses the volume and DRBD reports it may not be promoted anywhere (quorum lost, or no good data reachable);
- a diskful replica's disk is not UpToDate (Outdated, Inconsistent, Failed, unknown...);
- a DRBD connection between two replicas is down (StandAlone, Connecting, ...).
A replica that DRBD reports as SyncTarget while another diskful replica is UpToDate is a new or returning copy
catching up (a locality replica, say), not a degradation: it is named as resyncing in a normal message.
Inactive replicas and replicas being deleted are left out; diskless replicas count only for connections.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from csi.linstor.models import DELETE, INACTIVE, UP_TO_DATE, Resource


class Health(NamedTuple):
    """CSI's VolumeCondition; a plain (abnormal, message) tuple for callers that want one."""

    abnormal: bool
    message: str


def no_replica(name: str) -> str:
    return f"LINSTOR has no active replica of {name}"


def _nodes(replicas: Sequence[Resource]) -> str:
    return ", ".join(sorted(r.node_name for r in replicas)) or "none"


def _disk_problems(replica: Resource) -> list[str]:
    states = replica.disk_states()
    if not states:
        return [f"replica on {replica.node_name}: disk state unknown (satellite offline?)"]
    return [
        f"replica on {replica.node_name}: volume {number} is {state or 'in an unknown state'}"
        for number, state in states
        if state != UP_TO_DATE
    ]


def _summary(replica: Resource) -> str:
    states = sorted({state or "unknown" for _, state in replica.disk_states()}) or ["unknown"]
    return f"{replica.node_name} {'/'.join(states)}"


def _up_to_date(replica: Resource) -> bool:
    states = replica.disk_states()
    return bool(states) and all(state == UP_TO_DATE for _, state in states)


def _resyncing(replica: Resource) -> str:
    progress = replica.resync_progress
    return f"{replica.node_name} ({progress:.0f}%)" if progress else replica.node_name


def _connection_problems(replicas: Sequence[Resource]) -> list[str]:
    """Each broken link once, with what each end says about it."""
    links: dict[tuple[str, str], dict[str, str]] = {}
    for replica in replicas:
        drbd = replica.drbd
        for peer, connection in (drbd.connections if drbd else {}).items():
            if connection.connected is False:
                a, b = sorted((replica.node_name, peer))
                links.setdefault((a, b), {})[replica.node_name] = connection.message or "disconnected"
    return [
        f"DRBD connection {a} <-> {b} is down ({', '.join(f'{node}: {state}' for node, state in sorted(said.items()))})"
        for (a, b), said in sorted(links.items())
    ]


def _promotion_problem(name: str, replicas: Sequence[Resource]) -> str | None:
    """DRBD only lets one node be Primary, so `may_promote` is false elsewhere while the volume is in use."""
    if any(r.in_use for r in replicas):
        return None
    verdicts = sorted(
        ((r.node_name, r.drbd) for r in replicas if r.drbd is not None and r.drbd.may_promote is not None),
        key=lambda verdict: verdict[0],
    )
    if not verdicts or any(drbd.may_promote for _, drbd in verdicts):
        return None
    scores = ", ".join(f"{node} {drbd.promotion_score}" for node, drbd in verdicts if drbd.promotion_score is not None)
    return f"DRBD reports {name} cannot be promoted on any node" + (f" (promotion scores: {scores})" if scores else "")


def health(name: str, resources: Sequence[Resource]) -> Health:
    """Judge resource definition `name` from the replicas LINSTOR lists for it."""
    replicas = [r for r in resources if r.name == name and not {INACTIVE, DELETE}.intersection(r.flags)]
    if not replicas:
        return Health(True, no_replica(name))
    # By node: LINSTOR's list order varies, and a message that changes with it would look like a new problem.
    diskful = sorted((r for r in replicas if r.diskful), key=lambda r: r.node_name)
    if not diskful:
        return Health(True, f"{name} has no diskful replica (diskless on {_nodes(replicas)})")
    good = [r for r in diskful if _up_to_date(r)]
    # Only with good data elsewhere is a SyncTarget merely catching up.
    catching_up = [r for r in diskful if good and not _up_to_date(r) and r.resync_progress is not None]
    problems: list[str] = []
    if not good:
        problems.append(f"{name} has no UpToDate diskful replica ({', '.join(_summary(r) for r in diskful)})")
    if promotion := _promotion_problem(name, replicas):
        problems.append(promotion)
    for replica in diskful:
        problems.extend(_disk_problems(replica) if good and replica not in catching_up else [])
    problems.extend(_connection_problems(replicas))
    if problems:
        return Health(True, "; ".join(problems))
    message = f"{len(good)} UpToDate diskful replica{'s' * (len(good) != 1)} on {_nodes(good)}"
    if catching_up:
        message += "; resyncing on " + ", ".join(_resyncing(r) for r in catching_up)
    diskless = sorted((r for r in replicas if not r.diskful), key=lambda r: r.node_name)
    if diskless:
        message += "; diskless on " + ", ".join(r.node_name + " (tie-breaker)" * r.tie_breaker for r in diskless)
    if users := [r for r in replicas if r.in_use]:
        message += f"; in use on {_nodes(users)}"
    return Health(False, message)
