"""Feed health: what operators see at ``GET /api/v1/feeds``.

The single writer records every poll's outcome here; the record is also written to the
shared store (one hash per city) so that API workers in other processes serve the same
view. Nothing here holds a contributor's or traveller's data.

What is served is judged when it is read, not only when it was written, so that a feed
nobody polls any more cannot stay green: a feed whose last recorded poll is older than
max(3 × its ttl, 60 s) is ``stale``, whoever stopped polling it. A replayed recording is
``replay`` (with the date of the recorded data), never ``ok``: its data is old by design.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from correspondance.store import StateStore

log = logging.getLogger("correspondance.realtime")

Status = Literal["pending", "ok", "degraded", "stale", "replay"]
SILENCE_TTLS = 3.0
"""A feed is stale once no poll was recorded for this many ttls..."""
MIN_SILENCE_S = 60.0
"""...and at least this many seconds."""


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
    recorded_at: float | None = None  # wall clock of the last recorded poll (any outcome)

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

    async def guarded(
        self,
        feed_id: str,
        poll: Callable[[], Awaitable[bool]],
        expected: tuple[type[Exception], ...],
        now: Callable[[], float],
        label: str,
    ) -> bool:
        """Run one ``poll`` of ``feed_id``; never raises: an ``expected`` error is recorded
        as a :meth:`failure`, any other is logged too (a poller must never take the process
        down). Returns what ``poll`` returns, ``False`` on failure."""
        try:
            return await poll()
        except expected as exc:
            await self.failure(feed_id, str(exc), now=now())
        except Exception as exc:
            log.exception("%s poll of %s failed unexpectedly", label, feed_id)
            await self.failure(feed_id, f"unexpected {type(exc).__name__}: {exc}", now=now())
        return False

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
        h.recorded_at = time.time()  # wall clock, even when the feed runs on a replay clock
        await self._store.hset(self.key, {h.feed_id: json.dumps(h.as_json(time.time())).encode()})


def health_key(city: str) -> str:
    """Store key of a city's feed-health hash."""
    return f"feeds:health:{city}"


def silence_limit_s(ttl_s: float | None) -> float:
    """How long a feed may go without a recorded poll before it is stale."""
    return max(SILENCE_TTLS * float(ttl_s or 0.0), MIN_SILENCE_S)


def assess(record: dict[str, Any], now: float) -> dict[str, Any]:
    """A stored health record as it stands at ``now``.

    Adds ``staleness_s`` (age of the feed's own ``last_updated``), ``silent_s`` (seconds
    since the last recorded poll) and, for replays, ``data_date``; turns an ``ok`` or
    ``pending`` feed with no poll recorded for :func:`silence_limit_s` into ``stale``, and
    a replay that would show ``ok`` (or stale for its old data) into ``replay``.

    Parameters
    ----------
    record : dict
        One feed's record as :class:`HealthBook` stored it.
    now : float
        Unix time.

    Returns
    -------
    dict
        A new record.
    """
    out = dict(record)
    last_updated = out.get("feed_last_updated")
    if last_updated is not None:
        out["staleness_s"] = max(0.0, now - float(last_updated))
    recorded_at = out.get("recorded_at")
    silent = None if recorded_at is None else max(0.0, now - float(recorded_at))
    out["silent_s"] = silent
    limit = silence_limit_s(out.get("ttl_s"))
    if out.get("replay"):
        out["data_date"] = (
            None
            if last_updated is None
            else datetime.fromtimestamp(float(last_updated), UTC).date().isoformat()
        )
    if (
        silent is not None
        and silent > limit
        and out.get("status") in ("ok", "pending", "stale", "replay")
    ):
        out["status"] = "stale"
        out["reason"] = (
            f"no poll recorded for {silent:.0f} s (expected at least every {limit:.0f} s): "
            "the feed is not being polled"
        )
    elif out.get("replay") and out.get("status") in ("ok", "stale"):
        out["status"] = "replay"
        out["reason"] = (
            f"replay of data recorded on {out['data_date']}, not live data"
            if out.get("data_date")
            else "replay of recorded data, not live data"
        )
    return out


async def read_health(store: StateStore, city: str) -> list[dict[str, Any]]:
    """Every feed's health for a city, as the writer last recorded it and judged now
    (:func:`assess`)."""
    raw = await store.hgetall(health_key(city))
    now = time.time()
    out = [assess(json.loads(value), now) for value in raw.values()]
    return sorted(out, key=lambda r: str(r["feed_id"]))
