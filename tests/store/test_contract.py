"""The StateStore contract: every test runs on the memory and on the Redis backend."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pydantic
import pytest

from correspondance.store import (
    Event,
    EventsLostError,
    Fence,
    FencedOutError,
    ScriptResult,
    StateStore,
    StoreError,
    StoreScript,
    StoreTypeError,
    StoreUnavailableError,
    Subscription,
)

pytestmark = pytest.mark.anyio

# The ``make_store`` fixture (conftest.py): builds a store of the backend under test.
MakeStore = Callable[..., Awaitable[StateStore]]

SHORT_TTL = 0.3
PAST_SHORT_TTL = 0.5


async def take(subscription: Subscription, count: int, timeout: float = 5.0) -> list[Event]:
    """Read exactly ``count`` events, failing instead of hanging if they do not come."""
    events: list[Event] = []
    async with asyncio.timeout(timeout):
        while len(events) < count:
            events.append(await anext(subscription))
    return events


# -- key/value -----------------------------------------------------------------------------


async def test_get_set_delete_exists(store: StateStore) -> None:
    assert await store.get("a") is None
    await store.set("a", b"1")
    await store.set("b", b"\x00\xff binary")
    await store.set("a", b"2")
    assert await store.get("a") == b"2"
    assert await store.get("b") == b"\x00\xff binary"
    assert await store.exists("a", "b", "missing") == 2
    assert await store.delete("a", "b", "missing") == 2
    assert await store.get("a") is None
    assert await store.exists("a") == 0
    assert await store.delete() == 0


async def test_set_ttl_really_expires(store: StateStore) -> None:
    await store.set("session", b"x", ttl_s=SHORT_TTL)
    await store.set("forever", b"y")
    remaining = await store.ttl("session")
    assert remaining is not None
    assert 0 < remaining <= SHORT_TTL
    assert await store.ttl("forever") is None
    await asyncio.sleep(PAST_SHORT_TTL)
    assert await store.get("session") is None
    assert await store.exists("session") == 0
    assert await store.ttl("session") is None
    assert await store.get("forever") == b"y"


async def test_set_without_ttl_clears_previous_ttl(store: StateStore) -> None:
    await store.set("k", b"1", ttl_s=SHORT_TTL)
    await store.set("k", b"2")
    assert await store.ttl("k") is None
    await asyncio.sleep(PAST_SHORT_TTL)
    assert await store.get("k") == b"2"


async def test_expire_and_ttl(store: StateStore) -> None:
    assert await store.expire("missing", 10) is False
    await store.set("k", b"v")
    assert await store.expire("k", 10) is True
    remaining = await store.ttl("k")
    assert remaining is not None
    assert 9 < remaining <= 10
    assert await store.expire("k", SHORT_TTL) is True
    await asyncio.sleep(PAST_SHORT_TTL)
    assert await store.exists("k") == 0


@pytest.mark.parametrize("bad_ttl", [0, -1.5])
async def test_non_positive_ttl_is_refused(store: StateStore, bad_ttl: float) -> None:
    await store.set("k", b"v")
    with pytest.raises(ValueError, match="ttl_s must be > 0"):
        await store.set("k", b"w", ttl_s=bad_ttl)
    with pytest.raises(ValueError, match="ttl_s must be > 0"):
        await store.expire("k", bad_ttl)
    with pytest.raises(ValueError, match="ttl_s must be > 0"):
        await store.incr("n", ttl_s=bad_ttl)
    with pytest.raises(ValueError, match="ttl_s must be > 0"):
        await store.acquire_lock("l", "me", bad_ttl)
    assert await store.get("k") == b"v"
    assert await store.exists("n") == 0


# -- hashes --------------------------------------------------------------------------------


async def test_hashes(store: StateStore) -> None:
    assert await store.hgetall("report:1") == {}
    assert await store.hget("report:1", "kind") is None
    assert await store.hset("report:1", {"kind": b"closure", "edge": b"42"}) == 2
    assert await store.hset("report:1", {"kind": b"congestion", "votes": b"3"}) == 1
    assert await store.hget("report:1", "kind") == b"congestion"
    assert await store.hget("report:1", "missing") is None
    assert await store.hgetall("report:1") == {
        "kind": b"congestion",
        "edge": b"42",
        "votes": b"3",
    }
    assert await store.hdel("report:1", "edge", "missing") == 1
    assert await store.hgetall("report:1") == {"kind": b"congestion", "votes": b"3"}
    assert await store.hdel("report:1", "kind", "votes") == 2
    # A hash disappears with its last field, as in Redis.
    assert await store.exists("report:1") == 0
    assert await store.hdel("report:1", "kind") == 0
    with pytest.raises(ValueError, match="at least one field"):
        await store.hset("report:1", {})


async def test_hash_keeps_ttl_when_updated_and_expires(store: StateStore) -> None:
    await store.hset("report:2", {"kind": b"closure"})
    assert await store.expire("report:2", SHORT_TTL)
    await store.hset("report:2", {"votes": b"1"})
    assert await store.ttl("report:2") is not None
    await asyncio.sleep(PAST_SHORT_TTL)
    assert await store.hgetall("report:2") == {}


# -- sets ----------------------------------------------------------------------------------


async def test_sets(store: StateStore) -> None:
    assert await store.smembers("token:abc") == set()
    assert await store.sadd("token:abc", "r1", "r2") == 2
    assert await store.sadd("token:abc", "r2", "r3") == 1
    assert await store.smembers("token:abc") == {"r1", "r2", "r3"}
    assert await store.srem("token:abc", "r1", "nope") == 1
    assert await store.smembers("token:abc") == {"r2", "r3"}
    assert await store.srem("token:abc", "r2", "r3") == 2
    assert await store.exists("token:abc") == 0
    with pytest.raises(ValueError, match="at least one member"):
        await store.sadd("token:abc")


async def test_set_index_expires(store: StateStore) -> None:
    await store.sadd("token:t", "r1")
    assert await store.expire("token:t", SHORT_TTL)
    await asyncio.sleep(PAST_SHORT_TTL)
    assert await store.smembers("token:t") == set()


async def test_wrong_type_is_a_store_type_error(store: StateStore) -> None:
    await store.hset("h", {"f": b"1"})
    await store.sadd("s", "m")
    await store.set("text", b"not a number")
    with pytest.raises(StoreTypeError, match=r"WRONGTYPE|holds a hash"):
        await store.get("h")
    with pytest.raises(StoreTypeError, match=r"WRONGTYPE|holds a hash"):
        await store.sadd("h", "m")
    with pytest.raises(StoreTypeError, match=r"WRONGTYPE|holds a set"):
        await store.hget("s", "f")
    with pytest.raises(StoreTypeError, match="not an integer"):
        await store.incr("text")
    # Also catchable as the built-in it subclasses.
    with pytest.raises(TypeError):
        await store.smembers("h")
    assert await store.get("text") == b"not a number"


# -- counters ------------------------------------------------------------------------------


async def test_incr(store: StateStore) -> None:
    assert await store.incr("n") == 1
    assert await store.incr("n", 5) == 6
    assert await store.incr("n", -2) == 4
    assert await store.get("n") == b"4"
    assert await store.ttl("n") is None


async def test_incr_ttl_is_set_on_creation_only(store: StateStore) -> None:
    assert await store.incr("rate:1.2.3.4", ttl_s=SHORT_TTL) == 1
    await asyncio.sleep(SHORT_TTL / 2)
    # A later increment asks for a long TTL: the fixed window must not be extended.
    assert await store.incr("rate:1.2.3.4", ttl_s=60) == 2
    remaining = await store.ttl("rate:1.2.3.4")
    assert remaining is not None
    assert remaining <= SHORT_TTL / 2 + 0.05
    await asyncio.sleep(SHORT_TTL / 2 + 0.2)
    assert await store.get("rate:1.2.3.4") is None
    # The next window starts from 1 with a fresh TTL.
    assert await store.incr("rate:1.2.3.4", ttl_s=60) == 1
    remaining = await store.ttl("rate:1.2.3.4")
    assert remaining is not None
    assert remaining > 59


async def test_incr_is_atomic_under_concurrency(store: StateStore) -> None:
    results = await asyncio.gather(*(store.incr("hits", ttl_s=30) for _ in range(200)))
    assert sorted(results) == list(range(1, 201))
    assert await store.get("hits") == b"200"


# -- scripts -------------------------------------------------------------------------------

# A capped counter: count the attempt (the TTL set once, on creation), then store the value
# under a second key unless the cap is exceeded. Written twice, as every StoreScript is.
_CAPPED_LUA = """
local count = redis.call('INCR', KEYS[1])
if redis.call('PTTL', KEYS[1]) == -1 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if count > tonumber(ARGV[1]) then
  return {0, count, redis.call('PTTL', KEYS[1])}
