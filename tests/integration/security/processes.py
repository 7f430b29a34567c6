"""The ccm and the CSI driver as real processes (`python -m ccm`, `python -m csi`), logging to a file under the
test's tmp dir (which the suite's log scan reads), with their health endpoint found from their own log line."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parents[3]
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
# The HealthServer's line, in logfmt (address=H:P) or JSON ("address": "H:P").
_HEALTH_LINE = re.compile(r'serving /healthz /readyz.*?\baddress"?[=:] ?"?(?P<address>[^\s",}]+)')


@dataclass
class Running:
    process: asyncio.subprocess.Process
    log: Path
    health: str = ""

    @property
    def alive(self) -> bool:
        return self.process.returncode is None

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    async def probe(self, path: str) -> tuple[int, str]:
        """GET one of the health endpoints: (status, body)."""
        async with aiohttp.ClientSession() as session, session.get(self.health + path) as response:
            return response.status, await response.text()

    async def wait_for_line(self, pattern: str, timeout: float = START_TIMEOUT) -> re.Match[str]:
        """The first log line matching `pattern`, as soon as the process writes it; fails if it exits first."""
        compiled = re.compile(pattern)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            if found := compiled.search(self.output()):
                return found
            assert self.alive, f"{self.log.name} exited ({self.process.returncode}):\n{self.output()[-3000:]}"
            assert loop.time() < deadline, f"no line matching {pattern!r} in {timeout:.0f}s:\n{self.output()[-3000:]}"
            await asyncio.sleep(0.1)


@contextlib.asynccontextmanager
async def running(module: str, argv: list[str], log: Path, *, health: bool = True) -> AsyncIterator[Running]:
    """Start `python -m module argv`; stop it with SIGTERM (as kubelet does) and wait for it when done."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", module, *argv, cwd=REPO, stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out
        )
    started = Running(process, log)
    try:
        if health:
            address = (await started.wait_for_line(_HEALTH_LINE.pattern))["address"]
            started.health = f"http://{address}"
        yield started
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
            except TimeoutError:
                process.kill()
                await process.wait()


async def leading(ccm: Running, timeout: float = START_TIMEOUT) -> None:
    """Until the ccm reports it holds the Lease and its caches are synced."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        status, body = await ccm.probe("/readyz?verbose")
        if status == 200 and "leader: true" in body:
            return
        assert ccm.alive, ccm.output()[-3000:]
        assert loop.time() < deadline, f"not leading after {timeout:.0f}s: {body}"
        await asyncio.sleep(0.1)
