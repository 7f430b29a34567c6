"""The e2e harness itself: kube-controller-manager is recorded and healthy, without the node lifecycle
controller, and the Nodes `add-node` registers are attached and detached by it, as kubelet's are; each Node's
kubelet stand-in runs and has registered our node plugin on it."""

from __future__ import annotations

import json
import ssl
import urllib.request

from e2e import cluster as harness
from e2e.cluster import controller_manager, controlplane, nodes, workloads
from kube.client import Client
from kube.resources import CSINODES, NODES


def healthz(port: int) -> str:
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with urllib.request.urlopen(f"https://127.0.0.1:{port}/healthz?verbose", context=context, timeout=5) as r:
        return str(r.read().decode())


async def test_kube_controller_manager_runs_the_volume_controllers_but_not_node_lifecycle(
    e2e_cluster: harness.Cluster, tenant_nodes: list[str], tenant: Client
) -> None:
    state = json.loads((e2e_cluster.dir / harness.STATE_FILE).read_text())
    port = state["controllerManagerPort"]
    recorded = [p for p in e2e_cluster.processes if p.name == controller_manager.NAME]
    assert len(recorded) == 1 and controlplane.pid_alive(recorded[0].pid)
    assert controller_manager.unhealthy(port) is None
    report = healthz(port)
    assert "[+]persistentvolume-attach-detach-controller ok" in report
    assert "node-lifecycle-controller" not in report  # no kubelet heartbeats here: it would taint every Node
    for name in tenant_nodes:
        node = await tenant.get(NODES, name)
        assert node["metadata"]["annotations"][nodes.CONTROLLER_MANAGED_ATTACH_DETACH] == "true"


async def test_each_node_runs_a_kubelet_stand_in_that_registered_our_node_plugin(
    e2e_cluster: harness.Cluster, stack: workloads.Stack, tenant_nodes: list[str], tenant: Client
) -> None:
    for name in tenant_nodes:
        recorded = [p for p in e2e_cluster.processes if p.name == f"kubelet-{name}"]
        assert len(recorded) == 1 and controlplane.pid_alive(recorded[0].pid)
        node = await tenant.get(NODES, name)
        # Our NodeGetInfo's ID: the parent namespace and the VM (the Node's providerID names it).
        node_id = f"{e2e_cluster.parent_namespace}/{name}"
        assert json.loads(node["metadata"]["annotations"]["csi.volume.kubernetes.io/nodeid"]) == {
            stack.driver_name: node_id
        }
        csinode = await tenant.get(CSINODES, name)
        assert [d["nodeID"] for d in csinode["spec"]["drivers"] if d["name"] == stack.driver_name] == [node_id]
        assert csinode["metadata"]["ownerReferences"][0]["uid"] == node["metadata"]["uid"]
