"""A live trip's plan: the itinerary a traveller follows, read back from its JSON form.

``POST /api/v1/trips`` receives one itinerary exactly as ``GET /api/v1/plan`` returned it.
:func:`parse_plan` decodes it with the one itinerary codec (:mod:`routing.codec`) into the
routing model, checks it against the city (known trips, systems and drive edges that
follow each other; times in order; inside the city), and gives views over the model's legs
(:class:`PlanLeg`) with what live tracking needs: times, places, the drive edges and
stations and transit trips each leg depends on.

Everything here is pure: where a traveller is at a time (:func:`position_at`), what they
hold (:func:`traveller_state`), and when the plan arrives under the current live overlay
(:func:`project`), or why it no longer works.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
from pydantic import ValidationError

from correspondance import bounds
from correspondance.errors import InputError
from realtime.trips.wording import Phrase, detail, leg_note
from routing.base import CityBase
from routing.codec import ItineraryOut
from routing.itinerary import Itinerary, Leg
from routing.overlay import LiveOverlay
from routing.state import TravellerState

STREET_MODES = frozenset({"walk", "bicycle", "car", "bikeshare", "carshare"})
SHARED_MODES = frozenset({"bikeshare", "carshare"})
MAX_LEGS = 40
MAX_POINTS = 50_000
MAX_DURATION = dt.timedelta(hours=16)


class ItineraryError(InputError):
    """The itinerary of a new trip is malformed or does not fit the city."""

    code = "invalid_itinerary"


MAX_DELAY_S = 6 * 3600  # a planned delay beyond this is not believed (as realtime.transit)


@dataclass(frozen=True)
class PlanLeg:
    """One leg of a followed plan: a view over the routing :class:`~routing.itinerary.Leg`
    the codec decoded, with what live state it depends on."""

    leg: Leg
    # the live delay already in this transit leg's times when it was planned (its delay_s):
    # only a change from it makes the traveller later than the plan they were shown
    planned_delay_s: int = 0

    @property
    def mode(self) -> str:
        """The leg's mode (a transit leg's is the route's: bus, subway...)."""
        return self.leg.mode

    @property
    def departure(self) -> dt.datetime:
        """When the leg starts, as planned."""
        return self.leg.departure

    @property
    def arrival(self) -> dt.datetime:
        """When the leg ends, as planned."""
        return self.leg.arrival

    @cached_property
    def origin(self) -> tuple[float, float]:
        """Where the leg starts (lat, lon)."""
        return (self.leg.origin.lat, self.leg.origin.lon)

    @cached_property
    def destination(self) -> tuple[float, float]:
        """Where the leg ends (lat, lon)."""
        return (self.leg.destination.lat, self.leg.destination.lon)

    @property
    def origin_name(self) -> str:
        """The name of where the leg starts."""
        return self.leg.origin.name

    @property
    def destination_name(self) -> str:
        """The name of where the leg ends."""
        return self.leg.destination.name

    @cached_property
    def geometry(self) -> tuple[tuple[float, float], ...]:
        """The leg's line, (lon, lat) points."""
        return tuple(self.leg.geometry)

    @property
    def trip_id(self) -> str | None:
        """The transit trip ridden, if any."""
        return self.leg.trip_id

    @property
    def board_index(self) -> int | None:
        """Transit: position of the boarding stop in the trip."""
        return self.leg.board_index

    @property
    def alight_index(self) -> int | None:
        """Transit: position of the alighting stop in the trip."""
        return self.leg.alight_index

    @property
    def system_id(self) -> str | None:
        """The shared-mobility system of a rented vehicle."""
        return self.leg.system_id

    @property
    def drive_edges(self) -> tuple[int, ...]:
        """Drive-network edges driven (car legs)."""
        return self.leg.drive_edges

    @cached_property
    def pickup_station(self) -> str | None:
        """GBFS station id where the shared vehicle is taken."""
        if self.leg.mode not in SHARED_MODES:
            return None
        return _station_id(self.leg.system_id, self.leg.origin.station_id)

    @cached_property
    def dropoff_station(self) -> str | None:
        """...and where it is left."""
        if self.leg.mode not in SHARED_MODES:
            return None
        return _station_id(self.leg.system_id, self.leg.destination.station_id)

    @property
    def transit(self) -> bool:
        """Whether this leg rides a transit trip."""
        return self.trip_id is not None


