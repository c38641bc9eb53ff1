"""RAPTOR on small hand-made timetables, and on Porto Alegre against a brute-force oracle."""

from __future__ import annotations

import bisect
import datetime as dt
import random

import numpy as np
import pandas as pd
import pytest

from feeds.gtfs import TransitData
from routing.base import CityBase, make_footpaths
from routing.raptor import FootLeg, RideLeg, run_raptor
from routing.timetable import DayTimetable, build_base_timetable

DAY = dt.date(2019, 5, 15)


class _Feed:
    """The one gtfs-kit call TransitData makes on a feed, for hand-made timetables."""

    def get_dates(self) -> list[str]:
        return ["20190501", "20190531"]


def make_transit(
    trips: dict[str, list[tuple[str, int, int]]], transfers: list[tuple] = ()
) -> TransitData:
    stop_names = sorted({s for rows in trips.values() for s, _, _ in rows})
    stops = pd.DataFrame(
        {
            "stop_id": stop_names,
            "stop_name": stop_names,
            "stop_lat": [0.0 + i * 0.01 for i in range(len(stop_names))],
            "stop_lon": 0.0,
            "parent_station": pd.NA,
        }
    )
    st = pd.DataFrame(
        [
            {
                "trip_id": t,
                "stop_sequence": i,
                "stop_id": s,
                "arrival_s": a,
                "departure_s": d,
                "pickup_type": 0,
                "drop_off_type": 0,
            }
            for t, rows in trips.items()
            for i, (s, a, d) in enumerate(rows)
        ]
    )
    trip_df = pd.DataFrame(
        {
            "trip_id": list(trips),
            "route_id": [t.split("-")[0] for t in trips],
            "service_key": "f\x1fS",
            "feed_id": "f",
        }
    )
    routes = pd.DataFrame(
        {
            "route_id": sorted(set(trip_df["route_id"])),
            "route_type": 3,
            "agency_key": "f:A",
            "feed_id": "f",
        }
    )
    tr = pd.DataFrame(
        list(transfers),
        columns=["from_stop_id", "to_stop_id", "transfer_type", "min_transfer_time"],
    )
    data = TransitData(
        stops=stops,
        routes=routes,
        trips=trip_df,
        stop_times=st,
        transfers=tr,
        timezone="UTC",
        agencies=pd.DataFrame({"agency_key": ["f:A"], "agency_name": ["A"]}),
        feeds={"f": _Feed()},
    )
    object.__setattr__(data, "active_service_keys", lambda day: frozenset({"f\x1fS"}))
    return data


def solve(data: TransitData, src: str, dst: str, t0: int, walk: list[tuple[str, str, float]] = ()):
    base = build_base_timetable(data)
    day = base.day(DAY)
    idx = {str(s): i for i, s in enumerate(base.stop_ids)}
    fa = np.array([idx[a] for a, _, _ in walk], np.int64)
    fb = np.array([idx[b] for _, b, _ in walk], np.int64)
    fm = np.array([m for _, _, m in walk], float)
    fp = make_footpaths(base, fa, fb, fm, 1.0)
    t = t0 + day.origin_unix - day.origin_unix
    return base, run_raptor(
        day, base.n_stops, fp, base.min_transfer_s, {idx[src]: t}, {idx[dst]: 0}
    )


def test_direct_ride_and_pareto_on_transfers() -> None:
    data = make_transit(
        {
            "R1-a": [("A", 100, 100), ("B", 200, 200), ("C", 900, 900)],  # slow, direct
            "R2-a": [("B", 250, 250), ("C", 400, 400)],  # faster with a change
        }
    )
    _, journeys = solve(data, "A", "C", 0)
    assert [(j.rides, j.arrival) for j in journeys] == [(1, 900), (2, 400)]
    two = journeys[1]
    assert [type(leg) for leg in two.legs] == [RideLeg, RideLeg]


def test_min_transfer_time_blocks_a_tight_connection() -> None:
    trips = {
        "R1-a": [("A", 100, 100), ("B", 200, 200)],
        "R2-a": [("B", 230, 230), ("C", 300, 300)],
        "R2-b": [("B", 400, 400), ("C", 500, 500)],
    }
    _, free = solve(make_transit(trips), "A", "C", 0)
    assert free[-1].arrival == 300
    _, tight = solve(make_transit(trips, [("B", "B", 2, 60)]), "A", "C", 0)
    assert tight[-1].arrival == 500


