"""Arrive-by (RAPTOR on the time-reversed timetable) and range queries (the profile of
Pareto-optimal departures in a window), exact against a brute-force enumeration of every
journey on random small timetables (hypothesis), and on Porto Alegre against forward RAPTOR."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import replace
from functools import cache

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from raptor_oracle import Rides, Trips, Walks, build, poa_day, replay
from test_itineraries import random_poa_requests

from routing.base import CityBase
from routing.plan import Itinerary, plan_trip, rides_of
from routing.raptor import (
    Footpaths,
    TransitJourney,
    reverse_day,
    reverse_footpaths,
    run_mc_raptor_arrive_by,
    run_raptor,
    run_raptor_arrive_by,
    run_raptor_range,
)
from routing.timetable import BaseTimetable, DayTimetable

Journey = tuple[int, int, int]  # (departure, arrival, rides)


@st.composite
def cases(draw: st.DrawFn) -> tuple[Trips, Walks, list[tuple[str, str, int, int]]]:
    """A random small timetable: 2–4 routes of 1–3 trips over 4–6 stops, trips that may
    overtake and dwell, footpaths (possibly one-way), minimum and forbidden transfers."""
    names = [f"S{i}" for i in range(draw(st.integers(4, 6)))]
    trips: Trips = {}
    for r in range(draw(st.integers(2, 4))):
        seq = draw(st.permutations(names))[: draw(st.integers(2, 4))]
        hops = [draw(st.integers(60, 600)) for _ in seq[1:]]
        for t in range(draw(st.integers(1, 3))):
            clock = draw(st.integers(0, 2400))
            rows = []
            for i, s in enumerate(seq):
                if i:
                    clock += hops[i - 1] + draw(st.sampled_from((0, 0, 120)))
                dwell = draw(st.sampled_from((0, 0, 30)))
                rows.append((s, clock, clock + dwell))
                clock += dwell
            trips[f"R{r}-{t}"] = rows
    served = sorted({s for rows in trips.values() for s, _, _ in rows})
    pairs = draw(st.lists(st.tuples(st.sampled_from(served), st.sampled_from(served)), max_size=6))
    walk: Walks = [
        (a, b, float(draw(st.integers(20, 500)))) for a, b in dict.fromkeys(pairs) if a != b
    ]
    transfers: list[tuple[str, str, int, int]] = []
    for s in draw(st.lists(st.sampled_from(served), max_size=2, unique=True)):
        if draw(st.booleans()) and draw(st.booleans()):
            transfers.append((s, s, 3, 0))
        else:
            transfers.append((s, s, 2, draw(st.integers(0, 180))))
    return trips, walk, transfers


def all_journeys(
    base: BaseTimetable,
    day: DayTimetable,
    fp: Footpaths,
    access: dict[int, int],
    egress: dict[int, int],
    max_rides: int,
) -> set[Journey]:
    """Every journey, enumerated: any trip boarded at any access stop, any alighting stop,
    then the destination or a transfer (same stop after its minimum transfer time, or one
    footpath) to any later trip. Written without RAPTOR's rounds or pruning.

    Returns every distinct (departure, arrival, rides); departure is the first boarding
    minus its access, arrival the last alighting plus its egress.
    """
    rides_from = Rides(day).from_stop
    mtt = base.min_transfer_s

    @cache
    def after_alighting(b: int, a: int, rides_left: int) -> frozenset[tuple[int, int]]:
        """(arrival, rides) of every way on from alighting at b at time a."""
        out: set[tuple[int, int]] = set()
        if b in egress:
            out.add((a + egress[b], 0))
        if rides_left == 0:
            return frozenset(out)
        nexts = []
        if mtt[b] >= 0:
            nexts.append((b, a + int(mtt[b])))
        for e in range(int(fp.offset[b]), int(fp.offset[b + 1])):
            if fp.duration[e] >= 0:
                nexts.append((int(fp.to[e]), a + int(fp.duration[e])))
        for s, ready in nexts:
            for _dep, arr, stop in rides_from(s, ready):
                for end, r in after_alighting(stop, arr, rides_left - 1):
                    out.add((end, r + 1))
        return frozenset(out)

    found: set[Journey] = set()
    for s, secs in access.items():
        for dep, arr, stop in rides_from(s, -(10**9)):
            for end, r in after_alighting(stop, arr, max_rides - 1):
                found.add((dep - secs, end, r + 1))
    return found


def expected_arrive_by(
    journeys: set[Journey], arrive: int, max_rides: int
) -> list[tuple[int, int]]:
    """(rides, latest departure) for each number of rides that leaves strictly later."""
    out: list[tuple[int, int]] = []
    for k in range(1, max_rides + 1):
        deps = [d for d, a, r in journeys if r <= k and a <= arrive]
        if deps and (not out or max(deps) > out[-1][1]):
            out.append((k, max(deps)))
    return out


def expected_range(journeys: set[Journey], lo: int, hi: int) -> list[Journey]:
    """The profile: every (departure, arrival) in the window that no journey (leaving in
    the window or after it) beats by leaving at the same time or later and arriving at the
    same time or earlier, each with its fewest rides, by departure."""
    pareto = {
        (d, a)
        for d, a, _ in journeys
        if lo <= d <= hi
        and not any((d2, a2) != (d, a) and d2 >= d and a2 <= a for d2, a2, _ in journeys)
    }
    return sorted((d, a, min(r for d2, a2, r in journeys if (d2, a2) == (d, a))) for d, a in pareto)


def replayed(
    day: DayTimetable,
    fp: Footpaths,
    mtt: np.ndarray,
    j: TransitJourney,
    access: dict[int, int],
    egress: dict[int, int],
) -> Journey:
    """Follow a journey's legs with the rules from its stated departure: (dep, arr, rides)."""
    assert j.departure is not None
    sources = {j.access_stop: j.departure + access[j.access_stop]}
    arrival, rides, _walk = replay(day, fp, mtt, j, sources, {}, egress, {})
    return j.departure, arrival, rides