end
redis.call('SET', KEYS[2], ARGV[3])
redis.call('HSET', KEYS[3], ARGV[3], ARGV[4])
return {1, count, redis.call('PTTL', KEYS[1]), ARGV[4]}
"""


async def _capped_local(store: StateStore, keys: list[str], args: list[bytes]) -> ScriptResult:
    ttl_s = int(args[1]) / 1000
    count = await store.incr(keys[0], ttl_s=ttl_s)
    remaining = await store.ttl(keys[0])
    ms = -1 if remaining is None else round(remaining * 1000)
    if count > int(args[0]):
        return [0, count, ms]
    await store.set(keys[1], args[2])
    await store.hset(keys[2], {args[2].decode(): args[3]})
    return [1, count, ms, args[3]]


CAPPED = StoreScript("capped", _CAPPED_LUA, _capped_local)


async def test_script_runs_the_same_on_both_backends(store: StateStore) -> None:
    keys = ["cap:n", "cap:last", "cap:all"]
    outcomes = [
        await store.run_script(CAPPED, keys, [2, 60_000, f"v{i}", 0.1 + i]) for i in range(3)
    ]
    assert [o[:2] for o in outcomes] == [[1, 1], [1, 2], [0, 3]]
    for outcome in outcomes:
        assert 59_000 <= outcome[2] <= 60_000  # the counter's TTL, set once
    # floats arrive exactly as repr() wrote them; strings come back as bytes
    assert [o[3:] for o in outcomes] == [[b"0.1"], [b"1.1"], []]
    assert await store.get("cap:last") == b"v1"  # the refused third attempt wrote nothing
    assert await store.hgetall("cap:all") == {"v0": b"0.1", "v1": b"1.1"}
    # keys are the caller's, without the namespace prefix
    assert await store.scan_keys("cap:*") == sorted(keys)


async def test_script_errors_are_store_errors(store: StateStore) -> None:
    await store.hset("cap:n", {"f": b"1"})
    with pytest.raises(StoreTypeError):
        await store.run_script(CAPPED, ["cap:n", "cap:last", "cap:all"], [2, 1000, "v", "x"])
    with pytest.raises(TypeError, match="script arguments"):
        await store.run_script(CAPPED, ["a", "b", "c"], [2, 1000, "v", None])  # type: ignore[list-item]


async def test_script_is_atomic_under_concurrency(backend: str, make_store: MakeStore) -> None:
    """Concurrent runs (from two clients sharing the server, on Redis) racing for a cap of
    10: exactly 10 pass, and every attempt is counted once."""
    first = await make_store()
    second = first if backend == "memory" else await make_store()
    keys = ["race:n", "race:last", "race:all"]
    runs = [
        (first if i % 2 else second).run_script(CAPPED, keys, [10, 60_000, f"v{i}", i])
        for i in range(40)
    ]
    outcomes = await asyncio.gather(*runs)
    assert sum(o[0] for o in outcomes) == 10
    assert sorted(o[1] for o in outcomes) == list(range(1, 41))
    assert len(await first.hgetall("race:all")) == 10


async def test_memory_refuses_a_local_script_that_suspends() -> None:
    # the in-process backend's own check (Redis runs the Lua text atomically by design)
    from correspondance.store import MemoryStateStore

    async def suspends(store: StateStore, keys: list[str], args: list[bytes]) -> ScriptResult:
        await store.set(keys[0], b"1")
        await asyncio.sleep(0)  # another task could run here: not atomic
        return [1]

    store = MemoryStateStore()
    with pytest.raises(RuntimeError, match="suspended"):
        await store.run_script(StoreScript("bad", "return {1}", suspends), ["k"])


async def test_script_failure_is_a_store_error(backend: str, make_store: MakeStore) -> None:
    async def fails(store: StateStore, keys: list[str], args: list[bytes]) -> ScriptResult:
        raise StoreError("script 'fails' failed")

    store = await make_store()
    with pytest.raises(StoreError):
        await store.run_script(StoreScript("fails", "return redis.error_reply('no')", fails), ["k"])


# -- scanning ------------------------------------------------------------------------------


async def test_scan_keys(store: StateStore) -> None:
    await store.set("report:1", b"a")
    await store.hset("report:2", {"k": b"v"})
    await store.sadd("token:x", "report:1")
    await store.set("report:gone", b"a", ttl_s=SHORT_TTL)
    await store.incr("rate:[ip]")
    await asyncio.sleep(PAST_SHORT_TTL)
    assert await store.scan_keys("report:*") == ["report:1", "report:2"]
    assert await store.scan_keys("report:?") == ["report:1", "report:2"]
    assert await store.scan_keys("token:*") == ["token:x"]
    assert await store.scan_keys() == ["rate:[ip]", "report:1", "report:2", "token:x"]
    assert await store.scan_keys("nothing:*") == []
    await store.publish("test.event", "oslo", {})
    assert await store.scan_keys("events*") == ["events", "events:seq"]


async def test_scan_keys_sees_only_its_own_namespace(make_store: MakeStore) -> None:
    store = await make_store()
    await store.set("mine", b"1")
    assert "mine" in await store.scan_keys()
    assert all(not key.startswith("corr:") for key in await store.scan_keys())


# -- locks ---------------------------------------------------------------------------------


async def test_lock_exclusivity(store: StateStore) -> None:
    assert await store.acquire_lock("writer:oslo", "a", 10) is True
    assert await store.acquire_lock("writer:oslo", "b", 10) is False
    # Re-acquiring one's own lock succeeds (a writer loop may call it every tick).
    assert await store.acquire_lock("writer:oslo", "a", 10) is True
    assert await store.refresh_lock("writer:oslo", "b", 10) is False
    assert await store.release_lock("writer:oslo", "b") is False
    assert await store.get("lock:writer:oslo") == b"a"
    assert await store.release_lock("writer:oslo", "a") is True
    assert await store.release_lock("writer:oslo", "a") is False
    assert await store.acquire_lock("writer:oslo", "b", 10) is True
    # Other lock names are independent.
    assert await store.acquire_lock("writer:porto-alegre", "a", 10) is True


async def test_lock_expires_and_refresh_extends(store: StateStore) -> None:
    assert await store.acquire_lock("w", "a", SHORT_TTL)
    await asyncio.sleep(SHORT_TTL / 2)
    assert await store.refresh_lock("w", "a", 2 * SHORT_TTL) is True
    await asyncio.sleep(SHORT_TTL)
    # Still held thanks to the refresh, although the first TTL has passed.
    assert await store.acquire_lock("w", "b", SHORT_TTL) is False
    await asyncio.sleep(2 * SHORT_TTL)
    assert await store.acquire_lock("w", "b", 10) is True
    # The former holder learns it lost the lock and cannot free the new holder's.
    assert await store.refresh_lock("w", "a", 10) is False
    assert await store.release_lock("w", "a") is False
    assert await store.get("lock:w") == b"b"


async def test_fenced_publish_writes_state_and_event_only_while_the_lock_is_held(
    store: StateStore,
) -> None:
    assert await store.acquire_lock("writer:x", "a", 10)
    fence = Fence("writer:x", "a")
    event = await store.publish("t", "x", {"n": 1}, fence=fence, state={"live:x:s": b"one"})
    assert await store.get("live:x:s") == b"one"
    assert (await store.read_events())[-1].seq == event.seq
    # Another process takes the lock (the first one's expired): the old writer is fenced out,
    # and nothing of its write lands — neither the state nor the event.
    assert await store.release_lock("writer:x", "a")
    assert await store.acquire_lock("writer:x", "b", 10)
    with pytest.raises(FencedOutError):
        await store.publish("t", "x", {"n": 2}, fence=fence, state={"live:x:s": b"stale"})
    assert await store.get("live:x:s") == b"one"
    assert await store.last_event_seq() == event.seq
    # No lock at all is fenced out too; the new holder writes.
    with pytest.raises(FencedOutError):
        await store.publish("t", "x", {}, fence=Fence("writer:none", "a"))
    await store.publish("t", "x", {"n": 3}, fence=Fence("writer:x", "b"), state={"live:x:s": b"b"})
    assert await store.get("live:x:s") == b"b"
    # State values are bytes, checked before anything is written.
    with pytest.raises(TypeError):
        await store.publish("t", "x", {}, state={"live:x:s": "text"})  # type: ignore[dict-item]
    assert await store.get("live:x:s") == b"b"


async def test_concurrent_acquire_has_exactly_one_winner(store: StateStore) -> None:
    owners = [f"worker-{i}" for i in range(50)]
    won = await asyncio.gather(*(store.acquire_lock("w", owner, 10) for owner in owners))
    assert sum(won) == 1
    winner = owners[won.index(True)]
    assert await store.get("lock:w") == winner.encode()


# -- events --------------------------------------------------------------------------------


async def test_publish_assigns_increasing_seq(store: StateStore) -> None:
    assert await store.last_event_seq() == 0
    before = datetime.now(UTC)
    first = await store.publish("gbfs.updated", "oslo", {"station_ids": ["s1", "s2"]})
    second = await store.publish("incident.declared", "oslo", {"edge_ids": [7], "note": "é"})
    third = await store.publish("gbfs.updated", "porto-alegre", {})
    assert [first.seq, second.seq, third.seq] == [1, 2, 3]
    assert first.type == "gbfs.updated"
    assert first.city == "oslo"
    assert first.payload == {"station_ids": ["s1", "s2"]}
    assert first.at.tzinfo is not None
    assert first.at.utcoffset() == timedelta(0)
    assert before - timedelta(seconds=1) <= first.at <= datetime.now(UTC)
    assert await store.last_event_seq() == 3
    assert await store.read_events() == [first, second, third]


async def test_concurrent_publishers_get_distinct_consecutive_seqs(store: StateStore) -> None:
    published = await asyncio.gather(*(store.publish("t", "oslo", {"i": i}) for i in range(100)))
    assert sorted(event.seq for event in published) == list(range(1, 101))
    stored = await store.read_events(limit=1000)
    assert [event.seq for event in stored] == list(range(1, 101))
    assert {event.payload["i"] for event in stored} == set(range(100))


async def test_event_is_frozen_and_payload_must_be_json(store: StateStore) -> None:
    event = await store.publish("t", "oslo", {"a": 1})
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        event.seq = 5  # type: ignore[misc]
    with pytest.raises(TypeError, match="not JSON serializable"):
        await store.publish("t", "oslo", {"when": datetime.now(UTC)})
    with pytest.raises(ValueError, match="Out of range float"):
        await store.publish("t", "oslo", {"x": float("nan")})
    # Nothing was stored by the refused publishes.
    assert await store.last_event_seq() == 1


async def test_published_payload_is_a_copy(store: StateStore) -> None:
    payload = {"edge_ids": [1, 2]}
    event = await store.publish("t", "oslo", payload)
    payload["edge_ids"].append(3)
    assert event.payload == {"edge_ids": [1, 2]}
    assert (await store.read_events())[0].payload == {"edge_ids": [1, 2]}


async def test_read_events_paging(store: StateStore) -> None:
    for i in range(25):
        await store.publish("t", "oslo", {"i": i})
    pages: list[list[int]] = []
    after = 0
    while page := await store.read_events(after_seq=after, limit=10):
        pages.append([event.seq for event in page])
        after = page[-1].seq
    assert pages == [list(range(1, 11)), list(range(11, 21)), list(range(21, 26))]
    assert [e.seq for e in await store.read_events(after_seq=23)] == [24, 25]
    assert await store.read_events(after_seq=25) == []
    assert await store.read_events(after_seq=1000) == []
    with pytest.raises(ValueError, match="limit must be >= 1"):
        await store.read_events(limit=0)
    with pytest.raises(ValueError, match="after_seq must be >= 0"):
        await store.read_events(after_seq=-1)


async def test_two_subscribers_both_get_every_event_in_order(store: StateStore) -> None:
    await store.publish("before", "oslo", {})
    async with store.subscribe() as first, store.subscribe() as second:
        for i in range(20):
            await store.publish("t", "oslo", {"i": i})
        got_first = await take(first, 20)
        got_second = await take(second, 20)
    assert [e.seq for e in got_first] == list(range(2, 22))
    assert got_second == got_first
    assert [e.payload["i"] for e in got_first] == list(range(20))


async def test_subscribers_wait_for_events_published_later(store: StateStore) -> None:
    async with store.subscribe() as subscription:

        async def publish_later() -> None:
            await asyncio.sleep(0.2)
            await store.publish("late", "oslo", {"n": 1})

        publisher = asyncio.create_task(publish_later())
        (event,) = await take(subscription, 1)
        await publisher
    assert (event.seq, event.type) == (1, "late")


async def test_subscribe_after_seq_replays_missed_events(store: StateStore) -> None:
    for i in range(5):
        await store.publish("t", "oslo", {"i": i})
    async with store.subscribe(after_seq=2) as subscription:
        replayed = await take(subscription, 3)
        await store.publish("t", "oslo", {"i": 5})
        (live,) = await take(subscription, 1)
        assert subscription.last_seq == 6
    assert [e.seq for e in replayed] == [3, 4, 5]
    assert live.seq == 6


async def test_restarted_consumer_resumes_from_its_last_seq(make_store: MakeStore) -> None:
    store = await make_store()
    async with store.subscribe(after_seq=0) as consumer:
        await store.publish("t", "oslo", {"i": 0})
        await store.publish("t", "oslo", {"i": 1})
        processed = await take(consumer, 2)
    await store.publish("t", "oslo", {"i": 2})
    await store.publish("t", "oslo", {"i": 3})
    async with store.subscribe(after_seq=processed[-1].seq) as restarted:
        resumed = await take(restarted, 2)
    assert [e.payload["i"] for e in resumed] == [2, 3]


async def test_iterating_without_context_manager(store: StateStore) -> None:
    subscription = store.subscribe(after_seq=0)
    await store.publish("t", "oslo", {})
    received = []
    async for event in subscription:
        received.append(event.seq)
        break
    await subscription.aclose()
    assert received == [1]
    with pytest.raises(StopAsyncIteration):
        await anext(subscription)


async def test_slow_subscriber_does_not_block_and_still_gets_everything(
    make_store: MakeStore,
) -> None:
    store = await make_store(history_size=1000, subscriber_queue_size=5)
    async with store.subscribe() as slow, store.subscribe() as fast:
        fast_events: list[Event] = []
        for i in range(50):
            await store.publish("t", "oslo", {"i": i})
            fast_events += await take(fast, 1)
        # The slow one read nothing while 50 events (10x its queue) went by.
        slow_events = await take(slow, 50)
        await store.publish("t", "oslo", {"i": 50})
        slow_events += await take(slow, 1)
    assert [e.seq for e in fast_events] == list(range(1, 51))
    assert [e.seq for e in slow_events] == list(range(1, 52))


async def test_events_trimmed_before_being_read_raise_events_lost(make_store: MakeStore) -> None:
    store = await make_store(history_size=10, subscriber_queue_size=5)
    async with store.subscribe(after_seq=0) as behind:
        # Redis trims approximately (whole stream nodes of 100 entries), so publish plenty.
        for i in range(300):
            await store.publish("t", "oslo", {"i": i})
        kept = await store.read_events(after_seq=0, limit=1000)
        assert kept[0].seq > 1
        assert [e.seq for e in kept] == list(range(kept[0].seq, 301))
        with pytest.raises(EventsLostError, match="trimmed") as lost:
            await take(behind, 1)
    assert lost.value.last_seq == 0
    assert lost.value.next_seq == kept[0].seq


async def test_resume_point_ahead_of_stream_raises_events_lost(store: StateStore) -> None:
    await store.publish("t", "oslo", {})
    with pytest.raises(EventsLostError, match="stream was reset"):
        async with store.subscribe(after_seq=50):
            pass
    with pytest.raises(ValueError, match="after_seq must be >= 0"):
        store.subscribe(after_seq=-1)


async def test_closing_the_store_ends_subscriptions(make_store: MakeStore) -> None:
    store = await make_store()
    subscription = store.subscribe()
    await subscription.start()
    await store.publish("t", "oslo", {})
    seen: list[int] = []

    async def consume() -> None:
        async for event in subscription:
            seen.append(event.seq)

    consumer = asyncio.create_task(consume())
    await asyncio.sleep(0.2)
    await store.aclose()
    async with asyncio.timeout(5):
        await consumer
    assert seen == [1]


async def test_closing_a_subscription_from_another_task_ends_it(store: StateStore) -> None:
    subscription = store.subscribe()
    await subscription.start()
    seen: list[int] = []

    async def consume() -> None:
        async for event in subscription:
            seen.append(event.seq)

    consumer = asyncio.create_task(consume())
    await store.publish("t", "oslo", {})
    await asyncio.sleep(0.2)
    await subscription.aclose()
    async with asyncio.timeout(5):
        await consumer
    assert seen == [1]
    # The store itself stays usable.
    assert (await store.publish("t", "oslo", {})).seq == 2


# -- lifecycle -----------------------------------------------------------------------------


async def test_ping_and_closed_store(make_store: MakeStore) -> None:
    store = await make_store()
    await store.ping()
    await store.aclose()
    await store.aclose()  # idempotent
    with pytest.raises(StoreUnavailableError, match="closed"):
        await store.ping()
    with pytest.raises(StoreUnavailableError, match="closed"):
        await store.get("k")
    with pytest.raises(ConnectionError):
        await store.publish("t", "oslo", {})
