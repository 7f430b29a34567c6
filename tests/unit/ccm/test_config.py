"""kubevirt-ccm's cloud-config is accepted unchanged; typos and wrong types are named."""

from __future__ import annotations

import pytest

from ccm.app import StartupError, enabled_controllers
from ccm.config import CloudConfigError, parse_cloud_config

KUBEVIRT_CCM_CONFIG = """
kubeconfig: /etc/kubernetes/kubeconfig/infra-kubeconfig
namespace: tenant-acme
infraLabels:
  cluster.x-k8s.io/cluster-name: acme
loadBalancer:
  enabled: true
  creationPollInterval: 5
  creationPollTimeout: 300
  selectorless: false
  enableEPSController: false
instancesV2:
  enabled: true
  zoneAndRegionEnabled: true
"""


def test_kubevirt_ccm_config_is_accepted_unchanged() -> None:
    config = parse_cloud_config(KUBEVIRT_CCM_CONFIG)
    assert config.kubeconfig == "/etc/kubernetes/kubeconfig/infra-kubeconfig"
    assert config.namespace == "tenant-acme"
    assert config.infra_labels == {"cluster.x-k8s.io/cluster-name": "acme"}
    assert config.load_balancer.creation_poll_timeout == 300
    assert config.instances_v2.zone_and_region_enabled is True
    assert config.instances_v2.topology.source == "parentNode"


def test_empty_config_means_defaults() -> None:
    config = parse_cloud_config("")
    assert (config.kubeconfig, config.namespace, config.cluster_label) == ("", "", "cluster.x-k8s.io/cluster-name")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("loadBalancr: {}", "unknown key 'loadBalancr'"),
        ("instancesV2: {zoneAndRegionEnabeld: true}", "unknown key 'instancesV2.zoneAndRegionEnabeld'"),
        ("instancesV2: {enabled: maybe}", "instancesV2.enabled: Input should be a valid boolean"),
        ("infraLabels: [a, b]", "infraLabels: Input should be a valid dictionary"),
        ("nodeLifecycle: {deleteGracePeriod: -1}", "nodeLifecycle.deleteGracePeriod"),
        ("- a list", "expected a mapping"),
        ("a: [unclosed", "not valid YAML"),
    ],
)
def test_bad_config_names_the_problem(text: str, message: str) -> None:
    with pytest.raises(CloudConfigError, match=r"^cloud-config: ") as error:
        parse_cloud_config(text)
    assert message in str(error.value)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("*", ["cloud-node", "cloud-node-lifecycle", "service"]),
        ("*,-cloud-node-lifecycle", ["cloud-node", "service"]),
        ("cloud-node-lifecycle", ["cloud-node-lifecycle"]),
        ("", []),
    ],
)
def test_enabled_controllers(spec: str, expected: list[str]) -> None:
    assert enabled_controllers(spec) == expected


def test_unknown_controller_is_rejected() -> None:
    with pytest.raises(StartupError, match="unknown controller 'route'"):
        enabled_controllers("*,-route")
