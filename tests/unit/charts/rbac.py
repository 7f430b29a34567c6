"""RBAC rules of rendered manifests, and whether they grant a permission the code needs."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

READS = frozenset({"get", "list", "watch"})


@dataclass(frozen=True, order=True)
class Grant:
    """One (group, resource, verb) a rule allows, as RBAC spells it."""

    group: str
    resource: str
    verb: str


def rules(manifests: Iterable[dict[str, Any]], *, kinds: tuple[str, ...] = ("Role", "ClusterRole")) -> list[Any]:
    return [rule for m in manifests if m.get("kind") in kinds for rule in m.get("rules") or []]


def grants(rule_list: Iterable[dict[str, Any]]) -> Iterator[Grant]:
    for rule in rule_list:
        for group in rule.get("apiGroups") or []:
            for resource in rule.get("resources") or []:
                for verb in rule.get("verbs") or []:
                    yield Grant(group, resource, verb)


def allows(rule_list: Iterable[dict[str, Any]], group: str, resource: str, verb: str) -> bool:
    return any(
        g.group in (group, "*") and g.resource in (resource, "*") and g.verb in (verb, "*") for g in grants(rule_list)
    )