@dataclass(frozen=True)
class TripPlan:
    """A plan being followed: the routing itinerary the codec decoded, a view of each of
    its legs, and the JSON the traveller was shown."""

    itinerary: Itinerary
    legs: tuple[PlanLeg, ...]
    json: dict[str, Any]

    @property
    def departure(self) -> dt.datetime:
        """When the plan starts."""
        return self.legs[0].departure

    @property
    def arrival(self) -> dt.datetime:
        """When the plan arrives, as planned."""
        return self.legs[-1].arrival

    @property
    def destination(self) -> tuple[float, float]:
        """Where the plan ends (lat, lon)."""
        return self.legs[-1].destination

    def modes(self) -> frozenset[str]:
        """The modes the plan uses (transit legs count as ``transit``)."""
        return frozenset("transit" if leg.transit else leg.mode for leg in self.legs)

    def leg_index_at(self, at: dt.datetime) -> int:
        """The leg under way at ``at`` (the first before departure, the last after arrival)."""
        for i, leg in enumerate(self.legs):
            if at < leg.arrival:
                return i
        return len(self.legs) - 1

    def watched(self, from_leg: int) -> tuple[set[int], set[str], set[str]]:
        """(drive edges, station ids, transit trip ids) of the legs from ``from_leg`` on."""
        edges: set[int] = set()
        stations: set[str] = set()
        trips: set[str] = set()
        for leg in self.legs[from_leg:]:
            edges.update(leg.drive_edges)
            stations.update(s for s in (leg.pickup_station, leg.dropoff_station) if s)
            if leg.trip_id:
                trips.add(leg.trip_id)
        return edges, stations, trips


def _station_id(system_id: str | None, place_id: str | None) -> str | None:
    """The GBFS station id of a place's ``station_id`` (plans write ``<system>:<station>``;
    the overlay and ``gbfs.updated`` events use the bare station id)."""
    if not place_id:
        return None
    prefix = f"{system_id}:"
    return place_id[len(prefix) :] if system_id and place_id.startswith(prefix) else place_id


def _fail(message: str, field: str = "itinerary") -> ItineraryError:
    return ItineraryError(message, field=field)


