"""Parent objects -> LINSTOR names: StorageClass parameters as linstor-csi reads them, PVs to resource definitions."""

from __future__ import annotations

import pytest

from csi.linstor.mapping import (
    InvalidParameter,
    Placement,
    default_class,
    linstor_class,
    placement_of,
    resource_definition_of,
    volume_name_of,
)

P = "linstor.csi.linbit.com/"


@pytest.mark.parametrize(
    ("parameters", "expected"),
    [
        ({}, Placement()),
        (
            {f"{P}resourceGroup": "rg", f"{P}storagePool": "data", f"{P}placementCount": "2"},
            Placement("rg", "data", 2),
        ),
        ({"resourceGroup": "rg", "storagePool": "data", "placementCount": "3"}, Placement("rg", "data", 3)),
        ({"autoPlace": "2"}, Placement(placement_count=2)),
        ({f"{P}autoPlace": "3"}, Placement(placement_count=3)),
        ({"placementCount": ""}, Placement()),  # linstor-csi: empty means 1
        ({"PLACEMENTCOUNT": "2", "StoragePool": "x"}, Placement(storage_pool="x", placement_count=2)),
        ({"placementCount": "2", f"{P}placementCount": "3"}, Placement(placement_count=3)),  # prefixed wins
        ({f"{P}nodeList": "n1 n2", "placementCount": "3"}, Placement(placement_count=2, nodes=("n1", "n2"))),
        (
            {
                "DrbdOptions/Net/protocol": "C",
                "property.linstor.csi.linbit.com/StorPoolName": "y",
                "csi.storage.k8s.io/fstype": "xfs",
            },
            Placement(),
        ),
        ({"resourceGroup": ""}, Placement()),
    ],
)
def test_placement_of(parameters: dict[str, str], expected: Placement) -> None:
    assert placement_of(parameters) == expected


@pytest.mark.parametrize("count", ["two", "0", "-1"])
def test_bad_placement_count(count: str) -> None:
    with pytest.raises(InvalidParameter, match="placementCount"):
        placement_of({"placementCount": count})


def pv(driver: str, handle: str = "pvc-1f2e") -> dict[str, object]:
    return {"metadata": {"name": handle}, "spec": {"csi": {"driver": driver, "volumeHandle": handle}}}


@pytest.mark.parametrize(
    ("volume", "expected"),
    [
        (pv("linstor.csi.linbit.com"), "pvc-1f2e"),
        (pv("rbd.csi.ceph.com"), None),
        ({"spec": {"hostPath": {"path": "/x"}}}, None),
        ({"spec": {"csi": {"driver": "linstor.csi.linbit.com"}}}, None),
        ({}, None),
    ],
)
def test_resource_definition_of(volume: dict[str, object], expected: str | None) -> None:
    assert resource_definition_of(volume) == expected


def test_volume_name_of_claim() -> None:
    assert volume_name_of({"spec": {"volumeName": "pvc-1f2e"}}) == "pvc-1f2e"
    assert volume_name_of({"spec": {}}) is None


@pytest.mark.parametrize(
    ("annotations", "expected"),
    [
        ({"storageclass.kubernetes.io/is-default-class": "true"}, True),
        ({"storageclass.beta.kubernetes.io/is-default-class": "true"}, True),
        ({"storageclass.kubernetes.io/is-default-class": "false"}, False),
        ({}, False),
    ],
)
def test_default_class(annotations: dict[str, str], expected: bool) -> None:
    assert default_class({"metadata": {"name": "x", "annotations": annotations}}) is expected


def test_linstor_class() -> None:
    assert linstor_class({"provisioner": "linstor.csi.linbit.com"})
    assert not linstor_class({"provisioner": "kubernetes.io/no-provisioner"})
