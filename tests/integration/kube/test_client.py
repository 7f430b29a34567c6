"""The aiohttp client against a real kube-apiserver: verbs, typed errors, apply, paging, discovery."""

from __future__ import annotations

from pathlib import Path

import pytest

from e2e import cluster as harness
from e2e.cluster.identities import service_account_kubeconfig
from kube.client import Client, PatchType
from kube.config import from_kubeconfig
from kube.errors import AlreadyExists, Conflict, Forbidden, Invalid, NotFound
from kube.resources import CONFIGMAPS, SECRETS, Resource

SELF_SUBJECT_REVIEWS = Resource(
    "authentication.k8s.io", "v1", "selfsubjectreviews", "SelfSubjectReview", namespaced=False
)


def configmap(name: str, **data: str) -> dict[str, object]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data}


async def test_crud_round_trip(parent_client: Client, namespace: str) -> None:
    created = await parent_client.create(CONFIGMAPS, configmap("a", k="1"), namespace)
    assert created["metadata"]["managedFields"][0]["manager"] == "tenant-cloud-tests"
    fetched = await parent_client.get(CONFIGMAPS, "a", namespace)
    assert fetched["data"] == {"k": "1"}
    fetched["data"]["k"] = "2"
    updated = await parent_client.update(CONFIGMAPS, fetched, namespace)
    assert updated["data"] == {"k": "2"}
    patched = await parent_client.patch(CONFIGMAPS, "a", {"data": {"j": "3"}}, namespace)
    assert patched["data"] == {"k": "2", "j": "3"}
    json_patched = await parent_client.patch(
        CONFIGMAPS, "a", [{"op": "remove", "path": "/data/k"}], namespace, patch_type=PatchType.JSON
    )
    assert json_patched["data"] == {"j": "3"}
    await parent_client.delete(CONFIGMAPS, "a", namespace)
    with pytest.raises(NotFound):
        await parent_client.get(CONFIGMAPS, "a", namespace)


async def test_typed_errors(parent_client: Client, namespace: str) -> None:
    await parent_client.create(CONFIGMAPS, configmap("dup"), namespace)
    with pytest.raises(AlreadyExists):
        await parent_client.create(CONFIGMAPS, configmap("dup"), namespace)
    with pytest.raises(Invalid) as invalid:
        await parent_client.create(CONFIGMAPS, configmap("Not_A_Valid_Name"), namespace)
    assert invalid.value.causes and invalid.value.causes[0].field == "metadata.name"
    with pytest.raises(NotFound):
        await parent_client.delete(CONFIGMAPS, "never-existed", namespace)


async def test_stale_update_is_a_conflict(parent_client: Client, namespace: str) -> None:
    first = await parent_client.create(CONFIGMAPS, configmap("c", v="1"), namespace)
    await parent_client.patch(CONFIGMAPS, "c", {"data": {"v": "2"}}, namespace)
    first["data"]["v"] = "stale"
    with pytest.raises(Conflict) as conflict:
        await parent_client.update(CONFIGMAPS, first, namespace)
    assert conflict.value.status == 409
    assert not isinstance(conflict.value, AlreadyExists)


async def test_delete_preconditions(parent_client: Client, namespace: str) -> None:
    created = await parent_client.create(CONFIGMAPS, configmap("p"), namespace)
    with pytest.raises(Conflict):
        await parent_client.delete(CONFIGMAPS, "p", namespace, uid="00000000-0000-0000-0000-000000000000")
    await parent_client.delete(
        CONFIGMAPS, "p", namespace, uid=created["metadata"]["uid"], propagation_policy="Foreground"
    )


async def test_server_side_apply_round_trip(parent_client: Client, namespace: str) -> None:
    applied = await parent_client.apply(CONFIGMAPS, {"metadata": {"name": "s"}, "data": {"owned": "1"}}, namespace)
    managers = {entry["manager"]: entry["operation"] for entry in applied["metadata"]["managedFields"]}
    assert managers == {"tenant-cloud-tests": "Apply"}
    again = await parent_client.apply(CONFIGMAPS, {"metadata": {"name": "s"}, "data": {"owned": "2"}}, namespace)
    assert again["data"] == {"owned": "2"}
    # Dropping a field from our intent removes it: apply owns exactly what it last declared.
    other = Client(parent_client.transport, "someone-else")
    await other.apply(CONFIGMAPS, {"metadata": {"name": "s"}, "data": {"theirs": "x"}}, namespace)
    with pytest.raises(Conflict):
        await other.apply(CONFIGMAPS, {"metadata": {"name": "s"}, "data": {"owned": "taken"}}, namespace)
    forced = await other.apply(
        CONFIGMAPS, {"metadata": {"name": "s"}, "data": {"owned": "taken", "theirs": "x"}}, namespace, force=True
    )
    assert forced["data"] == {"owned": "taken", "theirs": "x"}
    dry = await parent_client.apply(
        CONFIGMAPS, {"metadata": {"name": "s"}, "data": {"owned": "dry"}}, namespace, force=True, dry_run=True
    )
    assert dry["data"]["owned"] == "dry"
    assert (await parent_client.get(CONFIGMAPS, "s", namespace))["data"]["owned"] == "taken"


async def test_list_pages_follow_continue_tokens(parent_client: Client, namespace: str) -> None:
    for i in range(7):
        await parent_client.create(CONFIGMAPS, configmap(f"page-{i}"), namespace)
    pages = [page async for page in parent_client.pages(CONFIGMAPS, namespace, limit=3)]
    assert [len(p.items) for p in pages][:2] == [3, 3]
    names = sorted(item["metadata"]["name"] for p in pages for item in p.items)
    assert [n for n in names if n.startswith("page-")] == [f"page-{i}" for i in range(7)]
    everything = await parent_client.list_all(CONFIGMAPS, namespace, label_selector=None)
    assert len(everything.items) == len(names)
    assert everything.resource_version


async def test_status_subresource_and_discovery(parent_client: Client, cluster: harness.Cluster) -> None:
    vmis = await parent_client.discovery.resolve("kubevirt.io/v1", "VirtualMachineInstance")
    assert vmis == Resource("kubevirt.io", "v1", "virtualmachineinstances", "VirtualMachineInstance", True)
    ns = cluster.parent_namespace
    body = {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachineInstance",
        "metadata": {"name": "st"},
        "spec": {"domain": {"devices": {}}},
    }
    await parent_client.create(vmis, body, ns)
    status = await parent_client.patch(vmis, "st", {"status": {"phase": "Running"}}, ns, subresource="status")
    assert status["status"]["phase"] == "Running"
    await parent_client.delete(vmis, "st", ns)


async def test_forbidden_for_a_limited_identity(cluster: harness.Cluster, tmp_path: Path) -> None:
    kubeconfig = service_account_kubeconfig(
        cluster, "parent", cluster.parent_namespace, "nobody", tmp_path / "nobody.kubeconfig"
    )
    config = from_kubeconfig(kubeconfig)
    assert config.namespace == cluster.parent_namespace
    async with Client.from_config(config, "tenant-cloud-tests") as limited:
        # Authenticated as the ServiceAccount itself, not anonymous (a dropped token would look alike below).
        review = await limited.create(
            SELF_SUBJECT_REVIEWS, {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
        )
        assert review["status"]["userInfo"]["username"] == f"system:serviceaccount:{cluster.parent_namespace}:nobody"
        with pytest.raises(Forbidden) as denied:
            await limited.list(SECRETS, cluster.parent_namespace)
    assert "Bearer" not in str(denied.value) and "eyJ" not in str(denied.value)