def parse_plan(base: CityBase, body: Any, overlay: LiveOverlay | None = None) -> TripPlan:
    """Read and check an itinerary as ``/api/v1/plan`` returned it.

    Raises
    ------
    ItineraryError
        Naming the first bad field: not an itinerary, too long, outside the city, times out
        of order, an unknown transit trip or shared-mobility system, drive edges that do not
        exist or do not follow each other.
    correspondance.bounds.OutOfRangeError, correspondance.bounds.NonFiniteNumberError
        A time outside the feeds' service window (with its margin), an index out of range,
        or a number that is not finite anywhere in the itinerary.
    """
    if not isinstance(body, dict):
        raise _fail("'itinerary' must be an itinerary object as GET /api/v1/plan returned it")
    bounds.check_json_values(body, "itinerary")
    legs_in = body.get("legs")
    if not isinstance(legs_in, list) or not 1 <= len(legs_in) <= MAX_LEGS:
        raise _fail(f"'itinerary.legs' must list 1 to {MAX_LEGS} legs", "itinerary.legs")
    try:
        parsed = ItineraryOut.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in ("itinerary", *first["loc"]))
        raise _fail(f"'{where}': {first['msg']}", where) from None
    window = bounds.service_window(base.timetable.validity)
    for name in ("departure", "arrival"):
        bounds.check_datetime(getattr(parsed, name), window, f"itinerary.{name}")
    west, south, east, north = base.city.bbox
    margin = 0.05
    drive = base.streets.get("drive")
    tt = base.timetable
    known_trips = set(tt.trip_ids.tolist()) if len(tt.trip_ids) else set()
    legs: list[PlanLeg] = []
    points = 0
    for i, leg in enumerate(parsed.legs):
        where = f"itinerary.legs.{i}"
        if leg.departure.tzinfo is None or leg.arrival.tzinfo is None:
            raise _fail(f"'{where}' times need a UTC offset", f"{where}.departure")
        for name in ("departure", "arrival"):
            bounds.check_datetime(getattr(leg, name), window, f"{where}.{name}")
        for name in ("board_index", "alight_index"):
            index = getattr(leg, name)
            if index is not None:
                bounds.check_index(index, f"{where}.{name}")
        if leg.arrival < leg.departure:
            raise _fail(f"'{where}' arrives before it departs", f"{where}.arrival")
        if legs and leg.departure < legs[-1].arrival - dt.timedelta(seconds=60):
            raise _fail(f"'{where}' departs before the previous leg arrives", f"{where}.departure")
        coords = leg.geometry.coordinates
        points += len(coords)
        if points > MAX_POINTS:
            raise _fail(f"the itinerary has more than {MAX_POINTS} geometry points", where)
        ends = [(leg.from_.lat, leg.from_.lon), (leg.to.lat, leg.to.lon)]
        for lat, lon in ends + [(y, x) for x, y in coords]:
            if not (
                math.isfinite(lat)
                and math.isfinite(lon)
                and south - margin <= lat <= north + margin
                and west - margin <= lon <= east + margin
            ):
                raise _fail(f"'{where}' leaves {base.city.name}", f"{where}.geometry")
        if leg.trip_id is not None:
            if leg.trip_id not in known_trips:
                raise _fail(f"'{where}.trip_id' {leg.trip_id!r} is not in the timetable")
            if leg.board_index is None or leg.alight_index is None:
                raise _fail(f"'{where}' rides a trip but has no board/alight index", where)
            if not 0 <= leg.board_index < leg.alight_index:
                raise _fail(f"'{where}' alights before it boards", f"{where}.alight_index")
        elif leg.mode not in STREET_MODES:
            raise _fail(f"'{where}.mode' {leg.mode!r} is not a street mode and has no trip_id")
        if leg.mode in ("bikeshare", "carshare"):
            if not leg.system_id:
                raise _fail(f"'{where}' is a {leg.mode} leg without system_id", where)
            if overlay is not None and overlay.systems and leg.system_id not in overlay.systems:
                raise _fail(f"'{where}.system_id' {leg.system_id!r} is not a known system")
        if leg.drive_edges:
            if drive is None or leg.mode not in ("car", "carshare"):
                raise _fail(f"'{where}.drive_edges' only belong on car legs")
            if not all(0 <= e < len(drive.tail) for e in leg.drive_edges):  # before int64
                raise _fail(f"'{where}.drive_edges' names an edge this city does not have")
            edges = np.asarray(leg.drive_edges, dtype=np.int64)
            if np.any(drive.head[edges[:-1]] != drive.tail[edges[1:]]):
                raise _fail(f"'{where}.drive_edges' do not follow each other along the streets")
        legs.append(
            PlanLeg(
                leg.to_leg(),
                planned_delay_s=max(-MAX_DELAY_S, min(MAX_DELAY_S, int(leg.delay_s or 0)))
                if leg.trip_id is not None
                else 0,
            )
        )
    if legs[-1].arrival - legs[0].departure > MAX_DURATION:
        raise _fail("the itinerary lasts more than 16 hours", "itinerary.arrival")
    itinerary = Itinerary(legs=[view.leg for view in legs], transfers=parsed.transfers)
    return TripPlan(itinerary, tuple(legs), parsed.model_dump(mode="json", by_alias=True))


# -- where the traveller is ------------------------------------------------------------------


def _along(geometry: tuple[tuple[float, float], ...], fraction: float) -> tuple[float, float]:
    """(lat, lon) at ``fraction`` of a polyline's length (equirectangular, fine at leg scale)."""
    if len(geometry) == 1:
        return geometry[0][1], geometry[0][0]
    xy = np.asarray(geometry, dtype=np.float64)
    scale = math.cos(math.radians(float(xy[:, 1].mean())))
    steps = np.hypot(np.diff(xy[:, 0]) * scale, np.diff(xy[:, 1]))
    total = float(steps.sum())
    if total == 0.0:
        return float(xy[0, 1]), float(xy[0, 0])
    target = min(max(fraction, 0.0), 1.0) * total
    cum = np.concatenate(([0.0], np.cumsum(steps)))
    k = min(int(np.searchsorted(cum, target, side="right")) - 1, len(steps) - 1)
    t = (target - cum[k]) / steps[k] if steps[k] > 0 else 0.0
    lon = xy[k, 0] + t * (xy[k + 1, 0] - xy[k, 0])
    lat = xy[k, 1] + t * (xy[k + 1, 1] - xy[k, 1])
    return float(lat), float(lon)


