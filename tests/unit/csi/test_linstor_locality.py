"""What data locality asks LINSTOR for, from the volume's replicas, the node's pools and the class's placement."""

from __future__ import annotations

from typing import Any

import pytest

from csi.linstor.errors import LinstorApiError
from csi.linstor.locality import Plan, Step, local_replica_plan, refusal, requested
from csi.linstor.mapping import Placement
from csi.linstor.models import Resource, StoragePool

RD = "pvc-1"
DATA = Placement(resource_group="rg", storage_pool="data", placement_count=2)


def replica(node: str, *flags: str, name: str = RD) -> Resource:
    return Resource.model_validate({"name": name, "node_name": node, "flags": list(flags)})


def pool(node: str, name: str = "data", kind: str = "LVM_THIN") -> StoragePool:
    free: dict[str, Any] = {"free_capacity": 10 * 2**20, "total_capacity": 20 * 2**20}
    return StoragePool.model_validate({"storage_pool_name": name, "node_name": node, "provider_kind": kind, **free})


REMOTE = [replica("s1"), replica("s2"), replica("s3", "DISKLESS", "DRBD_DISKLESS", "TIE_BREAKER")]
NODE_POOLS = [pool("n1"), pool("n1", "DfltDisklessStorPool", "DISKLESS")]


@pytest.mark.parametrize(
    ("node", "replicas", "pools", "placement", "expected"),
    [
        ("n1", REMOTE, NODE_POOLS, DATA, Plan(Step.CREATE, "", ("data",))),
        ("N1", REMOTE, NODE_POOLS, DATA, Plan(Step.CREATE, "", ("data",))),  # LINSTOR names ignore case
        ("s1", REMOTE, [pool("s1")], DATA, Plan(Step.NOTHING, "s1 already holds a diskful replica")),
        ("s3", REMOTE, [pool("s3")], DATA, Plan(Step.ADD_DISK, "", ("data",))),  # the tie-breaker gets a disk
        ("n1", [*REMOTE, replica("n1", "DELETE")], NODE_POOLS, DATA, Plan(Step.CREATE, "", ("data",))),
        (
            "n1",
            REMOTE,
            [pool("n1", "DfltDisklessStorPool", "DISKLESS")],
            DATA,
            Plan(Step.NOTHING, "n1 has no storage pool data"),
        ),
        ("n1", REMOTE, [pool("n1", "fast")], DATA, Plan(Step.NOTHING, "n1 has no storage pool data")),
        ("n1", REMOTE, [pool("n2")], DATA, Plan(Step.NOTHING, "n1 has no storage pool data")),
        ("n1", REMOTE, [pool("n1", "fast"), pool("n1")], Placement(), Plan(Step.CREATE, "", ("data", "fast"))),
        ("n1", REMOTE, [], Placement(), Plan(Step.NOTHING, "n1 has no diskful storage pool")),
        (
            "n1",
            REMOTE,
            NODE_POOLS,
            Placement(storage_pool="data", placement_count=2, nodes=("s1", "s2")),
            Plan(Step.NOTHING, "the class places replicas on s1, s2 only"),
        ),
    ],
)
def test_plan(
    node: str, replicas: list[Resource], pools: list[StoragePool], placement: Placement, expected: Plan
) -> None:
    assert local_replica_plan(RD, node, replicas, pools, placement) == expected


def test_other_volumes_replicas_do_not_count() -> None:
    plan = local_replica_plan(RD, "n1", [*REMOTE, replica("n1", name="pvc-2")], NODE_POOLS, DATA)
    assert plan.step is Step.CREATE


def test_what_the_tenant_is_told() -> None:
    created = requested(RD, "n1", "vm-a", Plan(Step.CREATE, "", ("data",)))
    assert created == (
        "VM vm-a runs on parent node n1, which held no replica of parent volume pvc-1: asked LINSTOR for a diskful"
        " replica there (storage pool data); it resyncs in the background"
    )
    assert "held only a diskless replica" in requested(RD, "s3", "vm-a", Plan(Step.ADD_DISK, "", ("data", "fast")))
    error = LinstorApiError(404, "/v1/resource-definitions/pvc-1/resources/n1/make-available", ("no pool fits",))
    assert refusal(RD, "n1", "vm-a", error) == (
        "LINSTOR refused a diskful replica of parent volume pvc-1 on parent node n1, where VM vm-a runs: no pool fits;"
        " the VM keeps reading it over the network"
    )
