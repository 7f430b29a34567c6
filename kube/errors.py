"""Typed API errors built from the HTTP status and the server's Status object.

Response bodies are truncated and scrubbed before they reach a message, so secrets never land in logs.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

BODY_LIMIT = 512
_SECRETISH = re.compile(r"(?i)(bearer\s+)[\w.~+/=-]+|eyJ[\w-]+\.[\w-]+\.[\w-]*")


def scrub(text: str, limit: int = BODY_LIMIT) -> str:
    """Cut a response body to `limit` characters and mask anything that looks like a token."""
    cut = text if len(text) <= limit else text[:limit] + f"... ({len(text) - limit} more bytes)"
    return _SECRETISH.sub(lambda m: (m.group(1) or "") + "[REDACTED]", cut)


@dataclass(frozen=True)
class Cause:
    """One field-level reason an object was Invalid (Status.details.causes)."""

    field: str
    reason: str
    message: str


@dataclass
class ApiError(Exception):
    """A request the API server refused or could not answer."""

    status: int
    reason: str = ""
    message: str = ""
    method: str = ""
    path: str = ""
    causes: tuple[Cause, ...] = ()
    retry_after: float | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        where = f" {self.method} {self.path}" if self.method else ""
        reason = f" {self.reason}" if self.reason else ""
        return f"{self.status}{reason}{where}: {self.message}"

    def __hash__(self) -> int:
        return id(self)


class BadRequest(ApiError):
    pass


class Unauthorized(ApiError):
    pass


class Forbidden(ApiError):
    pass


class NotFound(ApiError):
    pass


class MethodNotAllowed(ApiError):
    pass


class Conflict(ApiError):
    """The object changed since it was read (stale resourceVersion); re-read and retry."""


class AlreadyExists(ApiError):
    pass


class Gone(ApiError):
    """The requested resourceVersion is too old (compacted); relist."""


class Invalid(ApiError):
    """The object failed validation; `causes` says which fields."""


class TooManyRequests(ApiError):
    """Throttled by the server (priority and fairness); honour `retry_after`."""


class ServerError(ApiError):
    pass


class ServerTimeout(ServerError):
    """The server (504, or Status reason Timeout) or the client gave up waiting."""


class ConnectionFailed(ApiError):
    """No HTTP answer at all: refused, reset, DNS or TLS failure."""


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    405: MethodNotAllowed,
    410: Gone,
    422: Invalid,
    429: TooManyRequests,
    504: ServerTimeout,
}


def _retry_after(headers: dict[str, str], details: dict[str, Any]) -> float | None:
    raw = headers.get("Retry-After") or headers.get("retry-after")
    if raw is not None:
        try:
            return max(0.0, float(raw))
        except ValueError:
            return None
    seconds = details.get("retryAfterSeconds")
    return float(seconds) if isinstance(seconds, int | float) else None


def error_from_response(
    status: int, body: bytes, headers: dict[str, str] | None = None, *, method: str = "", path: str = ""
) -> ApiError:
    """Map an HTTP error answer to the most specific ApiError subclass."""
    headers = headers or {}
    text = body.decode("utf-8", errors="replace")
    reason, message = "", ""
    details: dict[str, Any] = {}
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and parsed.get("kind") == "Status":
        reason = str(parsed.get("reason") or "")
        message = scrub(str(parsed.get("message") or ""))
        details = parsed.get("details") or {}
    else:
        message = scrub(text.strip())
    causes = tuple(
        Cause(str(c.get("field", "")), str(c.get("reason", "")), scrub(str(c.get("message", ""))))
        for c in details.get("causes") or ()
        if isinstance(c, dict)
    )
    kind: type[ApiError]
    if status == 409:
        kind = AlreadyExists if reason == "AlreadyExists" else Conflict
    elif reason == "Timeout" or status == 504:
        kind = ServerTimeout
    else:
        kind = _BY_STATUS.get(status, ServerError if status >= 500 else ApiError)
    return kind(
        status=status,
        reason=reason,
        message=message,
        method=method,
        path=path,
        causes=causes,
        retry_after=_retry_after(headers, details),
        details={k: v for k, v in details.items() if k != "causes"},
    )
