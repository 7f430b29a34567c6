"""How to reach the parent's LINSTOR controller: URLs in failover order, TLS files the chart mounts, timeouts."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, model_validator

Locality = Literal["off", "prefer"]
LOCALITIES: tuple[Locality, ...] = ("off", "prefer")
HTTP_PORT = 3370
HTTPS_PORT = 3371
SCHEMES = ("http", "https", "linstor")


def controller_url(text: str, *, tls: bool) -> str:
    """One controller address as linstor-client accepts it (`host`, `host:port`, `linstor://host`, `http(s)://...`).

    Without an explicit scheme LINSTOR's own convention applies: HTTPS on 3371 when TLS is configured, else
    plain HTTP on 3370.
    """
    raw = text.strip().rstrip("/")
    if not raw:
        raise ValueError("empty LINSTOR controller address")
    parts = urlsplit(raw if "://" in raw else f"linstor://{raw}")
    if parts.scheme not in SCHEMES:
        raise ValueError(f"LINSTOR controller {text!r}: scheme must be one of {', '.join(SCHEMES)}")
    if not parts.hostname or parts.path or parts.query:
        raise ValueError(f"LINSTOR controller {text!r}: expected scheme://host[:port] only")
    scheme = parts.scheme if parts.scheme != "linstor" else ("https" if tls else "http")
    port = parts.port or (HTTPS_PORT if scheme == "https" else HTTP_PORT)
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{scheme}://{host}:{port}"


class LinstorSettings(BaseModel):
    """The optional LINSTOR connection of the CSI controller."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    urls: tuple[str, ...] = Field(min_length=1, description="controllers, tried in order; a failure moves on")
    client_cert: Path | None = Field(None, description="PEM client certificate (tls.crt of the Secret)")
    client_key: Path | None = Field(None, description="PEM key of the client certificate (tls.key)")
    ca: Path | None = Field(None, description="PEM CA bundle that signed the controller's certificate (ca.crt)")
    connect_timeout: float = Field(2.0, gt=0, description="seconds to open a connection to one controller")
    timeout: float = Field(5.0, gt=0, description="seconds one request may take, failover included")
    health_ttl: float = Field(30.0, ge=0, description="how long a volume's DRBD state is reused")
    capacity_ttl: float = Field(60.0, ge=0, description="how long a storage class's capacity is reused")
    retry_after: float = Field(10.0, ge=0, description="how long an unreachable LINSTOR is not asked again")
    locality: Locality = Field(
        "prefer", description="prefer: on attach, ask for a diskful replica on the VM's parent node if it has none"
    )

    @property
    def tls(self) -> bool:
        return self.client_cert is not None or self.ca is not None

    @model_validator(mode="before")
    @classmethod
    def _normalise_urls(cls, data: object) -> object:
        if isinstance(data, dict) and "urls" in data:
            tls = bool(data.get("client_cert") or data.get("ca"))
            raw = data["urls"]
            items = raw.split(",") if isinstance(raw, str) else list(raw)
            data = {**data, "urls": tuple(controller_url(str(item), tls=tls) for item in items if str(item).strip())}
        return data

    @model_validator(mode="after")
    def _key_with_cert(self) -> LinstorSettings:
        if (self.client_key is None) != (self.client_cert is None):
            raise ValueError("client_cert and client_key go together")
        return self


def ssl_context(settings: LinstorSettings) -> ssl.SSLContext | None:
    """A verifying client context with our certificate; None for plain HTTP. Reads files: call off the loop."""
    if not any(url.startswith("https://") for url in settings.urls):
        return None
    context = ssl.create_default_context(cafile=str(settings.ca) if settings.ca else None)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if settings.client_cert is not None and settings.client_key is not None:
        context.load_cert_chain(str(settings.client_cert), str(settings.client_key))
    return context


def tls_files(settings: LinstorSettings) -> tuple[Path, ...]:
    return tuple(p for p in (settings.client_cert, settings.client_key, settings.ca) if p is not None)
