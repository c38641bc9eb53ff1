"""Live delays you can see (issue 14), through the HTTP API of a real server running Porto
Alegre's simulated GTFS-Realtime feed: delays with scheduled and expected times on plan legs,
cancelled buses never offered, alerts on the legs they touch, the feed labelled simulated,
and a started trip whose bus the feed then cancels gets a switch suggestion."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from gtfsrt_scenarios import Ride, ride_on, rides_turning_cancelled, simulator_of, situation_of
from trip_helpers import CITY, InThread, serve_in_thread, start_trip, trip_settings, trip_socket

from correspondance.cities import CityConfig
from realtime.gtfsrt_simulator import GtfsRtSimulator
from realtime.trips.deadlines import decision_deadline
from realtime.trips.plan_view import parse_plan, project
from routing.base import CityBase

pytestmark = pytest.mark.anyio
Body = dict[str, Any]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, poa_base: CityBase) -> Iterator[InThread]:
    # embedded store; simulated feeds frozen at the suite's moment (tests/conftest.py)
    settings = trip_settings(tmp_path_factory.mktemp("live-delays"))
    assert settings.simulated_feeds_at is not None
    with serve_in_thread(settings, poa_base) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=60) as client:
        yield client


def served_simulator(server: InThread) -> GtfsRtSimulator:
    service = server.state.runtime.cities[CITY].service
    (sim,) = service.simulators
    return sim  # type: ignore[no-any-return]


async def plan(http: httpx.AsyncClient, url: str, ride: Ride) -> list[Body]:
    response = await http.get(
        f"{url}/api/v1/plan",
        params={
            "from": ride.origin,
            "to": ride.destination,
            "depart": ride.depart,
            "modes": "walk,transit",
        },
    )
    assert response.status_code == 200, response.text
    itineraries: list[Body] = response.json()["itineraries"]
    return itineraries


def legs_on(itineraries: list[Body], trip_id: str) -> list[Body]:
    return [leg for it in itineraries for leg in it["legs"] if leg["trip_id"] == trip_id]


async def test_the_feed_is_listed_simulated_and_fresh(
    server: InThread, http: httpx.AsyncClient
) -> None:
    response = await http.get(f"{server.url}/api/v1/feeds", params={"city": CITY})
    assert response.status_code == 200
    feeds = response.json()
    found = [f for f in _walk(feeds) if isinstance(f, dict) and f.get("feed_id") == "eptc-rt-sim"]
    assert found, feeds
    feed = found[0]
    assert feed["kind"] == "gtfs-rt"
    assert feed["simulated"] is True
    assert feed["status"] == "ok"
    assert feed["source"].startswith("http://127.0.0.1:")
    assert feed["records_rejected"] == 0
    assert feed["staleness_s"] is not None
    assert feed["staleness_s"] < 60


def _walk(value: Any) -> Iterator[Any]:
    yield value
    if isinstance(value, dict):
        for v in value.values():
            yield from _walk(v)
    elif isinstance(value, list):
        for v in value:
            yield from _walk(v)


async def test_a_late_bus_shows_its_delay_and_scheduled_times(
    server: InThread, http: httpx.AsyncClient, poa_base: CityBase
) -> None:
    sim = served_simulator(server)
    late = [s for s in sim.situation(sim.tick()) if s.delay_s >= 180]
    checked = 0
    for situation in late[:40]:
        ride = ride_on(poa_base, situation.trip_id, early_s=60)
        if ride is None:
            continue
        legs = legs_on(await plan(http, server.url, ride), situation.trip_id)
        if not legs:
            continue  # another bus was faster: try the next late one
        leg = legs[0]
        assert leg["delay_s"] == situation.delay_s
        assert leg["simulated"] is True
        departure = dt.datetime.fromisoformat(leg["departure"])
        scheduled = dt.datetime.fromisoformat(leg["scheduled_departure"])
        assert (departure - scheduled).total_seconds() == situation.delay_s
        arrival = dt.datetime.fromisoformat(leg["arrival"])
        assert (arrival - dt.datetime.fromisoformat(leg["scheduled_arrival"])).total_seconds() == (
            situation.delay_s
        )
        # the expected departure is the timetable's plus the delay, on the service day
        local = scheduled.replace(tzinfo=None)
        assert (local - dt.datetime(2019, 5, 15)).total_seconds() == ride_leaves(
            poa_base, situation.trip_id, leg
        )
        checked += 1
        if checked == 2:
            break
    assert checked == 2


def ride_leaves(base: CityBase, trip_id: str, leg: Body) -> int:
    times = base.timetable.transit.stop_times
    rows = times[times["trip_id"] == trip_id].sort_values("stop_sequence")
    return int(rows.iloc[int(leg["board_index"])]["departure_s"])


async def test_an_on_time_bus_says_zero_and_a_cancelled_one_is_never_offered(
    server: InThread, http: httpx.AsyncClient, poa_base: CityBase
) -> None:
    sim = served_simulator(server)
    now = sim.situation(sim.tick())
    on_time = next(
        s for s in now if not s.cancelled and not s.delay_s and _long(poa_base, s.trip_id)
    )
    ride = ride_on(poa_base, on_time.trip_id)
    assert ride is not None
    legs = legs_on(await plan(http, server.url, ride), on_time.trip_id)
    assert legs, "the on-time bus along its own route should be planned"
    assert legs[0]["delay_s"] == 0
    assert legs[0]["scheduled_departure"] is None
    assert legs[0]["simulated"] is True

    cancelled = [s for s in now if s.cancelled and _long(poa_base, s.trip_id)]
    assert len(cancelled) >= 10
    for situation in cancelled[:10]:
        ride = ride_on(poa_base, situation.trip_id)
        assert ride is not None
        itineraries = await plan(http, server.url, ride)
        assert itineraries
        assert legs_on(itineraries, situation.trip_id) == []


def _long(base: CityBase, trip_id: str) -> bool:
    return ride_on(base, trip_id) is not None


async def test_alerts_are_attached_to_the_legs_they_touch(
    server: InThread, http: httpx.AsyncClient, poa_base: CityBase
) -> None:
    overlay = server.state.overlays[CITY].current
    route_alert = next(a for a in overlay.alerts if a.effect == "DETOUR")
    assert route_alert.simulated
    (route_id,) = route_alert.route_ids
    sim = served_simulator(server)
    now = {s.trip_id: s for s in sim.situation(sim.tick())}
    on_route = [
        t.trip_id
        for t in sim.trips
        if t.route_id == route_id and not now[t.trip_id].cancelled and _long(poa_base, t.trip_id)
    ]
    for trip_id in on_route:
        ride = ride_on(poa_base, trip_id)
        assert ride is not None
        legs = legs_on(await plan(http, server.url, ride), trip_id)
        if not legs:
            continue
        alerts = legs[0]["alerts"]
        detour = next(a for a in alerts if a["alert_id"] == route_alert.alert_id)
        assert detour["effect"] == "DETOUR"
        assert detour["simulated"] is True
        assert detour["header"].startswith("Line ")
        assert detour["description"].startswith("Simulated by Correspondance")
        assert legs[0]["simulated"] is True
        break
    else:
        pytest.fail(f"no plan rode route {route_id}")
    # a leg of another route that neither stop nor route alert names has no alert
    others = list(overlay.alerts)
    touched_routes = {r for a in others for r in a.route_ids}
    touched_stops = {s for a in others for s in a.stop_ids}
    for trip in sim.trips:
        if trip.route_id in touched_routes or now[trip.trip_id].cancelled:
            continue
        if not _long(poa_base, trip.trip_id):
            continue
        ride = ride_on(poa_base, trip.trip_id)
        assert ride is not None
        legs = legs_on(await plan(http, server.url, ride), trip.trip_id)
        if legs and not {legs[0]["from"]["stop_id"], legs[0]["to"]["stop_id"]} & touched_stops:
            assert legs[0]["alerts"] == []
            break


async def test_a_started_trip_whose_bus_is_then_cancelled_gets_a_switch_suggestion(
    server: InThread, http: httpx.AsyncClient, poa_base: CityBase, cities: dict[str, CityConfig]
) -> None:
    sim = served_simulator(server)
    tick = sim.tick()
    # the test's own copy of the simulator, frozen at the same moment, says what comes next
    mine = simulator_of(cities[CITY], poa_base, sim.frozen_at)
    found: tuple[int, Ride, Body] | None = None
    for turns_at, candidate in rides_turning_cancelled(mine, poa_base, tick, within=40):
        itineraries = await plan(http, server.url, candidate)
        riding = next((it for it in itineraries if legs_on([it], candidate.trip_id)), None)
        if riding is not None:
            found = (turns_at, candidate, riding)
            break
    assert found is not None, "no bus turning cancelled could be planned"
    at, ride, chosen = found
    assert situation_of(sim, ride.trip_id).cancelled is False

    trip_id, token = await start_trip(http, server.url, chosen)
    async with trip_socket(server.url, trip_id, token) as ws:
        hello = await ws.recv_type("hello")
        assert hello["suggestion"] is None

        # the simulated clock reaches the tick where the feed cancels the bus
        sim.frozen_at = at * sim.config.tick_s
        assert situation_of(sim, ride.trip_id).cancelled is True
        suggestion = await ws.recv_type(
            "switch_suggestion",
            timeout=60,
            skip=frozenset({"progress", "heartbeat", "live_update"}),
        )
    assert suggestion["plan_broken"] is True
    assert suggestion["reason"]["code"] == "trip_cancelled"
    assert legs_on([suggestion["itinerary"]], ride.trip_id) == []
    overlay = server.state.overlays[CITY].current
    assert ride.trip_id in overlay.cancelled_trips
    # put the feed back where the other tests expect it
    sim.frozen_at = server.settings.simulated_feeds_at
    await asyncio.sleep(0)


async def test_a_plan_on_a_late_bus_is_not_late_again_when_followed(
    server: InThread, http: httpx.AsyncClient, poa_base: CityBase
) -> None:
    """The plan's times already hold the delay it was planned with: following it, only a
    change of that delay moves the arrival (it used to be counted twice)."""
    sim = served_simulator(server)
    overlay = server.state.overlays[CITY].current
    for situation in [s for s in sim.situation(sim.tick()) if s.delay_s >= 180]:
        ride = ride_on(poa_base, situation.trip_id, early_s=60)
        if ride is None:
            continue
        itineraries = await plan(http, server.url, ride)
        chosen = next((it for it in itineraries if legs_on([it], ride.trip_id)), None)
        if chosen is not None:
            break
    else:
        pytest.fail("no late bus could be planned")
    followed = parse_plan(poa_base, chosen, overlay)
    at = followed.departure
    assert project(poa_base, followed, at, overlay).arrival == followed.arrival
    assert decision_deadline(poa_base, followed, at, overlay) == followed.arrival
    later = dataclasses.replace(
        overlay, trip_delays={**overlay.trip_delays, ride.trip_id: situation.delay_s + 300}
    )
    projection = project(poa_base, followed, at, later)
    assert projection.arrival == followed.arrival + dt.timedelta(seconds=300)
    assert [(d, c) for _, d, c, _ in projection.legs] == [(300, False)]
