"""What the tenant chart renders is what our processes accept, hardened as the issue asks."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from ccm import __main__ as ccm_main
from ccm.config import InstancesV2Config, NodeLifecycleConfig, TopologyConfig, parse_cloud_config
from csi import __main__ as csi_main
from csi.config import Enforcement, SnapshotMapping
from csi.linstor.flags import linstor_settings_from
from e2e import helm
from lb.config import LoadBalancerConfig

NAMESPACE = "kube-system"
EXAMPLES = helm.example_values(helm.TENANT_CHART)
ALL = [None, *EXAMPLES]


def render(values_file: Path | None = None, **values: Any) -> list[dict[str, Any]]:
    return helm.template(
        helm.TENANT_CHART, namespace=NAMESPACE, value_files=[values_file] if values_file else [], values=values
    )


def example(name: str) -> Path:
    return helm.TENANT_CHART / "ci" / f"{name}-values.yaml"


def _id(path: Path | None) -> str:
    return path.name.removesuffix("-values.yaml") if path else "defaults"


def container(workload: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in workload["spec"]["template"]["spec"]["containers"] if c["name"] == name)


def workloads(manifests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in manifests if m["kind"] in ("Deployment", "DaemonSet")]


def ccm(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    return helm.one(manifests, "Deployment", "tenant-cloud-ccm")


def controller(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    return helm.one(manifests, "Deployment", "tenant-cloud-csi-controller")


def node(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    return helm.one(manifests, "DaemonSet", "tenant-cloud-csi-node")


def data(manifests: list[dict[str, Any]], configmap: str, key: str) -> Any:
    return yaml.safe_load(helm.one(manifests, "ConfigMap", configmap)["data"][key])


# -- our processes accept what is rendered -----------------------------------------------------------------


@pytest.mark.parametrize("values_file", ALL, ids=_id)
def test_the_cloud_config_is_accepted_by_the_ccm(values_file: Path | None) -> None:
    manifests = render(values_file)
    text = helm.one(manifests, "ConfigMap", "tenant-cloud-ccm")["data"]["cloud-config.yaml"]
    config = parse_cloud_config(text)
    values = yaml.safe_load(values_file.read_text()) if values_file else {}
    assert config.kubeconfig == "/etc/tenant-cloud/parent/kubeconfig"
    assert config.namespace == values.get("parentNamespace", "tenant-kubernetes")


@pytest.mark.parametrize("values_file", ALL, ids=_id)
def test_the_ccm_flags_are_the_ccm_s_own(values_file: Path | None) -> None:
    manifests = render(values_file)
    main = container(ccm(manifests), "ccm")
    assert main["command"] == ["tenant-cloud-ccm"]
    args = ccm_main.build_parser().parse_args(main["args"])
    assert args.leader_elect is True
    assert args.cloud_config == "/etc/tenant-cloud/config/cloud-config.yaml"
    values = yaml.safe_load(values_file.read_text()) if values_file else {}
    assert args.cluster_name == values.get("clusterName", "kubernetes")


@pytest.mark.parametrize("values_file", ALL, ids=_id)
def test_the_csi_flags_are_the_driver_s_own(values_file: Path | None) -> None:
    manifests = render(values_file)
    values = yaml.safe_load(values_file.read_text()) if values_file else {}
    cluster = values.get("clusterName", "kubernetes")
    for workload, expect_controller in ((controller(manifests), True), (node(manifests), False)):
        driver = container(workload, "csi-driver")
        args = csi_main.build_parser().parse_args(driver["args"])
        assert args.run_controller_service is expect_controller
        assert args.run_node_service is not expect_controller
        assert args.infra_cluster_namespace == values.get("parentNamespace", f"tenant-{cluster}")
        if expect_controller:
            assert args.infra_cluster_labels["cluster.x-k8s.io/cluster-name"] == cluster
            assert args.vm_labels == {"cluster.x-k8s.io/cluster-name": cluster}
            assert args.infra_cluster_kubeconfig == "/etc/tenant-cloud/parent/kubeconfig"
        else:
            assert args.infra_cluster_kubeconfig == ""  # the node plugin holds no parent credentials


@pytest.mark.parametrize("values_file", ALL, ids=_id)
def test_the_enforcement_allows_exactly_the_classes_the_tenant_has(values_file: Path | None) -> None:
    manifests = render(values_file)
    enforcement = Enforcement.model_validate(data(manifests, "tenant-cloud-csi", "enforcement.yaml"))
    values = yaml.safe_load(values_file.read_text()) if values_file else {}
    classes = values.get("storageClasses", [{"parentStorageClass": ""}])
    assert not enforcement.allow_all
    for storage_class in classes:
        assert enforcement.allows(storage_class.get("parentStorageClass", ""))
    assert not enforcement.allows("someone-elses-class")
    assert enforcement.allow_default == any(not c.get("parentStorageClass") for c in classes)


def _seconds(args: list[str], flag: str) -> int:
    value = next(a for a in args if a.startswith(f"--{flag}="))
    match = re.fullmatch(rf"--{flag}=(\d+)s", value)
    assert match, value
    return int(match.group(1))


@pytest.mark.parametrize("values_file", ALL, ids=_id)
def test_each_sidecar_waits_longer_than_the_driver(values_file: Path | None) -> None:
    deployment = controller(render(values_file))
    driver = container(deployment, "csi-driver")["args"]
    attach, provision = _seconds(driver, "attach-timeout"), _seconds(driver, "provision-timeout")
    assert _seconds(container(deployment, "csi-attacher")["args"], "timeout") > attach
    for sidecar in ("csi-provisioner", "csi-resizer", "csi-snapshotter"):
        assert _seconds(container(deployment, sidecar)["args"], "timeout") > provision
    for sidecar in ("csi-provisioner", "csi-attacher", "csi-resizer", "csi-snapshotter"):
        assert "--leader-election" in container(deployment, sidecar)["args"]


# -- hardening -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("values_file", ALL, ids=_id)
def test_only_the_node_plugin_is_privileged(values_file: Path | None) -> None:
    for workload in workloads(render(values_file)):
        pod = workload["spec"]["template"]["spec"]
        for c in pod["containers"]:
            context = c.get("securityContext") or {}
            privileged = workload["kind"] == "DaemonSet" and c["name"] == "csi-driver"
            assert context.get("privileged", False) is privileged, c["name"]
            assert context.get("readOnlyRootFilesystem") is True, c["name"]
            if not privileged:
                assert context.get("allowPrivilegeEscalation") is False, c["name"]
                assert context["capabilities"]["drop"] == ["ALL"], c["name"]
            if workload["kind"] == "Deployment":
                assert pod["securityContext"]["runAsNonRoot"] is True
                assert context.get("runAsNonRoot") is True, c["name"]


def test_the_ccm_is_highly_available_and_schedulable_before_nodes_are_initialised() -> None:
    manifests = render()
    deployment = ccm(manifests)
    pod = deployment["spec"]["template"]["spec"]
    assert deployment["spec"]["replicas"] == 2
    assert pod["priorityClassName"] == "system-cluster-critical"
    keys = {t["key"] for t in pod["tolerations"]}
    assert {"node.cloudprovider.kubernetes.io/uninitialized", "node-role.kubernetes.io/control-plane"} <= keys
    budget = helm.one(manifests, "PodDisruptionBudget", "tenant-cloud-ccm")
    assert budget["spec"]["selector"]["matchLabels"] == deployment["spec"]["selector"]["matchLabels"]
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"


def test_the_node_plugin_mounts_what_it_needs_and_no_parent_kubeconfig() -> None:
    daemonset = node(render())
    pod = daemonset["spec"]["template"]["spec"]
    paths = {v["name"]: v.get("hostPath", {}).get("path") for v in pod["volumes"]}
    assert paths["kubelet-dir"] == "/var/lib/kubelet"
    assert paths["device-dir"] == "/dev"
    assert paths["udev-dir"] == "/run/udev"
    assert paths["registration-dir"] == "/var/lib/kubelet/plugins_registry"
    assert paths["plugin-dir"] == "/var/lib/kubelet/plugins/csi.tenant-cloud.io"
    mounts = {m["name"]: m for m in container(daemonset, "csi-driver")["volumeMounts"]}
    assert mounts["kubelet-dir"]["mountPropagation"] == "Bidirectional"
    assert "parent-kubeconfig" not in paths
    registrar = container(daemonset, "node-driver-registrar")["args"]
    assert "--kubelet-registration-path=/var/lib/kubelet/plugins/csi.tenant-cloud.io/csi.sock" in registrar


def test_the_parent_kubeconfig_secret_name_and_key_are_configurable() -> None:
    manifests = render(example("least-privilege"))
    for workload in (ccm(manifests), controller(manifests)):
        volume = next(v for v in workload["spec"]["template"]["spec"]["volumes"] if v["name"] == "parent-kubeconfig")
        assert volume["secret"]["secretName"] == "acme-parent-kubeconfig"
        assert volume["secret"]["items"] == [{"key": "value", "path": "kubeconfig"}]


def test_image_overrides_reach_every_container() -> None:
    manifests = render(example("least-privilege"))
    for workload in workloads(manifests):
        pod = workload["spec"]["template"]["spec"]
        assert pod["imagePullSecrets"] == [{"name": "platform-registry"}]
        for c in pod["containers"]:
            assert c["image"].startswith("registry.platform.example/"), c["image"]
            assert c["imagePullPolicy"] == "Always"
    assert container(ccm(manifests), "ccm")["image"] == "registry.platform.example/mirror/tenant-cloud:0.1.0"
    node_image = container(node(manifests), "csi-driver")["image"]
    assert node_image == "registry.platform.example/mirror/tenant-cloud-node:0.1.0"


def test_sidecars_are_pinned() -> None:
    for workload in workloads(render()):
        for c in workload["spec"]["template"]["spec"]["containers"]:
            assert re.fullmatch(r"[^:]+:v\d+\.\d+\.\d+|ghcr\.io/.+:\d+\.\d+\.\d+", c["image"]), c["image"]


def test_config_changes_roll_the_pods() -> None:
    before = ccm(render())["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
    changed = render(ccm={"nodeLifecycle": {"deleteGracePeriod": 90}})
    assert ccm(changed)["spec"]["template"]["metadata"]["annotations"]["checksum/config"] != before


# -- storage ---------------------------------------------------------------------------------------------


def test_storage_classes_come_from_values() -> None:
    manifests = render(example("linstor-classes"))
    classes = {m["metadata"]["name"]: m for m in helm.find(manifests, "StorageClass")}
    assert sorted(classes) == ["local-retain", "replicated", "replicated-xfs"]
    defaults = [
        n
        for n, c in classes.items()
        if c["metadata"]["annotations"]["storageclass.kubernetes.io/is-default-class"] == "true"
    ]
    assert defaults == ["replicated"]
    assert classes["replicated"]["parameters"] == {"infraStorageClassName": "linstor-replicated", "bus": "scsi"}
    assert classes["replicated-xfs"]["parameters"]["csi.storage.k8s.io/fstype"] == "xfs"
    local = classes["local-retain"]
    assert local["reclaimPolicy"] == "Retain"
    assert local["allowVolumeExpansion"] is False
    assert local["volumeBindingMode"] == "WaitForFirstConsumer"
    assert local["parameters"]["bus"] == "virtio"
    assert local["mountOptions"] == ["noatime"]
    assert all(c["provisioner"] == "csi.tenant-cloud.io" for c in classes.values())
    snapshot_class = helm.one(manifests, "VolumeSnapshotClass", "linstor")
    assert snapshot_class["deletionPolicy"] == "Retain"
    mapping = Enforcement.model_validate(data(manifests, "tenant-cloud-csi", "enforcement.yaml"))
    assert mapping.snapshot_class_for("linstor-replicated-xfs") == "linstor-snapshots"


def test_the_csi_driver_object_matches_what_the_driver_does() -> None:
    spec = helm.one(render(), "CSIDriver", "csi.tenant-cloud.io")["spec"]
    assert spec["attachRequired"] is True
    assert spec["fsGroupPolicy"] == "ReadWriteOnceWithFSType"
    assert spec["volumeLifecycleModes"] == ["Persistent"]


# -- the schema keeps step with the configuration models -------------------------------------------------


def _aliases(model: Any) -> set[str]:
    return {field.alias or name for name, field in model.model_fields.items()}


def _schema() -> dict[str, Any]:
    import json

    schema: dict[str, Any] = json.loads((helm.TENANT_CHART / "values.schema.json").read_text())
    return schema


@pytest.mark.parametrize(
    ("path", "model"),
    [
        (("ccm", "loadBalancer"), LoadBalancerConfig),
        (("ccm", "instancesV2"), InstancesV2Config),
        (("ccm", "instancesV2", "topology"), TopologyConfig),
        (("ccm", "nodeLifecycle"), NodeLifecycleConfig),
        (("csi", "enforcement"), Enforcement),
    ],
    ids=lambda v: ".".join(v) if isinstance(v, tuple) else v.__name__,
)
def test_the_schema_accepts_exactly_the_keys_the_model_does(path: tuple[str, ...], model: Any) -> None:
    node = _schema()
    for key in path:
        node = node["properties"][key]
    assert set(node["properties"]) == _aliases(model)
    assert node["additionalProperties"] is False


def test_the_snapshot_mapping_schema_matches_the_model() -> None:
    items = _schema()["properties"]["csi"]["properties"]["enforcement"]["properties"]["storageSnapshotMapping"]
    assert set(items["items"]["properties"]) == _aliases(SnapshotMapping)


def test_linstor_is_off_by_default_and_wired_when_asked_for() -> None:
    driver = container(controller(render()), "csi-driver")
    assert linstor_settings_from(csi_main.build_parser().parse_args(driver["args"])) is None
    linstor = {"urls": ["linstor-proxy.platform.example"], "clientSecret": "linstor-client", "cacheTTL": "1m"}
    deployment = controller(render(csi={"linstor": linstor}))
    args = csi_main.build_parser().parse_args(container(deployment, "csi-driver")["args"])
    settings = linstor_settings_from(args)
    assert settings is not None and settings.health_ttl == 60.0
    assert args.linstor_client_cert == "/etc/linstor/client/tls.crt"
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["linstor-client"]["secret"]["secretName"] == "linstor-client"
