"""The trip engine: watch live changes, replan the trips they touch, suggest switches.

One engine runs per city, in the process that writes the city's live state (so the overlay
it reads already holds the change an event announces). It keeps indexes from what can
change to the active trips whose remaining legs depend on it (drive edge → trips, station →
trips, transit trip → trips) and, for each event on the shared stream, looks up only the
trips touched. Each is re-timed under the new overlay (:func:`~realtime.trips.plan_view.project`,
cheap); only a trip whose plan broke or lost at least ``policy.replan_when_late_s`` is
replanned from its traveller's current state with :func:`routing.state.replan`, and the
:class:`~realtime.trips.policy.SwitchPolicy` decides whether the result is worth a
``switch_suggestion``. A tick ends trips that arrived and expires stale suggestions.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import os
import secrets
import time
from collections import defaultdict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from correspondance.errors import CorrespondanceError, InputError
from correspondance.store import Event, StateStore
from realtime.loops import LoopHealth
from realtime.trips.commands import CommandRefusedError, close_suggestion, end
from realtime.trips.plan_view import (
    Projection,
    TripPlan,
    parse_plan,
    project,
    traveller_state,
)
from realtime.trips.policy import SwitchPolicy
from realtime.trips.protocol import message, stamp
from realtime.trips.sessions import (
    TRIP_ENDED,
    TRIP_STARTED,
    TRIP_UPDATED,
    TripBook,
    TripNotFoundError,
    TripSession,
)
from routing.base import CityBase
from routing.overlay import LiveOverlay, OverlayHolder
from routing.plan import Itinerary
from routing.state import replan
from routing.wire import ItineraryOut

log = logging.getLogger("correspondance.trips")

CONGESTION_CHANGED = "congestion.changed"
GBFS_UPDATED = "gbfs.updated"
GTFSRT_UPDATED = "gtfsrt.updated"
INCIDENT_DECLARED = "incident.declared"
ARRIVED_AFTER_S = 120.0  # a trip ends this long after its plan's arrival...
TIMEOUT_AFTER_S = 3600.0  # ...or, when its last position is far from the destination, this
NEAR_DESTINATION_M = 300.0
ETA_NOTICE_S = 60.0  # a live_update when the projected arrival moves this much
MAX_VALID_S = 20 * 60.0
MIN_VALID_S = 3 * 60.0

REASONS = {
    "congestion": "Traffic is jammed ahead",
    "vehicle_unavailable": "No vehicle is left at your pick-up station",
    "dock_unavailable": "No free space is left at your drop-off station",
    "trip_cancelled": "Your connection is cancelled",
    "delay": "Your connection is running late",
    "stop_closed": "A stop on your way is closed",
}
MODE_WORDS = {
    "walk": "walk",
    "bicycle": "cycle",
    "car": "drive",
    "bikeshare": "take a shared bike",
    "carshare": "take a shared car",
}


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
    replanned: int = 0
    suggested: int = 0
    withdrawn: int = 0
    live_updates: int = 0


class TripEngine:
    """Matches live events to trips, replans them, and pushes suggestions (one per city)."""

    def __init__(
        self,
        base: CityBase,
        holder: OverlayHolder,
        store: StateStore,
        policy: SwitchPolicy | None = None,
        walk_speed_m_s: float = 1.3,
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
        self._plans: dict[str, tuple[int, TripPlan]] = {}  # trip → (plan version, plan)
        self._pending: dict[str, str] = {}  # trip → reason code hint
        self._wake = asyncio.Event()
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
        """Index the city's active trips, then tick and (unless the caller hands it the
        events, as :class:`~realtime.runtime.LiveRuntime` does) follow events."""
        with contextlib.suppress(ConnectionError):  # store down: indexed when it is back
            await self.reindex_all()
        self._tasks = [
            asyncio.create_task(self._work()),
            asyncio.create_task(self._tick_loop()),
        ]
        if follow:
            self._tasks.append(asyncio.create_task(self._follow()))

    async def reindex_all(self) -> None:
        """Re-read the city's active trips: index those this process owns, forget others."""
        for trip_id in self.index.trips:
            if not self.owns(trip_id):
                self._forget(trip_id)
        active = set(await self.book.active(self.city))
        for trip_id in self.index.trips:
            if trip_id not in active:
                self._forget(trip_id)
        for trip_id in sorted(active):
            if self.owns(trip_id):
                await self._reindex(trip_id)

    async def stop(self) -> None:
        """Stop following events (never raises: shutdown goes on)."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception:  # the loops catch everything; this is a last resort
                log.exception("trip engine task of %s ended with an error", self.city)

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
        """Index trip changes; queue the trips a live change touches."""
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
        if kind == CONGESTION_CHANGED:
            # diff the overlay itself: the event lists at most 1000 edges
            before = self._seen.drive_multiplier
            after = current.drive_multiplier
            changed = np.flatnonzero(before != after) if before is not after else ()
            touched = self.index.touched(edges=changed)
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
        for trip_id in touched:
            self._pending.setdefault(trip_id, reason)
        if touched:
            self.idle.clear()
            self._wake.set()

    async def _reindex(self, trip_id: str) -> None:
        """(Re-)index one trip. What is stored never makes this raise (start-up indexes
        every active trip): an unreadable session is quarantined by :meth:`TripBook.get`,
        a plan that no longer reads against the city here; only store errors propagate."""
        if not self.owns(trip_id):
            self._forget(trip_id)
            return
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
            self.index.put(trip_id, plan, plan.leg_index_at(session.now()))
        except Exception as exc:
            self.tick_health.failed(exc, f"indexing trip {trip_id}")
            self._forget(trip_id)
            if _is_bad_data(exc):
                await self._quarantine(trip_id, exc)

    def _forget(self, trip_id: str) -> None:
        self.index.remove(trip_id)
        self._plans.pop(trip_id, None)
        self._pending.pop(trip_id, None)

    def _plan(self, session: TripSession) -> TripPlan:
        cached = self._plans.get(session.trip_id)
        if cached is not None and cached[0] == session.plan_version:
            return cached[1]
        plan = parse_plan(self.base, session.plan)
        self._plans[session.trip_id] = (session.plan_version, plan)
        return plan

    async def _count_incident(self, payload: dict[str, Any]) -> None:
        touched = self.index.touched(edges=payload.get("edges", ()))
        incident = str(payload.get("incident_id", ""))
        await self.book.store.set(
            f"tripstats:{self.city}:incident:{incident}",
            str(len(touched)).encode(),
            ttl_s=24 * 3600.0,
        )

    # -- evaluation ---------------------------------------------------------------------------

    async def _work(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                # a few trips at a time: replans run in threads, and the compiled kernels
                # release the GIL, so they overlap on several cores
                batch: list[Coroutine[Any, Any, None]] = []
                while self._pending and len(batch) < self.concurrency:
                    trip_id, reason = next(iter(self._pending.items()))
                    del self._pending[trip_id]
                    batch.append(self._evaluate_safely(trip_id, reason))
                await asyncio.gather(*batch)
            self.idle.set()

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
        """Re-time one trip under the current overlay; suggest, withdraw or update.

        Returns the switch_suggestion made, if any.
        """
        self.stats.evaluated += 1
        session = await self.book.get(trip_id)
        if session.status != "active":
            self._forget(trip_id)
            return None
        overlay = self.holder.current
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
            await self._maybe_live_update(session, projection, now)
            return None
        position = await self.book.position(trip_id)
        state = traveller_state(plan, now, position)
        modes = frozenset(session.modes) | {"walk", "transit"}
        self.stats.replanned += 1
        try:
            options = await asyncio.to_thread(
                replan, self.base, state, plan.destination, overlay, modes, self.walk_speed_m_s
            )
        except CorrespondanceError as exc:
            log.info("replanning trip %s: %s", trip_id, exc)
            options = []
        best = min(options, key=lambda it: it.arrival, default=None)
        if best is None or not self.policy.worth_suggesting(
            now, projection.arrival, best.arrival, session.closed_saving_s
        ):
            await self._maybe_live_update(session, projection, now)
            return None
        body = self._suggestion(session, plan, projection, best, overlay, now, reason)

        def mutate(s: TripSession) -> list[dict[str, Any]]:
            if (
                s.status != "active"
                or s.suggestion is not None
                or s.plan_version != session.plan_version
            ):
                return []  # the traveller acted meanwhile; the next event re-evaluates
            s.suggestion = body
            s.suggestions_made += 1
            return [message("switch_suggestion", s.trip_id, now, **body)]

        _, sent = await self.book.change(trip_id, mutate, event=None)
        if sent:
            self.stats.suggested += 1
            await self.book.count(self.city, "suggested")
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
        self, session: TripSession, projection: Projection, now: dt.datetime
    ) -> None:
        """A live_update when delays, alerts or congestion move the arrival noticeably."""
        if projection.arrival is None or not projection.legs:
            return
        last = (
            dt.datetime.fromisoformat(session.last_eta) if session.last_eta else session.arrival()
        )
        if abs((projection.arrival - last).total_seconds()) < ETA_NOTICE_S:
            return
        overlay = self.holder.current
        eta = stamp(projection.arrival)

        def mutate(s: TripSession) -> list[dict[str, Any]]:
            if s.status != "active" or s.plan_version != session.plan_version:
                return []
            s.last_eta = eta
            legs = [
                {
                    "leg_index": i,
                    "delay_s": delay,
                    "cancelled": cancelled,
                    "alerts": _alerts(s.plan, i, overlay),
                    "note": note,
                }
                for i, delay, cancelled, note in projection.legs
            ]
            return [message("live_update", s.trip_id, now, legs=legs, eta=eta)]

        _, sent = await self.book.change(session.trip_id, mutate, event=None)
        if sent:
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
    ) -> dict[str, Any]:
        code = projection.broken or reason
        current_leg = plan.legs[plan.leg_index_at(now)]
        # where the new plan leaves what the traveller is doing now
        doing = current_leg.trip_id or current_leg.mode
        k = next(
            (i for i, leg in enumerate(best.legs) if (leg.trip_id or leg.mode) != doing),
            len(best.legs) - 1,
        )
        switch = best.legs[k]
        after = best.legs[k:]
        ride = next((leg for leg in after if leg.trip_id), None)
        if k == 0 and (switch.trip_id or switch.mode) == doing:
            action = "take another way around it"  # the same mode, by other streets
        elif ride is not None:
            line = ride.route_short_name or ride.route_long_name or ride.mode
            action = f"take {ride.mode} {line} at {ride.origin.name}"
        else:
            action = MODE_WORDS.get(switch.mode, switch.mode)
        leave = ""
        if k > 0 and current_leg.mode in ("carshare", "bikeshare"):
            vehicle = "car" if current_leg.mode == "carshare" else "bike"
            leave = f"leave the {vehicle} at {switch.origin.name}, "
        elif k > 0 and current_leg.trip_id:
            leave = f"get off at {switch.origin.name}, "
        saved = (
            round((projection.arrival - best.arrival).total_seconds() / 60.0, 1)
            if projection.arrival is not None
            else None
        )
        gain = (
            f", arrive {saved:.0f} min earlier"
            if saved is not None
            else f", arrive {best.arrival:%H:%M}"
        )
        why = projection.note if projection.broken and projection.note else REASONS[code]
        text = f"{why}: {leave}{action}{gain}."
        valid = min(
            max(switch.departure, now + dt.timedelta(seconds=MIN_VALID_S)),
            now + dt.timedelta(seconds=MAX_VALID_S),
        )
        return {
            "suggestion_id": secrets.token_urlsafe(9),
            "reason": {"code": code, "message": text[0].upper() + text[1:]},
            "current_arrival": stamp(projection.arrival) if projection.arrival else None,
            "new_arrival": stamp(best.arrival),
            "minutes_saved": saved,
            "plan_broken": projection.broken is not None,
            "switch_at": {
                "name": switch.origin.name if k > 0 else "where you are",
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

        One trip that fails does not stop the others: the error is counted, and a trip
        whose stored data cannot be used is quarantined.
        """
        wall = time.time() if wall is None else wall
        for trip_id in self.index.trips:
            try:
                await self._tick_trip(trip_id, wall)
            except asyncio.CancelledError:
                raise
            except TripNotFoundError:
                self._forget(trip_id)
            except Exception as exc:
                self.tick_health.failed(exc, f"ticking trip {trip_id}")
                if _is_bad_data(exc):
                    self._forget(trip_id)
                    await self._quarantine(trip_id, exc)

    async def _tick_trip(self, trip_id: str, wall: float) -> None:
        """One trip's tick: expire its suggestion, end it once arrived or timed out."""
        session = await self.book.get(trip_id)
        now = session.now(wall)
        open_ = session.suggestion
        if open_ is not None and now > dt.datetime.fromisoformat(open_["valid_until"]):
            with contextlib.suppress(CommandRefusedError):
                await self.book.change(
                    trip_id,
                    close_suggestion(open_["suggestion_id"], "expired", now),
                    event=None,
                )
        overdue = (now - session.arrival()).total_seconds()
        if overdue < ARRIVED_AFTER_S:
            return
        position = await self.book.position(trip_id)
        far = (
            position is not None
            and _metres(position, self._plan(session).destination) > NEAR_DESTINATION_M
        )
        if far and overdue < TIMEOUT_AFTER_S:
            return
        with contextlib.suppress(CommandRefusedError):
            await self.book.change(
                trip_id, end("timeout" if far else "arrived", now), event=TRIP_ENDED
            )
            await self.book.count(self.city, "ended")
        self._forget(trip_id)


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


def _metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    lat = np.radians((a[0] + b[0]) / 2)
    dy = (a[0] - b[0]) * 111_195.0
    dx = (a[1] - b[1]) * 111_195.0 * float(np.cos(lat))
    return float(np.hypot(dx, dy))
