"""The single writer of live state, and the followers that mirror it in other processes.

Feed pollers and (later) the report fuser never touch routing data: they hand updates to
:class:`LiveWriter`, which publishes a new overlay version (one reference swap), stores the
new state in the shared store and publishes one event naming exactly what changed.
:class:`LiveFollower` runs in API workers of other processes: on each event it reloads the
named state from the store and applies it to its own overlay holder.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from correspondance.store import Event, Fence, StateStore
from realtime.transit import TransitState
from routing.overlay import (
    GeoZone,
    LiveAlert,
    OverlayHolder,
    SharedStation,
    SharedSystem,
    SharedVehicle,
)

GBFS_UPDATED = "gbfs.updated"
GTFSRT_UPDATED = "gtfsrt.updated"
CONGESTION_CHANGED = "congestion.changed"
MAX_IDS_IN_EVENT = 1000


def gbfs_state_key(city: str, system_id: str) -> str:
    """Store key of one shared-mobility system's latest state."""
    return f"live:{city}:gbfs:{system_id}"


def congestion_state_key(city: str) -> str:
    """Store key of the fused congestion map of a city (edge multipliers, no contributors)."""
    return f"live:{city}:congestion"


def encode_congestion(multipliers: dict[int, float]) -> bytes:
    """The stored form of a fused congestion map (JSON has no infinity: closures apart)."""
    state = {
        "multipliers": {str(e): m for e, m in sorted(multipliers.items()) if m != float("inf")},
        "closed": sorted(e for e, m in multipliers.items() if m == float("inf")),
    }
    return json.dumps(state, separators=(",", ":")).encode()


def decode_congestion(raw: bytes) -> dict[int, float]:
    """Read back :func:`encode_congestion`."""
    state = json.loads(raw)
    fused = {int(e): float(m) for e, m in state["multipliers"].items()}
    fused.update({int(e): float("inf") for e in state["closed"]})
    return fused


def gtfsrt_state_key(city: str) -> str:
    """Store key of the merged live transit state of a city."""
    return f"live:{city}:gtfsrt"


def _live_alert(alert: Any, simulated: bool = False) -> LiveAlert:
    entities = alert.informed_entities
    return LiveAlert(
        simulated=simulated,
        alert_id=alert.alert_id,
        effect=alert.effect,
        header=alert.header_text,
        description=alert.description_text,
        route_ids=tuple(sorted({e.route_id for e in entities if e.route_id})),
        stop_ids=tuple(sorted({e.stop_id for e in entities if e.stop_id})),
        trip_ids=tuple(sorted({e.trip_id for e in entities if e.trip_id})),
    )


def _alert_from_json(a: dict[str, Any]) -> LiveAlert:
    return LiveAlert(
        alert_id=str(a["alert_id"]),
        effect=str(a["effect"]),
        header=a.get("header"),
        description=a.get("description"),
        route_ids=tuple(a.get("route_ids", ())),
        stop_ids=tuple(a.get("stop_ids", ())),
        trip_ids=tuple(a.get("trip_ids", ())),
        simulated=bool(a.get("simulated", False)),
    )


def _availability(s: SharedStation) -> tuple[int, int, bool, bool]:
    return (s.vehicles_available, s.docks_available, s.is_renting, s.is_returning)


