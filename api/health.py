"""``GET /api/v1/health``: each dependency, checked, not assumed.

* the store answers a ping (else the whole answer is 503: nothing live works without it);
* with live feeds on, each city's single writer holds its lock (``writer:<city>``): a city
  nobody writes for gets no feed updates and no fused reports, although plans still work
  (with live feeds off there is no writer to check: ``off``);
* each city's live feeds are fresh (as ``GET /api/v1/feeds`` judges them).

It also shows this process's live side (``live``: role, supervised loops and the errors
they survived, trip hub, writer term, trip partitions, trip engine) and names any loop that
is not running (``loops``). Only the store makes the service unavailable (503); a missing
writer, a stale feed or a loop down makes it ``degraded`` (200), which a load balancer
should not act on but an operator should.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Literal

from pydantic import BaseModel, Field

from api.state import AppState
from correspondance.store import StoreUnavailableError
from realtime.health import read_health
from realtime.runtime import writer_lock

PING_TIMEOUT_S = 2.0
BAD_FEED_STATUSES = frozenset({"degraded", "stale"})


class StoreCheck(BaseModel):
    """The shared store."""

    status: Literal["ok", "down"]
    backend: str = Field(description="memory | redis")
    latency_ms: float | None = Field(description="Round trip of one ping; null if down.")
    error: str | None = None


class WriterCheck(BaseModel):
    """Whether some process holds a city's single-writer lock."""

    status: Literal["ok", "missing", "unknown", "off"] = Field(
        description="ok: held; missing: nobody writes this city's live state; "
        "unknown: the store is down; off: live feeds are off, there is no writer."
    )
    lock: str | None


class FeedsCheck(BaseModel):
    """A city's live feeds, as ``GET /api/v1/feeds`` shows them."""

    status: Literal["ok", "degraded", "unknown"]
    counts: dict[str, int] = Field(description="Feeds per status.")
    problems: list[str] = Field(description="'<feed_id>: <status> (<reason>)' per bad feed.")


class HealthOut(BaseModel):
    """What this process serves and the state of each dependency."""

    status: Literal["ok", "degraded", "down"] = Field(
        description="down (HTTP 503): the store is unreachable; degraded: a writer is "
        "missing or a feed is stale or degraded; ok otherwise."
    )
    cities: list[str]
    backend: str
    store: StoreCheck
    writers: dict[str, WriterCheck]
    feeds: dict[str, FeedsCheck]
    loops: list[str] = Field(
        default_factory=list,
        description="Long-running loops of this process that are not running now (degraded).",
    )
    live: dict[str, Any] | None = Field(
        default=None,
        description="This process's live side (realtime/runtime.py): role, supervised loops "
        "with errors survived, trip hub, and per city the writer term, trip partitions and "
        "the trip engine.",
    )


async def check_health(state: AppState) -> HealthOut:
    """Check every dependency (each read bounded by :data:`PING_TIMEOUT_S`).

    Parameters
    ----------
    state : AppState
        The process's state.

    Returns
    -------
    HealthOut
        The checks; ``status == "down"`` means answer 503.
    """
    store = state.store
    cities = sorted(state.bases)
    started = time.perf_counter()
    try:
        await asyncio.wait_for(store.ping(), PING_TIMEOUT_S)
        store_check = StoreCheck(
            status="ok",
            backend=store.backend,
            latency_ms=round((time.perf_counter() - started) * 1000, 2),
        )
    except (StoreUnavailableError, TimeoutError) as exc:
        store_check = StoreCheck(
            status="down", backend=store.backend, latency_ms=None, error=str(exc) or "timeout"
        )
    writers: dict[str, WriterCheck] = {}
    feeds: dict[str, FeedsCheck] = {}
    for city in cities:
        lock = writer_lock(city) if state.settings.live_feeds else None
        if store_check.status == "down":
            writers[city] = WriterCheck(status="unknown", lock=lock)
            feeds[city] = FeedsCheck(status="unknown", counts={}, problems=[])
            continue
        try:
            owner = (
                None
                if lock is None
                else await asyncio.wait_for(store.find_lock_owner(lock), PING_TIMEOUT_S)
            )
            records = await asyncio.wait_for(read_health(store, city), PING_TIMEOUT_S)
        except (StoreUnavailableError, TimeoutError) as exc:
            store_check = StoreCheck(
                status="down", backend=store.backend, latency_ms=None, error=str(exc) or "timeout"
            )
            writers[city] = WriterCheck(status="unknown", lock=lock)
            feeds[city] = FeedsCheck(status="unknown", counts={}, problems=[])
            continue
        writers[city] = WriterCheck(
            status="off" if lock is None else "ok" if owner else "missing", lock=lock
        )
        counts: dict[str, int] = {}
        problems = []
        for record in records:
            status = str(record.get("status"))
            counts[status] = counts.get(status, 0) + 1
            if status in BAD_FEED_STATUSES:
                problems.append(f"{record.get('feed_id')}: {status} ({record.get('reason')})")
        feeds[city] = FeedsCheck(
            status="degraded" if problems else "ok", counts=counts, problems=problems
        )
    runtime = state.runtime
    failing = runtime.failing() if runtime is not None else []
    if store_check.status == "down":
        overall: Literal["ok", "degraded", "down"] = "down"
    elif (
        failing
        or any(w.status == "missing" for w in writers.values())
        or any(f.status != "ok" for f in feeds.values())
    ):
        overall = "degraded"
    else:
        overall = "ok"
    return HealthOut(
        status=overall,
        cities=cities,
        backend="redis" if state.settings.redis_url else "memory",
        store=store_check,
        writers=writers,
        feeds=feeds,
        loops=failing,
        live=runtime.health() if runtime is not None else None,
    )
