"""The tenant chart installed in the harness, its workloads left to run as local processes.

`install` renders charts/tenant-cloud for the harness and applies everything but the workloads (ServiceAccounts,
RBAC, ConfigMaps, CSIDriver, StorageClasses, VolumeSnapshotClass) to the tenant. `local_pod` then does for one
of the chart's pods what the kubelet would: its volumes become directories filled from the tenant's ConfigMaps
and Secrets, its ServiceAccount a kubeconfig with a bound token, its downward-API env plain values.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from e2e import helm
from e2e.cluster import Cluster
from e2e.cluster.identities import service_account_kubeconfig
from e2e.cluster.platform import Platform

RELEASE = "tenant-cloud"
NAMESPACE = "kube-system"
FIELD_MANAGER = "tenant-cloud-tenant-chart"
WORKLOADS = ("Deployment", "DaemonSet", "PodDisruptionBudget")
TOKEN_LIFETIME = "24h"
# The StorageClass parameter csi-provisioner turns into the PV's fsType (the chart's default is ext4).
FSTYPE_PARAMETER = "csi.storage.k8s.io/fstype"
Manifest = dict[str, Any]


def values(cluster: Cluster, platform: Platform, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The platform's tenant values for the harness: its parent namespace and the platform's classes, the
    default one (ext4) and one formatting volumes with XFS."""
    base: dict[str, Any] = {
        "clusterName": cluster.cluster_name,
        "parentNamespace": cluster.parent_namespace,
        "logFormat": "logfmt",
        "storageClasses": [
            {"name": "replicated", "parentStorageClass": platform.storage_class, "default": True},
            {
                "name": "replicated-xfs",
                "parentStorageClass": platform.storage_class,
                "parameters": {FSTYPE_PARAMETER: "xfs"},
            },
        ],
        "csi": {
            "enforcement": {
                "storageSnapshotMapping": [
                    {"storageClasses": [platform.storage_class], "volumeSnapshotClasses": [platform.snapshot_class]}
                ]
            }
        },
    }
    return helm.merge_values(base, overrides or {})


@dataclass(frozen=True)
class TenantChart:
    manifests: list[Manifest]

    def deployment(self, component: str) -> Manifest:
        return helm.one(self.manifests, "Deployment", f"{RELEASE}-{component}")

    def one(self, kind: str, name: str | None = None) -> Manifest:
        return helm.one(self.manifests, kind, name)

    def all(self, kind: str) -> list[Manifest]:
        return [m for m in self.manifests if m["kind"] == kind]


def install(cluster: Cluster, chart_values: Mapping[str, Any]) -> TenantChart:
    """Render the chart and apply all of it but the workloads to the tenant; idempotent."""
    manifests = helm.template(helm.TENANT_CHART, namespace=NAMESPACE, release=RELEASE, values=chart_values)
    wanted = [m for m in manifests if m["kind"] not in WORKLOADS]
    args = ["apply", "--server-side", f"--field-manager={FIELD_MANAGER}", "--force-conflicts", "-f", "-"]
    cluster.kubectl_run("tenant", *args, stdin="\n".join(json.dumps(m) for m in wanted))
    return TenantChart(manifests)


@dataclass
class LocalPod:
    """One chart pod's environment on this machine."""

    name: str
    namespace: str
    root: Path
    kubeconfig: Path  # stands in for the in-cluster ServiceAccount token
    mounts: dict[str, Path] = field(default_factory=dict)  # in-pod path -> local directory
    spec: Manifest = field(default_factory=dict)

    def containers(self) -> list[Manifest]:
        return list(self.spec["containers"])

    def env(self, container: Mapping[str, Any], node_name: str = "") -> dict[str, str]:
        """The container's env; the downward API gives the namespace and the node."""
        fields = {"metadata.namespace": self.namespace, "spec.nodeName": node_name}
        found: dict[str, str] = {}
        for item in container.get("env") or []:
            if "value" in item:
                found[item["name"]] = str(item["value"])
            else:
                found[item["name"]] = fields[item["valueFrom"]["fieldRef"]["fieldPath"]]
        return found

    def local_path(self, in_pod: str) -> str:
        """An in-pod path under one of the pod's mounts, as a local path; others are returned unchanged."""
        for mount, local in sorted(self.mounts.items(), key=lambda item: -len(item[0])):
            if in_pod == mount or in_pod.startswith(mount.rstrip("/") + "/"):
                return str(local) + in_pod[len(mount.rstrip("/")) :]
        return in_pod


def _files(cluster: Cluster, volume: Mapping[str, Any], namespace: str) -> dict[str, str]:
    """A ConfigMap or Secret volume's files (its `items`, or every key), read from the tenant."""
    if "configMap" in volume:
        source, kind = volume["configMap"], "configmap"
    elif "secret" in volume:
        source, kind = volume["secret"], "secret"
    else:
        return {}  # emptyDir: an empty directory
    name = source.get("name") or source["secretName"]
    stored = json.loads(cluster.kubectl_run("tenant", "get", kind, name, f"--namespace={namespace}", "-o", "json"))
    data = stored.get("data") or {}
    if kind == "secret":
        data = {key: base64.b64decode(value).decode() for key, value in data.items()}
    items = source.get("items") or [{"key": key, "path": key} for key in data]
    return {item["path"]: data[item["key"]] for item in items}


def pod_mounts(spec: Mapping[str, Any], root: Path) -> dict[str, Path]:
    """Each in-pod mount path of the pod's containers -> the local directory of its volume, root/<volume>."""
    return {
        mount["mountPath"]: root / mount["name"]
        for container in spec["containers"]
        for mount in container.get("volumeMounts") or []
    }


def local_pod(cluster: Cluster, workload: Mapping[str, Any], instance: str = "") -> LocalPod:
    """Materialise a Deployment's or DaemonSet's pod under DIR/run/<component>[-<instance>]/ (its volumes),
    with its ServiceAccount's token; `instance` tells apart the pods of a DaemonSet (one per Node)."""
    spec = workload["spec"]["template"]["spec"]
    namespace = workload["metadata"]["namespace"]
    component = workload["metadata"]["labels"]["app.kubernetes.io/component"]
    root = cluster.dir / "run" / (f"{component}-{instance}" if instance else component)
    root.mkdir(parents=True, exist_ok=True)
    account = spec["serviceAccountName"]
    kubeconfig = service_account_kubeconfig(
        cluster, "tenant", namespace, account, root / "serviceaccount.kubeconfig", create=False, duration=TOKEN_LIFETIME
    )
    name = workload["metadata"]["name"]
    pod = LocalPod(name, namespace, root, kubeconfig, mounts=pod_mounts(spec, root), spec=spec)
    for volume in spec.get("volumes") or []:
        directory = root / volume["name"]
        directory.mkdir(exist_ok=True)
        for path, text in _files(cluster, volume, namespace).items():
            # Files name other mounts by their in-pod paths (the cloud-config's parent kubeconfig).
            target = directory / path
            target.write_text(localised(text, pod))
            target.chmod(0o600)
    return pod


def localised(text: str, pod: LocalPod) -> str:
    """In-pod absolute paths under a mount, as local paths; one pass, so a local path is never rewritten."""
    mounts = sorted((m.rstrip("/") for m in pod.mounts), key=len, reverse=True)
    if not mounts:
        return text
    pattern = re.compile(r"(?<![\w./-])(" + "|".join(map(re.escape, mounts)) + r")(?=/)")
    return pattern.sub(lambda found: pod.local_path(found.group(1)), text)
