"""LINSTOR controller stand-in: the REST API (HTTP on loopback) over a cluster derived from the parent's objects.

Every PV of `linstor.csi.linbit.com` is a resource definition named after its volume handle, with diskful
replicas on `placementCount` of three storage satellites (plus a tie-breaker when there are two), all UpToDate
until a test says otherwise; every LINSTOR StorageClass contributes its resource group and storage pool (100 GiB
on each storage satellite). Every parent Node is a satellite of its own name (diskless until a test gives it a
pool), where make-available may place replicas. Parent VMIs tell which nodes use an RWX block volume, for
linstor-csi's allow-two-primaries toggling. The URL is written to DIR/run/linstor.url. Tests flip replica, pool
and property state through /sim (see _linstor_api).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time

from aiohttp import web

from e2e.sims._kubevirt_spec import VMIS
from e2e.sims._linstor_api import build_app
from e2e.sims._linstor_state import Linstor
from e2e.sims._linstor_writes import ParentUsers
from e2e.sims.common import READY_DIR, Simulation, run
from kube.informer import Informer, run_informers, wait_all_synced
from kube.resources import NODES, PERSISTENTVOLUMES, STORAGECLASSES

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
URL_FILE = "linstor.url"
SYNC_TIMEOUT = 30.0


def _now_ms() -> int:
    return int(time.time() * 1000)


def watch(state: Linstor, volumes: Informer, classes: Informer, nodes: Informer, vmis: Informer) -> None:
    """Keep the simulated cluster in step with the parent's PVs, StorageClasses, Nodes and VMIs."""
    users = ParentUsers(state)

    def volume_seen(pv: dict[str, object]) -> None:
        state.volume_seen(pv, _now_ms())
        users.reconcile()  # a PV bound after its VMI appeared

    volumes.add_handlers(volume_seen, lambda _old, pv: volume_seen(pv), state.volume_gone)
    classes.add_handlers(state.class_seen, lambda _old, sc: state.class_seen(sc), state.class_gone)
    nodes.add_handlers(state.node_seen, lambda _old, node: state.node_seen(node))
    vmis.add_handlers(users.vmi_seen, lambda _old, vmi: users.vmi_seen(vmi), users.vmi_gone)


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((LOOPBACK, 0))
    await web.SockSite(runner, sock).start()
    return runner, f"http://{LOOPBACK}:{sock.getsockname()[1]}"


async def simulate(sim: Simulation) -> None:
    state = Linstor()
    informers = [Informer(sim.parent, r) for r in (STORAGECLASSES, PERSISTENTVOLUMES, NODES, VMIS)]
    classes, volumes, nodes, vmis = informers
    watch(state, volumes, classes, nodes, vmis)
    runner, url = await serve(build_app(state))
    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(run_informers(informers))
            await wait_all_synced(informers, SYNC_TIMEOUT)
            path = sim.cluster.dir / READY_DIR / URL_FILE
            path.parent.mkdir(exist_ok=True)
            path.write_text(url + "\n")
            log.info("LINSTOR REST API on %s", url)
            sim.ready()
    finally:
        await runner.cleanup()


if __name__ == "__main__":
    run(simulate)
