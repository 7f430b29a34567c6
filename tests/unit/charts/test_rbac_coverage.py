"""The charts grant what the code calls, and nothing it does not (calls derived from the code: calls.py)."""

from __future__ import annotations

import textwrap
from functools import cache
from typing import Any

import pytest

from e2e import helm
from kube import resources
from tests.unit.charts.calls import CallSite, Module, Scanner, Unresolved, code_calls, import_closure
from tests.unit.charts.rbac import READS, Grant, allows, grants, rules

# Every configuration a parent chart can grant (a Role is the union over these renders).
PARENT_RENDERS: list[dict[str, Any]] = [
    {"ccm": {"selectorless": True, "zoneFromParentNodes": True}},
    {"csi": {"parentVolumeKind": "PersistentVolumeClaim"}},
    {"csi": {"linstor": True}, "policies": {"storage": {"allowedStorageClasses": ["linstor-a"]}}},
]
# The CSI node plugin's tenant calls (everything else of csi/ runs in the controller).
CSI_NODE_FUNCTIONS = frozenset({"resolve_node_id"})
# Granted although no call site of ours makes the request: someone else checks it on our behalf.
PARENT_EXTRAS = {
    Grant("cdi.kubevirt.io", "datavolumes/source", "create"): (
        "CDI authorises DataVolumes with a pvc/snapshot source by a SubjectAccessReview for this"
    ),
}


@cache
def calls() -> tuple[CallSite, ...]:
    return tuple(code_calls())


@cache
def parent_rules() -> tuple[Any, ...]:
    found: list[Any] = []
    for values in PARENT_RENDERS:
        found += rules(helm.template(helm.PARENT_CHART, namespace="tenant-x", values=values))
    return tuple(found)


@cache
def tenant_manifests() -> tuple[dict[str, Any], ...]:
    values = {"ccm": {"loadBalancer": {"selectorless": True}}}
    return tuple(helm.template(helm.TENANT_CHART, namespace="kube-system", values=values))


def tenant_rules(component: str) -> list[Any]:
    """Rules bound to one component's ServiceAccount (ccm, csi-controller, csi-node)."""
    account = f"tenant-cloud-{component}"
    roles = {
        (b["roleRef"]["kind"], b["roleRef"]["name"])
        for b in tenant_manifests()
        if b["kind"] in ("RoleBinding", "ClusterRoleBinding") and any(s["name"] == account for s in b["subjects"])
    }
    return rules(m for m in tenant_manifests() if (m["kind"], m["metadata"]["name"]) in roles)


def missing(sites: list[CallSite], rule_list: list[Any]) -> list[str]:
    return sorted(
        f"{s.where}: {s.permission.verb} {s.permission.resource}"
        f"{'.' + s.permission.group if s.permission.group else ''}"
        for s in sites
        if not allows(rule_list, s.permission.group, s.permission.resource, s.permission.verb)
    )


def unused(rule_list: list[Any], sites: list[CallSite], extras: dict[Grant, str]) -> list[Grant]:
    """Grants no call site needs. A read verb counts as used when any read of the resource is (list ⊇ get)."""
    used = {(s.permission.group, s.permission.resource, s.permission.verb) for s in sites}
    read = {(g, r) for g, r, v in used if v in READS}
    return sorted(
        grant
        for grant in set(grants(rule_list))
        if (grant.group, grant.resource, grant.verb) not in used
        and not (grant.verb in READS and (grant.group, grant.resource) in read)
        and grant not in extras
    )


def sites(cluster: str, component: str | None = None) -> list[CallSite]:
    return [
        c
        for c in calls()
        if c.permission.cluster == cluster and (component is None or c.permission.component == component)
    ]