def random_query(draw: st.DrawFn, n: int) -> tuple[dict[int, int], dict[int, int], int]:
    stops = st.integers(0, n - 1)
    access = draw(st.dictionaries(stops, st.integers(0, 300), min_size=1, max_size=2))
    egress = draw(st.dictionaries(stops, st.integers(0, 200), min_size=1, max_size=2))
    return access, egress, draw(st.integers(1, 3))


def no_pickup_or_drop_off(draw: st.DrawFn, day: DayTimetable) -> None:
    """Forbid boarding or alighting at a few random pattern positions (pickup_type and
    drop_off_type 1), in place: the search and the enumeration both read these flags."""
    positions = st.integers(0, len(day.pat_pick) - 1)
    for i in draw(st.lists(positions, max_size=3)):
        day.pat_pick[i] = False
    for i in draw(st.lists(positions, max_size=3)):
        day.pat_drop[i] = False


def random_search(
    case: tuple[Trips, Walks, list[tuple[str, str, int, int]]], draw: st.DrawFn
) -> tuple[BaseTimetable, DayTimetable, Footpaths, np.ndarray, dict[int, int], dict[int, int], int]:
    """A drawn case's timetable (with a few stops closed to boarding or alighting) and a
    random query on it: (base, day, footpaths, min transfer times, access, egress, rides)."""
    trips, walk, transfers = case
    base, day, _, fp = build(trips, walk, transfers)
    no_pickup_or_drop_off(draw, day)
    access, egress, max_rides = random_query(draw, base.n_stops)
    return base, day, fp, base.min_transfer_s, access, egress, max_rides


# deterministic (the same examples on every run, nothing written to disk)
FAST = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@FAST
@given(case=cases(), data=st.data())
def test_arrive_by_is_the_latest_departure_for_every_number_of_rides(case, data) -> None:
    base, day, fp, mtt, access, egress, max_rides = random_search(case, data.draw)
    everything = all_journeys(base, day, fp, access, egress, max_rides)
    arrive = data.draw(st.integers(0, 6000))
    got = run_raptor_arrive_by(day, base.n_stops, fp, mtt, access, egress, arrive, max_rides)
    assert [(j.rides, j.departure) for j in got] == expected_arrive_by(
        everything, arrive, max_rides
    )
    for j in got:
        dep, arr, rides = replayed(day, fp, mtt, j, access, egress)
        assert (dep, rides) == (j.departure, j.rides)
        assert arr == j.arrival <= arrive
        assert (dep, arr, rides) in everything


@FAST
@given(case=cases(), data=st.data())
def test_range_is_the_exact_profile_of_the_window(case, data) -> None:
    base, day, fp, mtt, access, egress, max_rides = random_search(case, data.draw)
    everything = all_journeys(base, day, fp, access, egress, max_rides)
    lo = data.draw(st.integers(-600, 3000))
    hi = lo + data.draw(st.integers(0, 3000))
    got = run_raptor_range(day, base.n_stops, fp, mtt, access, egress, lo, hi, max_rides)
    assert [(j.departure, j.arrival, j.rides) for j in got] == expected_range(everything, lo, hi)
    for j in got:
        assert replayed(day, fp, mtt, j, access, egress) == (j.departure, j.arrival, j.rides)


def test_range_limit_keeps_the_earliest_departures() -> None:
    trips = {
        f"R1-{i}": [("A", 600 * i, 600 * i), ("B", 600 * i + 300, 600 * i + 300)] for i in range(5)
    }
    base, day, idx, fp = build(trips)
    mtt = base.min_transfer_s
    full = run_raptor_range(day, base.n_stops, fp, mtt, {idx["A"]: 60}, {idx["B"]: 0}, 0, 3000)
    assert [(j.departure, j.arrival) for j in full] == [
        (540, 900),
        (1140, 1500),
        (1740, 2100),
        (2340, 2700),
    ]
    two = run_raptor_range(
        day, base.n_stops, fp, mtt, {idx["A"]: 60}, {idx["B"]: 0}, 0, 3000, limit=2
    )
    assert two == full[:2]


