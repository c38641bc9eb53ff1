"""Arrive-by and range searches: RAPTOR and McRAPTOR on the time-reversed timetable.

:func:`reverse_day` turns a day's timetable around (time runs backwards, patterns are read
last stop first), so the forward kernels of :mod:`routing.raptor_forward` find the latest
departures arriving by a time; :func:`run_raptor_range` alternates forward and reversed
searches to find every Pareto-optimal departure in a window.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from routing.raptor_forward import (
    LAST_MC_STATS,
    MC_BAG_CAPACITY,
    FootLeg,
    Footpaths,
    McStats,
    RideLeg,
    TransitJourney,
    run_mc_raptor,
    run_raptor,
)
from routing.timetable import DayTimetable

# --- arrive-by: the same searches on the time-reversed timetable ----------------------------


@dataclass(frozen=True, eq=False)
class ReversedDay:
    """A day's timetable with time running backwards, for latest-departure searches.

    Each pattern's stops are listed last to first, every time ``t`` becomes ``-t``,
    departures and arrivals swap, pickup and drop-off swap, and trips are listed in the
    opposite order (a FIFO sub-pattern stays FIFO). Pattern indices are unchanged; trip
    ``r`` of ``day`` is trip ``trip_of[r]`` of the original, and position ``i`` of a
    pattern with ``n`` stops is position ``n - 1 - i`` of the original.
    """

    day: DayTimetable
    trip_of: NDArray[np.int64]


_REVERSED: dict[int, tuple[DayTimetable, ReversedDay]] = {}
_REVERSED_FP: dict[int, tuple[Footpaths, Footpaths]] = {}
_CACHE_SIZE = 4  # each entry keeps a day (≈5 MB) alive; live days change with congestion


def _remember(cache: dict[int, tuple[object, object]], key: object, value: object) -> None:
    if len(cache) >= _CACHE_SIZE:
        cache.pop(next(iter(cache)))
    cache[id(key)] = (key, value)


def reverse_day(day: DayTimetable) -> ReversedDay:
    """The time-reversed view of ``day`` (cached per day object)."""
    hit = _REVERSED.get(id(day))
    if hit is not None and hit[0] is day:
        return hit[1]
    n_pat = len(day.pat_stop_off) - 1
    stops = np.empty_like(day.pat_stops)
    pick = np.empty_like(day.pat_pick)
    drop = np.empty_like(day.pat_drop)
    dep = np.empty_like(day.dep)
    arr = np.empty_like(day.arr)
    trip_of = np.empty(day.n_trips, np.int64)
    for p in range(n_pat):
        s_lo, s_hi = int(day.pat_stop_off[p]), int(day.pat_stop_off[p + 1])
        t_lo, t_hi = int(day.pat_trip_off[p]), int(day.pat_trip_off[p + 1])
        n, m = s_hi - s_lo, t_hi - t_lo
        stops[s_lo:s_hi] = day.pat_stops[s_lo:s_hi][::-1]
        pick[s_lo:s_hi] = day.pat_drop[s_lo:s_hi][::-1]
        drop[s_lo:s_hi] = day.pat_pick[s_lo:s_hi][::-1]
        lo = int(day.pat_time_off[p])
        hi = lo + n * m
        dep[lo:hi] = -day.arr[lo:hi].reshape(m, n)[::-1, ::-1].ravel()
        arr[lo:hi] = -day.dep[lo:hi].reshape(m, n)[::-1, ::-1].ravel()
        trip_of[t_lo:t_hi] = np.arange(t_hi - 1, t_lo - 1, -1)
    n_stops = len(day.stop_pat_off) - 1
    flat_pat = np.repeat(np.arange(n_pat), np.diff(day.pat_stop_off))
    flat_pos = np.arange(len(stops)) - np.repeat(day.pat_stop_off[:-1], np.diff(day.pat_stop_off))
    by_stop = np.lexsort((flat_pos, flat_pat, stops))
    stop_pat_off = np.zeros(n_stops + 1, np.int64)
    np.add.at(stop_pat_off, stops + 1, 1)
    reversed_day = ReversedDay(
        day=DayTimetable(
            date=day.date,
            origin_unix=day.origin_unix,
            pat_stop_off=day.pat_stop_off,
            pat_stops=stops,
            pat_pick=pick,
            pat_drop=drop,
            pat_trip_off=day.pat_trip_off,
            pat_time_off=day.pat_time_off,
            trip_base=day.trip_base[trip_of],
            trip_shift=day.trip_shift[trip_of],
            arr=arr,
            dep=dep,
            stop_pat_off=np.cumsum(stop_pat_off),
            stop_pat=flat_pat[by_stop].astype(np.int64),
            stop_pat_pos=flat_pos[by_stop].astype(np.int64),
        ),
        trip_of=trip_of,
    )
    _remember(_REVERSED, day, reversed_day)  # type: ignore[arg-type]
    return reversed_day


def reverse_footpaths(footpaths: Footpaths) -> Footpaths:
    """The footpaths with every direction flipped (``a → b`` becomes ``b → a``; cached)."""
    hit = _REVERSED_FP.get(id(footpaths))
    if hit is not None and hit[0] is footpaths:
        return hit[1]
    n = len(footpaths.offset) - 1
    frm = np.repeat(np.arange(n, dtype=np.int64), np.diff(footpaths.offset))
    order = np.lexsort((frm, footpaths.to))
    offset = np.zeros(n + 1, np.int64)
    np.add.at(offset, footpaths.to + 1, 1)
    flipped = Footpaths(np.cumsum(offset), frm[order], footpaths.duration[order])
    _remember(_REVERSED_FP, footpaths, flipped)  # type: ignore[arg-type]
    return flipped


def _unreverse(
    day: DayTimetable, rev: ReversedDay, journey: TransitJourney, egress: dict[int, int]
) -> TransitJourney:
    """A journey found on the reversed timetable, told forwards in ``day``'s terms."""
    legs: list[RideLeg | FootLeg] = []
    for leg in reversed(journey.legs):
        if isinstance(leg, FootLeg):
            legs.append(FootLeg(leg.to_stop, leg.from_stop))
            continue
        n = int(day.pat_stop_off[leg.pattern + 1] - day.pat_stop_off[leg.pattern])
        legs.append(
            RideLeg(
                leg.pattern,
                int(rev.trip_of[leg.trip]),
                n - 1 - leg.alight_pos,
                n - 1 - leg.board_pos,
            )
        )
    last = legs[-1]
    assert isinstance(last, RideLeg)
    n = int(day.pat_stop_off[last.pattern + 1] - day.pat_stop_off[last.pattern])
    row = (
        int(day.pat_time_off[last.pattern]) + (last.trip - int(day.pat_trip_off[last.pattern])) * n
    )
    egress_stop = journey.access_stop
    return TransitJourney(
        rides=journey.rides,
        access_stop=journey.egress_stop,
        egress_stop=egress_stop,
        arrival=int(day.arr[row + last.alight_pos]) + egress[egress_stop],
        legs=tuple(legs),
        walk_s=journey.walk_s,
        departure=-journey.arrival,
    )


