"""A stop ends the ccm promptly even when its caches can never sync (a parent that refuses every list)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import aiohttp

from e2e import cluster as harness
from e2e.cluster.identities import service_account_kubeconfig
from tests.integration.ccm_runner import eventually, running_ccm

PROMPT = 10.0  # well inside a pod's 30 s grace period


async def test_a_leader_whose_parent_refuses_everything_still_stops_at_once(
    cluster: harness.Cluster, tmp_path: Path
) -> None:
    name = f"ccm-powerless-{uuid.uuid4().hex[:6]}"
    powerless = service_account_kubeconfig(cluster, "parent", cluster.parent_namespace, name, tmp_path / "p.kubeconfig")
    loop = asyncio.get_running_loop()
    try:
        async with running_ccm(cluster, {"kubeconfig": str(powerless)}, lease_name=name) as manager:

            async def leading_but_not_ready() -> bool:
                address = manager.health.health_address
                if address is None:
                    return False
                url = f"http://{address[0]}:{address[1]}/readyz?verbose"
                async with aiohttp.ClientSession() as session, session.get(url) as response:
                    body = await response.text()
                return response.status == 503 and "leader: true" in body and "not synced" in body

            await eventually(leading_but_not_ready, timeout=30)
            stopping = loop.time()
        assert loop.time() - stopping < PROMPT
    finally:
        cluster.kubectl_run("parent", "delete", "serviceaccount", name, f"--namespace={cluster.parent_namespace}")
