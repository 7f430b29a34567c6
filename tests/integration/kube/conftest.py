"""Fixtures for the runtime's integration tests: a fresh namespace per test on the parent."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

import pytest

from kube.client import Client
from kube.errors import NotFound
from kube.resources import NAMESPACES


@pytest.fixture
async def namespace(parent_client: Client) -> AsyncIterator[str]:
    name = f"kube-{uuid.uuid4().hex[:8]}"
    await parent_client.create(NAMESPACES, {"metadata": {"name": name}})
    yield name
    with contextlib.suppress(NotFound):
        await parent_client.delete(NAMESPACES, name)
