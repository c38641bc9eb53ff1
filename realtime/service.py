"""The live side of one city: feed servers (replays, simulators), pollers, the writer.

Exactly one process per city runs it: the one whose :class:`~realtime.runtime.WriterElection`
holds the store's ``writer:<city>`` lock, and every write it makes is fenced by that lock, so
fusion and ingestion never happen twice. In the embedded default that process is the API
server itself; with Redis it is ``correspondance worker`` (or a ``serve`` process of role
``all``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from dataclasses import dataclass, field

import httpx
import numpy as np

from correspondance.cities import FeedSource, RealtimeSimulatorConfig
from correspondance.store import Fence, StateStore
from crowdsource.decisions import DECISION_EVENTS, StoredDecisions
from crowdsource.fuser import Fuser
from crowdsource.fusion import ContributorWeights
from crowdsource.repository import RAW_TTL_S, REPORTS_DELETED, ReportRepository
from realtime.fetch import Fetcher
from realtime.gbfs_poller import GbfsPoller
from realtime.gbfs_server import GbfsServer
from realtime.gtfsrt_poller import GtfsRtPoller
from realtime.gtfsrt_simulator import GtfsRtServer, GtfsRtSimulator
from realtime.health import HealthBook
from realtime.loops import cancel_and_wait
from realtime.replay import Recording, VirtualClock
from realtime.simulator import GbfsSimulator
from realtime.writer import LiveWriter
from routing.base import CityBase
from routing.overlay import OverlayHolder

log = logging.getLogger("correspondance.realtime")


def street_points(base: CityBase, limit: int = 20_000) -> np.ndarray:
    """Walkable street nodes inside the city's bbox, as (lat, lon) rows."""
    walk = base.streets["walk"]
    inside = [
        i
        for i in range(walk.n_nodes)
        if base.city.contains(float(walk.node_lat[i]), float(walk.node_lon[i]))
    ]
    rows = np.column_stack([walk.node_lat[inside], walk.node_lon[inside]])
    return rows[:limit]


@dataclass
class LiveService:
    """Runs a city's live feeds into its overlay, for the writer elected by the runtime."""

    base: CityBase
    holder: OverlayHolder
    store: StateStore
    replay_speed: float = 60.0
    owner: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}")
    pollers: list[GbfsPoller | GtfsRtPoller] = field(default_factory=list)
    servers: list[GbfsServer | GtfsRtServer] = field(default_factory=list)
    simulators: list[GtfsRtSimulator] = field(default_factory=list)  # GTFS-RT, for tests
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _client: httpx.AsyncClient | None = None
    # crowdsourced congestion: fused every ``fusion_interval_s`` by the writer process only
    fusion_interval_s: float = 1.0
    fusion_k: int = 2
    report_ttl_s: float = RAW_TTL_S
    fuser: Fuser | None = None
    # simulated feeds follow the wall clock, or stay at this Unix time (tests, demos)
    simulated_at: float | None = None

    @property
    def city(self) -> str:
        """City id."""
        return self.base.city.id

    async def start(self, fence: Fence | None = None, epoch: int = 0) -> None:
        """Start feed servers, pollers and fusion; every write is fenced by ``fence``."""
        self._client = httpx.AsyncClient(trust_env=False)
        fetcher = Fetcher(self._client)
        writer = LiveWriter(self.city, self.holder, self.store, fence=fence, epoch=epoch)
        self.health = HealthBook(self.store, self.city)
        for source in self.base.city.gbfs:
            self.pollers.append(self._poller(source, fetcher, writer))
        for rt in self.base.city.gtfs_rt:
            if rt.simulate is not None:
                where = self._simulated_gtfsrt(rt.simulate)
            elif rt.url is not None:
                where = rt.url
            else:
                where = str(self.base.city.resolve(rt.path or ""))
            self.pollers.append(
                GtfsRtPoller(rt, fetcher, writer, self.health, self.base.timetable, where)
            )
        for poller in self.pollers:
            await poller.poll_once()  # first state before serving; faults only mark health
            self._tasks.append(asyncio.create_task(poller.run(self._stop)))
        if "drive" in self.base.streets:
            self._tasks.append(asyncio.create_task(self._fuse_reports(writer)))

    async def _fuse_reports(self, writer: LiveWriter) -> None:
        """Fuse crowdsourced reports into drive congestion, once per ``fusion_interval_s``,
        and at once after an operator decision or a contributor's deletion."""
        given = self.fuser.decisions if self.fuser is not None else None
        decisions = given if given is not None else StoredDecisions(self.store, self.city)
        if self.fuser is None:
            self.fuser = Fuser(
                ReportRepository(self.store, self.city, self.report_ttl_s),
                ContributorWeights(self.store),
                self.holder,
                writer,
                self.fusion_k,
                decisions=decisions,
            )
        wake = asyncio.Event()
        listener = asyncio.create_task(self._wake_fusion(decisions, wake))
        try:
            while not self._stop.is_set():
                try:
                    await self.fuser.fuse_once()
                except Exception:  # the store may be down: keep the last state, retry
                    log.warning("fusing reports of %s failed", self.city, exc_info=True)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), timeout=self.fusion_interval_s)
                wake.clear()
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener

    async def _wake_fusion(self, decisions: StoredDecisions, wake: asyncio.Event) -> None:
        while not self._stop.is_set():
            try:
                async with self.store.subscribe() as events:
                    async for event in events:
                        if event.city != self.city:
                            continue
                        if event.type in DECISION_EVENTS:
                            decisions.invalidate()
                            wake.set()
                        elif event.type == REPORTS_DELETED:
                            wake.set()
            except Exception:  # lost events or store down: decisions reread on rescan anyway
                log.warning("fusion wake-ups of %s restarting", self.city, exc_info=True)
                decisions.invalidate()
                await asyncio.sleep(1.0)

    def _simulated_gtfsrt(self, config: RealtimeSimulatorConfig) -> str:
        """Start a GTFS-RT simulator's loopback server; its URL is polled like a real feed."""
        sim = GtfsRtSimulator.for_transit(
            config,
            self.base.timetable.transit,
            config.service_date or self.base.city.default_date,
            frozen_at=self.simulated_at,
        )
        server = GtfsRtServer(sim.feed_bytes).start()
        self.servers.append(server)
        self.simulators.append(sim)
        return server.url

    def _poller(self, source: FeedSource, fetcher: Fetcher, writer: LiveWriter) -> GbfsPoller:
        if source.simulate is not None:
            sim = GbfsSimulator(
                source.id,
                source.name or source.id,
                source.simulate,
                street_points(self.base),
                self.base.city.timezone,
                frozen_at=self.simulated_at,
            )
            server = GbfsServer(sim.document).start()
            self.servers.append(server)
            return GbfsPoller(source, server.discovery_url, fetcher, writer, self.health)
        if source.path is not None:
            recording = Recording(self.base.city.resolve(source.path))
            clock = VirtualClock(start=recording.epochs[0], speed=self.replay_speed)
            server = GbfsServer(recording.provider(clock, source.id)).start()
            self.servers.append(server)
            return GbfsPoller(
                source, server.discovery_url, fetcher, writer, self.health, clock=clock, replay=True
            )
        assert source.url is not None
        return GbfsPoller(source, source.url, fetcher, writer, self.health)

    async def stop(self) -> None:
        """Stop polling and fusion, stop feed servers."""
        self._stop.set()
        await cancel_and_wait(self._tasks, f"live service of {self.city}")  # see its doc
        if self._client is not None:
            await self._client.aclose()
        for server in self.servers:
            server.stop()
