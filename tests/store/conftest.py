"""Fixtures for the store tests: both backends (Redis alone and as a 3-master Redis
Cluster), and a private redis-server to kill.

The shared Redis (``CORRESPONDANCE_TEST_REDIS_URL``, default ``redis://127.0.0.1:6379/0``)
is used with a random key prefix per test, deleted afterwards, so tests never see each
other's keys nor leave any behind. The cluster is private to the test session (started
once, on loopback, killed at the end).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import redis
from processes import RedisServer, delete_prefix, free_port, redis_cluster

from correspondance.store import MemoryStateStore, RedisStateStore, StateStore

REDIS_URL = os.environ.get("CORRESPONDANCE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

MakeStore = Callable[..., Awaitable[StateStore]]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _require_shared_redis() -> None:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.fail(
            f"the store tests need a Redis server at {REDIS_URL} ({exc}); start one "
            "(`redis-server --daemonize yes`) or set CORRESPONDANCE_TEST_REDIS_URL"
        )
    finally:
        client.close()


@pytest.fixture(params=["memory", "redis", "redis-cluster"])
def backend(request: pytest.FixtureRequest) -> str:
    """Name of the backend under test; every contract test runs once per backend."""
    name: str = request.param
    if name == "redis":
        _require_shared_redis()
    return name


@pytest.fixture(scope="session")
def cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``redis+cluster://`` URL of a private 3-master Redis Cluster (started on first use)."""
    with ExitStack() as stack:
        cluster = stack.enter_context(redis_cluster(tmp_path_factory.mktemp("cluster")))
        yield cluster.url


@pytest.fixture
def redis_url(backend: str, request: pytest.FixtureRequest) -> str:
    """URL of the Redis backend under test (the shared server, or the private cluster)."""
    if backend == "redis-cluster":
        url: str = request.getfixturevalue("cluster_url")
        return url
    return REDIS_URL


@pytest.fixture
def redis_prefix(backend: str, redis_url: str) -> Iterator[str]:
    """A key prefix no other test uses; every key under it is deleted afterwards."""
    prefix = f"test:{uuid.uuid4().hex}:"
    yield prefix
    if backend == "redis":
        delete_prefix(prefix)
    # the cluster is private to this session and dies with it


@pytest.fixture
async def make_store(backend: str, redis_prefix: str, redis_url: str) -> AsyncIterator[MakeStore]:
    """Factory of stores of the backend under test, all closed after the test.

    Options: ``history_size`` (both), ``subscriber_queue_size`` (memory only: Redis has no
    per-subscriber queue). Redis stores made by one test share its prefix, like two
    processes of one deployment.
    """
    stores: list[StateStore] = []

    async def factory(**options: Any) -> StateStore:
        store: StateStore
        if backend == "memory":
            store = MemoryStateStore(**options)
        else:
            options.pop("subscriber_queue_size", None)
            store = RedisStateStore(redis_url, prefix=redis_prefix, **options)
        stores.append(store)
        return store

    yield factory
    for store in stores:
        await store.aclose()


@pytest.fixture
async def store(make_store: MakeStore) -> StateStore:
    """A store of the backend under test with default options."""
    return await make_store()


# -- a private redis-server, for failure tests -----------------------------------------------


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A private, running redis-server (no persistence), killed after the test."""
    server = RedisServer(workdir=tmp_path, port=free_port())
    server.start()
    try:
        yield server
    finally:
        if server.process is not None:
            # A test may leave it stopped (SIGSTOP); a killed process must not linger.
            server.stop()
