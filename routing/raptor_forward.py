"""Earliest-arrival RAPTOR (Delling, Pajor, Werneck 2012) over a
:class:`~routing.timetable.DayTimetable`, and McRAPTOR; the journey model they return.

Many sources to many targets; round k answers "earliest arrival with k rides", so the
rounds give the Pareto set over (arrival, transfers). Labels distinguish arriving by a
ride from arriving on foot, because a stop's minimum transfer time (transfers.txt) applies
only between two rides at the same stop. Footpaths are relaxed once after each round, so
at most one footpath lies between two rides.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from routing.raptor_kernels import (
    L_APOS,
    L_BPOS,
    L_KIND,
    L_PARENT,
    L_PAT,
    L_STOP,
    L_TRIP,
    mc_raptor_rounds,
    raptor_rounds,
)
from routing.timetable import DayTimetable

INF_T = np.int64(2**62)


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
    walk_s: int = 0  # access + footpaths + egress walking (McRAPTOR only; 0 from run_raptor)
    # latest departure from the origin (first boarding minus its access): set by the
    # arrive-by and range searches, None from the forward ones
    departure: int | None = None


@dataclass(frozen=True)
class Footpaths:
    """Stop-to-stop footpaths in CSR form, durations in seconds (−1: forbidden)."""

    offset: NDArray[np.int64]
    to: NDArray[np.int64]
    duration: NDArray[np.int64]


def _live_service(
    day: DayTimetable,
    trip_ok: NDArray[np.bool_] | None,
    closed_stops: NDArray[np.bool_] | None,
) -> tuple[NDArray[np.bool_], NDArray[np.bool_], NDArray[np.bool_]]:
    """(boardable trips, pickup flags, drop-off flags) under live cancellations and closures.

    A closed stop is served by nobody: no boarding, no alighting (copy-on-write).
    """
    ok = np.ones(day.n_trips, np.bool_) if trip_ok is None else trip_ok
    pick, drop = day.pat_pick, day.pat_drop
    if closed_stops is not None and closed_stops.any():
        open_at = ~closed_stops[day.pat_stops]
        pick, drop = pick & open_at, drop & open_at
    return ok, pick, drop


_A = NDArray[Any]
# the 15 timetable and footpath arrays, fixed in number so that mypy checks the kernel calls
_NetworkArrays = tuple[_A, _A, _A, _A, _A, _A, _A, _A, _A, _A, _A, _A, _A, _A, _A]


def _as_arrays(stops: dict[int, int]) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """(stop indices, their seconds) of a sources or targets mapping, as the kernels take."""
    return np.array(list(stops), np.int64), np.array(list(stops.values()), np.int64)


def _network(
    day: DayTimetable,
    pick: NDArray[np.bool_],
    drop: NDArray[np.bool_],
    footpaths: Footpaths,
    min_transfer_s: NDArray[np.int64],
) -> _NetworkArrays:
    """The timetable and footpath arrays, in the order both RAPTOR kernels take them."""
    return (
        day.pat_stop_off,
        day.pat_stops,
        pick,
        drop,
        day.pat_trip_off,
        day.pat_time_off,
        day.dep,
        day.arr,
        day.stop_pat_off,
        day.stop_pat,
        day.stop_pat_pos,
        footpaths.offset,
        footpaths.to,
        footpaths.duration,
        min_transfer_s,
    )


def run_raptor(
    day: DayTimetable,
    n_stops: int,
    footpaths: Footpaths,
    min_transfer_s: NDArray[np.int64],
    sources: dict[int, int],
    targets: dict[int, int],
    max_rides: int = 6,
    trip_ok: NDArray[np.bool_] | None = None,
    closed_stops: NDArray[np.bool_] | None = None,
) -> list[TransitJourney]:
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
    closed_stops
        Per stop flag; True stops are neither boarding nor alighting points.

    Returns
    -------
    list of TransitJourney
        At most one per number of rides, strictly earlier as rides increase.
    """
    if not sources or not targets:
        return []
    src, src_t = _as_arrays(sources)
    tgt, tgt_c = _as_arrays(targets)
    ok, pick, drop = _live_service(day, trip_ok, closed_stops)
    (
        dest_arr,
        dest_stop,
        _ride_arr,
        _walk_arr,
        ride_pat,
        ride_trip,
        ride_bpos,
        ride_apos,
        ride_src,
        ride_src_round,
        walk_from,
    ) = raptor_rounds(
        n_stops,
        max_rides,
        src,
        src_t,
        *_network(day, pick, drop, footpaths, min_transfer_s),
        tgt,
        tgt_c,
        ok,
    )
    journeys: list[TransitJourney] = []
    for k in range(1, max_rides + 1):
        if dest_arr[k] >= INF_T:
            continue
        stop, rnd, ride = int(dest_stop[k]), k, True
        legs: list[RideLeg | FootLeg] = []
        while True:
            if ride:
                p = int(ride_pat[rnd, stop])
                leg = RideLeg(
                    p,
                    int(ride_trip[rnd, stop]),
                    int(ride_bpos[rnd, stop]),
                    int(ride_apos[rnd, stop]),
                )
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
        journeys.append(
            TransitJourney(
                rides=k,
                access_stop=stop,
                egress_stop=int(dest_stop[k]),
                arrival=int(dest_arr[k]),
                legs=tuple(legs),
            )
        )
    return journeys