def leg_fraction(leg: PlanLeg, at: dt.datetime) -> float:
    """How much of ``leg`` is done at ``at``, by its schedule (0 before, 1 after)."""
    span = (leg.arrival - leg.departure).total_seconds()
    if span <= 0:
        return 1.0 if at >= leg.arrival else 0.0
    return min(max((at - leg.departure).total_seconds() / span, 0.0), 1.0)


def position_at(plan: TripPlan, at: dt.datetime) -> tuple[int, tuple[float, float]]:
    """(leg index, (lat, lon)) where the schedule puts the traveller at ``at``."""
    i = plan.leg_index_at(at)
    leg = plan.legs[i]
    return i, _along(leg.geometry, leg_fraction(leg, at))


HOLDING = {
    "bicycle": "own_bike",
    "car": "own_car",
    "bikeshare": "bikeshare",
    "carshare": "carshare",
}


def traveller_state(
    plan: TripPlan, at: dt.datetime, position: tuple[float, float] | None = None
) -> TravellerState:
    """The routing state of a traveller following ``plan`` at ``at``.

    Aboard a transit leg, the stop passed is estimated from the schedule (stops are evenly
    spread in time; the later stops are still ahead, so replanning stays correct). On a
    street leg the traveller holds the leg's vehicle, at ``position`` if one was reported,
    else where the schedule puts them.
    """
    i, here = position_at(plan, at)
    leg = plan.legs[i]
    if at < plan.departure:
        return TravellerState(at=at, lat=plan.legs[0].origin[0], lon=plan.legs[0].origin[1])
    if leg.transit and at < leg.arrival:
        assert leg.board_index is not None and leg.alight_index is not None
        passed = int(leg_fraction(leg, at) * (leg.alight_index - leg.board_index))
        stop_index = min(leg.board_index + passed, leg.alight_index - 1)
        return TravellerState(at=at, trip_id=leg.trip_id, stop_index=stop_index)
    lat, lon = position if position is not None else here
    holding = HOLDING.get(leg.mode, "nothing") if at < leg.arrival else "nothing"
    if holding == "own_car" and any(later.mode == "walk" for later in plan.legs[i + 1 :]):
        holding = "own_car"  # park & ride: the car still has to be parked first
    system = leg.system_id if holding in ("bikeshare", "carshare") else None
    return TravellerState(at=at, lat=lat, lon=lon, holding=holding, system_id=system)  # type: ignore[arg-type]


# -- the plan under live conditions ------------------------------------------------------------


@dataclass(frozen=True)
class Projection:
    """When the followed plan arrives now, or why it cannot work any more."""

    arrival: dt.datetime | None  # None when broken
    broken: str | None  # reason code when the plan no longer works
    detail: Phrase | None  # why it broke, as a code and its parameters
    legs: tuple[tuple[int, int, bool, Phrase | None], ...]  # (leg, delay_s, cancelled, note)


def _station(overlay: LiveOverlay, system_id: str | None, station_id: str) -> Any:
    for station in overlay.stations:
        if station.station_id == station_id and station.system_id == system_id:
            return station
    return None


def no_vehicle(overlay: LiveOverlay, leg: PlanLeg) -> bool:
    """Whether the leg's pick-up station (if any) has no vehicle to take now."""
    if not leg.pickup_station:
        return False
    station = _station(overlay, leg.system_id, leg.pickup_station)
    return station is not None and (station.vehicles_available <= 0 or not station.is_renting)