def test_reversing_twice_gives_the_timetable_back() -> None:
    trips = {
        "R1-a": [("A", 100, 110), ("B", 200, 230), ("C", 900, 900)],
        "R1-b": [("A", 150, 150), ("B", 260, 260), ("C", 950, 960)],
        "R2-a": [("C", 300, 300), ("A", 400, 400)],
    }
    _, day, _, fp = build(trips, walk=[("A", "B", 90.0)])
    rev = reverse_day(day)
    back = reverse_day(rev.day)
    for name in ("pat_stops", "pat_pick", "pat_drop", "arr", "dep", "stop_pat_off", "trip_base"):
        assert np.array_equal(getattr(back.day, name), getattr(day, name)), name
    assert np.array_equal(rev.trip_of[back.trip_of], np.arange(day.n_trips))
    assert reverse_day(day) is rev  # cached
    flipped = reverse_footpaths(fp)
    twice = reverse_footpaths(flipped)
    assert [
        np.array_equal(a, b)
        for a, b in zip(
            (twice.offset, twice.to, twice.duration), (fp.offset, fp.to, fp.duration), strict=True
        )
    ] == [True] * 3


@FAST
@given(case=cases(), data=st.data())
def test_mc_arrive_by_latest_departure_per_rides_matches_raptor(case, data) -> None:
    base, day, fp, mtt, access, egress, max_rides = random_search(case, data.draw)
    arrive = data.draw(st.integers(0, 6000))
    plain = run_raptor_arrive_by(day, base.n_stops, fp, mtt, access, egress, arrive, max_rides)
    mc = run_mc_raptor_arrive_by(
        day, base.n_stops, fp, mtt, access, egress, arrive, access, egress, max_rides
    )
    for k in range(1, max_rides + 1):
        want = max((j.departure for j in plain if j.rides <= k), default=None)
        got = max((j.departure for j in mc if j.rides <= k), default=None)
        assert got == want
    for j in mc:
        dep, arr, rides = replayed(day, fp, mtt, j, access, egress)
        assert (dep, arr, rides) == (j.departure, j.arrival, j.rides)
        assert arr <= arrive


@pytest.mark.slow
def test_porto_alegre_arrive_by_agrees_with_forward_raptor(poa_base: CityBase) -> None:
    """Leaving at the latest departure found arrives by the deadline, and leaving a second
    later does not (forward RAPTOR, with the same rides), on random stop pairs."""
    tt, day, fp, served, rng = poa_day(poa_base, 20190517)
    checked = 0
    for _ in range(40):
        src, dst = (int(x) for x in rng.sample(list(served), 2))
        arrive = 9 * 3600 + rng.randrange(0, 8 * 3600)
        got = run_raptor_arrive_by(
            day, tt.n_stops, fp, tt.min_transfer_s, {src: 0}, {dst: 0}, arrive, max_rides=4
        )
        for j in got:
            assert j.departure is not None
            on_time = run_raptor(
                day, tt.n_stops, fp, tt.min_transfer_s, {src: j.departure}, {dst: 0}, 4
            )
            assert min(x.arrival for x in on_time if x.rides <= j.rides) <= arrive
            late = run_raptor(
                day, tt.n_stops, fp, tt.min_transfer_s, {src: j.departure + 1}, {dst: 0}, 4
            )
            assert min((x.arrival for x in late if x.rides <= j.rides), default=arrive + 1) > arrive
            checked += 1
    assert checked >= 12


@pytest.mark.slow
def test_porto_alegre_door_to_door_arrive_by(
    poa_base: CityBase, legs_chain: Callable[[Itinerary], None]
) -> None:
    """Door to door, walk + transit: every option arrives by the deadline with legs that
    chain; leaving at the latest transit departure shown makes it, and leaving a minute
    later no transit option does (forward plans)."""
    checked = 0
    for request in random_poa_requests(poa_base, 16, seed=20190518):
        if not all(poa_base.city.contains(*p) for p in (request.origin, request.destination)):
            continue  # the jitter may leave the city's box
        deadline = request.depart.replace(hour=14, minute=0, second=0)
        found = plan_trip(poa_base, replace(request, depart=deadline, arrive_by=True))
        for it in found:
            legs_chain(it)
            assert it.arrival <= deadline
        rides = [it for it in found if rides_of(it)]
        if not rides:
            continue
        latest = max(it.departure for it in rides)
        assert [it.departure for it in found] == sorted(
            (it.departure for it in found), reverse=True
        )
        on_time = plan_trip(poa_base, replace(request, depart=latest))
        assert min(it.arrival for it in on_time if rides_of(it)) <= deadline
        late = plan_trip(poa_base, replace(request, depart=latest + dt.timedelta(minutes=1)))
        assert (
            min((it.arrival for it in late if rides_of(it)), default=deadline + dt.timedelta(1))
            > deadline
        )
        checked += 1
    assert checked >= 6
