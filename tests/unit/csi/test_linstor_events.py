"""Health transitions, and which tenant PVC their Events land on."""

from __future__ import annotations

from typing import Any

import pytest

from csi.linstor.events import (
    ABNORMAL_REASON,
    HEALTHY_REASON,
    HealthTransitions,
    TenantVolumeEvents,
    changed,
    claim_of,
    volume_handle_indexer,
)
from csi.linstor.health import Health
from kube.client import Client, Object
from kube.config import ClusterConfig, StaticToken
from kube.events import EventRecorder

OK = Health(False, "2 UpToDate diskful replicas on n1, n2")
OUTDATED = Health(True, "replica on n2: volume 0 is Outdated")
DOWN = Health(True, "DRBD connection n1 <-> n2 is down (n1: Connecting)")


@pytest.mark.parametrize(
    ("previous", "current", "expected"),
    [
        (None, OK, False),  # first sight of a healthy volume says nothing
        (None, OUTDATED, True),
        (OK, OK, False),
        (OK, OUTDATED, True),
        (OUTDATED, OK, True),
        (OUTDATED, OUTDATED, False),
        (OUTDATED, DOWN, True),  # still abnormal, for another reason
        (OK, Health(False, "1 UpToDate diskful replica on n1"), False),
    ],
)
def test_changed(previous: Health | None, current: Health, expected: bool) -> None:
    assert changed(previous, current) is expected


def test_transitions_call_listeners_on_change_only() -> None:
    seen: list[tuple[str, Health | None, Health]] = []
    transitions = HealthTransitions([lambda *change: seen.append(change)])
    for health in (OK, OK, OUTDATED, OUTDATED, OK):
        transitions.observe("disk-1", health)
    transitions.observe("disk-2", DOWN)
    assert seen == [("disk-1", OK, OUTDATED), ("disk-1", OUTDATED, OK), ("disk-2", None, DOWN)]


def tenant_pv(handle: str, driver: str = "csi.tenant-cloud.io", claim: dict[str, str] | None = None) -> Object:
    spec: dict[str, Any] = {"csi": {"driver": driver, "volumeHandle": handle}}
    if claim is not None:
        spec["claimRef"] = {"kind": "PersistentVolumeClaim", **claim}
    return {"metadata": {"name": f"pv-{handle}"}, "spec": spec}


def test_volume_handle_index_only_for_our_driver() -> None:
    index = volume_handle_indexer("csi.tenant-cloud.io")
    assert index(tenant_pv("pvc-disk")) == ["pvc-disk"]
    assert index(tenant_pv("pvc-disk", driver="other.csi")) == []
    assert index({"spec": {"hostPath": {}}}) == []


def test_claim_of_bound_volume() -> None:
    bound = tenant_pv("v", claim={"name": "data", "namespace": "app", "uid": "u-1"})
    assert claim_of(bound) == {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data", "namespace": "app", "uid": "u-1"},
    }
    assert claim_of(tenant_pv("v")) is None


class Recorded(EventRecorder):
    def __init__(self, client: Client) -> None:
        super().__init__(client, "tests")
        self.recorded: list[tuple[str, str, str, str, str]] = []

    def event(self, obj: Object, type_: str, reason: str, message: str) -> None:
        meta = obj["metadata"]
        self.recorded.append((meta["namespace"], meta["name"], type_, reason, message))


def test_events_go_to_the_tenant_claims_of_the_volume() -> None:
    client = Client.from_config(
        ClusterConfig(server="http://127.0.0.1:1", ssl_context=False, credentials=StaticToken("t")), "tests"
    )
    recorder = Recorded(client)
    events = TenantVolumeEvents(client, "csi.tenant-cloud.io", recorder=recorder)
    for pv in (
        tenant_pv("pvc-disk", claim={"name": "data", "namespace": "app"}),
        tenant_pv("pvc-other", claim={"name": "logs", "namespace": "app"}),
        tenant_pv("pvc-disk", driver="another.csi", claim={"name": "foreign", "namespace": "x"}),
    ):
        events.volumes.store.put(pv["metadata"]["name"] + pv["spec"]["csi"]["driver"], pv)
    events.health_changed("pvc-disk", OK, OUTDATED)
    events.health_changed("pvc-disk", OUTDATED, OK)
    events.health_changed("pvc-unknown", None, OUTDATED)
    assert recorder.recorded == [
        ("app", "data", "Warning", ABNORMAL_REASON, f"parent volume pvc-disk: {OUTDATED.message}"),
        ("app", "data", "Normal", HEALTHY_REASON, f"parent volume pvc-disk: {OK.message}"),
    ]
