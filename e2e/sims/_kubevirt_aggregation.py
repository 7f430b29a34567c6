"""Plugging the simulated virt-api into the parent kube-apiserver by API aggregation, as virt-operator does.

The aggregator resolves an APIService's Service; for `type: ExternalName` it dials externalName:port (kube-apiserver's
ResolveCluster), so an ExternalName Service `kubevirt/virt-api` -> localhost routes to our loopback server. The server
presents a certificate for virt-api.kubevirt.svc (the name the aggregator verifies) from a CA we put in the caBundle.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from e2e.cluster.pki import CertificateAuthority
from e2e.sims._kubevirt_api import GROUP, GROUP_VERSION, VERSION
from e2e.sims._kubevirt_spec import APISERVICES, Object
from kube.client import Client
from kube.informer import Informer
from kube.resources import NAMESPACES, SERVICES

NAMESPACE = "kubevirt"
SERVICE = "virt-api"
APISERVICE = f"{VERSION}.{GROUP}"
LOOPBACK = "127.0.0.1"
LABELS = {"app.kubernetes.io/part-of": "tenant-cloud-e2e", "app.kubernetes.io/managed-by": "sim-kubevirt"}


@dataclass(frozen=True)
class ServingCertificate:
    ca_pem: bytes
    cert: Path
    key: Path


def issue_serving_certificate(directory: Path) -> ServingCertificate:
    """virt-api's self-signed CA (`kubevirt.io`) and a serving certificate for the Service's DNS names."""
    pki = directory / "kubevirt" / "pki"
    pki.mkdir(parents=True, exist_ok=True)
    ca = CertificateAuthority("kubevirt.io")
    ca.pair.write(pki, "ca")
    dns = (f"{SERVICE}.{NAMESPACE}.svc", f"{SERVICE}.{NAMESPACE}.svc.cluster.local", "localhost")
    cert, key = ca.issue(f"{SERVICE}.{NAMESPACE}.svc", dns_names=dns, ips=(LOOPBACK,), server=True).write(pki, SERVICE)
    return ServingCertificate(ca.pair.cert_pem, cert, key)


def server_tls(serving: ServingCertificate, front_proxy_ca: Path) -> ssl.SSLContext:
    """Serve with our certificate; demand a client certificate from the parent's front-proxy CA."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(str(serving.cert), str(serving.key))
    context.load_verify_locations(cafile=str(front_proxy_ca))
    context.verify_mode = ssl.CERT_REQUIRED
    return context


async def serve(app: web.Application, tls: ssl.SSLContext) -> tuple[web.AppRunner, int]:
    """Start `app` on a free loopback port; returns the runner (to clean up) and the port."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((LOOPBACK, 0))
    await web.SockSite(runner, sock, ssl_context=tls).start()
    return runner, int(sock.getsockname()[1])


def registration(port: int, ca_pem: bytes) -> tuple[Object, Object, Object]:
    """The Namespace, ExternalName Service and APIService that route subresources.kubevirt.io to us."""
    namespace: Object = {"metadata": {"name": NAMESPACE, "labels": LABELS}}
    service: Object = {
        "metadata": {"name": SERVICE, "namespace": NAMESPACE, "labels": LABELS},
        "spec": {
            "type": "ExternalName",
            "externalName": "localhost",
            "ports": [{"name": "https", "port": port, "targetPort": port, "protocol": "TCP"}],
        },
    }
    apiservice: Object = {
        "metadata": {"name": APISERVICE, "labels": {**LABELS, "kubevirt.io": "virt-api-aggregator"}},
        "spec": {
            "group": GROUP,
            "version": VERSION,
            "service": {"namespace": NAMESPACE, "name": SERVICE, "port": port},
            "caBundle": base64.b64encode(ca_pem).decode(),
            "groupPriorityMinimum": 1000,
            "versionPriority": 15,
        },
    }
    return namespace, service, apiservice


async def register(client: Client, port: int, ca_pem: bytes) -> None:
    namespace, service, apiservice = registration(port, ca_pem)
    await client.apply(NAMESPACES, namespace, force=True)
    await client.apply(SERVICES, service, NAMESPACE, force=True)
    await client.apply(APISERVICES, apiservice, force=True)


def available(apiservice: Object) -> bool:
    conditions = (apiservice.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Available" and c.get("status") == "True" for c in conditions)


async def wait_available(client: Client, timeout: float) -> None:
    """Watch our APIService until the aggregator's availability check passes, then prove the route end to end."""
    informer = Informer(client, APISERVICES, field_selector=f"metadata.name={APISERVICE}")
    passed = asyncio.Event()

    def check(apiservice: Object) -> None:
        if available(apiservice):
            passed.set()

    informer.add_handlers(on_add=check, on_update=lambda _old, new: check(new))
    watch = asyncio.create_task(informer.run())
    try:
        await asyncio.wait_for(passed.wait(), timeout)
    finally:
        watch.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watch
    await client.transport.request("GET", f"/apis/{GROUP_VERSION}")