MC_BAG_CAPACITY = 16


@dataclass(frozen=True)
class McStats:
    """What the last :func:`run_mc_raptor` call saw (labels created, bag overflows)."""

    labels: int
    overflows: int


LAST_MC_STATS = [McStats(0, 0)]


def run_mc_raptor(
    day: DayTimetable,
    n_stops: int,
    footpaths: Footpaths,
    min_transfer_s: NDArray[np.int64],
    sources: dict[int, int],
    targets: dict[int, int],
    source_walk: dict[int, int] | None = None,
    target_walk: dict[int, int] | None = None,
    max_rides: int = 6,
    trip_ok: NDArray[np.bool_] | None = None,
    closed_stops: NDArray[np.bool_] | None = None,
    bag_capacity: int = MC_BAG_CAPACITY,
) -> list[TransitJourney]:
    """McRAPTOR: the exact Pareto set over (arrival, rides, walking seconds).

    Same rules and parameters as :func:`run_raptor`, plus the walking at each end:
    ``source_walk`` (stop → seconds walked to reach it, default 0) and ``target_walk``
    (stop → seconds walked from it to the destination, default 0). Walking is that access
    and egress plus every footpath between rides. Each stop keeps at most
    ``bag_capacity`` labels per kind; on overflow the earliest arrivals are kept and the
    loss is counted in ``LAST_MC_STATS[0].overflows``.

    Returns
    -------
    list of TransitJourney
        One per Pareto-optimal (arrival, rides, walk_s), by rides then arrival.
    """
    if not sources or not targets:
        LAST_MC_STATS[0] = McStats(0, 0)
        return []
    src, src_t = _as_arrays(sources)
    sw = source_walk or {}
    src_w = np.array([sw.get(s, 0) for s in sources], np.int64)
    tgt, tgt_c = _as_arrays(targets)
    tw = target_walk or {}
    tgt_w = np.array([tw.get(s, 0) for s in targets], np.int64)
    ok, pick, drop = _live_service(day, trip_ok, closed_stops)
    pool, n_pool, dest, n_dest, overflows = mc_raptor_rounds(
        n_stops,
        max_rides,
        src,
        src_t,
        src_w,
        *_network(day, pick, drop, footpaths, min_transfer_s),
        tgt,
        tgt_c,
        tgt_w,
        ok,
        bag_capacity,
    )
    LAST_MC_STATS[0] = McStats(int(n_pool), int(overflows))
    # first row of every distinct (rides, arrival, walk), then only the non-dominated ones
    rows: dict[tuple[int, int, int], int] = {}
    for i in range(int(n_dest)):
        rows.setdefault((int(dest[i, 0]), int(dest[i, 1]), int(dest[i, 2])), i)
    found = sorted(rows)
    journeys: list[TransitJourney] = []
    for rides, arrival, walk in found:
        if any(
            r <= rides and a <= arrival and w <= walk and (r, a, w) != (rides, arrival, walk)
            for r, a, w in found
        ):
            continue
        row = dest[rows[(rides, arrival, walk)]]
        lab = int(row[3])
        legs: list[RideLeg | FootLeg] = []
        while True:
            label = pool[lab]
            parent = int(label[L_PARENT])
            if label[L_KIND] == 1:
                legs.append(
                    RideLeg(
                        int(label[L_PAT]),
                        int(label[L_TRIP]),
                        int(label[L_BPOS]),
                        int(label[L_APOS]),
                    )
                )
            elif parent >= 0:
                legs.append(FootLeg(int(pool[parent, L_STOP]), int(label[L_STOP])))
            else:
                break
            lab = parent
        legs.reverse()
        journeys.append(
            TransitJourney(
                rides=rides,
                access_stop=int(pool[lab, L_STOP]),
                egress_stop=int(row[4]),
                arrival=arrival,
                legs=tuple(legs),
                walk_s=walk,
            )
        )
    return journeys
