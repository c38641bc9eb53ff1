"""The one JSON codec of the itinerary model (:mod:`routing.itinerary`).

Encoding: :meth:`ItineraryOut.of` turns an :class:`~routing.itinerary.Itinerary` and the
live overlay it was planned on into its JSON form (live delays, alerts, the shown-clock
``duration_s`` of :func:`shown_duration_s`); :func:`compact_json` is the short form the
GTFS-only ``plan`` command prints. Decoding: :meth:`ItineraryOut.model_validate` checks a
JSON object (hostile input included) and :meth:`ItineraryOut.to_itinerary` gives the
model back, which is how live trips read the itinerary a traveller follows.

The pydantic models are the schema of that JSON, nothing more: the API serves them (and
documents them in its OpenAPI document) and the live-trip engine reads them, so they live
in routing, below both, and know nothing of HTTP.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, Field

from routing.itinerary import Itinerary, Leg, Place
from routing.overlay import LiveOverlay


class PlaceOut(BaseModel):
    """A point with a name; ``stop_id`` for transit stops."""

    name: str
    lat: float
    lon: float
    stop_id: str | None = None
    station_id: str | None = None

    @classmethod
    def of(cls, place: Place) -> PlaceOut:
        """From a routing Place."""
        return cls(
            name=place.name,
            lat=place.lat,
            lon=place.lon,
            stop_id=place.stop_id,
            station_id=place.station_id,
        )

    def to_place(self) -> Place:
        """Back to a routing Place."""
        return Place(self.name, self.lat, self.lon, self.stop_id, self.station_id)


class LineString(BaseModel):
    """GeoJSON LineString, coordinates as [lon, lat]."""

    type: Literal["LineString"] = "LineString"
    coordinates: list[tuple[float, float]]


class AlertOut(BaseModel):
    """A service alert touching a leg (GTFS-Realtime)."""

    alert_id: str
    effect: str
    header: str | None
    description: str | None
    simulated: bool = Field(default=False, description="From a simulated GTFS-RT feed.")


def leg_alerts(leg: Leg, overlay: LiveOverlay | None) -> list[AlertOut]:
    """Alerts whose informed entities name this leg's route, trip or end stops."""
    if overlay is None or not overlay.alerts or leg.trip_id is None:
        return []
    stops = {leg.origin.stop_id, leg.destination.stop_id}
    return [
        AlertOut(
            alert_id=a.alert_id,
            effect=a.effect,
            header=a.header,
            description=a.description,
            simulated=a.simulated,
        )
        for a in overlay.alerts
        if leg.route_id in a.route_ids or leg.trip_id in a.trip_ids or stops & set(a.stop_ids)
    ]


def _live_delay(leg: Leg, overlay: LiveOverlay | None) -> tuple[int | None, bool]:
    """(seconds late or None when no live feed speaks of the trip, from a simulator?)."""
    if overlay is None or leg.trip_id is None:
        return None, False
    delay = overlay.trip_delays.get(leg.trip_id)
    simulated = leg.trip_id in overlay.simulated_trips
    if delay is None and simulated:
        delay = 0  # the (simulated) feed says this trip runs on time
    return delay, simulated


def _hex_colour(value: str | None) -> str | None:
    """A GTFS colour as six hex digits, or None (feeds write "0" or "" for none)."""
    text = (value or "").strip().lstrip("#")
    return (
        text.upper()
        if len(text) == 6 and all(c in "0123456789abcdefABCDEF" for c in text)
        else None
    )


