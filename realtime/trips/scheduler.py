"""When each of the trip engine's trips next needs its tick, without reading them all.

The engine's tick ends trips that arrived and expires stale suggestions. It reads only the
trips whose next action is due (:class:`DueTimes`: a heap of due times, kept as sessions
are indexed and suggestions made; stale entries are skipped), plus a rotating slice of every
indexed trip so that each is re-checked at least every :data:`SWEEP_PERIOD_S`: it never
reads every session on every tick, which at 10,000 trips took the engine's whole event loop.
Times here are wall-clock seconds; a trip's own clock is turned into them with its offset.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import heapq
import math
from collections.abc import Awaitable, Callable

from correspondance.errors import CorrespondanceError, InputError, TripNotFoundError
from correspondance.geo import distance_m
from realtime.loops import LoopHealth
from realtime.trips.commands import CommandRefusedError, close_suggestion, end
from realtime.trips.index import TripIndex
from realtime.trips.plan_view import TripPlan
from realtime.trips.sessions import TRIP_ENDED, TripBook, TripSession

ARRIVED_AFTER_S = 120.0  # a trip ends this long after its plan's arrival...
TIMEOUT_AFTER_S = 3600.0  # ...or, when its last position is far from the destination, this
NEAR_DESTINATION_M = 300.0
FAR_RECHECK_S = 30.0  # an overdue traveller far from the destination is looked at again
SWEEP_PERIOD_S = 300.0  # the tick re-checks every indexed trip at least this often


def next_due(session: TripSession) -> float:
    """When ``session`` next needs the tick (wall time): its open suggestion expires, or its
    plan's arrival is :data:`ARRIVED_AFTER_S` past (whichever comes first)."""
    due = session.arrival().timestamp() + ARRIVED_AFTER_S
    if session.suggestion is not None:
        expires = dt.datetime.fromisoformat(session.suggestion["valid_until"]).timestamp()
        due = min(due, expires)
    return due - session.clock_offset_s


class DueTimes:
    """Trip → the wall time its next tick action is due, nearest first."""

    def __init__(self) -> None:
        self._due: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []  # (due, trip); stale entries skipped
        self._sweep_at = 0  # where the rotating re-check slice starts

    def __len__(self) -> int:
        return len(self._due)

    def get(self, trip_id: str) -> float | None:
        """When ``trip_id`` is due (None: not scheduled)."""
        return self._due.get(trip_id)

    def set(self, trip_id: str, due: float, earlier_only: bool = False) -> None:
        """Schedule ``trip_id`` at ``due`` (``earlier_only``: unless it is due sooner);
        a due time that is not finite is ignored."""
        if not math.isfinite(due):
            return
        current = self._due.get(trip_id)
        if earlier_only and current is not None and current <= due:
            return
        self._due[trip_id] = due
        heapq.heappush(self._heap, (due, trip_id))

    def discard(self, trip_id: str) -> None:
        """Unschedule ``trip_id``."""
        self._due.pop(trip_id, None)

    def due_by(self, wall: float) -> list[str]:
        """Pop the trips due by ``wall`` (most overdue first)."""
        due: list[str] = []
        heap = self._heap
        while heap and heap[0][0] <= wall:
            at, trip_id = heapq.heappop(heap)
            if self._due.get(trip_id) == at:
                del self._due[trip_id]
                due.append(trip_id)
        if len(heap) > 4 * len(self._due) + 64:  # mostly stale entries: rebuild
            self._heap = [(at, t) for t, at in self._due.items()]
            heapq.heapify(self._heap)
        return due

    def sweep_slice(self, trips: list[str], tick_s: float) -> list[str]:
        """The next slice of ``trips`` to re-check whatever their due time, sized so that
        ticks every ``tick_s`` cover them all every :data:`SWEEP_PERIOD_S`."""
        if not trips:
            return []
        size = math.ceil(len(trips) * tick_s / SWEEP_PERIOD_S)
        start = self._sweep_at % len(trips)
        self._sweep_at = start + size
        return (trips[start:] + trips[:start])[:size]


