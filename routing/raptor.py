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
from numpy.typing import NDArray

from routing.kernels import raptor_rounds
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


@dataclass(frozen=True)
class Footpaths:
    """Stop-to-stop footpaths in CSR form, durations in seconds (−1: forbidden)."""

    offset: NDArray[np.int64]
    to: NDArray[np.int64]
    duration: NDArray[np.int64]


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
    src = np.array(list(sources), np.int64)
    src_t = np.array(list(sources.values()), np.int64)
    tgt = np.array(list(targets), np.int64)
    tgt_c = np.array(list(targets.values()), np.int64)
    ok = np.ones(day.n_trips, np.bool_) if trip_ok is None else trip_ok
    pick, drop = day.pat_pick, day.pat_drop
    if closed_stops is not None and closed_stops.any():
        # a closed stop is served by nobody: no boarding, no alighting (copy-on-write)
        open_at = ~closed_stops[day.pat_stops]
        pick, drop = pick & open_at, drop & open_at
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
