"""No stored session can break start-up, the hub's ticker, the engine's tick or shutdown.

Issue #11, finding 1: a trip whose clock passed year 9999 made ``now()`` raise; the hub's
ticker died silently (no socket got progress again), the engine's tick failed every 2 s,
shutdown failed and every restart failed while the key lived. Here poisoned sessions are
written straight into a shared Redis (a fresh key prefix, deleted afterwards), then a real
server starts on it, serves a good trip and shuts down cleanly.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from report_helpers import REDIS_URL, delete_prefix
from trip_helpers import (
    CITY,
    InThread,
    TripSocket,
    plan,
    serve_in_thread,
    start_trip,
    trip_settings,
    trip_socket,
)

from correspondance.settings import Settings
from realtime.trips.hub import TripConnection
from realtime.trips.sessions import (
    QUARANTINE_TTL_S,
    TripBook,
    active_key,
    quarantine_key,
    trip_key,
)
from routing.base import CityBase

pytestmark = pytest.mark.anyio
YEAR_9999_END = dt.datetime(9999, 12, 31, 23, 59, 59, tzinfo=dt.UTC).timestamp()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def shared(tmp_path: Path) -> Iterator[Settings]:
    """Settings of servers sharing one fresh Redis prefix (deleted afterwards)."""
    prefix = f"test:{uuid.uuid4().hex}:"
    settings = trip_settings(tmp_path, redis=True, redis_prefix=prefix, live_feeds=False)
    try:
        yield settings
    finally:
        delete_prefix(prefix)


def redis_client() -> redis.Redis:
    return redis.Redis.from_url(REDIS_URL, socket_timeout=5)


def poisons(good: dict[str, Any]) -> dict[str, bytes]:
    """Stored sessions no reader can use, keyed by the trip id they are stored under."""
    past_9999 = dict(good, clock_offset_s=YEAR_9999_END + 5 - time.time())  # already past
    soon_9999 = dict(good, clock_offset_s=YEAR_9999_END - 20 - time.time())  # in 20 s
    nan = json.dumps(dict(good, clock_offset_s=0.0)).replace(
        '"clock_offset_s": 0.0', '"clock_offset_s": NaN'
    )
    no_zone = dict(good, timezone="Mars/Olympus_Mons")
    no_legs = dict(good, plan={**good["plan"], "legs": []})
    legs = [dict(leg) for leg in good["plan"]["legs"]]
    legs[0]["trip_id"] = "no-such-trip-in-the-timetable"
    unknown_trip = dict(good, plan={**good["plan"], "legs": legs})  # reads, but not here
    docs = {
        "past9999": json.dumps(past_9999).encode(),
        "soon9999": json.dumps(soon_9999).encode(),
        "nan": nan.encode(),
        "notjson": b'{"trip_id": "not json',
        "nozone": json.dumps(no_zone).encode(),
        "nolegs": json.dumps(no_legs).encode(),
        "alist": b"[1, 2, 3]",
        "unknowntrip": json.dumps(unknown_trip).encode(),
        "wrongid": json.dumps(good).encode(),
    }
    out: dict[str, bytes] = {}
    for name, raw in docs.items():
        trip_id = f"poison{name:_<16}"[:22]
        # each names itself, as a stored session does; "wrongid" names another trip
        named = trip_id if name != "wrongid" else good["trip_id"]
        out[trip_id] = raw.replace(good["trip_id"].encode(), named.encode())
    return out


def write_poisons(settings: Settings, good: dict[str, Any]) -> dict[str, bytes]:
    """Write poisoned sessions straight into the store, as if they had got in somehow."""
    prefix = settings.redis_prefix
    written = poisons(good)
    r = redis_client()
    try:
        for trip_id, raw in written.items():
            r.set(prefix + trip_key(trip_id), raw, ex=3600)
            r.sadd(prefix + active_key(CITY), trip_id)
    finally:
        r.close()
    return written


async def wait_for(check: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)


async def progress_keeps_coming(socket: TripSocket, count: int = 2) -> None:
    """``count`` progress frames in a row, each within a progress period and a margin."""
    for _ in range(count):
        await socket.recv_type("progress", timeout=8.0, skip=frozenset({"heartbeat"}))


def engine_of(server: InThread) -> Any:
    """The city's trip engine in the server (wherever the app keeps it)."""
    state = server.state
    engines = getattr(state, "engines", None)
    if engines is not None:
        return engines[CITY]
    return state.runtime.cities[CITY].engine


