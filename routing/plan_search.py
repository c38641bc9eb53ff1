"""Planner stage 3: the transit search (RAPTOR, or McRAPTOR for the walking Pareto set)
over the day's live timetable, forwards or arriving by a time.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
from numpy.typing import NDArray

from routing.chains import ChainResult
from routing.gtfs_network import MAX_RIDES, StopQuery, TransitNetwork, day_timetable, local_to_unix
from routing.plan_access import Access, AccessOption, PlanContext
from routing.raptor import (
    Footpaths,
    TransitJourney,
    run_mc_raptor,
    run_mc_raptor_arrive_by,
    run_raptor,
    run_raptor_arrive_by,
)
from routing.timetable import BaseTimetable, DayTimetable
from routing.transit_streets import street_effects


def _trip_mask(ctx: PlanContext, day: DayTimetable) -> np.ndarray | None:
    cancelled = ctx.overlay.cancelled_trips
    if not cancelled:
        return None
    return _cancelled_mask(ctx.base.timetable, day, cancelled)


def _cancelled_mask(
    tt: BaseTimetable, day: DayTimetable, cancelled: frozenset[str]
) -> NDArray[np.bool_]:
    """Per day-trip "may board" flags, kept on the day object for the last few cancelled sets.

    Not an ``lru_cache`` keyed by the day: live days come and go with every congestion map
    (buses in traffic), and a cache holding days kept 32 of them (≈5 MB each) alive.
    """
    masks: dict[frozenset[str], NDArray[np.bool_]] | None = day.__dict__.get("_cancelled_masks")
    if masks is None:
        masks = {}
        object.__setattr__(day, "_cancelled_masks", masks)
    mask = masks.get(cancelled)
    if mask is None:
        ids = tt.trip_ids[day.trip_base].astype(str)
        mask = ~np.isin(ids, list(cancelled))
        mask.setflags(write=False)
        if len(masks) >= 4:
            masks.clear()
        masks[cancelled] = mask
    return mask


def _closed_mask(ctx: PlanContext) -> np.ndarray | None:
    closed = ctx.overlay.closed_stops
    if not closed:
        return None
    return np.isin(ctx.base.timetable.stop_ids.astype(str), list(closed))


SearchSpace = tuple[DayTimetable, int, Footpaths, NDArray[np.int64]]
"""The leading arguments of every :mod:`routing.raptor` search: day, stop count,
footpaths, minimum transfer seconds per stop."""


def _search_space(day: DayTimetable, tt: BaseTimetable, footpaths: Footpaths) -> SearchSpace:
    return day, tt.n_stops, footpaths, tt.min_transfer_s


def _planner_space(ctx: PlanContext, day: DayTimetable) -> SearchSpace:
    return _search_space(day, ctx.base.timetable, ctx.base.footpaths(ctx.request.walk_speed_m_s))


def _live_limits(
    ctx: PlanContext, day: DayTimetable, closed: NDArray[np.bool_] | None
) -> tuple[int, NDArray[np.bool_] | None, NDArray[np.bool_] | None]:
    """The trailing arguments of every search: ``(max_rides, trip_ok, closed_stops)``."""
    return ctx.request.max_rides, _trip_mask(ctx, day), closed


def transit_search(
    ctx: PlanContext,
    access: AccessOption,
    egress: ChainResult,
    depart_s: int,
    day: DayTimetable,
    walk_budget_s: float = np.inf,
    multi_criteria: bool = False,
) -> list[TransitJourney]:
    """Stage 3: RAPTOR from the stops an access option reaches to the egress stops.

    ``walk_budget_s`` caps the walk at each end (walk access only), which is how the
    pipeline finds the options that trade a later arrival for less walking. With
    ``multi_criteria`` and pure-walk access, McRAPTOR gives instead the exact Pareto set
    over (arrival, rides, walking: access, footpaths and egress) in one search.
    """
    closed = _closed_mask(ctx)
    reach = access.stop_cost
    out = egress.final_cost
    open_stop = np.ones(len(reach), bool) if closed is None else ~closed
    in_budget = reach <= walk_budget_s if access.label == "walk" else np.ones(len(reach), bool)
    usable_in = np.isfinite(reach) & open_stop & in_budget
    usable_out = np.isfinite(out) & open_stop & (out <= walk_budget_s)
    access_s = {int(s): int(np.ceil(reach[s])) for s in np.flatnonzero(usable_in)}
    sources = {s: depart_s + secs for s, secs in access_s.items()}
    targets = {int(s): int(np.ceil(out[s])) for s in np.flatnonzero(usable_out)}
    space, limits = _planner_space(ctx, day), _live_limits(ctx, day, closed)
    if multi_criteria and access.label == "walk":
        # walked: the access seconds to each stop; the egress is all walking
        return run_mc_raptor(*space, sources, targets, access_s, targets, *limits)
    return run_raptor(*space, sources, targets, *limits)


def transit_search_arrive_by(
    ctx: PlanContext,
    access: AccessOption,
    egress: ChainResult,
    arrive_s: int,
    day: DayTimetable,
    multi_criteria: bool = False,
) -> list[TransitJourney]:
    """Stage 3 for arrive-by: the latest departures reaching the destination by
    ``arrive_s`` (RAPTOR on the time-reversed timetable, :mod:`routing.raptor`).

    With ``multi_criteria`` and pure-walk access, the exact Pareto set over (departure,
    rides, walking) instead, as :func:`transit_search` does forwards.
    """
    closed = _closed_mask(ctx)
    reach = access.stop_cost
    out = egress.final_cost
    open_stop = np.ones(len(reach), bool) if closed is None else ~closed
    access_s = {
        int(s): int(np.ceil(reach[s])) for s in np.flatnonzero(np.isfinite(reach) & open_stop)
    }
    egress_s = {int(s): int(np.ceil(out[s])) for s in np.flatnonzero(np.isfinite(out) & open_stop)}
    space, limits = _planner_space(ctx, day), _live_limits(ctx, day, closed)
    if multi_criteria and access.label == "walk":
        # walked: the access and egress seconds themselves
        return run_mc_raptor_arrive_by(
            *space, access_s, egress_s, arrive_s, access_s, egress_s, *limits
        )
    return run_raptor_arrive_by(*space, access_s, egress_s, arrive_s, *limits)


def live_day(ctx: PlanContext, date: dt.date) -> DayTimetable:
    """The day's timetable with the overlay's trip delays and skipped stops applied
    (cached per delay and skip set)."""
    tt = ctx.base.timetable
    delays = sorted(
        (index, int(seconds))
        for trip_id, seconds in ctx.overlay.trip_delays.items()
        if (index := tt.trip_index(trip_id)) is not None and seconds
    )
    skips = []
    for trip_id, stop_ids in ctx.overlay.skipped_stops.items():
        index = tt.trip_index(trip_id)
        if index is None:
            continue
        p = int(tt.trip_pattern[index])
        stops = tt.stop_ids[tt.pat_stops[tt.pat_stop_off[p] : tt.pat_stop_off[p + 1]]]
        positions = tuple(
            int(i) for i in np.flatnonzero(np.isin(stops.astype(str), list(stop_ids)))
        )
        if positions:
            skips.append((index, positions))
    street = street_effects(ctx.base, ctx.overlay)  # once per overlay version, not per plan
    return tt.day(date, tuple(delays), tuple(sorted(skips)), street)


def stop_transit_search(
    network: TransitNetwork,
    query: StopQuery,
    access: Access,
    egress: Access,
    max_rides: int = MAX_RIDES,
) -> tuple[list[TransitJourney], DayTimetable | None]:
    """RAPTOR from the access stops (at depart + walk) to the egress stops; arriving by
    the query's time, the latest departures (:func:`routing.raptor.run_raptor_arrive_by`)."""
    day = day_timetable(network, query.depart)
    if day is None:
        return [], None
    t0 = local_to_unix(network, query.depart) - day.origin_unix
    space = _search_space(day, network.timetable, network.footpaths)
    if query.arrive_by:
        journeys = run_raptor_arrive_by(
            *space,
            access.seconds,
            egress.seconds,
            t0,
            max_rides,
        )
        return journeys, day
    sources = {s: t0 + c for s, c in access.seconds.items()}
    journeys = run_raptor(
        *space,
        sources,
        egress.seconds,
        max_rides,
    )
    return journeys, day
