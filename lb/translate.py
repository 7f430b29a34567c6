"""Tenant Service -> parent Service, as pure functions.

Nothing is copied from the tenant unless a rule here says so: ports (to NodePorts), IP families, traffic
policy, session affinity and source ranges are; annotations only through the allow-list; IP requests only
when allowed and inside the allowed ranges; never externalIPs, healthCheckNodePort or the tenant's class.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from lb.config import LoadBalancerConfig

Object = dict[str, Any]

FINALIZER = "service.kubernetes.io/load-balancer-cleanup"
TENANT_NAME_LABEL = "cluster.x-k8s.io/tenant-service-name"
TENANT_NAMESPACE_LABEL = "cluster.x-k8s.io/tenant-service-namespace"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "tenant-cloud-ccm"
ROLE_LABEL = "cluster.x-k8s.io/role"
SOURCE_RANGES_ANNOTATION = "service.beta.kubernetes.io/load-balancer-source-ranges"
CILIUM_IPS_ANNOTATION = "lbipam.cilium.io/ips"
# Keys the allow-list can never open: IP requests have their own policy; cross-namespace sharing would let
# this tenant share addresses with Services of other namespaces.
NEVER_COPIED = frozenset({CILIUM_IPS_ANNOTATION, "lbipam.cilium.io/sharing-cross-namespace", SOURCE_RANGES_ANNOTATION})
PROTOCOLS = frozenset({"TCP", "UDP", "SCTP"})
LOAD_BALANCER = "LoadBalancer"


@dataclass(frozen=True)
class Scope:
    """Who we are in the parent: the cluster, its namespace, and the config that shapes parent objects."""

    cluster_name: str
    namespace: str
    cluster_label: str
    config: LoadBalancerConfig
    infra_labels: dict[str, str] = field(default_factory=dict)

    def ownership_labels(self, tenant: Object) -> dict[str, str]:
        metadata = tenant.get("metadata") or {}
        return {
            **self.infra_labels,
            self.cluster_label: self.cluster_name,
            TENANT_NAME_LABEL: str(metadata.get("name", "")),
            TENANT_NAMESPACE_LABEL: str(metadata.get("namespace", "")),
            MANAGED_BY_LABEL: MANAGED_BY,
        }

    def owned_by_cluster(self, parent: Object) -> bool:
        return ((parent.get("metadata") or {}).get("labels") or {}).get(self.cluster_label) == self.cluster_name

    def owned_by(self, parent: Object, tenant_namespace: str, tenant_name: str) -> bool:
        """The parent object carries this cluster's label and points back at exactly this tenant Service."""
        labels = (parent.get("metadata") or {}).get("labels") or {}
        return (
            labels.get(self.cluster_label) == self.cluster_name
            and labels.get(TENANT_NAMESPACE_LABEL) == tenant_namespace
            and labels.get(TENANT_NAME_LABEL) == tenant_name
        )

    @property
    def selector(self) -> dict[str, str]:
        if self.config.selector is not None:
            return dict(self.config.selector)
        return {ROLE_LABEL: "worker", self.cluster_label: self.cluster_name}


def parent_service_name(tenant: Object) -> str:
    """kubevirt-ccm's (and cloud-provider's default) name: "a" + the tenant UID without dashes, 32 chars.

    Keeping it means a parent Service kubevirt-ccm made for the same tenant Service is adopted as is.
    """
    uid = str((tenant.get("metadata") or {}).get("uid", ""))
    return ("a" + uid.replace("-", ""))[:32]


def tenant_key(parent: Object) -> str | None:
    labels = (parent.get("metadata") or {}).get("labels") or {}
    namespace, name = labels.get(TENANT_NAMESPACE_LABEL), labels.get(TENANT_NAME_LABEL)
    return f"{namespace}/{name}" if namespace and name else None


def qualifies(tenant: Object, config: LoadBalancerConfig) -> bool:
    """A Service we serve: type LoadBalancer with no class, or a class the config lists."""
    spec = tenant.get("spec") or {}
    if spec.get("type") != LOAD_BALANCER:
        return False
    cls = spec.get("loadBalancerClass")
    return cls is None or cls in config.tenant_classes