async def test_poisoned_sessions_are_quarantined_and_live_trips_go_on(
    shared: Settings,
    poa_base: CityBase,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # 1. a good trip, on a first server
    with serve_in_thread(shared, poa_base) as first:
        async with httpx.AsyncClient(timeout=60) as http:
            itinerary = (await plan(http, first.url, modes="walk,transit"))[0]
            trip_id, token = await start_trip(http, first.url, itinerary)
    r = redis_client()
    try:
        good = json.loads(r.get(shared.redis_prefix + trip_key(trip_id)) or b"null")
    finally:
        r.close()
    assert good["trip_id"] == trip_id

    # 2. poison written straight into the store; a restart must still come up
    written = write_poisons(shared, good)
    caplog.set_level(logging.ERROR)
    with serve_in_thread(shared, poa_base) as server:
        r = redis_client()
        try:
            for poisoned, raw in written.items():
                assert r.get(shared.redis_prefix + trip_key(poisoned)) is None, poisoned
                kept = shared.redis_prefix + quarantine_key(poisoned)
                assert r.get(kept) == raw
                assert 0 < r.ttl(kept) <= QUARANTINE_TTL_S
        finally:
            r.close()

        async def active(state: Any) -> set[str]:  # unreadable cities are pruned here
            return set(await TripBook(state.store).active(CITY))

        assert await server.call(active) == {trip_id}
        engine = engine_of(server)
        health = engine.health()
        assert health["quarantined"] == len(written)
        assert health["trips"] == 1

        async with trip_socket(server.url, trip_id, token) as socket:
            hello = await socket.recv_type("hello")
            assert hello["status"] == "active"
            await progress_keeps_coming(socket, 1)

            # 3. a connection whose clock runs past year 9999 while held: the ticker
            # closes that one (1011), counts it, and goes on for everyone else
            async def poison_a_connection(state: Any) -> TripConnection:
                session = await state.trip_hub.book.get(trip_id)
                sent: list[str] = []

                async def send(frame: str) -> None:
                    sent.append(frame)

                closed: list[tuple[int, str]] = []

                async def close(code: int, reason: str) -> None:
                    closed.append((code, reason))

                conn = TripConnection(state.trip_hub, session, send, close, 0)
                conn.offset_s = YEAR_9999_END - 2 - time.time()
                state.trip_hub.attach(conn)
                return conn

            broken = await server.call(poison_a_connection)
            await progress_keeps_coming(socket, 2)
            hub_health = server.state.trip_hub.health()
            assert hub_health["ticker"]["running"] is True
            assert hub_health["ticker"]["errors"] >= 1
            assert "year 10000 is out of range" in hub_health["ticker"]["last_error"]
            assert broken not in server.state.trip_hub.connections.get(trip_id, set())

            # 4. an indexed trip whose stored session turns to garbage: the engine's tick
            # quarantines it and keeps ticking
            async with httpx.AsyncClient(timeout=60) as http:
                other, _ = await start_trip(http, server.url, itinerary)

            async def indexed() -> bool:
                return other in engine.index

            await wait_for(indexed)
            r = redis_client()
            try:
                r.set(shared.redis_prefix + trip_key(other), b"\x00garbage", ex=600)
            finally:
                r.close()
            ticks = engine.ticks

            async def forgotten() -> bool:
                return other not in engine.index and engine.ticks >= ticks + 2

            await wait_for(forgotten)
            r = redis_client()
            try:
                assert r.get(shared.redis_prefix + quarantine_key(other)) == b"\x00garbage"
            finally:
                r.close()
            assert engine.health()["running"] is True
            await progress_keeps_coming(socket, 1)
    shutdown = [rec.getMessage() for rec in caplog.records if "shutdown" in rec.getMessage()]
    assert shutdown == []
    assert any("quarantined" in rec.getMessage() for rec in caplog.records)
