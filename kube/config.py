"""Where a cluster is and how we authenticate to it: kubeconfig (certs, tokens, exec plugins) or in-cluster.

The `kubernetes` package parses kubeconfig; we only keep what we need and never log credentials.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import yaml

IN_CLUSTER_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")


class KubeconfigError(ValueError):
    """No usable cluster access: a kubeconfig that is missing or malformed, or no in-cluster environment.

    The message names the file and what is wrong with it, never its credentials.
    """


class Credentials(Protocol):
    """Produces the Authorization header value for the next request, or None for client certificates."""

    async def authorization(self) -> str | None: ...


@dataclass
class NoToken:
    async def authorization(self) -> str | None:
        return None


@dataclass(repr=False)
class StaticToken:
    token: str

    async def authorization(self) -> str | None:
        return f"Bearer {self.token}"

    def __repr__(self) -> str:
        return "StaticToken([REDACTED])"


@dataclass
class TokenFile:
    """A projected service-account token: re-read whenever the kubelet rotates the file."""

    path: Path
    check_every: float = 10.0
    _token: str = field(default="", repr=False)
    _mtime: float = -1.0
    _checked: float = -1e9

    async def authorization(self) -> str | None:
        now = time.monotonic()
        if now - self._checked >= self.check_every:
            self._checked = now
            mtime = self.path.stat().st_mtime
            if mtime != self._mtime:
                self._token, self._mtime = self.path.read_text().strip(), mtime
        return f"Bearer {self._token}"


@dataclass(repr=False)
class RefreshingToken:
    """Tokens from exec plugins or auth providers, refreshed by the kubernetes package's hook off the loop."""

    configuration: Any
    check_every: float = 10.0
    _checked: float = -1e9

    async def authorization(self) -> str | None:
        now = time.monotonic()
        hook = self.configuration.refresh_api_key_hook
        if hook is not None and now - self._checked >= self.check_every:
            self._checked = now
            await asyncio.to_thread(hook, self.configuration)
        # Newer `kubernetes` releases keep the token under "BearerToken" (with its prefix), older under
        # "authorization"; ask for both so a static token is never silently dropped.
        value = self.configuration.get_api_key_with_prefix("BearerToken") or self.configuration.api_key.get(
            "authorization"
        )
        return str(value) if value else None

    def __repr__(self) -> str:
        return "RefreshingToken([REDACTED])"


@dataclass
class ClusterConfig:
    server: str
    ssl_context: ssl.SSLContext | bool
    credentials: Credentials
    namespace: str | None = None

    def __repr__(self) -> str:
        return f"ClusterConfig(server={self.server!r}, namespace={self.namespace!r})"


def _ssl_context(ca_file: str | None, cert_file: str | None, key_file: str | None, verify: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca_file)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if cert_file and key_file:
        context.load_cert_chain(cert_file, key_file)
    return context


def from_kubeconfig(path: str | os.PathLike[str] | None = None, context: str | None = None) -> ClusterConfig:
    """Load a kubeconfig file (default: $KUBECONFIG or ~/.kube/config)."""
    config_file = str(path) if path else None
    if config_file is not None and not Path(config_file).is_file():
        raise KubeconfigError(f"kubeconfig {config_file}: no such file")
    try:
        return _load_kubeconfig(config_file, context)
    except (OSError, ValueError) as error:  # ssl.SSLError is an OSError
        raise KubeconfigError(f"kubeconfig {config_file or '(default)'}: {error}") from None
    except (TypeError, KeyError, AttributeError) as error:
        # The kubernetes package walks the YAML without checking its shape first.
        raise KubeconfigError(f"kubeconfig {config_file or '(default)'}: not a valid kubeconfig ({error})") from None


def _load_kubeconfig(config_file: str | None, context: str | None) -> ClusterConfig:
    from kubernetes import client as k8s_client
    from kubernetes import config as k8s_config

    configuration = k8s_client.Configuration()
    try:
        k8s_config.load_kube_config(
            config_file=config_file, context=context, client_configuration=configuration, persist_config=False
        )
        contexts, active = k8s_config.list_kube_config_contexts(config_file=config_file)
    except (k8s_config.ConfigException, yaml.YAMLError) as error:
        raise ValueError(str(error)) from None
    chosen = next((c for c in contexts if c["name"] == context), active) if context else active
    namespace = (chosen or {}).get("context", {}).get("namespace")
    credentials: Credentials
    has_token = bool(configuration.api_key.get("BearerToken") or configuration.api_key.get("authorization"))
    if has_token or configuration.refresh_api_key_hook is not None:
        credentials = RefreshingToken(configuration)
    else:
        credentials = NoToken()
    return ClusterConfig(
        server=configuration.host.rstrip("/"),
        ssl_context=_ssl_context(
            configuration.ssl_ca_cert, configuration.cert_file, configuration.key_file, configuration.verify_ssl
        ),
        credentials=credentials,
        namespace=namespace,
    )


def in_cluster(directory: Path = IN_CLUSTER_DIR) -> ClusterConfig:
    """The pod's ServiceAccount: API server from the environment, token re-read as it rotates."""
    host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT")
    if not host or not port:
        raise KubeconfigError("no kubeconfig given and not in a cluster: KUBERNETES_SERVICE_HOST/PORT are unset")
    server_host = f"[{host}]" if ":" in host else host
    namespace_file = directory / "namespace"
    try:
        return ClusterConfig(
            server=f"https://{server_host}:{port}",
            ssl_context=_ssl_context(str(directory / "ca.crt"), None, None, True),
            credentials=TokenFile(directory / "token"),
            namespace=namespace_file.read_text().strip() if namespace_file.exists() else None,
        )
    except OSError as error:
        raise KubeconfigError(f"in-cluster config from {directory}: {error}") from None


def load(kubeconfig: str | None, setting: str = "") -> ClusterConfig:
    """kubevirt-ccm/csi convention: an empty kubeconfig path means in-cluster.

    `setting` is the flag or config key that gave the path; errors start with it, so users know what to fix.
    """
    try:
        return from_kubeconfig(kubeconfig) if kubeconfig else in_cluster()
    except KubeconfigError as error:
        if not setting:
            raise
        raise KubeconfigError(f"{setting}: {error}") from None
