"""Tenant Service -> parent Service: what is copied, what never is, and when an update is due."""

from __future__ import annotations

from typing import Any

import pytest

from lb.config import LoadBalancerConfig
from lb.translate import (
    CILIUM_IPS_ANNOTATION,
    FINALIZER,
    Scope,
    merged_for_update,
    parent_service_for,
    parent_service_name,
    qualifies,
    service_differs,
    tenant_status_for,
)


def tenant_service(**spec: Any) -> dict[str, Any]:
    annotations = spec.pop("annotations", {})
    return {
        "metadata": {
            "name": "web",
            "namespace": "shop",
            "uid": "3f2c1b7a-1111-2222-3333-444455556666",
            "annotations": annotations,
            "finalizers": [FINALIZER],
        },
        "spec": {
            "type": "LoadBalancer",
            "ports": [
                {"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080, "nodePort": 30080},
                {"name": "dns", "protocol": "UDP", "port": 53, "nodePort": 30053},
            ],
            "ipFamilies": ["IPv4"],
            "ipFamilyPolicy": "SingleStack",
            "externalIPs": ["1.2.3.4"],
            "healthCheckNodePort": 32000,
            **spec,
        },
    }


def scope(**config: Any) -> Scope:
    return Scope(
        "acme",
        "tenant-acme",
        "cluster.x-k8s.io/cluster-name",
        LoadBalancerConfig.model_validate(config),
        {"team": "platform"},
    )


def test_name_is_kubevirt_ccm_compatible() -> None:
    assert parent_service_name(tenant_service()) == "a3f2c1b7a111122223333444455556666"[:32]
    assert len(parent_service_name(tenant_service())) == 32


def test_copies_only_what_rules_allow() -> None:
    svc = parent_service_for(tenant_service(annotations={"secret.example/x": "y"}), scope()).service
    spec = svc["spec"]
    assert spec["ports"] == [
        {"name": "http", "protocol": "TCP", "port": 80, "targetPort": 30080},
        {"name": "dns", "protocol": "UDP", "port": 53, "targetPort": 30053},
    ]
    assert spec["allocateLoadBalancerNodePorts"] is False
    assert "externalIPs" not in spec and "healthCheckNodePort" not in spec
    assert spec["selector"] == {"cluster.x-k8s.io/role": "worker", "cluster.x-k8s.io/cluster-name": "acme"}
    assert svc["metadata"]["annotations"] == {}
    assert svc["metadata"]["labels"] == {
        "team": "platform",
        "cluster.x-k8s.io/cluster-name": "acme",
        "cluster.x-k8s.io/tenant-service-name": "web",
        "cluster.x-k8s.io/tenant-service-namespace": "shop",
        "app.kubernetes.io/managed-by": "tenant-cloud-ccm",
    }


def test_allow_list_globs_and_never_copied_keys() -> None:
    tenant = tenant_service(
        annotations={
            "example.com/a": "1",
            "example.com/b": "2",
            "other.io/c": "3",
            "lbipam.cilium.io/sharing-cross-namespace": "*",
            CILIUM_IPS_ANNOTATION: "10.9.9.9",
        }
    )
    config = {"annotationAllowList": ["example.com/*", "lbipam.cilium.io/*"], "infraAnnotations": {"infra": "x"}}
    translation = parent_service_for(tenant, scope(**config))
    assert translation.service["metadata"]["annotations"] == {"infra": "x", "example.com/a": "1", "example.com/b": "2"}
    assert [r for r, _ in translation.warnings] == ["IPRequestIgnored"]


def test_the_platform_s_annotations_win_over_the_tenant_s() -> None:
    tenant = tenant_service(annotations={"lbipam.cilium.io/sharing-key": "share-with-another-tenant"})
    config = {
        "annotationAllowList": ["lbipam.cilium.io/*"],
        "infraAnnotations": {"lbipam.cilium.io/sharing-key": "acme"},
    }
    annotations = parent_service_for(tenant, scope(**config)).service["metadata"]["annotations"]
    assert annotations == {"lbipam.cilium.io/sharing-key": "acme"}


@pytest.mark.parametrize(
    ("config", "requested", "expected", "warned"),
    [
        ({}, "10.0.0.10", None, True),
        ({"allowIPRequests": True, "allowedIPRanges": ["10.0.0.0/24"]}, "10.0.0.10", "10.0.0.10", False),
        ({"allowIPRequests": True, "allowedIPRanges": ["10.0.0.0/24"]}, "10.0.1.10", None, True),
        (
            {"allowIPRequests": True, "allowedIPRanges": ["10.0.0.0/24", "fd00::/64"]},
            "10.0.0.1,fd00::1",
            "10.0.0.1,fd00::1",
            False,
        ),
        ({"allowIPRequests": True, "allowedIPRanges": ["10.0.0.0/24"]}, "10.0.0.1,fd00::1", None, True),
    ],
)
def test_ip_requests(config: dict[str, Any], requested: str, expected: str | None, warned: bool) -> None:
    tenant = tenant_service(annotations={CILIUM_IPS_ANNOTATION: requested})
    translation = parent_service_for(tenant, scope(**config))
    assert translation.service["metadata"]["annotations"].get(CILIUM_IPS_ANNOTATION) == expected
    assert ("IPRequestIgnored" in [r for r, _ in translation.warnings]) is warned
    assert "loadBalancerIP" not in translation.service["spec"]


def test_spec_load_balancer_ip_is_a_request_too() -> None:
    config = {"allowIPRequests": True, "allowedIPRanges": ["192.0.2.0/24"]}
    translation = parent_service_for(tenant_service(loadBalancerIP="192.0.2.7"), scope(**config))
    assert translation.service["metadata"]["annotations"][CILIUM_IPS_ANNOTATION] == "192.0.2.7"


def test_policy_affinity_families_source_ranges_and_class() -> None:
    tenant = tenant_service(
        externalTrafficPolicy="Local",
        sessionAffinity="ClientIP",
        sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}},
        ipFamilies=["IPv6", "IPv4"],
        ipFamilyPolicy="RequireDualStack",
        annotations={"service.beta.kubernetes.io/load-balancer-source-ranges": "10.0.0.0/8, bogus,fd00::/8"},
    )
    translation = parent_service_for(tenant, scope(loadBalancerClass="io.cilium/l2-announcer", selectorless=True))
    spec = translation.service["spec"]
    assert spec["externalTrafficPolicy"] == "Local"
    assert spec["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 60}}
    assert (spec["ipFamilies"], spec["ipFamilyPolicy"]) == (["IPv6", "IPv4"], "RequireDualStack")
    assert spec["loadBalancerSourceRanges"] == ["10.0.0.0/8", "fd00::/8"]
    assert spec["loadBalancerClass"] == "io.cilium/l2-announcer"
    assert "selector" not in spec
    assert [r for r, _ in translation.warnings] == ["InvalidSourceRange"]


def test_spec_source_ranges_win_over_the_annotation() -> None:
    tenant = tenant_service(
        loadBalancerSourceRanges=["192.0.2.0/24"],
        annotations={"service.beta.kubernetes.io/load-balancer-source-ranges": "10.0.0.0/8"},
    )
    assert parent_service_for(tenant, scope()).service["spec"]["loadBalancerSourceRanges"] == ["192.0.2.0/24"]


def test_ports_without_node_port_are_skipped_with_a_warning() -> None:
    tenant = tenant_service(ports=[{"port": 80, "protocol": "TCP"}, {"port": 81, "protocol": "TCP", "nodePort": 31081}])
    translation = parent_service_for(tenant, scope())
    assert translation.service["spec"]["ports"] == [{"protocol": "TCP", "port": 81, "targetPort": 31081}]
    assert [r for r, _ in translation.warnings] == ["NoNodePort"]


@pytest.mark.parametrize(
    ("spec", "tenant_classes", "expected"),
    [
        ({"type": "LoadBalancer"}, [], True),
        ({"type": "ClusterIP"}, [], False),
        ({"type": "LoadBalancer", "loadBalancerClass": "example.com/other"}, [], False),
        ({"type": "LoadBalancer", "loadBalancerClass": "example.com/ours"}, ["example.com/ours"], True),
    ],
)
def test_qualifies(spec: dict[str, Any], tenant_classes: list[str], expected: bool) -> None:
    config = LoadBalancerConfig.model_validate({"tenantLoadBalancerClasses": tenant_classes})
    assert qualifies({"spec": spec}, config) is expected


def test_no_update_when_the_parent_already_matches() -> None:
    desired = parent_service_for(tenant_service(), scope()).service
    live = {
        "metadata": {**desired["metadata"], "uid": "u", "resourceVersion": "7"},
        "spec": {
            **desired["spec"],
            "clusterIP": "10.96.0.9",
            "internalTrafficPolicy": "Cluster",
            "ports": [{**p, "nodePort": None} for p in desired["spec"]["ports"]],
        },
    }
    assert not service_differs(live, desired)
    changed = parent_service_for(tenant_service(externalTrafficPolicy="Local"), scope()).service
    assert service_differs(live, changed)
    merged = merged_for_update(live, changed)
    assert merged["spec"]["clusterIP"] == "10.96.0.9"
    assert merged["spec"]["externalTrafficPolicy"] == "Local"
    assert merged["metadata"]["resourceVersion"] == "7"


def test_adopted_kubevirt_ccm_service_gets_its_copied_annotations_stripped() -> None:
    desired = parent_service_for(tenant_service(), scope()).service
    adopted = {
        "metadata": {**desired["metadata"], "annotations": {"copied.by/kubevirt-ccm": "x"}},
        "spec": desired["spec"],
    }
    assert service_differs(adopted, desired)


def test_tenant_status_copies_ingress() -> None:
    parent = {"status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1", "ipMode": "VIP", "extra": 1}]}}}
    assert tenant_status_for(parent) == {"ingress": [{"ip": "192.0.2.1", "ipMode": "VIP"}]}
    assert tenant_status_for(None) == {}
