"""A plan request as a pipeline of named stages.

``snap_endpoints`` → ``access_options`` / ``egress_walk`` (street chains per mode) →
``transit_search`` (RAPTOR per access option) → ``direct_options`` (street-only trips) →
``assemble`` (legs with names, times, geometry) → ``rank``. Each stage is a plain function.
Every stage reads one :class:`~routing.overlay.LiveOverlay`, taken once per request.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from correspondance.geo import WALK_SPEED_M_S, haversine_m
from routing.base import CityBase
from routing.chains import ChainResult, Segment
from routing.errors import OutsideCityError
from routing.modes import (
    ModeContext,
    access_park_and_ride,
    access_shared,
    access_walk,
    direct,
    egress_walk,
    shared_direct,
)
from routing.overlay import LiveOverlay
from routing.raptor import (
    FootLeg,
    RideLeg,
    TransitJourney,
    run_mc_raptor,
    run_mc_raptor_arrive_by,
    run_raptor,
    run_raptor_arrive_by,
)
from routing.streets import Snap
from routing.timetable import BaseTimetable, DayTimetable
from routing.transit_geometry import ride_line, transfer_line
from routing.transit_streets import street_effects

STREET_MODES = frozenset({"walk", "bicycle", "car", "bikeshare", "carshare"})
ALL_MODES = STREET_MODES | {"transit"}
DEFAULT_MODES = frozenset({"walk", "transit"})


@dataclass(frozen=True)
class PlanRequest:
    """What the traveller asks: from, to, when (aware datetime), how.

    ``depart`` is the time to leave at, or with ``arrive_by`` the time to arrive by.
    """

    origin: tuple[float, float]
    destination: tuple[float, float]
    depart: dt.datetime
    walk_speed_m_s: float = WALK_SPEED_M_S
    max_access_walk_s: float = 1200.0
    max_snap_m: float = 500.0
    max_rides: int = 5
    modes: frozenset[str] = DEFAULT_MODES
    arrive_by: bool = False


@dataclass(frozen=True)
class Place:
    """A named point; ``stop_id`` for transit stops, ``station_id`` for shared mobility."""

    name: str
    lat: float
    lon: float
    stop_id: str | None = None
    station_id: str | None = None


@dataclass(frozen=True)
class Leg:
    """One leg of an itinerary (times are aware datetimes in the city's timezone)."""

    mode: str
    origin: Place
    destination: Place
    departure: dt.datetime
    arrival: dt.datetime
    distance_m: float
    geometry: list[tuple[float, float]]  # (lon, lat)
    route_id: str | None = None
    route_short_name: str | None = None
    route_long_name: str | None = None
    route_color: str | None = None
    route_text_color: str | None = None
    trip_id: str | None = None
    headsign: str | None = None
    direction: str | None = None  # the trip's last stop: where it goes when it has no headsign
    agency_name: str | None = None
    intermediate_stops: int = 0
    system_id: str | None = None
    simulated: bool = False
    board_index: int | None = None  # position of the boarding stop in the trip
    alight_index: int | None = None
    drive_edges: tuple[int, ...] = ()  # drive-network edges, for live congestion matching
    traffic_delay_s: int = 0  # a bus in traffic: seconds late at the alighting stop
    traffic_board_delay_s: int = 0  # ...and at the boarding stop


@dataclass(frozen=True)
class Itinerary:
    """A door-to-door option."""

    legs: list[Leg]
    transfers: int

    @property
    def departure(self) -> dt.datetime:
        """When the first leg starts."""
        return self.legs[0].departure

    @property
    def arrival(self) -> dt.datetime:
        """When the last leg ends."""
        return self.legs[-1].arrival

    @property
    def walk_seconds(self) -> int:
        """Seconds spent walking."""
        return int(
            sum(
                (leg.arrival - leg.departure).total_seconds()
                for leg in self.legs
                if leg.mode == "walk"
            )
        )

    @property
    def walk_metres(self) -> float:
        """Metres walked."""
        return sum(leg.distance_m for leg in self.legs if leg.mode == "walk")

    @property
    def family(self) -> tuple[str, ...]:
        """The non-walking modes used, in order: what makes two options different in kind."""
        seen: list[str] = []
        for leg in self.legs:
            kind = "transit" if leg.trip_id else leg.mode
            if kind != "walk" and kind not in seen:
                seen.append(kind)
        return tuple(seen) or ("walk",)


@dataclass(frozen=True)
class Endpoints:
    """Stage 1 output: origin and destination snapped to the walk network."""

    origin: Snap
    destination: Snap


@dataclass
class AccessOption:
    """A way to reach transit stops from the origin: a chain and its label."""

    label: str
    chain: ChainResult | None
    system_id: str | None = None
    simulated: bool = False
    cost: NDArray[np.float64] | None = None  # seconds from the start to each stop
    prefix: Callable[[int], list[Leg]] | None = None  # fixed legs to a stop (aboard a trip)

    @property
    def stop_cost(self) -> NDArray[np.float64]:
        """Seconds from the start to every stop (inf where unreachable)."""
        if self.cost is not None:
            return self.cost
        assert self.chain is not None
        return self.chain.final_cost


@dataclass
class PlanContext:
    """Everything the stages share for one request."""

    base: CityBase
    request: PlanRequest
    overlay: LiveOverlay
    modes: ModeContext = field(init=False)

    def __post_init__(self) -> None:
        self.modes = ModeContext(
            base=self.base,
            overlay=self.overlay,
            origin=self.request.origin,
            destination=self.request.destination,
            walk_speed_m_s=self.request.walk_speed_m_s,
            max_walk_s=self.request.max_access_walk_s,
        )

    @property
    def tz(self) -> dt.tzinfo:
        """The city's timezone."""
        return self.base.city.tz

    def systems(self, form_factor: str) -> list[tuple[str, bool, bool]]:
        """(system_id, free_floating_return, simulated) of live systems of a vehicle kind."""
        return [
            (s.system_id, s.free_floating_return, s.simulated)
            for s in self.overlay.systems.values()
            if s.form_factor == form_factor
        ]


def snap_endpoints(base: CityBase, request: PlanRequest) -> Endpoints:
    """Stage 1: check both points lie in the city and snap them to walkable streets.

    Raises
    ------
    OutsideCityError, NoStreetNearbyError
    """
    for label, (lat, lon) in (("from", request.origin), ("to", request.destination)):
        if not base.city.contains(lat, lon):
            raise OutsideCityError(
                f"'{label}' {lat:.6f},{lon:.6f} is outside {base.city.name} "
                f"(bbox {', '.join(f'{v:g}' for v in base.city.bbox)})"
            )
    walk = base.streets["walk"]
    return Endpoints(
        origin=walk.snap(*request.origin, request.max_snap_m),
        destination=walk.snap(*request.destination, request.max_snap_m),
    )


def access_options(ctx: PlanContext) -> list[AccessOption]:
    """Stage 2a: every way of reaching stops the requested modes allow."""
    options = [AccessOption("walk", access_walk(ctx.modes))]
    modes = ctx.request.modes
    for form, mode in (("bicycle", "bikeshare"), ("car", "carshare")):
        if mode not in modes:
            continue
        for system_id, _free, simulated in ctx.systems(form):
            chain = access_shared(ctx.modes, ctx.overlay.systems[system_id])
            if chain is not None:
                options.append(AccessOption(mode, chain, system_id, simulated))
    if "car" in modes:
        chain = access_park_and_ride(ctx.modes)
        if chain is not None:
            options.append(AccessOption("park_and_ride", chain))
    return options


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
    tt = ctx.base.timetable
    footpaths = ctx.base.footpaths(ctx.request.walk_speed_m_s)
    if multi_criteria and access.label == "walk":
        return run_mc_raptor(
            day,
            tt.n_stops,
            footpaths,
            tt.min_transfer_s,
            sources,
            targets,
            source_walk=access_s,
            target_walk=targets,  # the egress is walking
            max_rides=ctx.request.max_rides,
            trip_ok=_trip_mask(ctx, day),
            closed_stops=closed,
        )
    return run_raptor(
        day,
        tt.n_stops,
        footpaths,
        tt.min_transfer_s,
        sources,
        targets,
        ctx.request.max_rides,
        trip_ok=_trip_mask(ctx, day),
        closed_stops=closed,
    )


def _segment_place(kind: str, ident: str, name: str, latlon: tuple[float, float]) -> Place:
    if kind == "stop":
        return Place(name, *latlon, stop_id=ident)
    if kind == "station":
        return Place(name, *latlon, station_id=ident)
    return Place(name, *latlon)


def segments_to_legs(
    ctx: PlanContext,
    segments: list[Segment],
    start: dt.datetime,
    reverse: bool = False,
    system_id: str | None = None,
    simulated: bool = False,
) -> list[Leg]:
    """Timed legs from chain segments, starting at ``start``.

    ``reverse`` flips segments found from the destination outwards (egress walks).
    """
    legs: list[Leg] = []
    clock = start
    ordered = list(reversed(segments)) if reverse else segments
    for seg in ordered:
        a = _segment_place(seg.from_kind, seg.from_id, seg.from_name, seg.from_latlon)
        b = _segment_place(seg.to_kind, seg.to_id, seg.to_name, seg.to_latlon)
        coords = seg.coords
        if reverse:
            a, b, coords = b, a, list(reversed(coords))
        end = clock + dt.timedelta(seconds=round(seg.seconds))
        shared = seg.mode in ("bikeshare", "carshare", "scooter")
        legs.append(
            Leg(
                mode=seg.mode,
                origin=_named(a, "Origin"),
                destination=_named(b, "Destination"),
                departure=clock,
                arrival=end,
                distance_m=seg.metres,
                geometry=coords,
                system_id=system_id if shared else None,
                simulated=simulated and shared,
                drive_edges=seg.edges if seg.network == "drive" else (),
            )
        )
        clock = end
    return [
        leg
        for leg in legs
        if leg.distance_m > 0 or leg.arrival > leg.departure or leg.mode != "walk"
    ]


def _named(place: Place, default: str) -> Place:
    if place.name:
        return place
    return Place(default, place.lat, place.lon, place.stop_id, place.station_id)


def _ride_leg(ctx: PlanContext, day: DayTimetable, leg: RideLeg, origin_unix: int) -> Leg:
    tt = ctx.base.timetable
    p = leg.pattern
    s_lo = day.pat_stop_off[p]
    n = day.pat_stop_off[p + 1] - s_lo
    base_i = day.pat_time_off[p] + (leg.trip - day.pat_trip_off[p]) * n
    dep = int(day.dep[base_i + leg.board_pos])
    arr = int(day.arr[base_i + leg.alight_pos])
    stops = day.pat_stops[s_lo + leg.board_pos : s_lo + leg.alight_pos + 1]
    trip = int(day.trip_base[leg.trip])
    route = int(tt.trip_route[trip])
    street = street_effects(ctx.base, ctx.overlay)  # cached per overlay version
    traffic = street.delay_at(int(tt.trip_pattern[trip]), leg.alight_pos) if street else 0
    traffic_board = street.delay_at(int(tt.trip_pattern[trip]), leg.board_pos) if street else 0
    shaped = ride_line(ctx.base, int(tt.trip_pattern[trip]), leg.board_pos, leg.alight_pos)
    if shaped is not None:  # along shapes.txt: what is drawn is what is ridden
        geometry, dist = shaped
    else:
        geometry = [(float(tt.stop_lon[s]), float(tt.stop_lat[s])) for s in stops]
        dist = float(
            np.sum(
                haversine_m(
                    tt.stop_lat[stops[:-1]],
                    tt.stop_lon[stops[:-1]],
                    tt.stop_lat[stops[1:]],
                    tt.stop_lon[stops[1:]],
                )
            )
        )
    return Leg(
        mode=str(tt.route_mode[route]),
        origin=_stop_place(ctx, int(stops[0])),
        destination=_stop_place(ctx, int(stops[-1])),
        departure=_at(ctx, origin_unix, dep),
        arrival=_at(ctx, origin_unix, arr),
        distance_m=dist,
        geometry=geometry,
        route_id=str(tt.route_ids[route]),
        route_short_name=str(tt.route_short[route]) or None,
        route_long_name=str(tt.route_long[route]) or None,
        route_color=str(tt.route_color[route]) or None,
        route_text_color=str(tt.route_text_color[route]) or None,
        trip_id=str(tt.trip_ids[trip]),
        headsign=str(tt.trip_headsign[trip]) or None,
        direction=str(tt.stop_names[day.pat_stops[s_lo + n - 1]]) or None,
        agency_name=str(tt.route_agency[route]) or None,
        intermediate_stops=max(0, len(stops) - 2),
        board_index=leg.board_pos,
        alight_index=leg.alight_pos,
        traffic_delay_s=traffic,
        traffic_board_delay_s=traffic_board,
    )


def _stop_place(ctx: PlanContext, stop: int) -> Place:
    tt = ctx.base.timetable
    return Place(
        str(tt.stop_names[stop]),
        float(tt.stop_lat[stop]),
        float(tt.stop_lon[stop]),
        str(tt.stop_ids[stop]),
    )


def _at(ctx: PlanContext, origin_unix: int, seconds: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(origin_unix + seconds, ctx.tz)


def assemble_transit(
    ctx: PlanContext,
    access: AccessOption,
    egress: ChainResult,
    journey: TransitJourney,
    day: DayTimetable,
) -> Itinerary:
    """Stage 5a: one RAPTOR journey with its access and egress street legs."""
    tt = ctx.base.timetable
    speed = ctx.request.walk_speed_m_s
    rides = [leg for leg in journey.legs if isinstance(leg, RideLeg)]
    first = _ride_leg(ctx, day, rides[0], day.origin_unix)
    if access.prefix is not None:
        legs = access.prefix(journey.access_stop)
    else:
        assert access.chain is not None
        access_s = float(access.chain.final_cost[journey.access_stop])
        start = first.departure - dt.timedelta(seconds=round(access_s))
        legs = segments_to_legs(
            ctx,
            access.chain.describe(journey.access_stop),
            start,
            system_id=access.system_id,
            simulated=access.simulated,
        )
    if (
        legs and access.prefix is None
    ):  # waiting at the stop is not walking: the access legs end at boarding
        shift = first.departure - legs[-1].arrival
        legs = [_shifted(leg, shift) for leg in legs]
    clock = first.departure
    for leg in journey.legs:
        if isinstance(leg, FootLeg):
            fp = ctx.base.footpaths(speed)
            row = range(fp.offset[leg.from_stop], fp.offset[leg.from_stop + 1])
            secs = next(int(fp.duration[i]) for i in row if fp.to[i] == leg.to_stop)
            a, b = leg.from_stop, leg.to_stop
            metres = _footpath_metres(ctx.base, a, b)
            line = transfer_line(ctx.base, a, b, metres) or [
                (float(tt.stop_lon[a]), float(tt.stop_lat[a])),
                (float(tt.stop_lon[b]), float(tt.stop_lat[b])),
            ]
            legs.append(
                Leg(
                    "walk",
                    _stop_place(ctx, a),
                    _stop_place(ctx, b),
                    clock,
                    clock + dt.timedelta(seconds=secs),
                    metres,
                    line,
                )
            )
            clock += dt.timedelta(seconds=secs)
            continue
        ride = _ride_leg(ctx, day, leg, day.origin_unix)
        legs.append(ride)
        clock = ride.arrival
    legs += segments_to_legs(ctx, egress.describe(journey.egress_stop), clock, reverse=True)
    return Itinerary(legs=_chain_places(legs), transfers=len(rides) - 1)


def _footpath_metres(base: CityBase, a: int, b: int) -> float:
    """Metres walked between two stops: the footpath's own length over the walk network.

    A pair only transfers.txt joins (no street footpath) walks at least the straight line.
    """
    found = np.flatnonzero((base.footpath_from == a) & (base.footpath_to == b))
    if len(found):
        return float(base.footpath_m[found[0]])
    tt = base.timetable
    return float(haversine_m(tt.stop_lat[a], tt.stop_lon[a], tt.stop_lat[b], tt.stop_lon[b]))


def _shifted(leg: Leg, delta: dt.timedelta) -> Leg:
    from dataclasses import replace

    return replace(leg, departure=leg.departure + delta, arrival=leg.arrival + delta)


def _chain_places(legs: list[Leg]) -> list[Leg]:
    """Make each leg start exactly where and when the previous one ended."""
    from dataclasses import replace

    out: list[Leg] = []
    for leg in legs:
        if out:
            prev = out[-1]
            leg = replace(leg, origin=prev.destination)
            if leg.departure < prev.arrival:
                leg = replace(leg, departure=prev.arrival, arrival=max(leg.arrival, prev.arrival))
        out.append(leg)
    return out


def direct_options(ctx: PlanContext, start: dt.datetime) -> list[Itinerary]:
    """Stage 4: street-only trips for every requested street mode."""
    results: list[tuple[ChainResult, str | None, bool]] = []
    modes = ctx.request.modes
    for mode in ("walk", "bicycle", "car"):
        if mode in modes:
            results.append((direct(ctx.modes, mode), None, False))
    for form, mode in (("bicycle", "bikeshare"), ("car", "carshare")):
        if mode in modes:
            for system_id, _free, simulated in ctx.systems(form):
                chain = shared_direct(ctx.modes, ctx.overlay.systems[system_id])
                if chain is not None:
                    results.append((chain, system_id, simulated))
    itineraries = []
    for chain, system, simulated in results:
        if not np.isfinite(chain.final_cost[0]):
            continue
        legs = segments_to_legs(
            ctx, chain.describe(0), start, system_id=system, simulated=simulated
        )
        if legs:
            itineraries.append(Itinerary(legs=_chain_places(legs), transfers=0))
    return itineraries


MIN_RENTAL_M = 100.0


def _pointless_rental(it: Itinerary) -> bool:
    """A shared vehicle taken and returned at (almost) the same place: never worth it."""
    return any(
        leg.mode in ("bikeshare", "carshare", "scooter") and leg.distance_m < MIN_RENTAL_M
        for leg in it.legs
    )


def _revisits_a_stop(it: Itinerary) -> bool:
    """True for a trip that comes back through a stop it already left (there and back).

    Legal under the timetable (e.g. ride to the terminus and back to catch a pickup-only
    service) but never what a traveller wants; transfers at one stop are not revisits.
    """
    seen: set[str] = set()
    for leg in it.legs:
        if leg.trip_id is None:
            continue
        board, alight = leg.origin.stop_id or "", leg.destination.stop_id or ""
        if board in seen and board != "" and not _just_arrived(it, leg):
            return True
        seen.add(board)
        if alight in seen:
            return True
        seen.add(alight)
    return False


def _just_arrived(it: Itinerary, leg: Leg) -> bool:
    """Whether ``leg`` boards where the previous ride alighted (a same-stop transfer)."""
    rides = [x for x in it.legs if x.trip_id is not None]
    i = rides.index(leg)
    return i > 0 and rides[i - 1].destination.stop_id == leg.origin.stop_id


# Walking counts double when two options are compared (OpenTripPlanner's default walk
# reluctance is 2): an option that arrives later must save more walking than the time it
# loses, or it is not shown.
WALK_RELUCTANCE = 2.0


def generalized_cost(it: Itinerary) -> float:
    """Seconds door to door, each walked second counted ``WALK_RELUCTANCE`` times."""
    duration = (it.arrival - it.departure).total_seconds()
    return duration + (WALK_RELUCTANCE - 1) * it.walk_seconds


def rides_of(it: Itinerary) -> tuple[str, ...]:
    """The transit trips ridden, in order: what makes two transit options the same trip."""
    return tuple(leg.trip_id for leg in it.legs if leg.trip_id is not None)


def reboards_a_route_after_walking(it: Itinerary) -> bool:
    """True for "T7 → walk → T7": leaving a route to walk and board the same route again.

    Staying on a route means staying aboard; a change at the same stop to the same route
    (a trip that ends where the next one starts) is not a re-boarding through a walk.
    """
    previous: Leg | None = None
    walked = False
    for leg in it.legs:
        if leg.trip_id is None:
            walked = walked or (previous is not None and leg.mode == "walk" and leg.distance_m > 0)
            continue
        if previous is not None and walked and previous.route_id == leg.route_id:
            return True
        previous, walked = leg, False
    return False


def filter_same_rides(itineraries: list[Itinerary]) -> list[Itinerary]:
    """Keep one option per sequence of rides: the one of least :func:`generalized_cost`.

    Two options on the same trips that differ only by where they get off (another stop of
    the same name 50 s later, to save 17 s of walking) are one option.
    """
    best: dict[tuple[str, ...], Itinerary] = {}
    out: list[Itinerary] = []
    for it in itineraries:
        key = rides_of(it)
        if not key:
            out.append(it)
            continue
        kept = best.get(key)
        if kept is None or generalized_cost(it) < generalized_cost(kept):
            best[key] = it
    return out + list(best.values())


def filter_slow_walk_savers(itineraries: list[Itinerary]) -> list[Itinerary]:
    """Drop an option that is slower than another of its kind by more than it saves walking.

    The explicit rule: B goes when some A of the same family leaves no earlier, arrives
    no later, has no more transfers, and B's extra door-to-door time exceeds the walking
    it saves times (``WALK_RELUCTANCE`` − 1): with the default 2, minutes are never
    traded for seconds of walking, while an option that walks 10 minutes less to arrive
    5 minutes later stays. Later departures (the next trip) are never dropped here.
    """
    out = []
    for b in itineraries:
        lost = False
        for a in itineraries:
            if a is b or a.family != b.family:
                continue
            if a.departure < b.departure or a.arrival > b.arrival or a.transfers > b.transfers:
                continue
            slower = (b.arrival - b.departure).total_seconds() - (
                a.arrival - a.departure
            ).total_seconds()
            saved = a.walk_seconds - b.walk_seconds
            if slower > 0 and slower > (WALK_RELUCTANCE - 1) * saved:
                lost = True
                break
        if not lost:
            out.append(b)
    return out


# A short ride must save real time over walking its stretch (OpenTripPlanner prices this
# with a boarding cost in its generalized cost, 600 s by default for walk + transit): a ride
# of less than MIN_RIDE_S must save at least SHORT_RIDE_SAVING_S.
MIN_RIDE_S = 120.0
SHORT_RIDE_SAVING_S = 300.0
SHORT_RIDE_MODES = frozenset({"bus", "trolleybus", "coach", "tram"})  # a street alongside
STREET_DETOUR = 1.25  # walking between two stops of a street: the straight line × this


def pointless_short_ride(it: Itinerary, walk_speed_m_s: float = WALK_SPEED_M_S) -> bool:
    """True when the itinerary has a street-running ride of less than ``MIN_RIDE_S`` that
    saves less than ``SHORT_RIDE_SAVING_S`` over walking its stretch.

    The explicit rule: walking the ride's stretch (the shorter of its length and the straight
    line between its stops × ``STREET_DETOUR``, at the walking speed) is compared with the
    wait for the ride plus the ride; when walking takes no more than that plus
    ``SHORT_RIDE_SAVING_S``, the 1-minute bus ride is not worth boarding.
    """
    previous: Leg | None = None
    for leg in it.legs:
        ride_s = (leg.arrival - leg.departure).total_seconds()
        if leg.trip_id is not None and leg.mode in SHORT_RIDE_MODES and ride_s < MIN_RIDE_S:
            straight = float(
                haversine_m(
                    leg.origin.lat, leg.origin.lon, leg.destination.lat, leg.destination.lon
                )
            )
            walk_s = min(leg.distance_m, STREET_DETOUR * straight) / walk_speed_m_s
            wait_s = (leg.departure - previous.arrival).total_seconds() if previous else 0.0
            if walk_s <= wait_s + ride_s + SHORT_RIDE_SAVING_S:
                return True
        previous = leg
    return False


def filter_pointless_short_rides(
    itineraries: list[Itinerary], walk_speed_m_s: float = WALK_SPEED_M_S
) -> list[Itinerary]:
    """Drop options with a :func:`pointless_short_ride`, unless that would leave no transit
    option at all (a request is never left without transit by this rule alone)."""
    kept = [it for it in itineraries if not pointless_short_ride(it, walk_speed_m_s)]
    if any(rides_of(it) for it in itineraries) and not any(rides_of(it) for it in kept):
        return itineraries
    return kept


FAR_LATER_MIN_S = 3600.0


def filter_far_later(itineraries: list[Itinerary]) -> list[Itinerary]:
    """Drop transit options arriving far later than the earliest arrival of any option.

    "Far" is more than the earliest-arriving option's own door-to-door time, and at least
    an hour: the next departures stay, a ride on tomorrow's first bus after a missed
    connection does not. Street-only options are never dropped here.
    """
    if not itineraries:
        return itineraries
    first = min(itineraries, key=lambda it: it.arrival)
    slack = max(FAR_LATER_MIN_S, (first.arrival - first.departure).total_seconds())
    latest = first.arrival + dt.timedelta(seconds=slack)
    return [it for it in itineraries if not rides_of(it) or it.arrival <= latest]


def rank(
    itineraries: list[Itinerary], limit: int = 8, walk_speed_m_s: float = WALK_SPEED_M_S
) -> list[Itinerary]:
    """Stage 6: the itinerary filter chain, then earliest arrival first.

    Modelled on OpenTripPlanner's ``ItineraryListFilterChain``; each filter is a named
    function tested alone: (1) drop there-and-back trips, pointless rentals, same-route
    re-boarding through a walk and bus rides under 2 minutes that save less than 5 minutes
    over walking (:func:`filter_pointless_short_rides`); (2) keep one option per sequence of rides
    (:func:`filter_same_rides`); (3) drop options dominated by one of the same kind (same
    non-walking modes: a fast car trip never hides transit, ten copies of one trip
    collapse); (4) drop options slower by minutes to save seconds of walking
    (:func:`filter_slow_walk_savers`); (5) drop transit options arriving far later than
    the earliest arrival (:func:`filter_far_later`).
    """
    kept: list[Itinerary] = []
    itineraries = [
        it
        for it in itineraries
        if not _revisits_a_stop(it)
        and not _pointless_rental(it)
        and not reboards_a_route_after_walking(it)
    ]
    itineraries = filter_same_rides(filter_pointless_short_rides(itineraries, walk_speed_m_s))
    for it in sorted(
        itineraries,
        key=lambda i: (i.arrival, i.transfers, i.walk_seconds, -i.departure.timestamp()),
    ):
        dominated = any(
            k.family == it.family
            and k.arrival <= it.arrival
            and k.transfers <= it.transfers
            and k.walk_seconds <= it.walk_seconds
            and k.departure >= it.departure
            for k in kept
        )
        if not dominated:
            kept.append(it)
    return filter_far_later(filter_slow_walk_savers(kept))[:limit]


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
    tt = ctx.base.timetable
    footpaths = ctx.base.footpaths(ctx.request.walk_speed_m_s)
    if multi_criteria and access.label == "walk":
        return run_mc_raptor_arrive_by(
            day,
            tt.n_stops,
            footpaths,
            tt.min_transfer_s,
            access_s,
            egress_s,
            arrive_s,
            source_walk=access_s,
            target_walk=egress_s,
            max_rides=ctx.request.max_rides,
            trip_ok=_trip_mask(ctx, day),
            closed_stops=closed,
        )
    return run_raptor_arrive_by(
        day,
        tt.n_stops,
        footpaths,
        tt.min_transfer_s,
        access_s,
        egress_s,
        arrive_s,
        ctx.request.max_rides,
        trip_ok=_trip_mask(ctx, day),
        closed_stops=closed,
    )


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
