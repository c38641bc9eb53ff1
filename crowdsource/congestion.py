"""The live congestion service: what ``/api/v1/congestion`` and its change socket read.

The city's k-anonymous congested edges now (recent reports per edge, the fused
multipliers, operator decisions; see :mod:`crowdsource.dashboard`), the drive street at a
tapped point, and a stream of "the congestion map changed" nudges from the store's
events. ``api/routes/congestion.py`` and the operators' routes translate.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator
from typing import Any

import numpy as np
from numpy.typing import NDArray

from correspondance.store import EventsLostError, StateStore
from crowdsource.dashboard import CongestedEdge, congested_edges, contributors_by_edge, street_at
from crowdsource.decisions import load_decisions
from crowdsource.models import Report
from crowdsource.operators import opposite_edges
from crowdsource.repository import ReportRepository
from routing.base import CityBase

FUSION_WINDOW_S = 900.0  # crowdsource.fuser.Fuser's default window
REPORT_MATCH_M = 60.0  # crowdsource.intake.prepare_report's max_match_m
MAP_EVENTS = frozenset(
    {
        "congestion.changed",
        "congestion.confirmed",
        "congestion.dismissed",
        "incident.declared",
        "incident.ended",
    }
)
"""Events after which the congestion map may look different."""
NUDGE_MIN_INTERVAL_S = 1.0


class CongestionService:
    """Live congestion of the served cities over the store (reports and decisions)."""

    def __init__(self, store: StateStore, *, report_ttl_s: float, k: int) -> None:
        self.store = store
        self.report_ttl_s = report_ttl_s
        self.k = k

    def repository(self, city: str) -> ReportRepository:
        """The city's report repository (what the intake stores)."""
        return ReportRepository(self.store, city, self.report_ttl_s)

    async def recent(self, city: str, now: float) -> list[Report]:
        """The city's reports of the fusion window up to ``now``."""
        return await self.repository(city).recent(FUSION_WINDOW_S, now)

    async def edges(
        self,
        base: CityBase,
        multipliers: NDArray[np.float64],
        recent: list[Report],
        now: float,
    ) -> list[CongestedEdge]:
        """The city's k-anonymous congested edges given its ``recent`` reports and the live
        overlay's drive ``multipliers`` (see ``crowdsource.dashboard``)."""
        return congested_edges(
            base.streets["drive"],
            multipliers,
            contributors_by_edge(recent),
            await load_decisions(self.store, base.city.id, now),
            self.k,
        )

    async def live(
        self, base: CityBase, multipliers: NDArray[np.float64], now: float | None = None
    ) -> list[CongestedEdge]:
        """The city's k-anonymous congested edges now."""
        now = time.time() if now is None else now
        return await self.edges(base, multipliers, await self.recent(base.city.id, now), now)

    @staticmethod
    def nearest_street(base: CityBase, lat: float, lon: float, max_snap_m: float) -> dict[str, Any]:
        """The drive street nearest to a point, as a GeoJSON feature with its name and each
        direction of travel (edge id, compass heading)."""
        drive = base.streets["drive"]
        edge = drive.snap(lat, lon, min(REPORT_MATCH_M * 2, max_snap_m)).edge
        return street_at(drive, edge, opposite_edges(drive, edge))

    async def map_changes(self, city: str) -> AsyncGenerator[float, None]:
        """Yield the time each time the city's congestion map may have changed, at most once
        every :data:`NUDGE_MIN_INTERVAL_S`, until the reader closes or cancels it (a socket's
        reader does when its client leaves); lost events only resubscribe (a reader
        refetches the whole map at the next nudge anyway)."""
        while True:
            try:
                async with self.store.subscribe(after_seq=None) as events:
                    last = 0.0
                    async for event in events:
                        if event.city != city or event.type not in MAP_EVENTS:
                            continue
                        wait = last + NUDGE_MIN_INTERVAL_S - time.monotonic()
                        if wait > 0:
                            await asyncio.sleep(wait)
                        last = time.monotonic()
                        yield time.time()
            except EventsLostError:
                continue