def test_the_scanner_finds_the_calls_the_charts_exist_for() -> None:
    """Guards the scanner: if it silently found nothing, every coverage test below would pass."""
    found = {(c.permission.cluster, c.permission.group, c.permission.resource, c.permission.verb) for c in calls()}
    for expected in [
        ("parent", "subresources.kubevirt.io", "virtualmachines/addvolume", "update"),
        ("parent", "subresources.kubevirt.io", "virtualmachines/removevolume", "update"),
        ("parent", "subresources.kubevirt.io", "virtualmachineinstances/removevolume", "update"),
        ("parent", "discovery.k8s.io", "endpointslices", "create"),
        ("parent", "cdi.kubevirt.io", "datavolumes", "create"),
        ("parent", "", "persistentvolumeclaims", "patch"),
        ("parent", "", "persistentvolumeclaims", "watch"),
        ("parent", "snapshot.storage.k8s.io", "volumesnapshots", "list"),
        ("parent", "", "services", "delete"),
        ("parent", "", "nodes", "watch"),
        ("tenant", "", "nodes/status", "patch"),
        ("tenant", "", "services/status", "patch"),
        ("tenant", "coordination.k8s.io", "leases", "update"),
        ("tenant", "", "events", "create"),
        ("tenant", "", "nodes", "get"),
    ]:
        assert expected in found


def test_the_parent_role_covers_every_call_site() -> None:
    assert missing(sites("parent"), list(parent_rules())) == []


def test_the_parent_role_grants_nothing_the_code_does_not_call() -> None:
    assert unused(list(parent_rules()), sites("parent"), PARENT_EXTRAS) == []


def test_the_ccm_tenant_rbac_covers_every_call_site() -> None:
    assert missing(sites("tenant", "ccm"), tenant_rules("ccm")) == []


def test_the_ccm_tenant_rbac_grants_nothing_the_code_does_not_call() -> None:
    assert unused(tenant_rules("ccm"), sites("tenant", "ccm"), {}) == []


def csi_sites(*, node: bool) -> list[CallSite]:
    return [s for s in sites("tenant", "csi") if (s.function in CSI_NODE_FUNCTIONS) is node]


def test_the_csi_node_rbac_is_exactly_what_the_node_plugin_calls() -> None:
    node_rules = tenant_rules("csi-node")
    assert {(s.permission.resource, s.permission.verb) for s in csi_sites(node=True)} == {("nodes", "get")}
    assert missing(csi_sites(node=True), node_rules) == []
    assert unused(node_rules, csi_sites(node=True), {}) == []


def test_the_csi_controller_rbac_covers_the_driver_s_own_tenant_calls() -> None:
    """Beside the sidecars' needs: LINSTOR health Events on tenant PVCs (list/watch PVs, create/patch events)."""
    assert missing(csi_sites(node=False), tenant_rules("csi-controller")) == []


def _synthetic_scan(body: str) -> list[CallSite]:
    source = textwrap.dedent(body)
    module = Module.load("csi/synthetic.py", frozenset({"csi"}), source=source, name="synthetic")
    return list(Scanner([module], {"synthetic": vars(resources)}).call_sites())


def test_a_new_call_site_the_role_lacks_is_reported() -> None:
    found = _synthetic_scan(
        """
        class Leaky:
            async def read(self):
                return await self.parent.client.list(SECRETS, "ns")
        """
    )
    assert missing(found, list(parent_rules())) == ["csi/synthetic.py:4: list secrets"]


def test_a_call_site_the_scanner_cannot_follow_is_an_error_not_a_pass() -> None:
    with pytest.raises(Unresolved, match="cannot tell which resource"):
        _synthetic_scan(
            """
            class Opaque:
                async def write(self, body):
                    return await self.parent.create(self.kind_of(body), body)
            """
        )


def test_only_modules_a_process_imports_count() -> None:
    ccm, csi = import_closure("ccm/__main__.py"), import_closure("csi/__main__.py")
    assert "lb/controller.py" in ccm and "kube/leaderelection.py" in ccm
    assert "csi/nodeservice.py" in csi  # imported inside a function
    assert not any(path.startswith("csi/") for path in ccm)
    assert not any(path.startswith(("ccm/", "lb/")) for path in csi)


def test_an_over_grant_is_reported() -> None:
    extra = {"apiGroups": [""], "resources": ["services"], "verbs": ["patch", "deletecollection"]}
    assert unused([*parent_rules(), extra], sites("parent"), PARENT_EXTRAS) == [
        Grant("", "services", "deletecollection"),
        Grant("", "services", "patch"),
    ]