def no_dock(overlay: LiveOverlay, leg: PlanLeg) -> bool:
    """Whether the leg's drop-off station (if any) has no dock to leave the vehicle at now
    (a free-floating system takes it back anywhere)."""
    if not leg.dropoff_station:
        return False
    system = overlay.systems.get(leg.system_id or "")
    station = _station(overlay, leg.system_id, leg.dropoff_station)
    free_floating = system is not None and system.free_floating_return
    return (
        station is not None
        and not free_floating
        and (station.docks_available <= 0 or not station.is_returning)
    )


def project(base: CityBase, plan: TripPlan, at: dt.datetime, overlay: LiveOverlay) -> Projection:
    """Re-time the rest of ``plan`` from ``at`` under ``overlay``.

    Drive legs are re-costed over their remaining edges with the live multipliers; transit
    legs take their trip's live delay; a missed connection, a cancelled trip, a closed stop
    or edge, or a station with no vehicle to take or no dock to leave it at breaks the plan.
    """
    drive = base.streets.get("drive")
    first = plan.leg_index_at(at)
    lateness = 0.0  # seconds behind the plan so far
    out: list[tuple[int, int, bool, Phrase | None]] = []
    for i in range(first, len(plan.legs)):
        leg = plan.legs[i]
        if leg.transit:
            assert leg.trip_id is not None
            # later than the plan's own times, which already hold the delay it was planned with
            delay = int(overlay.trip_delays.get(leg.trip_id, 0)) - leg.planned_delay_s
            if leg.trip_id in overlay.cancelled_trips:
                out.append((i, delay, True, leg_note("cancelled")))
                why = detail("trip_cancelled", trip_id=leg.trip_id)
                return Projection(None, "trip_cancelled", why, tuple(out))
            closed = [
                name
                for name, (lat, lon) in (
                    (leg.origin_name, leg.origin),
                    (leg.destination_name, leg.destination),
                )
                if _closed(base, overlay, lat, lon)
            ]
            if closed:
                out.append((i, delay, False, leg_note("stop_closed", stop=closed[0])))
                why = detail("stop_closed", stop=closed[0])
                return Projection(None, "stop_closed", why, tuple(out))
            if i > first and lateness > delay + 60:
                out.append((i, delay, False, leg_note("connection_missed")))
                reason = (
                    "congestion"
                    if any(plan.legs[j].drive_edges for j in range(first, i))
                    else "delay"
                )
                why = detail("connection_missed", time=leg.departure.isoformat())
                return Projection(None, reason, why, tuple(out))
            lateness = float(delay) if at < leg.departure or i > first else max(lateness, delay)
            if delay:
                out.append((i, delay, False, None))
            continue
        if (i > first or at < leg.departure) and no_vehicle(overlay, leg):
            out.append((i, 0, False, leg_note("no_vehicle", station=leg.origin_name)))
            why = detail("no_vehicle", station=leg.origin_name)
            return Projection(None, "vehicle_unavailable", why, tuple(out))
        if no_dock(overlay, leg):
            out.append((i, 0, False, leg_note("no_dock", station=leg.destination_name)))
            why = detail("no_dock", station=leg.destination_name)
            return Projection(None, "dock_unavailable", why, tuple(out))
        if leg.drive_edges and drive is not None:
            edges = np.asarray(leg.drive_edges, dtype=np.int64)
            if i == first:
                done = int(leg_fraction(leg, at) * len(edges))
                edges = edges[done:]
            mult = overlay.drive_multiplier[edges]
            if np.any(~np.isfinite(mult)):
                out.append((i, 0, False, leg_note("road_closed")))
                return Projection(None, "congestion", detail("road_closed"), tuple(out))
            extra = float(np.sum(drive.base_time_s[edges] * (mult - 1.0)))
            if extra >= 30:
                lateness += extra
                out.append((i, int(extra), False, leg_note("congestion_ahead")))
    return Projection(plan.arrival + dt.timedelta(seconds=lateness), None, None, tuple(out))


def _closed(base: CityBase, overlay: LiveOverlay, lat: float, lon: float) -> bool:
    if not overlay.closed_stops:
        return False
    tt = base.timetable
    near = np.flatnonzero((np.abs(tt.stop_lat - lat) < 1e-6) & (np.abs(tt.stop_lon - lon) < 1e-6))
    return any(str(tt.stop_ids[s]) in overlay.closed_stops for s in near)
