"""Polls one GTFS-Realtime feed (URL or file) into the writer's live transit state.

Faults — unreachable feed, truncated or garbage protobuf, a header timestamp in the future —
leave the last good state in use and mark the feed degraded; polling goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from correspondance.cities import RealtimeSource
from correspondance.errors import CorrespondanceError
from feeds.gtfsrt import (
    ExactTripMatcher,
    NycSuffixTripMatcher,
    TripMatcher,
    parse_alerts,
    parse_feed,
    parse_trip_updates,
    parse_vehicle_positions,
)
from realtime.fetch import Fetcher
from realtime.health import FeedHealth, HealthBook
from realtime.transit import transit_state
from realtime.writer import LiveWriter
from routing.timetable import BaseTimetable

log = logging.getLogger("correspondance.realtime")
FUTURE_TOLERANCE_S = 300.0


class GtfsRtRejectedError(CorrespondanceError, ValueError):
    """A GTFS-RT message that must not replace the last good state."""

    code = "gtfsrt_rejected"


def make_matcher(kind: str, timetable: BaseTimetable) -> TripMatcher:
    """The trip matcher a realtime source asks for."""
    ids = [str(t) for t in timetable.trip_ids]
    if kind == "nyc-suffix":
        return NycSuffixTripMatcher(ids)
    return ExactTripMatcher(ids)


@dataclass
class GtfsRtPoller:
    """One GTFS-RT feed into the writer, with health."""

    source: RealtimeSource
    fetcher: Fetcher
    writer: LiveWriter
    health: HealthBook
    timetable: BaseTimetable
    location: str  # URL, or an absolute file path
    clock: Callable[[], float] = time.time

    def __post_init__(self) -> None:
        self.matcher = make_matcher(self.source.matcher, self.timetable)
        self.health.register(
            FeedHealth(
                feed_id=self.source.id,
                kind="gtfs-rt",
                source=self.location,
                simulated=self.source.simulated,
            )
        )

    async def _bytes(self) -> bytes | None:
        if self.source.path is not None:
            return await asyncio.to_thread(Path(self.location).read_bytes)
        fetched = await self.fetcher.get(self.location)
        return fetched.body

    async def poll_once(self) -> bool:
        """One poll. True if new data was applied. Never raises."""
        expected = (CorrespondanceError, OSError, ValueError)
        return await self.health.guarded(
            self.source.id, self._poll, expected, self.clock, "GTFS-RT"
        )

    async def _poll(self) -> bool:
        data = await self._bytes()
        if data is None:
            await self.health.not_modified(self.source.id)
            return False
        message = parse_feed(data)
        now = self.clock()
        stamp = float(message.header.timestamp or 0)
        if stamp > now + FUTURE_TOLERANCE_S:
            raise GtfsRtRejectedError(f"header timestamp {int(stamp)} is in the future")
        updates = parse_trip_updates(message, self.matcher)
        alerts = parse_alerts(message, self.matcher)
        today = dt.datetime.fromtimestamp(stamp or now, _tz(self.timetable.timezone)).date()
        positions = parse_vehicle_positions(message, self.matcher)
        state = transit_state(self.timetable, updates, alerts, today, positions)
        state.simulated = self.source.simulated
        await self.writer.apply_transit(self.source.id, state)
        await self.health.success(
            self.source.id,
            records=len(updates.updates) + len(alerts),
            rejected=updates.unmatched + state.implausible,
            last_updated=stamp or None,
            ttl_s=self.source.poll_s,
            now=now,
        )
        return True

    async def run(self, stop: asyncio.Event) -> None:
        """Poll every ``poll_s`` until ``stop`` is set, backing off while failing."""
        while not stop.is_set():
            await self.poll_once()
            failures = self.health.feeds[self.source.id].consecutive_failures
            wait = self.source.poll_s * (2 ** min(failures, 4) if failures else 1)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=min(wait, 600.0))


def _tz(name: str) -> dt.tzinfo:
    from zoneinfo import ZoneInfo

    return ZoneInfo(name)
