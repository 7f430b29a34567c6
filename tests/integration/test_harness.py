"""The harness runs real control planes: CRUD, watch, CRDs with /status, RBAC and apiserver restarts."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from e2e import cluster as harness
from e2e.binaries import KUBERNETES_VERSION
from e2e.cluster import controlplane
from e2e.cluster.identities import service_account_kubeconfig

PLANES = ("parent", "tenant")


def api_client(kubeconfig: Path) -> client.ApiClient:
    api: client.ApiClient = config.new_client_from_config(config_file=str(kubeconfig))
    return api


@pytest.fixture(params=PLANES)
def plane(request: pytest.FixtureRequest, cluster: harness.Cluster) -> Iterator[tuple[str, client.ApiClient]]:
    with api_client(cluster.plane(request.param).kubeconfig) as api:
        yield request.param, api


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_version_is_the_pinned_release(plane: tuple[str, client.ApiClient]) -> None:
    _, api = plane
    info = client.VersionApi(api).get_code()
    assert info.git_version == KUBERNETES_VERSION
    assert info.major == "1"
    assert info.minor == KUBERNETES_VERSION.split(".")[1]


def test_create_list_watch_delete(plane: tuple[str, client.ApiClient]) -> None:
    _, api = plane
    core = client.CoreV1Api(api)
    name = unique("cm")
    start_rv = core.list_namespaced_config_map("default").metadata.resource_version
    seen: list[tuple[str, str]] = []

    def collect() -> None:
        stream = watch.Watch().stream(
            core.list_namespaced_config_map,
            "default",
            resource_version=start_rv,
            timeout_seconds=10,
            field_selector=f"metadata.name={name}",
        )
        for event in stream:
            seen.append((event["type"], event["object"].metadata.name))
            if event["type"] == "DELETED":
                return

    watcher = threading.Thread(target=collect)
    watcher.start()
    core.create_namespaced_config_map("default", client.V1ConfigMap(metadata={"name": name}, data={"k": "v"}))
    listed = [cm.metadata.name for cm in core.list_namespaced_config_map("default").items]
    assert name in listed
    core.delete_namespaced_config_map(name, "default")
    watcher.join(timeout=15)
    assert seen == [("ADDED", name), ("DELETED", name)]
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_config_map(name, "default")
    assert missing.value.status == 404


def test_parent_has_namespace_and_third_party_crds(cluster: harness.Cluster) -> None:
    with api_client(cluster.parent_kubeconfig) as api:
        client.CoreV1Api(api).read_namespace(cluster.parent_namespace)
        crds = {crd.metadata.name for crd in client.ApiextensionsV1Api(api).list_custom_resource_definition().items}
    assert {
        "virtualmachines.kubevirt.io",
        "virtualmachineinstances.kubevirt.io",
        "datavolumes.cdi.kubevirt.io",
        "ciliumloadbalancerippools.cilium.io",
        "ciliumnetworkpolicies.cilium.io",
        "ciliuml2announcementpolicies.cilium.io",
        "volumesnapshots.snapshot.storage.k8s.io",
        "volumesnapshotclasses.snapshot.storage.k8s.io",
        "volumesnapshotcontents.snapshot.storage.k8s.io",
    } <= crds


def test_tenant_has_only_snapshot_crds(cluster: harness.Cluster) -> None:
    with api_client(cluster.tenant_kubeconfig) as api:
        crds = {crd.metadata.name for crd in client.ApiextensionsV1Api(api).list_custom_resource_definition().items}
    assert crds == {
        "volumesnapshots.snapshot.storage.k8s.io",
        "volumesnapshotclasses.snapshot.storage.k8s.io",
        "volumesnapshotcontents.snapshot.storage.k8s.io",
    }


def test_vmi_status_is_a_separate_subresource(cluster: harness.Cluster) -> None:
    ns = cluster.parent_namespace
    name = unique("vmi")
    body = {
        "apiVersion": "kubevirt.io/v1",
        "kind": "VirtualMachineInstance",
        "metadata": {"name": name, "labels": {"cluster.x-k8s.io/cluster-name": cluster.cluster_name}},
        "spec": {"domain": {"devices": {}}, "hostname": name, "someFutureField": {"kept": True}},
        "status": {"phase": "Running"},
    }
    with api_client(cluster.parent_kubeconfig) as api:
        objects = client.CustomObjectsApi(api)
        args = ("kubevirt.io", "v1", ns, "virtualmachineinstances")
        created = objects.create_namespaced_custom_object(*args, body)
        # Status sent with the main resource is dropped, as for every CRD with a status subresource.
        assert "status" not in created or not created["status"].get("phase")
        assert created["spec"]["someFutureField"] == {"kept": True}
        status = {
            "phase": "Running",
            "nodeName": "parent-node-1",
            "interfaces": [{"name": "default", "ipAddress": "10.0.0.5", "ipAddresses": ["10.0.0.5", "fd00::5"]}],
        }
        patched = objects.patch_namespaced_custom_object_status(*args, name, {"status": status})
        assert patched["status"]["interfaces"][0]["ipAddresses"] == ["10.0.0.5", "fd00::5"]
        assert patched["metadata"]["generation"] == created["metadata"]["generation"]
        # A spec write through the main resource leaves status alone.
        updated = objects.patch_namespaced_custom_object(
            *args, name, {"spec": {"hostname": "renamed"}, "status": {"phase": "Failed"}}
        )
        assert updated["spec"]["hostname"] == "renamed"
        assert updated["status"]["phase"] == "Running"
        objects.delete_namespaced_custom_object(*args, name)


def test_service_account_is_confined_by_rbac(cluster: harness.Cluster, tmp_path: Path) -> None:
    ns = cluster.parent_namespace
    kubeconfig = service_account_kubeconfig(cluster, "parent", ns, "limited", tmp_path / "limited.kubeconfig")
    role = f"""
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {{name: read-configmaps, namespace: {ns}}}
rules: [{{apiGroups: [""], resources: [configmaps], verbs: [get, list]}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {{name: limited-read-configmaps, namespace: {ns}}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: read-configmaps}}
subjects: [{{kind: ServiceAccount, name: limited, namespace: {ns}}}]
"""
    cluster.kubectl_run("parent", "apply", "--server-side", "--field-manager=test", "-f", "-", stdin=role)
    with api_client(kubeconfig) as api:
        core = client.CoreV1Api(api)
        assert isinstance(core.list_namespaced_config_map(ns).items, list)
        for forbidden in (
            partial(core.list_namespaced_secret, ns),
            partial(core.list_namespaced_config_map, "default"),
            partial(core.create_namespaced_config_map, ns, client.V1ConfigMap(metadata={"name": "nope"})),
        ):
            with pytest.raises(ApiException) as denied:
                forbidden()
            assert denied.value.status == 403


def test_restart_apiserver_keeps_data(cluster: harness.Cluster) -> None:
    name = unique("survivor")
    with api_client(cluster.parent_kubeconfig) as api:
        client.CoreV1Api(api).create_namespaced_config_map(
            cluster.parent_namespace, client.V1ConfigMap(metadata={"name": name}, data={"k": "v"})
        )
    old_pid = harness.load(cluster.dir).parent.apiserver_pid
    restarted = harness.restart_apiserver(cluster.dir, "parent", down_for=1)
    assert restarted.parent.apiserver_pid != old_pid
    assert restarted.parent.apiserver_port == cluster.parent.apiserver_port
    with api_client(cluster.parent_kubeconfig) as api:
        kept = client.CoreV1Api(api).read_namespaced_config_map(name, cluster.parent_namespace)
    assert kept.data == {"k": "v"}


def test_a_process_started_through_a_stale_cluster_keeps_the_restarted_apiserver(cluster: harness.Cluster) -> None:
    stale = harness.load(cluster.dir)
    restarted = harness.restart_apiserver(cluster.dir, "parent")
    sleeper = harness.start_process(stale, unique("sleeper"), ["sleep", "300"])
    try:
        on_disk = harness.load(cluster.dir)
        assert on_disk.parent.apiserver_pid == restarted.parent.apiserver_pid
        assert stale.parent.apiserver_pid == restarted.parent.apiserver_pid
        assert sleeper.pid in {p.pid for p in on_disk.processes}
    finally:
        controlplane.stop_process(sleeper.pid, "sleep")
        harness.update_processes(stale, lambda processes: [p for p in processes if p.pid != sleeper.pid])
    assert sleeper.pid not in {p.pid for p in harness.load(cluster.dir).processes}
