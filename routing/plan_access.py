"""Planner stages 1 and 2: the request, its shared context, the endpoints snapped to the
streets, and the access options (every way of reaching transit stops from the origin).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from correspondance.geo import WALK_SPEED_M_S, haversine_m
from routing.base import CityBase
from routing.chains import ChainResult
from routing.errors import OutsideCityError
from routing.gtfs_network import (
    CoordPoint,
    Endpoint,
    StopPoint,
    StopQuery,
    TransitNetwork,
    station_members,
)
from routing.itinerary import Leg
from routing.modes import (
    ModeContext,
    access_park_and_ride,
    access_shared,
    access_walk,
)
from routing.overlay import LiveOverlay
from routing.streets import Snap

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


# -- the GTFS-only network (routing.gtfs_network): one footpath at each end --------------


@dataclass(frozen=True)
class Access:
    """Stops reachable on foot from (or to) an endpoint, with the walk in seconds."""

    seconds: dict[int, int]


def access_times(network: TransitNetwork, endpoint: Endpoint, *, outbound: bool) -> Access:
    """Stops within one footpath of an endpoint and the walk to (or from) each.

    ``outbound`` walks away from the endpoint (access); otherwise towards it (egress). A
    stop endpoint reaches itself in 0 s and its footpath neighbours (transfers.txt
    included); a coordinate reaches stops within ``max_transfer_walk_m``.
    """
    tt = network.timetable
    if isinstance(endpoint, StopPoint):
        stop = tt.stop_index(endpoint.stop_id)
        # a station is its platforms: each is reached in 0 s, never through the station's
        # own transfers.txt minimum time (that is for changing between two rides)
        members = station_members(tt, stop)
        seconds = dict.fromkeys(members, 0)
        fp = network.footpaths
        for member in members:
            if outbound:
                lo, hi = int(fp.offset[member]), int(fp.offset[member + 1])
                near, cost = fp.to[lo:hi], fp.duration[lo:hi]
            else:
                into = fp.to == member
                near = np.searchsorted(fp.offset, np.flatnonzero(into), side="right") - 1
                cost = fp.duration[into]
            for s, c in zip(near.tolist(), cost.tolist(), strict=True):
                if c >= 0 and int(s) not in members and c < seconds.get(int(s), c + 1):
                    seconds[int(s)] = int(c)
        return Access(seconds)
    costs = _walk_seconds_to_stops(network, endpoint)
    ok = np.flatnonzero(np.isfinite(costs))
    return Access({int(s): math.ceil(float(costs[s])) for s in ok})


def _walk_seconds_to_stops(network: TransitNetwork, point: CoordPoint) -> NDArray[np.float64]:
    """Seconds from a coordinate to every stop (inf beyond ``max_transfer_walk_m``)."""
    tt = network.timetable
    speed = network.walk_speed_m_s
    if network.walk is None or network.stop_links is None:
        metres = haversine_m(point.lat, point.lon, tt.stop_lat, tt.stop_lon)
        return np.where(metres <= network.max_transfer_walk_m, metres / speed, np.inf)
    walk, links = network.walk, network.stop_links
    # The multi-source pattern of routing.plan.access_egress, bounded by the footpath limit.
    snap = walk.snap(point.lat, point.lon, network.max_transfer_walk_m)
    limit_m = network.max_transfer_walk_m
    e = snap.edge
    sources = np.array([walk.tail[e], walk.head[e]], np.int64)
    cost = np.array(
        [
            snap.distance_m + snap.fraction * walk.length_m[e],
            snap.distance_m + (1 - snap.fraction) * walk.length_m[e],
        ]
    )
    dist, _pred = walk.shortest_path(walk.length_m, sources, cost, np.zeros(0, np.int64), limit_m)
    out = np.full(tt.n_stops, np.inf)
    linked = np.flatnonzero(links.edge >= 0)
    le = links.edge[linked]
    via_tail = dist[walk.tail[le]] + links.fraction[linked] * walk.length_m[le]
    via_head = dist[walk.head[le]] + (1 - links.fraction[linked]) * walk.length_m[le]
    metres = np.minimum(via_tail, via_head) + links.offset_m[linked]
    same_edge = le == e
    along = np.abs(links.fraction[linked] - snap.fraction) * walk.length_m[e]
    metres = np.where(
        same_edge, np.minimum(metres, snap.distance_m + along + links.offset_m[linked]), metres
    )
    ok = metres <= limit_m
    out[linked[ok]] = metres[ok] / speed
    return out


def direct_walk_seconds(network: TransitNetwork, query: StopQuery) -> int | None:
    """Seconds to walk from origin to destination with no ride, or None if out of reach.

    The same stop is 0 s; two stops use their footpath (so transfers.txt applies); any
    other pair walks at most ``max_transfer_walk_m``.
    """
    o, d = query.origin, query.destination
    tt = network.timetable
    if isinstance(o, StopPoint) and isinstance(d, StopPoint):
        a, b = tt.stop_index(o.stop_id), tt.stop_index(d.stop_id)
        if a == b:
            return 0
        return access_times(network, o, outbound=True).seconds.get(b)
    if isinstance(d, StopPoint):
        return access_times(network, o, outbound=True).seconds.get(tt.stop_index(d.stop_id))
    if isinstance(o, StopPoint):
        return access_times(network, d, outbound=False).seconds.get(tt.stop_index(o.stop_id))
    if network.walk is None:
        metres = float(haversine_m(o.lat, o.lon, d.lat, d.lon))
    else:
        metres = _street_metres(network, o, d)
    if metres > network.max_transfer_walk_m:
        return None
    return math.ceil(metres / network.walk_speed_m_s)


def _street_metres(network: TransitNetwork, o: CoordPoint, d: CoordPoint) -> float:
    walk = network.walk
    assert walk is not None  # only called with an extract
    a = walk.snap(o.lat, o.lon, network.max_transfer_walk_m)
    b = walk.snap(d.lat, d.lon, network.max_transfer_walk_m)
    ea, eb = a.edge, b.edge
    sources = np.array([walk.tail[ea], walk.head[ea]], np.int64)
    cost = np.array(
        [
            a.distance_m + a.fraction * walk.length_m[ea],
            a.distance_m + (1 - a.fraction) * walk.length_m[ea],
        ]
    )
    targets = np.array([walk.tail[eb], walk.head[eb]], np.int64)
    limit = network.max_transfer_walk_m
    dist, _pred = walk.shortest_path(walk.length_m, sources, cost, targets, limit)
    best = min(
        dist[walk.tail[eb]] + b.fraction * walk.length_m[eb],
        dist[walk.head[eb]] + (1 - b.fraction) * walk.length_m[eb],
    )
    if ea == eb:
        best = min(best, a.distance_m + abs(a.fraction - b.fraction) * walk.length_m[ea])
    return float(best + b.distance_m)
