"""Planner stages 4 and 5: street-only options, and itineraries assembled from a RAPTOR
journey with its access and egress legs (names, times, geometry).
"""

from __future__ import annotations

import datetime as dt

import numpy as np

from correspondance.geo import distance_m, haversine_m
from routing.base import CityBase
from routing.chains import ChainResult, Segment
from routing.gtfs_network import (
    Endpoint,
    StopPoint,
    StopQuery,
    TransitNetwork,
    local_to_unix,
    station_members,
)
from routing.itinerary import Itinerary, Leg, Place
from routing.modes import (
    direct,
    shared_direct,
)
from routing.plan_access import Access, AccessOption, PlanContext
from routing.raptor import FootLeg, RideLeg, TransitJourney
from routing.timetable import DayTimetable
from routing.transit_geometry import ride_line, transfer_line
from routing.transit_streets import street_effects


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
        itinerary = chain_itinerary(ctx, chain, start, system, simulated)
        if itinerary is not None:
            itineraries.append(itinerary)
    return itineraries


def chain_itinerary(
    ctx: PlanContext,
    chain: ChainResult,
    start: dt.datetime,
    system_id: str | None,
    simulated: bool,
) -> Itinerary | None:
    """The itinerary of a route with no transit (one chain from its first source), or
    ``None`` when the chain reaches nothing."""
    if not np.isfinite(chain.final_cost[0]):
        return None
    legs = segments_to_legs(ctx, chain.describe(0), start, system_id=system_id, simulated=simulated)
    return Itinerary(legs=_chain_places(legs), transfers=0) if legs else None


# -- the GTFS-only network (routing.gtfs_network) ---------------------------------------


def _endpoint_place(network: TransitNetwork, endpoint: Endpoint, label: str) -> Place:
    if isinstance(endpoint, StopPoint):
        return _network_stop_place(network, network.timetable.stop_index(endpoint.stop_id))
    return Place(label, endpoint.lat, endpoint.lon)


def _network_stop_place(network: TransitNetwork, stop: int) -> Place:
    tt = network.timetable
    return Place(
        str(tt.stop_names[stop]),
        float(tt.stop_lat[stop]),
        float(tt.stop_lon[stop]),
        str(tt.stop_ids[stop]),
    )


def _straight_leg(
    network: TransitNetwork,
    mode: str,
    origin: Place,
    destination: Place,
    departure: int,
    arrival: int,
    route_id: str | None = None,
    trip_id: str | None = None,
    route_short_name: str | None = None,
    headsign: str | None = None,
) -> Leg:
    """A leg of the GTFS-only network (unix times): it reads no shapes, so each leg's line
    is straight between its ends."""
    return Leg(
        mode=mode,
        origin=origin,
        destination=destination,
        departure=dt.datetime.fromtimestamp(departure, network.zone),
        arrival=dt.datetime.fromtimestamp(arrival, network.zone),
        distance_m=distance_m(origin.lat, origin.lon, destination.lat, destination.lon),
        geometry=[(origin.lon, origin.lat), (destination.lon, destination.lat)],
        route_id=route_id,
        trip_id=trip_id,
        route_short_name=route_short_name,
        headsign=headsign,
    )


def _footpath_seconds(network: TransitNetwork, a: int, b: int) -> int:
    fp = network.footpaths
    lo, hi = int(fp.offset[a]), int(fp.offset[a + 1])
    hits = np.flatnonzero(fp.to[lo:hi] == b)
    return int(fp.duration[lo + int(hits[0])])


def assemble_stop_journey(
    network: TransitNetwork,
    query: StopQuery,
    journey: TransitJourney,
    day: DayTimetable,
    access: Access,
) -> Itinerary:
    """Stage 5 of the GTFS-only network: a RAPTOR journey as legs (walk to the first
    stop, rides, footpaths, walk on).

    The access walk ends when the first ride leaves; footpaths start when a ride arrives.
    """
    tt = network.timetable
    origin_place = _endpoint_place(network, query.origin, "Origin")
    destination_place = _endpoint_place(network, query.destination, "Destination")
    legs: list[Leg] = []
    clock = -1
    for leg in journey.legs:
        if isinstance(leg, FootLeg):
            secs = _footpath_seconds(network, leg.from_stop, leg.to_stop)
            legs.append(
                _straight_leg(
                    network,
                    "walk",
                    _network_stop_place(network, leg.from_stop),
                    _network_stop_place(network, leg.to_stop),
                    day.origin_unix + clock,
                    day.origin_unix + clock + secs,
                )
            )
            clock += secs
            continue
        assert isinstance(leg, RideLeg)
        p = leg.pattern
        s_lo = int(day.pat_stop_off[p])
        n = int(day.pat_stop_off[p + 1]) - s_lo
        row = int(day.pat_time_off[p]) + (leg.trip - int(day.pat_trip_off[p])) * n
        dep = int(day.dep[row + leg.board_pos])
        arr = int(day.arr[row + leg.alight_pos])
        board = int(day.pat_stops[s_lo + leg.board_pos])
        alight = int(day.pat_stops[s_lo + leg.alight_pos])
        if not legs:
            walk_s = access.seconds[journey.access_stop]
            # a station's own platform is where the trip starts: no leg into it
            if origin_place.stop_id != str(tt.stop_ids[board]) and not (
                walk_s == 0 and board in _members(network, query.origin)
            ):
                legs.append(
                    _straight_leg(
                        network,
                        "walk",
                        origin_place,
                        _network_stop_place(network, board),
                        day.origin_unix + dep - walk_s,
                        day.origin_unix + dep,
                    )
                )
        trip = int(day.trip_base[leg.trip])
        route = int(tt.trip_route[trip])
        legs.append(
            _straight_leg(
                network,
                mode=str(tt.route_mode[route]),
                origin=_network_stop_place(network, board),
                destination=_network_stop_place(network, alight),
                departure=day.origin_unix + dep,
                arrival=day.origin_unix + arr,
                route_id=str(tt.route_ids[route]),
                trip_id=str(tt.trip_ids[trip]),
                route_short_name=str(tt.route_short[route]) or None,
                headsign=str(tt.trip_headsign[trip]) or None,
            )
        )
        clock = arr
    if destination_place.stop_id != str(tt.stop_ids[journey.egress_stop]) and not (
        journey.arrival == clock and journey.egress_stop in _members(network, query.destination)
    ):
        legs.append(
            _straight_leg(
                network,
                "walk",
                _network_stop_place(network, journey.egress_stop),
                destination_place,
                day.origin_unix + clock,
                day.origin_unix + journey.arrival,
            )
        )
    return Itinerary(legs=legs, transfers=journey.rides - 1)


def _members(network: TransitNetwork, endpoint: Endpoint) -> tuple[int, ...]:
    if not isinstance(endpoint, StopPoint):
        return ()
    return station_members(network.timetable, network.timetable.stop_index(endpoint.stop_id))


def walk_itinerary(network: TransitNetwork, query: StopQuery, seconds: int) -> Itinerary:
    """The walk-only option of the GTFS-only network (no leg at all when origin and
    destination are one stop)."""
    start = local_to_unix(network, query.depart) - (seconds if query.arrive_by else 0)
    origin = _endpoint_place(network, query.origin, "Origin")
    destination = _endpoint_place(network, query.destination, "Destination")
    if seconds == 0 and origin == destination:
        return Itinerary(legs=[], transfers=0, at=dt.datetime.fromtimestamp(start, network.zone))
    leg = _straight_leg(network, "walk", origin, destination, start, start + seconds)
    return Itinerary(legs=[leg], transfers=0)
