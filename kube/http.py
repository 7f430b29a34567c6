"""Health, readiness and Prometheus metrics endpoints, answering like kube-apiserver's /healthz and /readyz.

Addresses follow the Go flags our users know: ":10258" listens on all interfaces, "127.0.0.1:0" on loopback with
a port the OS picks, and "0" or "" turns the endpoint off. Equal health and metrics addresses share one listener.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Literal

from aiohttp import web
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

HealthCheck = Callable[[], bool | str]
Endpoint = Literal["health", "metrics"]

DISABLED_ADDRESSES = frozenset({"", "0"})
# Same as kube-apiserver: the body is plain text (aiohttp's default for text=, utf-8), never to be sniffed as HTML.
PROBE_HEADERS: Mapping[str, str] = {"X-Content-Type-Options": "nosniff"}

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BindAddress:
    """Where to listen; host None means every interface, port 0 lets the OS choose."""

    host: str | None
    port: int


def parse_bind_address(address: str) -> BindAddress | None:
    """Parse a Go-style `host:port` (`:8080`, `[::1]:0`); None when the endpoint is disabled."""
    if address.strip() in DISABLED_ADDRESSES:
        return None
    host, sep, port_text = address.strip().rpartition(":")
    if not sep or not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f"invalid bind address {address!r}: expected host:port, :port, 0 or empty")
    host = host.removeprefix("[").removesuffix("]")
    return BindAddress(host=host or None, port=int(port_text))


@dataclass(frozen=True)
class CheckResult:
    """One check's outcome; `reason` is only meaningful when it failed."""

    name: str
    ok: bool
    reason: str = ""

    def line(self) -> str:
        if self.ok:
            return f"[+]{self.name} ok"
        return f"[-]{self.name} failed: {self.reason}" if self.reason else f"[-]{self.name} failed"


def run_check(name: str, check: HealthCheck) -> CheckResult:
    """Run one check; True passes, False fails, a string fails with that reason, an exception fails with its text."""
    try:
        outcome = check()
    except Exception as error:
        # A raising check is a bug in the check, but the probe must still answer; the body carries the error.
        return CheckResult(name, ok=False, reason=f"check raised {type(error).__name__}: {error}")
    if outcome is True:
        return CheckResult(name, ok=True)
    return CheckResult(name, ok=False, reason=outcome if isinstance(outcome, str) else "")


