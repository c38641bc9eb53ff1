"""Live trips in a store and under a running engine.

``TripBook`` runs on both backends: the in-process store and the shared Redis (a fresh key
prefix per test, deleted afterwards). The engine runs for real on the Porto Alegre base
with an overlay holding a car-share system, fed by events published through the store.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import jsonschema
import pytest
from carshare_helpers import POA_CENTRE, POA_EAST, SYSTEM_ID, live

from correspondance.store import MemoryStateStore, RedisStateStore, StateStore
from realtime.trips import commands
from realtime.trips.engine import ARRIVED_AFTER_S, CONGESTION_CHANGED, GBFS_UPDATED, TripEngine
from realtime.trips.protocol import load_schema, message
from realtime.trips.sessions import (
    ENDED_TTL_S,
    OUTBOX_KEEP,
    TRIP_MESSAGES,
    TripBook,
    TripNotFoundError,
    TripTokenError,
    active_key,
    hash_token,
    outbox_key,
    position_key,
    trip_key,
)
from routing.base import CityBase
from routing.codec import ItineraryOut
from routing.overlay import OverlayHolder
from routing.plan import PlanRequest, plan_trip

pytestmark = pytest.mark.anyio

REDIS_URL = os.environ.get("CORRESPONDANCE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
CITY = "porto-alegre"
TZ = "America/Sao_Paulo"
Body = dict[str, Any]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def valid(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    validator = jsonschema.Draft7Validator(load_schema())
    for m in messages:
        validator.validate(m)
    return messages


# -- stores ----------------------------------------------------------------------------------


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest, redis_prefix: str) -> AsyncIterator[StateStore]:
    backend: StateStore = (
        MemoryStateStore()
        if request.param == "memory"
        else RedisStateStore(REDIS_URL, prefix=redis_prefix)
    )
    try:
        yield backend
    finally:
        await backend.aclose()


PLAN: Body = {  # the least a stored session's plan must hold (TripSession.check)
    "departure": "2019-05-15T13:00:00-03:00",
    "arrival": "2019-05-15T13:30:00-03:00",
    "legs": [
        {
            "mode": "walk",
            "departure": "2019-05-15T13:00:00-03:00",
            "arrival": "2019-05-15T13:30:00-03:00",
            "geometry": {"type": "LineString", "coordinates": [[-51.2177, -30.0346]]},
        }
    ],
}
DEPARTURE = dt.datetime.fromisoformat(PLAN["departure"])


async def all_values(store: StateStore) -> dict[str, bytes]:
    """Every key the store holds and its bytes (hash fields and set members joined; the
    event stream, of another type, is read as its key only)."""
    out: dict[str, bytes] = {}
    for key in await store.scan_keys("*"):
        value = b""
        for read in (store.get, store.hgetall, store.smembers):
            try:
                raw = await read(key)
            except Exception:
                continue
            if isinstance(raw, bytes):
                value = raw
            elif isinstance(raw, dict):
                value = b"|".join(raw.values())
            elif isinstance(raw, set):
                value = "|".join(sorted(raw)).encode()
            break
        out[key] = value
    return out


async def test_create_and_authorize(store: StateStore) -> None:
    book = TripBook(store)
    session, token = await book.create(CITY, TZ, PLAN, ["walk", "transit"], DEPARTURE)
    assert len(token) >= 40
    assert session.token_hash == hash_token(token)
    assert session.now().isoformat()[:16] == "2019-05-15T13:00"  # the trip clock starts there
    assert (await book.authorize(session.trip_id, token)).plan == PLAN
    for wrong in (None, "", token[:-1] + ("A" if token[-1] != "A" else "B"), "x" * 43):
        with pytest.raises(TripTokenError):
            await book.authorize(session.trip_id, wrong)
    with pytest.raises(TripNotFoundError):
        await book.authorize("no-such-trip-0123456789", token)
    assert await book.active(CITY) == {session.trip_id}
    assert (await book.counters(CITY, ("started",)))["started"] == 1
    # the raw token is nowhere in the store: only its SHA-256
    stored = await all_values(store)
    assert stored
    assert not any(token.encode() in value or token in key for key, value in stored.items())
    assert any(hash_token(token).encode() in value for value in stored.values())


async def test_change_numbers_messages_and_replays_them(store: StateStore) -> None:
    book = TripBook(store)
    session, _ = await book.create(CITY, TZ, PLAN, ["walk"], DEPARTURE)
    trip_id = session.trip_id
    async with store.subscribe() as events:

        def two(s: Any) -> list[dict[str, Any]]:
            return [
                message("live_update", s.trip_id, DEPARTURE, legs=[], eta=PLAN["arrival"]),
                message(
                    "suggestion_closed", s.trip_id, DEPARTURE, suggestion_id="a", outcome="expired"
                ),
            ]

        _, sent = await book.change(trip_id, two)
        assert [m["seq"] for m in sent] == [1, 2]
        after, sent = await book.change(trip_id, lambda s: [])
        assert sent == []
        assert after.last_seq == 2
        _, sent = await book.change(trip_id, commands.end("ended", DEPARTURE))
        assert [m["seq"] for m in sent] == [3]
        announced = []
        async with asyncio.timeout(5):
            async for event in events:
                if event.type == TRIP_MESSAGES:
                    announced.append(event.payload["trips"][trip_id])
                    if announced[-1] == 3:
                        break
        assert announced == [2, 3]
    replay = await book.messages_after(trip_id, 0)
    assert [(m["seq"], m["type"]) for m in replay] == [
        (1, "live_update"),
        (2, "suggestion_closed"),
        (3, "trip_ended"),
    ]
    assert [m["seq"] for m in await book.messages_after(trip_id, 2)] == [3]
    assert await book.messages_after(trip_id, 3) == []
    ended = await book.get(trip_id)
    assert ended.status == "ended"
    assert trip_id not in await book.active(CITY)
    ttl = await store.ttl(trip_key(trip_id))
    assert ttl is not None
    assert ENDED_TTL_S - 30 < ttl <= ENDED_TTL_S
    valid([m for m in replay if m["type"] != "live_update"])  # live_update needs legs


async def test_the_outbox_keeps_only_the_last_messages(store: StateStore) -> None:
    book = TripBook(store)
    session, _ = await book.create(CITY, TZ, PLAN, ["walk"], DEPARTURE)
    trip_id = session.trip_id

    def batch(n: int) -> Any:
        return lambda s: [message("heartbeat", s.trip_id, DEPARTURE) for _ in range(n)]

    await book.change(trip_id, batch(OUTBOX_KEEP - 2))
    for _ in range(5):
        await book.change(trip_id, batch(1))
    kept = sorted(int(k) for k in await store.hgetall(outbox_key(trip_id)))
    assert kept == list(range(4, OUTBOX_KEEP + 4))
    await book.change(trip_id, batch(OUTBOX_KEEP + 100))
    last = 2 * OUTBOX_KEEP + 103
    kept = sorted(int(k) for k in await store.hgetall(outbox_key(trip_id)))
    assert kept == list(range(last - OUTBOX_KEEP + 1, last + 1))
    replay = await book.messages_after(trip_id, 0)
    assert [m["seq"] for m in replay] == kept


async def test_keys_expire_and_delete_forgets_everything(store: StateStore) -> None:
    book = TripBook(store)
    session, token = await book.create(CITY, TZ, PLAN, ["walk"], DEPARTURE)
    other, _ = await book.create(CITY, TZ, PLAN, ["walk"], DEPARTURE)
    trip_id = session.trip_id
    await book.set_position(session, -30.03, -51.22)
    assert await book.position(trip_id) == (-30.03, -51.22)
    await book.change(trip_id, lambda s: [message("heartbeat", s.trip_id, DEPARTURE)])
    for key in (trip_key(trip_id), outbox_key(trip_id), position_key(trip_id)):
        ttl = await store.ttl(key)
        # active: until 2 h after the (already past) arrival, at least a minute
        assert ttl is not None, key
        assert 30 < ttl <= 24 * 3600, (key, ttl)
    mine = [k for k in await store.scan_keys("*") if trip_id in k]
    assert sorted(mine) == sorted([trip_key(trip_id), outbox_key(trip_id), position_key(trip_id)])
    async with store.subscribe() as events:
        await book.delete(session)
        async with asyncio.timeout(5):
            event = await anext(events)
    assert event.payload == {"trip_id": trip_id, "deleted": True}
    assert [k for k in await store.scan_keys("*") if trip_id in k] == []
    assert trip_id not in await store.smembers(active_key(CITY))
    assert other.trip_id in await book.active(CITY)
    with pytest.raises(TripNotFoundError):
        await book.authorize(trip_id, token)
    assert await book.messages_after(trip_id, 0) == []
    assert await book.position(trip_id) is None


# -- the engine ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def itineraries(poa_base: CityBase) -> dict[str, Body]:
    overlay = live(poa_base).current
    start = dt.datetime(2019, 5, 15, 13, 0, tzinfo=poa_base.city.tz)
    car = PlanRequest(POA_CENTRE, POA_EAST, start, modes=frozenset({"walk", "carshare"}))
    out: dict[str, Body] = {}
    for it in plan_trip(poa_base, car, overlay):
        if it.family == ("carshare",):
            out["carshare"] = ItineraryOut.of(it, overlay).model_dump(mode="json", by_alias=True)
            break
    for it in plan_trip(poa_base, PlanRequest(POA_CENTRE, POA_EAST, start)):
        if any(leg.trip_id for leg in it.legs):
            out["transit"] = ItineraryOut.of(it).model_dump(mode="json", by_alias=True)
            break
    assert set(out) == {"carshare", "transit"}
    return out


class Running:
    def __init__(self, engine: TripEngine, store: MemoryStateStore, holder: OverlayHolder):
        self.engine = engine
        self.store = store
        self.holder = holder
        self.book = TripBook(store)

    async def start(self, itinerary: Body) -> str:
        start = dt.datetime.fromisoformat(itinerary["departure"])
        session, _ = await self.book.create(
            CITY, TZ, itinerary, ["carshare", "transit", "walk"], start
        )
        async with asyncio.timeout(5):
            while session.trip_id not in self.engine.index:
                await asyncio.sleep(0.01)
        return session.trip_id

    async def congest(self, edges: list[int], multiplier: float, expect: bool = True) -> None:
        """Change congestion as the writer does, then wait for the engine to settle."""
        before = self.engine.stats.evaluated
        self.holder.set_multipliers(dict.fromkeys(edges, multiplier))
        await self.store.publish(CONGESTION_CHANGED, CITY, {"edges": edges[:1000]})
        await self.settle(before, expect)

    async def settle(self, evaluated_before: int, expect: bool = True) -> None:
        async with asyncio.timeout(30):
            if expect:
                while self.engine.stats.evaluated == evaluated_before:
                    await asyncio.sleep(0.01)
            else:  # the engine has seen the event once it diffs against this overlay
                while self.engine._seen is not self.holder.current:
                    await asyncio.sleep(0.01)
            await self.engine.idle.wait()

    async def outbox(self, trip_id: str) -> list[dict[str, Any]]:
        return valid(await self.book.messages_after(trip_id, 0))


@pytest.fixture
async def running(poa_base: CityBase) -> AsyncIterator[Running]:
    store = MemoryStateStore()
    holder = live(poa_base)
    engine = TripEngine(poa_base, holder, store, tick_s=3600.0)
    await engine.start()
    try:
        yield Running(engine, store, holder)
    finally:
        await engine.stop()
        await store.aclose()


def car_edges(itinerary: Body) -> list[int]:
    leg = next(leg for leg in itinerary["legs"] if leg["mode"] == "carshare")
    return [int(e) for e in leg["drive_edges"]]


async def test_congestion_on_a_car_share_trip_brings_a_suggestion(
    running: Running, itineraries: dict[str, Body]
) -> None:
    car = await running.start(itineraries["carshare"])
    bus = await running.start(itineraries["transit"])
    edges = car_edges(itineraries["carshare"])
    await running.congest(edges, 6.0)
    stats = running.engine.stats
    assert stats.evaluated == 1  # only the car trip is touched: the bus trip is not evaluated
    assert stats.replanned == 1
    assert stats.suggested == 1
    (suggestion,) = await running.outbox(car)
    assert suggestion["type"] == "switch_suggestion"
    assert suggestion["seq"] == 1
    assert suggestion["reason"]["code"] == "congestion"
    assert suggestion["plan_broken"] is False
    assert suggestion["minutes_saved"] >= 3
    current = dt.datetime.fromisoformat(suggestion["current_arrival"])
    new = dt.datetime.fromisoformat(suggestion["new_arrival"])
    assert (current - new).total_seconds() / 60 == pytest.approx(
        suggestion["minutes_saved"], abs=0.1
    )
    assert current > dt.datetime.fromisoformat(itineraries["carshare"]["arrival"])
    offered = dt.datetime.fromisoformat(suggestion["itinerary"]["arrival"])
    assert abs((offered - new).total_seconds()) < 1
    assert await running.outbox(bus) == []
    session = await running.book.get(car)
    assert session.suggestion is not None
    assert session.suggestion["suggestion_id"] == suggestion["suggestion_id"]

    # congestion elsewhere: an index miss, nothing evaluated or replanned
    far = [e for e in range(0, 2000) if e not in set(edges)][:50]
    evaluated = stats.evaluated
    await running.congest(far, 6.0, expect=False)
    assert running.engine.index.touched(edges=far) == set()
    assert (stats.evaluated, stats.replanned) == (evaluated, 1)


async def test_after_a_decline_the_same_saving_is_not_suggested_again(
    running: Running, itineraries: dict[str, Body]
) -> None:
    car = await running.start(itineraries["carshare"])
    edges = car_edges(itineraries["carshare"])
    await running.congest(edges, 6.0)
    (first,) = await running.outbox(car)
    now = (await running.book.get(car)).now()
    await running.book.change(
        car, commands.close_suggestion(first["suggestion_id"], "declined", now), event=None
    )
    saved = first["minutes_saved"] * 60
    assert (await running.book.get(car)).closed_saving_s == pytest.approx(saved)

    # a little worse: replanned, but the saving is not 3 minutes more than the declined one
    replanned = running.engine.stats.replanned
    await running.congest(edges, 6.2)
    assert running.engine.stats.replanned == replanned + 1
    offers = [m for m in await running.outbox(car) if m["type"] != "live_update"]
    assert [m["type"] for m in offers] == ["switch_suggestion", "suggestion_closed"]

    # much worse: now it is worth interrupting again
    await running.congest(edges, 20.0)
    messages = await running.outbox(car)
    assert [m["type"] for m in messages if m["type"] != "live_update"] == [
        "switch_suggestion",
        "suggestion_closed",
        "switch_suggestion",
    ]
    assert messages[-1]["type"] == "switch_suggestion"
    assert messages[-1]["minutes_saved"] * 60 >= saved + 180
    assert [m["seq"] for m in messages] == list(range(1, len(messages) + 1))


async def test_tick_expires_the_suggestion_then_ends_the_trip_on_arrival(
    running: Running, itineraries: dict[str, Body]
) -> None:
    car = await running.start(itineraries["carshare"])
    await running.congest(car_edges(itineraries["carshare"]), 6.0)
    (suggestion,) = await running.outbox(car)
    session = await running.book.get(car)
    valid_until = dt.datetime.fromisoformat(suggestion["valid_until"])
    arrival = session.arrival()
    assert valid_until < arrival + dt.timedelta(seconds=ARRIVED_AFTER_S)

    def wall(at: dt.datetime) -> float:
        return at.timestamp() - session.clock_offset_s

    await running.engine.tick(wall(valid_until - dt.timedelta(seconds=5)))
    assert len(await running.outbox(car)) == 1  # not yet
    await running.engine.tick(wall(valid_until + dt.timedelta(seconds=1)))
    messages = await running.outbox(car)
    assert [m["type"] for m in messages] == ["switch_suggestion", "suggestion_closed"]
    assert messages[-1]["outcome"] == "expired"
    assert messages[-1]["suggestion_id"] == suggestion["suggestion_id"]
    assert (await running.book.get(car)).suggestion is None

    await running.engine.tick(wall(arrival + dt.timedelta(seconds=ARRIVED_AFTER_S - 5)))
    assert (await running.book.get(car)).status == "active"
    await running.engine.tick(wall(arrival + dt.timedelta(seconds=ARRIVED_AFTER_S + 1)))
    messages = await running.outbox(car)
    assert messages[-1]["type"] == "trip_ended"
    assert messages[-1]["reason"] == "arrived"
    assert (await running.book.get(car)).status == "ended"
    assert car not in running.engine.index
    assert car not in await running.book.active(CITY)


async def test_a_traveller_far_from_the_destination_times_out_later(
    running: Running, itineraries: dict[str, Body]
) -> None:
    trip = await running.start(itineraries["transit"])
    session = await running.book.get(trip)
    await running.book.set_position(session, *POA_CENTRE)  # still at the start
    arrival = session.arrival()

    def wall(after_arrival_s: float) -> float:
        return arrival.timestamp() + after_arrival_s - session.clock_offset_s

    await running.engine.tick(wall(ARRIVED_AFTER_S + 60))
    assert (await running.book.get(trip)).status == "active"
    await running.engine.tick(wall(3601))
    (ended,) = await running.outbox(trip)
    assert ended["reason"] == "timeout"


async def test_an_engine_indexes_the_trips_already_active_when_it_starts(
    poa_base: CityBase, itineraries: dict[str, Body]
) -> None:
    store = MemoryStateStore()
    book = TripBook(store)
    start = dt.datetime.fromisoformat(itineraries["carshare"]["departure"])
    session, _ = await book.create(CITY, TZ, itineraries["carshare"], ["walk"], start)
    engine = TripEngine(poa_base, live(poa_base), store, tick_s=3600.0)
    await engine.start()
    try:
        assert session.trip_id in engine.index
        edge = car_edges(itineraries["carshare"])[5]
        assert engine.index.touched(edges=[edge]) == {session.trip_id}
        station = next(leg for leg in itineraries["carshare"]["legs"] if leg["mode"] == "carshare")
        pickup = str(station["from"]["station_id"]).removeprefix(f"{SYSTEM_ID}:")
        assert engine.index.touched(stations=[pickup]) == {session.trip_id}
    finally:
        await engine.stop()
        await store.aclose()


async def test_no_car_left_at_the_pick_up_station_brings_a_suggestion(
    running: Running, itineraries: dict[str, Body], poa_base: CityBase
) -> None:
    car = await running.start(itineraries["carshare"])
    current = running.holder.current
    emptied = [
        replace(s, vehicles_available=0) if s.station_id == "ok" else s for s in current.stations
    ]
    before = running.engine.stats.evaluated
    running.holder.set_shared_mobility(current.systems.values(), emptied)
    await running.store.publish(GBFS_UPDATED, CITY, {"system_id": SYSTEM_ID, "station_ids": ["ok"]})
    await running.settle(before)
    (suggestion,) = await running.outbox(car)
    assert suggestion["reason"]["code"] == "vehicle_unavailable"
    assert suggestion["plan_broken"] is True
    assert suggestion["current_arrival"] is None
    assert suggestion["minutes_saved"] is None
    assert not any(
        leg["from"].get("station_id") == f"{SYSTEM_ID}:ok"
        for leg in suggestion["itinerary"]["legs"]
    )


async def test_a_tick_reads_only_the_trips_that_are_due(
    running: Running, itineraries: dict[str, Body], monkeypatch: pytest.MonkeyPatch
) -> None:
    # At 10,000 trips, reading every session on every tick took the engine's whole loop:
    # the tick reads the trips whose next action is due, plus a small rotating slice.
    trips = [await running.start(itineraries["transit"]) for _ in range(4)]
    engine = running.engine
    engine.tick_s = 2.0
    reads: list[str] = []
    get = engine.book.get

    async def counting_get(trip_id: str) -> Any:
        reads.append(trip_id)
        return await get(trip_id)

    monkeypatch.setattr(engine.book, "get", counting_get)
    session = await running.book.get(trips[0])
    now = DEPARTURE.timestamp() - session.clock_offset_s + 60  # a minute into the trips
    for _ in range(3):
        await engine.tick(now)
    assert len(reads) == 3  # one trip of the rotating slice per tick (4 trips · 2 s / 300 s)
    assert len(set(reads)) == 3  # the slice rotates
    reads.clear()
    arrival = session.arrival().timestamp() - session.clock_offset_s
    await engine.tick(arrival + ARRIVED_AFTER_S + 1)  # every trip is due: read and ended
    assert set(trips) <= set(reads)
    for trip_id in trips:
        assert (await running.book.get(trip_id)).status == "ended"
        assert trip_id not in engine.index


@pytest.mark.parametrize(("deadline_in_s", "replans"), [(5.0, 0), (-5.0, 1), (600.0, 1)])
async def test_a_traveller_about_to_pass_the_last_junction_gets_the_repair_at_once(
    running: Running,
    itineraries: dict[str, Body],
    monkeypatch: pytest.MonkeyPatch,
    deadline_in_s: float,
    replans: int,
) -> None:
    # 5 s before the last junction there is no time for the full replan: the way around is
    # the answer. Past it (or with minutes to go) the full replan runs as usual.
    import realtime.trips.engine as engine_module

    monkeypatch.setattr(
        engine_module,
        "decision_deadline",
        lambda base, plan, now, overlay, edges: now + dt.timedelta(seconds=deadline_in_s),
    )
    car = await running.start(itineraries["carshare"])
    await running.congest(car_edges(itineraries["carshare"]), 6.0)
    stats = running.engine.stats
    assert (stats.evaluated, stats.repaired, stats.replanned) == (1, 1, replans)
    # already past the last junction: counted apart, never "late"
    assert stats.past_junction == (1 if deadline_in_s < 0 else 0)
    assert (car in running.engine.past_junction) == (deadline_in_s < 0)
    assert stats.late == 0
    assert await running.outbox(car)  # a suggestion or a notice either way
