"""End to end: contributors' reports over HTTP slow down and divert the buses in them.

A real server (embedded store, its own writer and fuser) plans the README's trip: a T7 bus
across the centre. Three contributors, each with their own token on their own network
(loopback addresses bound per client), report a street the T7 drives through. No
test-only path: intake, abuse rules, fusion, the overlay, then ``/api/v1/plan`` again.

- congestion on a street between boarding and alighting: the same T7 boards at the same
  time and arrives later, by no more than the jam can cost (level 4: × 4);
- a closure of the street the T7 reaches its alighting stop by: no plan alights there any
  more (the stop is skipped, as a diversion would).
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from report_helpers import new_address, new_token, post_report, report_settings, serve
from trip_helpers import (
    InThread,
    serve_in_thread,
    start_trip,
    trip_settings,
    trip_socket,
    with_mode,
)
from trip_helpers import plan as trip_plan

from realtime.trips.sessions import TripBook
from routing.base import CityBase

CENTRE = "-30.0346,-51.2177"
EAST = "-30.0277,-51.1793"
DEPART = "2019-05-15T13:00:00-03:00"
CONTRIBUTORS = 3  # k = 2 by default: one more than needed


@pytest.fixture
def url(tmp_path: Path, poa_base: CityBase) -> Iterator[str]:
    with serve(report_settings("embedded", tmp_path), poa_base) as running:
        yield running


def plan(url: str) -> list[dict[str, Any]]:
    response = httpx.get(
        f"{url}/api/v1/plan", params={"from": CENTRE, "to": EAST, "depart": DEPART}, timeout=60
    )
    assert response.status_code == 200, response.text
    itineraries: list[dict[str, Any]] = response.json()["itineraries"]
    return itineraries


def t7_ride(itineraries: list[dict[str, Any]]) -> dict[str, Any]:
    for it in itineraries:
        for leg in it["legs"]:
            if leg["route_short_name"] == "T7":
                found: dict[str, Any] = leg
                return found
    raise AssertionError("no T7 ride offered")


def report_on(base: CityBase, edge: int, kind: str) -> dict[str, Any]:
    """A report at the middle of a drive edge, heading the way it runs."""
    coords = base.streets["drive"].edge_coords(edge)
    i = max(0, len(coords) // 2 - 1)
    (x0, y0), (x1, y1) = coords[i], coords[i + 1]
    lat, lon = (y0 + y1) / 2, (x0 + x1) / 2
    heading = math.degrees(math.atan2((x1 - x0) * math.cos(math.radians(lat)), y1 - y0)) % 360
    body: dict[str, Any] = {
        "lat": float(lat),
        "lon": float(lon),
        "heading": round(heading, 1),
        "kind": kind,
        "mode": "car",
    }
    if kind == "congestion":
        body["level"] = 4
    return body


def segments(base: CityBase, ride: dict[str, Any]) -> tuple[int, int]:
    """The ride's pattern and the flat position of its boarding stop."""
    tt = base.timetable
    index = tt.trip_index(ride["trip_id"])
    assert index is not None
    p = int(tt.trip_pattern[index])
    return p, int(tt.pat_stop_off[p]) + int(ride["board_index"])


def corroborate(url: str, report: dict[str, Any], edge: int) -> None:
    for _ in range(CONTRIBUTORS):
        response = post_report(url, report, new_token(), new_address())
        assert response.status_code == 202, response.text
        assert edge in response.json()["edge_ids"], response.json()


def test_a_jam_reported_ahead_of_a_bus_makes_it_arrive_later(url: str, poa_base: CityBase) -> None:
    streets, drive = poa_base.transit_streets, poa_base.streets["drive"]
    assert streets is not None
    before = t7_ride(plan(url))
    _, board = segments(poa_base, before)
    ride_edges = [
        int(e)
        for f in range(board + 1, board + before["alight_index"] - before["board_index"])
        for e in streets.segment_edges(f)
        if not streets.exempt[e]
    ]
    edge = max(ride_edges, key=lambda e: float(drive.length_m[e]))
    corroborate(url, report_on(poa_base, edge, "congestion"), edge)
    deadline = time.monotonic() + 15
    while True:
        after = t7_ride(plan(url))
        if after["trip_id"] == before["trip_id"] and after["arrival"] != before["arrival"]:
            break
        assert time.monotonic() < deadline, "the T7 never slowed down"
        time.sleep(0.5)
    assert after["departure"] == before["departure"]  # boarded before the jam: on time
    late = clock(after["arrival"]) - clock(before["arrival"])  # at its stop after the jam
    assert 0 < late <= math.ceil(3.0 * float(drive.base_time_s[edge])) + 1
    # and the traveller is told so (on top of what the live feed says of that bus, if anything)
    assert after["delay_s"] - (before["delay_s"] or 0) == late


