"""What the hostile-input and isolation tests share: another tenant cluster's parent objects (which nothing we
run may change), and our ccm as a real process with a permissive load-balancer config (so the allow-lists, not
a closed door, are what keeps tenant data out of the parent)."""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, settings

from e2e import cluster as harness
from kube.client import Client, Object
from kube.errors import AlreadyExists, NotFound
from kube.resources import ENDPOINTSLICES, NAMESPACES, SERVICES, Resource
from lb.translate import MANAGED_BY, MANAGED_BY_LABEL, TENANT_NAME_LABEL, TENANT_NAMESPACE_LABEL
from tests.integration.ccm_runner import eventually
from tests.integration.charts.conftest import as_tenant, parent_release, sa_kubeconfig  # noqa: F401 - fixtures
from tests.integration.csi.conftest import parent_storage  # noqa: F401 - a fixture the CSI tests here use too
from tests.integration.lb.conftest import POOL_V4, POOL_V6, POOLS, make_pool
from tests.integration.security.processes import Running, leading, running

# CI runs a fixed, small set of examples; TENANT_CLOUD_HOSTILE_EXAMPLES=N explores N random ones per test instead
# (a failure prints the seed and the example).
EXPLORE = os.environ.get("TENANT_CLOUD_HOSTILE_EXAMPLES")


def hostile_settings(ci_examples: int) -> settings:
    return settings(
        max_examples=int(EXPLORE) if EXPLORE else ci_examples,
        deadline=None,
        derandomize=not EXPLORE,
        print_blob=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
    )


CLUSTER_LABEL = "cluster.x-k8s.io/cluster-name"
OTHER_CLUSTER = "other"
# Every hostile tenant Service lives here: 63 characters, the longest namespace name there is. New for each run:
# without a kube-controller-manager in the harness, a deleted namespace stays Terminating.
HOSTILE_NAMESPACE = f"hostile-{uuid.uuid4().hex[:8]}-" + "n" * 46
# The tenant Service name other clusters' parent objects point at too; the generators pick it often.
SHARED_NAME = "web"
ALLOWED_RANGES = ["198.51.100.128/25", "fd00:198:51::8000/113"]
INFRA_LABELS = {"platform.example/tenant": "test-tenant"}
# One inside an allow-listed glob: the platform's value must win over a tenant annotation of the same key.
INFRA_ANNOTATIONS = {"platform.example/tier": "tenant", "example.com/platform-tier": "tenant"}
ANNOTATION_ALLOW_LIST = ["example.com/*", "lbipam.cilium.io/*", "service.beta.kubernetes.io/*"]
TENANT_CLASS = "example.com/ours"
PARENT_CLASS = "io.cilium/l2-announcer"
HOSTILE_LB_CONFIG: dict[str, Any] = {
    "infraLabels": INFRA_LABELS,
    "loadBalancer": {
        "selectorless": True,
        "loadBalancerClass": PARENT_CLASS,
        "tenantLoadBalancerClasses": [TENANT_CLASS],
        "annotationAllowList": ANNOTATION_ALLOW_LIST,
        "allowIPRequests": True,
        "allowedIPRanges": ALLOWED_RANGES,
        "infraAnnotations": INFRA_ANNOTATIONS,
        "orphanSweepInterval": 2,  # sweeps run all the time while hostile Services come and go
    },
}


@dataclass(frozen=True)
class Kept:
    """A parent object that must stay as it is: same UID and resourceVersion or, where simulators keep writing
    its status, the same labels, annotations and spec."""

    resource: Resource
    namespace: str
    name: str
    uid: str
    resource_version: str
    content: str

    async def changed(self, parent: Client, *, status_moves: bool = False) -> str | None:
        try:
            now = await parent.get(self.resource, self.name, self.namespace)
        except NotFound:
            return f"{self.resource.kind} {self.namespace}/{self.name} was deleted"
        meta = now["metadata"]
        if meta["uid"] != self.uid:
            return f"{self.resource.kind} {self.namespace}/{self.name} was replaced"
        if status_moves and content_of(now) != self.content:
            return f"{self.resource.kind} {self.namespace}/{self.name} changed: {content_of(now)}"
        if not status_moves and meta["resourceVersion"] != self.resource_version:
            change = f"resourceVersion {self.resource_version} -> {meta['resourceVersion']}"
            return f"{self.resource.kind} {self.namespace}/{self.name} changed ({change})"
        return None


def content_of(obj: Object) -> str:
    meta = obj["metadata"]
    kept_meta = {k: meta.get(k) for k in ("labels", "annotations", "deletionTimestamp", "finalizers")}
    return json.dumps({"metadata": kept_meta, "spec": obj.get("spec")}, sort_keys=True)


def kept(resource: Resource, obj: Object) -> Kept:
    meta = obj["metadata"]
    return Kept(resource, meta["namespace"], meta["name"], meta["uid"], meta["resourceVersion"], content_of(obj))


async def unchanged(parent: Client, objects: list[Kept], *, status_moves: bool = False) -> list[str]:
    return [p for o in objects if (p := await o.changed(parent, status_moves=status_moves)) is not None]


