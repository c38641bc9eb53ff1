"""The typed records a GBFS feed becomes (stations, vehicles, vehicle types, geofencing
zones), and :class:`Parsed`, one document's records with what was refused and why."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar


@dataclass(frozen=True)
class StationInfo:
    """A station's fixed facts (station_information)."""

    station_id: str
    name: str
    lat: float
    lon: float
    capacity: int | None
    is_virtual_station: bool = False


@dataclass(frozen=True)
class VehicleTypeCount:
    """How many vehicles of one type a station holds (``vehicle_types_available``)."""

    vehicle_type_id: str
    count: int


@dataclass(frozen=True)
class StationStatus:
    """A station's live availability (station_status).

    ``num_vehicles_available`` is ``num_bikes_available`` in 2.x. ``num_docks_available`` is
    ``None`` when the feed omits it, which the spec allows for stations with unlimited docking
    (virtual stations): it does *not* mean zero docks.
    """

    station_id: str
    num_vehicles_available: int
    num_docks_available: int | None
    is_renting: bool
    is_returning: bool
    is_installed: bool
    last_reported: int | None
    vehicle_types_available: tuple[VehicleTypeCount, ...] = ()


@dataclass(frozen=True)
class Vehicle:
    """A vehicle from free_bike_status (2.x, ``bike_id``) or vehicle_status (3.0, ``vehicle_id``).

    A free-floating vehicle has ``lat``/``lon``; a vehicle docked at a station may have only
    ``station_id`` (the schema allows either, never neither).
    """

    vehicle_id: str
    lat: float | None
    lon: float | None
    is_reserved: bool
    is_disabled: bool
    vehicle_type_id: str | None
    station_id: str | None
    current_range_meters: float | None
    last_reported: int | None

    @property
    def is_free_floating(self) -> bool:
        """True when the vehicle has its own position (it is not only "at station X")."""
        return self.lat is not None and self.lon is not None


@dataclass(frozen=True)
class VehicleType:
    """A vehicle type (vehicle_types): what routing calls the form factor.

    ``form_factor`` is the spec's word: ``bicycle``, ``cargo_bicycle``, ``car``, ``moped``,
    ``scooter`` (2.x only), ``scooter_standing``, ``scooter_seated`` or ``other``.
    ``propulsion_type``: ``human``, ``electric_assist``, ``electric``, ``combustion``, ...
    """

    vehicle_type_id: str
    form_factor: str
    propulsion_type: str
    name: str | None
    max_range_meters: float | None


Ring = tuple[tuple[float, float], ...]
"""A closed ring of ``(lon, lat)`` positions, GeoJSON order."""


@dataclass(frozen=True)
class GeofencingZone:
    """One rule of one geofencing feature, applied to that feature's polygons.

    A feature with *n* rules gives *n* zones (GBFS rules are per vehicle type; the first rule
    matching a vehicle type wins, so zones keep feature then rule order). A feature without
    rules restricts nothing and gives no zone. 3.0 ``global_rules`` are zones with
    ``is_global=True`` and no polygons: they apply everywhere no zone overrides them.

    ``polygons``: each polygon is its rings, the exterior first, then holes.
    ``vehicle_type_ids`` empty means every vehicle type.
    2.x ``ride_allowed`` sets both ``ride_start_allowed`` and ``ride_end_allowed``.
    """

    name: str | None
    polygons: tuple[tuple[Ring, ...], ...]
    vehicle_type_ids: tuple[str, ...]
    ride_start_allowed: bool
    ride_end_allowed: bool
    ride_through_allowed: bool
    station_parking: bool | None
    maximum_speed_kph: int | None
    start: int | None
    end: int | None
    is_global: bool = False

    @property
    def ride_allowed(self) -> bool:
        """2.x meaning: a ride may start *and* end here."""
        return self.ride_start_allowed and self.ride_end_allowed


T = TypeVar("T")


@dataclass(frozen=True)
class Parsed(Generic[T]):
    """The valid records of one document, how many were rejected and why.

    ``reasons`` keeps the first few (:data:`MAX_REASONS`); ``rejected`` counts them all.
    ``last_updated`` is POSIX seconds whatever the version (3.0's RFC 3339 is converted).
    ``stale`` is only computed when the parser was given ``now``. ``notes`` lists what was
    accepted with a leniency (see the module docstring).
    """

    records: tuple[T, ...]
    last_updated: int
    ttl: int
    version: str
    rejected: int
    reasons: tuple[str, ...]
    stale: bool = False
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Discovery:
    """The auto-discovery file (gbfs.json): which feeds exist and where.

    ``feeds`` maps the spec's feed name (``station_status``, ``free_bike_status``, ...) to its
    URL, for the chosen ``language`` (2.x) — 3.0 has one list and ``language`` is ``None``.
    """

    version: str
    feeds: Mapping[str, str]
    ttl: int
    last_updated: int
    language: str | None
    stale: bool = False


@dataclass(frozen=True)
class SystemInformation:
    """The system (system_information): its id, public name and time zone."""

    system_id: str
    name: str
    timezone: str
    version: str
    ttl: int
    last_updated: int
    stale: bool = False
