"""What the parent should hold, read from the real apiservers, and the differences from what it does hold.

Each check returns a list of problems (empty = converged), so a test can wait for convergence and, when it
does not come, fail with the list of what is still wrong.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable

from csi.parent import DATAVOLUMES, VIRTUALMACHINEINSTANCES, VIRTUALMACHINES
from e2e import cluster as harness
from kube.client import Client, Object
from kube.resources import EVENTS, SERVICES
from lb.translate import FINALIZER, PROTOCOLS, TENANT_NAME_LABEL, TENANT_NAMESPACE_LABEL, parent_service_name
from tests.integration.reliability.components import CLUSTER_LABEL

Check = Callable[[], Awaitable[list[str]]]


def ingress_ips(service: Object) -> list[str]:
    ingress = ((service.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return sorted(str(entry.get("ip")) for entry in ingress if entry.get("ip"))


def _name(obj: Object) -> str:
    return f"{obj['metadata'].get('namespace')}/{obj['metadata']['name']}"


def served(service: Object) -> bool:
    """A tenant Service the ccm must expose: type LoadBalancer, no class, not being deleted, a port to expose."""
    spec = service.get("spec") or {}
    exposable = [p for p in spec.get("ports") or [] if p.get("nodePort") and p.get("protocol", "TCP") in PROTOCOLS]
    return (
        spec.get("type") == "LoadBalancer"
        and not spec.get("loadBalancerClass")
        and not service["metadata"].get("deletionTimestamp")
        and bool(exposable)
    )


async def event_reasons(tenant: Client, namespace: str, name: str) -> set[str]:
    """Reasons of the Events recorded about one tenant object."""
    listed = await tenant.list_all(EVENTS, namespace, field_selector=f"involvedObject.name={name}")
    return {str(event.get("reason")) for event in listed.items}


async def parent_services(parent: Client, cluster: harness.Cluster, cluster_name: str) -> list[Object]:
    """Every parent Service carrying `cluster_name`'s ownership label."""
    listed = await parent.list_all(SERVICES, cluster.parent_namespace, label_selector=f"{CLUSTER_LABEL}={cluster_name}")
    return listed.items


async def service_problems(
    tenant: Client,
    parent: Client,
    cluster: harness.Cluster,
    cluster_name: str,
    only: Callable[[str], bool] = lambda _key: True,
) -> list[str]:
    """Each served tenant Service has exactly one parent Service, named after its UID, with its ports, and the
    parent's IP in its status; no other parent Service of the cluster exists; Services that are not served
    have no parent and no finalizer left.

    The expectation covers the whole tenant cluster (a ccm serves every namespace); `only` narrows it to the
    tenant Services (`namespace/name`) one assertion is about.
    """
    tenants = {_name(s): s for s in (await tenant.list_all(SERVICES)).items if only(_name(s))}
    owned: dict[str, list[Object]] = collections.defaultdict(list)
    for found in await parent_services(parent, cluster, cluster_name):
        labels = found["metadata"].get("labels") or {}
        key = f"{labels.get(TENANT_NAMESPACE_LABEL)}/{labels.get(TENANT_NAME_LABEL)}"
        if only(key):
            owned[key].append(found)
    problems = []
    for key, parents in owned.items():
        if key not in tenants or not served(tenants[key]):
            problems.append(f"{key}: orphaned parent Service(s) {[p['metadata']['name'] for p in parents]}")
    for key, service in tenants.items():
        if not served(service):
            if FINALIZER in (service["metadata"].get("finalizers") or []):
                problems.append(f"{key}: not served but still has the finalizer")
            continue
        parents = owned.get(key, [])
        if len(parents) != 1:
            problems.append(f"{key}: {len(parents)} parent Services")
            continue
        problems += [f"{key}: {problem}" for problem in _parent_problems(service, parents[0])]
    return problems


