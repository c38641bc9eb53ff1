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
stale suggestions, reading only the trips that are due (:mod:`realtime.trips.scheduler`).

Around it: :mod:`realtime.trips.index` (the indexes), :mod:`realtime.trips.scheduler` (due
times), :mod:`realtime.trips.suggestions` (the bodies of what it says). This module keeps
the lifecycle (start, follow, index, tick, stop), the dispatch of events to trips, the
evaluation workers and the evaluation itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from correspondance.errors import CorrespondanceError, TripNotFoundError
from correspondance.geo import WALK_SPEED_M_S
from correspondance.store import Event, StateStore
from realtime.loops import LoopHealth, cancel_and_wait
from realtime.trips.commands import CommandRefusedError
from realtime.trips.deadlines import DeadlineQueue, decision_deadline
from realtime.trips.index import CONGESTION_CHANGED as CONGESTION_CHANGED  # tests
from realtime.trips.index import GBFS_UPDATED as GBFS_UPDATED  # tests
from realtime.trips.index import TripIndex, count_incident, touched_by
from realtime.trips.onward import Onward
from realtime.trips.plan_view import (
    TripPlan,
    parse_plan,
    position_at,
    project,
)
from realtime.trips.policy import SwitchPolicy
from realtime.trips.protocol import message, stamp
from realtime.trips.repair import Bypasses, Repair, bypass_pairs, repair
from realtime.trips.replans import Replans, full_replan
from realtime.trips.scheduler import ARRIVED_AFTER_S as ARRIVED_AFTER_S  # tests
from realtime.trips.scheduler import TripTicker, is_bad_data, next_due
from realtime.trips.sessions import (
    TRIP_ENDED,
    TRIP_STARTED,
    TRIP_UPDATED,
    TripBook,
    TripSession,
)
from realtime.trips.suggestions import NO_BETTER_OPTION as NO_BETTER_OPTION  # tests
from realtime.trips.suggestions import EngineStats, TripTeller, suggestion_body
from routing.base import CityBase
from routing.overlay import LiveOverlay, OverlayHolder
from routing.plan import Itinerary

log = logging.getLogger("correspondance.trips")

INCIDENT_DECLARED = "incident.declared"
HURRY_S = (
    10.0  # with less time than this (or 3 replans) before the deadline, the repair is the answer
)


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
        self.teller = TripTeller(base, self.book, self.policy, self.stats)
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
        self._wake = asyncio.Event()
        self._busy = 0
        self._replan_s = 0.05  # recent wall time of one full replan (moving average)
        self._seen: LiveOverlay = holder.current
        self._tasks: list[asyncio.Task[None]] = []
        self.tick_health = LoopHealth(f"trip engine of {base.city.id}")
        self.ticker = TripTicker(
            self.book,
            base.city.id,
            self.index,
            self.tick_health,
            self._plan,
            self._forget,
            self._quarantine,
        )
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
        current = self.holder.current
        found = touched_by(self.index, kind, payload, self._seen, current)
        if found is None:
            return
        touched, reason, changed_edges = found
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
            if is_bad_data(exc):
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
        self.teller.noticed.pop(trip_id, None)
        self.ticker.due.discard(trip_id)
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
        await count_incident(self.store, self.city, self.index, self._incidents, payload)

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
            await self.teller.review_open(session, overlay, now, projection)
            return None
        late = (
            (projection.arrival - plan.arrival).total_seconds()
            if projection.arrival is not None
            else None
        )
        if projection.broken is None and (late or 0.0) < self.policy.replan_when_late_s:
            await self.teller.maybe_live_update(session, projection, now, overlay)
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
                await self.teller.no_better_option(
                    session, plan, projection, projected, now, overlay
                )
            else:
                await self.teller.maybe_live_update(session, projection, now, overlay)
            return None
        detour = fixed.first_changed_leg if fixed is not None and best is fixed.itinerary else None
        body = suggestion_body(plan, projection, best, overlay, now, reason, detour)
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
        """End arrived or timed-out trips and expire suggestions, reading only the trips
        that are due by ``wall`` (:meth:`~realtime.trips.scheduler.TripTicker.tick`)."""
        await self.ticker.tick(time.time() if wall is None else wall, self.tick_s)

    def _schedule(self, session: TripSession) -> None:
        self.ticker.due.set(session.trip_id, next_due(session))

    def _set_due(self, trip_id: str, due: float, earlier_only: bool = False) -> None:
        self.ticker.due.set(trip_id, due, earlier_only)
