"""Fixtures for crowdsource tests: stores of both backends, a secret, report factories.

Redis tests use the real server (``CORRESPONDANCE_TEST_REDIS_URL``, default
``redis://127.0.0.1:6379/0``) with a random key prefix, deleted afterwards.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from crowdsource_helpers import REDIS_URL

from correspondance.store import StateStore, create_store


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest, redis_prefix: str) -> AsyncIterator[StateStore]:
    """A store of each backend (Redis: the real server under a private prefix)."""
    url = None if request.param == "memory" else REDIS_URL
    state = create_store(url, prefix=redis_prefix)
    yield state
    await state.aclose()


@pytest.fixture
async def redis_store(redis_prefix: str) -> AsyncIterator[StateStore]:
    """A Redis store only (for what the memory backend cannot show, e.g. a second process)."""
    state = create_store(REDIS_URL, prefix=redis_prefix)
    yield state
    await state.aclose()
