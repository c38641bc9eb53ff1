"""GTFS-Realtime → typed records. Pure: protobuf bytes in, frozen dataclasses out.

:func:`parse_feed` decodes the bytes (refusing garbage with :class:`FeedError`); then
:func:`parse_trip_updates`, :func:`parse_vehicle_positions` and :func:`parse_alerts` read
its entities. Enumerations are kept as the spec's own names (``"CANCELED"``, ``"SKIPPED"``,
``"NO_SERVICE"``), so nothing depends on protobuf outside this module.

Realtime trip ids do not always equal static ones, so tying a realtime trip to a static
``trip_id`` is a pluggable :class:`TripMatcher`: :class:`ExactTripMatcher` for feeds that use
the static ids, :class:`NycSuffixTripMatcher` for the MTA subway (see its docstring).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final, Protocol

from google.protobuf.message import DecodeError  # type: ignore[import-untyped]
from google.transit import gtfs_realtime_pb2

from feeds.errors import FeedError

FeedMessage = Any
"""A decoded ``transit_realtime.FeedMessage`` (protobuf; untyped for mypy)."""

MAX_UNMATCHED_SHOWN: Final = 10


# ---------------------------------------------------------------------------- models


@dataclass(frozen=True)
class TripDescriptor:
    """A realtime trip reference as the feed sent it (``TripDescriptor``).

    ``start_date`` is the service date; ``schedule_relationship`` the spec's name
    (``SCHEDULED``, ``ADDED``, ``UNSCHEDULED``, ``CANCELED``, ``REPLACEMENT``, ``DUPLICATED``,
    ``DELETED``, ``NEW``).
    """

    trip_id: str | None
    route_id: str | None
    direction_id: int | None
    start_time: str | None
    start_date: date | None
    schedule_relationship: str


@dataclass(frozen=True)
class StopTimeEvent:
    """Arrival or departure prediction: a ``delay`` (s, + late) and/or an absolute ``time``."""

    delay: int | None
    time: int | None
    uncertainty: int | None


@dataclass(frozen=True)
class StopTimeUpdate:
    """One stop of a trip update; ``schedule_relationship``: SCHEDULED, SKIPPED, NO_DATA..."""

    stop_sequence: int | None
    stop_id: str | None
    arrival: StopTimeEvent | None
    departure: StopTimeEvent | None
    schedule_relationship: str


@dataclass(frozen=True)
class TripUpdate:
    """A trip's realtime state.

    ``trip_id`` is the *static* trip id found by the matcher, ``None`` if it found none (the
    feed's own reference stays in ``trip``). ``schedule_relationship`` repeats
    ``trip.schedule_relationship`` because that is what the writer acts on (CANCELED, ADDED).
    """

    entity_id: str
    trip: TripDescriptor
    trip_id: str | None
    schedule_relationship: str
    vehicle_id: str | None
    timestamp: int | None
    delay: int | None
    stop_time_updates: tuple[StopTimeUpdate, ...]


@dataclass(frozen=True)
class TripUpdates:
    """Every trip update of one message, and how many could not be tied to a static trip."""

    timestamp: int
    updates: tuple[TripUpdate, ...]
    matched: int
    unmatched: int
    unmatched_trip_ids: tuple[str, ...]  # the first few, for logs


@dataclass(frozen=True)
class EntitySelector:
    """What an alert is about (``informed_entity``); unset fields are ``None``.

    ``trip_id`` is the matched static trip id when the selector names a trip and a matcher
    was given to :func:`parse_alerts`.
    """

    agency_id: str | None
    route_id: str | None
    route_type: int | None
    direction_id: int | None
    stop_id: str | None
    trip: TripDescriptor | None
    trip_id: str | None


@dataclass(frozen=True)
class ActivePeriod:
    """When an alert applies, POSIX seconds; ``None`` is open-ended."""

    start: int | None
    end: int | None


@dataclass(frozen=True)
class Alert:
    """A service alert. ``effect``: NO_SERVICE, REDUCED_SERVICE, SIGNIFICANT_DELAYS, DETOUR, ...

    Texts are the first translation; ``None`` when the feed sent none. No active period
    means always active.
    """

    alert_id: str
    cause: str
    effect: str
    active_periods: tuple[ActivePeriod, ...]
    informed_entities: tuple[EntitySelector, ...]
    header_text: str | None
    description_text: str | None
    url: str | None


@dataclass(frozen=True)
class VehiclePosition:
    """Where a vehicle is. Position fields are ``None`` when not sent (NYC sends only stops)."""

    entity_id: str
    vehicle_id: str | None
    label: str | None
    trip: TripDescriptor | None
    trip_id: str | None
    lat: float | None
    lon: float | None
    bearing: float | None
    speed: float | None
    current_stop_sequence: int | None
    stop_id: str | None
    current_status: str | None
    timestamp: int | None


# ---------------------------------------------------------------------------- matching


class TripMatcher(Protocol):
    """Ties a realtime trip to a static ``trip_id``, or ``None`` when it cannot."""

    def __call__(self, trip: TripDescriptor) -> str | None: ...


class ExactTripMatcher:
    """Matches when the realtime ``trip_id`` is a static trip id, character for character."""

    def __init__(self, static_trip_ids: Iterable[str]) -> None:
        self._ids = frozenset(static_trip_ids)

    def __call__(self, trip: TripDescriptor) -> str | None:
        return trip.trip_id if trip.trip_id in self._ids else None


# MTA subway trip ids: "<origin>_<route><dots><direction><path>", where origin is the trip's
# scheduled start in hundredths of a minute after midnight (6 digits), route and dots fill
# three characters ("1..", "GS.", "7X."), direction is N or S and the optional path is the
# shape/pattern ("03R"). Static ids put a service prefix before it ("ASP18GEN-1037-Sunday-00_").
_NYC_TRIP: Final = re.compile(r"(?:^|_)(\d{6})_([0-9A-Z]+)\.*([NS])([^_]*)$")


def nyc_trip_key(trip_id: str) -> tuple[str, str, str, str] | None:
    """``(origin, route, direction, path)`` of an MTA subway trip id, ``None`` if not one.

    >>> nyc_trip_key("ASP18GEN-1037-Sunday-00_048450_1..N03R")
    ('048450', '1', 'N', '03R')
    >>> nyc_trip_key("048450_1..N")
    ('048450', '1', 'N', '')
    """
    found = _NYC_TRIP.search(trip_id)
    return None if found is None else (found[1], found[2], found[3], found[4])


class NycSuffixTripMatcher:
    """Matches MTA subway realtime ids (``048450_1..N03R``) to static ids by their suffix.

    Rule, following the MTA's realtime documentation: origin time, route and direction must
    be equal; the path part must be equal when the realtime id has one (realtime ids often
    drop it: ``124900_1..N``). The same suffix repeats across service ids (Weekday,
    Saturday, Sunday timetables), so several static trips can fit. Then, when ``runs_on`` is
    given and the realtime trip has a ``start_date``, only the static trips running that
    date are kept — even a lone candidate: a Saturday trip is not Friday's train. A match
    is returned only when exactly one candidate remains: a wrong match would put a delay or
    a cancellation on the wrong trip, an unmatched one is only counted.

    Parameters
    ----------
    static_trip_ids
        Every static trip id of the timetable in use.
    runs_on
        ``runs_on(static_trip_id, service_date) -> bool``: whether that trip's service runs
        that date (the writer builds it from calendar/calendar_dates).
    """

    def __init__(
        self,
        static_trip_ids: Iterable[str],
        runs_on: Callable[[str, date], bool] | None = None,
    ) -> None:
        self._by_key: dict[tuple[str, str, str], list[tuple[str, str]]] = defaultdict(list)
        for trip_id in static_trip_ids:
            key = nyc_trip_key(trip_id)
            if key is not None:
                self._by_key[key[:3]].append((key[3], trip_id))
        self._runs_on = runs_on

    def candidates(self, trip: TripDescriptor) -> list[str]:
        """Every static trip id the realtime trip could be, before the date filter."""
        key = nyc_trip_key(trip.trip_id or "")
        if key is None:
            return []
        path = key[3]
        return [t for p, t in self._by_key.get(key[:3], ()) if not path or p == path]

    def __call__(self, trip: TripDescriptor) -> str | None:
        found = self.candidates(trip)
        if self._runs_on is not None and trip.start_date is not None:
            service_date = trip.start_date
            found = [t for t in found if self._runs_on(t, service_date)]
        return found[0] if len(found) == 1 else None


# ---------------------------------------------------------------------------- parsing


def parse_feed(data: bytes) -> FeedMessage:
    """Decode a GTFS-Realtime ``FeedMessage``.

    Parameters
    ----------
    data
        The protobuf bytes as served.

    Returns
    -------
    FeedMessage
        The decoded message (protobuf object, read it with the ``parse_*`` functions).

    Raises
    ------
    FeedError
        ``code="invalid_gtfsrt"`` when the bytes are not a complete FeedMessage (garbage,
        truncated, or missing the required header).
    """
    message = gtfs_realtime_pb2.FeedMessage()
    try:
        message.ParseFromString(data)
    except DecodeError as exc:
        raise FeedError(
            f"GTFS-Realtime: not a FeedMessage ({len(data)} bytes): {exc}", code="invalid_gtfsrt"
        ) from exc
    if not message.IsInitialized():
        missing = ", ".join(message.FindInitializationErrors())
        raise FeedError(
            f"GTFS-Realtime: incomplete FeedMessage ({len(data)} bytes), missing {missing}",
            code="invalid_gtfsrt",
        )
    return message


def _opt(message: Any, name: str) -> Any:
    return getattr(message, name) if message.HasField(name) else None


def _service_date(value: str) -> date | None:
    if not value:
        return None
    try:
        return datetime.strptime(value, "%Y%m%d").date()
    except ValueError:
        return None  # a malformed date only loses the date filter, not the update


def _trip(trip: Any) -> TripDescriptor:
    relationship = gtfs_realtime_pb2.TripDescriptor.ScheduleRelationship.Name(
        trip.schedule_relationship
    )
    return TripDescriptor(
        trip_id=_opt(trip, "trip_id"),
        route_id=_opt(trip, "route_id"),
        direction_id=_opt(trip, "direction_id"),
        start_time=_opt(trip, "start_time"),
        start_date=_service_date(trip.start_date),
        schedule_relationship=relationship,
    )


def _event(event: Any) -> StopTimeEvent:
    return StopTimeEvent(_opt(event, "delay"), _opt(event, "time"), _opt(event, "uncertainty"))


def _stop_time_update(update: Any) -> StopTimeUpdate:
    relationship = gtfs_realtime_pb2.TripUpdate.StopTimeUpdate.ScheduleRelationship.Name(
        update.schedule_relationship
    )
    return StopTimeUpdate(
        stop_sequence=_opt(update, "stop_sequence"),
        stop_id=_opt(update, "stop_id"),
        arrival=_event(update.arrival) if update.HasField("arrival") else None,
        departure=_event(update.departure) if update.HasField("departure") else None,
        schedule_relationship=relationship,
    )


def parse_trip_updates(message: FeedMessage, match: TripMatcher) -> TripUpdates:
    """Read every ``trip_update`` entity of a message.

    Parameters
    ----------
    message
        From :func:`parse_feed`.
    match
        Ties each realtime trip to a static trip id.

    Returns
    -------
    TripUpdates
        One :class:`TripUpdate` per entity with a trip update, in feed order (deleted
        entities are skipped), with the matched / unmatched counts.
    """
    updates: list[TripUpdate] = []
    unmatched: list[str] = []
    for entity in message.entity:
        if not entity.HasField("trip_update") or entity.is_deleted:
            continue
        update = entity.trip_update
        trip = _trip(update.trip)
        static_id = match(trip)
        if static_id is None:
            unmatched.append(trip.trip_id or f"(entity {entity.id})")
        updates.append(
            TripUpdate(
                entity_id=entity.id,
                trip=trip,
                trip_id=static_id,
                schedule_relationship=trip.schedule_relationship,
                vehicle_id=_opt(update.vehicle, "id") if update.HasField("vehicle") else None,
                timestamp=_opt(update, "timestamp"),
                delay=_opt(update, "delay"),
                stop_time_updates=tuple(_stop_time_update(s) for s in update.stop_time_update),
            )
        )
    return TripUpdates(
        timestamp=message.header.timestamp,
        updates=tuple(updates),
        matched=len(updates) - len(unmatched),
        unmatched=len(unmatched),
        unmatched_trip_ids=tuple(unmatched[:MAX_UNMATCHED_SHOWN]),
    )


def parse_vehicle_positions(message: FeedMessage, match: TripMatcher) -> list[VehiclePosition]:
    """Read every ``vehicle`` entity of a message (deleted entities skipped).

    Returns
    -------
    list[VehiclePosition]
        In feed order; ``trip_id`` is the matched static trip, ``None`` if unmatched.
    """
    out: list[VehiclePosition] = []
    for entity in message.entity:
        if not entity.HasField("vehicle") or entity.is_deleted:
            continue
        vehicle = entity.vehicle
        trip = _trip(vehicle.trip) if vehicle.HasField("trip") else None
        position = vehicle.position if vehicle.HasField("position") else None
        descriptor = vehicle.vehicle if vehicle.HasField("vehicle") else None
        status = (
            gtfs_realtime_pb2.VehiclePosition.VehicleStopStatus.Name(vehicle.current_status)
            if vehicle.HasField("current_status")
            else None
        )
        out.append(
            VehiclePosition(
                entity_id=entity.id,
                vehicle_id=None if descriptor is None else _opt(descriptor, "id"),
                label=None if descriptor is None else _opt(descriptor, "label"),
                trip=trip,
                trip_id=None if trip is None else match(trip),
                lat=None if position is None else position.latitude,
                lon=None if position is None else position.longitude,
                bearing=None if position is None else _opt(position, "bearing"),
                speed=None if position is None else _opt(position, "speed"),
                current_stop_sequence=_opt(vehicle, "current_stop_sequence"),
                stop_id=_opt(vehicle, "stop_id"),
                current_status=status,
                timestamp=_opt(vehicle, "timestamp"),
            )
        )
    return out


def _first_text(message: Any, name: str) -> str | None:
    if not message.HasField(name):
        return None
    translations = getattr(message, name).translation
    return str(translations[0].text) if translations else None


def parse_alerts(message: FeedMessage, match: TripMatcher | None = None) -> list[Alert]:
    """Read every ``alert`` entity of a message (deleted entities skipped).

    Parameters
    ----------
    message
        From :func:`parse_feed`.
    match
        Optional: ties informed trips to static trip ids (``EntitySelector.trip_id``).

    Returns
    -------
    list[Alert]
        In feed order; ``cause``/``effect`` are the spec's names (defaults
        ``UNKNOWN_CAUSE``/``UNKNOWN_EFFECT`` when unset, as the spec says).
    """
    out: list[Alert] = []
    for entity in message.entity:
        if not entity.HasField("alert") or entity.is_deleted:
            continue
        alert = entity.alert
        selectors = []
        for informed in alert.informed_entity:
            trip = _trip(informed.trip) if informed.HasField("trip") else None
            selectors.append(
                EntitySelector(
                    agency_id=_opt(informed, "agency_id"),
                    route_id=_opt(informed, "route_id"),
                    route_type=_opt(informed, "route_type"),
                    direction_id=_opt(informed, "direction_id"),
                    stop_id=_opt(informed, "stop_id"),
                    trip=trip,
                    trip_id=None if trip is None or match is None else match(trip),
                )
            )
        out.append(
            Alert(
                alert_id=entity.id,
                cause=gtfs_realtime_pb2.Alert.Cause.Name(alert.cause),
                effect=gtfs_realtime_pb2.Alert.Effect.Name(alert.effect),
                active_periods=tuple(
                    ActivePeriod(_opt(p, "start"), _opt(p, "end")) for p in alert.active_period
                ),
                informed_entities=tuple(selectors),
                header_text=_first_text(alert, "header_text"),
                description_text=_first_text(alert, "description_text"),
                url=_first_text(alert, "url"),
            )
        )
    return out
