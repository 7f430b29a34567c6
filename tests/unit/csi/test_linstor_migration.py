"""RWX block volumes on two parent nodes: which claims count, where VMIs run, and the two-primaries verdict."""

from __future__ import annotations

from typing import Any

import pytest

from csi.linstor.health import Health
from csi.linstor.migration import ALLOW_TWO_PRIMARIES, TwoPrimaries, parent_nodes, rwx_block, with_two_primaries

OK = Health(False, "2 UpToDate diskful replicas on n1, n2")
OUTDATED = Health(True, "replica on n2: volume 0 is Outdated")
TWO = {"n1": "VM vm-a", "n4": "VM vm-a migrating here"}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"accessModes": ["ReadWriteMany"], "volumeMode": "Block"}, True),
        ({"accessModes": ["ReadWriteOnce", "ReadWriteMany"], "volumeMode": "Block"}, True),
        ({"accessModes": ["ReadWriteMany"], "volumeMode": "Filesystem"}, False),
        ({"accessModes": ["ReadWriteMany"]}, False),  # Filesystem is the default mode
        ({"accessModes": ["ReadWriteOnce"], "volumeMode": "Block"}, False),
        ({}, False),
    ],
)
def test_rwx_block(spec: dict[str, Any], expected: bool) -> None:
    assert rwx_block({"spec": spec}) is expected


def vmi(name: str, node: str | None, migration: dict[str, Any] | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": "Running"}
    if node:
        status["nodeName"] = node
    if migration is not None:
        status["migrationState"] = migration
    return {"metadata": {"name": name}, "status": status}


def test_parent_nodes_count_migration_targets_while_they_run() -> None:
    running = {"sourceNode": "n1", "targetNode": "n4", "completed": False}
    assert parent_nodes([vmi("vm-a", "n1", running)]) == TWO
    assert parent_nodes([vmi("vm-a", "n4", {**running, "completed": True})]) == {"n4": "VM vm-a"}
    assert parent_nodes([vmi("vm-a", "n1", {**running, "failed": True})]) == {"n1": "VM vm-a"}
    # Two VMs sharing the volume on one node, a third elsewhere; a VMI not scheduled yet adds nothing.
    shared = parent_nodes([vmi("vm-a", "n1"), vmi("vm-b", "n1"), vmi("vm-c", "n2"), vmi("vm-d", None)])
    assert shared == {"n1": "VM vm-a, VM vm-b", "n2": "VM vm-c"}


def test_allowed_two_primaries_keep_the_verdict_and_say_so() -> None:
    allowed = TwoPrimaries("yes", "resource definition pvc-1")
    assert allowed.allowed and TwoPrimaries("Yes", "x").allowed
    found = with_two_primaries(OK, "pvc-1", TWO, allowed)
    assert found == (
        False,
        f"{OK.message}; attached on n1 (VM vm-a), n4 (VM vm-a migrating here), two DRBD primaries allowed",
    )
    assert with_two_primaries(OUTDATED, "pvc-1", TWO, allowed).abnormal


@pytest.mark.parametrize(
    ("setting", "said"),
    [
        (
            TwoPrimaries(None, "resource definition pvc-1 and resource group rg"),
            "is unset on resource definition pvc-1 and resource group rg",
        ),
        (TwoPrimaries("no", "resource group rg"), "is 'no' on resource group rg"),
    ],
)
def test_two_nodes_without_two_primaries_is_abnormal(setting: TwoPrimaries, said: str) -> None:
    found = with_two_primaries(OK, "pvc-1", TWO, setting)
    assert found.abnormal
    assert found.message == (
        "pvc-1 is attached on 2 parent nodes (n1 (VM vm-a), n4 (VM vm-a migrating here)) but DRBD does not allow"
        f" two primaries ({ALLOW_TWO_PRIMARIES} {said}): a live migration cannot switch over"
    )
    # An already degraded volume keeps its first reason in front.
    worse = with_two_primaries(OUTDATED, "pvc-1", TWO, setting)
    assert worse.abnormal and worse.message.startswith(OUTDATED.message + "; pvc-1 is attached on 2 parent nodes")
