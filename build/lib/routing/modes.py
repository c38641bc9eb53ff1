"""Street modes as chains of phases: own bike, own car (and park & ride), bike-share,
car-share, and the access legs that bring each of them to transit.

Each function returns a :class:`~routing.chains.ChainResult` whose final costs are at the
destination (direct options) or at transit stops (access options). Overheads are explicit
constants so tests and the README can name them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
from numpy.typing import NDArray

from routing.base import CityBase
from routing.chains import Attachment, ChainResult, Phase, PointSet, attach, run_chain
from routing.geofence import inside, ride_weights
from routing.overlay import LiveOverlay, SharedStation, SharedSystem, SharedVehicle
from routing.streets import StreetNetwork

PICKUP_S = {"bicycle": 60.0, "scooter": 60.0, "car": 120.0}
DROPOFF_S = {"bicycle": 60.0, "scooter": 60.0, "car": 120.0}
PARK_S = 180.0  # finding a space and leaving a car park
BIKE_PARK_S = 60.0
MAX_DRIVE_S = 2 * 3600.0
MAX_RIDE_S = 90 * 60.0
ATTACH_M = 400.0
NETWORK_OF = {"bicycle": "bike", "scooter": "bike", "car": "drive"}
LEG_MODE = {"bicycle": "bikeshare", "scooter": "scooter", "car": "carshare"}


@dataclass
class ModeContext:
    """What every street-mode search of one request shares."""

    base: CityBase
    overlay: LiveOverlay
    origin: tuple[float, float]
    destination: tuple[float, float]
    walk_speed_m_s: float
    max_walk_s: float
    _weights: dict[str, NDArray[np.float64]] = field(default_factory=dict)

    def weight(self, mode: str) -> NDArray[np.float64]:
        """Edge travel times for a network under the live overlay."""
        w = self._weights.get(mode)
        if w is None:
            net = self.base.streets[mode]
            if mode == "walk":
                w = net.length_m / self.walk_speed_m_s
            elif mode == "drive":
                w = self.overlay.drive_weights(net)
            else:
                w = net.base_time_s
            self._weights[mode] = w
        return w

    def speed(self, mode: str) -> float:
        """Speed used for the straight bit between a point and its street."""
        return self.walk_speed_m_s  # the traveller walks or pushes onto the street

    def endpoint(self, which: str) -> PointSet:
        """The origin or destination as a point set."""
        lat, lon = self.origin if which == "origin" else self.destination
        return PointSet.single(which, "Origin" if which == "origin" else "Destination", lat, lon)

    def attach(self, points: PointSet, mode: str) -> Attachment:
        """Attach a point set to a network (stations and stops are cached per base)."""
        if points.kind in ("origin", "destination"):
            return attach(self.base.streets[mode], points.lat, points.lon, ATTACH_M)
        return _cached_attach(self.base.streets[mode], points)


@lru_cache(maxsize=64)
def _cached_attach(net: StreetNetwork, points: PointSet) -> Attachment:
    return attach(net, points.lat, points.lon, ATTACH_M)


@lru_cache(maxsize=16)
def stop_points(base: CityBase) -> PointSet:
    """Every transit stop as a point set (index = stop index)."""
    tt = base.timetable
    return PointSet(
        "stop",
        tuple(str(s) for s in tt.stop_ids),
        tuple(str(n) for n in tt.stop_names),
        tt.stop_lat,
        tt.stop_lon,
    )


@lru_cache(maxsize=16)
def parking_points(base: CityBase) -> PointSet:
    """Public car parks from OSM."""
    p = base.parkings
    names = tuple(n or "Car park" for n in p.name)
    return PointSet(
        "parking", tuple(f"parking:{i}" for i in range(len(p.lat))), names, p.lat, p.lon
    )


@lru_cache(maxsize=64)
def _places(places: tuple[tuple[str, str, float, float], ...]) -> PointSet:
    # keyed by (id, name, lat, lon) only: availability changes every poll, positions rarely,
    # so the point set and its street attachments stay cached across polls
    return PointSet(
        "station",
        tuple(p[0] for p in places),
        tuple(p[1] for p in places),
        np.array([p[2] for p in places]),
        np.array([p[3] for p in places]),
    )


def _station_points(stations: tuple[SharedStation, ...]) -> PointSet:
    return _places(tuple((f"{s.system_id}:{s.station_id}", s.name, s.lat, s.lon) for s in stations))


@lru_cache(maxsize=64)
def _pickup_points(
    stations: tuple[SharedStation, ...], vehicles: tuple[SharedVehicle, ...]
) -> PointSet:
    """Where a rental may start: the system's stations, then its free-floating vehicles."""
    if not vehicles:
        return _station_points(stations)
    return PointSet(
        "station",
        tuple(f"{s.system_id}:{s.station_id}" for s in stations)
        + tuple(f"{v.system_id}:vehicle:{v.vehicle_id}" for v in vehicles),
        tuple(s.name for s in stations) + tuple(f"Vehicle {v.vehicle_id}" for v in vehicles),
        np.array([s.lat for s in stations] + [v.lat for v in vehicles]),
        np.array([s.lon for s in stations] + [v.lon for v in vehicles]),
    )