@dataclass
class Translation:
    service: Object
    warnings: list[tuple[str, str]] = field(default_factory=list)  # (reason, message) for Warning Events

    def warn(self, reason: str, message: str) -> None:
        self.warnings.append((reason, message))


def _ports(spec: Object, result: Translation) -> list[Object]:
    ports = []
    for port in spec.get("ports") or []:
        protocol = port.get("protocol", "TCP")
        label = port.get("name") or str(port.get("port"))
        if protocol not in PROTOCOLS:
            result.warn("UnsupportedProtocol", f"port {label}: protocol {protocol} is not supported; skipped")
            continue
        node_port = port.get("nodePort")
        if not node_port:
            result.warn("NoNodePort", f"port {label} has no nodePort (allocateLoadBalancerNodePorts: false?); skipped")
            continue
        entry = {"protocol": protocol, "port": port["port"], "targetPort": node_port}
        if port.get("name"):
            entry["name"] = port["name"]
        ports.append(entry)
    return ports


def _source_ranges(tenant: Object, result: Translation) -> list[str]:
    spec = tenant.get("spec") or {}
    raw = list(spec.get("loadBalancerSourceRanges") or [])
    if not raw:
        annotation = ((tenant.get("metadata") or {}).get("annotations") or {}).get(SOURCE_RANGES_ANNOTATION, "")
        raw = [part.strip() for part in annotation.split(",") if part.strip()]
    ranges = []
    for value in raw:
        try:
            ranges.append(str(ipaddress.ip_network(value, strict=False)))
        except ValueError:
            result.warn("InvalidSourceRange", f"loadBalancerSourceRanges: {value!r} is not a CIDR; skipped")
    return ranges


def _requested_ips(tenant: Object, config: LoadBalancerConfig, result: Translation) -> list[str]:
    spec = tenant.get("spec") or {}
    annotations = (tenant.get("metadata") or {}).get("annotations") or {}
    requested = [ip.strip() for ip in annotations.get(CILIUM_IPS_ANNOTATION, "").split(",") if ip.strip()]
    if spec.get("loadBalancerIP"):
        requested.append(str(spec["loadBalancerIP"]))
    requested = list(dict.fromkeys(requested))
    if not requested:
        return []
    if not config.allow_ip_requests:
        result.warn("IPRequestIgnored", f"requested IPs {', '.join(requested)} ignored: IP requests are not allowed")
        return []
    outside = [ip for ip in requested if not config.ip_allowed(ip)]
    if outside:
        result.warn(
            "IPRequestIgnored",
            f"requested IPs {', '.join(outside)} ignored: outside the allowed ranges; none were requested",
        )
        return []
    return requested


def _annotations(tenant: Object, scope: Scope, requested: list[str], result: Translation) -> dict[str, str]:
    tenant_annotations = (tenant.get("metadata") or {}).get("annotations") or {}
    copied = {
        key: str(value)
        for key, value in tenant_annotations.items()
        if key not in NEVER_COPIED and scope.config.annotation_allowed(key)
    }
    # The platform's annotations win over a tenant's of the same key, even an allow-listed one.
    annotations = {**copied, **scope.config.infra_annotations}
    if requested:
        annotations[CILIUM_IPS_ANNOTATION] = ",".join(requested)
    return annotations


def parent_service_for(tenant: Object, scope: Scope) -> Translation:
    """The parent Service that exposes `tenant`, and the warnings its translation raised."""
    spec = tenant.get("spec") or {}
    result = Translation(service={})
    requested = _requested_ips(tenant, scope.config, result)
    parent_spec: Object = {
        "type": LOAD_BALANCER,
        "ports": _ports(spec, result),
        "externalTrafficPolicy": spec.get("externalTrafficPolicy") or "Cluster",
        "sessionAffinity": spec.get("sessionAffinity") or "None",
        "allocateLoadBalancerNodePorts": False,
    }
    if spec.get("sessionAffinity") == "ClientIP" and spec.get("sessionAffinityConfig"):
        parent_spec["sessionAffinityConfig"] = spec["sessionAffinityConfig"]
    if spec.get("ipFamilies"):
        parent_spec["ipFamilies"] = list(spec["ipFamilies"])
    if spec.get("ipFamilyPolicy"):
        parent_spec["ipFamilyPolicy"] = spec["ipFamilyPolicy"]
    ranges = _source_ranges(tenant, result)
    if ranges:
        parent_spec["loadBalancerSourceRanges"] = ranges
    if scope.config.load_balancer_class:
        parent_spec["loadBalancerClass"] = scope.config.load_balancer_class
    if not scope.config.owns_endpoints:
        parent_spec["selector"] = scope.selector
    result.service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": parent_service_name(tenant),
            "namespace": scope.namespace,
            "labels": scope.ownership_labels(tenant),
            "annotations": _annotations(tenant, scope, requested, result),
        },
        "spec": parent_spec,
    }
    return result


