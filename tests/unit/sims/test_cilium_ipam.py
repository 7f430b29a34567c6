"""The Cilium LB-IPAM simulator's decisions: pools, selectors, families, requests, sharing, allocation, status."""

from __future__ import annotations

from ipaddress import ip_address
from typing import Any

import pytest

from e2e.sims import cilium
from e2e.sims.cilium import Ipam, Outcome, ServiceView

SERVICE_NS = cilium.SERVICE_NAMESPACE_LABEL


def pool(name: str, *blocks: dict[str, str], created: str = "2024-01-01T00:00:00Z", **spec: Any) -> cilium.Pool:
    obj = {
        "metadata": {"name": name, "creationTimestamp": created, "generation": 1},
        "spec": {"blocks": list(blocks), **spec},
    }
    return cilium.parse_pool(obj)


def service(name: str = "web", namespace: str = "ns", **spec: Any) -> dict[str, Any]:
    annotations = spec.pop("annotations", {})
    labels = spec.pop("labels", {})
    return {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "generation": 1,
            "labels": labels,
            "annotations": annotations,
        },
        "spec": {"type": "LoadBalancer", "ipFamilies": ["IPv4"], "ipFamilyPolicy": "SingleStack", **spec},
    }


def view(name: str = "web", namespace: str = "ns", **spec: Any) -> ServiceView:
    return cilium.service_view(service(name, namespace, **spec))


def ipam(*pools: cilium.Pool) -> Ipam:
    allocator = Ipam()
    allocator.set_pools(pools)
    return allocator


def ips(outcome: Outcome) -> list[str]:
    return [str(a) for a in outcome.addresses]


# --- pools ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("block", "allow", "first", "last", "reserved"),
    [
        ({"cidr": "10.0.0.0/30"}, None, "10.0.0.0", "10.0.0.3", False),
        ({"cidr": "10.0.0.0/30"}, "Yes", "10.0.0.0", "10.0.0.3", False),
        ({"cidr": "10.0.0.0/30"}, "No", "10.0.0.0", "10.0.0.3", True),
        ({"cidr": "10.0.0.0/31"}, "No", "10.0.0.0", "10.0.0.1", False),
        ({"cidr": "10.0.0.7/32"}, "No", "10.0.0.7", "10.0.0.7", False),
        ({"cidr": "fd00::/120"}, "No", "fd00::", "fd00::ff", True),
        ({"cidr": "fd00::/127"}, "No", "fd00::", "fd00::1", False),
        ({"start": "10.1.0.10", "stop": "10.1.0.20"}, "No", "10.1.0.10", "10.1.0.20", False),
        ({"start": "10.1.0.10"}, None, "10.1.0.10", "10.1.0.10", False),
    ],
)
def test_blocks_follow_cidr_range_and_allow_first_last(
    block: dict[str, str], allow: str | None, first: str, last: str, reserved: bool
) -> None:
    spec = {"allowFirstLastIPs": allow} if allow else {}
    (parsed,) = pool("p", block, **spec).blocks
    assert (str(parsed.first), str(parsed.last), parsed.reserve_edges) == (first, last, reserved)


@pytest.mark.parametrize(
    "block", [{"cidr": "nonsense"}, {"start": "10.0.0.9", "stop": "10.0.0.1"}, {"start": "10.0.0.1", "stop": "fd00::1"}]
)
def test_unparsable_blocks_are_skipped(block: dict[str, str]) -> None:
    assert pool("p", block, {"cidr": "10.0.0.0/24"}).blocks == (cilium.Block("p", *_span("10.0.0.0", "10.0.0.255")),)


def _span(first: str, last: str) -> tuple[cilium.Address, cilium.Address]:
    return ip_address(first), ip_address(last)


def test_the_newer_of_two_overlapping_pools_conflicts() -> None:
    older = pool("older", {"cidr": "10.0.0.0/24"}, created="2024-01-01T00:00:00Z")
    newer = pool("newer", {"start": "10.0.0.200", "stop": "10.0.1.5"}, created="2024-01-02T00:00:00Z")
    other = pool("other", {"cidr": "fd00::/120"}, created="2024-01-03T00:00:00Z")
    settled = {p.name: p for p in cilium.settle_conflicts([newer, other, older])}
    assert settled["older"].conflict is None
    assert settled["other"].conflict is None
    assert settled["newer"].conflict == (
        "Pool conflicts since range '10.0.0.200 - 10.0.1.5' overlaps range '10.0.0.0 - 10.0.0.255' from IP Pool 'older'"
    )