class LegOut(BaseModel):
    """One leg."""

    mode: str
    from_: PlaceOut = Field(alias="from")
    to: PlaceOut
    departure: dt.datetime
    arrival: dt.datetime
    duration_s: int
    distance_m: float
    route_id: str | None
    route_short_name: str | None
    route_long_name: str | None
    route_color: str | None
    route_text_color: str | None = Field(
        default=None,
        description="Transit: GTFS route_text_color (hex, no '#'), when the feed has one.",
    )
    trip_id: str | None
    headsign: str | None
    direction: str | None = Field(
        default=None,
        description="Transit: the name of the trip's last stop (where it goes, also when it has "
        "no headsign).",
    )
    agency_name: str | None
    intermediate_stops: int = Field(
        description="Transit: stops passed between boarding and alighting (a ride of n stops "
        "passes n - 1)."
    )
    system_id: str | None = None
    simulated: bool = Field(
        default=False,
        description="Shared vehicles from a simulated GBFS feed, or a transit leg whose live "
        "state (delay_s, on time, alerts) comes from a simulated GTFS-Realtime feed.",
    )
    delay_s: int | None = Field(
        default=None,
        description="Transit: seconds late at the alighting stop: the live feed's delay "
        "(0 on time; null: no live data) plus, for a bus, what traffic on its streets adds. "
        "departure and arrival are the expected times, delays included.",
    )
    scheduled_departure: dt.datetime | None = Field(
        default=None, description="Transit, when delay_s is not 0: the timetable's departure."
    )
    scheduled_arrival: dt.datetime | None = Field(
        default=None, description="Transit, when delay_s is not 0: the timetable's arrival."
    )
    alerts: list[AlertOut] = Field(default_factory=list)
    board_index: int | None = Field(
        default=None, description="Transit: position of the boarding stop in the trip."
    )
    alight_index: int | None = Field(
        default=None, description="Transit: position of the alighting stop in the trip."
    )
    drive_edges: list[int] = Field(
        default_factory=list,
        description="Drive legs: the drive-network edges driven, so a live trip can be "
        "matched to congestion on them (POST /api/v1/trips).",
    )
    geometry: LineString

    model_config = {"populate_by_name": True, "serialize_by_alias": True}

    @classmethod
    def of(cls, leg: Leg, overlay: LiveOverlay | None = None) -> LegOut:
        """From a routing Leg, with its live delay and alerts from the overlay."""
        feed_delay, live_simulated = _live_delay(leg, overlay)
        delay = feed_delay
        if leg.traffic_delay_s:  # a bus in traffic is late at its stop by that much more
            delay = (delay or 0) + leg.traffic_delay_s
        alerts = leg_alerts(leg, overlay)
        late = dt.timedelta(seconds=delay or 0)  # at the alighting stop
        late_boarding = dt.timedelta(seconds=(feed_delay or 0) + leg.traffic_board_delay_s)
        return cls.model_validate(
            {
                "delay_s": delay,
                "scheduled_departure": leg.departure - late_boarding if delay else None,
                "scheduled_arrival": leg.arrival - late if delay else None,
                "alerts": alerts,
                "mode": leg.mode,
                "from": PlaceOut.of(leg.origin),
                "to": PlaceOut.of(leg.destination),
                "departure": leg.departure,
                "arrival": leg.arrival,
                "duration_s": int((leg.arrival - leg.departure).total_seconds()),
                "distance_m": round(leg.distance_m, 1),
                "route_id": leg.route_id,
                "route_short_name": leg.route_short_name,
                "route_long_name": leg.route_long_name,
                "route_color": leg.route_color,
                "route_text_color": _hex_colour(leg.route_text_color),
                "trip_id": leg.trip_id,
                "headsign": leg.headsign,
                "direction": leg.direction,
                "agency_name": leg.agency_name,
                "intermediate_stops": leg.intermediate_stops,
                "system_id": leg.system_id,
                "simulated": leg.simulated or live_simulated or any(a.simulated for a in alerts),
                "board_index": leg.board_index,
                "alight_index": leg.alight_index,
                "drive_edges": list(leg.drive_edges),
                "geometry": LineString(
                    coordinates=[(round(x, 6), round(y, 6)) for x, y in leg.geometry]
                ),
            }
        )

    def to_leg(self) -> Leg:
        """Back to a routing Leg (times as sent: the live delay already in them)."""
        return Leg(
            mode=self.mode,
            origin=self.from_.to_place(),
            destination=self.to.to_place(),
            departure=self.departure,
            arrival=self.arrival,
            distance_m=self.distance_m,
            geometry=[(float(x), float(y)) for x, y in self.geometry.coordinates],
            route_id=self.route_id,
            route_short_name=self.route_short_name,
            route_long_name=self.route_long_name,
            route_color=self.route_color,
            route_text_color=self.route_text_color,
            trip_id=self.trip_id,
            headsign=self.headsign,
            direction=self.direction,
            agency_name=self.agency_name,
            intermediate_stops=self.intermediate_stops,
            system_id=self.system_id,
            simulated=self.simulated,
            board_index=self.board_index,
            alight_index=self.alight_index,
            drive_edges=tuple(int(e) for e in self.drive_edges),
        )


