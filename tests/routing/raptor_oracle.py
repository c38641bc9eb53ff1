"""What the RAPTOR oracles share (``test_mcraptor.py``, ``test_arrive_by.py``): small
timetables built from hand-written trips, every ride a brute-force enumeration may take,
and the replay of a journey's legs under the rules."""

from __future__ import annotations

import datetime as dt
import random

import numpy as np
from test_raptor import make_transit

from routing.base import CityBase, make_footpaths
from routing.raptor import FootLeg, Footpaths, RideLeg, TransitJourney
from routing.timetable import BaseTimetable, DayTimetable, build_base_timetable

DAY = dt.date(2019, 5, 15)
Vec = tuple[int, int, int]  # (arrival, rides, walk)
Trips = dict[str, list[tuple[str, int, int]]]  # trip → (stop, arrival, departure) rows
Walks = list[tuple[str, str, float]]  # footpaths (from, to, metres at 1 m/s)
Transfers = list[tuple[str, str, int, int]]  # transfers.txt rows


def build(
    trips: Trips, walk: Walks | tuple[()] = (), transfers: Transfers | tuple[()] = ()
) -> tuple[BaseTimetable, DayTimetable, dict[str, int], Footpaths]:
    """(timetable, its day :data:`DAY`, stop name → index, footpaths at 1 m/s)."""
    base = build_base_timetable(make_transit(trips, list(transfers)))
    day = base.day(DAY)
    idx = {str(s): i for i, s in enumerate(base.stop_ids)}
    fa = np.array([idx[a] for a, _, _ in walk], np.int64)
    fb = np.array([idx[b] for _, b, _ in walk], np.int64)
    fm = np.array([m for _, _, m in walk], float)
    return base, day, idx, make_footpaths(base, fa, fb, fm, 1.0)


def poa_day(
    base: CityBase, seed: int
) -> tuple[BaseTimetable, DayTimetable, Footpaths, np.ndarray, random.Random]:
    """Porto Alegre on :data:`DAY`: (timetable, day, footpaths at 1.3 m/s, the stops some
    pattern serves, a generator seeded with ``seed`` to draw queries)."""
    tt = base.timetable
    day = tt.day(DAY)
    return tt, day, base.footpaths(1.3), np.unique(day.pat_stops), random.Random(seed)


class Rides:
    """Every ride of a day, as an enumeration takes them: no rounds, no pruning."""

    def __init__(self, day: DayTimetable) -> None:
        self.day = day
        self.boardings: dict[int, list[tuple[int, int, int]]] = {}
        for p in range(len(day.pat_stop_off) - 1):
            lo = int(day.pat_stop_off[p])
            for i in range(int(day.pat_stop_off[p + 1]) - lo):
                self.boardings.setdefault(int(day.pat_stops[lo + i]), []).append((p, lo, i))

    def from_stop(self, s: int, ready: int) -> list[tuple[int, int, int]]:
        """(departure at s, arrival, alighting stop) of every ride boarding at s no earlier
        than ``ready``, to every later stop where it lets passengers off."""
        day = self.day
        out = []
        for p, lo, i in self.boardings.get(s, []):
            if not day.pat_pick[lo + i]:
                continue
            n = int(day.pat_stop_off[p + 1]) - lo
            for t in range(int(day.pat_trip_off[p]), int(day.pat_trip_off[p + 1])):
                off = int(day.pat_time_off[p]) + (t - int(day.pat_trip_off[p])) * n
                if int(day.dep[off + i]) < ready:
                    continue
                out.extend(
                    (int(day.dep[off + i]), int(day.arr[off + j]), int(day.pat_stops[lo + j]))
                    for j in range(i + 1, n)
                    if day.pat_drop[lo + j]
                )
        return out


def replay(
    day: DayTimetable,
    fp: Footpaths,
    mtt: np.ndarray,
    j: TransitJourney,
    sources: dict[int, int],
    src_walk: dict[int, int],
    targets: dict[int, int],
    tgt_walk: dict[int, int],
) -> Vec:
    """Follow a journey's legs with the rules, returning its (arrival, rides, walk)."""
    stop, clock, walk, on_foot = (
        j.access_stop,
        sources[j.access_stop],
        src_walk.get(j.access_stop, 0),
        True,
    )
    rides = 0
    for leg in j.legs:
        if isinstance(leg, FootLeg):
            assert leg.from_stop == stop
            assert not on_foot
            row = range(fp.offset[stop], fp.offset[stop + 1])
            d = next(int(fp.duration[i]) for i in row if fp.to[i] == leg.to_stop)
            assert d >= 0
            stop, clock, walk, on_foot = leg.to_stop, clock + d, walk + d, True
            continue
        assert isinstance(leg, RideLeg)
        lo = day.pat_stop_off[leg.pattern]
        n = day.pat_stop_off[leg.pattern + 1] - lo
        off = day.pat_time_off[leg.pattern] + (leg.trip - day.pat_trip_off[leg.pattern]) * n
        assert int(day.pat_stops[lo + leg.board_pos]) == stop
        assert day.pat_pick[lo + leg.board_pos]
        assert day.pat_drop[lo + leg.alight_pos]
        ready = clock if on_foot else clock + int(mtt[stop])
        assert on_foot or mtt[stop] >= 0
        assert int(day.dep[off + leg.board_pos]) >= ready
        clock = int(day.arr[off + leg.alight_pos])
        stop, on_foot = int(day.pat_stops[lo + leg.alight_pos]), False
        rides += 1
    assert not on_foot
    assert stop == j.egress_stop
    return clock + targets[stop], rides, walk + tgt_walk.get(stop, 0)
