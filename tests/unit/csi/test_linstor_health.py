"""DRBD health of a parent volume from LINSTOR's per-node resources: table-driven, REST-shaped fixtures."""

from __future__ import annotations

from typing import Any

import pytest

from csi.linstor.health import Health, health
from csi.linstor.models import Resource

RD = "pvc-0b7e"
TIE = ("DISKLESS", "DRBD_DISKLESS", "TIE_BREAKER")
CLIENT = ("DISKLESS", "DRBD_DISKLESS")


def replica(
    node: str,
    disk: str | None = "UpToDate",
    *,
    flags: tuple[str, ...] = (),
    down: dict[str, str] | None = None,
    peers: tuple[str, ...] = (),
    may_promote: bool | None = True,
    score: int | None = None,
    in_use: bool = False,
    name: str = RD,
    volume_state: bool = True,
    sync: dict[str, tuple[str, float]] | None = None,
) -> Resource:
    """One ResourceWithVolumes as /v1/view/resources returns it; `down` maps peers to a broken connection state."""
    connections: dict[str, Any] = {p: {"connected": True, "message": "Connected"} for p in peers}
    connections.update({p: {"connected": False, "message": m} for p, m in (down or {}).items()})
    drbd: dict[str, Any] = {
        "node_id": 0,
        "drbd_volumes": [{"disk_state": disk, "device_path": "/dev/drbd1001"}],
        "connections": connections,
        "secret": "must-never-matter",
    }
    if may_promote is not None:
        drbd["may_promote"] = may_promote
    if score is not None:
        drbd["promotion_score"] = score
    volume: dict[str, Any] = {"volume_number": 0, "storage_pool_name": "data", "provider_kind": "LVM_THIN"}
    if volume_state:
        volume["state"] = {"disk_state": disk}
    if sync:
        volume["state"]["replication_states"] = {
            peer: {"replication_state": state, "done_percentage": done} for peer, (state, done) in sync.items()
        }
    return Resource.model_validate(
        {
            "name": name,
            "node_name": node,
            "flags": list(flags),
            "layer_object": {"type": "DRBD", "drbd": drbd, "children": [{"type": "STORAGE", "storage": {}}]},
            "state": {"in_use": in_use},
            "volumes": [volume],
            "uuid": "3f1c",
        }
    )


HEALTHY_PAIR = [
    replica("n1", peers=("n2", "n3")),
    replica("n2", peers=("n1", "n3")),
    replica("n3", "Diskless", flags=TIE),
]

