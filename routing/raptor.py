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

from routing.kernels import (
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
    src = np.array(list(sources), np.int64)
    src_t = np.array(list(sources.values()), np.int64)
    sw = source_walk or {}
    src_w = np.array([sw.get(s, 0) for s in sources], np.int64)
    tgt = np.array(list(targets), np.int64)
    tgt_c = np.array(list(targets.values()), np.int64)
    tw = target_walk or {}
    tgt_w = np.array([tw.get(s, 0) for s in targets], np.int64)
    ok, pick, drop = _live_service(day, trip_ok, closed_stops)
    pool, n_pool, dest, n_dest, overflows = mc_raptor_rounds(
        n_stops,
        max_rides,
        src,
        src_t,
        src_w,
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
    t = earliest_s
    while t <= latest_s and (limit is None or len(out) < limit):
        starts = {s: t + secs for s, secs in sources.items()}
        forward = run_raptor(
            day,
            n_stops,
            footpaths,
            min_transfer_s,
            starts,
            targets,
            max_rides,
            trip_ok,
            closed_stops,
        )
        if not forward:
            break
        arrival = min(j.arrival for j in forward)
        back = run_raptor_arrive_by(
            day,
            n_stops,
            footpaths,
            min_transfer_s,
            sources,
            targets,
            arrival,
            max_rides,
            trip_ok,
            closed_stops,
        )
        # departures strictly increase with rides: the last is the latest, with the
        # fewest rides that reach it
        best = back[-1]
        departure = int(best.departure if best.departure is not None else t)
        if departure > latest_s:
            break
        out.append(best)
        t = departure + 1
    return out
