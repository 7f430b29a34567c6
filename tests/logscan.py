"""A pytest plugin that fails the run when a credential shows up in any log line the suite produced.

During the session every record of our loggers is captured down to TRACE, and every record of other loggers at
the level they already had, into a spool file; nothing else changes (records below a logger's own level never
reach other handlers, so caplog and pytest's reports see what they saw before). At the end the spool and every
log file under pytest's basetemp (e2e.cluster.down is wrapped: a harness's logs are copied, and the tokens in its
Secrets noted, before it is removed) are searched for
the credentials the suite made (kubeconfig tokens and client keys, ServiceAccount tokens, private keys on disk)
and for anything shaped like one (PEM private keys, bearer tokens, JWTs, `Authorization:` values). Findings are
reported with file and line, the secret masked, and the run's exit status becomes non-zero.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import copy
import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

import pytest
import yaml

from kube.logging import TRACE, ContextFilter, LogfmtFormatter

# The packages whose loggers are opened down to TRACE: everything our code and the simulators log.
OUR_LOGGERS = ("kube", "lb", "ccm", "csi", "e2e", "sim")
MIN_SECRET_LENGTH = 16
MAX_TEXT_FILE = 1 << 20
LOG_SUFFIXES = (".log", ".out", ".err")
EXCERPT = 160
PEM_LINES = 2

_PEM_BLOCK = re.compile(r"-----BEGIN ([A-Z0-9 ]*PRIVATE KEY)-----\s*(.*?)-----END \1-----", re.DOTALL)
# What a credential looks like in a log line, wherever it came from (an unmasked value is a leak).
SHAPES: dict[str, re.Pattern[str]] = {
    "PEM private key": re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----"),
    "Authorization header": re.compile(
        r"\bauthorization[\"']?\s*[:=]\s*[\"']?(?:(?:bearer|basic)\s+)?(?!\[REDACTED\])[A-Za-z0-9._~+/=-]{8,}",
        re.IGNORECASE,
    ),
    "bearer token": re.compile(r"\bbearer\s+(?!\[REDACTED\])[A-Za-z0-9._~+/-]{16,}=*", re.IGNORECASE),
    "JWT": re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
}


@dataclass(frozen=True)
class Finding:
    path: Path
    line: int
    kind: str
    excerpt: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.kind}: {self.excerpt}"


@dataclass
class Secrets:
    """Exact strings that must never be logged, each with what it is."""

    known: dict[str, str] = field(default_factory=dict)

    def add(self, value: str, kind: str) -> None:
        value = value.strip()
        if len(value) >= MIN_SECRET_LENGTH:
            self.known.setdefault(value, kind)

    def add_pem(self, text: str, kind: str) -> None:
        """A private key's body lines: any one of them in a log is key material."""
        for match in _PEM_BLOCK.finditer(text):
            lines = [line.strip() for line in match[2].splitlines() if len(line.strip()) >= MIN_SECRET_LENGTH]
            for line in lines[:PEM_LINES]:  # random key material from the first line on: a few lines identify it
                self.add(line, f"{kind} ({match[1].lower()})")

    def add_kubeconfig(self, config: Any, where: str) -> None:
        if not isinstance(config, dict):
            return
        users = config.get("users")
        for entry in users if isinstance(users, list) else []:
            user = entry.get("user") if isinstance(entry, dict) else None
            if not isinstance(user, dict):
                continue  # not a kubeconfig after all (or a broken one a test wrote on purpose)
            for key in ("token", "password"):
                if isinstance(user.get(key), str):
                    self.add(user[key], f"{key} of kubeconfig {where}")
            if isinstance(data := user.get("client-key-data"), str):
                self.add(data[:64], f"client-key-data of kubeconfig {where}")
                with contextlib.suppress(binascii.Error, UnicodeDecodeError):
                    self.add_pem(base64.b64decode(data).decode(), f"client key of kubeconfig {where}")

    def add_file(self, path: Path) -> None:
        """Whatever credential a file on disk holds: a kubeconfig's users, a private key."""
        try:
            if path.stat().st_size > MAX_TEXT_FILE:
                return
            text = path.read_text()
        except (OSError, UnicodeDecodeError):
            return
        if "PRIVATE KEY-----" in text:
            self.add_pem(text, f"private key {path}")
        if "users:" in text or '"users"' in text:
            with contextlib.suppress(yaml.YAMLError):
                self.add_kubeconfig(yaml.safe_load(text), str(path))

    def add_cluster_secrets(self, kubectl: str, kubeconfig: Path, plane: str) -> None:
        """Every token and kubeconfig held in the Secrets of a control plane that is still up."""
        listed = subprocess.run(
            [kubectl, f"--kubeconfig={kubeconfig}", "get", "secrets", "--all-namespaces", "-o", "json"],
            capture_output=True,
            text=True,
            check=False,
        )
        if listed.returncode != 0:
            return
        for item in json.loads(listed.stdout).get("items") or []:
            where = f"{plane} Secret {item['metadata'].get('namespace')}/{item['metadata'].get('name')}"
            for key, encoded in (item.get("data") or {}).items():
                with contextlib.suppress(binascii.Error, UnicodeDecodeError):
                    value = base64.b64decode(encoded).decode()
                    if key == "token":
                        self.add(value, f"token of {where}")
                    elif "PRIVATE KEY-----" in value:
                        self.add_pem(value, f"{key} of {where}")
                    elif "users:" in value:
                        with contextlib.suppress(yaml.YAMLError):
                            self.add_kubeconfig(yaml.safe_load(value), f"{key} of {where}")


