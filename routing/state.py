"""Travelling is a state, not a place: plan from where a traveller is and what they hold.

A :class:`TravellerState` says where (a coordinate, or aboard transit trip T after stop
index i), when, and what is in hand (nothing, own bike, own car, a bike-share bike or a
car-share car of system S). :func:`replan` runs the same pipeline as
:func:`routing.plan.plan_trip` with the first stage replaced by what that state allows:
a bike-share bike must be docked, a car-share car may only be left where its system allows,
and someone aboard a bus may alight at any later stop of it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

import numpy as np

from correspondance.errors import InputError, TripNotFoundError
from correspondance.geo import WALK_SPEED_M_S
from routing.base import CityBase
from routing.chains import ChainResult, run_chain
from routing.modes import (
    access_park_and_ride,
    direct,
    holding_phases,
    stop_points,
)
from routing.overlay import LiveOverlay
from routing.plan import (
    AccessOption,
    Itinerary,
    Leg,
    PlanContext,
    PlanRequest,
    _chain_places,
    _ride_leg,
    base_overlay,
    chain_itinerary,
    direct_options,
    live_day,
    plan_trip,
    segments_to_legs,
    snap_endpoints,
    solve,
)
from routing.raptor import RideLeg
from routing.timetable import DayTimetable

Holding = Literal["nothing", "own_bike", "own_car", "bikeshare", "carshare"]


@dataclass(frozen=True)
class TravellerState:
    """Where a traveller is, when, and what they hold."""

    at: dt.datetime
    lat: float | None = None
    lon: float | None = None
    holding: Holding = "nothing"
    system_id: str | None = None  # for bikeshare / carshare
    trip_id: str | None = None  # aboard this transit trip...
    stop_index: int | None = None  # ...having left (or standing at) this position in it

    def __post_init__(self) -> None:
        if self.at.tzinfo is None:
            raise InputError("a traveller state needs an aware time", field="at")
        aboard = self.trip_id is not None
        if aboard and self.stop_index is None:
            raise InputError("aboard a trip needs the stop_index passed", field="stop_index")
        if not aboard and (self.lat is None or self.lon is None):
            raise InputError("a traveller not aboard transit needs lat and lon", field="lat")
        if self.holding in ("bikeshare", "carshare") and not self.system_id:
            raise InputError(
                f"holding a {self.holding} vehicle needs its system_id", field="system_id"
            )


def replan(
    base: CityBase,
    state: TravellerState,
    destination: tuple[float, float],
    overlay: LiveOverlay | None = None,
    modes: frozenset[str] = frozenset({"walk", "transit"}),
    walk_speed_m_s: float = WALK_SPEED_M_S,
) -> list[Itinerary]:
    """Itineraries from a traveller's current state to ``destination``, best first.

    Raises
    ------
    InputError
        If the state names an unknown system or a vehicle the overlay does not know.
    TripNotFoundError
        If the trip the traveller is aboard is not running at ``state.at``.
    """
    live = overlay if overlay is not None else base_overlay(base)
    if state.trip_id is not None:
        return _replan_aboard(base, state, destination, live, walk_speed_m_s)
    assert state.lat is not None and state.lon is not None
    here = (state.lat, state.lon)
    if state.holding == "nothing":
        request = PlanRequest(
            here, destination, state.at, walk_speed_m_s=walk_speed_m_s, modes=modes
        )
        return plan_trip(base, request, live)
    request = PlanRequest(
        here, destination, state.at, walk_speed_m_s=walk_speed_m_s, modes=modes | {"transit"}
    )
    snap_endpoints(base, request)
    ctx = PlanContext(base, request, live)
    start = state.at.astimezone(ctx.tz)
    if state.holding == "own_bike":
        return solve(
            ctx,
            [],
            [
                it
                for it in direct_options(_with_modes(ctx, {"bicycle"}), start)
                if it.family == ("bicycle",)
            ],
        )
    if state.holding == "own_car":
        accesses = []
        chain = access_park_and_ride(ctx.modes)
        if chain is not None:
            accesses.append(AccessOption("park_and_ride", chain))
        car = direct(ctx.modes, "car")
        directs = _chain_itineraries(ctx, [car], start, None, False)
        return solve(ctx, accesses, directs)
    system = live.systems.get(state.system_id or "")
    if system is None:
        raise InputError(f"unknown shared-mobility system {state.system_id!r}", field="system_id")
    to_destination = holding_phases(ctx.modes, system, ctx.modes.endpoint("destination"))
    to_stops = holding_phases(ctx.modes, system, stop_points(base))
    directs = []
    accesses = []
    if to_destination is not None:
        directs = _chain_itineraries(
            ctx, [run_chain(to_destination, np.zeros(1))], start, system.system_id, system.simulated
        )
    if to_stops is not None:
        chain = run_chain(to_stops, np.zeros(1))

        def held_until(stop: int) -> list[Leg]:
            # The vehicle is in hand now: ride and dock it now, then wait at the stop. As a
            # plain access option its legs would be shifted to end at boarding, so the
            # rider would idle on a rented vehicle until "departing" minutes later.
            legs = segments_to_legs(
                ctx,
                chain.describe(stop),
                start,
                system_id=system.system_id,
                simulated=system.simulated,
            )
            return _chain_places(legs)

        accesses.append(
            AccessOption(
                state.holding,
                chain,
                system.system_id,
                system.simulated,
                prefix=held_until,
            )
        )
    return solve(ctx, accesses, directs)


def _with_modes(ctx: PlanContext, modes: set[str]) -> PlanContext:
    from dataclasses import replace

    return PlanContext(ctx.base, replace(ctx.request, modes=frozenset(modes)), ctx.overlay)


def _chain_itineraries(
    ctx: PlanContext,
    chains: list[ChainResult],
    start: dt.datetime,
    system_id: str | None,
    simulated: bool,
) -> list[Itinerary]:
    out = []
    for chain in chains:
        itinerary = chain_itinerary(ctx, chain, start, system_id, simulated)
        if itinerary is not None:
            out.append(itinerary)
    return out


def find_day_trip(base: CityBase, day: DayTimetable, trip_id: str, at_s: int) -> tuple[int, int]:
    """(pattern, day trip index) of ``trip_id`` running around ``at_s`` on ``day``.

    Raises
    ------
    TripNotFoundError
    """
    ids = base.timetable.trip_ids[day.trip_base]
    candidates = np.flatnonzero(ids == trip_id)
    best: tuple[int, int] | None = None
    best_gap = None
    for t in candidates:
        p = int(np.searchsorted(day.pat_trip_off, t, side="right") - 1)
        n = day.pat_stop_off[p + 1] - day.pat_stop_off[p]
        off = day.pat_time_off[p] + (t - day.pat_trip_off[p]) * n
        first, last = int(day.dep[off]), int(day.arr[off + n - 1])
        gap = 0 if first <= at_s <= last else min(abs(at_s - first), abs(at_s - last))
        if best_gap is None or gap < best_gap:
            best, best_gap = (p, int(t)), gap
    if best is None or (best_gap or 0) > 3 * 3600:
        raise TripNotFoundError(
            f"trip {trip_id!r} does not run around {at_s // 3600:02d}:"
            f"{at_s % 3600 // 60:02d} on {day.date.isoformat()}"
        )
    return best


def _replan_aboard(
    base: CityBase,
    state: TravellerState,
    destination: tuple[float, float],
    live: LiveOverlay,
    walk_speed_m_s: float,
) -> list[Itinerary]:
    assert state.trip_id is not None and state.stop_index is not None
    tt = base.timetable
    local = state.at.astimezone(base.city.tz)
    request = PlanRequest(
        (state.lat or 0.0, state.lon or 0.0),
        destination,
        state.at,
        walk_speed_m_s=walk_speed_m_s,
    )
    day = live_day(PlanContext(base, request, live), local.date())
    at_s = int(state.at.timestamp()) - day.origin_unix
    pattern, trip = find_day_trip(base, day, state.trip_id, at_s)
    s_lo = day.pat_stop_off[pattern]
    n = int(day.pat_stop_off[pattern + 1] - s_lo)
    if not 0 <= state.stop_index < n - 1:
        raise InputError(
            f"stop_index {state.stop_index} is not before the last stop of trip "
            f"{state.trip_id!r} ({n} stops)",
            field="stop_index",
        )
    off = day.pat_time_off[pattern] + (trip - day.pat_trip_off[pattern]) * n
    here_stop = int(day.pat_stops[s_lo + state.stop_index])
    here = (float(tt.stop_lat[here_stop]), float(tt.stop_lon[here_stop]))
    request = PlanRequest(
        here,
        destination,
        state.at,
        walk_speed_m_s=walk_speed_m_s,
        modes=frozenset({"walk", "transit"}),
    )
    snap_endpoints(base, PlanRequest(destination, destination, state.at))
    ctx = PlanContext(base, request, live)
    cost = np.full(tt.n_stops, np.inf)
    alight_at: dict[int, int] = {}
    for i in range(state.stop_index + 1, n):
        if not day.pat_drop[s_lo + i]:
            continue
        stop = int(day.pat_stops[s_lo + i])
        arrival = int(day.arr[off + i]) - at_s
        if arrival < cost[stop]:
            cost[stop] = max(arrival, 0)
            alight_at[stop] = i
    fp = base.footpaths(walk_speed_m_s)
    walked: dict[int, int] = {}
    for stop in list(alight_at):
        for e in range(fp.offset[stop], fp.offset[stop + 1]):
            u, d = int(fp.to[e]), int(fp.duration[e])
            if d >= 0 and cost[stop] + d < cost[u]:
                cost[u] = cost[stop] + d
                walked[u] = stop

    def prefix(stop: int) -> list[Leg]:
        alight_stop = walked.get(stop, stop)
        ride = _ride_leg(
            ctx,
            day,
            RideLeg(pattern, trip, state.stop_index or 0, alight_at[alight_stop]),
            day.origin_unix,
        )
        legs = [ride]
        if alight_stop != stop:
            secs = next(
                int(fp.duration[e])
                for e in range(fp.offset[alight_stop], fp.offset[alight_stop + 1])
                if fp.to[e] == stop
            )
            from routing.plan import _stop_place

            legs.append(
                Leg(
                    "walk",
                    _stop_place(ctx, alight_stop),
                    _stop_place(ctx, stop),
                    ride.arrival,
                    ride.arrival + dt.timedelta(seconds=secs),
                    float(secs * walk_speed_m_s),
                    [
                        (ride.destination.lon, ride.destination.lat),
                        (float(tt.stop_lon[stop]), float(tt.stop_lat[stop])),
                    ],
                )
            )
        return legs

    aboard = AccessOption("aboard", None, cost=cost, prefix=prefix)
    # staying aboard and walking from an alighting stop is a journey with zero new rides:
    # RAPTOR only reports journeys with rides, so add them here.
    from routing.modes import egress_walk

    egress = egress_walk(ctx.modes)
    stay: list[Itinerary] = []
    best_stop, best_total = None, np.inf
    for stop in alight_at:
        total = cost[stop] + egress.final_cost[stop]
        if total < best_total:
            best_stop, best_total = stop, total
    if best_stop is not None and np.isfinite(best_total):
        legs = prefix(best_stop)
        legs += segments_to_legs(ctx, egress.describe(best_stop), legs[-1].arrival, reverse=True)
        stay.append(Itinerary(legs=_chain_places(legs), transfers=0))
    return solve(ctx, [aboard], stay)
