"""Events on a real apiserver: written once, repeats aggregated into a count, per-object spam limited."""

from __future__ import annotations

import asyncio

from kube.client import Client, Object
from kube.events import SPAM_BURST, EventRecorder
from kube.resources import CONFIGMAPS, EVENTS


async def events_for(client: Client, namespace: str, name: str) -> list[Object]:
    listed = await client.list_all(EVENTS, namespace, field_selector=f"involvedObject.name={name}")
    return listed.items


async def test_repeats_are_aggregated(parent_client: Client, namespace: str) -> None:
    target = await parent_client.create(CONFIGMAPS, {"metadata": {"name": "target"}}, namespace)
    recorder = EventRecorder(parent_client, "tenant-cloud-tests", host="node-a")
    writer = asyncio.create_task(recorder.run())
    try:
        for _ in range(3):
            recorder.normal(target, "EnsuredLoadBalancer", "ensured")
        recorder.warning(target, "SyncLoadBalancerFailed", "parent unreachable")
        await recorder.flush()
    finally:
        writer.cancel()
    events = {e["reason"]: e for e in await events_for(parent_client, namespace, "target")}
    assert set(events) == {"EnsuredLoadBalancer", "SyncLoadBalancerFailed"}
    ensured = events["EnsuredLoadBalancer"]
    assert ensured["count"] == 3
    assert ensured["type"] == "Normal"
    assert ensured["involvedObject"]["uid"] == target["metadata"]["uid"]
    assert ensured["source"] == {"component": "tenant-cloud-tests", "host": "node-a"}
    assert events["SyncLoadBalancerFailed"]["type"] == "Warning"


async def test_spam_per_object_is_limited(parent_client: Client, namespace: str) -> None:
    noisy = await parent_client.create(CONFIGMAPS, {"metadata": {"name": "noisy"}}, namespace)
    quiet = await parent_client.create(CONFIGMAPS, {"metadata": {"name": "quiet"}}, namespace)
    recorder = EventRecorder(parent_client, "tenant-cloud-tests")
    writer = asyncio.create_task(recorder.run())
    try:
        for i in range(SPAM_BURST + 10):
            recorder.warning(noisy, "Distinct", f"message {i}")
        recorder.normal(quiet, "Fine", "other objects are not starved")
        await recorder.flush()
    finally:
        writer.cancel()
    assert len(await events_for(parent_client, namespace, "noisy")) == SPAM_BURST
    assert len(await events_for(parent_client, namespace, "quiet")) == 1