def test_a_pool_overlapping_itself_conflicts() -> None:
    (settled,) = cilium.settle_conflicts([pool("p", {"cidr": "10.0.0.0/24"}, {"cidr": "10.0.0.128/25"})])
    assert settled.conflict is not None and "from IP Pool 'p'" in settled.conflict


@pytest.mark.parametrize(
    ("selector", "matches"),
    [
        (None, True),
        ({}, True),
        ({"matchLabels": {"color": "blue"}}, True),
        ({"matchLabels": {"color": "red"}}, False),
        ({"matchExpressions": [{"key": "color", "operator": "In", "values": ["red", "blue"]}]}, True),
        ({"matchExpressions": [{"key": "color", "operator": "NotIn", "values": ["blue"]}]}, False),
        ({"matchExpressions": [{"key": "size", "operator": "NotIn", "values": ["xl"]}]}, True),
        ({"matchExpressions": [{"key": "color", "operator": "Exists"}]}, True),
        ({"matchExpressions": [{"key": "color", "operator": "DoesNotExist"}]}, False),
        ({"matchExpressions": [{"key": "color", "operator": "In", "values": []}]}, False),
        ({"matchLabels": {"io.kubernetes.service.namespace": "ns", "io.kubernetes.service.name": "web"}}, True),
        ({"matchLabels": {"io.kubernetes.service.namespace": "other"}}, False),
    ],
)
def test_pool_selectors_see_labels_and_the_special_keys(selector: dict[str, Any] | None, matches: bool) -> None:
    labels = view(labels={"color": "blue"}).labels
    assert cilium.selector_matches(selector, labels) is matches


# --- services ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "served"),
    [
        ({"type": "LoadBalancer"}, True),
        ({"type": "LoadBalancer", "loadBalancerClass": "io.cilium/l2-announcer"}, True),
        ({"type": "LoadBalancer", "loadBalancerClass": "io.cilium/bgp-control-plane"}, True),
        ({"type": "LoadBalancer", "loadBalancerClass": "example.com/other"}, False),
        ({"type": "ClusterIP"}, False),
        ({"type": "NodePort"}, False),
    ],
)
def test_serves_load_balancers_without_a_class_or_with_ciliums(spec: dict[str, str], served: bool) -> None:
    assert cilium.is_served({"spec": spec}) is served


@pytest.mark.parametrize(
    ("policy", "families", "wanted"),
    [
        (None, [], {4}),
        ("SingleStack", ["IPv6"], {6}),
        ("SingleStack", ["IPv4", "IPv6"], {4}),
        ("PreferDualStack", ["IPv6", "IPv4"], {4, 6}),
        ("PreferDualStack", ["IPv6"], {6}),
        ("PreferDualStack", [], {4, 6}),
        ("RequireDualStack", ["IPv4"], {4, 6}),
    ],
)
def test_families_follow_the_ip_family_policy(policy: str | None, families: list[str], wanted: set[int]) -> None:
    spec: dict[str, Any] = {"ipFamilies": families}
    if policy:
        spec["ipFamilyPolicy"] = policy
    assert cilium.requested_families(spec) == wanted


def test_requests_come_from_load_balancer_ip_and_the_annotation() -> None:
    obj = service(
        loadBalancerIP="10.0.0.5",
        annotations={"lbipam.cilium.io/ips": "10.0.0.6, fd00::6,bogus,10.0.0.5"},
    )
    assert [str(a) for a in cilium.requested_addresses(obj)] == ["10.0.0.5", "10.0.0.6", "fd00::6"]


def test_the_old_annotation_names_still_work() -> None:
    seen = view(annotations={"io.cilium/lb-ipam-ips": "10.0.0.6", "io.cilium/lb-ipam-sharing-key": "k"})
    assert ([str(a) for a in seen.requested], seen.sharing_key) == (["10.0.0.6"], "k")


def _sharer(namespace: str = "ns", key: str = "k", port: int = 80, **extra: Any) -> ServiceView:
    annotations = {"lbipam.cilium.io/sharing-key": key, **extra.pop("annotations", {})}
    return view(f"svc-{port}", namespace, ports=[{"port": port}], annotations=annotations, **extra)


