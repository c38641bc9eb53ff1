"""The live overlay: versioned, immutable layers of live state over the static base.

A single writer (:class:`OverlayHolder`) builds the next :class:`LiveOverlay` by copying only
the arrays it changes (copy-on-write; a Porto Alegre drive network is 18k floats) and swaps
one reference. A query takes ``holder.current`` once and reads a consistent view to its end:
it sees every change of an update or none of them.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

import numpy as np
from numpy.typing import NDArray

from correspondance.errors import InputError
from routing.streets import StreetNetwork


@dataclass(frozen=True)
class SharedStation:
    """A shared-mobility station (GBFS station_information + station_status)."""

    system_id: str
    station_id: str
    name: str
    lat: float
    lon: float
    form_factor: str  # "bicycle" | "car" | "scooter" ...
    vehicles_available: int
    docks_available: int
    is_renting: bool = True
    is_returning: bool = True
    simulated: bool = False


@dataclass(frozen=True)
class SharedVehicle:
    """A free-floating vehicle (GBFS vehicle_status / free_bike_status)."""

    system_id: str
    vehicle_id: str
    lat: float
    lon: float
    form_factor: str
    simulated: bool = False


@dataclass(frozen=True)
class TransitVehicle:
    """Where a transit vehicle is (GTFS-RT VehiclePositions), for display only."""

    vehicle_id: str
    trip_id: str | None
    route_id: str | None
    lat: float
    lon: float
    bearing: float | None = None
    stop_id: str | None = None
    timestamp: int | None = None


@dataclass(frozen=True)
class GeoZone:
    """A geofencing rule (GBFS geofencing_zones) for one system's vehicles.

    ``polygons``: each polygon as rings of (lon, lat), exterior first, then holes.
    """

    polygons: tuple[tuple[tuple[tuple[float, float], ...], ...], ...]
    ride_through_allowed: bool = True
    ride_end_allowed: bool = True
    ride_start_allowed: bool = True


@dataclass(frozen=True)
class SharedSystem:
    """One GBFS system: its vehicle kind and where a rental may end."""

    system_id: str
    name: str
    form_factor: str
    free_floating_return: bool  # True: end the rental anywhere allowed (no dock needed)
    simulated: bool = False


@dataclass(frozen=True)
class LiveAlert:
    """A service alert as travellers see it, with what it concerns."""

    alert_id: str
    effect: str
    header: str | None
    description: str | None
    route_ids: tuple[str, ...] = ()
    stop_ids: tuple[str, ...] = ()
    trip_ids: tuple[str, ...] = ()
    simulated: bool = False  # from a simulated GTFS-RT feed


def _readonly(array: NDArray[np.float64]) -> NDArray[np.float64]:
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class LiveOverlay:
    """One consistent version of live state. Never mutated: the writer makes a new one."""

    version: int
    drive_multiplier: NDArray[np.float64]  # per drive edge; inf = closed
    cancelled_trips: frozenset[str] = frozenset()
    closed_stops: frozenset[str] = frozenset()
    trip_delays: Mapping[str, int] = field(default_factory=dict)  # trip_id → seconds late
    alerts: tuple[LiveAlert, ...] = ()
    skipped_stops: Mapping[str, frozenset[str]] = field(default_factory=dict)  # trip → stops
    transit_vehicles: tuple[TransitVehicle, ...] = ()
    # trips whose live state (delay, cancellation, on time) comes from a simulated feed
    simulated_trips: frozenset[str] = frozenset()
    zones: Mapping[str, tuple[GeoZone, ...]] = field(default_factory=dict)  # per system
    systems: Mapping[str, SharedSystem] = field(default_factory=dict)
    stations: tuple[SharedStation, ...] = ()
    vehicles: tuple[SharedVehicle, ...] = ()

    def drive_weights(self, drive: StreetNetwork) -> NDArray[np.float64]:
        """Drive edge travel times under current congestion and closures (read-only).

        Computed once per overlay version and network, then shared by every request that
        reads this version (the overlay itself never changes).
        """
        cached = self.__dict__.get("_drive_weights")
        if cached is not None and cached[0] is drive:
            weights: NDArray[np.float64] = cached[1]
            return weights
        weights = drive.base_time_s * self.drive_multiplier
        weights.flags.writeable = False
        object.__setattr__(self, "_drive_weights", (drive, weights))
        return weights


class OverlayHolder:
    """The single writer's handle: readers call :attr:`current`, the writer ``apply_*``.

    Writers are serialised by a lock; readers never take it (one reference read).
    """

    def __init__(self, drive: StreetNetwork | None) -> None:
        # ``None``: a transit-only deployment (no street network, no drive multipliers)
        self._n_edges = drive.n_edges if drive is not None else 0
        self._lock = threading.Lock()
        self._current = LiveOverlay(version=0, drive_multiplier=_readonly(np.ones(self._n_edges)))
        self._way_edges = _index_way_edges(drive) if drive is not None else {}

    @property
    def current(self) -> LiveOverlay:
        """The latest overlay (take it once per query)."""
        return self._current

    def edges_of_way(self, way_id: int) -> NDArray[np.int64]:
        """Drive edges (both directions) of an OSM way."""
        return self._way_edges.get(int(way_id), np.zeros(0, np.int64))

    def set_multipliers(self, updates: Mapping[int, float]) -> LiveOverlay:
        """Set drive-edge multipliers (1 = free flow, >1 slower, inf = closed) atomically.

        Raises
        ------
        InputError
            If an edge id is out of range or a multiplier is not ≥ 1 (or inf); nothing is
            applied then.
        """
        if not updates:
            return self._current
        edges = np.fromiter(updates.keys(), np.int64, len(updates))
        values = np.fromiter(updates.values(), np.float64, len(updates))
        bad_edges = edges[(edges < 0) | (edges >= self._n_edges)]
        if len(bad_edges):
            raise InputError(f"unknown drive edge id(s): {bad_edges[:5].tolist()}", field="edge")
        if np.any(np.isnan(values) | (values < 1.0)):
            raise InputError("multipliers must be ≥ 1 (or inf for a closure)", field="multiplier")
        with self._lock:
            multiplier = self._current.drive_multiplier.copy()
            multiplier[edges] = values
            return self._publish(drive_multiplier=_readonly(multiplier))

    def set_way_multipliers(self, updates: Mapping[int, float]) -> LiveOverlay:
        """Like :meth:`set_multipliers`, keyed by OSM way id (every edge of the way)."""
        per_edge: dict[int, float] = {}
        for way, value in updates.items():
            for edge in self.edges_of_way(way):
                per_edge[int(edge)] = value
        return self.set_multipliers(per_edge)

    def set_transit_state(
        self,
        cancelled_trips: Iterable[str] | None = None,
        closed_stops: Iterable[str] | None = None,
        trip_delays: Mapping[str, int] | None = None,
        alerts: Iterable[LiveAlert] | None = None,
        skipped_stops: Mapping[str, Iterable[str]] | None = None,
        transit_vehicles: Iterable[TransitVehicle] | None = None,
        simulated_trips: Iterable[str] | None = None,
    ) -> LiveOverlay:
        """Replace the sets of cancelled trips and closed stops, the trip delays (s), alerts."""
        with self._lock:
            changes: dict[str, object] = {}
            if simulated_trips is not None:
                changes["simulated_trips"] = frozenset(simulated_trips)
            if alerts is not None:
                changes["alerts"] = tuple(alerts)
            if transit_vehicles is not None:
                changes["transit_vehicles"] = tuple(transit_vehicles)
            if skipped_stops is not None:
                changes["skipped_stops"] = {t: frozenset(s) for t, s in skipped_stops.items()}
            if trip_delays is not None:
                changes["trip_delays"] = dict(trip_delays)
            if cancelled_trips is not None:
                changes["cancelled_trips"] = frozenset(cancelled_trips)
            if closed_stops is not None:
                changes["closed_stops"] = frozenset(closed_stops)
            return self._publish(**changes)

    def set_shared_mobility(
        self,
        systems: Iterable[SharedSystem],
        stations: Iterable[SharedStation],
        vehicles: Iterable[SharedVehicle] = (),
    ) -> LiveOverlay:
        """Replace shared-mobility systems, stations (with availability) and vehicles."""
        with self._lock:
            return self._publish(
                systems={s.system_id: s for s in systems},
                stations=tuple(stations),
                vehicles=tuple(vehicles),
            )

    def replace_system(
        self,
        system: SharedSystem,
        stations: Iterable[SharedStation],
        vehicles: Iterable[SharedVehicle] = (),
        zones: Iterable[GeoZone] = (),
    ) -> LiveOverlay:
        """Replace one shared-mobility system's stations, vehicles and geofencing zones."""
        with self._lock:
            cur = self._current
            sid = system.system_id
            systems = {**cur.systems, sid: system}
            all_zones = {**cur.zones, sid: tuple(zones)}
            kept_st = tuple(s for s in cur.stations if s.system_id != sid)
            kept_ve = tuple(v for v in cur.vehicles if v.system_id != sid)
            return self._publish(
                systems=systems,
                stations=kept_st + tuple(stations),
                vehicles=kept_ve + tuple(vehicles),
                zones=all_zones,
            )

    def _publish(self, **changes: object) -> LiveOverlay:
        new = replace(self._current, version=self._current.version + 1, **changes)  # type: ignore[arg-type]
        self._current = new  # one reference swap: readers see all of it or none
        return new


def _index_way_edges(drive: StreetNetwork) -> dict[int, NDArray[np.int64]]:
    # every way of an edge, not only the first: simplification merges ways into one edge
    edges, way_ids = drive.edge_ways()
    order = np.argsort(way_ids, kind="stable")
    ways, starts = np.unique(way_ids[order], return_index=True)
    groups = np.split(edges[order], starts[1:])
    return {int(w): g.astype(np.int64) for w, g in zip(ways, groups, strict=True)}
