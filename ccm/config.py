"""The cloud-config: kubevirt-cloud-controller-manager's YAML, accepted unchanged, plus our additions.

Unknown keys and wrong types are start-up errors that name the key, so a typo never silently falls back
to a default.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from kube.validation import SettingsError, describe, yaml_mapping
from lb.config import LoadBalancerConfig

log = logging.getLogger(__name__)

DEFAULT_CLUSTER_LABEL = "cluster.x-k8s.io/cluster-name"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class TopologyConfig(_Strict):
    """Where zone and region come from.

    `parentNode` reads the labels of the parent Node running the VMI (needs cluster-scoped `get nodes` in
    the parent); `vmi` reads the keys below from the VMI's labels, then annotations (namespace-scoped only).
    """

    source: Literal["parentNode", "vmi"] = "parentNode"
    zone_key: str = Field("topology.kubernetes.io/zone", alias="zoneKey")
    region_key: str = Field("topology.kubernetes.io/region", alias="regionKey")


class InstancesV2Config(_Strict):
    enabled: bool = True
    zone_and_region_enabled: bool = Field(True, alias="zoneAndRegionEnabled")
    # Our additions:
    interface_name: str = Field("default", alias="interfaceName", description="VMI interface whose IPs we report")
    topology: TopologyConfig = TopologyConfig()


class NodeLifecycleConfig(_Strict):
    enabled: bool = True
    delete_grace_period: float = Field(
        30.0, alias="deleteGracePeriod", ge=0, description="seconds a Node's VMI and VM must stay gone"
    )


class CloudConfig(_Strict):
    kubeconfig: str = Field("", description="parent kubeconfig; empty = in-cluster")
    namespace: str = Field("", description="parent namespace; empty = the kubeconfig context's")
    infra_labels: dict[str, str] = Field(default_factory=dict, alias="infraLabels")
    load_balancer: LoadBalancerConfig = Field(LoadBalancerConfig(), alias="loadBalancer")
    instances_v2: InstancesV2Config = Field(InstancesV2Config(), alias="instancesV2")
    # Our additions:
    cluster_label: str = Field(
        DEFAULT_CLUSTER_LABEL, alias="clusterLabel", description="parent label whose value is the cluster name"
    )
    node_lifecycle: NodeLifecycleConfig = Field(NodeLifecycleConfig(), alias="nodeLifecycle")


class CloudConfigError(ValueError):
    """The cloud-config could not be read; the message names the offending keys."""


def parse_cloud_config(text: str, source: str = "cloud-config") -> CloudConfig:
    try:
        raw = yaml_mapping(text)
    except SettingsError as exc:
        raise CloudConfigError(f"{source}: {exc}") from None
    try:
        config = CloudConfig.model_validate(raw)
    except ValidationError as exc:
        raise CloudConfigError(f"{source}: {describe(exc)}") from exc
    lb = config.load_balancer
    if lb.creation_poll_interval is not None or lb.creation_poll_timeout is not None:
        log.info("%s: loadBalancer.creationPoll* are ignored: load-balancer IPs are watched, not polled", source)
    return config


def load_cloud_config(path: str | None) -> CloudConfig:
    if not path:
        return CloudConfig()
    return parse_cloud_config(Path(path).read_text(), source=path)