@pytest.mark.parametrize(
    ("a", "b", "reason"),
    [
        (_sharer(port=80), _sharer(port=443), None),
        (_sharer(key="a"), _sharer(key="b", port=443), "different sharing key"),
        (_sharer(port=80), _sharer(port=80), "same port"),
        (_sharer(namespace="x"), _sharer(namespace="y", port=443), "different and not permitted namespace"),
        (
            _sharer(namespace="x", annotations={"lbipam.cilium.io/sharing-cross-namespace": "y"}),
            _sharer(namespace="y", port=443),
            "different and not permitted namespace",
        ),
        (
            _sharer(namespace="x", annotations={"lbipam.cilium.io/sharing-cross-namespace": "y"}),
            _sharer(namespace="y", port=443, annotations={"lbipam.cilium.io/sharing-cross-namespace": "*"}),
            None,
        ),
        (
            _sharer(namespace="x", annotations={"lbipam.cilium.io/sharing-cross-namespace": "z, y"}),
            _sharer(namespace="y", port=443, annotations={"lbipam.cilium.io/sharing-cross-namespace": "x"}),
            "different and not permitted namespace",
        ),
        (
            _sharer(externalTrafficPolicy="Local"),
            _sharer(port=443),
            "different ExternalTrafficPolicy",
        ),
        (
            _sharer(externalTrafficPolicy="Local", selector={"app": "a"}),
            _sharer(port=443, externalTrafficPolicy="Local", selector={"app": "b"}),
            "compatible ExternalTrafficPolicy local but selecting different set of pods",
        ),
        (
            _sharer(externalTrafficPolicy="Local", selector={"app": "a"}),
            _sharer(port=443, externalTrafficPolicy="Local", selector={"app": "a"}),
            None,
        ),
    ],
)
def test_sharing_rules(a: ServiceView, b: ServiceView, reason: str | None) -> None:
    assert cilium.sharing_conflict(a, b) == reason
    assert cilium.sharing_conflict(b, a) == reason


# --- allocation ----------------------------------------------------------------------------------------------


def test_allocates_in_order_from_a_cidr_then_the_next_block() -> None:
    allocator = ipam(pool("p", {"cidr": "10.0.0.0/31"}, {"start": "10.0.1.10", "stop": "10.0.1.11"}))
    got = [ips(allocator.assign(view(f"s{i}"))) for i in range(4)]
    assert got == [["10.0.0.0"], ["10.0.0.1"], ["10.0.1.10"], ["10.0.1.11"]]


def test_allow_first_last_no_skips_network_and_broadcast() -> None:
    allocator = ipam(pool("p", {"cidr": "10.0.0.0/30"}, allowFirstLastIPs="No"))
    got = [allocator.assign(view(f"s{i}")) for i in range(3)]
    assert [ips(o) for o in got] == [["10.0.0.1"], ["10.0.0.2"], []]
    assert (got[2].reason, got[2].message) == (
        cilium.OUT_OF_IPS,
        "All enabled CiliumLoadBalancerIPPools that match this service ran out of allocatable IPs",
    )
    assert allocator.usage("p") == (4, 4)


def test_no_pool_when_no_enabled_pool_selects_the_service() -> None:
    allocator = ipam(
        pool("other-ns", {"cidr": "10.0.0.0/24"}, serviceSelector={"matchLabels": {SERVICE_NS: "elsewhere"}}),
        pool("off", {"cidr": "10.0.1.0/24"}, disabled=True),
        pool("v6", {"cidr": "fd00::/120"}),
    )
    outcome = allocator.assign(view())
    assert (outcome.addresses, outcome.reason) == ((), cilium.NO_POOL)
    assert outcome.message == "There are no enabled CiliumLoadBalancerIPPools that match this service"
    assert allocator.waiting() == ["ns/web"]


def test_dual_stack_gets_one_address_per_family() -> None:
    allocator = ipam(pool("p", {"cidr": "10.0.0.0/24"}, {"cidr": "fd00::/120"}))
    outcome = allocator.assign(view(ipFamilyPolicy="RequireDualStack", ipFamilies=["IPv6", "IPv4"]))
    assert (ips(outcome), outcome.reason) == (["10.0.0.0", "fd00::"], cilium.SATISFIED)


def test_prefer_dual_stack_without_a_v6_pool_keeps_v4_but_is_unsatisfied() -> None:
    allocator = ipam(pool("p", {"cidr": "10.0.0.0/24"}))
    outcome = allocator.assign(view(ipFamilyPolicy="PreferDualStack", ipFamilies=["IPv4", "IPv6"]))
    assert (ips(outcome), outcome.reason) == (["10.0.0.0"], cilium.NO_POOL)


