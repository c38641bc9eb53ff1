"""One composition of the live side, for every process role.

``serve`` and ``worker`` both build a :class:`LiveRuntime` from :class:`Settings`, so the
roles cannot drift apart again. What each role runs, per city:

========================  =====  =====  ======
part                      all    api    worker
========================  =====  =====  ======
writer election → writer   yes    no     yes
trip engine (partitions)   yes    no     yes
follower (mirror writer)   Redis  yes    yes
trip hub (websockets)      yes    yes    no
========================  =====  =====  ======

* The **writer election** keeps trying for the city's ``writer:<city>`` lock (standbys too,
  forever) and, while it holds it, runs :class:`~realtime.service.LiveService` (pollers,
  feed servers, fusion) with a :class:`~correspondance.store.Fence`: every write is refused
  by the store once the lock is lost. A holder that cannot confirm its lock for half the
  TTL (a store outage) stops writing before anyone else could take the lock.
* **Trip engines** split each city's active trips into ``trip_partitions`` partitions (a
  hash of the trip id). Every engine process holds an expiring lease on a fair share of
  them and evaluates only its own trips; a dead process's leases expire and the others take
  them over (:class:`TripPartitions`).
* A process that does not write mirrors the writer's state (``LiveFollower``) from the
  event stream; one pump per city hands each event to the follower *first*, then to the
  engine, so an engine never evaluates an event against a stale overlay.
* Every long-running loop runs under a :class:`~realtime.supervisor.Supervisor`: it never
  dies silently — a failure is logged, counted, shown in :meth:`LiveRuntime.health` and the
  loop restarted.
* A process that runs engines also gives the memory it freed back to the operating system
  every 15 s, with glibc's arenas capped and its mmap threshold fixed (:mod:`realtime.heap`),
  or glibc keeps it and its RSS creeps up.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import math
import os
import socket
import time
import uuid
import zlib
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from correspondance.settings import Settings
from correspondance.store import Fence, StateStore
from realtime import heap
from realtime.loops import cancel_and_wait
from realtime.service import LiveService
from realtime.supervisor import Supervisor as Supervisor  # tests import it from here
from realtime.trips.engine import TripEngine
from realtime.trips.hub import TripHub
from realtime.trips.policy import SwitchPolicy
from realtime.writer import LiveFollower
from routing.base import CityBase
from routing.overlay import OverlayHolder
from routing.warmup import warm_up

log = logging.getLogger("correspondance.runtime")

ROLES = ("all", "api", "worker")
WRITES = frozenset({"all", "worker"})  # roles that compete for the writer lock, run engines
SERVES = frozenset({"all", "api"})  # roles that hold live-trip websockets


def process_owner() -> str:
    """A lock owner unique to this process and start (host, pid, random part)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def writer_lock(city: str) -> str:
    """The lock whose holder writes a city's live state (feeds, fusion)."""
    return f"writer:{city}"


def trip_partition(trip_id: str, partitions: int) -> int:
    """The partition of a trip: a stable hash of its id (the same in every process)."""
    return zlib.crc32(trip_id.encode()) % partitions


# -- the writer election --------------------------------------------------------------------