def foreign_service(cluster_name: str, tenant_namespace: str, tenant_name: str) -> Object:
    """A parent LB Service as another cluster's ccm makes it; a class Cilium does not serve keeps it still."""
    return {
        "metadata": {
            "name": "a" + uuid.uuid4().hex[:31],
            "labels": {
                CLUSTER_LABEL: cluster_name,
                TENANT_NAMESPACE_LABEL: tenant_namespace,
                TENANT_NAME_LABEL: tenant_name,
                MANAGED_BY_LABEL: MANAGED_BY,
            },
            "annotations": {"example.com/owner": cluster_name},
        },
        "spec": {
            "type": "LoadBalancer",
            "loadBalancerClass": "example.com/foreign",
            "allocateLoadBalancerNodePorts": False,
            "ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 30080}],
        },
    }


async def ensure_namespace(client: Client, name: str) -> None:
    with contextlib.suppress(AlreadyExists):
        await client.create(NAMESPACES, {"metadata": {"name": name}})


@pytest.fixture(scope="package")
async def foreign_services(parent_client: Client, cluster: harness.Cluster) -> AsyncIterator[list[Kept]]:
    """Other clusters' parent Services and slices, in our parent namespace and in another one; those in the
    other namespace even claim to be ours. All point back at tenant Services named like ours."""
    ours, elsewhere = cluster.parent_namespace, f"tenant-other-{uuid.uuid4().hex[:6]}"
    await ensure_namespace(parent_client, elsewhere)
    made: list[Kept] = []
    for namespace, owner in ((ours, OTHER_CLUSTER), (elsewhere, OTHER_CLUSTER), (elsewhere, cluster.cluster_name)):
        for tenant_name in (SHARED_NAME, "a" * 63):
            service = await parent_client.create(
                SERVICES, foreign_service(owner, HOSTILE_NAMESPACE, tenant_name), namespace
            )
            made.append(kept(SERVICES, service))
            labels = {**service["metadata"]["labels"], "kubernetes.io/service-name": service["metadata"]["name"]}
            endpoint_slice = await parent_client.create(
                ENDPOINTSLICES,
                {
                    "metadata": {"name": service["metadata"]["name"] + "-ipv4", "labels": labels},
                    "addressType": "IPv4",
                    "endpoints": [{"addresses": ["10.99.0.1"]}],
                    "ports": [{"name": "http", "protocol": "TCP", "port": 30080}],
                },
                namespace,
            )
            made.append(kept(ENDPOINTSLICES, endpoint_slice))
    platform = await parent_client.create(
        SERVICES,
        {"metadata": {"name": f"platform-{uuid.uuid4().hex[:6]}"}, "spec": {"ports": [{"port": 443}]}},
        ours,
    )
    made.append(kept(SERVICES, platform))
    yield made
    for obj in made:
        with contextlib.suppress(NotFound):
            await parent_client.delete(obj.resource, obj.name, obj.namespace)
    with contextlib.suppress(NotFound):
        await parent_client.delete(NAMESPACES, elsewhere)


@pytest.fixture(scope="package")
async def security_pool(parent_client: Client, cluster: harness.Cluster) -> AsyncIterator[str]:
    name = "tenant-cloud-security-tests"
    await make_pool(parent_client, name, cluster.parent_namespace, [POOL_V4, POOL_V6])
    yield name
    with contextlib.suppress(NotFound):
        await parent_client.delete(POOLS, name)


def write_cloud_config(cluster: harness.Cluster, path: Path, extra: dict[str, Any]) -> Path:
    config = {"kubeconfig": str(cluster.parent_kubeconfig), "namespace": cluster.parent_namespace, **extra}
    path.write_text(yaml.safe_dump(config))
    return path


def ccm_argv(
    cluster: harness.Cluster, cloud_config: Path, *extra: str, tenant_kubeconfig: Path | None = None
) -> list[str]:
    return [
        f"--cloud-config={cloud_config}",
        f"--kubeconfig={tenant_kubeconfig or cluster.tenant_kubeconfig}",
        f"--cluster-name={cluster.cluster_name}",
        "--controllers=service",
        "--health-bind-address=127.0.0.1:0",
        "--metrics-bind-address=0",
        "--leader-elect-lease-duration=3s",
        "--leader-elect-renew-deadline=2s",
        "--leader-elect-retry-period=500ms",
        f"--leader-elect-resource-name=security-{uuid.uuid4().hex[:6]}",
        *extra,
    ]


@pytest.fixture(scope="package")
async def hostile_ccm(
    cluster: harness.Cluster,
    tenant_client: Client,
    security_pool: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Running]:
    """`python -m ccm` at debug verbosity, leading, with the permissive config above."""
    await ensure_namespace(tenant_client, HOSTILE_NAMESPACE)
    directory = tmp_path_factory.mktemp("hostile-ccm")
    cloud_config = write_cloud_config(cluster, directory / "cloud-config.yaml", HOSTILE_LB_CONFIG)
    async with running("ccm", ccm_argv(cluster, cloud_config, "--v=4"), directory / "ccm.log") as ccm:
        await leading(ccm)
        yield ccm
        # Whatever a failed example left behind goes while the ccm can still release its finalizers.
        for service in (await tenant_client.list_all(SERVICES, HOSTILE_NAMESPACE)).items:
            with contextlib.suppress(NotFound):
                await tenant_client.delete(SERVICES, service["metadata"]["name"], HOSTILE_NAMESPACE)
        await eventually(lambda: _empty(tenant_client), timeout=60)
    with contextlib.suppress(NotFound):
        await tenant_client.delete(NAMESPACES, HOSTILE_NAMESPACE)


async def _empty(tenant_client: Client) -> bool:
    return not (await tenant_client.list_all(SERVICES, HOSTILE_NAMESPACE)).items
