"""Structured logging on the stdlib `logging` module: klog-style verbosity, object context, secret redaction.

Lines come out as logfmt, JSON or plain text. A line carries the fields of the emitting task's
`log_context()`/`bind()` context, then those passed as `extra={"fields": {...}}`, which win on clashes.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Literal, TextIO

TRACE = 5
logging.addLevelName(TRACE, "TRACE")

LogFormat = Literal["text", "json", "logfmt"]
FieldValue = str | int | float | bool | None

REDACTED = "[REDACTED]"
DEBUG_VERBOSITY = 4
TRACE_VERBOSITY = 6
# Chatty at INFO/DEBUG (one line per request, per selector wake-up); only worth seeing when tracing.
NOISY_LOGGERS = ("aiohttp.access", "asyncio")
RESERVED_KEYS = frozenset({"ts", "level", "logger", "msg", "exc"})

# The record attribute our context filter fills; `fields` is the one callers pass through `extra`.
_CONTEXT_ATTR = "kube_context"
_FIELDS_ATTR = "fields"

# A ContextVar is a key, not state: each asyncio task sees the value from the context it was created in.
_context_fields: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar(
    "kube_log_fields", default=MappingProxyType({})
)

_PEM_PRIVATE_KEY = re.compile(
    r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----(?:.*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----|.*\Z)", re.DOTALL
)
_AUTHORIZATION = re.compile(
    r"(?P<key>\bauthorization[\"']?\s*[:=]\s*[\"']?)(?:(?P<scheme>bearer|basic|negotiate)\s+)?(?P<cred>[^\s\"',;]+)",
    re.IGNORECASE,
)
_BEARER = re.compile(r"(?P<scheme>\bbearer)\s+[A-Za-z0-9\-._~+/]+=*", re.IGNORECASE)
_SECRET_KEY_VALUE = re.compile(
    r"(?P<key>\b(?:(?:access|refresh|id|bearer|auth)?[-_]?token|client[-_]key[-_]data|password)[\"']?\s*[:=]\s*)"
    r"(?:\"(?:[^\"\\]|\\.)*\"|'[^']*'|[^\s\"',;&}]+)",
    re.IGNORECASE,
)
_JWT = re.compile(r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_SECRET_FIELD_NAME = re.compile(
    r"^(?:(?:access|refresh|id|bearer|auth)?[-_]?token|client[-_]key[-_]data|password|authorization)$", re.IGNORECASE
)


def redact(text: str) -> str:
    """Mask bearer tokens, JWTs, `token=`/`"token":` values, client-key-data and PEM private keys."""
    text = _PEM_PRIVATE_KEY.sub(REDACTED, text)
    text = _AUTHORIZATION.sub(_redact_authorization, text)
    text = _BEARER.sub(lambda m: f"{m['scheme']} {REDACTED}", text)
    text = _SECRET_KEY_VALUE.sub(_redact_keyed_value, text)
    return _JWT.sub(REDACTED, text)


def _redact_authorization(match: re.Match[str]) -> str:
    scheme = f"{match['scheme']} " if match["scheme"] else ""
    return f"{match['key']}{scheme}{REDACTED}"


def _redact_keyed_value(match: re.Match[str]) -> str:
    value = match[0][len(match["key"]) :]
    quote = value[0] if value[0] in "\"'" else ""
    return f"{match['key']}{quote}{REDACTED}{quote}"


def _redact_field(name: str, value: object) -> FieldValue:
    if _SECRET_FIELD_NAME.match(name):
        return REDACTED
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact(str(value))


@contextmanager
def log_context(**fields: str) -> Iterator[None]:
    """Add fields (controller=, object=ns/name, kind=) to every line logged inside; nested contexts merge."""
    token = bind(**fields)
    try:
        yield
    finally:
        unbind(token)


def bind(**fields: str) -> contextvars.Token[Mapping[str, str]]:
    """Add fields to the current context until `unbind(token)`; for a worker task that keeps them for its life."""
    return _context_fields.set(MappingProxyType({**_context_fields.get(), **fields}))


def unbind(token: contextvars.Token[Mapping[str, str]]) -> None:
    """Restore the fields that were in effect before the matching `bind()`."""
    _context_fields.reset(token)


class ContextFilter(logging.Filter):
    """Stamps each record with the emitting task's context fields, before another task can change them."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, _CONTEXT_ATTR):
            setattr(record, _CONTEXT_ATTR, _context_fields.get())
        return True


