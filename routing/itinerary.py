"""The itinerary model: :class:`Place`, :class:`Leg` and :class:`Itinerary`.

One model for every planner (:mod:`routing.plan` over a city build, the GTFS-only
``plan`` command) and every consumer: the JSON codec (:mod:`routing.codec`) encodes it for
the API and the CLI and decodes it back for live trips (:mod:`realtime.trips.plan_view`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


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
    """A door-to-door option.

    ``at`` is the time of an itinerary with no legs at all (origin and destination are one
    stop: already there); itineraries with legs take their times from them.
    """

    legs: list[Leg]
    transfers: int
    at: dt.datetime | None = None

    @property
    def departure(self) -> dt.datetime:
        """When the first leg starts."""
        if not self.legs:
            assert self.at is not None, "an itinerary without legs needs its time"
            return self.at
        return self.legs[0].departure

    @property
    def arrival(self) -> dt.datetime:
        """When the last leg ends."""
        if not self.legs:
            assert self.at is not None, "an itinerary without legs needs its time"
            return self.at
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
