"""The trip engine: watch live changes, replan the trips they touch, suggest switches.

One engine runs per city, in the process that writes the city's live state (so the overlay
it reads already holds the change an event announces). It keeps indexes from what can
change to the active trips whose remaining legs depend on it (drive edge → trips, station →
trips, transit trip → trips) and, for each event on the shared stream, looks up only the
trips touched, and queues them by decision deadline (:mod:`realtime.trips.deadlines`):
the trip whose traveller reaches the last point where a switch is possible soonest is
evaluated first. Each is re-timed under the new overlay
(:func:`~realtime.trips.plan_view.project`, cheap). A car trip whose plan broke or lost at
least ``policy.replan_when_late_s`` is first repaired by driving around what changed, with
searches shared by every trip of the event (:mod:`realtime.trips.repair`); only a trip whose
repair still loses that much (or that has no repair: transit, stations) is replanned from its
traveller's current state with :func:`routing.state.replan`, and the
:class:`~realtime.trips.policy.SwitchPolicy` decides whether the best way is worth a
``switch_suggestion``. When none is, a broken plan gets a ``live_update`` with the notice
``no_better_option``. A trip may carry private closures (the scripted demo's): they apply
when that trip is evaluated, never to the city. A tick ends trips that arrived and expires
stale suggestions: it reads only the trips whose next action is due (a heap of due times
kept as sessions are indexed and suggestions made), plus a rotating slice of every indexed
trip so that each is re-checked at least every ``SWEEP_PERIOD_S``; it never reads every
session on every tick, which at 10,000 trips took the engine's whole event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import heapq
import logging
import math
import os
import secrets
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from correspondance.errors import CorrespondanceError, InputError
from correspondance.geo import WALK_SPEED_M_S, distance_m
from correspondance.store import Event, StateStore
from realtime.loops import LoopHealth, cancel_and_wait
from realtime.trips.commands import CommandRefusedError, close_suggestion, end
from realtime.trips.deadlines import DeadlineQueue, decision_deadline
from realtime.trips.onward import Onward
from realtime.trips.plan_view import (
    Projection,
    TripPlan,
    parse_plan,
    position_at,
    project,
)
from realtime.trips.policy import SwitchPolicy
from realtime.trips.protocol import message, stamp
from realtime.trips.repair import Bypasses, Repair, bypass_pairs, repair
from realtime.trips.replans import Replans, full_replan
from realtime.trips.sessions import (
    INCIDENT_STATS_TTL_S,
    TRIP_ENDED,
    TRIP_STARTED,
    TRIP_UPDATED,
    TripBook,
    TripNotFoundError,
    TripSession,
    incident_trips_key,
    trip_digest,
)
from realtime.trips.wording import (
    ACTIONS,
    LEG_NOTES,
    Phrase,
    action,
    leave,
    leg_note,
    no_better_message,
    suggestion_message,
)
from routing.base import CityBase
from routing.overlay import LiveOverlay, OverlayHolder
from routing.plan import Itinerary
from routing.wire import ItineraryOut

log = logging.getLogger("correspondance.trips")

CONGESTION_CHANGED = "congestion.changed"
GBFS_UPDATED = "gbfs.updated"
GTFSRT_UPDATED = "gtfsrt.updated"
INCIDENT_DECLARED = "incident.declared"
ARRIVED_AFTER_S = 120.0  # a trip ends this long after its plan's arrival...
TIMEOUT_AFTER_S = 3600.0  # ...or, when its last position is far from the destination, this
NEAR_DESTINATION_M = 300.0
FAR_RECHECK_S = 30.0  # an overdue traveller far from the destination is looked at again
SWEEP_PERIOD_S = 300.0  # the tick re-checks every indexed trip at least this often
ETA_NOTICE_S = 60.0  # a live_update when the projected arrival moves this much
MAX_VALID_S = 20 * 60.0
MIN_VALID_S = 3 * 60.0
HURRY_S = (
    10.0  # with less time than this (or 3 replans) before the deadline, the repair is the answer
)


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


@dataclass
class EngineStats:
    """Counters for benchmarks and the operator channel."""

    evaluated: int = 0
    repaired: int = 0  # cheap repairs tried (drive around what changed)
    replanned: int = 0  # full multimodal replans
    suggested: int = 0
    withdrawn: int = 0
    live_updates: int = 0
    no_better: int = 0  # broken plans told that no better way exists
    late: int = 0  # suggestions stored after their trip's decision deadline
    past_junction: int = 0  # affected trips already past their last switching point


NO_BETTER_OPTION = "no_better_option"


class TripEngine:
    """Matches live events to trips, replans them, and pushes suggestions (one per city)."""

    def __init__(
        self,
        base: CityBase,
        holder: OverlayHolder,
        store: StateStore,
        policy: SwitchPolicy | None = None,
        walk_speed_m_s: float = WALK_SPEED_M_S,
        tick_s: float = 2.0,
    ) -> None:
        self.base = base
        self.holder = holder
        self.store = store
        self.book = TripBook(store)
        self.policy = policy or SwitchPolicy()
        self.walk_speed_m_s = walk_speed_m_s
        self.tick_s = tick_s
        self.concurrency = max(1, min(4, os.cpu_count() or 1))
        self.index = TripIndex()
        self.stats = EngineStats()
        self.queue = DeadlineQueue()
        self.deadlines: dict[str, float] = {}  # trip → wall time of its latest decision deadline
        # trips touched when already past the last point where a switch was possible
        # (their deadline is the moment they were queued: no suggestion can be in time)
        self.past_junction: set[str] = set()
        self._plans: dict[str, tuple[int, TripPlan]] = {}  # trip → (plan version, plan)
        self._clocks: dict[str, float] = {}  # trip → clock offset (trip clock − wall clock)
        self._private: dict[str, tuple[int, ...]] = {}  # trip → its private closed edges
        self._incidents: dict[str, set[str]] = {}  # trip → operators' incidents touching it
        self._private_live: dict[str, tuple[LiveOverlay, tuple[int, ...], Bypasses]] = {}
        self._shared: Bypasses | None = None  # the shared repairs of the current overlay
        self._noticed: dict[str, tuple[int, str]] = {}  # trip → (plan version, eta) told
        self._due: dict[str, float] = {}  # trip → wall time its next tick action is due
        self._due_heap: list[tuple[float, str]] = []  # (due, trip); stale entries skipped
        self._sweep_at = 0  # where the tick's rotating re-check slice starts
        self._wake = asyncio.Event()
        self._busy = 0
        self._replan_s = 0.05  # recent wall time of one full replan (moving average)
        self._seen: LiveOverlay = holder.current
        self._tasks: list[asyncio.Task[None]] = []
        self.tick_health = LoopHealth(f"trip engine of {base.city.id}")
        self.ticks = 0  # ticks completed
        self._ticking = False  # the tick loop runs
        self.idle = asyncio.Event()  # set when nothing is pending (tests, benchmarks)
        self.idle.set()
        # which trips this process evaluates (its trip partitions; all when alone)
        self.owns: Callable[[str], bool] = lambda trip_id: True

    @property
    def city(self) -> str:
        """City id."""
        return self.base.city.id

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self, follow: bool = True) -> None:
        """Index the city's active trips, tick, and follow events — unless the caller hands
        it the events (``follow=False``, as :class:`~realtime.runtime.LiveRuntime` does):
        the caller then indexes it when it subscribes (:meth:`reindex_all`)."""
        if follow:
            with contextlib.suppress(ConnectionError):  # store down: indexed when it is back
                await self.reindex_all()
        self._tasks = [
            *(asyncio.create_task(self._work()) for _ in range(self.concurrency)),
            asyncio.create_task(self._tick_loop()),
        ]
        if follow:
            self._tasks.append(asyncio.create_task(self._follow()))

    async def reindex_all(self, fresh: bool = True) -> None:
        """Re-read the city's active trips: index those this process owns, forget others.

        ``fresh=False`` (this process's trip partitions changed) reads only the trips it did
        not index yet: the others are kept up to date by their events.
        """
        for trip_id in self.index.trips:
            if not self.owns(trip_id):
                self._forget(trip_id)
        active = set(await self.book.active(self.city))
        for trip_id in self.index.trips:
            if trip_id not in active:
                self._forget(trip_id)
        for trip_id in sorted(active):
            if self.owns(trip_id) and (fresh or trip_id not in self.index):
                await self._reindex(trip_id, catch_up=True)

    async def stop(self) -> None:
        """Stop ticking, evaluating and following events, within seconds (never raises:
        shutdown goes on; see :func:`~realtime.loops.cancel_and_wait`)."""
        tasks, self._tasks = self._tasks, []
        await cancel_and_wait(tasks, f"trip engine of {self.city}")

    def health(self) -> dict[str, Any]:
        """The tick loop for a health check: ``{"running", "ticks", "errors",
        "last_error", "last_error_at", "quarantined", "trips"}``."""
        return {
            **self.tick_health.as_dict(self._ticking),
            "ticks": self.ticks,
            "quarantined": self.book.quarantined,
            "trips": len(self.index),
        }

    async def _quarantine(self, trip_id: str, exc: Exception) -> None:
        """Quarantine a trip whose stored data broke a step (never raises)."""
        try:
            await self.book.quarantine(trip_id, None, f"{type(exc).__name__}: {exc}")
        except Exception as failed:
            self.tick_health.failed(failed, f"quarantining trip {trip_id}")

    async def _follow(self) -> None:
        while True:
            try:
                async with self.store.subscribe() as events:
                    async for event in events:
                        if event.city == self.city:
                            await self.on_event(event)
            except asyncio.CancelledError:
                raise
            except Exception:  # lost events or the store is down: re-index, resume
                log.warning("trip engine of %s restarting", self.city, exc_info=True)
                await asyncio.sleep(1.0)
                with contextlib.suppress(Exception):
                    for trip_id in await self.book.active(self.city):
                        await self._reindex(trip_id)

    # -- events → affected trips ------------------------------------------------------------

    async def on_event(self, event: Event) -> None:
        """Index trip changes; queue the trips a live change touches, nearest deadline first."""
        kind, payload = event.type, event.payload
        if kind in (TRIP_STARTED, TRIP_UPDATED):
            await self._reindex(str(payload["trip_id"]))
            return
        if kind == TRIP_ENDED:
            self._forget(str(payload["trip_id"]))
            return
        if kind == INCIDENT_DECLARED:
            await self._count_incident(payload)
            return
        touched: set[str] = set()
        reason = "congestion"
        current = self.holder.current
        changed_edges: set[int] | None = None
        if kind == CONGESTION_CHANGED:
            # diff the overlay itself: the event lists at most 1000 edges
            before = self._seen.drive_multiplier
            after = current.drive_multiplier
            changed = np.flatnonzero(before != after) if before is not after else ()
            touched = self.index.touched(edges=changed)
            changed_edges = {int(e) for e in changed}
        elif kind == GTFSRT_UPDATED:
            reason = "delay"
            trips = {
                t
                for t in current.trip_delays.keys() | self._seen.trip_delays.keys()
                if current.trip_delays.get(t) != self._seen.trip_delays.get(t)
            }
            trips |= set(current.cancelled_trips ^ self._seen.cancelled_trips)
            touched = self.index.touched(transit=trips)
            if current.closed_stops != self._seen.closed_stops:
                touched |= {t for t in self.index.trips if self.index._keys[t][2]}
        elif kind == GBFS_UPDATED:
            reason = "vehicle_unavailable"
            touched = self.index.touched(stations=payload.get("station_ids", ()))
        else:
            return
        self._seen = current
        if touched:
            self._queue_touched(touched, reason, current, changed_edges)

    def _queue_touched(
        self,
        touched: set[str],
        reason: str,
        overlay: LiveOverlay,
        changed_edges: set[int] | None,
    ) -> None:
        """Queue each touched trip at its decision deadline and announce the detours its
        repair will ask for, so one search per junction serves every trip."""
        wall = time.time()
        drive = self.base.streets.get("drive")
        shared = self._bypasses(overlay) if drive is not None and changed_edges else None
        for trip_id in touched:
            cached = self._plans.get(trip_id)
            offset = self._clocks.get(trip_id)
            if cached is None or offset is None:
                self.queue.push(trip_id, reason, wall)
                continue
            plan = cached[1]
            now = dt.datetime.fromtimestamp(wall + offset, plan.departure.tzinfo)
            deadline = decision_deadline(self.base, plan, now, overlay, changed_edges)
            at = deadline.timestamp() - offset
            if at <= wall + 1e-3:  # decision_deadline never answers earlier than now
                if trip_id not in self.past_junction:
                    self.stats.past_junction += 1
                self.past_junction.add(trip_id)
            else:
                self.past_junction.discard(trip_id)
            queued = trip_id in self.queue
            self.deadlines[trip_id] = min(at, self.deadlines.get(trip_id, at)) if queued else at
            self.queue.push(trip_id, reason, at)
            if shared is not None and drive is not None and trip_id not in self._private:
                shared.want(bypass_pairs(drive, plan, now, overlay))
        self.idle.clear()
        self._wake.set()

    def _bypasses(self, overlay: LiveOverlay) -> Bypasses:
        """The shared detour searches of ``overlay`` (a new set for each overlay version)."""
        shared = self._shared
        if shared is None or shared.overlay is not overlay:
            onward = Onward(self.base, overlay, self.walk_speed_m_s)
            replans = Replans(self.base, overlay, self.walk_speed_m_s)
            shared = Bypasses(self.base.streets["drive"], overlay, onward, replans)
            self._shared = shared
        return shared

    def _live_for(self, session: TripSession) -> tuple[LiveOverlay, Bypasses | None]:
        """The overlay this trip is evaluated under: the city's, plus the trip's own private
        closures if it has any (never written to the city), and its detour searches."""
        current = self.holder.current
        drive = self.base.streets.get("drive")
        closures = tuple(session.private_closures)
        if not closures or drive is None:
            self._private_live.pop(session.trip_id, None)
            return current, self._bypasses(current) if drive is not None else None
        cached = self._private_live.get(session.trip_id)
        if cached is not None and cached[0] is current and cached[1] == closures:
            return cached[2].overlay, cached[2]
        multiplier = current.drive_multiplier.copy()
        multiplier[np.asarray(closures, dtype=np.int64)] = np.inf
        multiplier.setflags(write=False)
        private = replace(current, drive_multiplier=multiplier)
        speed = self.walk_speed_m_s
        bypasses = Bypasses(
            drive, private, Onward(self.base, private, speed), Replans(self.base, private, speed)
        )
        self._private_live[session.trip_id] = (current, closures, bypasses)
        return private, bypasses

    async def _reindex(self, trip_id: str, catch_up: bool = False) -> None:
        """(Re-)index one trip. What is stored never makes this raise (start-up indexes
        every active trip): an unreadable session is quarantined by :meth:`TripBook.get`,
        a plan that no longer reads against the city here; only store errors propagate.
        ``catch_up``: a trip new to this engine that a change may have touched before is
        queued for evaluation."""
        if not self.owns(trip_id):
            self._forget(trip_id)
            return
        new = trip_id not in self.index
        try:
            session = await self.book.get(trip_id)
        except TripNotFoundError:
            self._forget(trip_id)
            return
        if session.status != "active":
            self._forget(trip_id)
            return
        try:
            plan = self._plan(session)
            self._clocks[trip_id] = session.clock_offset_s
            self.index.put(trip_id, plan, plan.leg_index_at(session.now()))
            self._schedule(session)
        except Exception as exc:
            self.tick_health.failed(exc, f"indexing trip {trip_id}")
            self._forget(trip_id)
            if _is_bad_data(exc):
                await self._quarantine(trip_id, exc)
            return
        closures = tuple(session.private_closures)
        if closures != self._private.get(trip_id, ()):
            if closures:
                self._private[trip_id] = closures
                # a private change (the demo's jam) concerns this trip alone: evaluate now
                self.queue.push(trip_id, "congestion", time.time())
                self.deadlines[trip_id] = time.time()
                self.idle.clear()
                self._wake.set()
            else:
                self._private.pop(trip_id, None)
        if catch_up and new and self._on_changed_streets(trip_id):
            # a trip this process did not know (its partition just came here, or the engine
            # started) may sit on a change announced before: its former engine may never
            # have evaluated it (it stopped, or had not indexed it yet)
            self._queue_touched({trip_id}, "congestion", self.holder.current, None)

    def _on_changed_streets(self, trip_id: str) -> bool:
        """Whether a drive edge ahead of the trip is closed or slowed now."""
        edges = self.index._keys[trip_id][0]
        if not edges:
            return False
        multiplier = self.holder.current.drive_multiplier
        return bool(np.any(multiplier[np.fromiter(edges, np.int64, len(edges))] != 1.0))

    def _forget(self, trip_id: str) -> None:
        self.index.remove(trip_id)
        self._plans.pop(trip_id, None)
        self._clocks.pop(trip_id, None)
        self._private.pop(trip_id, None)
        self._incidents.pop(trip_id, None)
        self._private_live.pop(trip_id, None)
        self._noticed.pop(trip_id, None)
        self._due.pop(trip_id, None)
        self.deadlines.pop(trip_id, None)
        self.past_junction.discard(trip_id)
        self.queue.discard(trip_id)

    def _plan(self, session: TripSession) -> TripPlan:
        cached = self._plans.get(session.trip_id)
        if cached is not None and cached[0] == session.plan_version:
            return cached[1]
        plan = parse_plan(self.base, session.plan)
        self._plans[session.trip_id] = (session.plan_version, plan)
        return plan

    async def _count_incident(self, payload: dict[str, Any]) -> None:
        """Record which of this engine's trips an operator's incident touches (declared or
        edited: the set of its own trips is replaced), as digests in a shared set, so the
        count over every engine process is the set's size."""
        incident = str(payload.get("incident_id", ""))
        if not incident:
            return
        touched = self.index.touched(edges=payload.get("edges", ()))
        before = {t for t, incidents in self._incidents.items() if incident in incidents}
        for trip_id in before - touched:
            self._incidents[trip_id].discard(incident)
        for trip_id in touched:
            self._incidents.setdefault(trip_id, set()).add(incident)
        key = incident_trips_key(self.city, incident)
        gone = [trip_digest(t) for t in before - touched]
        if gone:
            await self.store.srem(key, *gone)
        if touched:
            await self.store.sadd(key, *(trip_digest(t) for t in touched))
            await self.store.expire(key, INCIDENT_STATS_TTL_S)

    # -- evaluation ---------------------------------------------------------------------------

    async def _work(self) -> None:
        # several of these run: replans run in threads, and the compiled kernels release the
        # GIL, so they overlap on several cores; each takes the nearest deadline next
        while True:
            while not self.queue:
                if self._busy == 0:
                    self.idle.set()
                self._wake.clear()
                await self._wake.wait()
            pending = self.queue.pop()
            self._busy += 1
            try:
                await self._evaluate_safely(pending.trip_id, pending.reason)
            finally:
                self._busy -= 1
                if not self.queue and self._busy == 0:
                    self.idle.set()
                    self._wake.set()  # let the other workers see the empty queue

    async def _evaluate_safely(self, trip_id: str, reason: str) -> None:
        try:
            await self.evaluate(trip_id, reason)
        except asyncio.CancelledError:
            raise
        except (TripNotFoundError, CommandRefusedError):
            self._forget(trip_id)
        except Exception:
            log.warning("evaluating trip %s failed", trip_id, exc_info=True)

    async def evaluate(self, trip_id: str, reason: str = "congestion") -> dict[str, Any] | None:
        """Re-time one trip under the current overlay; repair, replan, suggest or update.

        Returns the switch_suggestion made, if any.
        """
        self.stats.evaluated += 1
        session = await self.book.get(trip_id)
        if session.status != "active":
            self._forget(trip_id)
            return None
        overlay, bypasses = self._live_for(session)
        now = session.now()
        plan = self._plan(session)
        projection = project(self.base, plan, now, overlay)
        if session.suggestion is not None:
            await self._review_open(session, overlay, now, projection)
            return None
        late = (
            (projection.arrival - plan.arrival).total_seconds()
            if projection.arrival is not None
            else None
        )
        if projection.broken is None and (late or 0.0) < self.policy.replan_when_late_s:
            await self._maybe_live_update(session, projection, now, overlay)
            return None
        position = await self.book.position(trip_id)
        fixed: Repair | None = None
        drive = self.base.streets.get("drive")
        if projection.broken in (None, "congestion") and drive is not None and bypasses is not None:
            here = position if position is not None else position_at(plan, now)[1]
            self.stats.repaired += 1
            fixed = await asyncio.to_thread(repair, drive, plan, now, here, bypasses)
        options: list[Itinerary] = []
        if fixed is not None:
            options.append(fixed.itinerary)
        lost = (fixed.arrival - plan.arrival).total_seconds() if fixed is not None else None
        # The followed plan was the best way before things got worse, so no new plan arrives
        # much before it: a replan can beat the repair by at most what the repair lost. It is
        # worth running only when that could be a saving worth a switch.
        real_loss = (
            max(self.policy.replan_when_late_s, self.policy.needed(now, fixed.arrival, None))
            if fixed is not None
            else 0.0
        )
        # A traveller about to pass the last junction where the way around still starts
        # (the trouble is just ahead, or an overloaded engine reached them late): a way
        # around it now beats a better way too late, so the repair is the answer. (Once
        # past that junction the repair no longer helps and the full replan runs.)
        deadline = self.deadlines.get(trip_id)
        margin = max(HURRY_S, 3 * self._replan_s)
        hurry = deadline is not None and 0.0 < deadline - time.time() < margin
        if lost is None or (lost >= real_loss and not hurry):
            # no cheap repair, or it still loses real time: the full multimodal replan, from
            # the repair's junction when it has one (shared by the trips meeting it there)
            modes = frozenset(session.modes) | {"walk", "transit"}
            self.stats.replanned += 1
            started = time.perf_counter()
            replans = bypasses.replans if bypasses is not None else None
            try:
                options += await asyncio.to_thread(
                    full_replan,
                    self.base,
                    plan,
                    now,
                    position,
                    modes,
                    overlay,
                    fixed,
                    replans,
                    self.walk_speed_m_s,
                )
            except CorrespondanceError as exc:
                log.info("replanning trip %s: %s", trip_id, exc)
            self._replan_s += 0.2 * (time.perf_counter() - started - self._replan_s)
        best = min(options, key=lambda it: it.arrival, default=None)
        # where the followed plan now arrives: re-timed, or (broken) driven around the trouble
        projected = projection.arrival or (fixed.arrival if fixed is not None else None)
        if best is None or not self.policy.worth_suggesting(
            now, projection.arrival, best.arrival, session.closed_saving_s
        ):
            if projection.broken is not None:
                await self._no_better_option(session, plan, projection, projected, now, overlay)
            else:
                await self._maybe_live_update(session, projection, now, overlay)
            return None
        detour = fixed.first_changed_leg if fixed is not None and best is fixed.itinerary else None
        body = self._suggestion(session, plan, projection, best, overlay, now, reason, detour)
        body["projected_arrival"] = stamp(projected) if projected is not None else None

        incidents = sorted(self._incidents.get(trip_id, ()))

        def mutate(s: TripSession) -> list[dict[str, Any]]:
            if (
                s.status != "active"
                or s.suggestion is not None
                or s.plan_version != session.plan_version
            ):
                return []  # the traveller acted meanwhile; the next event re-evaluates
            s.suggestion = body
            s.suggestions_made += 1
            s.suggestion_incidents = incidents
            return [message("switch_suggestion", s.trip_id, now, **body)]

        _, sent = await self.book.change(trip_id, mutate, event=None)
        if sent:
            self.stats.suggested += 1
            expires = dt.datetime.fromisoformat(body["valid_until"]).timestamp()
            self._set_due(trip_id, expires - session.clock_offset_s, earlier_only=True)
            if (
                deadline is not None
                and time.time() > deadline
                and trip_id not in self.past_junction
            ):
                self.stats.late += 1
            await self.book.count(self.city, "suggested")
            await self.book.count_incidents(self.city, incidents, "suggested")
            return sent[0]
        return None

    async def _review_open(
        self, session: TripSession, overlay: LiveOverlay, now: dt.datetime, projection: Projection
    ) -> None:
        """Withdraw the open suggestion if it no longer holds (its own plan broke or its
        saving fell below half the threshold)."""
        assert session.suggestion is not None
        offered = parse_plan(self.base, session.suggestion["itinerary"])
        theirs = project(self.base, offered, now, overlay)
        if theirs.arrival is None:
            saving: float | None = -1.0
        elif projection.arrival is None:
            saving = None
        else:
            saving = (projection.arrival - theirs.arrival).total_seconds()
        if self.policy.still_worth_it(saving):
            return
        self.stats.withdrawn += 1
        await self.book.change(
            session.trip_id,
            close_suggestion(session.suggestion["suggestion_id"], "withdrawn", now),
            event=None,
        )

    async def _maybe_live_update(
        self,
        session: TripSession,
        projection: Projection,
        now: dt.datetime,
        overlay: LiveOverlay,
    ) -> None:
        """A live_update when delays, alerts or congestion move the arrival noticeably."""
        if projection.arrival is None or not projection.legs:
            return
        last = (
            dt.datetime.fromisoformat(session.last_eta) if session.last_eta else session.arrival()
        )
        if abs((projection.arrival - last).total_seconds()) < ETA_NOTICE_S:
            return
        eta = stamp(projection.arrival)

        def mutate(s: TripSession) -> list[dict[str, Any]]:
            if s.status != "active" or s.plan_version != session.plan_version:
                return []
            s.last_eta = eta
            legs = [
                _leg_update(i, delay, cancelled, _alerts(s.plan, i, overlay), note)
                for i, delay, cancelled, note in projection.legs
            ]
            return [message("live_update", s.trip_id, now, legs=legs, eta=eta)]

        _, sent = await self.book.change(session.trip_id, mutate, event=None)
        if sent:
            self.stats.live_updates += 1

    async def _no_better_option(
        self,
        session: TripSession,
        plan: TripPlan,
        projection: Projection,
        projected: dt.datetime | None,
        now: dt.datetime,
        overlay: LiveOverlay,
    ) -> None:
        """The plan broke and nothing better exists: say so once per plan (and again when
        the projected arrival moves), with what is wrong and when the traveller now arrives."""
        eta_at = projected or plan.arrival
        eta = stamp(eta_at)
        told = self._noticed.get(session.trip_id)
        if told is not None and told[0] == session.plan_version:
            moved = abs((dt.datetime.fromisoformat(told[1]) - eta_at).total_seconds())
            if moved < ETA_NOTICE_S:
                return
        code = projection.broken or "congestion"
        why = projection.detail
        text = no_better_message(code, why, projected)
        fallback = None  # the note of the current leg when no remaining leg carries one
        if why is not None:
            note_code = "cancelled" if why.code == "trip_cancelled" else why.code
            fallback = leg_note(note_code, **why.params) if note_code in LEG_NOTES else None
        delay = int((eta_at - plan.arrival).total_seconds()) if projected is not None else 0

        def mutate(s: TripSession) -> list[dict[str, Any]]:
            if s.status != "active" or s.plan_version != session.plan_version:
                return []
            s.last_eta = eta
            legs = [
                _leg_update(
                    i,
                    max(delay_s, delay) if note else delay_s,
                    cancelled,
                    _alerts(s.plan, i, overlay),
                    note,
                )
                for i, delay_s, cancelled, note in projection.legs
            ] or [_leg_update(plan.leg_index_at(now), delay, False, [], fallback)]
            notice = {
                "code": NO_BETTER_OPTION,
                "reason": code,
                "detail": why.wire() if why is not None else None,
                "arrival": stamp(projected) if projected is not None else None,
                "message": text,
            }
            return [message("live_update", s.trip_id, now, legs=legs, eta=eta, notice=notice)]

        _, sent = await self.book.change(session.trip_id, mutate, event=None)
        if sent:
            self._noticed[session.trip_id] = (session.plan_version, eta)
            self.stats.no_better += 1
            self.stats.live_updates += 1

    def _suggestion(
        self,
        session: TripSession,
        plan: TripPlan,
        projection: Projection,
        best: Itinerary,
        overlay: LiveOverlay,
        now: dt.datetime,
        reason: str,
        detour: int | None = None,
    ) -> dict[str, Any]:
        code = projection.broken or reason
        current_leg = plan.legs[plan.leg_index_at(now)]
        # where the new plan leaves what the traveller is doing now
        doing = current_leg.trip_id or current_leg.mode
        k = next(
            (i for i, leg in enumerate(best.legs) if (leg.trip_id or leg.mode) != doing),
            len(best.legs) - 1,
        )
        if detour is not None:
            k = detour  # the same plan, driven around what changed from this leg on
        switch = best.legs[k]
        after = best.legs[k:]
        ride = next((leg for leg in after if leg.trip_id), None)
        doing_now: Phrase
        if detour is not None or (k == 0 and (switch.trip_id or switch.mode) == doing):
            doing_now = action("detour")  # the same mode, by other streets
        elif ride is not None:
            line = ride.route_short_name or ride.route_long_name or ride.mode
            doing_now = action("board", mode=ride.mode, line=line, stop=ride.origin.name)
        elif switch.mode in ACTIONS:
            doing_now = action(switch.mode)
        else:
            doing_now = action("other", mode=switch.mode)
        leaving: Phrase | None = None
        if detour is None and k > 0 and current_leg.mode in ("carshare", "bikeshare"):
            vehicle = "car" if current_leg.mode == "carshare" else "bike"
            leaving = leave("leave_vehicle", vehicle=vehicle, stop=switch.origin.name)
        elif detour is None and k > 0 and current_leg.trip_id:
            leaving = leave("get_off", stop=switch.origin.name)
        saved = (
            round((projection.arrival - best.arrival).total_seconds() / 60.0, 1)
            if projection.arrival is not None
            else None
        )
        why = projection.detail if projection.broken else None
        text = suggestion_message(code, why, leaving, doing_now, saved, best.arrival)
        valid = min(
            max(switch.departure, now + dt.timedelta(seconds=MIN_VALID_S)),
            now + dt.timedelta(seconds=MAX_VALID_S),
        )
        return {
            "suggestion_id": secrets.token_urlsafe(9),
            "reason": {
                "code": code,
                "message": text,
                "detail": why.wire() if why is not None else None,
                "action": doing_now.wire(),
                "leave": leaving.wire() if leaving is not None else None,
            },
            "current_arrival": stamp(projection.arrival) if projection.arrival else None,
            "new_arrival": stamp(best.arrival),
            "minutes_saved": saved,
            "plan_broken": projection.broken is not None,
            "switch_at": {
                "name": switch.origin.name if k > 0 else "where you are",
                "here": k == 0,
                "lat": switch.origin.lat,
                "lon": switch.origin.lon,
                "leg_index": k,
            },
            "valid_until": stamp(valid),
            "itinerary": ItineraryOut.of(best, overlay).model_dump(mode="json", by_alias=True),
        }

    # -- the clock ---------------------------------------------------------------------------

    async def _tick_loop(self) -> None:
        """Tick every ``tick_s``; never ends on an error (logged, counted in :meth:`health`)."""
        self._ticking = True
        try:
            while True:
                await asyncio.sleep(self.tick_s)
                try:
                    await self.tick()
                    self.ticks += 1
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    self.tick_health.failed(exc, "ticking")
        finally:
            self._ticking = False

    async def tick(self, wall: float | None = None) -> None:
        """End arrived or timed-out trips; expire suggestions past ``valid_until``.

        Reads only the trips whose next action is due by ``wall``, plus a rotating slice of
        the indexed trips (each one at least every ``SWEEP_PERIOD_S``: a safety net for a
        change made where this engine could not see it). One trip that fails does not stop
        the others: the error is counted, and a trip whose stored data cannot be used is
        quarantined.
        """
        wall = time.time() if wall is None else wall
        for trip_id in self._due_by(wall) + self._sweep_slice():
            if trip_id not in self.index:
                continue  # ended or forgotten meanwhile
            try:
                await self._tick_trip(trip_id, wall)
            except asyncio.CancelledError:
                raise
            except TripNotFoundError:
                self._forget(trip_id)
            except Exception as exc:
                self.tick_health.failed(exc, f"ticking trip {trip_id}")
                self._set_due(trip_id, wall + self.tick_s)  # try again, not on every tick
                if _is_bad_data(exc):
                    self._forget(trip_id)
                    await self._quarantine(trip_id, exc)

    def _schedule(self, session: TripSession) -> None:
        """When ``session`` next needs the tick: its open suggestion expires, or its plan's
        arrival is ``ARRIVED_AFTER_S`` past (whichever comes first)."""
        due = session.arrival().timestamp() + ARRIVED_AFTER_S
        if session.suggestion is not None:
            expires = dt.datetime.fromisoformat(session.suggestion["valid_until"]).timestamp()
            due = min(due, expires)
        self._set_due(session.trip_id, due - session.clock_offset_s)

    def _set_due(self, trip_id: str, due: float, earlier_only: bool = False) -> None:
        if not math.isfinite(due):
            return
        current = self._due.get(trip_id)
        if earlier_only and current is not None and current <= due:
            return
        self._due[trip_id] = due
        heapq.heappush(self._due_heap, (due, trip_id))

    def _due_by(self, wall: float) -> list[str]:
        """Pop the trips due by ``wall`` (most overdue first)."""
        due: list[str] = []
        heap = self._due_heap
        while heap and heap[0][0] <= wall:
            at, trip_id = heapq.heappop(heap)
            if self._due.get(trip_id) == at:
                del self._due[trip_id]
                due.append(trip_id)
        if len(heap) > 4 * len(self._due) + 64:  # mostly stale entries: rebuild
            self._due_heap = [(at, t) for t, at in self._due.items()]
            heapq.heapify(self._due_heap)
        return due

    def _sweep_slice(self) -> list[str]:
        """The next slice of indexed trips to re-check whatever their due time."""
        trips = self.index.trips
        if not trips:
            return []
        size = math.ceil(len(trips) * self.tick_s / SWEEP_PERIOD_S)
        start = self._sweep_at % len(trips)
        self._sweep_at = start + size
        return (trips[start:] + trips[:start])[:size]

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
            self._schedule(session)
            return
        position = await self.book.position(trip_id)
        far = (
            position is not None
            and distance_m(*position, *self._plan(session).destination) > NEAR_DESTINATION_M
        )
        if far and overdue < TIMEOUT_AFTER_S:
            self._set_due(trip_id, wall + min(FAR_RECHECK_S, TIMEOUT_AFTER_S - overdue))
            return
        with contextlib.suppress(CommandRefusedError):
            await self.book.change(
                trip_id, end("timeout" if far else "arrived", now), event=TRIP_ENDED
            )
            await self.book.count(self.city, "ended")
        self._forget(trip_id)


def _leg_update(
    leg_index: int,
    delay_s: int,
    cancelled: bool,
    alerts: list[dict[str, Any]],
    note: Phrase | None,
) -> dict[str, Any]:
    """One entry of ``live_update.legs``: the note as plain English and as a code."""
    return {
        "leg_index": leg_index,
        "delay_s": delay_s,
        "cancelled": cancelled,
        "alerts": alerts,
        "note": note.text() if note is not None else None,
        "note_code": note.wire() if note is not None else None,
    }


def _alerts(
    plan_json: dict[str, Any], leg_index: int, overlay: LiveOverlay
) -> list[dict[str, Any]]:
    legs = plan_json.get("legs", [])
    if not 0 <= leg_index < len(legs) or not overlay.alerts:
        return []
    leg = legs[leg_index]
    stops = {leg["from"].get("stop_id"), leg["to"].get("stop_id")} - {None}
    return [
        {
            "alert_id": a.alert_id,
            "effect": a.effect,
            "header": a.header,
            "description": a.description,
        }
        for a in overlay.alerts
        if leg.get("trip_id")
        and (
            leg.get("route_id") in a.route_ids
            or leg["trip_id"] in a.trip_ids
            or stops & set(a.stop_ids)
        )
    ]


def _is_bad_data(exc: Exception) -> bool:
    """Whether an error comes from a trip's stored data (quarantine it), not from the store
    or a bug elsewhere (count it and try again next time)."""
    if isinstance(exc, CorrespondanceError) and not isinstance(exc, InputError):
        return False  # the store is down, a command was refused, ...
    return isinstance(exc, ValueError | TypeError | KeyError | IndexError | OverflowError)
