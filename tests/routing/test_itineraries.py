"""What travellers are shown: walked metres, clock times and durations, and the itinerary
filter chain, on real Porto Alegre and Oslo queries."""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import replace
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from correspondance.geo import haversine_m
from routing.base import CityBase
from routing.codec import ItineraryOut, shown_duration_s
from routing.plan import (
    Itinerary,
    Leg,
    Place,
    PlanRequest,
    filter_far_later,
    filter_pointless_short_rides,
    filter_same_rides,
    filter_slow_walk_savers,
    generalized_cost,
    plan_trip,
    pointless_short_ride,
    rank,
    reboards_a_route_after_walking,
    rides_of,
)

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


# ---------------------------------------------------------------- the itinerary filter chain


def _leg(
    mode: str,
    start: float,
    end: float,
    trip: str | None = None,
    route: str | None = None,
    metres: float = 0.0,
) -> Leg:
    t0 = dt.datetime(2019, 5, 15, 13, 0, tzinfo=POA_TZ)
    board = Place("p", -30.03, -51.22, stop_id=f"{trip}-board" if trip else None)
    alight = Place("q", -30.04, -51.22, stop_id=f"{trip}-alight" if trip else None)
    return Leg(
        mode=mode,
        origin=board,
        destination=alight,
        departure=t0 + dt.timedelta(minutes=start),
        arrival=t0 + dt.timedelta(minutes=end),
        distance_m=metres if mode == "walk" else 1000.0,
        geometry=[],
        trip_id=trip,
        route_id=route,
    )


def _walk(start: float, end: float) -> Leg:
    return _leg("walk", start, end, metres=(end - start) * 78.0)


def test_same_route_reboarding_through_a_walk_is_dropped() -> None:
    t7_t7 = Itinerary([_walk(0, 2), _leg("bus", 2, 10, "a", "T7"), _walk(10, 12),
                       _leg("bus", 14, 20, "b", "T7"), _walk(20, 21)], 1)  # fmt: skip
    t7_at_once = Itinerary([_walk(0, 2), _leg("bus", 2, 10, "a", "T7"),
                            _leg("bus", 12, 20, "b", "T7"), _walk(20, 21)], 1)  # fmt: skip
    t7_671 = Itinerary([_walk(0, 2), _leg("bus", 2, 10, "a", "T7"), _walk(10, 12),
                        _leg("bus", 14, 20, "c", "671"), _walk(20, 21)], 1)  # fmt: skip
    assert reboards_a_route_after_walking(t7_t7)
    assert not reboards_a_route_after_walking(t7_at_once)  # a trip ending where the next starts
    assert not reboards_a_route_after_walking(t7_671)
    assert rank([t7_t7, t7_671]) == [t7_671]


def test_two_options_on_the_same_rides_are_one() -> None:
    # 494 → 605 → 762, alighting at another stop of the same name 50 s later to walk 17 s less
    rides = [_leg("bus", 2, 10, "494"), _leg("bus", 12, 20, "605"), _leg("bus", 22, 30, "762")]
    near = Itinerary([_walk(0, 2), *rides, _walk(30, 35)], 2)
    later_stop = Itinerary(  # off 50 s later, then 4 min 43 s on foot instead of 5 min
        [_walk(0, 2), *rides[:2], _leg("bus", 22, 30 + 50 / 60, "762"), _walk(30 + 50 / 60, 35.55)],
        2,
    )
    assert rides_of(near) == rides_of(later_stop) == ("494", "605", "762")
    assert filter_same_rides([near, later_stop]) == [near]
    assert rank([later_stop, near]) == [near]


def test_minutes_are_not_traded_for_seconds_of_walking() -> None:
    fast = Itinerary([_walk(0, 5), _leg("bus", 5, 20, "a", "T7"), _walk(20, 25)], 0)
    # arrives 16 minutes later, walking 1 minute less: the README's T7 + 671 loop
    loop = Itinerary([_walk(0, 4), _leg("bus", 4, 30, "b", "T7"), _walk(30, 33),
                      _leg("bus", 33, 40, "c", "671"), _walk(40, 41)], 0)  # fmt: skip
    # arrives 5 minutes later but walks 9 minutes less: a real choice, kept
    less_walk = Itinerary([_walk(0, 1), _leg("bus", 1, 29, "d", "T8"), _walk(29, 30)], 0)
    # the next bus, leaving later: never dropped by this rule
    next_bus = Itinerary([_walk(10, 15), _leg("bus", 15, 30, "e", "T7"), _walk(30, 35)], 0)
    kept = filter_slow_walk_savers([fast, loop, less_walk, next_bus])
    assert kept == [fast, less_walk, next_bus]
    assert generalized_cost(loop) > generalized_cost(fast)