class HealthServer:
    """Serves /healthz, /readyz and /metrics from a registry the caller owns (never the global default)."""

    def __init__(self, registry: CollectorRegistry, health_bind: str, metrics_bind: str) -> None:
        self._registry = registry
        self._health_bind = parse_bind_address(health_bind)
        self._metrics_bind = parse_bind_address(metrics_bind)
        self._liveness: dict[str, HealthCheck] = {}
        self._readiness: dict[str, HealthCheck] = {}
        self._info: dict[str, str] = {}
        self._runners: dict[Endpoint, web.AppRunner] = {}

    def add_liveness_check(self, name: str, check: HealthCheck) -> None:
        """A check for /healthz; failing it gets the process restarted, so keep it to "am I stuck"."""
        self._add_check(self._liveness, name, check)

    def add_readiness_check(self, name: str, check: HealthCheck) -> None:
        """A check for /readyz, e.g. informers synced; liveness checks count towards readiness too."""
        self._add_check(self._readiness, name, check)

    def _add_check(self, checks: dict[str, HealthCheck], name: str, check: HealthCheck) -> None:
        if name in self._liveness or name in self._readiness:
            raise ValueError(f"health check {name!r} is already registered")
        checks[name] = check

    def set_info(self, name: str, value: str | int | bool) -> None:
        """An informational line for verbose output, such as `leader: true`; it never fails a probe."""
        self._info[name] = str(value).lower() if isinstance(value, bool) else str(value)

    @property
    def health_address(self) -> tuple[str, int] | None:
        """The (host, port) /healthz and /readyz are bound to once started; None when disabled or stopped."""
        return self._bound("health")

    @property
    def metrics_address(self) -> tuple[str, int] | None:
        """The (host, port) /metrics is bound to once started; None when disabled or stopped."""
        return self._bound("metrics")

    def _bound(self, endpoint: Endpoint) -> tuple[str, int] | None:
        runner = self._runners.get(endpoint)
        if runner is None or not runner.addresses:
            return None
        host, port = runner.addresses[0][:2]
        return str(host), int(port)

    async def start(self) -> None:
        """Bind the listeners; on failure nothing stays bound."""
        if self._runners:
            raise RuntimeError("HealthServer already started")
        try:
            if self._health_bind is not None and self._health_bind == self._metrics_bind:
                runner = await self._serve(self._health_bind, health=True, metrics=True)
                self._runners = {"health": runner, "metrics": runner}
                return
            if self._health_bind is not None:
                self._runners["health"] = await self._serve(self._health_bind, health=True, metrics=False)
            if self._metrics_bind is not None:
                self._runners["metrics"] = await self._serve(self._metrics_bind, health=False, metrics=True)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Close the listeners; safe to call when not started."""
        runners = {id(runner): runner for runner in self._runners.values()}
        self._runners = {}
        for runner in runners.values():
            await runner.cleanup()

    async def __aenter__(self) -> HealthServer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def _serve(self, bind: BindAddress, *, health: bool, metrics: bool) -> web.AppRunner:
        app = web.Application()
        if health:
            app.router.add_get("/healthz", self._healthz)
            app.router.add_get("/readyz", self._readyz)
        if metrics:
            app.router.add_get("/metrics", self._metrics)
        # Probes arrive every few seconds; an access line for each would drown the useful logs.
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, bind.host, bind.port).start()
        except BaseException:
            await runner.cleanup()
            raise
        served = ", ".join(path for path, on in (("/healthz /readyz", health), ("/metrics", metrics)) if on)
        log.info("serving %s", served, extra={"fields": {"address": _format_addresses(runner.addresses)}})
        return runner

    async def _healthz(self, request: web.Request) -> web.Response:
        return self._probe_response("healthz", self._liveness, request)

    async def _readyz(self, request: web.Request) -> web.Response:
        return self._probe_response("readyz", {**self._liveness, **self._readiness}, request)

    def _probe_response(self, probe: str, checks: Mapping[str, HealthCheck], request: web.Request) -> web.Response:
        results = [run_check(name, check) for name, check in checks.items()]
        healthy = all(result.ok for result in results)
        verbose = "verbose" in request.query
        body = probe_body(probe, results, self._info, verbose=verbose)
        return web.Response(status=200 if healthy else 503, text=body, headers=PROBE_HEADERS)

    async def _metrics(self, request: web.Request) -> web.Response:
        encode, content_type = choose_encoder(request.headers.get("Accept", ""))
        return web.Response(body=encode(self._registry), headers={"Content-Type": content_type})


def probe_body(probe: str, results: list[CheckResult], info: Mapping[str, str], *, verbose: bool) -> str:
    """kube-apiserver's answer: `ok`, or the check lines (all when verbose, else the failures) and a verdict."""
    healthy = all(result.ok for result in results)
    if healthy and not verbose:
        return "ok"
    lines = [result.line() for result in results if verbose or not result.ok]
    if verbose:
        lines += [f"{name}: {value}" for name, value in info.items()]
    lines.append(f"{probe} check passed" if healthy else f"{probe} check failed")
    return "\n".join(lines) + "\n"


def _format_addresses(socknames: Sequence[Sequence[object]]) -> str:
    hosts_ports = ((str(name[0]), name[1]) for name in socknames)
    return ",".join(f"[{host}]:{port}" if ":" in host else f"{host}:{port}" for host, port in hosts_ports)
