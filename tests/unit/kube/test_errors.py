"""Status answers map to typed errors; bodies are cut and scrubbed before they reach a message."""

from __future__ import annotations

import json

import pytest

from kube import errors


def status(code: int, reason: str, message: str = "m", details: dict[str, object] | None = None) -> bytes:
    body = {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "code": code,
        "reason": reason,
        "message": message,
        "details": details,
    }
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    ("code", "reason", "kind"),
    [
        (400, "BadRequest", errors.BadRequest),
        (401, "Unauthorized", errors.Unauthorized),
        (403, "Forbidden", errors.Forbidden),
        (404, "NotFound", errors.NotFound),
        (409, "AlreadyExists", errors.AlreadyExists),
        (409, "Conflict", errors.Conflict),
        (410, "Expired", errors.Gone),
        (422, "Invalid", errors.Invalid),
        (429, "TooManyRequests", errors.TooManyRequests),
        (500, "InternalError", errors.ServerError),
        (503, "ServiceUnavailable", errors.ServerError),
        (504, "Timeout", errors.ServerTimeout),
        (500, "Timeout", errors.ServerTimeout),
        (418, "Teapot", errors.ApiError),
    ],
)
def test_status_maps_to_its_type(code: int, reason: str, kind: type[errors.ApiError]) -> None:
    error = errors.error_from_response(code, status(code, reason), method="GET", path="/api/v1/x")
    assert type(error) is kind
    assert (error.status, error.reason) == (code, reason)
    assert str(error) == f"{code} {reason} GET /api/v1/x: m"


def test_invalid_carries_causes() -> None:
    body = status(
        422, "Invalid", details={"causes": [{"field": "metadata.name", "reason": "FieldValueInvalid", "message": "x"}]}
    )
    error = errors.error_from_response(422, body)
    assert error.causes == (errors.Cause("metadata.name", "FieldValueInvalid", "x"),)


@pytest.mark.parametrize(
    ("headers", "details", "expected"),
    [({"Retry-After": "3"}, {}, 3.0), ({}, {"retryAfterSeconds": 2}, 2.0), ({"Retry-After": "soon"}, {}, None)],
)
def test_retry_after(headers: dict[str, str], details: dict[str, object], expected: float | None) -> None:
    assert (
        errors.error_from_response(429, status(429, "TooManyRequests", details=details), headers).retry_after
        == expected
    )


def test_bodies_are_truncated_and_tokens_masked() -> None:
    token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"
    error = errors.error_from_response(500, f"oops Authorization: Bearer {token} {'x' * 2000}".encode())
    assert token not in str(error)
    assert "[REDACTED]" in error.message
    assert len(error.message) < errors.BODY_LIMIT + 64