class LiveWriter:
    """Applies live updates for one city: overlay first, then store, then the event."""

    def __init__(
        self,
        city: str,
        holder: OverlayHolder,
        store: StateStore,
        fence: Fence | None = None,
        epoch: int = 0,
    ) -> None:
        self.city = city
        self.holder = holder
        self.store = store
        # Every write is fenced by the writer lock (when given): a writer that lost it gets
        # FencedOutError and writes nothing; every event names the writer's epoch.
        self.fence = fence
        self.epoch = epoch
        self._transit: dict[str, TransitState] = {}
        self._congestion: dict[int, float] | None = None  # last fused map applied

    async def apply_transit(self, feed_id: str, state: TransitState) -> Event | None:
        """Replace one GTFS-RT feed's delays, cancellations, closures and alerts.

        The overlay holds the union over every realtime feed of the city. Returns the
        ``gtfsrt.updated`` event naming the trips and stops that changed, or None.
        """
        before = self.holder.current
        self._transit[feed_id] = state
        delays: dict[str, int] = {}
        cancelled: set[str] = set()
        closed: set[str] = set()
        alerts: list[LiveAlert] = []
        skipped: dict[str, frozenset[str]] = {}
        simulated: set[str] = set()
        vehicles = [v for feed_state in self._transit.values() for v in feed_state.vehicles]
        for feed_state in self._transit.values():
            skipped.update({t: frozenset(s) for t, s in feed_state.skipped.items()})
            delays.update(feed_state.delays)
            cancelled |= feed_state.cancelled
            closed |= feed_state.closed_stops
            alerts += [_live_alert(a, feed_state.simulated) for a in feed_state.alerts]
            if feed_state.simulated:
                simulated |= feed_state.covered
        changed_trips = sorted(
            t
            for t in delays.keys() | before.trip_delays.keys()
            if delays.get(t) != before.trip_delays.get(t)
        ) + sorted(cancelled ^ set(before.cancelled_trips))
        changed_trips += sorted(
            t
            for t in skipped.keys() | before.skipped_stops.keys()
            if skipped.get(t) != before.skipped_stops.get(t) and t not in changed_trips
        )
        changed_stops = sorted(closed ^ set(before.closed_stops))
        alerts_changed = tuple(alerts) != before.alerts
        simulated_changed = frozenset(simulated) != before.simulated_trips
        if tuple(vehicles) != before.transit_vehicles:
            # positions move every poll: they update the overlay (for display) but are not
            # an event — nothing is replanned because a bus moved as scheduled
            self.holder.set_transit_state(transit_vehicles=vehicles)
        if not changed_trips and not changed_stops and not alerts_changed and not simulated_changed:
            return None
        overlay = self.holder.set_transit_state(
            cancelled_trips=cancelled,
            closed_stops=closed,
            trip_delays=delays,
            alerts=alerts,
            skipped_stops=skipped,
            simulated_trips=simulated,
        )
        stored = {
            "delays": delays,
            "cancelled": sorted(cancelled),
            "closed_stops": sorted(closed),
            "alerts": [asdict(a) for a in alerts],
            "skipped": {t: sorted(s) for t, s in skipped.items()},
            "simulated_trips": sorted(simulated),
        }
        return await self._publish(
            GTFSRT_UPDATED,
            {gtfsrt_state_key(self.city): json.dumps(stored, separators=(",", ":")).encode()},
            {
                "feed_id": feed_id,
                "trip_ids": changed_trips[:MAX_IDS_IN_EVENT],
                "n_trips_changed": len(changed_trips),
                "stop_ids": changed_stops[:MAX_IDS_IN_EVENT],
                "n_alerts": len(alerts),
                "overlay_version": overlay.version,
            },
        )

    async def apply_gbfs(
        self,
        system: SharedSystem,
        stations: list[SharedStation],
        vehicles: list[SharedVehicle],
        zones: tuple[GeoZone, ...] = (),
    ) -> Event | None:
        """Replace one system's stations and vehicles; publish ``gbfs.updated`` if changed.

        Returns the event, or None when nothing changed (no event is published then).
        """
        current = self.holder.current
        before = {s.station_id: s for s in current.stations if s.system_id == system.system_id}
        after = {s.station_id: s for s in stations}
        changed = sorted(
            sid
            for sid in before.keys() | after.keys()
            if sid not in before
            or sid not in after
            or _availability(before[sid]) != _availability(after[sid])
            or (before[sid].lat, before[sid].lon) != (after[sid].lat, after[sid].lon)
        )
        old_vehicles = {v.vehicle_id for v in current.vehicles if v.system_id == system.system_id}
        new_vehicles = {v.vehicle_id for v in vehicles}
        known = system.system_id in current.systems
        same_zones = current.zones.get(system.system_id, ()) == zones
        if known and not changed and old_vehicles == new_vehicles and same_zones:
            return None
        overlay = self.holder.replace_system(system, stations, vehicles, zones)
        state = {
            "system": asdict(system),
            # flat frozen dataclasses: their __dict__ is the record (asdict deep-copies)
            "stations": [dict(vars(s)) for s in stations],
            "vehicles": [dict(vars(v)) for v in vehicles],
            "zones": [asdict(z) for z in zones],
        }
        return await self._publish(
            GBFS_UPDATED,
            {
                gbfs_state_key(self.city, system.system_id): json.dumps(
                    state, separators=(",", ":")
                ).encode()
            },
            {
                "system_id": system.system_id,
                "simulated": system.simulated,
                "station_ids": changed[:MAX_IDS_IN_EVENT],
                "n_stations_changed": len(changed),
                "n_vehicles": len(vehicles),
                "overlay_version": overlay.version,
            },
        )

    # -- crowdsourced congestion (fused by crowdsource.fuser) ------------------------------

    async def apply_congestion(self, multipliers: dict[int, float]) -> Event | None:
        """Replace the fused congestion map: edge → multiplier (> 1, inf = closed).

        Edges of the previous map that are absent now go back to 1.0. The map is stored
        under :func:`congestion_state_key` (edge ids and multipliers only) and one
        ``congestion.changed`` event names the edges that changed. Returns None (and
        publishes nothing) when neither the map nor the overlay changes.
        """
        if self._congestion is None:
            # a restarted writer takes over what followers hold, so it can reset it later
            raw = await self.store.get(congestion_state_key(self.city))
            self._congestion = decode_congestion(raw) if raw is not None else {}
        previous = self._congestion
        current = self.holder.current.drive_multiplier
        touched = previous.keys() | multipliers.keys()
        updates = {
            e: multipliers.get(e, 1.0) for e in touched if current[e] != multipliers.get(e, 1.0)
        }
        changed = sorted(e for e in touched if previous.get(e, 1.0) != multipliers.get(e, 1.0))
        if not updates and not changed:
            return None
        overlay = self.holder.set_multipliers(updates)
        self._congestion = dict(multipliers)
        edge_ids = sorted(set(changed) | updates.keys())
        return await self._publish(
            CONGESTION_CHANGED,
            {congestion_state_key(self.city): encode_congestion(multipliers)},
            {
                "edge_ids": edge_ids[:MAX_IDS_IN_EVENT],
                "n_edges_changed": len(edge_ids),
                "n_congested": len(multipliers),
                "overlay_version": overlay.version,
            },
        )

    async def _publish(self, kind: str, state: dict[str, bytes], payload: dict[str, Any]) -> Event:
        """Store ``state`` and publish the event in one fenced step."""
        return await self.store.publish(
            kind,
            self.city,
            {**payload, "writer_epoch": self.epoch},
            fence=self.fence,
            state=state,
        )


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def decode_gbfs_state(
    raw: bytes,
) -> tuple[SharedSystem, list[SharedStation], list[SharedVehicle], tuple[GeoZone, ...]]:
    """The stored state of one system, back as routing models."""
    state: dict[str, Any] = json.loads(raw)
    zones = tuple(
        GeoZone(
            polygons=_tuples(z["polygons"]),
            ride_through_allowed=z["ride_through_allowed"],
            ride_end_allowed=z["ride_end_allowed"],
            ride_start_allowed=z["ride_start_allowed"],
        )
        for z in state.get("zones", [])
    )
    return (
        SharedSystem(**state["system"]),
        [SharedStation(**s) for s in state["stations"]],
        [SharedVehicle(**v) for v in state["vehicles"]],
        zones,
    )


