"""Decision deadlines: until when a traveller can still act on a change ahead.

A live change matters to a traveller only until they pass the last point where they could
still do something about it: the last junction before a closed or jammed street, the stop
where they would board a cancelled or late connection (or, aboard it, where they get off),
the station where they would pick up a vehicle that is no longer there. That moment, on the
trip's clock, is the trip's *decision deadline* for the change; the engine works on the
affected trips nearest deadline first (:class:`DeadlineQueue`).

Everything here is pure.
"""

from __future__ import annotations

import datetime as dt
import heapq
import itertools
from collections.abc import Collection, Iterator
from dataclasses import dataclass

import numpy as np

from realtime.trips.plan_view import (
    PlanLeg,
    TripPlan,
    _closed,
    leg_fraction,
    no_dock,
    no_vehicle,
)
from realtime.trips.repair import last_junction
from routing.base import CityBase
from routing.overlay import LiveOverlay


def _edge_time(leg: PlanLeg, index: int) -> dt.datetime:
    """When the schedule has the traveller at the tail of the leg's ``index``-th drive edge
    (edges evenly spread in time, as :func:`~realtime.trips.plan_view.project` assumes)."""
    return leg.departure + (leg.arrival - leg.departure) * (index / len(leg.drive_edges))


def _station_trouble(overlay: LiveOverlay, leg: PlanLeg) -> dt.datetime | None:
    if no_vehicle(overlay, leg):
        return leg.departure  # the pick-up station
    if no_dock(overlay, leg):
        # a vehicle can be left at another station only before this one is reached
        return leg.arrival
    return None


def decision_deadline(
    base: CityBase,
    plan: TripPlan,
    at: dt.datetime,
    overlay: LiveOverlay,
    edges: Collection[int] | None = None,
) -> dt.datetime:
    """The moment (trip clock) the traveller passes the last point where a switch around
    the first trouble ahead is still possible.

    Trouble is, in the legs still ahead from ``at``: a drive edge slowed or closed in
    ``overlay`` (only those in ``edges`` when given: the edges an event changed), a transit
    connection cancelled, late or at a closed stop, a pick-up station with no vehicle or a
    drop-off station with no space. The deadline is the time the schedule reaches the last
    junction before that drive edge (:func:`~realtime.trips.repair.last_junction`), the
    affected connection's boarding stop (its alighting stop when already aboard), the pick-up
    station, or the drop-off station. With no trouble ahead, the plan's arrival. Never earlier
    than ``at``.
    """
    first = plan.leg_index_at(at)
    drive = base.streets.get("drive")
    for i in range(first, len(plan.legs)):
        leg = plan.legs[i]
        if leg.transit:
            assert leg.trip_id is not None
            troubled = (
                leg.trip_id in overlay.cancelled_trips
                or overlay.trip_delays.get(leg.trip_id, 0) != leg.planned_delay_s
                or _closed(base, overlay, *leg.origin)
                or _closed(base, overlay, *leg.destination)
            )
            if troubled:
                when = leg.departure if at < leg.departure else leg.arrival
                return max(when, at)
            continue
        station = _station_trouble(overlay, leg)
        if station is not None and (i > first or at <= station):
            return max(station, at)
        if not leg.drive_edges or drive is None:
            continue
        route = np.asarray(leg.drive_edges, dtype=np.int64)
        start = int(leg_fraction(leg, at) * len(route)) if i == first else 0
        ahead = route[start:]
        hit = ~(overlay.drive_multiplier[ahead] == 1.0)
        if edges is not None:
            hit &= np.isin(ahead, np.fromiter(edges, np.int64, len(edges)))
        where = np.flatnonzero(hit)
        if len(where):
            # the last junction before it: on a one-way chain, where the driver can turn off
            k = last_junction(drive, ahead, int(where[0]), overlay.drive_multiplier)
            return max(_edge_time(leg, start + k), at)
    return max(plan.arrival, at)


@dataclass(frozen=True)
class Pending:
    """An affected trip waiting to be evaluated."""

    trip_id: str
    reason: str
    deadline: float  # unix wall time of the decision deadline


class DeadlineQueue:
    """Affected trips, nearest decision deadline first; a trip is queued at most once
    (queued again, it keeps the earlier deadline and its first reason)."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, str]] = []
        self._entries: dict[str, Pending] = {}
        self._order = itertools.count()

    def __len__(self) -> int:
        return len(self._entries)

    def __bool__(self) -> bool:
        return bool(self._entries)

    def __contains__(self, trip_id: object) -> bool:
        return trip_id in self._entries

    def __iter__(self) -> Iterator[Pending]:
        return iter(list(self._entries.values()))

    def push(self, trip_id: str, reason: str, deadline: float) -> None:
        """Queue ``trip_id`` (or move it earlier)."""
        known = self._entries.get(trip_id)
        if known is not None and known.deadline <= deadline:
            return
        entry = Pending(trip_id, known.reason if known else reason, deadline)
        self._entries[trip_id] = entry
        heapq.heappush(self._heap, (deadline, next(self._order), trip_id))

    def pop(self) -> Pending:
        """The trip with the nearest deadline (raises IndexError when empty)."""
        while self._heap:
            deadline, _, trip_id = heapq.heappop(self._heap)
            entry = self._entries.get(trip_id)
            if entry is not None and entry.deadline == deadline:
                del self._entries[trip_id]
                return entry
        raise IndexError("pop from an empty DeadlineQueue")

    def discard(self, trip_id: str) -> None:
        """Forget ``trip_id`` if queued (its heap entry is skipped when reached)."""
        self._entries.pop(trip_id, None)
