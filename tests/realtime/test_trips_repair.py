"""Decision deadlines, the deadline queue, shared detour searches and cheap repairs, and the
engine using them: nearest deadline first, private (demo) closures, no better option.

Itineraries are real ones on the Porto Alegre base, as ``GET /api/v1/plan`` sends them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import time
from collections.abc import AsyncIterator
from typing import Any

import jsonschema
import numpy as np
import pytest

from correspondance.store import MemoryStateStore
from realtime.trips.commands import end
from realtime.trips.deadlines import DeadlineQueue, decision_deadline
from realtime.trips.engine import CONGESTION_CHANGED, NO_BETTER_OPTION, TripEngine
from realtime.trips.plan_view import TripPlan, parse_plan, position_at
from realtime.trips.protocol import load_schema
from realtime.trips.repair import (
    Bypasses,
    bypass_pairs,
    last_junction,
    remaining_route,
    repair,
    runs,
)
from realtime.trips.sessions import TRIP_UPDATED, TripBook, TripSession
from routing.base import CityBase
from routing.codec import ItineraryOut
from routing.kernels import dijkstra
from routing.overlay import OverlayHolder, SharedStation, SharedSystem
from routing.plan import PlanRequest, plan_trip

pytestmark = pytest.mark.anyio

CITY = "porto-alegre"
TZ = "America/Sao_Paulo"
SYSTEM_ID = "test-car"
POA_CENTRE = (-30.0277, -51.2287)
POA_EAST = (-30.0587, -51.1734)
Body = dict[str, Any]
INF = float("inf")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def car_holder(base: CityBase) -> OverlayHolder:
    drive = base.streets["drive"]
    stations = []
    for station_id, lat, lon in [("ok", -30.0300, -51.2250), ("dock", -30.0570, -51.1770)]:
        node = int(np.argmin((drive.node_lat - lat) ** 2 + (drive.node_lon - lon) ** 2))
        lat_, lon_ = float(drive.node_lat[node]), float(drive.node_lon[node])
        stations.append(
            SharedStation(
                SYSTEM_ID, station_id, f"Car station {station_id}", lat_, lon_, "car", 2, 4
            )
        )
    holder = OverlayHolder(drive)
    system = SharedSystem(SYSTEM_ID, "Test car-share", "car", False, simulated=True)
    holder.set_shared_mobility([system], stations)
    return holder


def _plan(
    base: CityBase, origin: tuple[float, float], dest: tuple[float, float], **kw: Any
) -> Body:
    overlay = car_holder(base).current
    start = dt.datetime(2019, 5, 15, 13, 0, tzinfo=base.city.tz)
    request = PlanRequest(origin, dest, start, **kw)
    for it in plan_trip(base, request, overlay):
        if kw.get("modes") is None and any(leg.trip_id for leg in it.legs):
            return ItineraryOut.of(it, overlay).model_dump(mode="json", by_alias=True)
        if kw.get("modes") is not None and any(leg.drive_edges for leg in it.legs):
            return ItineraryOut.of(it, overlay).model_dump(mode="json", by_alias=True)
    raise AssertionError("no such itinerary")


@pytest.fixture(scope="module")
def plans(poa_base: CityBase) -> dict[str, Body]:
    car = frozenset({"walk", "carshare"})
    return {
        "carshare": _plan(poa_base, POA_CENTRE, POA_EAST, modes=car),
        "carshare_back": _plan(poa_base, POA_EAST, POA_CENTRE, modes=car),
        "transit": _plan(poa_base, POA_CENTRE, POA_EAST),
    }


def car_leg(plan: TripPlan) -> int:
    return next(i for i, leg in enumerate(plan.legs) if leg.drive_edges)


def at_fraction(plan: TripPlan, i: int, fraction: float) -> dt.datetime:
    leg = plan.legs[i]
    return leg.departure + (leg.arrival - leg.departure) * fraction


# -- decision deadlines ----------------------------------------------------------------------


def test_the_deadline_is_the_last_junction_before_the_closed_street(
    poa_base: CityBase, plans: dict[str, Body]
) -> None:
    plan = parse_plan(poa_base, plans["carshare"])
    i = car_leg(plan)
    leg = plan.legs[i]
    n = len(leg.drive_edges)
    j = (3 * n) // 4
    overlay = car_holder(poa_base).set_multipliers({leg.drive_edges[j]: INF})
    route = np.asarray(leg.drive_edges, dtype=np.int64)
    k = last_junction(poa_base.streets["drive"], route, j, overlay.drive_multiplier)
    assert k <= j

    def turns_off(m: int) -> bool:  # another open street leaves the tail of route[m]
        drive = poa_base.streets["drive"]
        node = int(drive.tail[route[m]])
        outs = np.arange(drive.indptr[node], drive.indptr[node + 1])
        return bool(np.any((outs != route[m]) & np.isfinite(overlay.drive_multiplier[outs])))

    assert k == 0 or turns_off(k)
    assert not any(turns_off(m) for m in range(k + 1, j + 1))
    expected = leg.departure + (leg.arrival - leg.departure) * (k / n)
    # before leaving, and while driving towards it: the last junction before the closed edge
    assert decision_deadline(poa_base, plan, plan.departure, overlay) == expected
    assert decision_deadline(poa_base, plan, at_fraction(plan, i, 0.25), overlay) == expected
    # only the edges the event changed count when they are given
    assert decision_deadline(poa_base, plan, plan.departure, overlay, {leg.drive_edges[j]}) == (
        expected
    )
    assert decision_deadline(poa_base, plan, plan.departure, overlay, {-1}) == plan.arrival
    # once past it, nothing is ahead: the plan's arrival
    past = at_fraction(plan, i, (j + 2) / n)
    assert decision_deadline(poa_base, plan, past, overlay) == plan.arrival
    # a deadline is never in the past
    slowed = car_holder(poa_base).set_multipliers({leg.drive_edges[0]: 2.0})
    late = at_fraction(plan, i, 0.0) + dt.timedelta(seconds=1)
    assert decision_deadline(poa_base, plan, late, slowed) >= late
    # nothing wrong ahead: the plan's arrival
    assert decision_deadline(poa_base, plan, plan.departure, car_holder(poa_base).current) == (
        plan.arrival
    )


def test_the_deadline_of_an_empty_pick_up_station_is_reaching_it(
    poa_base: CityBase, plans: dict[str, Body]
) -> None:
    plan = parse_plan(poa_base, plans["carshare"])
    i = car_leg(plan)
    holder = car_holder(poa_base)
    current = holder.current
    empty = [
        SharedStation(**{**s.__dict__, "vehicles_available": 0}) if s.station_id == "ok" else s
        for s in current.stations
    ]
    overlay = holder.set_shared_mobility(current.systems.values(), empty)
    assert plan.legs[i].pickup_station == "ok"
    assert decision_deadline(poa_base, plan, plan.departure, overlay) == plan.legs[i].departure


def test_the_deadline_of_a_cancelled_connection_is_its_boarding_stop(
    poa_base: CityBase, plans: dict[str, Body]
) -> None:
    plan = parse_plan(poa_base, plans["transit"])
    r = next(i for i, leg in enumerate(plan.legs) if leg.transit)
    ride = plan.legs[r]
    assert ride.trip_id is not None
    holder = car_holder(poa_base)
    overlay = holder.set_transit_state(cancelled_trips=[ride.trip_id])
    assert decision_deadline(poa_base, plan, plan.departure, overlay) == ride.departure
    # aboard a late trip: until the stop where the traveller gets off
    late = holder.set_transit_state(cancelled_trips=[], trip_delays={ride.trip_id: 300})
    aboard = at_fraction(plan, r, 0.5)
    assert decision_deadline(poa_base, plan, aboard, late) == ride.arrival


def test_the_queue_gives_the_nearest_deadline_first_and_each_trip_once() -> None:
    queue = DeadlineQueue()
    queue.push("c", "congestion", 30.0)
    queue.push("a", "congestion", 10.0)
    queue.push("b", "delay", 20.0)
    queue.push("c", "delay", 5.0)  # queued again, earlier: moves up, keeps its reason
    queue.push("a", "delay", 50.0)  # queued again, later: stays where it was
    queue.push("d", "congestion", 40.0)
    queue.discard("d")
    assert len(queue) == 3
    assert "d" not in queue
    order = [queue.pop() for _ in range(3)]
    assert [(p.trip_id, p.reason, p.deadline) for p in order] == [
        ("c", "congestion", 5.0),
        ("a", "congestion", 10.0),
        ("b", "delay", 20.0),
    ]
    assert not queue
    with pytest.raises(IndexError, match="empty"):
        queue.pop()


# -- shared detours and cheap repairs ------------------------------------------------------------


def test_runs_are_the_stretches_whose_multiplier_changed() -> None:
    multiplier = np.ones(10)
    multiplier[[2, 3, 4, 7, 9]] = [2.0, INF, 1.5, 3.0, INF]
    route = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], dtype=np.int64)
    assert runs(route, multiplier) == [(2, 5), (7, 8), (9, 10)]
    assert runs(route[:2], multiplier) == []


def test_one_shared_search_per_junction_equals_a_plain_dijkstra_detour(
    poa_base: CityBase, plans: dict[str, Body]
) -> None:
    drive = poa_base.streets["drive"]
    east = parse_plan(poa_base, plans["carshare"])
    back = parse_plan(poa_base, plans["carshare_back"])
    closed: dict[int, float] = {}
    for plan in (east, back):
        edges = plan.legs[car_leg(plan)].drive_edges
        closed.update({edges[len(edges) // 3]: INF, edges[len(edges) // 3 + 1]: INF})
        closed[edges[(2 * len(edges)) // 3]] = 4.0
    overlay = car_holder(poa_base).set_multipliers(closed)
    bypasses = Bypasses(drive, overlay)
    pairs: list[tuple[int, int]] = []
    # many travellers on both routes, each somewhere else before the trouble
    for plan in (east, back):
        i = car_leg(plan)
        for fraction in (0.0, 0.1, 0.2, 0.3):
            pairs += bypass_pairs(drive, plan, at_fraction(plan, i, fraction), overlay)
    distinct = set(pairs)
    assert len(pairs) == 8
    assert len(distinct) == 2  # every traveller on a route meets the trouble at one junction
    # more ways than travellers need: from before each changed edge to either drive's end
    ends = [int(drive.head[p.legs[car_leg(p)].drive_edges[-1]]) for p in (east, back)]
    pairs += [(int(drive.tail[e]), end) for e in closed for end in ends]
    distinct = set(pairs)
    bypasses.want(pairs)
    weight = drive.base_time_s * overlay.drive_multiplier
    found = 0
    for source, target in pairs:
        cost, path = bypasses.way(source, target)
        dist, _ = dijkstra(
            drive.indptr,
            drive.head,
            weight,
            np.array([source], np.int64),
            np.zeros(1),
            np.inf,
            np.array([target], np.int64),
        )
        assert cost == pytest.approx(float(dist[target]), abs=1e-6)
        if not np.isfinite(cost):  # no way around (inf both ways): no path either
            assert path == ()
            continue
        found += 1
        assert int(drive.tail[path[0]]) == source
        assert int(drive.head[path[-1]]) == target
        assert all(drive.head[a] == drive.tail[b] for a, b in itertools.pairwise(path))
        assert float(np.sum(weight[list(path)])) == pytest.approx(cost, abs=1e-6)
        assert not any(closed.get(e) == INF for e in path)
    assert found >= len(pairs) // 2
    assert bypasses.searches == len({s for s, _ in distinct})  # one search per junction


def test_the_repair_drives_around_a_closure_and_is_a_plan_again(
    poa_base: CityBase, plans: dict[str, Body]
) -> None:
    drive = poa_base.streets["drive"]
    plan = parse_plan(poa_base, plans["carshare"])
    i = car_leg(plan)
    edges = plan.legs[i].drive_edges
    j = len(edges) // 2
    overlay = car_holder(poa_base).set_multipliers({edges[j]: INF})
    bypasses = Bypasses(drive, overlay)
    now = at_fraction(plan, i, 0.2)
    here = position_at(plan, now)[1]
    fixed = repair(drive, plan, now, here, bypasses)
    assert fixed is not None
    # exact: the plan's arrival, plus the live time from the last junction before the
    # closure to the drive's end, minus the old way's time from there
    route = remaining_route(plan.legs[i], now, True)
    k = last_junction(drive, route, list(route).index(edges[j]), overlay.drive_multiplier)
    source, end = int(drive.tail[route[k]]), int(drive.head[route[-1]])
    weight = drive.base_time_s * overlay.drive_multiplier
    dist, pred = dijkstra(
        drive.indptr,
        drive.head,
        weight,
        np.array([source], np.int64),
        np.zeros(1),
        np.inf,
        np.array([end], np.int64),
    )
    lost = (fixed.arrival - plan.arrival).total_seconds()
    old_way = float(np.sum(drive.base_time_s[route[k:]]))
    assert lost == pytest.approx(float(dist[end]) - old_way, abs=1.0)
    path = drive.path_edges(pred, end)
    car = fixed.itinerary.legs[fixed.first_changed_leg]
    assert car.mode == "carshare"
    assert car.origin.name == "where you are"
    assert car.departure == now
    assert edges[j] not in car.drive_edges
    assert set(path) <= set(car.drive_edges)
    # what the traveller would accept is a plan the server takes again
    body = ItineraryOut.of(fixed.itinerary, overlay).model_dump(mode="json", by_alias=True)
    again = parse_plan(poa_base, body)
    assert again.arrival == fixed.arrival
    assert again.legs[0].drive_edges == car.drive_edges
    # nothing slowed or closed ahead: no repair; a plan with transit ahead: no cheap repair
    assert repair(drive, plan, now, here, Bypasses(drive, car_holder(poa_base).current)) is None
    transit = parse_plan(poa_base, plans["transit"])
    assert repair(drive, transit, transit.departure, POA_CENTRE, bypasses) is None
    # a closure that cannot be driven around: none
    cut = car_holder(poa_base).set_multipliers(
        {int(e): INF for e in np.flatnonzero(drive.head == drive.head[edges[-1]])}
    )
    assert repair(drive, plan, now, here, Bypasses(drive, cut)) is None


# -- the engine ------------------------------------------------------------------------------------


class Running:
    def __init__(self, engine: TripEngine, store: MemoryStateStore, holder: OverlayHolder):
        self.engine = engine
        self.store = store
        self.holder = holder
        self.book = TripBook(store)

    async def start(self, itinerary: Body, at: dt.datetime | None = None) -> str:
        start = at or dt.datetime.fromisoformat(itinerary["departure"])
        session, _ = await self.book.create(CITY, TZ, itinerary, ["carshare", "walk"], start)
        async with asyncio.timeout(5):
            while session.trip_id not in self.engine.index:
                await asyncio.sleep(0.01)
        return session.trip_id

    async def settle(self, evaluated: int) -> None:
        async with asyncio.timeout(60):
            while self.engine.stats.evaluated == evaluated:
                await asyncio.sleep(0.01)
            await self.engine.idle.wait()

    async def outbox(self, trip_id: str) -> list[Body]:
        messages = await self.book.messages_after(trip_id, 0)
        validator = jsonschema.Draft7Validator(load_schema())
        for m in messages:
            validator.validate(m)
        return messages


@pytest.fixture
async def running(poa_base: CityBase) -> AsyncIterator[Running]:
    store = MemoryStateStore()
    holder = car_holder(poa_base)
    engine = TripEngine(poa_base, holder, store, tick_s=3600.0)
    engine.concurrency = 1  # one worker: the order of evaluation is the queue's
    await engine.start()
    try:
        yield Running(engine, store, holder)
    finally:
        await engine.stop()
        await store.aclose()


async def test_affected_trips_are_evaluated_nearest_deadline_first(
    running: Running, plans: dict[str, Body], poa_base: CityBase
) -> None:
    plan = parse_plan(poa_base, plans["carshare"])
    i = car_leg(plan)
    edges = plan.legs[i].drive_edges
    # travellers at 10 %, 40 %, 20 %, 30 % of the drive: the furthest is nearest the closure
    fractions = [0.1, 0.4, 0.2, 0.3]
    trips = [await running.start(plans["carshare"], at_fraction(plan, i, f)) for f in fractions]
    order: list[str] = []
    evaluate = running.engine.evaluate

    async def recording(trip_id: str, reason: str = "congestion") -> Any:
        order.append(trip_id)
        return await evaluate(trip_id, reason)

    running.engine.evaluate = recording  # type: ignore[method-assign]
    before = running.engine.stats.evaluated
    closed = {edges[(3 * len(edges)) // 4]: INF}
    running.holder.set_multipliers(closed)
    await running.store.publish(CONGESTION_CHANGED, CITY, {"edges": list(closed)})
    await running.settle(before)
    nearest_first = [trips[k] for k in sorted(range(4), key=lambda k: -fractions[k])]
    assert order == nearest_first
    stats = running.engine.stats
    assert stats.evaluated - before == 4
    # one closed edge: the detour is searched once for all four travellers (and it is
    # short, so none needs the full replan: "take another way around it")
    assert running.engine._shared is not None
    assert running.engine._shared.searches == 1
    assert stats.repaired == 4
    for trip_id in trips:
        (suggestion,) = await running.outbox(trip_id)
        assert suggestion["type"] == "switch_suggestion"
        assert suggestion["plan_broken"] is True
        assert "take another way around it" in suggestion["reason"]["message"]
        assert suggestion["reason"]["action"] == {"code": "detour", "params": {}}
        assert suggestion["reason"]["leave"] is None
        assert suggestion["projected_arrival"] == suggestion["new_arrival"]
        legs = suggestion["itinerary"]["legs"]
        assert next(iter(closed)) not in legs[suggestion["switch_at"]["leg_index"]]["drive_edges"]
    assert stats.replanned == 0
    assert stats.late == 0


async def _close_privately(running: Running, trip_id: str, edges: list[int]) -> None:
    def mutate(s: TripSession) -> list[Body]:
        s.private_closures = edges
        return []

    await running.book.change(trip_id, mutate, event=TRIP_UPDATED)


async def test_private_closures_touch_only_their_own_trip(
    running: Running, plans: dict[str, Body], poa_base: CityBase
) -> None:
    plan = parse_plan(poa_base, plans["carshare"])
    i = car_leg(plan)
    edges = list(plan.legs[i].drive_edges)
    at = at_fraction(plan, i, 0.15)
    mine = await running.start(plans["carshare"], at)
    theirs = await running.start(plans["carshare"], at)
    city_before = running.holder.current
    before = running.engine.stats.evaluated
    await _close_privately(running, mine, edges[len(edges) // 2 :])
    await running.settle(before)
    assert running.engine.stats.evaluated == before + 1  # only the private trip
    (suggestion,) = await running.outbox(mine)
    assert suggestion["type"] == "switch_suggestion"
    assert suggestion["plan_broken"] is True
    assert await running.outbox(theirs) == []
    # the city's overlay is the same object, all free flow
    assert running.holder.current is city_before
    assert np.all(running.holder.current.drive_multiplier == 1.0)
    # ending the trip clears them
    now = (await running.book.get(mine)).now()
    await running.book.change(mine, end("ended", now))
    assert (await running.book.get(mine)).private_closures == []


async def test_a_broken_plan_with_no_way_out_says_no_better_option(
    running: Running, plans: dict[str, Body], poa_base: CityBase
) -> None:
    plan = parse_plan(poa_base, plans["carshare"])
    i = car_leg(plan)
    trip = await running.start(plans["carshare"], at_fraction(plan, i, 0.3))
    # every street closed around the car: it can be neither driven on nor returned
    drive = poa_base.streets["drive"]
    before = running.engine.stats.evaluated
    await _close_privately(running, trip, list(range(drive.n_edges)))
    await running.settle(before)
    (notice,) = await running.outbox(trip)
    assert notice["type"] == "live_update"
    assert notice["notice"]["code"] == NO_BETTER_OPTION
    assert notice["notice"]["message"].startswith("No better way was found")
    # the app words it from codes: the reason, what broke, and the projected arrival
    assert notice["notice"]["reason"] == "congestion"
    assert notice["notice"]["detail"] == {"code": "road_closed", "params": {}}
    assert notice["notice"]["arrival"] in (None, notice["eta"])
    assert notice["legs"][0]["note"]
    assert notice["legs"][0]["note_code"]["code"] in ("road_closed", "no_dock", "congestion_ahead")
    assert running.engine.stats.no_better == 1
    # evaluated again with nothing new: not said twice
    before = running.engine.stats.evaluated
    running.engine.queue.push(trip, "congestion", 0.0)
    running.engine._wake.set()
    running.engine.idle.clear()
    await running.settle(before)
    assert len(await running.outbox(trip)) == 1


async def test_a_trip_that_waited_past_its_deadline_gets_the_repair_not_a_replan(
    running: Running, plans: dict[str, Body], poa_base: CityBase
) -> None:
    plan = parse_plan(poa_base, plans["carshare"])
    i = car_leg(plan)
    edges = list(plan.legs[i].drive_edges)
    trip = await running.start(plans["carshare"], at_fraction(plan, i, 0.1))
    engine = running.engine
    # slowed six-fold from half-way: the repair loses minutes, worth a full replan...
    running.holder.set_multipliers(dict.fromkeys(edges[len(edges) // 2 :], 6.0))
    engine._seen = running.holder.current  # as if the event were seen; queued by hand below
    stats = engine.stats
    before = (stats.evaluated, stats.repaired, stats.replanned)
    # ...but its traveller is about to pass the last junction (queued long ago and waited,
    # or the trouble was just ahead): the way around it now, not a better way too late
    now = time.time()
    engine.deadlines[trip] = now + 1.0
    engine.queue.push(trip, "congestion", now + 1.0)
    engine.idle.clear()
    engine._wake.set()
    await running.settle(before[0])
    assert (stats.repaired, stats.replanned) == (before[1] + 1, before[2])
    messages = await running.outbox(trip)
    assert [m["type"] for m in messages] in (["switch_suggestion"], ["live_update"])
    if messages[0]["type"] == "switch_suggestion":
        assert "take another way around it" in messages[0]["reason"]["message"]

    # past its deadline (the traveller already past the last junction): the full replan
    engine.deadlines[trip] = time.time() - 1.0
    engine.queue.push(trip, "congestion", engine.deadlines[trip])
    evaluated = stats.evaluated
    engine.idle.clear()
    engine._wake.set()
    await running.settle(evaluated)
    assert stats.replanned == before[2] + (0 if messages[0]["type"] == "switch_suggestion" else 1)
