"""The informer against a real kube-apiserver: apiserver restarts and expired resourceVersions lose nothing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from e2e import cluster as harness
from kube.client import Client, Object
from kube.informer import Informer, InformerSettings, label_indexer, synced_check
from kube.resources import CONFIGMAPS
from tests.integration.etcd import compact_etcd

FAST = InformerSettings(backoff_base=0.05, backoff_cap=0.5, inactivity_timeout=20)


class Recorder:
    def __init__(self) -> None:
        self.added: list[str] = []
        self.updated: list[str] = []
        self.deleted: list[str] = []

    def attach(self, informer: Informer) -> None:
        informer.add_handlers(
            on_add=lambda o: self.added.append(o["metadata"]["name"]),
            on_update=lambda _, o: self.updated.append(o["metadata"]["name"]),
            on_delete=lambda o: self.deleted.append(o["metadata"]["name"]),
        )


@asynccontextmanager
async def running(informer: Informer) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(informer.run())
    try:
        await informer.wait_synced(10)
        yield task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def eventually(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


def configmap(name: str, team: str = "a") -> Object:
    return {"metadata": {"name": name, "labels": {"team": team}}, "data": {"v": "1"}}


async def test_lists_then_follows_the_watch(parent_client: Client, namespace: str) -> None:
    await parent_client.create(CONFIGMAPS, configmap("before"), namespace)
    informer = Informer(
        parent_client, CONFIGMAPS, namespace=namespace, indexers={"team": label_indexer("team")}, settings=FAST
    )
    events = Recorder()
    events.attach(informer)
    ready = synced_check([informer])
    assert ready() == f"not synced: Informer(configmaps in {namespace})"
    async with running(informer):
        assert ready() is True
        assert events.added == ["before"]
        await parent_client.create(CONFIGMAPS, configmap("after", team="b"), namespace)
        await parent_client.patch(CONFIGMAPS, "before", {"data": {"v": "2"}}, namespace)
        await parent_client.delete(CONFIGMAPS, "before", namespace)
        await eventually(lambda: events.deleted == ["before"])
        assert events.added == ["before", "after"]
        assert events.updated == ["before"]
        assert [o["metadata"]["name"] for o in informer.store.by_index("team", "b")] == ["after"]
        assert informer.store.by_index("team", "a") == []
        assert "managedFields" not in informer.store.values()[0]["metadata"]


async def test_watch_survives_apiserver_restart(
    parent_client: Client, namespace: str, cluster: harness.Cluster
) -> None:
    informer = Informer(parent_client, CONFIGMAPS, namespace=namespace, settings=FAST)
    events = Recorder()
    events.attach(informer)
    async with running(informer):
        for i in range(20):
            await parent_client.create(CONFIGMAPS, configmap(f"pre-{i}"), namespace)
        relists = informer.relists
        await asyncio.to_thread(harness.restart_apiserver, cluster.dir, "parent", 2.0)
        for i in range(20):
            await parent_client.create(CONFIGMAPS, configmap(f"post-{i}"), namespace)
        await parent_client.delete(CONFIGMAPS, "pre-0", namespace)
        expected = {f"pre-{i}" for i in range(1, 20)} | {f"post-{i}" for i in range(20)}
        await eventually(lambda: set(informer.store.keys()) == {f"{namespace}/{n}" for n in expected})
        assert events.deleted == ["pre-0"]
        assert sorted(events.added) == sorted({f"pre-{i}" for i in range(20)} | {f"post-{i}" for i in range(20)})
        assert informer.watch_restarts >= 2
        server = await parent_client.list_all(CONFIGMAPS, namespace)
        assert {o["metadata"]["name"] for o in server.items} == expected
        assert informer.relists >= relists


async def test_expired_resource_version_relists_and_reports_deletes(
    parent_client: Client, namespace: str, cluster: harness.Cluster
) -> None:
    for name in ("stays", "goes"):
        await parent_client.create(CONFIGMAPS, configmap(name), namespace)
    informer = Informer(parent_client, CONFIGMAPS, namespace=namespace, settings=FAST)
    events = Recorder()
    events.attach(informer)
    async with running(informer):
        assert sorted(events.added) == ["goes", "stays"]
    # While the informer is away: a delete, a new object, then history it could resume from is destroyed.
    await parent_client.delete(CONFIGMAPS, "goes", namespace)
    await parent_client.create(CONFIGMAPS, configmap("new"), namespace)
    for i in range(5):
        await parent_client.patch(CONFIGMAPS, "stays", {"data": {"v": str(i)}}, namespace)
    await asyncio.to_thread(compact_etcd, cluster.parent)
    await asyncio.to_thread(harness.restart_apiserver, cluster.dir, "parent", 0.0)  # empty watch cache
    relists = informer.relists
    informer.synced.clear()
    task = asyncio.create_task(informer.run())
    try:
        await eventually(lambda: informer.relists > relists)
        await eventually(lambda: events.deleted == ["goes"])
        assert events.added[-1] == "new"
        assert events.updated[-1] == "stays"
        assert sorted(informer.store.keys()) == [f"{namespace}/new", f"{namespace}/stays"]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