class LiveFollower:
    """Keeps another process's overlay in step with the writer, from the event stream."""

    def __init__(self, city: str, holder: OverlayHolder, store: StateStore) -> None:
        self.city = city
        self.holder = holder
        self.store = store
        self.last_seq = 0
        self._congestion: dict[int, float] = {}

    async def catch_up(self) -> None:
        """Load every stored state (at start, or after losing events)."""
        await self._load_transit()
        await self._load_congestion()
        for key in await self.store.scan_keys(f"live:{self.city}:gbfs:*"):
            raw = await self.store.get(key)
            if raw is not None:
                self.holder.replace_system(*decode_gbfs_state(raw))

    async def _load_transit(self) -> bool:
        raw = await self.store.get(gtfsrt_state_key(self.city))
        if raw is None:
            return False
        stored = json.loads(raw)
        self.holder.set_transit_state(
            cancelled_trips=stored["cancelled"],
            closed_stops=stored["closed_stops"],
            trip_delays=stored["delays"],
            alerts=[_alert_from_json(a) for a in stored["alerts"]],
            skipped_stops=stored.get("skipped", {}),
            simulated_trips=stored.get("simulated_trips", ()),
        )
        return True

    async def _load_congestion(self) -> bool:
        raw = await self.store.get(congestion_state_key(self.city))
        fused = decode_congestion(raw) if raw is not None else {}
        updates = {e: fused.get(e, 1.0) for e in self._congestion.keys() | fused.keys()}
        self.holder.set_multipliers(updates)
        self._congestion = fused
        return bool(updates)

    async def apply(self, event: Event) -> bool:
        """Apply one event if it concerns this city; True if the overlay changed."""
        self.last_seq = event.seq
        if event.city != self.city:
            return False
        if event.type == GTFSRT_UPDATED:
            return await self._load_transit()
        if event.type == CONGESTION_CHANGED:
            return await self._load_congestion()
        if event.type != GBFS_UPDATED:
            return False
        raw = await self.store.get(gbfs_state_key(self.city, str(event.payload["system_id"])))
        if raw is None:
            return False
        self.holder.replace_system(*decode_gbfs_state(raw))
        return True