def _reversed_inputs(
    day: DayTimetable,
    footpaths: Footpaths,
    targets: dict[int, int],
    arrive_s: int,
    trip_ok: NDArray[np.bool_] | None,
) -> tuple[ReversedDay, Footpaths, dict[int, int], NDArray[np.bool_] | None]:
    rev = reverse_day(day)
    # in reversed time the traveller "starts" at each egress stop at -(arrive_s - egress)
    starts = {s: secs - arrive_s for s, secs in targets.items()}
    ok = None if trip_ok is None else trip_ok[rev.trip_of]
    return rev, reverse_footpaths(footpaths), starts, ok


def run_raptor_arrive_by(
    day: DayTimetable,
    n_stops: int,
    footpaths: Footpaths,
    min_transfer_s: NDArray[np.int64],
    sources: dict[int, int],
    targets: dict[int, int],
    arrive_s: int,
    max_rides: int = 6,
    trip_ok: NDArray[np.bool_] | None = None,
    closed_stops: NDArray[np.bool_] | None = None,
) -> list[TransitJourney]:
    """Latest-departure journeys arriving by ``arrive_s``, for every number of rides.

    RAPTOR on the time-reversed timetable (:func:`reverse_day`): the same rules as
    :func:`run_raptor` (minimum transfer times between two rides at a stop, at most one
    footpath between rides, cancelled trips and closed stops).

    Parameters
    ----------
    sources
        stop index → seconds from the origin to that stop (access).
    targets
        stop index → seconds from that stop to the destination (egress).
    arrive_s
        The time to arrive by (s from the day's origin).

    Returns
    -------
    list of TransitJourney
        At most one per number of rides, strictly later ``departure`` (first boarding
        minus its access) as rides increase; each ``arrival`` is at or before ``arrive_s``.
    """
    if not sources or not targets:
        return []
    rev, fp, starts, ok = _reversed_inputs(day, footpaths, targets, arrive_s, trip_ok)
    found = run_raptor(
        rev.day, n_stops, fp, min_transfer_s, starts, sources, max_rides, ok, closed_stops
    )
    return [_unreverse(day, rev, j, targets) for j in found]


