"""Property: any valid tenant Service translates to a parent Service the real apiserver accepts, and the
translation never carries what the allow-lists forbid."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from hypothesis import HealthCheck, given, reject, settings

from e2e import cluster as harness
from kube.client import Client
from kube.errors import Invalid
from kube.resources import SERVICES
from lb.config import LoadBalancerConfig
from lb.translate import CILIUM_IPS_ANNOTATION, Scope, parent_service_for
from tests.integration.lb.strategies import tenant_services

ALLOWED_RANGE = ipaddress.ip_network("198.51.100.128/25")
CONFIG = LoadBalancerConfig.model_validate(
    {
        "annotationAllowList": ["example.com/*", "metallb.universe.tf/*"],
        "allowIPRequests": True,
        "allowedIPRanges": [str(ALLOWED_RANGE)],
        "infraAnnotations": {"platform.example/tier": "tenant"},
        "loadBalancerClass": "io.cilium/l2-announcer",
    }
)
DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tenant=tenant_services())
async def test_parent_service_is_valid_and_carries_nothing_forbidden(
    tenant: dict[str, Any], tenant_client: Client, parent_client: Client, cluster: harness.Cluster
) -> None:
    try:
        # The tenant apiserver decides what a valid tenant Service is, and fills in nodePorts and families.
        defaulted = await tenant_client.create(SERVICES, tenant, "default", dry_run=True)
    except Invalid:
        reject()
    defaulted["metadata"].setdefault("uid", "0b3c9f0e-5d8a-4b7e-9c1d-2f6a7b8c9d0e")
    scope = Scope("prop", cluster.parent_namespace, "cluster.x-k8s.io/cluster-name", CONFIG)
    parent = parent_service_for(defaulted, scope).service
    name = parent["metadata"]["name"]
    assert len(name) <= 63 and DNS_LABEL.match(name)
    accepted = await parent_client.create(SERVICES, parent, cluster.parent_namespace, dry_run=True)
    assert accepted["metadata"]["name"] == name
    assert "externalIPs" not in parent["spec"] and "loadBalancerIP" not in parent["spec"]
    for key in parent["metadata"]["annotations"]:
        assert key in CONFIG.infra_annotations or key == CILIUM_IPS_ANNOTATION or CONFIG.annotation_allowed(key)
        assert key != "lbipam.cilium.io/sharing-cross-namespace"
    requested = parent["metadata"]["annotations"].get(CILIUM_IPS_ANNOTATION)
    if requested:
        assert all(ipaddress.ip_address(ip) in ALLOWED_RANGE for ip in requested.split(","))
