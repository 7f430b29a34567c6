"""Hypothesis strategies for tenant Services: valid-shaped ones the translation property uses, which the
hostile-input tests in tests/integration/security build on."""

from __future__ import annotations

import ipaddress
from typing import Any

from hypothesis import strategies as st

from lb.translate import CILIUM_IPS_ANNOTATION

labels = st.from_regex(r"\A[a-z]([-a-z0-9]{0,13}[a-z0-9])?\Z")
prefixes = st.sampled_from(["example.com", "metallb.universe.tf", "lbipam.cilium.io", "evil.example", "a.b.c"])
annotation_keys = st.builds(lambda p, n: f"{p}/{n}", prefixes, labels)
ipv4 = st.integers(min_value=0, max_value=2**32 - 1).map(lambda n: str(ipaddress.IPv4Address(n)))
near_pool = st.integers(min_value=0, max_value=255).map(lambda n: f"198.51.100.{n}")


@st.composite
def tenant_services(draw: st.DrawFn) -> dict[str, Any]:
    count = draw(st.integers(min_value=1, max_value=5))
    names = draw(st.lists(labels, min_size=count, max_size=count, unique=True))
    numbers = draw(st.lists(st.integers(min_value=1, max_value=65535), min_size=count, max_size=count, unique=True))
    protocols = draw(st.lists(st.sampled_from(["TCP", "UDP", "SCTP"]), min_size=count, max_size=count))
    ports = [{"name": n, "port": p, "protocol": proto} for n, p, proto in zip(names, numbers, protocols, strict=True)]
    annotations = draw(st.dictionaries(annotation_keys, st.text(max_size=40), max_size=30))
    if draw(st.booleans()):
        annotations[CILIUM_IPS_ANNOTATION] = ",".join(draw(st.lists(near_pool, min_size=1, max_size=2)))
    if draw(st.booleans()):
        annotations["service.beta.kubernetes.io/load-balancer-source-ranges"] = draw(
            st.sampled_from(["10.0.0.0/8", "192.0.2.0/24,198.51.100.0/24", "not-a-cidr"])
        )
    spec: dict[str, Any] = {
        "type": "LoadBalancer",
        "ports": ports,
        "externalTrafficPolicy": draw(st.sampled_from(["Cluster", "Local"])),
        "ipFamilyPolicy": draw(st.sampled_from(["SingleStack", "PreferDualStack", "RequireDualStack"])),
        "externalIPs": draw(st.lists(ipv4, max_size=2, unique=True)),
    }
    if draw(st.booleans()):
        spec["loadBalancerIP"] = draw(near_pool)
    if draw(st.booleans()):
        spec["sessionAffinity"] = "ClientIP"
        spec["sessionAffinityConfig"] = {"clientIP": {"timeoutSeconds": draw(st.integers(1, 86400))}}
    name = draw(st.from_regex(r"\A[a-z]([-a-z0-9]{0,61}[a-z0-9])?\Z"))
    return {"metadata": {"name": name, "namespace": "default", "annotations": annotations}, "spec": spec}