class WriterElection:
    """Keeps trying for a city's writer lock; runs the writer while it holds it.

    Parameters
    ----------
    store : StateStore
        Shared state.
    city : str
        City id; the lock is ``writer:<city>``.
    owner : str
        This process's lock owner.
    ttl_s : float
        Lock expiry. The holder refreshes it every ``ttl_s / 5`` and steps down when it could
        not confirm it for ``ttl_s / 2`` (so before the lock can expire for anyone else).
    elected, demoted : callables
        ``await elected(fence, epoch)`` starts the writer; ``await demoted()`` stops it.
        ``epoch`` grows with every election of the city (a counter in the store), so events
        carry which term wrote them.
    """

    def __init__(
        self,
        store: StateStore,
        city: str,
        owner: str,
        ttl_s: float,
        elected: Callable[[Fence, int], Coroutine[Any, Any, None]],
        demoted: Callable[[], Awaitable[None]],
    ) -> None:
        self.store = store
        self.city = city
        self.owner = owner
        self.ttl_s = ttl_s
        self._elected = elected
        self._demoted = demoted
        self.leader = False
        self.epoch = 0
        self.terms = 0
        self._confirmed_at = 0.0
        # the writer's start-up (first feed polls) runs beside the lock keeping, never
        # delaying a refresh
        self.starting: asyncio.Task[None] | None = None
        self.failed_starts = 0
        self.stopping = False  # set by close(): the process leaves (no mirroring after it)

    @property
    def lock(self) -> str:
        """The lock name."""
        return writer_lock(self.city)

    async def run(self) -> None:
        """Campaign forever (a supervised loop; :meth:`close` once it has ended)."""
        while True:
            await self.step()
            await asyncio.sleep(self.ttl_s / 5 if self.leader else self.ttl_s / 3)

    async def close(self) -> None:
        """Leave: step down if writing (the writer stops) and free the lock at once, so a
        standby takes over now rather than after the TTL. Call it after :meth:`run` ended."""
        self.stopping = True
        if self.leader:
            await self._step_down("stopping")
        else:
            starting, self.starting = self.starting, None
            if starting is not None:
                await cancel_and_wait([starting], f"writer start-up of {self.city}")
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.store.release_lock(self.lock, self.owner), self.ttl_s / 5)

    async def step(self) -> None:
        """One round: refresh (leader) or try to take the lock (standby)."""
        try:
            sent = time.monotonic()
            if self.leader:
                held = await asyncio.wait_for(
                    self.store.refresh_lock(self.lock, self.owner, self.ttl_s), self.ttl_s / 4
                )
                if held:
                    self._confirmed_at = sent
                else:
                    await self._step_down("lost the writer lock")
            elif await asyncio.wait_for(
                self.store.acquire_lock(self.lock, self.owner, self.ttl_s), self.ttl_s / 4
            ):
                self._confirmed_at = sent
                self.epoch = await self.store.incr(f"writer-epoch:{self.city}")
                self.leader = True
                self.terms += 1
                log.info("writing live state for %s (epoch %d)", self.city, self.epoch)
                self.starting = asyncio.create_task(
                    self._elected(Fence(self.lock, self.owner), self.epoch)
                )
                self.starting.add_done_callback(self._started)
        except (TimeoutError, ConnectionError) as exc:
            log.warning("writer lock of %s: store unreachable (%s)", self.city, exc)
        if self.leader and time.monotonic() - self._confirmed_at > self.ttl_s / 2:
            await self._step_down("could not confirm the writer lock")

    def _started(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            # leave the lock to expire for another process: this one cannot write
            log.error("starting the writer of %s failed", self.city, exc_info=task.exception())
            self.failed_starts += 1
            self._confirmed_at = -math.inf

    async def _step_down(self, why: str) -> None:
        level = logging.INFO if self.stopping else logging.ERROR
        log.log(level, "%s: stepping down as writer of %s (epoch %d)", why, self.city, self.epoch)
        self.leader = False
        starting, self.starting = self.starting, None
        if starting is not None:
            await cancel_and_wait([starting], f"writer start-up of {self.city}")
        await self._demoted()

    def health(self) -> dict[str, Any]:
        """JSON form for health."""
        return {
            "leader": self.leader,
            "epoch": self.epoch,
            "terms": self.terms,
            "failed_starts": self.failed_starts,
        }


# -- trip partitions ------------------------------------------------------------------------


class TripPartitions:
    """Expiring leases on a fair share of a city's trip partitions.

    Each engine process announces itself (``engines:<city>:<owner>``, expiring) and holds at
    most ``ceil(partitions / live engines)`` leases ``trips:<city>:<k>``; extra leases are
    released for newcomers, and free ones (a dead process's, expired) are taken. After any
    change ``changed()`` runs beside the lease keeping (the engine re-reads which trips are
    its own: seconds for thousands of trips, which must never delay a refresh, else the
    leases expire and move again); :meth:`settled` waits for it.
    """

    def __init__(
        self,
        store: StateStore,
        city: str,
        owner: str,
        partitions: int,
        ttl_s: float,
        changed: Callable[[], Awaitable[None]],
    ) -> None:
        self.store = store
        self.city = city
        self.owner = owner
        self.partitions = partitions
        self.ttl_s = ttl_s
        self._changed = changed
        self.held: set[int] = set()
        self.rounds = 0
        self._applying: asyncio.Task[None] | None = None
        self._again = False
        # each process tries partitions in its own order, so newcomers rarely collide
        start = zlib.crc32(owner.encode()) % partitions
        self._order = [(start + i) % partitions for i in range(partitions)]

    def owns(self, trip_id: str) -> bool:
        """Whether this process evaluates the trip now."""
        return trip_partition(trip_id, self.partitions) in self.held

    def lease(self, k: int) -> str:
        """The lock name of partition ``k``."""
        return f"trips:{self.city}:{k}"

    async def run(self) -> None:
        """Keep the leases (a supervised loop; :meth:`close` once it has ended)."""
        while True:
            await self.step()
            await asyncio.sleep(self.ttl_s / 3)

    async def close(self) -> None:
        """Leave at once: withdraw the announcement and free every lease, so the other
        engines take this share now, not after the TTL. Call it after :meth:`run` ended."""
        held, self.held = sorted(self.held), set()  # evaluate nothing from here on
        if self._applying is not None:
            await cancel_and_wait([self._applying], f"re-indexing trips of {self.city}")
        with contextlib.suppress(Exception):
            await asyncio.wait_for(
                self.store.delete(f"engines:{self.city}:{self.owner}"), self.ttl_s / 3
            )
        for k in held:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    self.store.release_lock(self.lease(k), self.owner), self.ttl_s / 3
                )

    async def step(self) -> None:
        """One round: announce, refresh, rebalance, take free partitions."""
        before = set(self.held)
        try:
            await asyncio.wait_for(self._step(), self.ttl_s / 2)
        except (TimeoutError, ConnectionError) as exc:
            # cannot confirm our leases: stop evaluating before another process takes them
            log.warning("trip partitions of %s: store unreachable (%s)", self.city, exc)
            self.held.clear()
        self.rounds += 1
        if self.held != before:
            log.info("trip partitions of %s: %s", self.city, sorted(self.held))
            if self._applying is None or self._applying.done():
                self._applying = asyncio.create_task(self._apply())
            else:
                self._again = True

    async def _apply(self) -> None:
        while True:
            self._again = False
            try:
                await self._changed()
            except ConnectionError:  # the event pump re-indexes when the store is back
                log.warning("re-indexing trips of %s: store unreachable", self.city)
            except Exception:
                log.exception("re-indexing trips of %s failed", self.city)
            if not self._again:
                return

    async def settled(self) -> None:
        """Wait until the engine has taken the last change of partitions into account."""
        while self._applying is not None and not self._applying.done():
            await asyncio.shield(self._applying)

    async def _step(self) -> None:
        await self.store.set(f"engines:{self.city}:{self.owner}", b"1", ttl_s=self.ttl_s)
        alive = max(1, len(await self.store.scan_keys(f"engines:{self.city}:*")))
        share = math.ceil(self.partitions / alive)
        for k in sorted(self.held):
            if not await self.store.refresh_lock(self.lease(k), self.owner, self.ttl_s):
                self.held.discard(k)
        for k in sorted(self.held, reverse=True)[: max(0, len(self.held) - share)]:
            await self.store.release_lock(self.lease(k), self.owner)
            self.held.discard(k)
        for k in self._order:
            if len(self.held) >= share:
                break
            if k not in self.held and await self.store.acquire_lock(
                self.lease(k), self.owner, self.ttl_s
            ):
                self.held.add(k)

    def health(self) -> dict[str, Any]:
        """JSON form for health."""
        return {"partitions": sorted(self.held), "of": self.partitions}


