"""Feed health: what operators see at ``GET /api/v1/feeds``.

The single writer records every poll's outcome here; the record is also written to the
shared store (one hash per city) so that API workers in other processes serve the same
view. Nothing here holds a contributor's or traveller's data.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from correspondance.store import StateStore

Status = Literal["pending", "ok", "degraded", "stale"]


@dataclass
class FeedHealth:
    """The health of one live feed."""

    feed_id: str
    kind: str  # "gbfs" | "gtfs-rt"
    source: str  # URL polled (loopback for replays and simulators)
    simulated: bool = False
    replay: bool = False
    status: Status = "pending"
    reason: str | None = None
    last_success_at: float | None = None
    last_error_at: float | None = None
    last_error: str | None = None
    consecutive_failures: int = 0
    polls: int = 0
    not_modified: int = 0
    records: int = 0
    records_rejected: int = 0
    feed_last_updated: float | None = None
    ttl_s: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def staleness_s(self, now: float) -> float | None:
        """Seconds since the feed's own ``last_updated`` (None before the first success)."""
        return None if self.feed_last_updated is None else max(0.0, now - self.feed_last_updated)

    def as_json(self, now: float) -> dict[str, Any]:
        """JSON view, with the derived staleness."""
        out = asdict(self)
        out["staleness_s"] = self.staleness_s(now)
        return out


class HealthBook:
    """Per-city feed health, kept in memory and mirrored to the store."""

    def __init__(self, store: StateStore, city: str) -> None:
        self._store = store
        self._city = city
        self.feeds: dict[str, FeedHealth] = {}

    @property
    def key(self) -> str:
        """Store key of this city's health hash."""
        return health_key(self._city)

    def register(self, health: FeedHealth) -> FeedHealth:
        """Start tracking a feed."""
        self.feeds[health.feed_id] = health
        return health

    async def success(
        self,
        feed_id: str,
        *,
        records: int,
        rejected: int,
        last_updated: float | None,
        ttl_s: float | None,
        stale: bool = False,
        now: float | None = None,
    ) -> None:
        """Record a poll whose data was applied."""
        h = self.feeds[feed_id]
        h.polls += 1
        h.last_success_at = now if now is not None else time.time()
        h.consecutive_failures = 0
        h.records, h.records_rejected = records, rejected
        h.feed_last_updated, h.ttl_s = last_updated, ttl_s
        h.status = "stale" if stale else "ok"
        h.reason = "last_updated is old for its ttl" if stale else None
        await self._save(h)

    async def not_modified(self, feed_id: str) -> None:
        """Record a poll answered 304 Not Modified (the current data still holds)."""
        h = self.feeds[feed_id]
        h.polls += 1
        h.not_modified += 1
        h.consecutive_failures = 0
        await self._save(h)

    async def failure(self, feed_id: str, reason: str, now: float | None = None) -> None:
        """Record a failed poll: the last good state stays in use, the feed is degraded."""
        h = self.feeds[feed_id]
        h.polls += 1
        h.last_error_at = now if now is not None else time.time()
        h.last_error = reason
        h.consecutive_failures += 1
        h.status = "degraded"
        h.reason = reason
        await self._save(h)

    async def _save(self, h: FeedHealth) -> None:
        await self._store.hset(self.key, {h.feed_id: json.dumps(h.as_json(time.time())).encode()})


def health_key(city: str) -> str:
    """Store key of a city's feed-health hash."""
    return f"feeds:health:{city}"


async def read_health(store: StateStore, city: str) -> list[dict[str, Any]]:
    """Every feed's health for a city, as the writer last recorded it."""
    raw = await store.hgetall(health_key(city))
    now = time.time()
    out = []
    for value in raw.values():
        record = json.loads(value)
        if record.get("feed_last_updated") is not None:
            record["staleness_s"] = max(0.0, now - record["feed_last_updated"])
        out.append(record)
    return sorted(out, key=lambda r: str(r["feed_id"]))
