"""scripts/tenant-kubeconfig.sh turns the parent chart's ServiceAccount into the Secret the tenant chart reads."""

from __future__ import annotations

import base64
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from e2e import cluster as harness
from e2e import helm
from kube.client import Client
from kube.config import from_kubeconfig
from kube.errors import Forbidden
from kube.resources import SECRETS, Resource
from tests.integration.charts.conftest import SERVICE_ACCOUNT

SCRIPT = helm.PARENT_CHART / "scripts" / "tenant-kubeconfig.sh"
VMIS = Resource("kubevirt.io", "v1", "virtualmachineinstances", "VirtualMachineInstance")


def run_script(cluster: harness.Cluster, *args: str) -> dict[str, Any]:
    env = dict(os.environ, KUBECTL=f"{cluster.kubectl} --kubeconfig={cluster.parent_kubeconfig}")
    result = subprocess.run(
        ["sh", str(SCRIPT), "--namespace", cluster.parent_namespace, "--service-account", SERVICE_ACCOUNT, *args],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    secret: dict[str, Any] = yaml.safe_load(result.stdout)
    return secret


async def acts_as_the_service_account(kubeconfig: Path, namespace: str) -> None:
    async with Client.from_config(from_kubeconfig(kubeconfig), "tenant-cloud-tests") as client:
        await client.list(VMIS, namespace)  # granted by the Role
        with pytest.raises(Forbidden):
            await client.list(SECRETS, namespace)  # never granted


async def test_a_token_request_kubeconfig_lands_in_the_tenant_and_works(
    cluster: harness.Cluster, parent_release: Any, tenant_client: Client, tmp_path: Path
) -> None:
    secret = run_script(cluster, "--duration", "1h", "--secret-name", "charts-test-parent", "--key", "value")
    assert secret["metadata"] == {
        "name": "charts-test-parent",
        "namespace": "kube-system",
        "labels": {"app.kubernetes.io/name": "tenant-cloud", "app.kubernetes.io/component": "parent-kubeconfig"},
    }
    cluster.kubectl_run("tenant", "apply", "-f", "-", stdin=yaml.safe_dump(secret))
    try:
        stored = await tenant_client.get(SECRETS, "charts-test-parent", "kube-system")
        kubeconfig = tmp_path / "parent.kubeconfig"
        kubeconfig.write_bytes(base64.b64decode(stored["data"]["value"]))
        config = yaml.safe_load(kubeconfig.read_text())
        assert config["contexts"][0]["context"]["namespace"] == cluster.parent_namespace
        await acts_as_the_service_account(kubeconfig, cluster.parent_namespace)
    finally:
        await tenant_client.delete(SECRETS, "charts-test-parent", "kube-system")


async def test_the_long_lived_token_secret_is_used_when_no_duration_is_given(
    cluster: harness.Cluster, parent_release: Any, parent_client: Client, tmp_path: Path
) -> None:
    # This harness runs no token controller: fill the chart's token Secret in as it would.
    token = cluster.kubectl_run(
        "parent", "create", "token", SERVICE_ACCOUNT, f"--namespace={cluster.parent_namespace}", "--duration=1h"
    ).strip()
    ca = (cluster.parent.pki / "ca.crt").read_bytes()
    data = {"token": base64.b64encode(token.encode()).decode(), "ca.crt": base64.b64encode(ca).decode()}
    name = f"{SERVICE_ACCOUNT}-token"
    await parent_client.patch(SECRETS, name, {"data": data}, cluster.parent_namespace)
    secret = run_script(cluster, "--server", cluster.parent.server)
    kubeconfig = tmp_path / "parent.kubeconfig"
    kubeconfig.write_bytes(base64.b64decode(secret["data"]["kubeconfig"]))
    config = yaml.safe_load(kubeconfig.read_text())
    assert config["users"][0]["user"]["token"] == token
    assert base64.b64decode(config["clusters"][0]["cluster"]["certificate-authority-data"]) == ca
    await acts_as_the_service_account(kubeconfig, cluster.parent_namespace)
