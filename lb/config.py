"""The `loadBalancer` section of the cloud-config: kubevirt-ccm's keys, accepted unchanged, plus ours."""

from __future__ import annotations

import fnmatch
import ipaddress

from pydantic import BaseModel, ConfigDict, Field, IPvAnyNetwork


class LoadBalancerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    enabled: bool = True
    creation_poll_interval: int | None = Field(None, alias="creationPollInterval", description="unused: we watch")
    creation_poll_timeout: int | None = Field(None, alias="creationPollTimeout", description="unused: we watch")
    selectorless: bool = Field(False, description="we write the parent EndpointSlices instead of a pod selector")
    enable_eps_controller: bool = Field(False, alias="enableEPSController", description="same as selectorless")
    # Our additions:
    load_balancer_class: str | None = Field(
        None, alias="loadBalancerClass", description="class of parent Services, e.g. io.cilium/l2-announcer"
    )
    tenant_classes: list[str] = Field(
        default_factory=list,
        alias="tenantLoadBalancerClasses",
        description="tenant spec.loadBalancerClass values served besides none",
    )
    annotation_allow_list: list[str] = Field(
        default_factory=list,
        alias="annotationAllowList",
        description="tenant annotation keys copied to the parent (exact or glob, e.g. example.com/*)",
    )
    allow_ip_requests: bool = Field(
        False, alias="allowIPRequests", description="honour spec.loadBalancerIP and lbipam.cilium.io/ips"
    )
    allowed_ip_ranges: list[IPvAnyNetwork] = Field(
        default_factory=list, alias="allowedIPRanges", description="where requested IPs must lie"
    )
    infra_annotations: dict[str, str] = Field(
        default_factory=dict, alias="infraAnnotations", description="annotations on every parent Service"
    )
    selector: dict[str, str] | None = Field(
        None, description="parent pod selector; default: role worker + this cluster's label"
    )
    orphan_sweep_interval: float = Field(
        600.0, alias="orphanSweepInterval", gt=0, description="seconds between garbage-collection sweeps"
    )

    @property
    def owns_endpoints(self) -> bool:
        return self.selectorless or self.enable_eps_controller

    def annotation_allowed(self, key: str) -> bool:
        return any(fnmatch.fnmatchcase(key, pattern) for pattern in self.annotation_allow_list)

    def ip_allowed(self, value: str) -> bool:
        try:
            ip = ipaddress.ip_address(value)
        except ValueError:
            return False
        return any(ip in network for network in self.allowed_ip_ranges)
