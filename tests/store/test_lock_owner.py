"""Contract: the read-only lock-owner query, on both backends (health checks use it)."""

from __future__ import annotations

import asyncio

import pytest

from correspondance.store import StateStore

pytestmark = pytest.mark.anyio


async def test_find_lock_owner_follows_acquire_release_and_expiry(store: StateStore) -> None:
    assert await store.find_lock_owner("writer:oslo") is None
    assert await store.acquire_lock("writer:oslo", "host:1:ab", 0.3)
    assert await store.find_lock_owner("writer:oslo") == "host:1:ab"
    # asking does not take, extend or release it
    assert not await store.acquire_lock("writer:oslo", "host:2:cd", 10)
    assert await store.find_lock_owner("writer:other") is None
    await asyncio.sleep(0.45)
    assert await store.find_lock_owner("writer:oslo") is None
    assert await store.acquire_lock("writer:oslo", "host:2:cd", 10)
    assert await store.find_lock_owner("writer:oslo") == "host:2:cd"
    assert await store.release_lock("writer:oslo", "host:2:cd")
    assert await store.find_lock_owner("writer:oslo") is None
