"""Everything that can go wrong talking to LINSTOR, as one small hierarchy; callers catch `LinstorError` and degrade.

Messages carry LINSTOR's own ApiCallRc text cut short and scrubbed; response bodies of successful calls (which
include DRBD shared secrets) are never put into an error or a log line.
"""

from __future__ import annotations

from kube.errors import scrub

MESSAGE_LIMIT = 300


class LinstorError(Exception):
    """Base: LINSTOR could not tell us what we asked."""


class LinstorUnavailable(LinstorError):
    """No controller answered in time (refused, unreachable, TLS failure, timeout, or 5xx from every URL)."""


class LinstorApiError(LinstorError):
    """A controller answered with an error status; `messages` are its ApiCallRc messages."""

    def __init__(self, status: int, path: str, messages: tuple[str, ...] = ()) -> None:
        self.status = status
        self.path = path
        self.messages = tuple(scrub(m, MESSAGE_LIMIT) for m in messages)
        detail = "; ".join(self.messages) or "no message"
        super().__init__(f"LINSTOR {status} on {path}: {detail}")


class LinstorNotFound(LinstorApiError):
    """404: the resource group (or other named object) does not exist."""


class LinstorBadResponse(LinstorError):
    """The answer was not the JSON shape the REST API documents."""
