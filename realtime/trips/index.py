"""What can change → the active trips whose remaining legs depend on it.

:class:`TripIndex` maps drive edges, shared-mobility stations and transit trips to the trips
that watch them (:meth:`~realtime.trips.plan_view.TripPlan.watched`), so the trip engine
looks up only the trips an event touches.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from correspondance.store import StateStore
from realtime.trips.plan_view import TripPlan
from realtime.trips.sessions import INCIDENT_STATS_TTL_S, incident_trips_key, trip_digest
from routing.overlay import LiveOverlay

CONGESTION_CHANGED = "congestion.changed"
GBFS_UPDATED = "gbfs.updated"
GTFSRT_UPDATED = "gtfsrt.updated"


@dataclass
class TripIndex:
    """What can change → the active trips whose remaining legs depend on it."""

    edges: dict[int, set[str]] = field(default_factory=lambda: defaultdict(set))
    stations: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    transit: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    _keys: dict[str, tuple[set[int], set[str], set[str]]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, trip_id: object) -> bool:
        return trip_id in self._keys

    @property
    def trips(self) -> list[str]:
        """Every indexed trip."""
        return list(self._keys)

    def put(self, trip_id: str, plan: TripPlan, from_leg: int) -> None:
        """Index (or re-index) a trip by its legs from ``from_leg`` on."""
        self.remove(trip_id)
        keys = plan.watched(from_leg)
        self._keys[trip_id] = keys
        for e in keys[0]:
            self.edges[e].add(trip_id)
        for s in keys[1]:
            self.stations[s].add(trip_id)
        for t in keys[2]:
            self.transit[t].add(trip_id)

    def remove(self, trip_id: str) -> None:
        """Forget a trip."""
        keys = self._keys.pop(trip_id, None)
        if keys is None:
            return
        tables: tuple[dict[Any, set[str]], ...] = (self.edges, self.stations, self.transit)
        watched: tuple[set[Any], ...] = keys
        for table, ids in zip(tables, watched, strict=True):
            for k in ids:
                bucket = table.get(k)
                if bucket is not None:
                    bucket.discard(trip_id)
                    if not bucket:
                        del table[k]

    def touched(self, edges: Any = (), stations: Any = (), transit: Any = ()) -> set[str]:
        """Trips depending on any of these edges, stations or transit trips."""
        out: set[str] = set()
        for e in edges:
            out |= self.edges.get(int(e), set())
        for s in stations:
            out |= self.stations.get(s, set())
        for t in transit:
            out |= self.transit.get(t, set())
        return out


def touched_by(
    index: TripIndex, kind: str, payload: dict[str, Any], seen: LiveOverlay, current: LiveOverlay
) -> tuple[set[str], str, set[int] | None] | None:
    """The indexed trips a live change touches (``seen``: the overlay before it, ``current``:
    after), the reason a suggestion would give, and for congestion the drive edges whose
    multiplier changed; None for an event that changes nothing the index watches."""
    touched: set[str] = set()
    reason = "congestion"
    changed_edges: set[int] | None = None
    if kind == CONGESTION_CHANGED:
        # diff the overlay itself: the event lists at most 1000 edges
        before = seen.drive_multiplier
        after = current.drive_multiplier
        changed = np.flatnonzero(before != after) if before is not after else ()
        touched = index.touched(edges=changed)
        changed_edges = {int(e) for e in changed}
    elif kind == GTFSRT_UPDATED:
        reason = "delay"
        trips = {
            t
            for t in current.trip_delays.keys() | seen.trip_delays.keys()
            if current.trip_delays.get(t) != seen.trip_delays.get(t)
        }
        trips |= set(current.cancelled_trips ^ seen.cancelled_trips)
        touched = index.touched(transit=trips)
        if current.closed_stops != seen.closed_stops:
            touched |= {t for t in index.trips if index._keys[t][2]}
    elif kind == GBFS_UPDATED:
        reason = "vehicle_unavailable"
        touched = index.touched(stations=payload.get("station_ids", ()))
    else:
        return None
    return touched, reason, changed_edges


async def count_incident(
    store: StateStore,
    city: str,
    index: TripIndex,
    incidents: dict[str, set[str]],
    payload: dict[str, Any],
) -> None:
    """Record which of this engine's trips an operator's incident touches (declared or
    edited: the set of its own trips is replaced), as digests in a shared set, so the
    count over every engine process is the set's size."""
    incident = str(payload.get("incident_id", ""))
    if not incident:
        return
    touched = index.touched(edges=payload.get("edges", ()))
    before = {t for t, on_trip in incidents.items() if incident in on_trip}
    for trip_id in before - touched:
        incidents[trip_id].discard(incident)
    for trip_id in touched:
        incidents.setdefault(trip_id, set()).add(incident)
    key = incident_trips_key(city, incident)
    gone = [trip_digest(t) for t in before - touched]
    if gone:
        await store.srem(key, *gone)
    if touched:
        await store.sadd(key, *(trip_digest(t) for t in touched))
        await store.expire(key, INCIDENT_STATS_TTL_S)
