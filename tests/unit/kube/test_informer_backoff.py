"""How long an informer waits after a failed list or watch: the server's Retry-After, else jittered backoff."""

from __future__ import annotations

import pytest

from kube.errors import ConnectionFailed, TooManyRequests, error_from_response
from kube.informer import InformerSettings, retry_delay

SETTINGS = InformerSettings(backoff_base=0.5, backoff_cap=30.0)


@pytest.mark.parametrize("failures", [1, 2, 3, 5, 8, 40])
def test_backoff_doubles_with_jitter_up_to_the_cap(failures: int) -> None:
    error = ConnectionFailed(status=0, reason="ConnectionRefused")
    ceiling = min(30.0, 0.5 * 2**failures)
    delays = [retry_delay(failures, error, SETTINGS) for _ in range(200)]
    assert all(ceiling / 2 <= d <= ceiling for d in delays)
    assert max(delays) - min(delays) > 0  # jittered, so many informers do not come back in step


def test_a_restarted_apiservers_retry_after_is_believed_however_many_failures_came_before() -> None:
    # What kube-apiserver answers a watch while its watch cache initialises after a restart.
    body = b'{"kind":"Status","code":429,"reason":"TooManyRequests","message":"storage is (re)initializing"}'
    error = error_from_response(429, body, {"Retry-After": "1"}, method="WATCH", path="/api/v1/pods")
    assert isinstance(error, TooManyRequests)
    assert error.retry_after == 1.0
    delays = [retry_delay(6, error, SETTINGS) for _ in range(200)]
    assert all(1.0 <= d <= 1.5 for d in delays)  # not the 16-32 s that six failures in a row would give


def test_a_long_retry_after_is_capped() -> None:
    error = TooManyRequests(status=429, retry_after=3600.0)
    assert 30.0 <= retry_delay(1, error, SETTINGS) <= 30.5