class TripTicker:
    """The trip engine's clock: ends trips that arrived (or timed out far from their
    destination) and expires suggestions past ``valid_until``, on the trips that are due.

    It shares the engine's book, index and health, and calls back into the engine for a
    trip's parsed plan, to forget a trip, and to quarantine one whose stored data broke.
    """

    def __init__(
        self,
        book: TripBook,
        city: str,
        index: TripIndex,
        health: LoopHealth,
        plan_of: Callable[[TripSession], TripPlan],
        forget: Callable[[str], None],
        quarantine: Callable[[str, Exception], Awaitable[None]],
    ) -> None:
        self.book = book
        self.city = city
        self.index = index
        self.health = health
        self.plan_of = plan_of
        self.forget = forget
        self.quarantine = quarantine
        self.due = DueTimes()  # trip → wall time its next tick action is due

    async def tick(self, wall: float, tick_s: float) -> None:
        """End arrived or timed-out trips; expire suggestions past ``valid_until``.

        Reads only the trips whose next action is due by ``wall``, plus a rotating slice of
        the indexed trips (each one at least every :data:`SWEEP_PERIOD_S` with ticks every
        ``tick_s``: a safety net for a change made where this engine could not see it). One
        trip that fails does not stop the others: the error is counted, and a trip whose
        stored data cannot be used is quarantined.
        """
        for trip_id in self.due.due_by(wall) + self.due.sweep_slice(self.index.trips, tick_s):
            if trip_id not in self.index:
                continue  # ended or forgotten meanwhile
            try:
                await self._tick_trip(trip_id, wall)
            except asyncio.CancelledError:
                raise
            except TripNotFoundError:
                self.forget(trip_id)
            except Exception as exc:
                self.health.failed(exc, f"ticking trip {trip_id}")
                self.due.set(trip_id, wall + tick_s)  # try again, not on every tick
                if is_bad_data(exc):
                    self.forget(trip_id)
                    await self.quarantine(trip_id, exc)

    async def _tick_trip(self, trip_id: str, wall: float) -> None:
        """One trip's tick: expire its suggestion, end it once arrived or timed out, and
        say when it is next due."""
        session = await self.book.get(trip_id)
        now = session.now(wall)
        open_ = session.suggestion
        if open_ is not None and now > dt.datetime.fromisoformat(open_["valid_until"]):
            with contextlib.suppress(CommandRefusedError):
                session, _ = await self.book.change(
                    trip_id,
                    close_suggestion(open_["suggestion_id"], "expired", now),
                    event=None,
                )
        overdue = (now - session.arrival()).total_seconds()
        if overdue < ARRIVED_AFTER_S:
            self.due.set(trip_id, next_due(session))
            return
        position = await self.book.position(trip_id)
        far = (
            position is not None
            and distance_m(*position, *self.plan_of(session).destination) > NEAR_DESTINATION_M
        )
        if far and overdue < TIMEOUT_AFTER_S:
            self.due.set(trip_id, wall + min(FAR_RECHECK_S, TIMEOUT_AFTER_S - overdue))
            return
        with contextlib.suppress(CommandRefusedError):
            await self.book.change(
                trip_id, end("timeout" if far else "arrived", now), event=TRIP_ENDED
            )
            await self.book.count(self.city, "ended")
        self.forget(trip_id)


def is_bad_data(exc: Exception) -> bool:
    """Whether an error comes from a trip's stored data (quarantine it), not from the store
    or a bug elsewhere (count it and try again next time)."""
    if isinstance(exc, CorrespondanceError) and not isinstance(exc, InputError):
        return False  # the store is down, a command was refused, ...
    return isinstance(exc, ValueError | TypeError | KeyError | IndexError | OverflowError)