def test_requested_addresses() -> None:
    allocator = ipam(
        pool("p", {"cidr": "10.0.0.0/24"}, allowFirstLastIPs="No"),
        pool("q", {"cidr": "10.0.1.0/24"}, serviceSelector={"matchLabels": {"color": "red"}}),
    )
    assert ips(allocator.assign(view("a", loadBalancerIP="10.0.0.7"))) == ["10.0.0.7"]
    assert ips(allocator.assign(view("b", annotations={"lbipam.cilium.io/ips": "10.0.0.8,10.0.0.9"}))) == [
        "10.0.0.8",
        "10.0.0.9",
    ]
    cases = {
        "c": ("10.9.9.9", cilium.NO_POOL, "No pool exists with a CIDR containing '10.9.9.9'"),
        "d": (
            "10.0.1.5",
            cilium.POOL_SELECTOR_MISMATCH,
            "The pool with the CIDR containing '10.0.1.5', doesn't select this service",
        ),
        "e": ("10.0.0.7", cilium.ALREADY_ALLOCATED, "The IP '10.0.0.7' is already allocated to another service"),
        "f": ("10.0.0.255", cilium.ALREADY_ALLOCATED, "The IP '10.0.0.255' is already allocated to another service"),
    }
    for name, (address, reason, message) in cases.items():
        outcome = allocator.assign(view(name, loadBalancerIP=address))
        assert (outcome.addresses, outcome.reason, outcome.message) == ((), reason, message), name


def test_a_partly_satisfiable_request_keeps_what_it_got() -> None:
    allocator = ipam(pool("p", {"cidr": "10.0.0.0/24"}))
    outcome = allocator.assign(view(annotations={"lbipam.cilium.io/ips": "10.0.0.5,10.9.9.9"}))
    assert (ips(outcome), outcome.reason) == (["10.0.0.5"], cilium.NO_POOL)


def test_sharing_key_shares_unless_ports_clash() -> None:
    allocator = ipam(pool("p", {"cidr": "10.0.0.0/24"}))
    first = allocator.assign(_sharer(port=80))
    second = allocator.assign(_sharer(port=443))
    clash = allocator.assign(view("clash", **_sharing_spec(80)))
    assert ips(first) == ips(second) == ["10.0.0.0"]
    assert ips(clash) == ["10.0.0.1"]
    assert allocator.usage("p") == (256, 2)


def _sharing_spec(port: int, key: str = "k", **extra: Any) -> dict[str, Any]:
    return {"ports": [{"port": port}], "annotations": {"lbipam.cilium.io/sharing-key": key}, **extra}


def test_requesting_a_shared_address() -> None:
    allocator = ipam(pool("p", {"cidr": "10.0.0.0/24"}))
    allocator.assign(view("a", loadBalancerIP="10.0.0.9", **_sharing_spec(80)))
    joined = allocator.assign(view("b", loadBalancerIP="10.0.0.9", **_sharing_spec(443)))
    clash = allocator.assign(view("c", loadBalancerIP="10.0.0.9", **_sharing_spec(80)))
    assert (ips(joined), joined.reason) == (["10.0.0.9"], cilium.SATISFIED)
    assert (clash.addresses, clash.reason, clash.message) == (
        (),
        cilium.ALREADY_ALLOCATED_INCOMPATIBLE,
        "The IP '10.0.0.9' is already allocated to an incompatible service. Reason: same port",
    )


def test_a_shared_address_is_freed_by_its_last_user() -> None:
    allocator = ipam(pool("p", {"cidr": "10.0.0.0/31"}))
    allocator.assign(view("a", **_sharing_spec(80)))
    allocator.assign(view("b", **_sharing_spec(443)))
    assert not allocator.release("ns/a").freed
    assert allocator.release("ns/b").freed
    assert ips(allocator.assign(view("c"))) == ["10.0.0.0"]


def test_a_port_change_that_clashes_moves_the_service_to_a_new_address() -> None:
    allocator = ipam(pool("p", {"cidr": "10.0.0.0/24"}))
    allocator.assign(view("a", **_sharing_spec(80)))
    allocator.assign(view("b", **_sharing_spec(443)))
    moved = allocator.assign(view("b", **_sharing_spec(80)))
    assert ips(moved) == ["10.0.0.1"]


def test_release_frees_the_lowest_address_for_reuse() -> None:
    allocator = ipam(pool("p", {"cidr": "10.0.0.0/24"}))
    for name in "abc":
        allocator.assign(view(name))
    outcome = allocator.release("ns/b")
    assert (outcome.freed, outcome.pools, allocator.tracks("ns/b")) == (True, frozenset({"p"}), False)
    assert ips(allocator.assign(view("d"))) == ["10.0.0.1"]


