"""The Redis backend against a private redis-server that we kill, freeze and share.

Shows that an outage surfaces fast as StoreUnavailableError (never a hang, never a raw
redis exception), that the store recovers when the server is back, and that two stores on
one server (two processes of a deployment) share state, locks and the event stream.
"""

from __future__ import annotations

import asyncio
import signal
import time
from typing import TYPE_CHECKING

import pytest
import redis

from correspondance.store import (
    Event,
    RedisStateStore,
    StoreUnavailableError,
    create_store,
)

if TYPE_CHECKING:  # conftest is not importable at run time (tests/ is not a package)
    from processes import RedisServer

pytestmark = pytest.mark.anyio

# The store under test waits at most this long for a reply.
SOCKET_TIMEOUT_S = 1.0


def _store(server: RedisServer) -> RedisStateStore:
    return RedisStateStore(
        server.url,
        prefix="fail:",
        socket_timeout_s=SOCKET_TIMEOUT_S,
        connect_timeout_s=SOCKET_TIMEOUT_S,
        block_s=0.2,
    )


async def test_killed_server_raises_store_unavailable_fast(redis_server: RedisServer) -> None:
    store = _store(redis_server)
    try:
        await store.set("k", b"v")
        await store.publish("t", "oslo", {})
        redis_server.stop()
        operations = {
            "get": store.get("k"),
            "set": store.set("k", b"w", ttl_s=5),
            "incr": store.incr("rate", ttl_s=5),
            "publish": store.publish("t", "oslo", {}),
            "read_events": store.read_events(),
            "acquire_lock": store.acquire_lock("w", "me", 5),
            "ping": store.ping(),
        }
        for name, operation in operations.items():
            started = time.monotonic()
            with pytest.raises(StoreUnavailableError, match="unavailable") as raised:
                async with asyncio.timeout(10):
                    await operation
            elapsed = time.monotonic() - started
            assert elapsed < 3 * SOCKET_TIMEOUT_S, f"{name} took {elapsed:.1f} s"
            # No raw driver exception crosses the interface; callers may catch the built-in.
            assert not isinstance(raised.value, redis.RedisError)
            assert isinstance(raised.value, ConnectionError)
            assert raised.value.code == "store_unavailable"
            assert redis_server.url in str(raised.value)
    finally:
        await store.aclose()


async def test_a_restart_shorter_than_the_ride_through_costs_latency_not_errors(
    redis_server: RedisServer,
) -> None:
    store = _store(redis_server)
    try:
        await store.set("k", b"v")
        redis_server.stop()

        async def restart() -> None:
            await asyncio.sleep(0.5)
            await asyncio.to_thread(redis_server.start)

        restarting = asyncio.create_task(restart())
        started = time.monotonic()
        # refused while the server is down: retried, not failed (even a publish: it never ran)
        await store.set("k", b"after")
        event = await store.publish("t", "oslo", {})
        assert time.monotonic() - started < store.ride_through_s + 1
        await restarting
        assert await store.get("k") == b"after"
        assert event.seq == await store.last_event_seq()
    finally:
        await store.aclose()


async def test_frozen_server_times_out_instead_of_hanging(redis_server: RedisServer) -> None:
    store = _store(redis_server)
    try:
        await store.set("k", b"v")
        assert redis_server.process is not None
        # SIGSTOP: the TCP connection stays open but nothing answers, the worst case.
        redis_server.process.send_signal(signal.SIGSTOP)
        try:
            started = time.monotonic()
            with pytest.raises(StoreUnavailableError, match="Timeout"):
                async with asyncio.timeout(15):
                    await store.get("k")
            assert time.monotonic() - started < 5 * SOCKET_TIMEOUT_S
        finally:
            redis_server.process.send_signal(signal.SIGCONT)
    finally:
        await store.aclose()


async def test_subscription_on_killed_server_raises_store_unavailable(
    redis_server: RedisServer,
) -> None:
    store = _store(redis_server)
    try:
        async with store.subscribe() as subscription:
            await store.publish("t", "oslo", {"n": 1})
            assert (await anext(subscription)).seq == 1
            redis_server.stop()
            with pytest.raises(StoreUnavailableError):
                async with asyncio.timeout(10):
                    await anext(subscription)
    finally:
        await store.aclose()