def test_a_one_minute_bus_ride_that_saves_little_walking_is_not_offered() -> None:
    # a 1-minute hop of 300 m after a 2-minute wait: walking it takes 3 min 51 s, riding
    # (wait included) 3 min: it saves less than 5 minutes, so it is not worth boarding
    hop = replace(
        _leg("bus", 4, 5, "h", "B51"),
        destination=Place("q", -30.03 + 300 / 111_195, -51.22, stop_id="h-alight"),
        distance_m=320.0,
    )
    with_hop = Itinerary([_walk(0, 2), hop, _walk(5, 8), _leg("bus", 10, 30, "a", "T7"),
                          _walk(30, 32)], 1)  # fmt: skip
    walked = Itinerary([_walk(0, 8), _leg("bus", 10, 30, "a", "T7"), _walk(30, 32)], 0)
    assert pointless_short_ride(with_hop)
    assert not pointless_short_ride(walked)
    assert filter_pointless_short_rides([with_hop, walked]) == [walked]
    # a 1-minute ride across a river (a ferry: no street alongside) is never compared
    ferry = Itinerary([_walk(0, 2), replace(hop, mode="ferry"), _walk(5, 8)], 0)
    assert not pointless_short_ride(ferry)
    # a 2-minute ride saving 10 minutes of walking (1.1 km) is worth it
    long_hop = replace(_leg("bus", 2, 3.9, "l", "B51"), distance_m=1112.0)
    assert not pointless_short_ride(Itinerary([_walk(0, 2), long_hop, _walk(3.9, 5)], 0))
    # never leaves a request without transit by itself
    assert filter_pointless_short_rides([with_hop]) == [with_hop]


# (from, to, local departure) where the search finds 1-minute hops (a B51 for 35 s, a 611
# for 47 s) that save less than 5 minutes over walking
SHORT_HOP_QUERIES = [
    ((-30.0061, -51.1867), (-30.0120, -51.2006), dt.datetime(2019, 5, 15, 13, 11)),
    ((-30.0280, -51.1604), (-30.0086, -51.1943), dt.datetime(2019, 5, 15, 14, 57)),
    ((-30.0090, -51.1916), (-30.0924, -51.2283), dt.datetime(2019, 5, 15, 13, 11)),
]


