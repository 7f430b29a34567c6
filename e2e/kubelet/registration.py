"""Plugin registration as kubelet's CSI nodeinfomanager does it after NodeGetInfo.

The Node gets the driver's node ID in the `csi.volume.kubernetes.io/nodeid` annotation (a JSON map of driver
to node ID, which csi-attacher reads) and the driver's topology segments as labels; the CSINode named after
the Node, owned by it, lists the driver with its node ID, topology keys and volume limit.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from e2e.kubelet.plugin import NodeInfo
from kube.client import Client, Object
from kube.errors import AlreadyExists, NotFound
from kube.resources import CSINODES, NODES

log = logging.getLogger(__name__)

NODE_ID_ANNOTATION = "csi.volume.kubernetes.io/nodeid"


def driver_entry(driver: str, info: NodeInfo) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": driver, "nodeID": info.node_id}
    if info.topology:
        entry["topologyKeys"] = sorted(info.topology)
    if info.max_volumes > 0:
        entry["allocatable"] = {"count": info.max_volumes}
    return entry


def node_patch(node: Object, driver: str, info: NodeInfo) -> dict[str, Any] | None:
    """The Node changes registration needs (annotation, topology labels), None when it has them already."""
    metadata = node.get("metadata") or {}
    raw = (metadata.get("annotations") or {}).get(NODE_ID_ANNOTATION) or "{}"
    try:
        ids = json.loads(raw)
    except ValueError:
        ids = {}
    labels = metadata.get("labels") or {}
    patch: dict[str, Any] = {}
    if not isinstance(ids, dict) or ids.get(driver) != info.node_id:
        ids = {**(ids if isinstance(ids, dict) else {}), driver: info.node_id}
        patch["annotations"] = {NODE_ID_ANNOTATION: json.dumps(ids, sort_keys=True, separators=(",", ":"))}
    missing = {k: v for k, v in info.topology.items() if labels.get(k) != v}
    if missing:
        patch["labels"] = missing
    return {"metadata": patch} if patch else None


def csinode_drivers(csinode: Object, entry: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The CSINode's drivers with ours in place of any older entry, None when nothing changes."""
    drivers = list((csinode.get("spec") or {}).get("drivers") or [])
    if any({k: v for k, v in d.items() if v is not None} == entry for d in drivers):
        return None  # the API server returns unset lists as null
    return [*(d for d in drivers if d.get("name") != entry["name"]), entry]


async def register(tenant: Client, node_name: str, driver: str, info: NodeInfo) -> None:
    """Idempotent: writes only what differs. Conflicts surface as ApiError for the caller to retry."""
    node = await tenant.get(NODES, node_name)
    patch = node_patch(node, driver, info)
    if patch is not None:
        await tenant.patch(NODES, node_name, patch)
    entry = driver_entry(driver, info)
    try:
        csinode = await tenant.get(CSINODES, node_name)
    except NotFound:
        owner = {"apiVersion": "v1", "kind": "Node", "name": node_name, "uid": node["metadata"]["uid"]}
        body = {"metadata": {"name": node_name, "ownerReferences": [owner]}, "spec": {"drivers": [entry]}}
        try:
            await tenant.create(CSINODES, body)
            log.info("created CSINode %s with driver %s (node ID %s)", node_name, driver, info.node_id)
            return
        except AlreadyExists:
            csinode = await tenant.get(CSINODES, node_name)
    drivers = csinode_drivers(csinode, entry)
    if drivers is not None:
        csinode["spec"] = {**(csinode.get("spec") or {}), "drivers": drivers}
        await tenant.update(CSINODES, csinode)
        log.info("registered driver %s in CSINode %s (node ID %s)", driver, node_name, info.node_id)