def test_forbidden_transfer_is_never_used() -> None:
    trips = {"R1-a": [("A", 100, 100), ("B", 200, 200)], "R2-a": [("B", 230, 230), ("C", 300, 300)]}
    _, journeys = solve(make_transit(trips, [("B", "B", 3, 0)]), "A", "C", 0)
    assert journeys == []


def test_footpath_between_rides_and_overtaking_trips() -> None:
    trips = {
        "R1-a": [("A", 100, 100), ("B", 200, 200)],
        "R2-a": [("D", 260, 260), ("E", 700, 700)],  # leaves first, arrives last
        "R2-b": [("D", 300, 300), ("E", 400, 400)],
    }  # overtakes it
    _, journeys = solve(make_transit(trips), "A", "E", 0, walk=[("B", "D", 50.0)])
    assert journeys[-1].arrival == 400
    assert any(isinstance(leg, FootLeg) for leg in journeys[-1].legs)


def _connections(day: DayTimetable) -> list[tuple[int, int, int, int, int, bool, bool]]:
    """Every elementary connection of the day, sorted by departure (a CSA timetable)."""
    out = []
    for p in range(len(day.pat_stop_off) - 1):
        lo, hi = day.pat_stop_off[p], day.pat_stop_off[p + 1]
        n = hi - lo
        for t in range(day.pat_trip_off[p], day.pat_trip_off[p + 1]):
            off = day.pat_time_off[p] + (t - day.pat_trip_off[p]) * n
            for i in range(n - 1):
                out.append(
                    (
                        int(day.dep[off + i]),
                        int(day.arr[off + i + 1]),
                        t,
                        int(day.pat_stops[lo + i]),
                        int(day.pat_stops[lo + i + 1]),
                        bool(day.pat_pick[lo + i]),
                        bool(day.pat_drop[lo + i + 1]),
                    )
                )
    out.sort()
    return out


def _oracle(base, connections, fp, src: int, t0: int) -> np.ndarray:
    """Connection Scan (Dibbelt et al.), written independently of RAPTOR.

    Returns the earliest arrival *by a ride* at every stop, with the same rules: a stop's
    minimum transfer time only between two rides there, one footpath between rides.
    """
    big = np.iinfo(np.int64).max
    ride = np.full(base.n_stops, big)
    walk = np.full(base.n_stops, big)
    walk[src] = t0
    boarded: set[int] = set()
    # a trip boarded at an earlier stop stays usable; each connection continues or boards
    first = bisect.bisect_left(connections, (t0,))
    for dep, arr, trip, a, b, pick, drop in connections[first:]:
        if trip not in boarded:
            if not pick:
                continue
            mtt = int(base.min_transfer_s[a])
            ready = min(walk[a], ride[a] + mtt if mtt >= 0 and ride[a] < big else big)
            if ready > dep:
                continue
            boarded.add(trip)
        if drop and arr < ride[b]:
            ride[b] = arr
            for e in range(fp.offset[b], fp.offset[b + 1]):
                if fp.duration[e] >= 0:
                    u = int(fp.to[e])
                    walk[u] = min(walk[u], arr + int(fp.duration[e]))
    return ride


@pytest.mark.slow
def test_earliest_arrival_matches_time_expanded_oracle(poa_base: CityBase) -> None:
    tt = poa_base.timetable
    day = tt.day(DAY)
    fp = poa_base.footpaths(1.3)
    served = np.unique(day.pat_stops)
    rng = random.Random(20190515)
    connections = _connections(day)
    checked = 0
    for _ in range(40):
        src, dst = (int(x) for x in rng.sample(list(served), 2))
        t0 = 12 * 3600 + rng.randrange(0, 3 * 3600)
        oracle = _oracle(tt, connections, fp, src, t0)
        journeys = run_raptor(
            day, tt.n_stops, fp, tt.min_transfer_s, {src: t0}, {dst: 0}, max_rides=12
        )
        expected = int(oracle[dst]) if oracle[dst] < np.iinfo(np.int64).max else None
        got = min((j.arrival for j in journeys), default=None)
        if dst == src:
            continue
        assert got == expected, (src, dst, t0)
        checked += 1
    assert checked >= 30
