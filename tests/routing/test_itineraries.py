"""What travellers are shown: walked metres, clock times and durations, and the itinerary
filter chain, on real Porto Alegre and Oslo queries."""

from __future__ import annotations

import datetime as dt
import random
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from feeds.gtfs import haversine_m
from routing.base import CityBase
from routing.plan import Itinerary, Leg, PlanRequest, plan_trip
from routing.wire import ItineraryOut, shown_duration_s

POA_TZ = ZoneInfo("America/Sao_Paulo")


def geometry_m(leg: Leg) -> float:
    """Length of the leg's drawn line (haversine between consecutive points)."""
    if len(leg.geometry) < 2:
        return 0.0
    lon, lat = np.array(leg.geometry).T
    return float(np.sum(haversine_m(lat[:-1], lon[:-1], lat[1:], lon[1:])))


def straight_m(leg: Leg) -> float:
    return float(
        haversine_m(leg.origin.lat, leg.origin.lon, leg.destination.lat, leg.destination.lon)
    )


def random_poa_requests(base: CityBase, n: int, seed: int) -> list[PlanRequest]:
    """Door-to-door requests between random points near linked stops, 12:00–15:00."""
    rng = random.Random(seed)
    tt = base.timetable
    linked = np.flatnonzero(base.stop_links.edge >= 0)
    out = []
    for _ in range(n):
        a, b = (int(rng.choice(linked)) for _ in range(2))
        jitter = [rng.uniform(-0.002, 0.002) for _ in range(4)]
        out.append(
            PlanRequest(
                origin=(float(tt.stop_lat[a]) + jitter[0], float(tt.stop_lon[a]) + jitter[1]),
                destination=(
                    float(tt.stop_lat[b]) + jitter[2],
                    float(tt.stop_lon[b]) + jitter[3],
                ),
                depart=dt.datetime(2019, 5, 15, 12, 0, tzinfo=POA_TZ)
                + dt.timedelta(seconds=rng.randrange(3 * 3600)),
            )
        )
    return out


@pytest.fixture(scope="module")
def poa_plans(poa_base: CityBase) -> list[list[Itinerary]]:
    plans = []
    for request in random_poa_requests(poa_base, 12, seed=15):
        plans.append(plan_trip(poa_base, request))
    assert sum(len(p) for p in plans) > 20
    return plans


def test_walk_distance_counts_every_metre_of_the_drawn_leg(
    poa_plans: list[list[Itinerary]],
) -> None:
    checked = 0
    for plan in poa_plans:
        for it in plan:
            for leg in it.legs:
                if leg.mode != "walk":
                    continue
                drawn, crow = geometry_m(leg), straight_m(leg)
                # never less than the crow flies ("Walk 80 m" for 119 m straight was the bug)
                assert leg.distance_m >= crow - 1.0, (leg, crow)
                if len(leg.geometry) > 2:  # a street path: its drawn line is what is walked
                    assert leg.distance_m == pytest.approx(drawn, rel=0.02, abs=3.0), leg
                checked += 1
    assert checked > 30


def test_walk_distance_and_duration_agree(poa_plans: list[list[Itinerary]]) -> None:
    for plan in poa_plans:
        for it in plan:
            for leg in it.legs:
                if leg.mode == "walk" and len(leg.geometry) > 2:
                    seconds = (leg.arrival - leg.departure).total_seconds()
                    assert seconds == pytest.approx(leg.distance_m / 1.3, abs=2.0), leg


@pytest.mark.parametrize(
    ("departure", "arrival", "minutes"),
    [
        ("13:00:50", "13:14:40", 14),  # exact 13 min 50 s, shown 13:00 → 13:14
        ("13:00:10", "13:14:40", 14),  # exact 14 min 30 s would round to "15 min"
        ("13:59:59", "14:00:00", 1),
        ("13:00:00", "13:00:59", 0),
    ],
)
def test_itinerary_duration_is_the_difference_of_the_shown_clocks(
    departure: str, arrival: str, minutes: int
) -> None:
    day = dt.date(2019, 5, 15)
    start = dt.datetime.combine(day, dt.time.fromisoformat(departure), POA_TZ)
    end = dt.datetime.combine(day, dt.time.fromisoformat(arrival), POA_TZ)
    assert shown_duration_s(start, end) == minutes * 60


def test_real_itineraries_show_clocks_and_durations_that_agree(
    poa_plans: list[list[Itinerary]],
) -> None:
    for plan in poa_plans:
        for it in plan:
            out = ItineraryOut.of(it)
            shown = dt.datetime.combine(
                out.departure.date(), out.departure.time().replace(second=0, microsecond=0)
            )
            shown_end = dt.datetime.combine(
                out.arrival.date(), out.arrival.time().replace(second=0, microsecond=0)
            )
            assert out.duration_s % 60 == 0
            assert out.duration_s == (shown_end - shown).total_seconds()