def _excerpt(text: str, start: int, end: int) -> tuple[int, str]:
    """The line number of a hit and its line around it, the secret replaced by its length, cut to size."""
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", end)
    line_end = len(text) if line_end < 0 else line_end
    before = text[max(line_start, start - EXCERPT // 2) : start]
    after = text[end : min(line_end, end + EXCERPT // 2)]
    return text.count("\n", 0, start) + 1, f"{before}<{end - start} secret chars>{after}"


def scan_text(path: Path, text: str, secrets: Secrets, *, shapes: bool) -> list[Finding]:
    """The known secrets in a file's text and, for real log output, anything shaped like a secret."""
    hits: list[tuple[int, int, str]] = []
    for needle, kind in secrets.known.items():
        at = text.find(needle)
        while at >= 0:
            hits.append((at, at + len(needle), kind))
            at = text.find(needle, at + len(needle))
    if shapes:
        for kind, pattern in SHAPES.items():
            hits += [(match.start(), match.end(), kind) for match in pattern.finditer(text)]
    findings = []
    for start, end, kind in sorted(hits):
        line, excerpt = _excerpt(text, start, end)
        findings.append(Finding(path, line, kind, excerpt))
    return findings


def scan_file(path: Path, secrets: Secrets, *, shapes: bool = True) -> list[Finding]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    return scan_text(path, text, secrets, shapes=shapes)


def log_files(root: Path) -> Iterator[Path]:
    """Files processes logged to: anything under a `logs` directory, and *.log/*.out/*.err anywhere."""
    if not root.is_dir():
        return
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink() and ("logs" in path.parts or path.suffix in LOG_SUFFIXES):
            yield path


def credential_files(root: Path) -> Iterator[Path]:
    """Files that may hold credentials: small text files outside etcd's data directories."""
    if not root.is_dir():
        return
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink() and "etcd" not in path.parts and "logs" not in path.parts:
            yield path


class _Spool:
    """One file both capturing handlers write to, a line per record, from any thread."""

    def __init__(self, path: Path) -> None:
        self._file: TextIO = path.open("w", encoding="utf-8")
        self._lock = threading.Lock()

    def write(self, line: str) -> None:
        with self._lock:
            if not self._file.closed:
                self._file.write(line.replace("\n", "\\n") + "\n")

    def flush(self) -> None:
        with self._lock:
            if not self._file.closed:
                self._file.flush()

    def close(self) -> None:
        with self._lock:
            self._file.close()


def ours(name: str) -> bool:
    return any(name == top or name.startswith(f"{top}.") for top in OUR_LOGGERS)


def _line(record: logging.LogRecord, formatter: logging.Formatter) -> str:
    """A record in our log format, never redacted, formatted on a copy (formatting fills in exc_text)."""
    seen = copy.copy(record)
    try:
        ContextFilter().filter(seen)
        return formatter.format(seen)
    except Exception as error:  # a record that cannot be formatted is still scanned, as raw as it comes
        return f"logger={record.name} unformattable={error!r} msg={record.msg!r} args={record.args!r}"


class _Gate(logging.Filter):
    """On every logger of ours: spool each record, then let it on only if it would have existed without us.

    A logger's filters run once per record, on the logger that made it, before any handler; so records only
    made because we opened the level to TRACE reach no handler but ours.
    """

    def __init__(self, spool: _Spool, opened: dict[str, int]) -> None:
        super().__init__()
        self.spool = spool
        self.opened = opened  # top-level logger name -> the level it had before we opened it
        self.formatter = LogfmtFormatter()

    def filter(self, record: logging.LogRecord) -> bool:
        self.spool.write(_line(record, self.formatter))
        return record.levelno >= self.original_level(record.name)

    def original_level(self, name: str) -> int:
        logger: logging.Logger | None = logging.getLogger(name)
        while logger is not None:
            level = logger.level
            if logger.name in self.opened and level == TRACE:
                level = self.opened[logger.name]
            if level:
                return level
            logger = logger.parent
        return logging.NOTSET


class _Others(logging.Handler):
    """On the root logger: records of every other logger, at the levels they already had."""

    def __init__(self, spool: _Spool) -> None:
        super().__init__(logging.NOTSET)
        self.spool = spool
        self.setFormatter(LogfmtFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        if not ours(record.name):  # ours were spooled by the gate
            self.spool.write(_line(record, self.formatter or LogfmtFormatter()))


class LogScan:
    """The plugin's state: the spool of captured records, copied harness logs, the secrets seen so far."""

    def __init__(self) -> None:
        self.secrets = Secrets()
        self.findings: list[Finding] = []
        self.basetemp: Path | None = None
        self.harness_dirs: list[Path] = []
        self._spool_dir = Path(tempfile.mkdtemp(prefix="tenant-cloud-logscan-"))
        self.spool_path = self._spool_dir / "records.log"
        self._spool = _Spool(self.spool_path)
        self._opened: dict[str, int] = {}
        self._down: Any = None
        self._copied_from: dict[Path, Path] = {}
        self.records_scanned = 0
        self.files_scanned = 0

    def start(self) -> None:
        levels = {}
        for name in OUR_LOGGERS:
            logger = logging.getLogger(name)
            levels[name] = logger.level
            self._opened[name] = logger.level
        self._gate = _Gate(self._spool, levels)
        for name in OUR_LOGGERS:
            logging.getLogger(name).setLevel(TRACE)
        self.gate_new_loggers()
        gate, manager = self._gate, logging.Logger.manager
        made_by = manager.loggerClass or logging.getLoggerClass()
        self._logger_class = manager.loggerClass

        class GatedLogger(made_by):  # type: ignore[valid-type,misc]
            """Loggers made later (a test's `getLogger("kube.x")`) get the gate as they are made."""

            def __init__(self, name: str, level: int = logging.NOTSET) -> None:
                super().__init__(name, level)
                if ours(name):
                    self.addFilter(gate)

        manager.loggerClass = GatedLogger
        self._others = _Others(self._spool)
        logging.getLogger().addHandler(self._others)

    def gate_new_loggers(self) -> None:
        """Put the gate on every logger of ours that exists now (modules made theirs when imported)."""
        for name, logger in list(logging.Logger.manager.loggerDict.items()):
            if isinstance(logger, logging.Logger) and ours(name) and self._gate not in logger.filters:
                logger.addFilter(self._gate)

    def flush(self) -> None:
        self._spool.flush()

    def stop(self) -> None:
        if self._down is not None:
            from e2e import cluster as harness

            harness.down = self._down
        logging.Logger.manager.loggerClass = self._logger_class
        logging.getLogger().removeHandler(self._others)
        for logger in list(logging.Logger.manager.loggerDict.values()):
            if isinstance(logger, logging.Logger):
                logger.removeFilter(self._gate)
        for name, level in self._opened.items():
            logger = logging.getLogger(name)
            if logger.level == TRACE:
                logger.setLevel(level)
        self._spool.close()

    def keep_harness_logs(self) -> None:
        """Every harness torn down in this session (e2e.cluster.down) leaves its logs and credentials with us."""
        from e2e import cluster as harness

        self._down = original = harness.down

        def down(directory: Path | str) -> None:
            with contextlib.suppress(Exception):  # a broken harness is down's to report, not ours
                self.harness_going_down(harness.load(directory))
            original(directory)

        harness.down = down

    def harness_going_down(self, cluster: Any) -> None:
        """Before a harness (an e2e.cluster.Cluster) is removed: note its credentials, keep a copy of its logs."""
        directory = Path(cluster.dir)
        for plane in ("parent", "tenant"):
            self.secrets.add_cluster_secrets(cluster.kubectl, cluster.plane(plane).kubeconfig, plane)
        for path in credential_files(directory):
            self.secrets.add_file(path)
        keep = self._spool_dir / f"harness-{len(self.harness_dirs)}"
        for path in log_files(directory):
            target = keep / path.relative_to(directory)
            target.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(OSError):
                shutil.copyfile(path, target)
                self._copied_from[target] = path
        self.harness_dirs.append(directory)

    def scan(self, extra_roots: Iterable[Path] = ()) -> list[Finding]:
        roots = [r for r in (self.basetemp, *extra_roots) if r is not None]
        for root in roots:
            for path in credential_files(root):
                self.secrets.add_file(path)
        findings = scan_file(self.spool_path, self.secrets, shapes=False)
        with self.spool_path.open(encoding="utf-8", errors="replace") as spool:
            self.records_scanned = sum(1 for _ in spool)
        files = [p for p in log_files(self._spool_dir) if p != self.spool_path]
        files += [p for root in roots for p in log_files(root)]
        for path in files:
            origin = self._copied_from.get(path, path)  # report where the process wrote it
            findings += [replace(f, path=origin) for f in scan_file(path, self.secrets)]
        self.files_scanned = len(files)
        self.findings = findings
        return findings

    def cleanup(self) -> None:
        shutil.rmtree(self._spool_dir, ignore_errors=True)


_STATE = pytest.StashKey[LogScan]()


def active(config: pytest.Config) -> LogScan | None:
    """The running scan, for fixtures that tear down what holds logs (the harness)."""
    return config.stash.get(_STATE, None)


def pytest_configure(config: pytest.Config) -> None:
    scan = LogScan()
    scan.start()
    scan.keep_harness_logs()
    config.stash[_STATE] = scan


@pytest.fixture(scope="session", autouse=True)
def _logscan_basetemp(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> None:
    if (scan := active(request.config)) is not None:
        scan.basetemp = tmp_path_factory.getbasetemp()


def reused_harness() -> list[Path]:
    reuse = os.environ.get("TENANT_CLOUD_HARNESS_DIR")
    return [Path(reuse)] if reuse else []


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    scan = active(session.config)
    if scan is None:
        return
    scan.stop()
    try:
        found = scan.scan(reused_harness())
    except Exception as error:  # a scan that cannot finish proves nothing: say why and fail
        scan.findings = [Finding(scan.spool_path, 0, "log scan failed", f"{type(error).__name__}: {error}")]
        found = scan.findings
    if found:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    scan = active(config)
    if scan is None:
        return
    if scan.findings:
        terminalreporter.write_sep("=", "secrets in logs", red=True, bold=True)
        for finding in scan.findings[:50]:
            terminalreporter.write_line(str(finding))
        if len(scan.findings) > 50:
            terminalreporter.write_line(f"... and {len(scan.findings) - 50} more")
    terminalreporter.write_line(
        f"log scan: {scan.records_scanned} log records and {scan.files_scanned} log files (from "
        f"{len(scan.harness_dirs)} torn-down harnesses and basetemp) searched for {len(scan.secrets.known)} known "
        f"secrets and {len(SHAPES)} secret shapes: {len(scan.findings)} found"
    )


def pytest_unconfigure(config: pytest.Config) -> None:
    scan = active(config)
    if scan is not None:
        scan.cleanup()