def test_out_of_ips_waits_and_a_release_makes_room() -> None:
    allocator = ipam(pool("p", {"cidr": "10.0.0.0/32"}))
    allocator.assign(view("a"))
    assert allocator.assign(view("b")).reason == cilium.OUT_OF_IPS
    assert allocator.waiting() == ["ns/b"]
    allocator.release("ns/a")
    assert ips(allocator.assign(view("b"))) == ["10.0.0.0"]
    assert allocator.waiting() == []


def test_existing_addresses_are_adopted_before_new_ones_are_handed_out() -> None:
    allocator = ipam(pool("p", {"cidr": "10.0.0.0/24"}))
    allocator.adopt(view("old"), ["10.0.0.0"])
    allocator.adopt(view("outside"), ["192.0.2.1"])
    fresh = allocator.assign(view("new"))
    kept = allocator.assign(view("old"))
    moved = allocator.assign(view("outside"))
    assert (ips(fresh), ips(kept), ips(moved)) == (["10.0.0.1"], ["10.0.0.0"], ["10.0.0.2"])
    assert not kept.pools


def test_adoption_keeps_addresses_from_a_disabled_pool() -> None:
    allocator = ipam(pool("p", {"cidr": "10.0.0.0/24"}, disabled=True))
    allocator.adopt(view(), ["10.0.0.42"])
    assert ips(allocator.assign(view())) == ["10.0.0.42"]


def test_adoption_takes_one_address_per_family_and_nothing_unrequested() -> None:
    allocator = ipam(pool("p", {"cidr": "10.0.0.0/24"}, {"cidr": "fd00::/120"}))
    allocator.adopt(view("a"), ["10.0.0.1", "10.0.0.2", "fd00::1"])
    allocator.adopt(view("b", loadBalancerIP="10.0.0.9"), ["10.0.0.3"])
    assert ips(allocator.assign(view("a"))) == ["10.0.0.1"]
    assert ips(allocator.assign(view("b", loadBalancerIP="10.0.0.9"))) == ["10.0.0.9"]


def test_a_deleted_pool_or_a_selector_change_takes_addresses_back() -> None:
    blue = {"matchLabels": {"color": "blue"}}
    allocator = ipam(pool("p", {"cidr": "10.0.0.0/24"}, serviceSelector=blue), pool("q", {"cidr": "10.0.1.0/24"}))
    assert ips(allocator.assign(view(labels={"color": "blue"}))) == ["10.0.0.0"]
    moved = allocator.assign(view(labels={"color": "red"}))
    assert (ips(moved), moved.freed, moved.pools) == (["10.0.1.0"], True, frozenset({"p", "q"}))
    allocator.set_pools([pool("p", {"cidr": "10.0.0.0/24"}, serviceSelector=blue)])
    gone = allocator.assign(view(labels={"color": "red"}))
    assert (gone.addresses, gone.reason) == ((), cilium.NO_POOL)


def test_disabling_a_pool_keeps_existing_allocations() -> None:
    allocator = ipam(pool("p", {"cidr": "10.0.0.0/24"}))
    allocator.assign(view("a"))
    allocator.set_pools([pool("p", {"cidr": "10.0.0.0/24"}, disabled=True)])
    assert ips(allocator.assign(view("a"))) == ["10.0.0.0"]
    assert allocator.assign(view("b")).reason == cilium.NO_POOL


def test_a_conflicting_pool_hands_out_nothing() -> None:
    allocator = ipam(
        pool("old", {"cidr": "10.0.0.0/24"}, serviceSelector={"matchLabels": {"color": "red"}}),
        pool("new", {"cidr": "10.0.0.0/24"}, created="2024-02-01T00:00:00Z"),
    )
    assert allocator.assign(view()).reason == cilium.NO_POOL


def test_family_change_swaps_the_address() -> None:
    allocator = ipam(pool("p", {"cidr": "10.0.0.0/24"}, {"cidr": "fd00::/120"}))
    allocator.assign(view())
    outcome = allocator.assign(view(ipFamilies=["IPv6"]))
    assert ips(outcome) == ["fd00::"]


def test_a_thousand_services_take_a_thousand_addresses() -> None:
    allocator = ipam(pool("p", {"cidr": "10.0.0.0/22"}, allowFirstLastIPs="No"))
    outcomes = [allocator.assign(view(f"s{i}")) for i in range(1000)]
    assert len({o.addresses for o in outcomes}) == 1000
    assert ips(outcomes[-1]) == ["10.0.3.232"]


