"""Both charts lint and render for their defaults and every example values file; their schemas reject typos."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from e2e import helm

CHARTS = [helm.TENANT_CHART, helm.PARENT_CHART]
CASES = [(chart, None) for chart in CHARTS] + [(c, f) for c in CHARTS for f in helm.example_values(c)]


def _id(case: Any) -> str:
    return case.name if isinstance(case, Path) else "defaults" if case is None else str(case)


def test_each_chart_has_at_least_three_realistic_values_files() -> None:
    for chart in CHARTS:
        names = {path.name for path in helm.example_values(chart)}
        assert {"least-privilege-values.yaml", "selectorless-values.yaml", "linstor-classes-values.yaml"} <= names


@pytest.mark.parametrize(("chart", "values_file"), CASES, ids=_id)
def test_lint_strict_passes(chart: Path, values_file: Path | None) -> None:
    helm.lint(chart, value_files=[values_file] if values_file else [])


@pytest.mark.parametrize(("chart", "values_file"), CASES, ids=_id)
def test_template_renders_named_namespaced_objects(chart: Path, values_file: Path | None) -> None:
    manifests = helm.template(chart, namespace="ns", value_files=[values_file] if values_file else [])
    assert manifests
    for manifest in manifests:
        assert manifest["apiVersion"] and manifest["kind"] and manifest["metadata"]["name"]


TYPOS = [
    (helm.TENANT_CHART, {"clustername": "acme"}, "clustername"),
    (helm.TENANT_CHART, {"ccm": {"loadBalancer": {"selectorles": True}}}, "selectorles"),
    (helm.TENANT_CHART, {"ccm": {"instancesV2": {"zoneAndRegionEnabeld": False}}}, "zoneAndRegionEnabeld"),
    (helm.TENANT_CHART, {"csi": {"atachTimeout": 90}}, "atachTimeout"),
    (helm.TENANT_CHART, {"storageClasses": [{"name": "fast", "parentStorageClas": "linstor"}]}, "parentStorageClas"),
    (helm.TENANT_CHART, {"parentKubeconfig": {"secretNam": "x"}}, "secretNam"),
    (helm.PARENT_CHART, {"ccm": {"selectorles": True}}, "selectorles"),
    (helm.PARENT_CHART, {"policies": {"storage": {"maxVolumSize": "1Ti"}}}, "maxVolumSize"),
]
WRONG_TYPES = [
    (helm.TENANT_CHART, {"ccm": {"replicas": "two"}}, "/ccm/replicas"),
    (helm.TENANT_CHART, {"csi": {"attachTimeout": "60s"}}, "/csi/attachTimeout"),
    (helm.TENANT_CHART, {"storageClasses": {"name": "fast"}}, "/storageClasses"),
    (helm.TENANT_CHART, {"ccm": {"loadBalancer": {"allowedIPRanges": "10.0.0.0/8"}}}, "allowedIPRanges"),
    (helm.TENANT_CHART, {"ccm": {"instancesV2": {"topology": {"source": "node"}}}}, "/ccm/instancesV2/topology/source"),
    (helm.TENANT_CHART, {"csi": {"parentVolumeKind": "Volume"}}, "/csi/parentVolumeKind"),
    (helm.TENANT_CHART, {"ccm": {"leaderElection": {"leaseDuration": 15}}}, "leaseDuration"),
    (helm.PARENT_CHART, {"ccm": {"zoneFromParentNodes": "yes"}}, "/ccm/zoneFromParentNodes"),
    (helm.PARENT_CHART, {"policies": {"storage": {"maxVolumeSize": 1024}}}, "/policies/storage/maxVolumeSize"),
    (helm.PARENT_CHART, {"policies": {"loadBalancer": {"allowedIPRanges": ["10.0.0.1"]}}}, "allowedIPRanges"),
]


@pytest.mark.parametrize(("chart", "values", "named"), TYPOS + WRONG_TYPES, ids=lambda v: _id(v)[:60])
def test_the_schema_rejects_typos_and_wrong_types_naming_the_key(
    chart: Path, values: dict[str, Any], named: str
) -> None:
    with pytest.raises(helm.HelmError, match="values don't meet the specifications of the schema") as failure:
        helm.template(chart, namespace="ns", values=values)
    assert named in str(failure.value)
    with pytest.raises(helm.HelmError):
        helm.lint(chart, values=values)


def test_storage_class_parameters_the_driver_would_reject_are_rejected_up_front() -> None:
    bad = {"storageClasses": [{"name": "fast", "parameters": {"placementCount": "2"}}]}
    with pytest.raises(helm.HelmError, match="placementCount"):
        helm.template(helm.TENANT_CHART, namespace="ns", values=bad)
    good = {"storageClasses": [{"name": "fast", "parameters": {"csi.storage.k8s.io/fstype": "xfs"}}]}
    assert helm.find(helm.template(helm.TENANT_CHART, namespace="ns", values=good), "StorageClass", "fast")


def test_two_default_storage_classes_fail_the_render() -> None:
    classes = [{"name": "a", "default": True}, {"name": "b", "default": True}]
    with pytest.raises(helm.HelmError, match="at most one class may set default"):
        helm.template(helm.TENANT_CHART, namespace="ns", values={"storageClasses": classes})