class RedactionFilter(logging.Filter):
    """Masks secrets in the message, the fields and the exception text of every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            # A bad format string is reported by the handler's handleError, not raised into the caller.
            return True
        record.msg, record.args = redact(message), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        for attr in (_CONTEXT_ATTR, _FIELDS_ATTR):
            fields = getattr(record, attr, None)
            if isinstance(fields, Mapping):
                # A new dict: the caller's `extra` mapping must not change under it.
                setattr(record, attr, {str(k): _redact_field(str(k), v) for k, v in fields.items()})
        return True


def record_fields(record: logging.LogRecord) -> dict[str, FieldValue]:
    """Context fields then per-call fields; names that clash with the line's own keys get a trailing `_`."""
    merged: dict[str, FieldValue] = {}
    for attr in (_CONTEXT_ATTR, _FIELDS_ATTR):
        fields = getattr(record, attr, None)
        if isinstance(fields, Mapping):
            merged.update({str(k): _field_value(v) for k, v in fields.items()})
    return {f"{k}_" if k in RESERVED_KEYS else k: v for k, v in merged.items()}


def _field_value(value: object) -> FieldValue:
    if value is None or isinstance(value, str | bool | int | float):
        return value
    return str(value)


def _timestamp(record: logging.LogRecord) -> str:
    created = datetime.fromtimestamp(record.created, tz=UTC)
    return f"{created:%Y-%m-%dT%H:%M:%S}.{int(record.msecs):03d}Z"


class _StructuredFormatter(logging.Formatter):
    """Collects a record into ordered key/value pairs; subclasses only decide how to print them."""

    def entries(self, record: logging.LogRecord) -> dict[str, FieldValue]:
        line: dict[str, FieldValue] = {
            "ts": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            **record_fields(record),
        }
        if exc := self.exception_text(record):
            line["exc"] = exc
        return line

    def exception_text(self, record: logging.LogRecord) -> str:
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        parts = [part for part in (record.exc_text, record.stack_info and self.formatStack(record.stack_info)) if part]
        return "\n".join(parts)


class LogfmtFormatter(_StructuredFormatter):
    """`ts=... level=info logger=kube.informer msg="..." key=value`, one line per record."""

    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{_logfmt_key(k)}={logfmt_value(v)}" for k, v in self.entries(record).items())


class JSONFormatter(_StructuredFormatter):
    """One JSON object per line; the traceback is a single `exc` string."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(self.entries(record), ensure_ascii=False, default=str)


class TextFormatter(_StructuredFormatter):
    """For people at a terminal: `ts LEVEL logger: msg key=value`, then the traceback on its own lines."""

    def format(self, record: logging.LogRecord) -> str:
        line = self.entries(record)
        exc = line.pop("exc", None)
        head = f"{line.pop('ts')} {str(line.pop('level')).upper():<7} {line.pop('logger')}: {line.pop('msg')}"
        fields = " ".join(f"{_logfmt_key(k)}={logfmt_value(v)}" for k, v in line.items())
        text = f"{head}  {fields}" if fields else head
        return f"{text}\n{exc}" if exc else text


FORMATTERS: Mapping[str, type[_StructuredFormatter]] = MappingProxyType(
    {"logfmt": LogfmtFormatter, "json": JSONFormatter, "text": TextFormatter}
)


def logfmt_value(value: FieldValue) -> str:
    """Render a value bare when that is unambiguous, else as a double-quoted, backslash-escaped string."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    if text and not any(c in ' ="\\' or not c.isprintable() for c in text):
        return text
    return json.dumps(text, ensure_ascii=False)


def _logfmt_key(key: str) -> str:
    return "".join(c if c.isprintable() and c not in ' ="' else "_" for c in key) or "_"


class KubeLogHandler(logging.StreamHandler[TextIO]):
    """The handler configure_logging installs; its type is how a second call finds and replaces it."""


def configure_logging(verbosity: int = 2, fmt: LogFormat = "logfmt", stream: TextIO | None = None) -> None:
    """Point the root logger at `stream` (stderr by default) with klog `--v` semantics; safe to call again."""
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, KubeLogHandler)]:
        root.removeHandler(old)
        old.close()
    handler = KubeLogHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(FORMATTERS[fmt]())
    # Context first, so the redaction filter also sees the context fields.
    handler.addFilter(ContextFilter())
    handler.addFilter(RedactionFilter())
    root.addHandler(handler)
    root.setLevel(level_for_verbosity(verbosity))
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET if verbosity >= TRACE_VERBOSITY else logging.WARNING)


def level_for_verbosity(verbosity: int) -> int:
    """klog `--v` to a logging level: below 4 INFO, 4 and 5 DEBUG, 6 and up TRACE."""
    if verbosity >= TRACE_VERBOSITY:
        return TRACE
    if verbosity >= DEBUG_VERBOSITY:
        return logging.DEBUG
    return logging.INFO