# --- status --------------------------------------------------------------------------------------------------


def test_condition_keeps_its_transition_time_while_the_status_holds() -> None:
    first = cilium.condition(None, cilium.REQUEST_SATISFIED, "False", "no_pool", "m", 1, "t1")
    same = cilium.condition(first, cilium.REQUEST_SATISFIED, "False", "out_of_ips", "n", 2, "t2")
    flipped = cilium.condition(same, cilium.REQUEST_SATISFIED, "True", "satisfied", "", 2, "t3")
    assert (first["lastTransitionTime"], same["lastTransitionTime"], flipped["lastTransitionTime"]) == (
        "t1",
        "t1",
        "t3",
    )
    assert (same["reason"], same["observedGeneration"]) == ("out_of_ips", 2)


def test_a_zero_generation_is_left_out_as_the_api_leaves_it_out() -> None:
    written = cilium.condition(None, cilium.REQUEST_SATISFIED, "True", "satisfied", "", 0, "t")
    assert "observedGeneration" not in written
    echoed = {"type": cilium.REQUEST_SATISFIED, "status": "True", "lastTransitionTime": "t", "reason": "satisfied"}
    again = cilium.condition({**echoed, "message": ""}, cilium.REQUEST_SATISFIED, "True", "satisfied", "", 0, "later")
    assert cilium.service_status_patch(_with_status([], [{**echoed, "message": ""}]), [], again) is None


def _with_status(ingress: list[dict[str, str]], conditions: list[dict[str, Any]]) -> dict[str, Any]:
    return {**service(), "status": {"loadBalancer": {"ingress": ingress}, "conditions": conditions}}


SATISFIED_CONDITION = cilium.condition(None, cilium.REQUEST_SATISFIED, "True", "satisfied", "", 1, "t")


def test_status_patch_is_none_when_nothing_changed() -> None:
    obj = _with_status([{"ip": "10.0.0.1", "ipMode": "VIP"}], [SATISFIED_CONDITION])
    assert cilium.service_status_patch(obj, ["10.0.0.1"], SATISFIED_CONDITION) is None


def test_status_patch_writes_ingress_and_our_condition_only() -> None:
    other = {"type": "example.com/Ready", "status": "True"}
    obj = _with_status([{"ip": "10.0.0.1", "ipMode": "VIP"}], [other])
    patch = cilium.service_status_patch(obj, ["10.0.0.1", "fd00::1"], SATISFIED_CONDITION)
    assert patch == {
        "status": {
            "loadBalancer": {"ingress": [{"ip": "10.0.0.1", "ipMode": "VIP"}, {"ip": "fd00::1"}]},
            "conditions": [SATISFIED_CONDITION],
        }
    }


def test_status_patch_removes_our_condition_when_we_let_go() -> None:
    obj = _with_status([{"ip": "10.0.0.1"}], [SATISFIED_CONDITION])
    assert cilium.service_status_patch(obj, [], None) == {
        "status": {
            "loadBalancer": {"ingress": []},
            "conditions": [{"$patch": "delete", "type": cilium.REQUEST_SATISFIED}],
        }
    }


def test_pool_conditions_report_counts_and_conflicts_and_keep_others() -> None:
    other = {"type": "example.com/Audited", "status": "True"}
    conflicting = cilium.settle_conflicts(
        [pool("a", {"cidr": "10.0.0.0/24"}), pool("b", {"cidr": "10.0.0.0/24"}, created="2024-02-01T00:00:00Z")]
    )[1]
    conditions = cilium.pool_conditions(conflicting, 256, 2, [other], "t")
    summary = [(c["type"], c["status"], c.get("reason"), c.get("message")) for c in conditions]
    assert summary == [
        ("example.com/Audited", "True", None, None),
        (
            cilium.POOL_CONFLICT,
            "True",
            "cidr_overlap",
            "Pool conflicts since range '10.0.0.0 - 10.0.0.255' overlaps range '10.0.0.0 - 10.0.0.255'"
            " from IP Pool 'a'",
        ),
        (cilium.IPS_TOTAL, "Unknown", "noreason", "256"),
        (cilium.IPS_AVAILABLE, "Unknown", "noreason", "254"),
        (cilium.IPS_USED, "Unknown", "noreason", "2"),
    ]
    assert cilium.pool_conditions(conflicting, 256, 2, conditions, "later") == conditions
