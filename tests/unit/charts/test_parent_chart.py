"""The parent chart: least privilege by default, every policy bound to the tenant's ServiceAccount only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e import helm
from tests.unit.charts.rbac import Grant, grants, rules

NAMESPACE = "tenant-acme"
USERNAME = "system:serviceaccount:tenant-acme:tenant-cloud-kubernetes"


def render(values_file: Path | None = None, **values: Any) -> list[dict[str, Any]]:
    return helm.template(
        helm.PARENT_CHART, namespace=NAMESPACE, value_files=[values_file] if values_file else [], values=values
    )


def role_grants(manifests: list[dict[str, Any]]) -> set[Grant]:
    return set(grants(rules(manifests, kinds=("Role",))))


def test_defaults_grant_no_cluster_scoped_access() -> None:
    manifests = render()
    assert not helm.find(manifests, "ClusterRole")
    assert not helm.find(manifests, "ClusterRoleBinding")
    role = helm.one(manifests, "Role")
    assert role["metadata"]["namespace"] == NAMESPACE


def test_the_role_grants_what_the_issue_names() -> None:
    granted = role_grants(render(ccm={"selectorless": True}))
    for expected in [
        Grant("subresources.kubevirt.io", "virtualmachines/addvolume", "update"),
        Grant("subresources.kubevirt.io", "virtualmachines/removevolume", "update"),
        Grant("subresources.kubevirt.io", "virtualmachineinstances/removevolume", "update"),
        Grant("discovery.k8s.io", "endpointslices", "create"),
        Grant("cdi.kubevirt.io", "datavolumes", "create"),
        Grant("", "persistentvolumeclaims", "patch"),
        Grant("snapshot.storage.k8s.io", "volumesnapshots", "list"),
        Grant("kubevirt.io", "virtualmachineinstances", "watch"),
        Grant("", "services", "update"),
    ]:
        assert expected in granted
    assert not any(g.resource in ("services", "endpointslices") and g.verb == "*" for g in granted)
    assert not any(g.resource in ("secrets", "pods", "configmaps") for g in granted)


def test_endpointslices_only_for_selectorless_load_balancers() -> None:
    assert not any(g.resource == "endpointslices" for g in role_grants(render()))
    assert not any("endpointslices" in m["metadata"]["name"] for m in helm.find(render(), "ValidatingAdmissionPolicy"))


def test_zone_from_parent_nodes_grants_only_node_reads() -> None:
    manifests = render(ccm={"zoneFromParentNodes": True})
    cluster_role = helm.one(manifests, "ClusterRole")
    assert set(grants(cluster_role["rules"])) == {Grant("", "nodes", v) for v in ("get", "list", "watch")}
    binding = helm.one(manifests, "ClusterRoleBinding")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "tenant-cloud-kubernetes", "namespace": NAMESPACE}
    ]


def test_claims_mode_swaps_datavolumes_for_claims() -> None:
    granted = role_grants(render(csi={"parentVolumeKind": "PersistentVolumeClaim"}))
    assert not any(g.group == "cdi.kubevirt.io" for g in granted)
    assert {Grant("", "persistentvolumeclaims", v) for v in ("create", "delete", "patch")} <= granted


def test_the_token_secret_belongs_to_the_service_account() -> None:
    manifests = render()
    account = helm.one(manifests, "ServiceAccount")
    secret = helm.one(manifests, "Secret")
    assert secret["type"] == "kubernetes.io/service-account-token"
    assert secret["metadata"]["annotations"]["kubernetes.io/service-account.name"] == account["metadata"]["name"]
    assert account["automountServiceAccountToken"] is False


def test_every_policy_applies_to_the_service_account_only_and_is_bound_to_deny() -> None:
    manifests = render(ccm={"selectorless": True})
    policies = helm.find(manifests, "ValidatingAdmissionPolicy")
    bindings = {b["spec"]["policyName"]: b for b in helm.find(manifests, "ValidatingAdmissionPolicyBinding")}
    assert len(policies) == 9
    for policy in policies:
        name = policy["metadata"]["name"]
        assert name.startswith(f"tenant-cloud.{NAMESPACE}.kubernetes.")
        assert policy["spec"]["failurePolicy"] == "Fail"
        assert policy["spec"]["matchConditions"] == [
            {"name": "tenant-service-account", "expression": f'request.userInfo.username == "{USERNAME}"'}
        ]
        assert bindings[name]["spec"]["validationActions"] == ["Deny"]
        for validation in policy["spec"]["validations"]:
            assert validation.get("message") or validation.get("messageExpression")


def test_policy_values_reach_the_cel() -> None:
    manifests = render(
        helm.PARENT_CHART / "ci" / "selectorless-values.yaml", policies={"storage": {"maxVolumeSize": "300Gi"}}
    )
    expressions = {
        p["metadata"]["name"].rsplit(".", 1)[1]: " ".join(v["expression"] for v in p["spec"]["validations"])
        for p in helm.find(manifests, "ValidatingAdmissionPolicy")
    }
    assert '["198.51.100.0/26","2001:db8:51::/120"]' in expressions["services"]
    assert '["io.cilium/bgp-control-plane"]' in expressions["services"]
    assert 'quantity("300Gi")' in expressions["datavolumes"]
    assert '["linstor-replicated"]' in expressions["datavolumes"]
    assert "system:serviceaccount:tenant-acme:beta-cloud" in str(helm.find(manifests, "ValidatingAdmissionPolicy"))


def test_the_foreign_service_policy_takes_every_service_not_of_this_cluster_as_params() -> None:
    binding = helm.one(
        render(ccm={"selectorless": True}),
        "ValidatingAdmissionPolicyBinding",
        f"tenant-cloud.{NAMESPACE}.kubernetes.endpointslices-foreign-services",
    )
    assert binding["spec"]["paramRef"] == {
        "namespace": NAMESPACE,
        "parameterNotFoundAction": "Allow",
        "selector": {
            "matchExpressions": [
                {"key": "cluster.x-k8s.io/cluster-name", "operator": "NotIn", "values": ["kubernetes"]}
            ]
        },
    }


PAIRS = sorted(p.name for p in helm.example_values(helm.TENANT_CHART))


@pytest.mark.parametrize("name", PAIRS)
def test_example_values_of_the_two_charts_agree(name: str) -> None:
    """The platform installs both; each example pair describes one tenant, configured the same way."""
    tenant = yaml.safe_load((helm.TENANT_CHART / "ci" / name).read_text())
    parent = yaml.safe_load((helm.PARENT_CHART / "ci" / name).read_text())
    assert tenant["clusterName"] == parent["clusterName"]
    lb = tenant.get("ccm", {}).get("loadBalancer", {})
    assert bool(lb.get("selectorless")) == bool(parent.get("ccm", {}).get("selectorless"))
    parent_node = tenant.get("ccm", {}).get("instancesV2", {}).get("topology", {}).get("source") == "parentNode"
    assert parent_node == bool(parent.get("ccm", {}).get("zoneFromParentNodes"))
    linstor = bool(tenant.get("csi", {}).get("linstor", {}).get("urls"))
    assert linstor == bool(parent.get("csi", {}).get("linstor"))
    storage = parent.get("policies", {}).get("storage", {})
    for storage_class in tenant.get("storageClasses", []):
        assert storage_class["parentStorageClass"] in storage.get("allowedStorageClasses", [])
    if lb.get("allowedIPRanges"):
        assert lb["allowedIPRanges"] == parent["policies"]["loadBalancer"]["allowedIPRanges"]
    if lb.get("loadBalancerClass"):
        assert lb["loadBalancerClass"] in parent["policies"]["loadBalancer"]["classes"]


def test_linstor_adds_reads_of_volumes_and_only_the_allowed_classes() -> None:
    storage = {"allowedStorageClasses": ["linstor-a", "linstor-b"], "allowDefaultStorageClass": False}
    manifests = render(csi={"linstor": True}, policies={"storage": storage})
    cluster_role = helm.one(manifests, "ClusterRole")
    assert cluster_role["rules"] == [
        {"apiGroups": [""], "resources": ["persistentvolumes"], "verbs": ["get"]},
        {
            "apiGroups": ["storage.k8s.io"],
            "resources": ["storageclasses"],
            "resourceNames": ["linstor-a", "linstor-b"],
            "verbs": ["get"],
        },
    ]
