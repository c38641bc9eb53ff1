"""A plan request as a pipeline of named stages.

``snap_endpoints`` → ``access_options`` / ``egress_walk`` (street chains per mode) →
``transit_search`` (RAPTOR per access option) → ``direct_options`` (street-only trips) →
``assemble`` (legs with names, times, geometry) → ``rank``. Each stage is a plain function
in its own module (:mod:`routing.plan_access`, :mod:`routing.plan_search`,
:mod:`routing.plan_assemble`, :mod:`routing.plan_rank`); this module runs them
(:func:`plan_trip`, :func:`solve`, arriving by a time, the next departures, paging) and
re-exports them. Every stage reads one :class:`~routing.overlay.LiveOverlay`, taken once per
request. :func:`answer` runs the same stages over the GTFS-only network of
``correspondance plan`` (:mod:`routing.gtfs_network`). Both return the one itinerary model
(:mod:`routing.itinerary`).
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from routing.base import CityBase
from routing.chains import ChainResult
from routing.gtfs_network import MAX_RIDES, SUPPORTED_MODES, StopPoint, StopQuery, TransitNetwork
from routing.itinerary import Itinerary, Leg, Place
from routing.modes import egress_walk
from routing.overlay import LiveOverlay
from routing.plan_access import (
    ALL_MODES,
    DEFAULT_MODES,
    STREET_MODES,
    AccessOption,
    Endpoints,
    PlanContext,
    PlanRequest,
    access_options,
    access_times,
    direct_walk_seconds,
    snap_endpoints,
)
from routing.plan_assemble import (
    _at,
    _chain_places,
    _ride_leg,
    _shifted,
    _stop_place,
    assemble_stop_journey,
    assemble_transit,
    chain_itinerary,
    direct_options,
    segments_to_legs,
    walk_itinerary,
)
from routing.plan_rank import (
    filter_far_later,
    filter_pointless_short_rides,
    filter_same_rides,
    filter_slow_walk_savers,
    generalized_cost,
    pointless_short_ride,
    rank,
    reboards_a_route_after_walking,
    rides_of,
)
from routing.plan_search import (
    live_day,
    stop_transit_search,
    transit_search,
    transit_search_arrive_by,
)
from routing.timetable import DayTimetable

__all__ = [
    "ALL_MODES",
    "DEFAULT_MODES",
    "STREET_MODES",
    "AccessOption",
    "Endpoints",
    "Itinerary",
    "Leg",
    "Place",
    "PlanContext",
    "PlanRequest",
    "_chain_places",
    "_ride_leg",
    "_stop_place",
    "access_options",
    "answer",
    "assemble_transit",
    "base_overlay",
    "chain_itinerary",
    "direct_options",
    "filter_far_later",
    "filter_pointless_short_rides",
    "filter_same_rides",
    "filter_slow_walk_savers",
    "generalized_cost",
    "live_day",
    "page_times",
    "plan_trip",
    "pointless_short_ride",
    "rank",
    "reboards_a_route_after_walking",
    "rides_of",
    "segments_to_legs",
    "snap_endpoints",
    "solve",
    "transit_search",
    "transit_search_arrive_by",
]


def plan_trip(
    base: CityBase, request: PlanRequest, overlay: LiveOverlay | None = None
) -> list[Itinerary]:
    """Door-to-door itineraries over the live overlay, best first.

    Raises
    ------
    OutsideCityError, NoStreetNearbyError, NoServiceError
    """
    snap_endpoints(base, request)
    live = overlay if overlay is not None else base_overlay(base)
    ctx = PlanContext(base, request, live)
    start = request.depart.astimezone(ctx.tz)
    accesses = access_options(ctx) if "transit" in request.modes else []
    directs = direct_options(ctx, start)
    if request.arrive_by:  # street-only trips leave just in time
        directs = [_arriving_at(it, start) for it in directs]
    return solve(ctx, accesses, directs)


def solve(
    ctx: PlanContext, accesses: list[AccessOption], directs: list[Itinerary]
) -> list[Itinerary]:
    """Stages 3, 5 and 6 for given access options and street-only options."""
    options = list(directs)
    if accesses and ctx.request.arrive_by:
        return _solve_arrive_by(ctx, accesses, options)
    if accesses:
        start = ctx.request.depart.astimezone(ctx.tz)
        day = live_day(ctx, start.date())
        depart_s = int(ctx.request.depart.timestamp()) - day.origin_unix
        egress = egress_walk(ctx.modes)
        for access in accesses:
            if EXACT_WALK_PARETO and access.label == "walk":
                found = transit_search(ctx, access, egress, depart_s, day, multi_criteria=True)
            else:
                found = [
                    journey
                    for budget in _walk_budgets(ctx, access)
                    for journey in transit_search(ctx, access, egress, depart_s, day, budget)
                ]
            for journey in found:
                options.append(assemble_transit(ctx, access, egress, journey, day))
        options += _next_departures(ctx, accesses[0], egress, depart_s, day, options)
    return rank(options, walk_speed_m_s=ctx.request.walk_speed_m_s)


def _arriving_at(it: Itinerary, arrive: dt.datetime) -> Itinerary:
    """The same itinerary shifted in time so that it ends at ``arrive``."""
    delta = arrive - it.arrival
    return Itinerary(legs=[_shifted(leg, delta) for leg in it.legs], transfers=it.transfers)


def _solve_arrive_by(
    ctx: PlanContext, accesses: list[AccessOption], options: list[Itinerary]
) -> list[Itinerary]:
    """Stages 3, 5 and 6 arriving by ``request.depart``: latest departures first."""
    arrive = ctx.request.depart.astimezone(ctx.tz)
    day = live_day(ctx, arrive.date())
    arrive_s = int(ctx.request.depart.timestamp()) - day.origin_unix
    egress = egress_walk(ctx.modes)
    for access in accesses:
        if access.prefix is not None:  # aboard a trip: replanning is forwards only
            continue
        exact = EXACT_WALK_PARETO and access.label == "walk"
        for journey in transit_search_arrive_by(ctx, access, egress, arrive_s, day, exact):
            it = assemble_transit(ctx, access, egress, journey, day)
            if journey.departure is not None:
                it = _leaving_at(it, _at(ctx, day.origin_unix, journey.departure))
            if it.arrival <= arrive:
                options.append(it)
    return sorted(rank(options), key=lambda it: (-it.departure.timestamp(), it.arrival))


def _leaving_at(it: Itinerary, when: dt.datetime) -> Itinerary:
    """Start the legs before the first ride at ``when`` if that is earlier than shown.

    The search rounds an access walk's total up to whole seconds while its legs round each
    segment, so the legs alone may show a departure a second or two later than the one
    the search guarantees; leaving at the search's time (and waiting that second at the
    stop) is what makes the connection.
    """
    delta = when - it.departure
    if delta >= dt.timedelta(0):
        return it
    first_ride = next(i for i, leg in enumerate(it.legs) if leg.trip_id is not None)
    legs = [_shifted(leg, delta) for leg in it.legs[:first_ride]] + it.legs[first_ride:]
    return Itinerary(legs=legs, transfers=it.transfers)


def page_times(
    request: PlanRequest, itineraries: list[Itinerary]
) -> tuple[dt.datetime, dt.datetime]:
    """Where the earlier and later pages start: (arrive by, depart at).

    Earlier: arriving before the earliest arrival shown; later: leaving after the latest
    departure shown (transit options; the request time ± :data:`PAGE_STEP` without
    them). Each page is one exact search, so paging alternates arrive-by and depart
    searches, which is how :func:`routing.raptor.run_raptor_range` finds the profile.
    """
    rides = [it for it in itineraries if rides_of(it)]
    if not rides:
        return request.depart - PAGE_STEP, request.depart + PAGE_STEP
    second = dt.timedelta(seconds=1)
    return (
        min(it.arrival for it in rides) - second,
        max(it.departure for it in rides) + second,
    )


PAGE_STEP = dt.timedelta(minutes=30)


WALK_BUDGETS_S = (600.0, 300.0)
# Pure-walk access uses McRAPTOR (the exact Pareto set over arrival, rides and walking)
# instead of the walk-budget re-runs below. It costs door-to-door latency (Porto Alegre
# walk+bikeshare+transit p50 ~47 ms against the 50 ms target of benchmarks.bench_routing,
# ~38 ms with the budgets): False restores the budget approximation.
EXACT_WALK_PARETO = True


def _walk_budgets(ctx: PlanContext, access: AccessOption) -> list[float]:
    """The unbounded search, plus tighter walking caps for pure-walk access (the
    approximation used when ``EXACT_WALK_PARETO`` is off).

    RAPTOR's rounds give the Pareto set over (arrival, rides); re-running with the walk at
    each end capped at 10 and 5 minutes adds the options that walk less for a later arrival.
    """
    if access.label != "walk":
        return [np.inf]
    return [np.inf, *(b for b in WALK_BUDGETS_S if b < ctx.request.max_access_walk_s)]


def _next_departures(
    ctx: PlanContext,
    access: AccessOption,
    egress: ChainResult,
    depart_s: int,
    day: DayTimetable,
    found: list[Itinerary],
    count: int = 2,
) -> list[Itinerary]:
    """The same kind of trip leaving later: what a traveller who misses one wants."""
    later: list[Itinerary] = []
    transit = [it for it in found if it.family == ("transit",)]
    if not transit or access.label != "walk":
        return later
    first_board = min(next(leg for leg in it.legs if leg.trip_id).departure for it in transit)
    t = (
        int(first_board.timestamp())
        - day.origin_unix
        - int(np.nanmin(np.where(np.isfinite(access.stop_cost), access.stop_cost, np.nan)))
    )
    for _ in range(count):
        t = max(t, depart_s) + 60
        journeys = transit_search(ctx, access, egress, t, day)
        if not journeys:
            break
        best = min(journeys, key=lambda j: j.arrival)
        it = assemble_transit(ctx, access, egress, best, day)
        later.append(it)
        t = int(next(leg for leg in it.legs if leg.trip_id).departure.timestamp()) - (
            day.origin_unix + int(access.stop_cost[best.access_stop])
        )
    return later


def base_overlay(base: CityBase) -> LiveOverlay:
    """The empty overlay (free flow, nothing cancelled, no shared mobility)."""
    return LiveOverlay(version=0, drive_multiplier=np.ones(base.streets["drive"].n_edges))


def answer(
    network: TransitNetwork,
    query: StopQuery,
    modes: frozenset[str] = SUPPORTED_MODES,
    max_rides: int = MAX_RIDES,
) -> list[Itinerary]:
    """The pipeline of the GTFS-only network (:mod:`routing.gtfs_network`): every itinerary
    for a query, earliest arrival first (latest departure first when arriving by the
    query's time).

    The RAPTOR Pareto set over (arrival, transfers) plus the walk-only option; transit
    options that arrive no earlier than walking are dropped (walking has no transfer).

    Raises
    ------
    UnknownStopError
        If an endpoint names an unknown stop.
    NoServiceError
        If the date is outside the feeds' service period.
    NoStreetNearbyError
        With an OSM extract, if a coordinate is far from any walkable street.
    """
    o, d = query.origin, query.destination
    tt = network.timetable
    if (
        isinstance(o, StopPoint)
        and isinstance(d, StopPoint)
        and tt.stop_index(o.stop_id) == tt.stop_index(d.stop_id)
    ):
        return [walk_itinerary(network, query, 0)]  # already there, whatever the modes
    walk_s = direct_walk_seconds(network, query) if "walk" in modes else None
    options: list[Itinerary] = []
    if walk_s is not None:
        options.append(walk_itinerary(network, query, walk_s))
    if "transit" in modes and walk_s != 0:
        access = access_times(network, query.origin, outbound=True)
        egress = access_times(network, query.destination, outbound=False)
        journeys, day = stop_transit_search(network, query, access, egress, max_rides)
        walk = options[0] if options else None
        for journey in journeys:
            assert day is not None
            itinerary = assemble_stop_journey(network, query, journey, day, access)
            if walk is None:
                options.append(itinerary)
            elif query.arrive_by and itinerary.departure.timestamp() > walk.departure.timestamp():
                options.append(itinerary)  # arriving by a time: leaving later than walking
            elif not query.arrive_by and itinerary.arrival.timestamp() < walk.arrival.timestamp():
                options.append(itinerary)
    if query.arrive_by:
        return sorted(options, key=lambda i: (-_unix(i.departure), i.transfers, _unix(i.arrival)))
    return sorted(options, key=lambda i: (_unix(i.arrival), i.transfers, -_unix(i.departure)))


def _unix(when: dt.datetime) -> float:
    """Exact order across a DST change (aware datetimes of one zone compare by wall clock)."""
    return when.timestamp()