def system_stations(
    overlay: LiveOverlay, system: SharedSystem
) -> tuple[tuple[SharedStation, ...], PointSet]:
    """A system's stations (live availability) and their point set."""
    stations = tuple(s for s in overlay.stations if s.system_id == system.system_id)
    return stations, _station_points(stations)


def _phase(
    ctx: ModeContext,
    mode: str,
    leg_mode: str,
    a: PointSet,
    b: PointSet,
    exit_cost: NDArray[np.float64] | float,
    limit: float,
    system: SharedSystem | None = None,
) -> Phase:
    """A phase on network ``mode``; with ``system``, its geofencing zones apply to the
    ride (no-ride edges closed) and to where the ride may end (no-parking points refused)."""
    if isinstance(exit_cost, float):
        exit_arr = np.full(b.size, exit_cost)
    else:
        exit_arr = np.asarray(exit_cost, float)
    weight = ctx.weight(mode)
    zones = ctx.overlay.zones.get(system.system_id, ()) if system is not None else ()
    if zones:
        weight = ride_weights(ctx.base.streets[mode], weight, zones)
        exit_arr = np.where(inside(zones, "ride_end_allowed", b.lat, b.lon), np.inf, exit_arr)
    return Phase(
        mode=leg_mode,
        net=ctx.base.streets[mode],
        weight=weight,
        offset_speed_m_s=ctx.speed(mode),
        source_set=a,
        source_att=ctx.attach(a, mode),
        target_set=b,
        target_att=ctx.attach(b, mode),
        exit_cost=exit_arr,
        limit_s=limit,
    )


def direct(ctx: ModeContext, mode: str) -> ChainResult:
    """Origin → destination on one network: walk, own bike ('bicycle') or own car ('car')."""
    net = {"walk": "walk", "bicycle": "bike", "car": "drive"}[mode]
    exit_s = PARK_S if mode == "car" else BIKE_PARK_S if mode == "bicycle" else 0.0
    limit = {"walk": 2 * 3600.0, "bicycle": MAX_RIDE_S, "car": MAX_DRIVE_S}[mode]
    phase = _phase(
        ctx, net, mode, ctx.endpoint("origin"), ctx.endpoint("destination"), exit_s, limit
    )
    return run_chain([phase], np.zeros(1))


def _pickup_cost(stations: tuple[SharedStation, ...], form: str) -> NDArray[np.float64]:
    ok = np.array([s.is_renting and s.vehicles_available > 0 for s in stations], bool)
    return np.where(ok, PICKUP_S.get(form, 60.0), np.inf)


def _dropoff_cost(stations: tuple[SharedStation, ...], form: str) -> NDArray[np.float64]:
    ok = np.array([s.is_returning and s.docks_available > 0 for s in stations], bool)
    return np.where(ok, DROPOFF_S.get(form, 60.0), np.inf)


