"""A plan request as a pipeline of named stages.

``snap_endpoints`` → ``access_egress`` → ``transit_search`` → ``direct_walk`` →
``assemble`` → ``rank``. Each stage is a plain function with typed input and output.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from routing.base import CityBase
from routing.errors import OutsideCityError
from routing.raptor import FootLeg, RideLeg, TransitJourney, run_raptor
from routing.streets import Snap, StreetNetwork

MAX_DIRECT_WALK_S = 2 * 3600.0


@dataclass(frozen=True)
class PlanRequest:
    """What the traveller asks: from, to, when (aware datetime), how."""

    origin: tuple[float, float]
    destination: tuple[float, float]
    depart: dt.datetime
    walk_speed_m_s: float = 1.3
    max_access_walk_s: float = 1200.0
    max_snap_m: float = 500.0
    max_rides: int = 5
    modes: frozenset[str] = frozenset({"walk", "transit"})


@dataclass(frozen=True)
class Place:
    """A named point; ``stop_id`` for transit stops."""

    name: str
    lat: float
    lon: float
    stop_id: str | None = None


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
    trip_id: str | None = None
    headsign: str | None = None
    agency_name: str | None = None
    intermediate_stops: int = 0


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


@dataclass(frozen=True)
class Endpoints:
    """Stage 1 output: origin and destination snapped to the walk network."""

    origin: Snap
    destination: Snap


@dataclass
class WalkSearch:
    """A walk search from one endpoint: node costs and predecessor edges."""

    snap: Snap
    dist: NDArray[np.float64]
    pred: NDArray[np.int64]
    stop_cost: dict[int, float] = field(default_factory=dict)
    stop_via: dict[int, int] = field(default_factory=dict)  # stop → node reached through


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


def _search_from(
    walk: StreetNetwork, snap: Snap, speed: float, limit: float, targets: NDArray[np.int64]
) -> WalkSearch:
    e = snap.edge
    t_edge = walk.length_m[e] / speed
    off = snap.distance_m / speed
    sources = np.array([walk.tail[e], walk.head[e]], np.int64)
    cost = np.array([off + snap.fraction * t_edge, off + (1 - snap.fraction) * t_edge])
    dist, pred = walk.shortest_path(walk.length_m / speed, sources, cost, targets, limit)
    return WalkSearch(snap=snap, dist=dist, pred=pred)


def access_egress(
    base: CityBase, request: PlanRequest, ends: Endpoints
) -> tuple[WalkSearch, WalkSearch]:
    """Stage 2: bounded walk searches from the origin and from the destination to stops."""
    walk = base.streets["walk"]
    speed = request.walk_speed_m_s
    limit = request.max_access_walk_s
    none = np.zeros(0, np.int64)
    searches = (
        _search_from(walk, ends.origin, speed, limit, none),
        _search_from(walk, ends.destination, speed, limit, none),
    )
    links = base.stop_links
    linked = np.flatnonzero(links.edge >= 0)
    e = links.edge[linked]
    t_edge = walk.length_m[e] / speed
    for search in searches:
        via_tail = search.dist[walk.tail[e]] + links.fraction[linked] * t_edge
        via_head = search.dist[walk.head[e]] + (1 - links.fraction[linked]) * t_edge
        best = np.minimum(via_tail, via_head) + links.offset_m[linked] / speed
        node = np.where(via_tail <= via_head, walk.tail[e], walk.head[e])
        ok = best <= limit
        search.stop_cost = {int(s): float(c) for s, c in zip(linked[ok], best[ok], strict=True)}
        search.stop_via = {int(s): int(n) for s, n in zip(linked[ok], node[ok], strict=True)}
    return searches


def transit_search(
    base: CityBase, request: PlanRequest, access: WalkSearch, egress: WalkSearch
) -> tuple[list[TransitJourney], int]:
    """Stage 3: RAPTOR from the access stops to the egress stops.

    Returns the journeys and the day timetable's time origin (unix seconds).
    """
    local = request.depart.astimezone(base.city.tz)
    day = base.timetable.day(local.date())
    t0 = int(request.depart.timestamp()) - day.origin_unix
    sources = {s: t0 + int(np.ceil(c)) for s, c in access.stop_cost.items()}
    targets = {s: int(np.ceil(c)) for s, c in egress.stop_cost.items()}
    journeys = run_raptor(
        day,
        base.timetable.n_stops,
        base.footpaths(request.walk_speed_m_s),
        base.timetable.min_transfer_s,
        sources,
        targets,
        request.max_rides,
    )
    return journeys, day.origin_unix


def _walk_geometry(
    walk: StreetNetwork, search: WalkSearch, node: int
) -> tuple[list[tuple[float, float]], float]:
    coords: list[tuple[float, float]] = [(search.snap.lon, search.snap.lat)]
    metres = search.snap.distance_m
    for edge in walk.path_edges(search.pred, node):
        coords.extend((float(x), float(y)) for x, y in walk.edge_coords(edge))
        metres += float(walk.length_m[edge])
    if len(coords) == 1:
        coords.append((float(walk.node_lon[node]), float(walk.node_lat[node])))
    return coords, metres


def direct_walk(base: CityBase, request: PlanRequest, ends: Endpoints) -> Itinerary | None:
    """Stage 4: the walk-only option, when it takes at most two hours."""
    walk = base.streets["walk"]
    speed = request.walk_speed_m_s
    dest = ends.destination
    e = dest.edge
    targets = np.array([walk.tail[e], walk.head[e]], np.int64)
    search = _search_from(walk, ends.origin, speed, MAX_DIRECT_WALK_S, targets)
    t_edge = walk.length_m[e] / speed
    via = [
        (search.dist[walk.tail[e]] + dest.fraction * t_edge, int(walk.tail[e])),
        (search.dist[walk.head[e]] + (1 - dest.fraction) * t_edge, int(walk.head[e])),
    ]
    if ends.origin.edge == e or {int(walk.tail[e]), int(walk.head[e])} == {
        int(walk.tail[ends.origin.edge]),
        int(walk.head[ends.origin.edge]),
    }:
        via.append(
            (
                abs(ends.origin.fraction - dest.fraction) * t_edge + ends.origin.distance_m / speed,
                -1,
            )
        )
    cost, node = min(via)
    cost += dest.distance_m / speed
    if not np.isfinite(cost) or cost > MAX_DIRECT_WALK_S:
        return None
    if node >= 0:
        coords, metres = _walk_geometry(walk, search, node)
    else:
        coords, metres = [(ends.origin.lon, ends.origin.lat)], ends.origin.distance_m
    coords.append((dest.lon, dest.lat))
    metres += dest.distance_m
    tz = base.city.tz
    start = request.depart.astimezone(tz)
    leg = Leg(
        mode="walk",
        origin=Place("Origin", *request.origin),
        destination=Place("Destination", *request.destination),
        departure=start,
        arrival=start + dt.timedelta(seconds=int(np.ceil(cost))),
        distance_m=metres,
        geometry=coords,
    )
    return Itinerary(legs=[leg], transfers=0)


def assemble(
    base: CityBase,
    request: PlanRequest,
    access: WalkSearch,
    egress: WalkSearch,
    journeys: list[TransitJourney],
    origin_unix: int,
) -> list[Itinerary]:
    """Stage 5: turn RAPTOR journeys into legs with names, times and geometry."""
    tt = base.timetable
    day = tt.day(request.depart.astimezone(base.city.tz).date())
    walk = base.streets["walk"]
    tz = base.city.tz
    speed = request.walk_speed_m_s

    def at(seconds: int) -> dt.datetime:
        return dt.datetime.fromtimestamp(origin_unix + seconds, tz)

    def stop_place(stop: int) -> Place:
        return Place(
            str(tt.stop_names[stop]),
            float(tt.stop_lat[stop]),
            float(tt.stop_lon[stop]),
            str(tt.stop_ids[stop]),
        )

    itineraries = []
    for journey in journeys:
        legs: list[Leg] = []
        rides = [leg for leg in journey.legs if isinstance(leg, RideLeg)]
        first = rides[0]
        n0 = day.pat_stop_off[first.pattern + 1] - day.pat_stop_off[first.pattern]
        board_dep = int(
            day.dep[
                day.pat_time_off[first.pattern]
                + (first.trip - day.pat_trip_off[first.pattern]) * n0
                + first.board_pos
            ]
        )
        access_s = int(np.ceil(access.stop_cost[journey.access_stop]))
        coords, metres = _walk_geometry(walk, access, access.stop_via[journey.access_stop])
        stop = journey.access_stop
        coords.append((float(tt.stop_lon[stop]), float(tt.stop_lat[stop])))
        legs.append(
            Leg(
                "walk",
                Place("Origin", *request.origin),
                stop_place(stop),
                at(board_dep - access_s),
                at(board_dep),
                metres,
                coords,
            )
        )
        clock = board_dep
        for leg in journey.legs:
            if isinstance(leg, FootLeg):
                fp = base.footpaths(speed)
                row = range(fp.offset[leg.from_stop], fp.offset[leg.from_stop + 1])
                secs = next(int(fp.duration[i]) for i in row if fp.to[i] == leg.to_stop)
                a, b = leg.from_stop, leg.to_stop
                metres = float(secs * speed)
                line = [
                    (float(tt.stop_lon[a]), float(tt.stop_lat[a])),
                    (float(tt.stop_lon[b]), float(tt.stop_lat[b])),
                ]
                legs.append(
                    Leg(
                        "walk",
                        stop_place(a),
                        stop_place(b),
                        at(clock),
                        at(clock + secs),
                        metres,
                        line,
                    )
                )
                clock += secs
                continue
            p = leg.pattern
            s_lo = day.pat_stop_off[p]
            n = day.pat_stop_off[p + 1] - s_lo
            base_i = day.pat_time_off[p] + (leg.trip - day.pat_trip_off[p]) * n
            dep = int(day.dep[base_i + leg.board_pos])
            arr = int(day.arr[base_i + leg.alight_pos])
            stops = day.pat_stops[s_lo + leg.board_pos : s_lo + leg.alight_pos + 1]
            trip = int(day.trip_base[leg.trip])
            route = int(tt.trip_route[trip])
            line = [(float(tt.stop_lon[s]), float(tt.stop_lat[s])) for s in stops]
            from feeds.gtfs import haversine_m

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
            legs.append(
                Leg(
                    mode=str(tt.route_mode[route]),
                    origin=stop_place(int(stops[0])),
                    destination=stop_place(int(stops[-1])),
                    departure=at(dep),
                    arrival=at(arr),
                    distance_m=dist,
                    geometry=line,
                    route_id=str(tt.route_ids[route]),
                    route_short_name=str(tt.route_short[route]) or None,
                    route_long_name=str(tt.route_long[route]) or None,
                    route_color=str(tt.route_color[route]) or None,
                    trip_id=str(tt.trip_ids[trip]),
                    headsign=str(tt.trip_headsign[trip]) or None,
                    agency_name=str(tt.route_agency[route]) or None,
                    intermediate_stops=max(0, len(stops) - 2),
                )
            )
            clock = arr
        stop = journey.egress_stop
        coords, metres = _walk_geometry(walk, egress, egress.stop_via[stop])
        coords.append((float(tt.stop_lon[stop]), float(tt.stop_lat[stop])))
        coords.reverse()
        egress_s = journey.arrival - clock
        legs.append(
            Leg(
                "walk",
                stop_place(stop),
                Place("Destination", *request.destination),
                at(clock),
                at(clock + egress_s),
                metres,
                coords,
            )
        )
        itineraries.append(Itinerary(legs=legs, transfers=len(rides) - 1))
    return itineraries


def rank(itineraries: list[Itinerary], limit: int = 5) -> list[Itinerary]:
    """Stage 6: drop dominated options (arrival, transfers, walking), earliest first."""
    kept: list[Itinerary] = []
    for it in sorted(itineraries, key=lambda i: (i.arrival, i.transfers, i.walk_seconds)):
        dominated = any(
            k.arrival <= it.arrival
            and k.transfers <= it.transfers
            and k.walk_seconds <= it.walk_seconds
            and k.departure >= it.departure
            for k in kept
        )
        if not dominated:
            kept.append(it)
    return kept[:limit]


def plan_trip(base: CityBase, request: PlanRequest) -> list[Itinerary]:
    """Door-to-door walk + transit itineraries, best first.

    Raises
    ------
    OutsideCityError, NoStreetNearbyError, NoServiceError
    """
    ends = snap_endpoints(base, request)
    options: list[Itinerary] = []
    if "transit" in request.modes:
        access, egress = access_egress(base, request, ends)
        journeys, origin_unix = transit_search(base, request, access, egress)
        options += assemble(base, request, access, egress, journeys, origin_unix)
    if "walk" in request.modes:
        walk_only = direct_walk(base, request, ends)
        if walk_only is not None:
            options.append(walk_only)
    return rank(options)
