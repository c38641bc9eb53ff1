"""The operators' dashboard sampler: one :class:`~crowdsource.dashboard.DashboardSample` a
minute per served city (reports received, congestion index and edges, active trips,
suggestions made and accepted), claimed so that one process of a deployment records it.

It combines crowdsource's live congestion with the live trips' counters, so it lives on
the realtime side; the API runs it in its lifespan (``api/routes/operators.py``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping

import numpy as np
from numpy.typing import NDArray

from correspondance.store import StateStore
from crowdsource.congestion import CongestionService
from crowdsource.dashboard import (
    SAMPLE_INTERVAL_S,
    DashboardMetrics,
    DashboardSample,
    congestion_index,
    edge_levels,
    reports_received,
)
from realtime.trips.sessions import TripBook
from routing.base import CityBase

log = logging.getLogger("correspondance.api")

Multipliers = Callable[[str], NDArray[np.float64]]
"""A city's live drive multipliers now (the overlay's)."""


class DashboardSampler:
    """Minute samples of every served city for the dashboard's charts and time slider."""

    def __init__(self, store: StateStore, congestion: CongestionService) -> None:
        self.store = store
        self.congestion = congestion

    async def take_sample(
        self, base: CityBase, multipliers: NDArray[np.float64], now: float
    ) -> DashboardSample:
        """Measure one minute of a city (see ``crowdsource.dashboard``)."""
        city = base.city.id
        recent = await self.congestion.recent(city, now)
        edges = await self.congestion.edges(base, multipliers, recent, now)
        index, km = congestion_index(base.streets["drive"], edges)
        book = TripBook(self.store)
        counters = await book.counters(city, ("suggested", "accepted"))
        return DashboardSample(
            t=int(now // SAMPLE_INTERVAL_S * SAMPLE_INTERVAL_S),
            reports=reports_received(recent, now - SAMPLE_INTERVAL_S, now),
            congestion_index=index,
            congested_km=km,
            active_trips=len(await book.active(city)),
            suggestions_made=counters["suggested"],
            suggestions_accepted=counters["accepted"],
            edges=edge_levels(edges),
        )

    async def sample_cities(
        self, bases: Mapping[str, CityBase], multipliers: Multipliers, now: float
    ) -> int:
        """Record this minute's sample of every city not yet sampled by another process;
        return how many this process recorded."""
        taken = 0
        for city, base in bases.items():
            metrics = DashboardMetrics(self.store, city)
            if await metrics.claim(now) is not None:
                await metrics.record(await self.take_sample(base, multipliers(city), now))
                taken += 1
        return taken

    async def run(self, bases: Mapping[str, CityBase], multipliers: Multipliers) -> None:
        """Sample every minute, forever (a store outage: try again next minute)."""
        while True:
            try:
                await self.sample_cities(bases, multipliers, time.time())
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("dashboard sampling failed", exc_info=True)
            await asyncio.sleep(SAMPLE_INTERVAL_S - time.time() % SAMPLE_INTERVAL_S + 0.5)
