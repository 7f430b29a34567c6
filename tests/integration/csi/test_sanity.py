"""csi-sanity (kubernetes-csi/csi-test, built from the pinned module) against the whole driver.

The driver runs with controller and node services on one endpoint; the parent is the real harness with the
KubeVirt/CDI/snapshot simulators, so ControllerPublish hot-plugs a loop device into the sanity "VM" and the
node service formats and mounts it for real.
"""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

import pytest

from csi.linstor.settings import LinstorSettings
from e2e import cluster as harness
from e2e.binaries import csi_sanity_binary
from e2e.cluster import nodes
from e2e.sims._kubevirt_disks import by_id_root
from tests.integration.csi.conftest import PARENT_CLASS, driver_config, running_driver

VM = "csi-sanity-vm"
ANSI = re.compile(r"\x1b\[[0-9;]*m")
SUMMARY = re.compile(r"Ran (\d+) of (\d+) Specs.*?(\d+) Passed \| (\d+) Failed \| (\d+) Pending \| (\d+) Skipped", re.S)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the node service needs root for loop devices and mounts")


@pytest.mark.parametrize("access_type", ["mount", "block"])
async def test_csi_sanity(cluster: harness.Cluster, parent_storage: str, tmp_path: Path, access_type: str) -> None:
    async with nodes.clients(cluster) as c:
        await nodes.ensure_absent(c, VM)
        await nodes.add_node(c, VM, register=False)
    params = tmp_path / "params.yaml"
    params.write_text(f"infraStorageClassName: {PARENT_CLASS}\n")
    config = driver_config(cluster, provision_timeout=20.0, attach_timeout=20.0)
    node_id = f"{cluster.parent_namespace}/{VM}"
    try:
        # With the LINSTOR simulator connected, GET_CAPACITY is advertised and checked too.
        linstor = LinstorSettings(urls=((cluster.dir / "run" / "linstor.url").read_text().strip(),))
        async with running_driver(
            cluster, config, node=True, node_id=node_id, by_id_root=by_id_root(cluster.dir, VM), linstor=linstor
        ) as driver:
            proc = await asyncio.create_subprocess_exec(
                str(csi_sanity_binary()),
                f"--csi.endpoint=dns:///127.0.0.1:{driver.port}",
                f"--csi.mountdir={tmp_path / 'mount'}",
                f"--csi.stagingdir={tmp_path / 'staging'}",
                f"--csi.testvolumeparameters={params}",
                f"--csi.testvolumeaccesstype={access_type}",
                f"--csi.testvolumesize={1 << 30}",
                f"--csi.testvolumeexpandsize={2 << 30}",
                "--ginkgo.timeout=15m",
                "--ginkgo.no-color",
                "--ginkgo.v",
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
            )
            output, _ = await proc.communicate()
    finally:
        async with nodes.clients(cluster) as c:
            await nodes.remove_node(c, VM)
    text = ANSI.sub("", output.decode(errors="replace"))
    log = tmp_path / f"csi-sanity-{access_type}.log"
    log.write_text(text)
    summary = SUMMARY.search(text)
    assert summary, text[-3000:]
    ran, total, passed, failed, _pending, skipped = map(int, summary.groups())
    print(
        f"csi-sanity ({access_type}): ran {ran} of {total}; {passed} passed, {failed} failed, {skipped} skipped"
        f" (log: {log})"
    )
    assert failed == 0, text[-6000:]
    assert proc.returncode == 0
    assert passed > 50
