"""What Kubernetes cleans up on its own, and that the parent follows: a Node whose VM vanished (the ccm deletes it,
the pod GC removes its pods, the attach/detach controller detaches their volumes), and a deleted namespace (the
namespace controller deletes its claims and Services: volumes and parent Services go with them)."""

from __future__ import annotations

import uuid

from e2e.cluster import nodes
from kube.resources import (
    CSINODES,
    NAMESPACES,
    NODES,
    PERSISTENTVOLUMECLAIMS,
    PERSISTENTVOLUMES,
    PODS,
    SERVICES,
)
from lb.translate import parent_service_name
from tests.e2e.conftest import (
    E2E,
    add_initialised_node,
    claim,
    gone,
    pod_on,
    running,
    start_kubelet,
    stop_kubelet,
    until,
)
from tests.e2e.volumes import (
    DATAVOLUMES,
    attached_to,
    attachment_for,
    end_on,
    handle,
    hotplugged,
    plugged_into,
    provisioned,
    run_on,
)

# The pod GC deletes pods of a vanished Node only after 40 s of quarantine, checked every 20 s.
POD_GC_WAIT = 40 + 20 + 30


async def test_removing_a_node_detaches_its_volumes_so_another_node_can_attach_them(
    e2e: E2E, tenant_nodes: list[str], namespace: str
) -> None:
    tenant, parent, stack, parent_namespace = e2e.tenant, e2e.parent, e2e.stack, e2e.parent_namespace
    doomed, survivor = "e2e-node-gone", tenant_nodes[0]
    async with nodes.clients(e2e.cluster) as c:
        await nodes.ensure_absent(c, doomed)
        await add_initialised_node(c, doomed, "10.50.0.9")
        # Its kubelet registers our node plugin, then stops (the VM hangs) before the pod lands. Had it mounted the
        # volume, the attach/detach controller would detach from the deleted Node only after its fixed 6-minute
        # maxWaitForUnmountDuration (or once the Node carries the out-of-service taint).
        await stop_kubelet(e2e.cluster, await start_kubelet(e2e.cluster, doomed, stack.driver_name))
        await tenant.create(PERSISTENTVOLUMECLAIMS, claim("data", stack.storage_class), namespace)
        _, volume = await provisioned(tenant, namespace, "data")
        pv = volume["metadata"]["name"]
        await tenant.create(PODS, pod_on(doomed, "app", "data"), namespace)
        await until(lambda: attached_to(tenant, pv, doomed), f"the volume is attached to {doomed}")
        assert await plugged_into(e2e, doomed, handle(volume))
        await nodes.remove_node(c, doomed)

    async def cleaned_up() -> bool:
        return (
            await gone(tenant, NODES, doomed)
            and await gone(tenant, PODS, "app", namespace)
            and await attachment_for(tenant, pv, doomed) is None
        )

    await until(cleaned_up, "Node, pod and VolumeAttachment of the vanished VM are gone", timeout=POD_GC_WAIT)
    assert await gone(tenant, CSINODES, doomed)  # the garbage collector follows the CSINode's owner
    assert not await gone(parent, DATAVOLUMES, handle(volume), parent_namespace)  # the data stays

    await run_on(e2e, survivor, namespace, "app", "data", volume)  # attached, hot-plugged, mounted: it runs
    await end_on(e2e, survivor, namespace, "app", volume)


async def test_deleting_a_namespace_removes_its_volumes_and_load_balancers_from_the_parent(
    e2e: E2E, tenant_nodes: list[str]
) -> None:
    tenant, parent, stack, parent_namespace = e2e.tenant, e2e.parent, e2e.stack, e2e.parent_namespace
    namespace = f"e2e-gone-{uuid.uuid4().hex[:6]}"
    await tenant.create(NAMESPACES, {"metadata": {"name": namespace}})
    service = await tenant.create(
        SERVICES,
        {
            "metadata": {"name": "web"},
            "spec": {"type": "LoadBalancer", "selector": {"app": "web"}, "ports": [{"port": 80, "protocol": "TCP"}]},
        },
        namespace,
    )
    volumes = []
    for name in ("one", "two"):
        await tenant.create(PERSISTENTVOLUMECLAIMS, claim(name, stack.storage_class), namespace)
        volumes.append((await provisioned(tenant, namespace, name))[1])
    node = tenant_nodes[0]
    await tenant.create(PODS, pod_on(node, "app", "one"), namespace)
    await running(tenant, namespace, "app")  # its volume mounted by the node's kubelet stand-in
    in_use = volumes[0]["metadata"]["name"]
    parent_service = parent_service_name(service)

    async def serving() -> bool:
        attached = await attached_to(tenant, in_use, node) is not None
        return attached and not await gone(parent, SERVICES, parent_service, parent_namespace)

    await until(serving, "the parent Service exists and the pod's volume is attached")

    await tenant.delete(NAMESPACES, namespace)

    async def all_gone() -> bool:
        checks = [
            gone(tenant, NAMESPACES, namespace),
            gone(parent, SERVICES, parent_service, parent_namespace),
        ]
        for volume in volumes:
            checks += [
                gone(tenant, PERSISTENTVOLUMES, volume["metadata"]["name"]),
                gone(parent, DATAVOLUMES, handle(volume), parent_namespace),
                gone(parent, PERSISTENTVOLUMECLAIMS, handle(volume), parent_namespace),
            ]
        return all([await check for check in checks])

    await until(all_gone, "namespace, volumes, parent DataVolumes and claims, parent Service are gone", timeout=90)
    assert await attachment_for(tenant, in_use, node) is None
    vmi = await parent.get(nodes.VMIS, node, parent_namespace)
    assert hotplugged(vmi, handle(volumes[0])) is None