def shared_phases(
    ctx: ModeContext,
    system: SharedSystem,
    end: PointSet,
    start: PointSet | None = None,
    walk_after: bool = True,
) -> list[Phase] | None:
    """Walk to a vehicle, ride it, end the rental, then walk to ``end`` points.

    Station-based systems end at a station with a free dock; free-floating-return systems
    may end anywhere, so the ride goes straight to the ``end`` points (then no walk).
    Returns None when the system has no usable station.
    """
    stations, points = system_stations(ctx.overlay, system)
    vehicles = tuple(v for v in ctx.overlay.vehicles if v.system_id == system.system_id)
    if not stations and not vehicles:
        return None
    form = system.form_factor
    net = NETWORK_OF.get(form, "bike")
    leg = LEG_MODE.get(form, "bikeshare")
    start = start or ctx.endpoint("origin")
    pickups = _pickup_points(stations, vehicles)
    pickup_cost = np.r_[
        _pickup_cost(stations, form), np.full(len(vehicles), PICKUP_S.get(form, 60.0))
    ]
    walk_to = _phase(ctx, "walk", "walk", start, pickups, pickup_cost, ctx.max_walk_s)
    if system.free_floating_return:
        ride = _phase(ctx, net, leg, pickups, end, DROPOFF_S.get(form, 60.0), MAX_DRIVE_S, system)
        return [walk_to, ride]
    if not stations:
        return None  # nowhere to return the vehicle
    ride = _phase(ctx, net, leg, pickups, points, _dropoff_cost(stations, form), MAX_RIDE_S, system)
    if not walk_after:
        return [walk_to, ride]
    walk_from = _phase(ctx, "walk", "walk", points, end, 0.0, ctx.max_walk_s)
    return [walk_to, ride, walk_from]


def shared_direct(ctx: ModeContext, system: SharedSystem) -> ChainResult | None:
    """Door to door with one shared vehicle (bike-share, car-share)."""
    phases = shared_phases(ctx, system, ctx.endpoint("destination"))
    return None if phases is None else run_chain(phases, np.zeros(1))


def access_walk(ctx: ModeContext) -> ChainResult:
    """Walk from the origin to every stop within the walking limit."""
    stops = stop_points(ctx.base)
    phase = _phase(ctx, "walk", "walk", ctx.endpoint("origin"), stops, 0.0, ctx.max_walk_s)
    return run_chain([phase], np.zeros(1))


def egress_walk(ctx: ModeContext) -> ChainResult:
    """Walk from the destination to every stop (the walk network is symmetric)."""
    stops = stop_points(ctx.base)
    phase = _phase(ctx, "walk", "walk", ctx.endpoint("destination"), stops, 0.0, ctx.max_walk_s)
    return run_chain([phase], np.zeros(1))


def access_shared(ctx: ModeContext, system: SharedSystem) -> ChainResult | None:
    """Walk → shared vehicle → (walk) → stops: e.g. walk, bike-share, then the metro."""
    phases = shared_phases(ctx, system, stop_points(ctx.base))
    return None if phases is None else run_chain(phases, np.zeros(1))


def access_park_and_ride(ctx: ModeContext) -> ChainResult | None:
    """Own car to a public car park, park, walk to stops."""
    parks = parking_points(ctx.base)
    if parks.size == 0:
        return None
    drive = _phase(ctx, "drive", "car", ctx.endpoint("origin"), parks, PARK_S, MAX_DRIVE_S)
    walk = _phase(ctx, "walk", "walk", parks, stop_points(ctx.base), 0.0, ctx.max_walk_s)
    return run_chain([drive, walk], np.zeros(1))


def holding_phases(ctx: ModeContext, system: SharedSystem, end: PointSet) -> list[Phase] | None:
    """Phases for a traveller already riding a shared vehicle: ride on, end the rental
    where the system allows (a station with a free dock, or anywhere for free-floating
    returns), then walk to ``end``."""
    stations, points = system_stations(ctx.overlay, system)
    form = system.form_factor
    net = NETWORK_OF.get(form, "bike")
    leg = LEG_MODE.get(form, "bikeshare")
    here = ctx.endpoint("origin")
    if system.free_floating_return:
        return [_phase(ctx, net, leg, here, end, DROPOFF_S.get(form, 60.0), MAX_DRIVE_S, system)]
    if not stations:
        return None
    ride = _phase(ctx, net, leg, here, points, _dropoff_cost(stations, form), MAX_DRIVE_S, system)
    walk = _phase(ctx, "walk", "walk", points, end, 0.0, ctx.max_walk_s)
    return [ride, walk]
