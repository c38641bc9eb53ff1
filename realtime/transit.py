"""GTFS-Realtime → live transit state for routing: per-trip delays, cancellations, closures.

Routing applies one delay per trip (its whole timetable shifts; see
:meth:`routing.timetable.BaseTimetable.day`), so a trip update is reduced to the delay at
its first updated stop: the feed's ``delay`` when given, otherwise the difference between
the predicted time and the scheduled time of that stop on the trip's service date.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np

from feeds.gtfs import service_day_origin
from feeds.gtfsrt import Alert, StopTimeUpdate, TripUpdates, VehiclePosition
from routing.overlay import TransitVehicle
from routing.timetable import BaseTimetable

MAX_PLAUSIBLE_DELAY_S = 6 * 3600


@dataclass
class TransitState:
    """What one GTFS-RT feed says now."""

    delays: dict[str, int] = field(default_factory=dict)
    cancelled: set[str] = field(default_factory=set)
    closed_stops: set[str] = field(default_factory=set)
    skipped: dict[str, set[str]] = field(default_factory=dict)
    vehicles: list[TransitVehicle] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    implausible: int = 0
    simulated: bool = False  # from a simulator: every trip and alert it names is labelled
    covered: set[str] = field(default_factory=set)  # matched trips it speaks of (even on time)


def _scheduled_at(tt: BaseTimetable, trip: int, stop_id: str | None) -> int | None:
    """Scheduled arrival (s from the service day origin) of a trip at a stop."""
    index = tt.find_stop_index(stop_id) if stop_id is not None else None
    if index is None:
        return None
    p = int(tt.trip_pattern[trip])
    stops = tt.pat_stops[tt.pat_stop_off[p] : tt.pat_stop_off[p + 1]]
    where = np.flatnonzero(stops == index)
    if not len(where):
        return None
    return int(tt.trip_arr[int(tt.trip_time_off[trip]) + int(where[0])])


def _first_delay(
    tt: BaseTimetable, trip: int, service_date: dt.date, updates: tuple[StopTimeUpdate, ...]
) -> int | None:
    origin = service_day_origin(service_date, tt.timezone)
    for update in updates:
        if update.schedule_relationship == "SKIPPED":
            continue
        for event in (update.arrival, update.departure):
            if event is None:
                continue
            if event.delay is not None:
                return int(event.delay)
            if event.time is not None:
                scheduled = _scheduled_at(tt, trip, update.stop_id)
                if scheduled is not None:
                    return int(event.time) - (origin + scheduled)
    return None


def transit_state(
    tt: BaseTimetable,
    trip_updates: TripUpdates,
    alerts: list[Alert],
    today: dt.date,
    positions: list[VehiclePosition] | None = None,
) -> TransitState:
    """Delays and cancellations of matched trips; stops closed by NO_SERVICE alerts;
    vehicle positions (those with coordinates) for display."""
    state = TransitState(alerts=list(alerts))
    for pos in positions or []:
        if pos.lat is None or pos.lon is None:
            continue  # NYC sends only the stop a train is at: nothing to draw
        state.vehicles.append(
            TransitVehicle(
                vehicle_id=pos.vehicle_id or pos.entity_id,
                trip_id=pos.trip_id,
                route_id=pos.trip.route_id if pos.trip else None,
                lat=pos.lat,
                lon=pos.lon,
                bearing=pos.bearing,
                stop_id=pos.stop_id,
                timestamp=pos.timestamp,
            )
        )
    for update in trip_updates.updates:
        if update.trip_id is None:
            continue
        state.covered.add(update.trip_id)
        if update.schedule_relationship == "CANCELED":
            state.cancelled.add(update.trip_id)
            continue
        trip = tt.trip_index(update.trip_id)
        if trip is None:
            continue
        skipped = {
            u.stop_id
            for u in update.stop_time_updates
            if u.schedule_relationship == "SKIPPED" and u.stop_id
        }
        if skipped:
            state.skipped[update.trip_id] = skipped
        if update.delay is not None:
            delay: int | None = int(update.delay)
        else:
            delay = _first_delay(
                tt, trip, update.trip.start_date or today, update.stop_time_updates
            )
        if delay is None:
            continue
        if abs(delay) > MAX_PLAUSIBLE_DELAY_S:
            state.implausible += 1  # a mismatched date or trip: never apply nonsense
            continue
        if delay:
            state.delays[update.trip_id] = delay
    for alert in alerts:
        if alert.effect != "NO_SERVICE":
            continue
        for entity in alert.informed_entities:
            if entity.stop_id and not entity.route_id and not entity.trip_id:
                state.closed_stops.add(entity.stop_id)
            elif entity.route_id and not entity.stop_id:
                routes = np.flatnonzero(tt.route_ids.astype(str) == entity.route_id)
                if len(routes):
                    trips = np.flatnonzero(np.isin(tt.trip_route, routes))
                    state.cancelled.update(str(t) for t in tt.trip_ids[trips])
            elif entity.trip_id:
                state.cancelled.add(entity.trip_id)
    return state