def shown_duration_s(departure: dt.datetime, arrival: dt.datetime) -> int:
    """Seconds between the clock times a traveller is shown (``HH:MM``, seconds dropped).

    "13:00 → 13:14 · 15 min" must never be shown: a duration computed from the exact
    seconds (13:00:50 → 13:14:40 is 13 min 50 s, "14 min") disagrees with the truncated
    clocks whenever the seconds differ, so the itinerary's ``duration_s`` is the difference
    of the truncated clock times, a whole number of minutes, by construction.
    """
    start = departure.replace(second=0, microsecond=0)
    end = arrival.replace(second=0, microsecond=0)
    return int((end - start).total_seconds())


class ItineraryOut(BaseModel):
    """A door-to-door option."""

    departure: dt.datetime
    arrival: dt.datetime
    duration_s: int = Field(
        description="Minutes between the HH:MM clock times of departure and arrival (in "
        "seconds, a multiple of 60), so the shown clocks and duration always agree; legs "
        "keep their exact duration_s."
    )
    transfers: int
    walk_s: int
    walk_m: float
    legs: list[LegOut]

    @classmethod
    def of(cls, it: Itinerary, overlay: LiveOverlay | None = None) -> ItineraryOut:
        """From a routing Itinerary."""
        return cls(
            departure=it.departure,
            arrival=it.arrival,
            duration_s=shown_duration_s(it.departure, it.arrival),
            transfers=it.transfers,
            walk_s=it.walk_seconds,
            walk_m=round(it.walk_metres, 1),
            legs=[LegOut.of(leg, overlay) for leg in it.legs],
        )

    def to_itinerary(self) -> Itinerary:
        """Back to a routing Itinerary."""
        return Itinerary(legs=[leg.to_leg() for leg in self.legs], transfers=self.transfers)


def itinerary_json(it: Itinerary, overlay: LiveOverlay | None = None) -> dict[str, Any]:
    """An itinerary as the API's JSON object (what ``ItineraryOut.of`` serializes to)."""
    return ItineraryOut.of(it, overlay).model_dump(mode="json", by_alias=True)


def decode_itinerary(data: Any) -> Itinerary:
    """The routing Itinerary of a JSON object in the API's form.

    Raises
    ------
    pydantic.ValidationError
        If ``data`` is not such an object.
    """
    return ItineraryOut.model_validate(data).to_itinerary()


def _compact_place(place: Place) -> dict[str, Any]:
    return {"stop_id": place.stop_id, "name": place.name, "lat": place.lat, "lon": place.lon}


def compact_json(it: Itinerary) -> dict[str, Any]:
    """The short JSON form the GTFS-only ``plan`` command prints: ISO 8601 times with the
    agency's offset, the exact ``duration_s`` (not the shown clocks') and per leg only the
    places, times and trip."""
    return {
        "departure": it.departure.isoformat(),
        "arrival": it.arrival.isoformat(),
        "duration_s": round(it.arrival.timestamp() - it.departure.timestamp()),
        "transfers": it.transfers,
        "legs": [
            {
                "mode": leg.mode,
                "from": _compact_place(leg.origin),
                "to": _compact_place(leg.destination),
                "departure": leg.departure.isoformat(),
                "arrival": leg.arrival.isoformat(),
                "route_id": leg.route_id,
                "trip_id": leg.trip_id,
                "route_short_name": leg.route_short_name,
                "headsign": leg.headsign,
            }
            for leg in it.legs
        ],
    }


def compact_answer(itineraries: list[Itinerary]) -> dict[str, Any]:
    """``{"itineraries": [...]}`` of :func:`compact_json` for one ``plan`` query."""
    return {"itineraries": [compact_json(it) for it in itineraries]}
