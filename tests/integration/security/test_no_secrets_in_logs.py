"""`python -m ccm` and `python -m csi` at the highest verbosity, through work that fails in the ways that make
code log what it holds: a parent that answers 403, a revoked token (401), an unreachable LINSTOR over TLS with
a client key, CSI requests carrying secrets. Their whole output must name no credential they were given and
show nothing shaped like one. (The suite's log scan, tests/logscan.py, reads these files again at the end.)"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import yaml

from csi._proto import csi_pb2, csi_pb2_grpc
from e2e import cluster as harness
from e2e.cluster.identities import service_account_kubeconfig
from kube.client import Client
from kube.errors import NotFound
from kube.resources import NAMESPACES, SERVICES
from tests.integration.csi.conftest import PARENT_CLASS
from tests.integration.security.conftest import ccm_argv, ensure_namespace
from tests.integration.security.processes import Running, running
from tests.logscan import SHAPES, Secrets, scan_text

MAX_VERBOSITY = "--v=10"
SECRET_PARAMETER = f"csi-secret-{uuid.uuid4().hex}"
SINGLE_NODE_WRITER = csi_pb2.VolumeCapability.AccessMode.SINGLE_NODE_WRITER


@dataclass
class Identities:
    """Parent kubeconfigs: one whose ServiceAccount may do nothing (403s), one whose token is revoked (401s)."""

    powerless: Path
    revoked: Path
    tenant: Path
    secrets: Secrets


@pytest.fixture(scope="module")
async def identities(cluster: harness.Cluster, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Identities]:
    directory = tmp_path_factory.mktemp("log-identities")
    ns, suffix = cluster.parent_namespace, uuid.uuid4().hex[:6]
    powerless = service_account_kubeconfig(
        cluster, "parent", ns, f"log-powerless-{suffix}", directory / "powerless.kubeconfig"
    )
    revoked = service_account_kubeconfig(
        cluster, "parent", ns, f"log-revoked-{suffix}", directory / "revoked.kubeconfig"
    )
    cluster.kubectl_run("parent", "delete", "serviceaccount", f"log-revoked-{suffix}", f"--namespace={ns}")
    secrets = Secrets()
    for path in (powerless, revoked, cluster.tenant_kubeconfig, cluster.parent_kubeconfig):
        secrets.add_file(path)
    for key in (cluster.parent.pki / "admin.key", cluster.tenant.pki / "admin.key"):
        secrets.add_file(key)
    secrets.add(SECRET_PARAMETER, "a CSI request's secrets map")
    yield Identities(powerless, revoked, cluster.tenant_kubeconfig, secrets)
    cluster.kubectl_run("parent", "delete", "serviceaccount", f"log-powerless-{suffix}", f"--namespace={ns}")


def leaks(output: str, secrets: Secrets, where: Path) -> list[str]:
    return [str(finding) for finding in scan_text(where, output, secrets, shapes=True)]


def assert_traced(process: Running) -> None:
    """The highest verbosity really was on: every API request has its own line."""
    assert "level=trace" in process.output() or '"level": "trace"' in process.output(), process.output()[-2000:]


@pytest.fixture(scope="module")
async def tenant_namespace(tenant_client: Client) -> AsyncIterator[str]:
    name = f"logs-{uuid.uuid4().hex[:6]}"
    await ensure_namespace(tenant_client, name)
    yield name
    with contextlib.suppress(NotFound):
        await tenant_client.delete(NAMESPACES, name)


@pytest.mark.parametrize(
    ("identity", "answer", "log_format"), [("powerless", "403", "logfmt"), ("revoked", "401", "json")]
)
async def test_the_ccm_logs_no_credential_at_any_verbosity(
    cluster: harness.Cluster,
    identities: Identities,
    tenant_client: Client,
    tenant_namespace: str,
    tmp_path: Path,
    identity: str,
    answer: str,
    log_format: str,
) -> None:
    parent_kubeconfig = getattr(identities, identity)
    cloud_config = tmp_path / "cloud-config.yaml"
    cloud_config.write_text(
        yaml.safe_dump({"kubeconfig": str(parent_kubeconfig), "namespace": cluster.parent_namespace})
    )
    argv = ccm_argv(cluster, cloud_config, MAX_VERBOSITY, f"--log-format={log_format}")
    name = f"web-{identity}"
    async with running("ccm", argv, tmp_path / "ccm.log") as ccm:
        await tenant_client.create(
            SERVICES,
            {"metadata": {"name": name}, "spec": {"type": "LoadBalancer", "ports": [{"port": 80, "protocol": "TCP"}]}},
            tenant_namespace,
        )
        await ccm.wait_for_line(rf"\b{answer}\b.*/apis?/")  # the parent refused, and the ccm said so
        assert ccm.alive
    assert ccm.process.returncode == 0, "not stopped by SIGTERM: killed after the grace period"
    assert_traced(ccm)
    assert leaks(ccm.output(), identities.secrets, ccm.log) == []
    await tenant_client.delete(SERVICES, name, tenant_namespace)


@pytest.fixture
def linstor_tls(cluster: harness.Cluster, tmp_path: Path) -> list[str]:
    """A LINSTOR client certificate and key (the harness's admin pair: a real key) for an endpoint nobody serves."""
    pki = cluster.parent.pki
    return [
        "--linstor-url=https://127.0.0.1:9",
        f"--linstor-client-cert={pki / 'admin.crt'}",
        f"--linstor-client-key={pki / 'admin.key'}",
        f"--linstor-ca={pki / 'ca.crt'}",
        "--linstor-timeout=1s",
    ]


CSI_CASES = [
    # (parent identity, CreateVolume's answer, bus): with the admin's client certificate the parent lets the driver
    # through to LINSTOR (over TLS, with its client key); a bad bus then keeps CreateVolume from making anything.
    ("powerless", "PERMISSION_DENIED", "scsi"),
    ("revoked", "UNAUTHENTICATED", "scsi"),
    ("admin", "INVALID_ARGUMENT", "ide"),
]


@pytest.mark.parametrize(("identity", "answer", "bus"), CSI_CASES, ids=[c[0] for c in CSI_CASES])
async def test_the_csi_driver_logs_no_credential_at_any_verbosity(
    cluster: harness.Cluster,
    identities: Identities,
    linstor_tls: list[str],
    tmp_path: Path,
    identity: str,
    answer: str,
    bus: str,
) -> None:
    socket = tmp_path / "csi.sock"
    parent = cluster.parent_kubeconfig if identity == "admin" else getattr(identities, identity)
    argv = [
        f"--endpoint=unix:{socket}",
        f"--infra-cluster-kubeconfig={parent}",
        f"--infra-cluster-namespace={cluster.parent_namespace}",
        f"--infra-cluster-labels=cluster.x-k8s.io/cluster-name={cluster.cluster_name}",
        f"--tenant-cluster-kubeconfig={cluster.tenant_kubeconfig}",
        "--run-node-service=false",
        "--health-bind-address=127.0.0.1:0",
        "--metrics-bind-address=0",
        MAX_VERBOSITY,
        *linstor_tls,
    ]
    async with running("csi", argv, tmp_path / "csi.log") as csi:
        await csi.wait_for_line(r"serving CSI")
        async with grpc.aio.insecure_channel(f"unix://{socket}") as channel:
            controller = csi_pb2_grpc.ControllerStub(channel)
            request = csi_pb2.CreateVolumeRequest(
                name=f"pvc-{uuid.uuid4()}",
                capacity_range=csi_pb2.CapacityRange(required_bytes=1 << 30),
                volume_capabilities=[
                    csi_pb2.VolumeCapability(
                        block=csi_pb2.VolumeCapability.BlockVolume(),
                        access_mode=csi_pb2.VolumeCapability.AccessMode(mode=SINGLE_NODE_WRITER),
                    )
                ],
                parameters={"infraStorageClassName": PARENT_CLASS, "bus": bus},
                secrets={"password": SECRET_PARAMETER, "token": SECRET_PARAMETER},
            )
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await controller.CreateVolume(request, timeout=30)
            assert refused.value.code().name == answer, refused.value.details()
            capacity = csi_pb2.GetCapacityRequest(parameters={"infraStorageClassName": PARENT_CLASS})
            with pytest.raises(grpc.aio.AioRpcError):
                await controller.GetCapacity(capacity, timeout=30)  # LINSTOR over TLS, with the client key: refused
        await csi.wait_for_line(r"CreateVolume -> " + answer)
        assert csi.alive
    assert csi.process.returncode == 0, "not stopped by SIGTERM: killed after the grace period"
    assert_traced(csi)
    output = csi.output()
    assert "***stripped***" in output  # the request with its secrets was logged, stripped
    assert leaks(output, identities.secrets, csi.log) == []


def test_the_scan_would_have_seen_them(identities: Identities) -> None:
    """The secrets looked for are real: both tokens, both admin client keys, the CSI secret."""
    kinds = " ".join(identities.secrets.known.values())
    assert "powerless.kubeconfig" in kinds and "revoked.kubeconfig" in kinds
    assert f"client key of kubeconfig {identities.tenant}" in kinds and "client-key-data" in kinds
    assert SECRET_PARAMETER in identities.secrets.known
    assert set(SHAPES) >= {"JWT", "PEM private key", "bearer token", "Authorization header"}