def test_a_closure_on_a_bus_street_skips_its_stop_there(url: str, poa_base: CityBase) -> None:
    streets, tt = poa_base.transit_streets, poa_base.timetable
    assert streets is not None
    before = t7_ride(plan(url))
    p, board = segments(poa_base, before)
    alight = board + before["alight_index"] - before["board_index"]
    into = streets.segment_edges(alight - 1)
    assert len(into), "the T7 reaches its stop by a matched street"
    edge = int(into[-1])  # the street the stop is on
    corroborate(url, report_on(poa_base, edge, "closure"), edge)
    closed_stop = before["to"]["stop_id"]
    deadline = time.monotonic() + 15
    while True:
        itineraries = plan(url)
        alights = {
            leg["to"]["stop_id"]
            for it in itineraries
            for leg in it["legs"]
            if leg["trip_id"] and int(tt.trip_pattern[tt.trip_index(leg["trip_id"]) or -1]) == p
        }
        if closed_stop not in alights:
            break
        assert time.monotonic() < deadline, "the T7 still stops on the closed street"
        time.sleep(0.5)
    assert itineraries, "the city still has a way there"


def clock(value: str) -> float:
    return dt.datetime.fromisoformat(value).timestamp()


# -- the live-trip demo ----------------------------------------------------------------------


@pytest.fixture
def demo_server(tmp_path: Path, poa_base: CityBase) -> Iterator[InThread]:
    with serve_in_thread(trip_settings(tmp_path, demo=True), poa_base) as running:
        yield running


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_the_demo_never_sends_a_driver_on_a_bus_through_the_closed_streets(
    demo_server: InThread, poa_base: CityBase, anyio_backend: str
) -> None:
    """The demo closes the road ahead of a car-share trip (and every street near where it
    ends). A bus offered instead must neither stop on a closed street nor ride a stretch of
    road that is closed: it is diverted around it, or cannot go on."""
    streets = poa_base.transit_streets
    assert streets is not None
    url = demo_server.url
    async with httpx.AsyncClient(timeout=60) as http:
        demo = (await http.get(f"{url}/api/v1/demo")).json()
        itineraries = await trip_plan(
            http,
            url,
            modes=",".join(demo["modes"]),
            origin=f"{demo['from']['lat']},{demo['from']['lon']}",
            destination=f"{demo['to']['lat']},{demo['to']['lon']}",
            depart=demo["depart"],
        )
        trip_id, token = await start_trip(
            http, url, with_mode(itineraries, "carshare"), modes=demo["modes"]
        )
        async with trip_socket(url, trip_id, token) as ws:
            assert (await ws.recv())["type"] == "hello"
            jam = await http.post(
                f"{url}/api/v1/trips/{trip_id}/demo", headers={"Authorization": f"Bearer {token}"}
            )
            assert jam.status_code == 202, jam.text
            suggestion = await ws.recv_type("switch_suggestion", timeout=30)
    session = await demo_server.call(lambda state: TripBook(state.store).get(trip_id))
    closed = np.zeros(poa_base.streets["drive"].n_edges, bool)
    closed[session.private_closures] = True
    assert closed.any()
    rides = [leg for leg in suggestion["itinerary"]["legs"] if leg["trip_id"]]
    for ride in rides:
        p, board = segments(poa_base, ride)
        if not streets.running[p]:
            continue
        alight = board + ride["alight_index"] - ride["board_index"]
        for stop in (board, alight):
            # the street into the stop and the street out of it (the last stop of the
            # previous pattern has no segment out: the first stop has no street in)
            own = [*streets.segment_edges(stop - 1)[-1:], *streets.segment_edges(stop)[:1]]
            assert not closed[own].any(), (ride, "a stop on a closed street")
