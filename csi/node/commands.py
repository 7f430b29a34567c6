"""The one way the node layer runs a program: argv only (never a shell), output captured, failures typed."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Protocol

from csi.node.errors import CommandFailed, CommandNotFound, CommandTimedOut

DEFAULT_TIMEOUT = 300.0


@dataclass(frozen=True)
class CommandResult:
    """What a finished command printed and how it exited."""

    argv: tuple[str, ...]
    exit_code: int
    stdout: str
    stderr: str


class CommandRunner(Protocol):
    async def run(self, *argv: str, ok_codes: Collection[int] = (0,)) -> CommandResult:
        """Run argv; raise CommandFailed unless it exits with one of `ok_codes`."""
        ...


class SubprocessRunner:
    """Runs commands with asyncio subprocesses in the C locale, stdin closed so nothing can prompt."""

    def __init__(self, timeout: float = DEFAULT_TIMEOUT, env: Mapping[str, str] | None = None) -> None:
        self._timeout = timeout
        # C locale keeps tool output parseable and error messages greppable in logs.
        self._env = {**(os.environ if env is None else env), "LC_ALL": "C"}

    async def run(self, *argv: str, ok_codes: Collection[int] = (0,)) -> CommandResult:
        try:
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=self._env,
            )
        except FileNotFoundError as err:
            raise CommandNotFound(argv) from err
        try:
            async with asyncio.timeout(self._timeout):
                out, err_out = await process.communicate()
        except TimeoutError:
            await _kill(process)
            raise CommandTimedOut(argv, self._timeout) from None
        except asyncio.CancelledError:
            # A cancelled RPC must not leave mkfs or resize2fs running behind a retry.
            await _kill(process)
            raise
        result = CommandResult(
            argv=tuple(argv),
            exit_code=process.returncode if process.returncode is not None else -1,
            stdout=out.decode(errors="replace"),
            stderr=err_out.decode(errors="replace"),
        )
        if result.exit_code not in ok_codes:
            raise CommandFailed(argv, result.exit_code, result.stderr or result.stdout)
        return result


async def _kill(process: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        process.kill()
    await process.wait()