def run_mc_raptor_arrive_by(
    day: DayTimetable,
    n_stops: int,
    footpaths: Footpaths,
    min_transfer_s: NDArray[np.int64],
    sources: dict[int, int],
    targets: dict[int, int],
    arrive_s: int,
    source_walk: dict[int, int] | None = None,
    target_walk: dict[int, int] | None = None,
    max_rides: int = 6,
    trip_ok: NDArray[np.bool_] | None = None,
    closed_stops: NDArray[np.bool_] | None = None,
    bag_capacity: int = MC_BAG_CAPACITY,
) -> list[TransitJourney]:
    """McRAPTOR arriving by ``arrive_s``: the exact Pareto set over (departure, latest
    first; rides; walking seconds), on the time-reversed timetable.

    Parameters as :func:`run_raptor_arrive_by`, plus the walking at each end as in
    :func:`run_mc_raptor` (``source_walk``: walked to reach each access stop;
    ``target_walk``: walked from each egress stop).
    """
    if not sources or not targets:
        LAST_MC_STATS[0] = McStats(0, 0)
        return []
    rev, fp, starts, ok = _reversed_inputs(day, footpaths, targets, arrive_s, trip_ok)
    found = run_mc_raptor(
        rev.day,
        n_stops,
        fp,
        min_transfer_s,
        starts,
        sources,
        source_walk=target_walk,
        target_walk=source_walk,
        max_rides=max_rides,
        trip_ok=ok,
        closed_stops=closed_stops,
        bag_capacity=bag_capacity,
    )
    return [_unreverse(day, rev, j, targets) for j in found]


# --- range: every Pareto-optimal departure in a window ----------------------------------------


def run_raptor_range(
    day: DayTimetable,
    n_stops: int,
    footpaths: Footpaths,
    min_transfer_s: NDArray[np.int64],
    sources: dict[int, int],
    targets: dict[int, int],
    earliest_s: int,
    latest_s: int,
    max_rides: int = 6,
    trip_ok: NDArray[np.bool_] | None = None,
    closed_stops: NDArray[np.bool_] | None = None,
    limit: int | None = None,
) -> list[TransitJourney]:
    """Every Pareto-optimal departure in ``[earliest_s, latest_s]``: the profile.

    A journey is kept when no other leaves at the same time or later and arrives at the
    same time or earlier; of equal (departure, arrival) the fewest rides is kept. Found by
    alternating exact searches, two per journey: the earliest arrival ``a`` from ``t``
    (:func:`run_raptor`), then the latest departure ``d`` arriving by ``a``
    (:func:`run_raptor_arrive_by`, ``d ≥ t``); ``(d, a)`` is Pareto-optimal and the next
    one leaves after ``d``. The cost is proportional to the answers, not to the
    window (rRAPTOR's one run per departure event would scan every event in it).

    Parameters
    ----------
    sources, targets
        As in :func:`run_raptor_arrive_by` (access and egress seconds).
    earliest_s, latest_s
        The window of departures from the origin (s from the day's origin).
    limit
        Stop after this many journeys (the earliest departures first).

    Returns
    -------
    list of TransitJourney
        By departure; departures and arrivals both strictly increasing.
    """
    out: list[TransitJourney] = []
    if not sources or not targets:
        return out
    network = (day, n_stops, footpaths, min_transfer_s)
    live = (max_rides, trip_ok, closed_stops)
    t = earliest_s
    while t <= latest_s and (limit is None or len(out) < limit):
        starts = {s: t + secs for s, secs in sources.items()}
        forward = run_raptor(*network, starts, targets, *live)
        if not forward:
            break
        arrival = min(j.arrival for j in forward)
        back = run_raptor_arrive_by(*network, sources, targets, arrival, *live)
        # departures strictly increase with rides: the last is the latest, with the
        # fewest rides that reach it
        best = back[-1]
        departure = int(best.departure if best.departure is not None else t)
        if departure > latest_s:
            break
        out.append(best)
        t = departure + 1
    return out