CASES: list[tuple[str, list[Resource], bool, list[str]]] = [
    (
        "two UpToDate replicas and a tie-breaker",
        HEALTHY_PAIR,
        False,
        ["2 UpToDate diskful replicas on n1, n2", "diskless on n3 (tie-breaker)"],
    ),
    ("a single replica", [replica("n1")], False, ["1 UpToDate diskful replica on n1"]),
    (
        "in use: DRBD refuses promotion elsewhere, which is fine",
        [replica("n1", in_use=True, may_promote=False), replica("n2", may_promote=False)],
        False,
        ["in use on n1"],
    ),
    ("no replica at all", [], True, [f"LINSTOR has no active replica of {RD}"]),
    ("replicas of another volume only", [replica("n1", name="pvc-other")], True, ["no active replica"]),
    (
        "only diskless replicas",
        [replica("n1", "Diskless", flags=CLIENT)],
        True,
        [f"{RD} has no diskful replica (diskless on n1)"],
    ),
    (
        "no UpToDate diskful replica",
        [replica("n1", "Outdated"), replica("n2", "Inconsistent")],
        True,
        [f"{RD} has no UpToDate diskful replica (n1 Outdated, n2 Inconsistent)"],
    ),
    (
        "one replica Outdated",
        [replica("n1"), replica("n2", "Outdated")],
        True,
        ["replica on n2: volume 0 is Outdated"],
    ),
    (
        "Inconsistent without a resync from a good peer",
        [replica("n1"), replica("n2", "Inconsistent")],
        True,
        ["replica on n2: volume 0 is Inconsistent"],
    ),
    (
        "a new replica resyncing from an UpToDate peer is no degradation",
        [replica("n1"), replica("n2"), replica("n3", "Inconsistent", sync={"n1": ("SyncTarget", 40.0)})],
        False,
        ["2 UpToDate diskful replicas on n1, n2", "resyncing on n3 (40%)"],
    ),
    (
        "a SyncTarget with no UpToDate replica anywhere",
        [replica("n1", "Outdated"), replica("n2", "Inconsistent", sync={"n1": ("SyncTarget", 10.0)})],
        True,
        [f"{RD} has no UpToDate diskful replica (n1 Outdated, n2 Inconsistent)"],
    ),
    (
        "a SyncSource is just UpToDate",
        [
            replica("n1", sync={"n2": ("SyncSource", 5.0)}),
            replica("n2", "Inconsistent", sync={"n1": ("SyncTarget", 5.0)}),
        ],
        False,
        ["1 UpToDate diskful replica on n1", "resyncing on n2 (5%)"],
    ),
    (
        "failed disk",
        [replica("n1"), replica("n2", "Failed")],
        True,
        ["replica on n2: volume 0 is Failed"],
    ),
    (
        "satellite offline: no state at all",
        [replica("n1"), replica("n2", None, volume_state=False, may_promote=None)],
        True,
        ["replica on n2: volume 0 is in an unknown state"],
    ),
    (
        "broken connection, reported from both ends",
        [replica("n1", down={"n2": "Connecting"}), replica("n2", down={"n1": "StandAlone"})],
        True,
        ["DRBD connection n1 <-> n2 is down (n1: Connecting, n2: StandAlone)"],
    ),
    (
        "connection to the tie-breaker lost",
        [replica("n1", down={"n3": "NetworkFailure"}), replica("n2"), replica("n3", "Diskless", flags=TIE)],
        True,
        ["DRBD connection n1 <-> n3 is down (n1: NetworkFailure)"],
    ),
    (
        "nobody may promote",
        [replica("n1", may_promote=False, score=0), replica("n2", may_promote=False, score=0)],
        True,
        [f"DRBD reports {RD} cannot be promoted on any node (promotion scores: n1 0, n2 0)"],
    ),
    (
        "one node may promote: fine",
        [replica("n1", may_promote=True), replica("n2", may_promote=False)],
        False,
        ["2 UpToDate"],
    ),
    (
        "inactive and deleting replicas are left out",
        [replica("n1"), replica("n2", "Outdated", flags=("INACTIVE",)), replica("n3", "Failed", flags=("DELETE",))],
        False,
        ["1 UpToDate diskful replica on n1"],
    ),
    (
        "the most severe problem comes first",
        [
            replica("n1", "Outdated", may_promote=False),
            replica("n2", "Outdated", may_promote=False, down={"n1": "StandAlone"}),
        ],
        True,
        ["has no UpToDate diskful replica", "cannot be promoted", "n1 <-> n2 is down"],
    ),
]


@pytest.mark.parametrize(("resources", "abnormal", "fragments"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_health(resources: list[Resource], abnormal: bool, fragments: list[str]) -> None:
    verdict = health(RD, resources)
    assert verdict.abnormal is abnormal, verdict.message
    positions = [verdict.message.find(fragment) for fragment in fragments]
    assert all(p >= 0 for p in positions), (fragments, verdict.message)
    assert positions == sorted(positions), verdict.message


def test_health_is_a_plain_pair() -> None:
    abnormal, message = health(RD, HEALTHY_PAIR)
    assert (abnormal, message) == tuple(health(RD, HEALTHY_PAIR))
    assert isinstance(health(RD, []), Health)


def test_disk_state_falls_back_to_the_drbd_layer() -> None:
    """Older controllers fill only the layer data; the volume's own state wins when both exist."""
    layered = replica("n1", "Outdated", volume_state=False)
    assert layered.disk_states() == [(0, "Outdated")]
    assert health(RD, [replica("n0"), layered]).message == "replica on n1: volume 0 is Outdated"


def test_drbd_layer_found_below_luks_or_cache() -> None:
    body = replica("n1", may_promote=False).model_dump()
    body["layer_object"] = {"type": "LUKS", "children": [body["layer_object"]]}
    wrapped = Resource.model_validate(body)
    assert wrapped.drbd is not None and wrapped.drbd.may_promote is False


def test_messages_do_not_depend_on_linstors_list_order() -> None:
    """LINSTOR lists replicas in no fixed order; a reordered list must not read as a new problem (and Event)."""
    degraded = [
        replica("n2", "Inconsistent", may_promote=False, score=0),
        replica("n1", "Outdated", may_promote=False, score=0),
        replica("n3", "Diskless", flags=TIE, may_promote=False, score=0),
    ]
    assert health(RD, degraded) == health(RD, degraded[::-1])
    assert health(RD, degraded).message == (
        f"{RD} has no UpToDate diskful replica (n1 Outdated, n2 Inconsistent);"
        f" DRBD reports {RD} cannot be promoted on any node (promotion scores: n1 0, n2 0, n3 0)"
    )
