"""The parent chart's policies against the real parent apiserver, acting as the tenant's ServiceAccount:
each forbidden operation is denied with the policy's message, each allowed one succeeds."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from e2e import cluster as harness
from kube.client import Client, Object
from kube.errors import Forbidden, NotFound
from kube.resources import (
    ENDPOINTSLICES,
    NODES,
    PERSISTENTVOLUMECLAIMS,
    PODS,
    SECRETS,
    SERVICES,
    Resource,
)
from lb.config import LoadBalancerConfig
from lb.endpoints import Backend, parent_slices
from lb.translate import Scope, parent_service_for
from tests.integration.charts.conftest import (
    ALLOWED_V4,
    ALLOWED_V6,
    CLUSTER_LABEL,
    LB_CLASS,
    MAX_VOLUME,
    STORAGE_CLASS,
    denial,
    our_service,
    unique,
    until,
)

DATAVOLUMES = Resource("cdi.kubevirt.io", "v1beta1", "datavolumes", "DataVolume")
VOLUMESNAPSHOTS = Resource("snapshot.storage.k8s.io", "v1", "volumesnapshots", "VolumeSnapshot")
OWNERSHIP = "may only change or delete its own objects"
Body = Callable[[harness.Cluster], Object]


def ours(cluster: harness.Cluster) -> dict[str, str]:
    return {CLUSTER_LABEL: cluster.cluster_name}


def datavolume(
    cluster: harness.Cluster, *, labels: dict[str, str] | None = None, size: str = "1Gi", **spec: Any
) -> Object:
    storage = {
        "resources": {"requests": {"storage": size}},
        "storageClassName": STORAGE_CLASS,
        **spec.pop("storage", {}),
    }
    if storage.get("storageClassName") is None:
        del storage["storageClassName"]
    return {
        "metadata": {"name": unique("pvc"), "labels": ours(cluster) if labels is None else labels},
        "spec": {"source": spec.pop("source", {"blank": {}}), "storage": storage, **spec},
    }


def endpoint_slice(cluster: harness.Cluster, service: str, labels: dict[str, str] | None = None) -> Object:
    return {
        "metadata": {
            "name": unique(service),
            "labels": {**(ours(cluster) if labels is None else labels), "kubernetes.io/service-name": service},
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.20.0.1"]}],
        "ports": [{"name": "http", "protocol": "TCP", "port": 30080}],
    }


def snapshot(cluster: harness.Cluster, source: dict[str, str], labels: dict[str, str] | None = None) -> Object:
    return {
        "metadata": {"name": unique("snapshot"), "labels": ours(cluster) if labels is None else labels},
        "spec": {"source": source},
    }


# -- what the tenant may not write ------------------------------------------------------------------------

DENIED_CREATES: list[tuple[str, Resource, Body, str]] = [
    ("service-unlabelled", SERVICES, lambda c: our_service(c, labels={}), "must carry the label"),
    (
        "service-labelled-as-another-cluster",
        SERVICES,
        lambda c: our_service(c, labels={CLUSTER_LABEL: "someone-else"}),
        "must carry the label",
    ),
    (
        "service-selecting-other-pods",
        SERVICES,
        lambda c: our_service(c, selector={"app": "database"}),
        "selector must include",
    ),
    ("service-external-ips", SERVICES, lambda c: our_service(c, externalIPs=["192.0.2.10"]), "externalIPs"),
    (
        "service-node-port",
        SERVICES,
        lambda c: our_service(c, type="NodePort", allocateLoadBalancerNodePorts=None),
        "type LoadBalancer",
    ),
    (
        "service-other-class",
        SERVICES,
        lambda c: our_service(c, loadBalancerClass="io.cilium/bgp-control-plane"),
        "spec.loadBalancerClass must be",
    ),
    (
        "service-ip-annotation-outside-ranges",
        SERVICES,
        lambda c: our_service(c, annotations={"lbipam.cilium.io/ips": "203.0.113.130,203.0.113.5"}),
        "must lie in",
    ),
    (
        "service-legacy-ip-annotation-outside-ranges",
        SERVICES,
        lambda c: our_service(c, annotations={"io.cilium/lb-ipam-ips": "192.0.2.1"}),
        "must lie in",
    ),
    (
        "service-load-balancer-ip-outside-ranges",
        SERVICES,
        lambda c: our_service(c, loadBalancerIP="192.0.2.7"),
        "must lie in",
    ),
    (
        "service-cross-namespace-sharing",
        SERVICES,
        lambda c: our_service(c, annotations={"lbipam.cilium.io/sharing-cross-namespace": "*"}),
        "sharing-cross-namespace",
    ),
    (
        "slice-unlabelled",
        ENDPOINTSLICES,
        lambda c: endpoint_slice(c, "a" + uuid.uuid4().hex[:31], labels={}),
        "EndpointSlices written by",
    ),
    (
        "slice-for-a-platform-service",
        ENDPOINTSLICES,
        lambda c: endpoint_slice(c, "kubernetes"),
        "must name one of the ccm's",
    ),
    ("datavolume-unlabelled", DATAVOLUMES, lambda c: datavolume(c, labels={}), "DataVolumes written by"),
    (
        "datavolume-other-class",
        DATAVOLUMES,
        lambda c: datavolume(c, storage={"storageClassName": "premium"}),
        "storage class must be one of",
    ),
    (
        "datavolume-default-class",
        DATAVOLUMES,
        lambda c: datavolume(c, storage={"storageClassName": None}),
        "storage class must be one of",
    ),
    ("datavolume-too-big", DATAVOLUMES, lambda c: datavolume(c, size="5Gi"), "at most 4Gi"),
    (
        "datavolume-url-import",
        DATAVOLUMES,
        lambda c: datavolume(c, source={"http": {"url": "http://169.254.169.254/latest"}}),
        "may only be blank",
    ),
    (
        "datavolume-clone-from-another-namespace",
        DATAVOLUMES,
        lambda c: datavolume(c, source={"pvc": {"name": "pvc-x", "namespace": "tenant-other"}}),
        "in its own namespace",
    ),
    (
        "datavolume-binds-an-existing-volume",
        DATAVOLUMES,
        lambda c: datavolume(c, storage={"volumeName": "pvc-0123"}),
        "may not bind an existing PersistentVolume",
    ),
    (
        "snapshot-unlabelled",
        VOLUMESNAPSHOTS,
        lambda c: snapshot(c, {"persistentVolumeClaimName": "pvc-x"}, labels={}),
        "VolumeSnapshots written by",
    ),
    (
        "snapshot-imports-content",
        VOLUMESNAPSHOTS,
        lambda c: snapshot(c, {"volumeSnapshotContentName": "snapcontent-of-another-tenant"}),
        "must snapshot a claim",
    ),
]


@pytest.mark.parametrize(
    ("resource", "body", "fragment"), [c[1:] for c in DENIED_CREATES], ids=[c[0] for c in DENIED_CREATES]
)
async def test_forbidden_creates_are_denied_with_the_policy_s_message(
    as_tenant: Client, cluster: harness.Cluster, resource: Resource, body: Body, fragment: str
) -> None:
    message = await denial(as_tenant.create(resource, body(cluster), cluster.parent_namespace))
    assert fragment in message


async def test_rbac_keeps_the_tenant_out_of_everything_else(as_tenant: Client, cluster: harness.Cluster) -> None:
    ns = cluster.parent_namespace
    for request in (
        as_tenant.list(SECRETS, ns),
        as_tenant.create(PODS, {"metadata": {"name": "x"}, "spec": {"containers": [{"name": "x", "image": "x"}]}}, ns),
        as_tenant.list(NODES),
        as_tenant.list(SERVICES, "default"),
        as_tenant.create(PERSISTENTVOLUMECLAIMS, {"metadata": {"name": "x"}, "spec": {}}, ns),
    ):
        with pytest.raises(Forbidden) as refused:
            await request
        assert "cannot" in refused.value.message and "ValidatingAdmissionPolicy" not in refused.value.message


# -- other clusters' objects ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def foreign(
    parent_client: Client, cluster: harness.Cluster, parent_storage: str
) -> AsyncIterator[dict[str, Object]]:
    """Objects of another tenant cluster sharing the namespace (made by the platform, as admin)."""
    ns = cluster.parent_namespace
    theirs = {CLUSTER_LABEL: "someone-else"}
    service = await parent_client.create(SERVICES, our_service(cluster, labels=theirs), ns)
    made = {
        "service": service,
        "slice": await parent_client.create(
            ENDPOINTSLICES, endpoint_slice(cluster, service["metadata"]["name"], labels=theirs), ns
        ),
        "datavolume": await parent_client.create(DATAVOLUMES, datavolume(cluster, labels=theirs), ns),
        "snapshot": await parent_client.create(
            VOLUMESNAPSHOTS, snapshot(cluster, {"persistentVolumeClaimName": "pvc-theirs"}, labels=theirs), ns
        ),
        "claim": await parent_client.create(
            PERSISTENTVOLUMECLAIMS,
            {
                "metadata": {"name": unique("pvc-theirs"), "labels": theirs},
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "storageClassName": STORAGE_CLASS,
                    "resources": {"requests": {"storage": "1Gi"}},
                },
            },
            ns,
        ),
    }
    claim = made["claim"]["metadata"]["name"]

    async def bound() -> bool:
        current = await parent_client.get(PERSISTENTVOLUMECLAIMS, claim, ns)
        return (current.get("status") or {}).get("phase") == "Bound"

    await until(bound)  # only a bound claim may be resized at all
    yield made
    resources = {"service": SERVICES, "slice": ENDPOINTSLICES, "datavolume": DATAVOLUMES, "snapshot": VOLUMESNAPSHOTS}
    resources["claim"] = PERSISTENTVOLUMECLAIMS
    for key, obj in made.items():
        with contextlib.suppress(NotFound):
            await parent_client.delete(resources[key], obj["metadata"]["name"], ns)


FOREIGN = [
    ("service", SERVICES),
    ("slice", ENDPOINTSLICES),
    ("datavolume", DATAVOLUMES),
    ("snapshot", VOLUMESNAPSHOTS),
]


@pytest.mark.parametrize(("key", "resource"), FOREIGN, ids=[k for k, _ in FOREIGN])
async def test_another_clusters_objects_cannot_be_deleted(
    as_tenant: Client, cluster: harness.Cluster, foreign: dict[str, Object], key: str, resource: Resource
) -> None:
    name = foreign[key]["metadata"]["name"]
    message = await denial(as_tenant.delete(resource, name, cluster.parent_namespace))
    assert OWNERSHIP in message and name in message


async def test_another_clusters_service_cannot_be_relabelled_as_ours(
    as_tenant: Client, cluster: harness.Cluster, foreign: dict[str, Object]
) -> None:
    current = await as_tenant.get(SERVICES, foreign["service"]["metadata"]["name"], cluster.parent_namespace)
    current["metadata"]["labels"] = ours(cluster)
    assert OWNERSHIP in await denial(as_tenant.update(SERVICES, current))


async def test_another_clusters_claim_cannot_be_grown(
    as_tenant: Client, cluster: harness.Cluster, foreign: dict[str, Object]
) -> None:
    name = foreign["claim"]["metadata"]["name"]
    patch = {"spec": {"resources": {"requests": {"storage": "2Gi"}}}}
    message = await denial(as_tenant.patch(PERSISTENTVOLUMECLAIMS, name, patch, cluster.parent_namespace))
    # Two policies refuse it (the claim is not ours, and would not be ours after); the first one answers.
    assert OWNERSHIP in message or "claims written by tenant cluster" in message


async def test_slices_for_another_clusters_service_are_denied(
    as_tenant: Client, cluster: harness.Cluster, foreign: dict[str, Object]
) -> None:
    theirs = foreign["service"]["metadata"]["name"]
    ns = cluster.parent_namespace
    messages: list[str] = []

    async def refused() -> bool:
        # Dry runs until the policy's params (the namespace's Services, from an informer) include theirs.
        try:
            await as_tenant.create(ENDPOINTSLICES, endpoint_slice(cluster, theirs), ns, dry_run=True)
        except Forbidden as error:
            messages.append(error.message)
            return True
        return False

    await until(refused)
    assert f"Service {theirs} belongs to another cluster" in messages[-1]
    assert "ValidatingAdmissionPolicy" in messages[-1]


@pytest.mark.parametrize("what", ["clone", "snapshot", "restore"])
async def test_another_clusters_data_cannot_be_copied(
    as_tenant: Client, cluster: harness.Cluster, foreign: dict[str, Object], what: str
) -> None:
    ns = cluster.parent_namespace
    claim, taken = foreign["claim"]["metadata"]["name"], foreign["snapshot"]["metadata"]["name"]
    resource, body, expected = {
        "clone": (DATAVOLUMES, datavolume(cluster, source={"pvc": {"name": claim, "namespace": ns}}), f"claim {claim}"),
        "snapshot": (VOLUMESNAPSHOTS, snapshot(cluster, {"persistentVolumeClaimName": claim}), f"claim {claim}"),
        "restore": (
            DATAVOLUMES,
            datavolume(cluster, source={"snapshot": {"name": taken, "namespace": ns}}),
            f"VolumeSnapshot {taken}",
        ),
    }[what]
    messages: list[str] = []

    async def refused() -> bool:
        # Dry runs until the policy's params (the namespace's claims and snapshots, from informers) include theirs.
        try:
            await as_tenant.create(resource, body, ns, dry_run=True)
        except Forbidden as error:
            messages.append(error.message)
            return True
        return False

    await until(refused)
    assert f"{expected} belongs to another cluster" in messages[-1]


# -- what the tenant's code writes is allowed -------------------------------------------------------------


def tenant_service(uid: str) -> Object:
    return {
        "metadata": {
            "name": "web",
            "namespace": "shop",
            "uid": uid,
            "annotations": {"lbipam.cilium.io/ips": "203.0.113.140,fd00:203:113::14"},
        },
        "spec": {
            "type": "LoadBalancer",
            "ipFamilies": ["IPv4", "IPv6"],
            "ipFamilyPolicy": "RequireDualStack",
            "ports": [{"name": "http", "protocol": "TCP", "port": 80, "nodePort": 30080}],
        },
    }


async def test_the_ccm_s_own_parent_service_and_slices_are_allowed(as_tenant: Client, cluster: harness.Cluster) -> None:
    """What lb/ translates (IP request in range, allowed class, selectorless) goes through as the tenant."""
    config = LoadBalancerConfig.model_validate(
        {
            "selectorless": True,
            "loadBalancerClass": LB_CLASS,
            "allowIPRequests": True,
            "allowedIPRanges": [ALLOWED_V4, ALLOWED_V6],
        }
    )
    scope = Scope(cluster.cluster_name, cluster.parent_namespace, CLUSTER_LABEL, config)
    tenant = tenant_service(str(uuid.uuid4()))
    translation = parent_service_for(tenant, scope)
    assert translation.service["metadata"]["annotations"]["lbipam.cilium.io/ips"]
    ns = cluster.parent_namespace
    created = await as_tenant.create(SERVICES, translation.service, ns)
    name = created["metadata"]["name"]
    try:
        created["spec"]["ports"][0]["port"] = 8080
        await as_tenant.update(SERVICES, created)
        backends = [Backend("n1", ("10.20.0.1", "fd00:20::1"), "parent-1"), Backend("n2", ("10.20.0.2",), "parent-2")]
        slices = parent_slices(name, ns, created["spec"]["ports"], backends, scope.ownership_labels(tenant))
        assert len(slices) == 2
        for body in slices:
            made = await as_tenant.create(ENDPOINTSLICES, body, ns)
            made["endpoints"] = made["endpoints"][:1]
            await as_tenant.update(ENDPOINTSLICES, made)
            await as_tenant.delete(ENDPOINTSLICES, made["metadata"]["name"], ns)
    finally:
        await as_tenant.delete(SERVICES, name, ns)


async def test_the_driver_s_volumes_and_snapshots_are_allowed(as_tenant: Client, cluster: harness.Cluster) -> None:
    ns = cluster.parent_namespace
    blank = await as_tenant.create(DATAVOLUMES, datavolume(cluster, size=str(1 << 30)), ns)
    name = blank["metadata"]["name"]
    try:
        # Clones and restores stay in the namespace: admission passes them (dry run: no copy is made).
        for source in ({"pvc": {"name": name, "namespace": ns}}, {"snapshot": {"name": "snap", "namespace": ns}}):
            await as_tenant.create(DATAVOLUMES, datavolume(cluster, size=MAX_VOLUME, source=source), ns, dry_run=True)
        taken = await as_tenant.create(VOLUMESNAPSHOTS, snapshot(cluster, {"persistentVolumeClaimName": name}), ns)
        await as_tenant.delete(VOLUMESNAPSHOTS, taken["metadata"]["name"], ns)
    finally:
        await as_tenant.delete(DATAVOLUMES, name, ns)