# The spec fields we own on the parent Service; everything else (clusterIP, healthCheckNodePort...) is the
# parent apiserver's and is left alone on update.
MANAGED_SPEC_FIELDS = (
    "type",
    "ports",
    "selector",
    "externalTrafficPolicy",
    "sessionAffinity",
    "sessionAffinityConfig",
    "ipFamilies",
    "ipFamilyPolicy",
    "loadBalancerSourceRanges",
    "allocateLoadBalancerNodePorts",
    "loadBalancerClass",
    "loadBalancerIP",
    "externalIPs",
)


# Fields the parent apiserver fills in when we leave them out; only compared when we set them.
DEFAULTED_BY_SERVER = frozenset({"ipFamilies", "ipFamilyPolicy"})


def _normal_ports(ports: list[Object] | None) -> list[tuple[Any, ...]]:
    return [(p.get("name", ""), p.get("protocol", "TCP"), p.get("port"), p.get("targetPort")) for p in ports or []]


def service_differs(current: Object, desired: Object) -> bool:
    """Whether `current` needs an update to match `desired` in the fields we own."""
    cur_meta, want_meta = current.get("metadata") or {}, desired["metadata"]
    if (cur_meta.get("labels") or {}) != want_meta["labels"]:
        return True
    if (cur_meta.get("annotations") or {}) != want_meta["annotations"]:
        return True
    cur, want = current.get("spec") or {}, desired["spec"]
    if _normal_ports(cur.get("ports")) != _normal_ports(want.get("ports")):
        return True
    for key in MANAGED_SPEC_FIELDS:
        if key == "ports" or (key in DEFAULTED_BY_SERVER and key not in want):
            continue
        if (cur.get(key) or None) != (want.get(key) or None):
            return True
    return False


def merged_for_update(current: Object, desired: Object) -> Object:
    """`current` with our labels, annotations and managed spec fields replaced by `desired`'s."""
    spec = {k: v for k, v in (current.get("spec") or {}).items() if k not in MANAGED_SPEC_FIELDS}
    spec.update(desired["spec"])
    metadata = {
        **current["metadata"],
        "labels": desired["metadata"]["labels"],
        "annotations": desired["metadata"]["annotations"],
    }
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata, "spec": spec}


def class_changed(current: Object, desired: Object) -> bool:
    """loadBalancerClass is immutable: a change means delete and create again."""
    return bool((current.get("spec") or {}).get("loadBalancerClass") != desired["spec"].get("loadBalancerClass"))


def tenant_status_for(parent: Object | None) -> Object:
    """What the tenant Service's status.loadBalancer should say, copied from the parent's."""
    ingress = (((parent or {}).get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    copied = []
    for entry in ingress:
        item = {k: entry[k] for k in ("ip", "hostname", "ipMode", "ports") if entry.get(k)}
        if item:
            copied.append(item)
    return {"ingress": copied} if copied else {}


def ipam_problem(parent: Object | None) -> tuple[str, str] | None:
    """Cilium's `cilium.io/IPAMRequestSatisfied=False` reason and message, if the parent reports one."""
    for condition in ((parent or {}).get("status") or {}).get("conditions") or []:
        if condition.get("type") == "cilium.io/IPAMRequestSatisfied" and condition.get("status") == "False":
            return str(condition.get("reason") or "Unknown"), str(condition.get("message") or "")
    return None
