"""Onward transit from a transfer point, searched once and shared by the trips of an event.

A park & ride (or any car + transit) trip driven around a closure reaches its car park later
than planned. When it still catches its connection, the cheap repair keeps it
(:func:`realtime.trips.repair.repair`). When it does not, the rest of the trip is the fastest
way on foot and by transit from the car park, leaving when the car is parked: one
:func:`routing.plan.plan_trip` (walk + transit), far cheaper than a full multimodal replan
from the traveller's state, and shared.

Sharing is exact, not by time buckets: searched from a transfer point at ``t0``, the earliest
arrival is reached by an itinerary whose first leg leaves at ``d >= t0`` (access walks end at
boarding). A traveller at the same point at any ``t`` with ``t0 <= t <= d`` can take the same
itinerary, and nothing leaving at ``t`` arrives earlier than the best leaving at ``t0``
(leaving later never arrives sooner), so it is their earliest arrival too. A walk-only answer
does not depend on the clock and is moved to ``t``. :class:`Onward` keeps, per (point,
destination), the answers found so far and searches again only when none holds.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from typing import Generic, TypeVar

from correspondance.errors import CorrespondanceError
from correspondance.geo import WALK_SPEED_M_S
from routing.base import CityBase
from routing.overlay import LiveOverlay
from routing.plan import Itinerary, PlanRequest, plan_trip

ONWARD_MODES = frozenset({"walk", "transit"})

Point = tuple[float, float]
Key = tuple[Point, Point]
K = TypeVar("K")


def earliest(options: list[Itinerary]) -> Itinerary | None:
    return min(options, key=lambda it: (it.arrival, it.transfers), default=None)


def holds(found_at: dt.datetime, it: Itinerary | None, at: dt.datetime) -> bool:
    """Whether the answer searched at ``found_at`` is also the answer at ``at``."""
    if it is None:
        return at == found_at
    if not any(leg.trip_id for leg in it.legs):
        return True  # on foot: the same walk whenever it starts
    return found_at <= at <= it.departure


def moved(it: Itinerary, at: dt.datetime) -> Itinerary:
    """A walk-only answer started at ``at`` (a transit one is left as found: it waits)."""
    if any(leg.trip_id for leg in it.legs) or it.departure >= at:
        return it
    delta = at - it.departure
    legs = [
        replace(leg, departure=leg.departure + delta, arrival=leg.arrival + delta)
        for leg in it.legs
    ]
    return Itinerary(legs, it.transfers)


class SharedSearches(Generic[K]):
    """What a search shared by the trips of one overlay holds (thread-safe): the answers
    found per key and when, a lock per key, and counts for tests and benchmarks."""

    def __init__(
        self, base: CityBase, overlay: LiveOverlay, walk_speed_m_s: float = WALK_SPEED_M_S
    ) -> None:
        self.base = base
        self.overlay = overlay
        self.walk_speed_m_s = walk_speed_m_s
        self.searches = 0  # searches run so far (tests, benchmarks)
        self.asked = 0  # answers given (shared ones included)
        self._found: dict[K, list[tuple[dt.datetime, Itinerary | None]]] = defaultdict(list)
        self._locks: dict[K, threading.Lock] = defaultdict(threading.Lock)
        self._lock = threading.Lock()

    def shared(
        self, key: K, at: dt.datetime, search: Callable[[], list[Itinerary]]
    ) -> Itinerary | None:
        """The earliest of ``search()`` for ``key`` at ``at``, run once for every ``at`` an
        answer already found also answers (:func:`holds`); a second trip asking the same
        waits for the first's answer. A search that raises a
        :class:`~correspondance.errors.CorrespondanceError` finds nothing."""
        with self._lock:
            self.asked += 1
            lock = self._locks[key]
        with lock:
            with self._lock:
                known = [it for t0, it in self._found.get(key, ()) if holds(t0, it, at)]
            if known:
                it = known[0]
            else:
                try:
                    it = earliest(search())
                except CorrespondanceError:
                    it = None
                with self._lock:
                    self.searches += 1
                    self._found[key].append((at, it))
        return moved(it, at) if it is not None else None


class Onward(SharedSearches[Key]):
    """Earliest walk + transit ways from transfer points under one overlay (thread-safe;
    one per overlay, like :class:`~realtime.trips.repair.Bypasses`); ``searches`` counts
    plan_trip runs."""

    def after(self, origin: Point, destination: Point, at: dt.datetime) -> Itinerary | None:
        """The earliest-arriving walk + transit itinerary from ``origin`` leaving at ``at``
        or later, to ``destination`` (``None`` when there is none)."""
        request = PlanRequest(
            origin, destination, at, walk_speed_m_s=self.walk_speed_m_s, modes=ONWARD_MODES
        )
        return self.shared(
            (origin, destination), at, lambda: plan_trip(self.base, request, self.overlay)
        )