async def test_store_recovers_when_the_server_comes_back(redis_server: RedisServer) -> None:
    store = _store(redis_server)
    try:
        await store.set("k", b"v")
        redis_server.stop()
        with pytest.raises(StoreUnavailableError):
            await store.ping()
        # Same port, empty data (no persistence): the same store object reconnects.
        redis_server.start()
        await store.ping()
        assert await store.get("k") is None
        await store.set("k", b"again")
        assert await store.get("k") == b"again"
    finally:
        await store.aclose()


async def test_unreachable_from_the_start(redis_server: RedisServer) -> None:
    url = redis_server.url
    redis_server.stop()
    store = create_store(url)
    try:
        with pytest.raises(StoreUnavailableError, match=r"127\.0\.0\.1"):
            async with asyncio.timeout(10):
                await store.ping()
    finally:
        await store.aclose()


async def test_password_is_not_shown_in_errors(redis_server: RedisServer) -> None:
    url = redis_server.url.replace("redis://", "redis://user:s3cret@")
    redis_server.stop()
    store = RedisStateStore(url, socket_timeout_s=SOCKET_TIMEOUT_S, block_s=0.2)
    try:
        with pytest.raises(StoreUnavailableError) as raised:
            await store.ping()
        assert "s3cret" not in str(raised.value)
        assert "***@127.0.0.1" in str(raised.value)
    finally:
        await store.aclose()


async def test_two_stores_on_one_server_share_state_and_events(
    redis_server: RedisServer,
) -> None:
    api = _store(redis_server)
    worker = _store(redis_server)
    try:
        async with api.subscribe() as api_events, worker.subscribe() as worker_events:
            published = [
                await worker.publish("gbfs.updated", "oslo", {"station_ids": [str(i)]})
                for i in range(5)
            ]
            async with asyncio.timeout(5):
                received_by_api = [await anext(api_events) for _ in range(5)]
                received_by_worker = [await anext(worker_events) for _ in range(5)]
        assert received_by_api == published
        assert received_by_worker == published
        assert [e.seq for e in published] == [1, 2, 3, 4, 5]

        # Seqs stay one sequence whichever process publishes.
        mixed = await asyncio.gather(
            *((api if i % 2 else worker).publish("t", "oslo", {"i": i}) for i in range(40))
        )
        assert sorted(e.seq for e in mixed) == list(range(6, 46))
        assert [e.seq for e in await api.read_events(after_seq=5)] == list(range(6, 46))

        await worker.hset("report:1", {"kind": b"closure"})
        assert await api.hgetall("report:1") == {"kind": b"closure"}

        counts = await asyncio.gather(
            *(store.incr("rate:x", ttl_s=30) for store in (api, worker) for _ in range(100))
        )
        assert max(counts) == 200
        assert await api.get("rate:x") == b"200"

        # One writer: the lock taken by one process excludes the other until released.
        assert await worker.acquire_lock("writer:oslo", "worker-1", 10) is True
        assert await api.acquire_lock("writer:oslo", "api-1", 10) is False
        assert await worker.release_lock("writer:oslo", "worker-1") is True
        assert await api.acquire_lock("writer:oslo", "api-1", 10) is True
    finally:
        await api.aclose()
        await worker.aclose()


async def test_restarted_consumer_resumes_from_another_process(
    redis_server: RedisServer,
) -> None:
    writer = _store(redis_server)
    try:
        consumer = _store(redis_server)
        processed: list[Event] = []
        async with consumer.subscribe(after_seq=0) as events:
            await writer.publish("t", "oslo", {"i": 0})
            async with asyncio.timeout(5):
                processed.append(await anext(events))
        await consumer.aclose()  # the consumer process dies

        for i in range(1, 4):
            await writer.publish("t", "oslo", {"i": i})
        restarted = _store(redis_server)
        try:
            async with restarted.subscribe(after_seq=processed[-1].seq) as events:
                async with asyncio.timeout(5):
                    missed = [await anext(events) for _ in range(3)]
        finally:
            await restarted.aclose()
        assert [e.payload["i"] for e in missed] == [1, 2, 3]
    finally:
        await writer.aclose()
