"""Log lines parse back, carry the emitting task's object context, follow klog verbosity and never show secrets."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from kube.logging import (
    NOISY_LOGGERS,
    REDACTED,
    TRACE,
    KubeLogHandler,
    LogFormat,
    bind,
    configure_logging,
    log_context,
    redact,
    unbind,
)

LOGFMT_PAIR = r'[^\s="]+=(?:"(?:[^"\\]|\\.)*"|[^\s"]*)'
JWT = "eyJhbGciOiJSUzI1NiIsImtpZCI6IjEifQ.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQifQ.c2lnbmF0dXJl-_x"
PEM_KEY = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\nq1w2e3r4\n-----END RSA PRIVATE KEY-----"
PEM_CERT = "-----BEGIN CERTIFICATE-----\nMIIC5zCCAc+gAwIBAgIBATANBg\n-----END CERTIFICATE-----"


def parse_logfmt(line: str) -> dict[str, str]:
    """A strict reader: the whole line must be space-separated key=value pairs; quoted values are unescaped."""
    assert re.fullmatch(f"{LOGFMT_PAIR}(?: {LOGFMT_PAIR})*", line), f"not logfmt: {line!r}"
    parsed: dict[str, str] = {}
    for pair in re.finditer(LOGFMT_PAIR, line):
        key, _, value = pair[0].partition("=")
        parsed[key] = json.loads(value) if value.startswith('"') else value
    return parsed


class Output:
    """configure_logging pointed at a buffer, with the lines parsed back."""

    def __init__(self) -> None:
        self.stream = io.StringIO()

    def configure(self, verbosity: int = 2, fmt: LogFormat = "logfmt") -> None:
        configure_logging(verbosity, fmt, self.stream)

    def lines(self) -> list[str]:
        return self.stream.getvalue().splitlines()

    def logfmt(self) -> list[dict[str, str]]:
        return [parse_logfmt(line) for line in self.lines()]

    def json(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.lines()]


@pytest.fixture
def output() -> Iterator[Output]:
    """Restores the root and third-party loggers, which configure_logging changes process-wide."""
    root = logging.getLogger()
    saved_level, saved_handlers = root.level, list(root.handlers)
    saved_noisy = {name: logging.getLogger(name).level for name in NOISY_LOGGERS}
    yield Output()
    for handler in root.handlers[:]:
        if handler not in saved_handlers:
            root.removeHandler(handler)
    root.setLevel(saved_level)
    for name, level in saved_noisy.items():
        logging.getLogger(name).setLevel(level)


def test_logfmt_line_has_time_level_logger_message_and_fields(output: Output) -> None:
    output.configure()
    with log_context(controller="service", object="default/web", kind="Service"):
        logging.getLogger("kube.informer").info("synced %d objects", 3, extra={"fields": {"resourceVersion": 42}})

    [line] = output.logfmt()
    assert line == {
        "ts": line["ts"],
        "level": "info",
        "logger": "kube.informer",
        "msg": "synced 3 objects",
        "controller": "service",
        "object": "default/web",
        "kind": "Service",
        "resourceVersion": "42",
    }
    assert list(line)[:4] == ["ts", "level", "logger", "msg"]


def test_timestamp_is_rfc3339_utc_with_milliseconds(output: Output) -> None:
    output.configure()
    logging.getLogger("kube").warning("tick")

    ts = output.logfmt()[0]["ts"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", ts)
    parsed = datetime.fromisoformat(ts)
    assert parsed.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - parsed) < timedelta(seconds=5)


@pytest.mark.parametrize(
    "value",
    ["two words", 'say "hi"', "a=b", "line\nbreak\ttab", "back\\slash", "", "ünïcode ok", "\x00\x1b[31m"],
)
def test_logfmt_values_that_need_quoting_round_trip(output: Output, value: str) -> None:
    output.configure()
    logging.getLogger("kube").info(value, extra={"fields": {"value": value}})

    [line] = output.logfmt()
    assert (line["msg"], line["value"]) == (value, value)


def test_logfmt_leaves_plain_values_bare(output: Output) -> None:
    output.configure()
    logging.getLogger("kube").info("synced", extra={"fields": {"object": "kube-system/coredns-5d78c", "ok": True}})

    assert output.lines()[0].endswith(" msg=synced object=kube-system/coredns-5d78c ok=true")


def test_json_is_one_object_per_line_with_native_field_types(output: Output) -> None:
    output.configure(fmt="json")
    with log_context(controller="node"):
        logging.getLogger("ccm.node").info("first", extra={"fields": {"retries": 2, "ready": False}})
        logging.getLogger("ccm.node").warning("second\nline")

    first, second = output.json()
    assert first == {
        "ts": first["ts"],
        "level": "info",
        "logger": "ccm.node",
        "msg": "first",
        "controller": "node",
        "retries": 2,
        "ready": False,
    }
    assert (second["level"], second["msg"]) == ("warning", "second\nline")


def test_exception_is_a_single_field_in_json_and_logfmt(output: Output) -> None:
    for fmt in ("json", "logfmt"):
        output.configure(fmt=fmt)
        try:
            raise ValueError("boom")
        except ValueError:
            logging.getLogger("kube").exception("sync failed")

    json_line = json.loads(output.lines()[0])
    logfmt_line = parse_logfmt(output.lines()[1])
    for line in (json_line, logfmt_line):
        assert line["level"] == "error"
        assert str(line["exc"]).startswith("Traceback (most recent call last):")
        assert str(line["exc"]).endswith("ValueError: boom")


def test_text_is_one_readable_line_with_the_traceback_below(output: Output) -> None:
    output.configure(fmt="text")
    with log_context(object="default/web"):
        try:
            raise KeyError("spec")
        except KeyError:
            logging.getLogger("lb").error("ensure failed", exc_info=True, extra={"fields": {"attempt": 3}})

    head, *traceback = output.lines()
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z ERROR +lb: ensure failed  object=default/web attempt=3", head
    )
    assert traceback[0] == "Traceback (most recent call last):"
    assert traceback[-1] == "KeyError: 'spec'"


@pytest.mark.parametrize(
    ("verbosity", "shown"),
    [
        (0, ["info", "warning", "error"]),
        (2, ["info", "warning", "error"]),
        (4, ["debug", "info", "warning", "error"]),
        (6, ["trace", "debug", "info", "warning", "error"]),
    ],
)
def test_verbosity_follows_klog(output: Output, verbosity: int, shown: list[str]) -> None:
    output.configure(verbosity)
    logger = logging.getLogger("kube.queue")
    for level in (TRACE, logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR):
        logger.log(level, "at %s", logging.getLevelName(level))

    assert [line["level"] for line in output.logfmt()] == shown


@pytest.mark.parametrize("name", NOISY_LOGGERS)
def test_third_party_chatter_stays_at_warning_until_trace(output: Output, name: str) -> None:
    output.configure(4)
    logging.getLogger(name).info("GET /healthz 200")
    logging.getLogger(name).warning("slow callback")
    assert [line["msg"] for line in output.logfmt()] == ["slow callback"]

    output.configure(6)
    logging.getLogger(name).debug("selector woke")
    assert output.logfmt()[-1]["msg"] == "selector woke"


def test_configuring_again_replaces_our_handler_and_keeps_others(output: Output) -> None:
    other = logging.NullHandler()
    logging.getLogger().addHandler(other)
    output.configure(fmt="text")
    output.configure(fmt="json")
    logging.getLogger("kube").info("once")

    ours = [h for h in logging.getLogger().handlers if isinstance(h, KubeLogHandler)]
    assert len(ours) == 1
    assert other in logging.getLogger().handlers
    assert [line["msg"] for line in output.json()] == ["once"]


def test_nested_contexts_merge_and_unwind(output: Output) -> None:
    output.configure()
    logger = logging.getLogger("ccm.service")
    with log_context(controller="service"):
        with log_context(object="default/web", kind="Service"):
            logger.info("inner")
            with log_context(object="default/db"):
                logger.info("shadowed")
        logger.info("outer")
    logger.info("outside")

    inner, shadowed, outer, outside = output.logfmt()
    assert (inner["controller"], inner["object"], inner["kind"]) == ("service", "default/web", "Service")
    assert (shadowed["object"], shadowed["kind"]) == ("default/db", "Service")
    assert "object" not in outer
    assert outer["controller"] == "service"
    assert "controller" not in outside


async def test_context_follows_child_tasks_without_leaking_back(output: Output) -> None:
    output.configure()
    logger = logging.getLogger("kube.informer")

    async def worker(name: str) -> None:
        with log_context(object=name):
            await asyncio.sleep(0)
            logger.info("handled")

    with log_context(controller="service"):
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(worker("default/a"))
            tasks.create_task(worker("default/b"))
        logger.info("parent")

    *workers, parent = output.logfmt()
    assert sorted((line["controller"], line["object"]) for line in workers) == [
        ("service", "default/a"),
        ("service", "default/b"),
    ]
    assert parent["controller"] == "service"
    assert "object" not in parent


async def test_bind_holds_for_a_task_and_until_unbind(output: Output) -> None:
    output.configure()
    logger = logging.getLogger("csi.node")

    async def node_service() -> None:
        bind(component="csi-node", node="worker-1")
        await asyncio.sleep(0)
        logger.info("in task")

    await asyncio.create_task(node_service())
    logger.info("parent")
    token = bind(node="worker-2")
    logger.info("bound")
    unbind(token)
    logger.info("unbound")

    in_task, parent, bound, unbound = output.logfmt()
    assert (in_task["component"], in_task["node"]) == ("csi-node", "worker-1")
    assert "node" not in parent
    assert bound["node"] == "worker-2"
    assert "node" not in unbound


def test_call_fields_win_over_context_and_reserved_names_are_kept_aside(output: Output) -> None:
    output.configure()
    with log_context(object="default/web"):
        logging.getLogger("lb").info("real", extra={"fields": {"object": "default/override", "msg": "user", "ts": 1}})

    [line] = output.logfmt()
    assert (line["msg"], line["object"], line["msg_"], line["ts_"]) == ("real", "default/override", "user", "1")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer abc.def-123", f"Authorization: Bearer {REDACTED}"),
        (
            "{'Authorization': 'Bearer s3cr3t', 'Accept': '*/*'}",
            "{'Authorization': 'Bearer [REDACTED]', 'Accept': '*/*'}",
        ),
        ("authorization=Basic dXNlcjpwYXNz verb=get", f"authorization=Basic {REDACTED} verb=get"),
        ("retrying with bearer 0123456789abcdef== after 401", f"retrying with bearer {REDACTED} after 401"),
        ("GET /api?token=abc123&watch=1", f"GET /api?token={REDACTED}&watch=1"),
        (
            '{"status": {"token": "opaque value"}, "kind": "TokenRequest"}',
            '{"status": {"token": "[REDACTED]"}, "kind": "TokenRequest"}',
        ),
        ("access_token: 'x' id-token=y", f"access_token: '{REDACTED}' id-token={REDACTED}"),
        ("    client-key-data: LS0tLS1CRUdJTiBSU0E=", f"    client-key-data: {REDACTED}"),
        ('"client-key-data": "LS0tLS1CRUdJTiBSU0E="', f'"client-key-data": "{REDACTED}"'),
        (f"projected token {JWT} expired", f"projected token {REDACTED} expired"),
        (f"key:\n{PEM_KEY}\ndone", f"key:\n{REDACTED}\ndone"),
        ("-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE (truncated)", REDACTED),
        ("password: hunter2", f"password: {REDACTED}"),
        # Look-alikes that carry no secret stay readable.
        ("automountServiceAccountToken: true", "automountServiceAccountToken: true"),
        ("bucket tokens=5 resourceVersion=1234", "bucket tokens=5 resourceVersion=1234"),
        (PEM_CERT, PEM_CERT),
        ("eyJ-not-a-jwt", "eyJ-not-a-jwt"),
        ("", ""),
    ],
)
def test_redact(text: str, expected: str) -> None:
    assert redact(text) == expected
    assert redact(expected) == expected


def test_secrets_are_masked_in_message_fields_and_exception(output: Output) -> None:
    output.configure(fmt="json")
    with log_context(object="default/web", note=f"from {JWT}"):
        try:
            raise PermissionError("401 for Authorization: Bearer t0ps3cret")
        except PermissionError:
            logging.getLogger("kube.client").exception(
                "request with %s failed", "token=t0ps3cret", extra={"fields": {"token": "t0ps3cret", "header": JWT}}
            )

    [line] = output.json()
    assert "t0ps3cret" not in output.stream.getvalue()
    assert JWT not in output.stream.getvalue()
    assert line["msg"] == f"request with token={REDACTED} failed"
    assert (line["token"], line["header"], line["note"]) == (REDACTED, REDACTED, f"from {REDACTED}")
    assert str(line["exc"]).endswith(f"PermissionError: 401 for Authorization: Bearer {REDACTED}")


def test_caller_extra_fields_are_not_modified(output: Output) -> None:
    output.configure()
    fields = {"token": "t0ps3cret"}
    logging.getLogger("kube").info("x", extra={"fields": fields})

    assert fields == {"token": "t0ps3cret"}


def test_a_broken_format_string_does_not_raise_into_the_caller(output: Output, monkeypatch: pytest.MonkeyPatch) -> None:
    output.configure()
    # Keeps logging's own "--- Logging error ---" report out of the test output; the call must not raise either way.
    monkeypatch.setattr(logging, "raiseExceptions", False)
    logging.getLogger("kube").info("%d objects", "three")
    logging.getLogger("kube").info("still logging")

    assert [line["msg"] for line in output.logfmt()] == ["still logging"]
