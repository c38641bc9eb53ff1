"""Park & ride repairs: a drive to the car park around a closure, then the same connection
when it is still caught, else onward transit from the car park searched once for every trip
that needs it (:mod:`realtime.trips.onward`); the engine replans in full only when that
repair loses real time.

Itineraries are real ones on the Porto Alegre base, as ``GET /api/v1/plan`` sends them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
from typing import Any

import pytest

from correspondance.store import Event, MemoryStateStore
from realtime.trips.engine import CONGESTION_CHANGED, TripEngine
from realtime.trips.onward import ONWARD_MODES, Onward
from realtime.trips.plan_view import TripPlan, parse_plan, position_at, traveller_state
from realtime.trips.repair import Bypasses, repair
from realtime.trips.replans import Replans, full_replan
from realtime.trips.sessions import TripBook
from routing.base import CityBase
from routing.codec import ItineraryOut
from routing.overlay import LiveOverlay, OverlayHolder
from routing.plan import Itinerary, PlanRequest, plan_trip
from routing.state import replan

pytestmark = pytest.mark.anyio

CITY = "porto-alegre"
TZ = "America/Sao_Paulo"
MODES = frozenset({"walk", "transit", "car"})
# a park & ride trip: drive to a car park in the centre, two buses south, walk
ORIGIN = (-30.03, -51.21)
DESTINATION = (-30.10, -51.22)
INF = float("inf")
Body = dict[str, Any]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def park_and_ride(poa_base: CityBase) -> Body:
    overlay = OverlayHolder(poa_base.streets["drive"]).current
    start = dt.datetime(2019, 5, 15, 13, 0, tzinfo=poa_base.city.tz)
    for it in plan_trip(poa_base, PlanRequest(ORIGIN, DESTINATION, start, modes=MODES), overlay):
        drives = [i for i, leg in enumerate(it.legs) if leg.drive_edges]
        rides = [i for i, leg in enumerate(it.legs) if leg.trip_id]
        if drives and rides and drives[-1] < rides[0] and len(it.legs[drives[0]].drive_edges) > 10:
            return ItineraryOut.of(it, overlay).model_dump(mode="json", by_alias=True)
    raise AssertionError("no park & ride itinerary")


def _car(plan: TripPlan) -> int:
    return next(i for i, leg in enumerate(plan.legs) if leg.drive_edges)


def _at(plan: TripPlan, fraction: float) -> dt.datetime:
    leg = plan.legs[_car(plan)]
    return leg.departure + (leg.arrival - leg.departure) * fraction


def _rides(it: Itinerary) -> list[str]:
    return [leg.trip_id for leg in it.legs if leg.trip_id]


def _holder(base: CityBase) -> OverlayHolder:
    return OverlayHolder(base.streets["drive"])


def _shared(base: CityBase, overlay: LiveOverlay) -> Bypasses:
    return Bypasses(base.streets["drive"], overlay, Onward(base, overlay), Replans(base, overlay))


def test_a_detour_that_still_makes_the_connection_keeps_it_as_a_full_replan_would(
    poa_base: CityBase, park_and_ride: Body
) -> None:
    plan = parse_plan(poa_base, park_and_ride)
    car = plan.legs[_car(plan)]
    now = _at(plan, 0.1)
    here = position_at(plan, now)[1]
    rides = [leg.trip_id for leg in plan.legs if leg.trip_id]
    # the first street of the second half whose closure a detour of under a minute avoids
    found = None
    for edge in car.drive_edges[len(car.drive_edges) // 2 : -1]:
        overlay = _holder(poa_base).set_multipliers({edge: INF})
        bypasses = _shared(poa_base, overlay)
        fixed = repair(poa_base.streets["drive"], plan, now, here, bypasses)
        if fixed is not None and _rides(fixed.itinerary) == rides:
            found = (edge, overlay, bypasses, fixed)
            break
    assert found is not None, "no closure on the drive that a short detour avoids"
    edge, overlay, bypasses, fixed = found
    assert bypasses.onward is not None
    assert bypasses.onward.searches == 0
    drive = fixed.itinerary.legs[fixed.first_changed_leg]
    assert edge not in drive.drive_edges
    assert drive.destination.lat == pytest.approx(car.destination[0])
    # the full multimodal replan from the same state: no way by transit it finds arrives
    # before the repair (the followed plan was the best by transit and is still caught)
    state = traveller_state(plan, now, here)
    options = replan(poa_base, state, plan.destination, overlay, MODES)
    by_transit = [it for it in options if _rides(it)]
    assert by_transit
    assert fixed.arrival <= min(it.arrival for it in by_transit)
    assert fixed.arrival == plan.arrival


def test_a_detour_that_misses_the_connection_goes_on_from_the_car_park(
    poa_base: CityBase, park_and_ride: Body
) -> None:
    plan = parse_plan(poa_base, park_and_ride)
    i = _car(plan)
    car = plan.legs[i]
    edges = car.drive_edges
    # the second half of the drive to the car park three times slower: minutes late there
    overlay = _holder(poa_base).set_multipliers(dict.fromkeys(edges[len(edges) // 2 :], 3.0))
    bypasses = _shared(poa_base, overlay)
    onward = bypasses.onward
    assert onward is not None
    fixed = [
        repair(poa_base.streets["drive"], plan, at, position_at(plan, at)[1], bypasses)
        for at in (_at(plan, 0.05), _at(plan, 0.1), _at(plan, 0.2))
    ]
    assert all(f is not None for f in fixed)
    first = fixed[0]
    assert first is not None
    legs = first.itinerary.legs
    k = max(j for j, leg in enumerate(legs) if leg.drive_edges)
    parked = legs[k]
    assert parked.arrival > car.arrival + dt.timedelta(seconds=60)  # too late for the bus
    rest = legs[k + 1 :]
    assert rest
    assert any(leg.trip_id for leg in rest)
    assert rest[0].origin == parked.destination  # from the car park
    assert rest[0].departure >= parked.arrival
    # exactly the earliest walk + transit way from the car park, leaving once parked
    gap = plan.legs[i + 1].departure - car.arrival
    request = PlanRequest(
        (parked.destination.lat, parked.destination.lon),
        plan.destination,
        parked.arrival + gap,
        modes=ONWARD_MODES,
    )
    best = min(plan_trip(poa_base, request, overlay), key=lambda it: it.arrival)
    assert first.arrival == best.arrival
    assert _rides(first.itinerary)[: len(_rides(best))] == _rides(best)
    assert first.arrival > plan.arrival
    # every traveller meets the trouble at the same junction and reaches the car park at the
    # same time: one onward search for all three
    assert {f.arrival for f in fixed if f is not None} == {first.arrival}
    assert (onward.asked, onward.searches) == (3, 1)


def test_onward_answers_are_shared_while_the_same_connection_can_be_caught(
    poa_base: CityBase, park_and_ride: Body
) -> None:
    plan = parse_plan(poa_base, park_and_ride)
    car = plan.legs[_car(plan)]
    overlay = _holder(poa_base).current
    onward = Onward(poa_base, overlay)
    here, there = car.destination, plan.destination
    at = car.arrival
    it = onward.after(here, there, at)
    assert it is not None
    assert _rides(it)
    assert onward.searches == 1
    # anyone at the car park before that way leaves takes it too: no second search
    later = at + (it.departure - at) / 2
    assert onward.after(here, there, later) is it
    assert onward.after(here, there, it.departure) is it
    assert onward.searches == 1
    # after it left, a new search; and a search for an earlier moment is never answered
    # by a later one
    after = onward.after(here, there, it.departure + dt.timedelta(seconds=1))
    assert onward.searches == 2
    assert after is not None
    assert after.arrival >= it.arrival
    before = onward.after(here, there, at - dt.timedelta(minutes=20))
    assert onward.searches == 3
    assert before is not None
    assert before.arrival <= it.arrival
    assert onward.asked == 5


async def _engine_run(
    base: CityBase, itinerary: Body, at: dt.datetime, closed: dict[int, float]
) -> tuple[TripEngine, list[Body]]:
    store = MemoryStateStore()
    holder = _holder(base)
    engine = TripEngine(base, holder, store, tick_s=3600.0)
    engine.concurrency = 1
    book = TripBook(store)
    session, _ = await book.create(CITY, TZ, itinerary, sorted(MODES), at)
    await engine.reindex_all()
    await engine.start(follow=False)  # the events are handed to it, as the runtime does
    try:
        assert session.trip_id in engine.index
        holder.set_multipliers(closed)
        now = dt.datetime.now(dt.UTC)
        payload = {"edges": list(closed)}
        await engine.on_event(
            Event(seq=1, type=CONGESTION_CHANGED, city=CITY, at=now, payload=payload)
        )
        async with asyncio.timeout(60):
            while engine.stats.evaluated == 0:
                await asyncio.sleep(0.01)
            await engine.idle.wait()
        return engine, await book.messages_after(session.trip_id, 0)
    finally:
        await engine.stop()
        await store.aclose()


@pytest.mark.parametrize("jam", ["ahead", "citywide"])
async def test_the_engine_replans_in_full_only_when_the_repair_loses_real_time(
    poa_base: CityBase, park_and_ride: Body, jam: str
) -> None:
    plan = parse_plan(poa_base, park_and_ride)
    edges = plan.legs[_car(plan)].drive_edges
    at = _at(plan, 0.1)
    # the second half of the drive to the car park three times slower, or every street of
    # the city four times: the bus is missed either way
    if jam == "ahead":
        slowed = dict.fromkeys(edges[len(edges) // 2 :], 3.0)
    else:
        slowed = dict.fromkeys(range(poa_base.streets["drive"].n_edges), 4.0)
    overlay = _holder(poa_base).set_multipliers(slowed)
    here = position_at(plan, at)[1]
    fixed = repair(poa_base.streets["drive"], plan, at, here, _shared(poa_base, overlay))
    assert fixed is not None
    assert _rides(fixed.itinerary) != [leg.trip_id for leg in plan.legs if leg.trip_id]
    lost = (fixed.arrival - plan.arrival).total_seconds()
    engine, messages = await _engine_run(poa_base, park_and_ride, at, slowed)
    stats = engine.stats
    assert (stats.evaluated, stats.repaired) == (1, 1)
    assert engine._shared is not None
    assert engine._shared.onward is not None
    assert engine._shared.onward.searches == 1
    (suggestion,) = messages
    assert suggestion["type"] == "switch_suggestion"
    new_arrival = dt.datetime.fromisoformat(suggestion["new_arrival"])
    need = max(engine.policy.replan_when_late_s, engine.policy.needed(at, fixed.arrival, None))
    if jam == "ahead":
        # the next connection from the car park loses less than a switch would need to
        # save: no better plan can be worth one, the repair is the answer, no full replan
        assert lost < need
        assert stats.replanned == 0
        assert new_arrival == fixed.arrival
        assert suggestion["reason"]["action"] == {"code": "detour", "params": {}}
    else:
        # the repair loses real time: the full multimodal replan runs, and what is
        # suggested arrives no later than the repair
        assert lost >= need
        assert stats.replanned == 1
        assert new_arrival <= fixed.arrival


def test_full_replans_from_the_junction_are_shared_and_equal_a_replan_from_there(
    poa_base: CityBase, park_and_ride: Body
) -> None:
    drive = poa_base.streets["drive"]
    plan = parse_plan(poa_base, park_and_ride)
    edges = plan.legs[_car(plan)].drive_edges
    # the second half of the drive to the car park three times slower
    overlay = _holder(poa_base).set_multipliers(dict.fromkeys(edges[len(edges) // 2 :], 3.0))
    bypasses = _shared(poa_base, overlay)
    replans = Replans(poa_base, overlay)
    fixed = []
    for fraction in (0.05, 0.1, 0.2):
        at = _at(plan, fraction)
        repaired = repair(drive, plan, at, position_at(plan, at)[1], bypasses)
        assert repaired is not None
        fixed.append((at, repaired))
    answers = []
    for at, repaired in fixed:
        junction = repaired.junction
        assert junction is not None
        assert junction.at > at  # ahead of every traveller
        options = full_replan(poa_base, plan, at, None, MODES, overlay, repaired, replans)
        (answer,) = options
        answers.append((repaired, answer))
    at, repaired = fixed[0]
    junction = repaired.junction
    assert junction is not None
    there = (float(drive.node_lat[junction.node]), float(drive.node_lon[junction.node]))
    # exactly what routing.state.replan gives from the junction, holding the car, at the
    # moment the traveller gets there...
    direct = replan(
        poa_base, traveller_state(plan, junction.at, there), plan.destination, overlay, MODES
    )
    best = min(direct, key=lambda it: (it.arrival, it.transfers))
    repaired, answer = answers[0]
    assert answer.arrival == best.arrival
    assert _rides(answer) == _rides(best)
    # ...after the route driven up to it, from where the traveller is
    car = answer.legs[junction.leg]
    assert car.origin == repaired.itinerary.legs[junction.leg].origin
    assert car.departure == at
    assert tuple(car.drive_edges[: len(junction.kept)]) == junction.kept
    assert all(drive.head[a] == drive.tail[b] for a, b in itertools.pairwise(car.drive_edges))
    # the travellers on the route meet the trouble at the same junction: when the best way
    # from there is a drive (the same at any time), one search answers all three
    assert replans.asked == 3
    if not any(_rides(a) for _, a in answers):
        assert replans.searches == 1
    assert {a.arrival - r.junction.at for r, a in answers if r.junction} == {
        answers[0][1].arrival - junction.at
    } or any(_rides(a) for _, a in answers)