def _parent_problems(service: Object, found: Object) -> list[str]:
    problems = []
    if found["metadata"]["name"] != parent_service_name(service):
        problems.append(f"parent {found['metadata']['name']} is not named after the tenant's UID")
    want_ports = sorted(
        (p["port"], p["nodePort"])
        for p in service["spec"].get("ports") or []
        if p.get("nodePort") and p.get("protocol", "TCP") in PROTOCOLS
    )
    have_ports = sorted((p["port"], p.get("targetPort")) for p in found["spec"].get("ports") or [])
    if want_ports != have_ports:
        problems.append(f"parent ports {have_ports}, tenant ports {want_ports}")
    ips = ingress_ips(found)
    if not ips or ingress_ips(service) != ips:
        problems.append(f"tenant status {ingress_ips(service)}, parent status {ips}")
    return problems


def in_namespaces(*namespaces: str) -> Callable[[str], bool]:
    return lambda key: key.partition("/")[0] in namespaces


def _template_volumes(vm: Object) -> set[str]:
    spec = ((vm.get("spec") or {}).get("template") or {}).get("spec") or {}
    return {v["name"] for v in spec.get("volumes") or []}


def _vmi_volumes(vmi: Object) -> set[str]:
    return {v["name"] for v in (vmi.get("spec") or {}).get("volumes") or []}


async def volume_problems(
    parent: Client, cluster: harness.Cluster, cluster_name: str, volumes: set[str], attached: dict[str, set[str]]
) -> list[str]:
    """The cluster's DataVolumes are exactly `volumes`; each VM's and VMI's spec lists exactly `attached[vm]`,
    every one of them Ready in the VMI's volumeStatus and nothing else left there."""
    selector = f"{CLUSTER_LABEL}={cluster_name}"
    namespace = cluster.parent_namespace
    problems = []
    dvs = (await parent.list_all(DATAVOLUMES, namespace, label_selector=selector)).items
    names = [dv["metadata"]["name"] for dv in dvs if not dv["metadata"].get("deletionTimestamp")]
    if sorted(names) != sorted(volumes):
        missing, extra = volumes - set(names), set(names) - volumes
        problems.append(f"DataVolumes: missing {sorted(missing)}, unexpected {sorted(extra)}")
    vms = {
        vm["metadata"]["name"]: vm
        for vm in (await parent.list_all(VIRTUALMACHINES, namespace, label_selector=selector)).items
    }
    vmis = {
        vmi["metadata"]["name"]: vmi
        for vmi in (await parent.list_all(VIRTUALMACHINEINSTANCES, namespace, label_selector=selector)).items
    }
    for vm, want in attached.items():
        if vm not in vms or vm not in vmis:
            problems.append(f"VM or VMI {vm} is missing")
            continue
        in_vm, in_vmi = _template_volumes(vms[vm]), _vmi_volumes(vmis[vm])
        statuses = {s["name"]: s.get("phase") for s in (vmis[vm].get("status") or {}).get("volumeStatus") or []}
        if in_vm != want:
            problems.append(f"VM {vm} spec volumes: missing {sorted(want - in_vm)}, extra {sorted(in_vm - want)}")
        if in_vmi != want:
            problems.append(f"VMI {vm} spec volumes: missing {sorted(want - in_vmi)}, extra {sorted(in_vmi - want)}")
        if statuses != dict.fromkeys(want, "Ready"):
            wrong = {k: v for k, v in statuses.items() if k not in want or v != "Ready"}
            problems.append(f"VMI {vm} volumeStatus not settled: {wrong}, missing {sorted(want - set(statuses))}")
    return problems


async def converge(check: Check, timeout: float, what: str) -> float:
    """Wait until `check` finds nothing wrong; fail with what is still wrong. Returns the seconds it took."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    problems: list[str] = []
    while loop.time() - started < timeout:
        problems = await check()
        if not problems:
            return loop.time() - started
        await asyncio.sleep(1.0)
    shown = "\n  ".join(problems[:20])
    raise AssertionError(f"{what} did not converge in {timeout:.0f}s; {len(problems)} problems:\n  {shown}")
