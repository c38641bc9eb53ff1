"""RAPTOR (Delling, Pajor, Werneck 2012) over a :class:`~routing.timetable.DayTimetable`.

Many sources to many targets; round k answers "earliest arrival with k rides", so the
rounds give the Pareto set over (arrival, transfers). Labels distinguish arriving by a
ride from arriving on foot, because a stop's minimum transfer time (transfers.txt) applies
only between two rides at the same stop. Footpaths are relaxed once after each round, so
at most one footpath lies between two rides.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit
from numpy.typing import NDArray

from routing.timetable import DayTimetable

INF_T = np.int64(2**62)


@njit(cache=True)
def _raptor(n_stops, max_rounds, src_stops, src_time,  # type: ignore[no-untyped-def]
            pat_stop_off, pat_stops, pat_pick, pat_drop, pat_trip_off, pat_time_off, dep, arr,
            stop_pat_off, stop_pat, stop_pat_pos, fp_off, fp_to, fp_dur, min_transfer,
            tgt_stops, tgt_cost, trip_ok):
    INF = np.int64(2**62)
    K = max_rounds + 1
    ride_arr = np.full((K, n_stops), INF, np.int64)
    walk_arr = np.full((K, n_stops), INF, np.int64)
    ride_pat = np.full((K, n_stops), -1, np.int64)
    ride_trip = np.full((K, n_stops), -1, np.int64)
    ride_bpos = np.full((K, n_stops), -1, np.int64)
    ride_apos = np.full((K, n_stops), -1, np.int64)
    ride_src = np.full((K, n_stops), -1, np.int64)  # 0: boarded after a walk label, 1: ride
    ride_src_round = np.full((K, n_stops), -1, np.int64)
    walk_from = np.full((K, n_stops), -1, np.int64)
    dest_arr = np.full(K, INF, np.int64)
    dest_stop = np.full(K, -1, np.int64)
    best_ride = np.full(n_stops, INF, np.int64)
    best_walk = np.full(n_stops, INF, np.int64)
    best_ride_round = np.full(n_stops, -1, np.int64)
    best_walk_round = np.full(n_stops, -1, np.int64)
    marked = np.zeros(n_stops, np.bool_)
    ready = np.full(n_stops, INF, np.int64)
    ready_src = np.zeros(n_stops, np.int64)
    ready_round = np.zeros(n_stops, np.int64)
    n_pat = pat_stop_off.shape[0] - 1
    queue = np.full(n_pat, -1, np.int64)
    is_tgt = np.full(n_stops, -1, np.int64)
    for i in range(tgt_stops.shape[0]):
        is_tgt[tgt_stops[i]] = i
    dest_best = INF

    for i in range(src_stops.shape[0]):
        s = src_stops[i]
        if src_time[i] < best_walk[s]:
            best_walk[s] = src_time[i]
            best_walk_round[s] = 0
            walk_arr[0, s] = src_time[i]
            marked[s] = True

    for k in range(1, K):
        any_marked = False
        for s in range(n_stops):
            r_ride = INF
            if best_ride[s] < INF and min_transfer[s] >= 0:
                r_ride = best_ride[s] + min_transfer[s]
            if best_walk[s] <= r_ride:
                ready[s] = best_walk[s]
                ready_src[s] = 0
                ready_round[s] = best_walk_round[s]
            else:
                ready[s] = r_ride
                ready_src[s] = 1
                ready_round[s] = best_ride_round[s]
            if marked[s]:
                any_marked = True
                for e in range(stop_pat_off[s], stop_pat_off[s + 1]):
                    p = stop_pat[e]
                    pos = stop_pat_pos[e]
                    if queue[p] < 0 or pos < queue[p]:
                        queue[p] = pos
                marked[s] = False
        if not any_marked:
            break
        improved = np.zeros(n_stops, np.bool_)
        for p in range(n_pat):
            start = queue[p]
            if start < 0:
                continue
            queue[p] = -1
            s_lo = pat_stop_off[p]
            n = pat_stop_off[p + 1] - s_lo
            t_lo = pat_trip_off[p]
            m = pat_trip_off[p + 1] - t_lo
            base = pat_time_off[p]
            j = -1
            bpos = -1
            bsrc = 0
            bround = 0
            for i in range(start, n):
                s = pat_stops[s_lo + i]
                if j >= 0 and pat_drop[s_lo + i]:
                    a = arr[base + j * n + i]
                    if a < best_ride[s] and a < dest_best:
                        best_ride[s] = a
                        best_ride_round[s] = k
                        ride_arr[k, s] = a
                        ride_pat[k, s] = p
                        ride_trip[k, s] = t_lo + j
                        ride_bpos[k, s] = bpos
                        ride_apos[k, s] = i
                        ride_src[k, s] = bsrc
                        ride_src_round[k, s] = bround
                        improved[s] = True
                if pat_pick[s_lo + i] and ready[s] < INF:
                    r = ready[s]
                    if j < 0 or r <= dep[base + j * n + i]:
                        lo = 0
                        hi = m if j < 0 else j + 1
                        while lo < hi:
                            mid = (lo + hi) // 2
                            if dep[base + mid * n + i] < r:
                                lo = mid + 1
                            else:
                                hi = mid
                        while lo < m and not trip_ok[t_lo + lo]:
                            lo += 1
                        if lo < m and (j < 0 or lo < j):
                            j = lo
                            bpos = i
                            bsrc = ready_src[s]
                            bround = ready_round[s]
        for s in range(n_stops):
            if improved[s] and is_tgt[s] >= 0:
                a = ride_arr[k, s] + tgt_cost[is_tgt[s]]
                if a < dest_best:
                    dest_best = a
                    dest_arr[k] = a
                    dest_stop[k] = s
        for s in range(n_stops):
            if not improved[s]:
                continue
            marked[s] = True
            a0 = ride_arr[k, s]
            for e in range(fp_off[s], fp_off[s + 1]):
                d = fp_dur[e]
                if d < 0:
                    continue
                u = fp_to[e]
                a = a0 + d
                if a < best_walk[u] and a < dest_best:
                    best_walk[u] = a
                    best_walk_round[u] = k
                    walk_arr[k, u] = a
                    walk_from[k, u] = s
                    marked[u] = True
    return (dest_arr, dest_stop, ride_arr, walk_arr, ride_pat, ride_trip, ride_bpos, ride_apos,
            ride_src, ride_src_round, walk_from)


@dataclass(frozen=True)
class RideLeg:
    """One ride: day-timetable trip, boarding and alighting positions in its pattern."""

    pattern: int
    trip: int
    board_pos: int
    alight_pos: int


@dataclass(frozen=True)
class FootLeg:
    """A footpath between two stops (indices into the base stop arrays)."""

    from_stop: int
    to_stop: int


@dataclass(frozen=True)
class TransitJourney:
    """A Pareto-optimal journey from an access stop to an egress stop."""

    rides: int
    access_stop: int
    egress_stop: int
    arrival: int  # at the destination, egress included
    legs: tuple[RideLeg | FootLeg, ...]


@dataclass(frozen=True)
class Footpaths:
    """Stop-to-stop footpaths in CSR form, durations in seconds (−1: forbidden)."""

    offset: NDArray[np.int64]
    to: NDArray[np.int64]
    duration: NDArray[np.int64]


def run_raptor(day: DayTimetable, n_stops: int, footpaths: Footpaths,
               min_transfer_s: NDArray[np.int64],
               sources: dict[int, int], targets: dict[int, int], max_rides: int = 6,
               trip_ok: NDArray[np.bool_] | None = None) -> list[TransitJourney]:
    """Earliest-arrival journeys for every number of rides (the Pareto set).

    Parameters
    ----------
    day
        The day's timetable.
    sources
        stop index → time (s from the day's origin) at which the traveller stands there.
    targets
        stop index → seconds from that stop to the destination.
    trip_ok
        Per day-trip flag; False trips (cancelled) are never boarded.

    Returns
    -------
    list of TransitJourney
        At most one per number of rides, strictly earlier as rides increase.
    """
    if not sources or not targets:
        return []
    src = np.array(list(sources), np.int64)
    src_t = np.array(list(sources.values()), np.int64)
    tgt = np.array(list(targets), np.int64)
    tgt_c = np.array(list(targets.values()), np.int64)
    ok = np.ones(day.n_trips, np.bool_) if trip_ok is None else trip_ok
    (dest_arr, dest_stop, _ride_arr, _walk_arr, ride_pat, ride_trip, ride_bpos, ride_apos,
     ride_src, ride_src_round, walk_from) = _raptor(
        n_stops, max_rides, src, src_t, day.pat_stop_off, day.pat_stops, day.pat_pick,
        day.pat_drop, day.pat_trip_off, day.pat_time_off, day.dep, day.arr, day.stop_pat_off,
        day.stop_pat, day.stop_pat_pos, footpaths.offset, footpaths.to, footpaths.duration,
        min_transfer_s, tgt, tgt_c, ok)
    journeys: list[TransitJourney] = []
    for k in range(1, max_rides + 1):
        if dest_arr[k] >= INF_T:
            continue
        stop, rnd, ride = int(dest_stop[k]), k, True
        legs: list[RideLeg | FootLeg] = []
        while True:
            if ride:
                p = int(ride_pat[rnd, stop])
                leg = RideLeg(p, int(ride_trip[rnd, stop]), int(ride_bpos[rnd, stop]),
                              int(ride_apos[rnd, stop]))
                legs.append(leg)
                board = int(day.pat_stops[day.pat_stop_off[p] + leg.board_pos])
                ride = bool(ride_src[rnd, stop] == 1)
                rnd = int(ride_src_round[rnd, stop])
                stop = board
            else:
                origin = int(walk_from[rnd, stop])
                if origin < 0:
                    break
                legs.append(FootLeg(origin, stop))
                stop, ride = origin, True
        legs.reverse()
        journeys.append(TransitJourney(rides=k, access_stop=stop, egress_stop=int(dest_stop[k]),
                                       arrival=int(dest_arr[k]), legs=tuple(legs)))
    return journeys
