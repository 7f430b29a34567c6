"""The ccm's node and node-lifecycle controllers against real parent and tenant apiservers."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from ccm.app import CloudControllerManager
from ccm.instances import SHUTDOWN_TAINT, UNINITIALIZED_TAINT
from e2e import cluster as harness
from e2e.cluster import nodes
from kube.client import Object
from kube.errors import NotFound
from kube.resources import EVENTS, NODES
from tests.integration.ccm.conftest import GRACE
from tests.integration.ccm_runner import eventually


async def node(c: nodes.Clients, name: str) -> Object:
    return await c.tenant.get(NODES, name)


def taint_keys(obj: Object) -> set[str]:
    return {t["key"] for t in obj["spec"].get("taints") or []}


def addresses(obj: Object) -> list[tuple[str, str]]:
    return [(a["type"], a["address"]) for a in obj["status"].get("addresses") or []]


async def initialised(c: nodes.Clients, name: str) -> bool:
    return UNINITIALIZED_TAINT not in taint_keys(await node(c, name))


async def node_events(c: nodes.Clients, name: str) -> dict[str, Object]:
    listed = await c.tenant.list_all(EVENTS, "default", field_selector=f"involvedObject.name={name}")
    return {e["reason"]: e for e in listed.items}


async def test_initialises_a_dual_stack_node(ccm: CloudControllerManager, c: nodes.Clients, node_name: str) -> None:
    await nodes.add_node(
        c,
        node_name,
        ips=["10.0.0.5", "fe80::1", "fd00::5"],
        zone="zone-a",
        region="region-1",
        instance_type="u1.medium",
    )
    await eventually(lambda: initialised(c, node_name))
    got = await node(c, node_name)
    assert got["spec"]["providerID"] == f"kubevirt://{node_name}"
    assert addresses(got) == [("InternalIP", "10.0.0.5"), ("InternalIP", "fd00::5"), ("Hostname", node_name)]
    labels = got["metadata"]["labels"]
    assert labels["node.kubernetes.io/instance-type"] == "u1.medium"
    assert (labels["topology.kubernetes.io/zone"], labels["topology.kubernetes.io/region"]) == ("zone-a", "region-1")
    await eventually(lambda: _has_event(c, node_name, "Initialized"))


async def _has_event(c: nodes.Clients, name: str, reason: str) -> bool:
    return reason in await node_events(c, name)


async def test_addresses_follow_the_vmi_and_survive_a_blank_report(
    ccm: CloudControllerManager, c: nodes.Clients, node_name: str
) -> None:
    await nodes.add_node(c, node_name, ips=["10.0.0.6"])
    await eventually(lambda: initialised(c, node_name))
    await nodes.set_vmi_status(c, node_name, ips=["10.0.0.7", "fd00::7"])

    async def moved() -> bool:
        return addresses(await node(c, node_name))[:2] == [("InternalIP", "10.0.0.7"), ("InternalIP", "fd00::7")]

    await eventually(moved)
    await nodes.set_vmi_status(c, node_name, ips=[])  # guest agent restarting: no IPs for a moment
    await asyncio.sleep(1.0)
    assert addresses(await node(c, node_name))[:2] == [("InternalIP", "10.0.0.7"), ("InternalIP", "fd00::7")]


async def test_zone_follows_a_live_migration(ccm: CloudControllerManager, c: nodes.Clients, node_name: str) -> None:
    await nodes.add_node(c, node_name, zone="zone-a")
    await eventually(lambda: initialised(c, node_name))
    await nodes.migrate_node(c, node_name, "parent-zone-b-1", zone="zone-b", region="region-1")

    async def in_zone_b() -> bool:
        labels = (await node(c, node_name))["metadata"]["labels"]
        return bool(labels.get("topology.kubernetes.io/zone") == "zone-b")

    await eventually(in_zone_b)


async def test_shutdown_taint_on_and_off(ccm: CloudControllerManager, c: nodes.Clients, node_name: str) -> None:
    await nodes.add_node(c, node_name)
    await eventually(lambda: initialised(c, node_name))
    await nodes.stop_node(c, node_name)

    async def shut_down() -> bool:
        return SHUTDOWN_TAINT in taint_keys(await node(c, node_name))

    await eventually(shut_down)
    await nodes.start_node(c, node_name)

    async def running() -> bool:
        return SHUTDOWN_TAINT not in taint_keys(await node(c, node_name))

    await eventually(running)
    # Events are written by the recorder's background task, after the taint change they report.
    await eventually(lambda: _has_event(c, node_name, "NodeShutdown"))
    await eventually(lambda: _has_event(c, node_name, "NodeRunning"))


async def test_node_deleted_after_its_vm_and_vmi_vanish(
    ccm: CloudControllerManager, c: nodes.Clients, node_name: str
) -> None:
    await nodes.add_node(c, node_name)
    await eventually(lambda: initialised(c, node_name))
    await nodes.remove_node(c, node_name)
    await asyncio.sleep(GRACE / 2)
    await node(c, node_name)  # still there inside the grace period

    async def deleted() -> bool:
        try:
            await node(c, node_name)
        except NotFound:
            return True
        return False

    await eventually(deleted, timeout=GRACE + 10)


async def test_another_clusters_vmi_is_never_matched(
    ccm: CloudControllerManager, c: nodes.Clients, node_name: str
) -> None:
    await nodes.add_node(c, node_name, cluster_name="someone-else")
    await eventually(lambda: _has_event(c, node_name, "InstanceNotFound"))
    await asyncio.sleep(GRACE + 1)
    got = await node(c, node_name)  # not initialised from the foreign VMI, and not deleted either
    assert UNINITIALIZED_TAINT in taint_keys(got)
    assert not got["spec"].get("providerID")


async def test_vmi_found_by_hostname(ccm: CloudControllerManager, c: nodes.Clients, node_name: str) -> None:
    vm_name = "vm-" + node_name.split(".")[1]
    try:
        await nodes.add_node(c, vm_name, hostname=node_name, register=False)
        await nodes.register_node(c, node_name)
        await eventually(lambda: initialised(c, node_name))
        assert (await node(c, node_name))["spec"]["providerID"] == f"kubevirt://{vm_name}"
    finally:
        await nodes.remove_node(c, vm_name)


async def test_parent_outage_deletes_nothing(
    ccm: CloudControllerManager, c: nodes.Clients, node_name: str, cluster: harness.Cluster
) -> None:
    await nodes.add_node(c, node_name)
    await eventually(lambda: initialised(c, node_name))
    await asyncio.to_thread(harness.restart_apiserver, cluster.dir, "parent", GRACE * 4)
    await asyncio.sleep(GRACE * 2)
    got = await node(c, node_name)
    assert got["spec"]["providerID"] == f"kubevirt://{node_name}"
    assert "DeletingNode" not in await node_events(c, node_name)
    # And the controllers still react once the parent is back.
    await nodes.stop_node(c, node_name)

    async def shut_down() -> bool:
        return SHUTDOWN_TAINT in taint_keys(await node(c, node_name))

    await eventually(shut_down, timeout=20)


def test_unknown_cloud_config_key_is_a_clear_startup_error(tmp_path: Path) -> None:
    config = tmp_path / "cloud-config"
    config.write_text("namespace: x\ninstancesV2: {enabled: true, zoneAndRegionEnabeld: true}\n")
    result = subprocess.run(
        [sys.executable, "-m", "ccm", f"--cloud-config={config}", "--kubeconfig=/nonexistent"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert "unknown key 'instancesV2.zoneAndRegionEnabeld'" in result.stderr