@pytest.mark.parametrize(("origin", "destination", "depart"), SHORT_HOP_QUERIES)
def test_real_one_minute_hops_are_found_then_filtered(
    poa_base: CityBase,
    origin: tuple[float, float],
    destination: tuple[float, float],
    depart: dt.datetime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    request = PlanRequest(origin, destination, depart.replace(tzinfo=POA_TZ))
    plan = plan_trip(poa_base, request)
    assert plan
    assert not any(pointless_short_ride(it) for it in plan)
    check_filter_properties(plan)
    # without the rule, the same search offers them
    import routing.plan_rank as plan_module

    monkeypatch.setattr(plan_module, "filter_pointless_short_rides", lambda its, _w=1.3: its)
    assert any(pointless_short_ride(it) for it in plan_trip(poa_base, request))


OSLO_TZ = ZoneInfo("Europe/Oslo")
# (from, to, local departure): the README's example first, then trips across the centre
POA_QUERIES = [
    ((-30.0346, -51.2177), (-30.0277, -51.1793), dt.datetime(2019, 5, 15, 13, 0)),
    ((-30.0277, -51.2287), (-30.0346, -51.2177), dt.datetime(2019, 5, 15, 13, 0)),
    ((-30.0390, -51.2186), (-30.0600, -51.1750), dt.datetime(2019, 5, 15, 12, 30)),
    ((-30.0300, -51.2300), (-30.0050, -51.1900), dt.datetime(2019, 5, 15, 14, 10)),
    ((-30.0450, -51.2100), (-30.0200, -51.2050), dt.datetime(2019, 5, 16, 11, 45)),
    ((-30.0330, -51.1950), (-30.0650, -51.2200), dt.datetime(2019, 5, 17, 15, 20)),
]
OSLO_QUERIES = [
    ((59.9110, 10.7528), (59.9124, 10.8004), dt.datetime(2016, 12, 7, 8, 0)),
    ((59.9149, 10.7316), (59.9110, 10.7528), dt.datetime(2016, 12, 7, 9, 15)),
    ((59.9200, 10.7600), (59.9050, 10.7800), dt.datetime(2016, 12, 7, 17, 30)),
    ((59.9124, 10.8004), (59.9149, 10.7316), dt.datetime(2016, 12, 7, 7, 5)),
]


def check_filter_properties(plan: list[Itinerary]) -> None:
    """What the filter chain promises, on any list it returns."""
    if plan:
        first = min(plan, key=lambda it: it.arrival)
        slack = max(3600.0, (first.arrival - first.departure).total_seconds())
        for it in plan:
            if rides_of(it):
                assert (it.arrival - first.arrival).total_seconds() <= slack, it
    rides = [rides_of(it) for it in plan if rides_of(it)]
    assert len(rides) == len(set(rides)), "two itineraries with the same rides"
    transit = [it for it in plan if rides_of(it)]
    if not all(pointless_short_ride(it) for it in transit):  # the rule never empties transit
        assert not any(pointless_short_ride(it) for it in transit), "a 1-minute bus ride"
    for it in plan:
        assert not reboards_a_route_after_walking(it), it
    for a in plan:
        for b in plan:
            if a is b or a.family != b.family:
                continue
            if a.departure >= b.departure and a.arrival <= b.arrival and a.transfers <= b.transfers:
                slower = (b.arrival - b.departure) - (a.arrival - a.departure)
                saved = a.walk_seconds - b.walk_seconds
                assert slower.total_seconds() <= saved, (a, b)


@pytest.mark.parametrize(("origin", "destination", "depart"), POA_QUERIES)
def test_real_porto_alegre_options_pass_the_filter_chain(
    poa_base: CityBase,
    origin: tuple[float, float],
    destination: tuple[float, float],
    depart: dt.datetime,
) -> None:
    request = PlanRequest(origin, destination, depart.replace(tzinfo=POA_TZ))
    plan = plan_trip(poa_base, request)
    assert any(it.family == ("transit",) for it in plan)
    check_filter_properties(plan)


@pytest.mark.parametrize(("origin", "destination", "depart"), OSLO_QUERIES)
def test_real_oslo_options_pass_the_filter_chain(
    oslo_base: CityBase,
    origin: tuple[float, float],
    destination: tuple[float, float],
    depart: dt.datetime,
) -> None:
    request = PlanRequest(
        origin, destination, depart.replace(tzinfo=OSLO_TZ), modes=frozenset({"walk", "transit"})
    )
    plan = plan_trip(oslo_base, request)
    assert plan
    check_filter_properties(plan)


def test_the_readme_example_shows_no_loop_that_saves_seconds(poa_base: CityBase) -> None:
    origin, destination, depart = POA_QUERIES[0]
    plan = plan_trip(poa_base, PlanRequest(origin, destination, depart.replace(tzinfo=POA_TZ)))
    fastest = min(plan, key=lambda it: it.arrival)
    for it in plan:
        if it.family == fastest.family and it.departure <= fastest.departure:
            late = (it.arrival - fastest.arrival).total_seconds()
            assert late <= max(0, fastest.walk_seconds - it.walk_seconds), it


def test_tomorrows_first_bus_after_a_missed_connection_is_dropped() -> None:
    best = Itinerary([_walk(0, 5), _leg("bus", 5, 35, "a", "T7"), _walk(35, 40)], 0)
    next_bus = Itinerary([_walk(15, 20), _leg("bus", 20, 50, "b", "T7"), _walk(50, 55)], 0)
    tomorrow = Itinerary([_walk(0, 5), _leg("bus", 5, 20, "c", "280"),
                          _leg("bus", 24 * 60, 24 * 60 + 20, "d", "T2A1")], 1)  # fmt: skip
    long_walk = Itinerary([_walk(0, 200)], 0)
    assert filter_far_later([best, next_bus, tomorrow, long_walk]) == [best, next_bus, long_walk]