# -- the runtime ----------------------------------------------------------------------------


@dataclass
class CityLive:
    """What runs for one city in this process."""

    city: str
    election: WriterElection | None = None
    service: LiveService | None = None
    partitions: TripPartitions | None = None
    engine: TripEngine | None = None
    follower: LiveFollower | None = None


@dataclass
class LiveRuntime:
    """The live side of one process, composed from its settings and role."""

    settings: Settings
    store: StateStore
    bases: dict[str, CityBase]
    overlays: dict[str, OverlayHolder]
    owner: str = field(default_factory=process_owner)
    supervisor: Supervisor = field(default_factory=Supervisor)
    cities: dict[str, CityLive] = field(default_factory=dict)
    hub: TripHub | None = None

    @property
    def role(self) -> str:
        """all | api | worker."""
        return self.settings.role

    async def start(self) -> None:
        """Start every part the role runs, for every city."""
        if self.role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}, got {self.role!r}")
        if self.role in SERVES:
            self.hub = TripHub(self.store)
            self.hub.start()
        if self.role in WRITES and heap.available():  # freed memory back to the OS
            heap.tune()
            self.supervisor.spawn("heap-trim", heap.trim_forever)
        for city_id in self.bases:
            await self._start_city(city_id)
        if self.settings.warm_up:  # with the first live state in (shared vehicles to replan)
            for city_id, base in self.bases.items():
                await asyncio.to_thread(warm_up, base, self.overlays[city_id].current)

    async def _start_city(self, city_id: str) -> None:
        settings = self.settings
        live = self.cities[city_id] = CityLive(city_id)
        shared = settings.redis_url is not None
        if self.role in WRITES:
            live.engine = self._engine(city_id)
            live.partitions = TripPartitions(
                self.store,
                city_id,
                self.owner,
                settings.trip_partitions,
                settings.trip_lease_ttl_s,
                functools.partial(live.engine.reindex_all, fresh=False),
            )
            live.engine.owns = live.partitions.owns
            await live.partitions.step()  # own a share before the first event
            await live.partitions.settled()
            # keep the leases while the engine indexes its trips (seconds for thousands)
            self.supervisor.spawn(
                f"trip-partitions:{city_id}", live.partitions.run, live.partitions.close
            )
            await live.engine.start(follow=False)
            if settings.live_feeds:
                live.election = self._election(live)
                await live.election.step()  # the first writer starts before serving
                if live.election.starting is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.shield(live.election.starting)
                self.supervisor.spawn(
                    f"writer-election:{city_id}", live.election.run, live.election.close
                )
        if shared and (self.role == "api" or live.election is not None):
            live.follower = LiveFollower(city_id, self.overlays[city_id], self.store)
            if not self._writes(live):
                with contextlib.suppress(ConnectionError):  # the pump retries
                    await live.follower.catch_up()
        if live.engine is not None or live.follower is not None:
            self.supervisor.spawn(f"events:{city_id}", lambda: self._pump(live))

    def _engine(self, city_id: str) -> TripEngine:
        settings = self.settings
        policy = SwitchPolicy(
            min_saving_s=settings.trip_min_saving_s, min_fraction=settings.trip_min_fraction
        )
        engine = TripEngine(
            self.bases[city_id],
            self.overlays[city_id],
            self.store,
            policy,
            walk_speed_m_s=settings.walk_speed_m_s,
        )
        return engine

    def _election(self, live: CityLive) -> WriterElection:
        settings = self.settings
        base = self.bases[live.city]

        async def elected(fence: Fence, epoch: int) -> None:
            live.service = service = LiveService(
                base,
                self.overlays[live.city],
                self.store,
                replay_speed=settings.replay_speed,
                fusion_k=settings.fusion_k,
                report_ttl_s=settings.report_ttl_s,
                simulated_at=settings.simulated_feeds_at,
                owner=self.owner,
            )
            await service.start(fence, epoch)

        async def demoted() -> None:
            service, live.service = live.service, None
            if service is not None:
                await service.stop()
            election = live.election
            leaving = election is not None and election.stopping
            if live.follower is not None and not leaving:  # mirror the new writer's state
                with contextlib.suppress(Exception):
                    await live.follower.catch_up()

        return WriterElection(
            self.store, live.city, self.owner, settings.writer_lock_ttl_s, elected, demoted
        )

    async def _pump(self, live: CityLive) -> None:
        """Hand each event of the city to the follower (unless this process writes), then to
        the engine. After an outage or lost events, reload everything first."""
        if live.follower is not None and not self._writes(live):
            await live.follower.catch_up()
        if live.engine is not None:
            await live.engine.reindex_all()
        async with self.store.subscribe() as events:
            async for event in events:
                if event.city != live.city:
                    continue
                if live.follower is not None and not self._writes(live):
                    await live.follower.apply(event)
                if live.engine is not None:
                    await live.engine.on_event(event)

    @staticmethod
    def _writes(live: CityLive) -> bool:
        return live.election is not None and live.election.leader

    async def stop(self) -> None:
        """Stop every loop, step down as writer, release leases, stop the hub and engines."""
        await self.supervisor.stop()
        for live in self.cities.values():
            if live.service is not None:
                await live.service.stop()
                live.service = None
            if live.engine is not None:
                await live.engine.stop()
        if self.hub is not None:
            await self.hub.stop()

    def health(self) -> dict[str, Any]:
        """Role, supervised loops, the hub, and per city: writer, partitions, engine."""
        cities: dict[str, Any] = {}
        for city_id, live in self.cities.items():
            entry: dict[str, Any] = {}
            if live.election is not None:
                entry["writer"] = live.election.health()
            if live.partitions is not None:
                entry["trip_partitions"] = live.partitions.health()
            if live.engine is not None:
                entry["engine"] = live.engine.health()
            cities[city_id] = entry
        return {
            "role": self.role,
            "owner": self.owner,
            "loops": self.supervisor.health(),
            "hub": self.hub.health() if self.hub is not None else None,
            "cities": cities,
        }

    def failing(self) -> list[str]:
        """Loops that are not running now (a health check reports them, degraded)."""
        dead = [name for name, up in self.supervisor.health().items() if not up["running"]]
        if self.hub is not None:
            hub = self.hub.health()
            dead += [f"hub {part}" for part in ("follower", "ticker") if not hub[part]["running"]]
        for city_id, live in self.cities.items():
            if live.engine is not None and not live.engine.health()["running"]:
                dead.append(f"engine tick of {city_id}")
        return dead
