"""Live trip sessions in the shared store: the trip, its outbox of messages, its expiry.

A session is one JSON document ``trip:<id>`` (plan, clock, open suggestion, counters), an
outbox hash ``trip:<id>:out`` (seq → message, the last :data:`OUTBOX_KEEP`), the latest
reported position ``trip:<id>:pos`` and a member of the city's set of active trips. Every
change happens under the trip's lock, so any process (an API worker answering the
traveller, the writer process replanning) may change a trip without losing another's
update. A change that produces messages stores them in the outbox and publishes one
``trip.messages`` event naming the trip and its new last seq; every API worker learns of
it and sends the messages to the sockets it holds, reading them from the outbox, the same
path a reconnecting client's replay takes.

Nothing here outlives the trip: every key expires :data:`ENDED_TTL_S` after the trip ends,
or :data:`MAX_TRIP_S` after it started at the latest.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import json
import os
import secrets
import socket
import time
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from correspondance.errors import CorrespondanceError
from correspondance.store import ScriptResult, StateStore, StoreScript
from correspondance.store.errors import StoreUnavailableError

OUTBOX_KEEP = 500
ENDED_TTL_S = 600.0
MAX_TRIP_S = 24 * 3600.0
AFTER_ARRIVAL_S = 2 * 3600.0
LOCK_TTL_S = 10.0

TRIP_STARTED = "trip.started"
TRIP_UPDATED = "trip.updated"
TRIP_ENDED = "trip.ended"
TRIP_MESSAGES = "trip.messages"
TRIP_EVENTS = frozenset({TRIP_STARTED, TRIP_UPDATED, TRIP_ENDED, TRIP_MESSAGES})


_FETCH_LUA = """
local out = {}
for i, key in ipairs(KEYS) do
  local lo = tonumber(ARGV[2 * i - 1])
  local hi = tonumber(ARGV[2 * i])
  for seq = lo + 1, hi do
    local value = redis.call('HGET', key, tostring(seq))
    out[#out + 1] = value or ''
  end
end
return out
"""


async def _fetch_local(store: StateStore, keys: list[str], args: list[bytes]) -> ScriptResult:
    out: ScriptResult = []
    for i, key in enumerate(keys):
        lo, hi = int(args[2 * i]), int(args[2 * i + 1])
        for seq in range(lo + 1, hi + 1):
            out.append(await store.hget(key, str(seq)) or b"")
    return out


FETCH_MESSAGES = StoreScript("fetch_trip_messages", _FETCH_LUA, _fetch_local)
"""Outbox messages of many trips in one round trip: for each key, seqs lo+1..hi."""


class TripNotFoundError(CorrespondanceError, LookupError):
    """No live trip with that id (it never existed, expired or was deleted)."""

    code = "trip_not_found"


class TripTokenError(CorrespondanceError, PermissionError):
    """The trip token is missing or wrong."""

    code = "unauthorized"


def trip_key(trip_id: str) -> str:
    """Store key of a trip's session document."""
    return f"trip:{trip_id}"


def outbox_key(trip_id: str) -> str:
    """Store key of a trip's outbox (seq → message JSON)."""
    return f"trip:{trip_id}:out"


def position_key(trip_id: str) -> str:
    """Store key of a trip's latest reported position."""
    return f"trip:{trip_id}:pos"


def active_key(city: str) -> str:
    """Store key of the set of a city's active trips."""
    return f"trips:{city}"


def stats_key(city: str, name: str) -> str:
    """Store key of one of a city's aggregate trip counters."""
    return f"tripstats:{city}:{name}"


def hash_token(token: str) -> str:
    """What is stored of a trip token: its SHA-256 (tokens are 256 random bits)."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class TripSession:
    """One traveller's live trip."""

    trip_id: str
    city: str
    timezone: str
    token_hash: str
    plan: dict[str, Any]  # the itinerary being followed, as the API shows it
    modes: list[str]
    started_wall: float  # unix time the trip was started
    clock_offset_s: float  # trip clock = wall clock + offset (feeds are dated)
    status: str = "active"
    last_seq: int = 0
    suggestion: dict[str, Any] | None = None  # the open switch_suggestion body
    closed_saving_s: float | None = None  # saving of the last declined/withdrawn one
    ended_reason: str | None = None
    suggestions_made: int = 0
    last_eta: str | None = None  # the arrival last announced in a live_update
    plan_version: int = 1
    history: list[dict[str, Any]] = field(default_factory=list)  # accepted switches
    # drive edges closed for this trip alone (the scripted demo's jam): the trip engine
    # applies them when evaluating this trip, never to the city; cleared when it ends
    private_closures: list[int] = field(default_factory=list)

    def now(self, wall: float | None = None) -> dt.datetime:
        """The trip clock, in the city's time zone."""
        t = (time.time() if wall is None else wall) + self.clock_offset_s
        return dt.datetime.fromtimestamp(t, ZoneInfo(self.timezone))

    def arrival(self) -> dt.datetime:
        """The current plan's arrival."""
        return dt.datetime.fromisoformat(self.plan["arrival"])

    def ttl_s(self) -> float:
        """How long the session's keys live from now."""
        if self.status != "active":
            return ENDED_TTL_S
        until_arrival = (self.arrival() - self.now()).total_seconds()
        left = MAX_TRIP_S - (time.time() - self.started_wall)
        return max(60.0, min(left, until_arrival + AFTER_ARRIVAL_S))

    def encode(self) -> bytes:
        """The stored form."""
        # every field is already JSON; asdict() would deep-copy the whole plan first
        return json.dumps(vars(self), separators=(",", ":")).encode()

    @classmethod
    def decode(cls, raw: bytes) -> TripSession:
        """Read the stored form."""
        return cls(**json.loads(raw))


class TripBook:
    """Sessions, outboxes and counters of live trips in a :class:`StateStore`."""

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"

    async def create(
        self,
        city: str,
        timezone: str,
        plan: dict[str, Any],
        modes: list[str],
        departure: dt.datetime,
    ) -> tuple[TripSession, str]:
        """A new active trip whose clock starts at ``departure``; returns it and its token."""
        token = secrets.token_urlsafe(32)
        now = time.time()
        session = TripSession(
            trip_id=secrets.token_urlsafe(16),
            city=city,
            timezone=timezone,
            token_hash=hash_token(token),
            plan=plan,
            modes=sorted(modes),
            started_wall=now,
            clock_offset_s=departure.timestamp() - now,
        )
        await self.store.set(trip_key(session.trip_id), session.encode(), ttl_s=session.ttl_s())
        await self.store.sadd(active_key(city), session.trip_id)
        await self.store.incr(stats_key(city, "started"))
        await self.store.publish(TRIP_STARTED, city, {"trip_id": session.trip_id})
        return session, token

    async def get(self, trip_id: str) -> TripSession:
        """The session of ``trip_id``.

        Raises
        ------
        TripNotFoundError
        """
        raw = await self.store.get(trip_key(trip_id))
        if raw is None:
            raise TripNotFoundError(f"no live trip {trip_id!r}: it ended, expired or never was")
        return TripSession.decode(raw)

    async def authorize(self, trip_id: str, token: str | None) -> TripSession:
        """The session, if ``token`` is its token.

        Raises
        ------
        TripNotFoundError, TripTokenError
        """
        session = await self.get(trip_id)
        if not token or not hmac.compare_digest(hash_token(token), session.token_hash):
            raise TripTokenError("this trip needs its token (given when the trip was started)")
        return session

    async def _lock(self, trip_id: str) -> None:
        deadline = time.monotonic() + LOCK_TTL_S
        while not await self.store.acquire_lock(trip_key(trip_id), self.owner, LOCK_TTL_S):
            if time.monotonic() > deadline:
                raise StoreUnavailableError(f"trip {trip_id} stayed locked for {LOCK_TTL_S} s")
            await asyncio.sleep(0.005)

    async def change(
        self, trip_id: str, mutate: Any, event: str | None = TRIP_UPDATED
    ) -> tuple[TripSession, list[dict[str, Any]]]:
        """Apply ``mutate(session) -> messages`` under the trip's lock and store the result.

        Messages get consecutive ``seq`` numbers and go to the outbox; one ``trip.messages``
        event announces them. ``event`` (if the plan or suggestion changed) tells the
        writer process to re-index the trip.
        """
        await self._lock(trip_id)
        try:
            session = await self.get(trip_id)
            messages: list[dict[str, Any]] = mutate(session) or []
            for msg in messages:
                session.last_seq += 1
                msg["seq"] = session.last_seq
            ttl = session.ttl_s()
            await self.store.set(trip_key(trip_id), session.encode(), ttl_s=ttl)
            if messages:
                await self.store.hset(
                    outbox_key(trip_id),
                    {
                        str(m["seq"]): json.dumps(m, separators=(",", ":")).encode()
                        for m in messages
                    },
                )
                first_kept = session.last_seq - OUTBOX_KEEP + 1
                old = [str(n) for n in range(max(first_kept - len(messages), 1), first_kept)]
                if old:
                    await self.store.hdel(outbox_key(trip_id), *old)
            for key in (outbox_key(trip_id), position_key(trip_id)):
                await self.store.expire(key, ttl)
        finally:
            await self.store.release_lock(trip_key(trip_id), self.owner)
        if session.status != "active":
            await self.store.srem(active_key(session.city), trip_id)
        if event is not None:
            await self.store.publish(event, session.city, {"trip_id": trip_id})
        if messages:
            await self.store.publish(
                TRIP_MESSAGES, session.city, {"trips": {trip_id: session.last_seq}}
            )
        return session, messages

    async def messages_after(self, trip_id: str, after_seq: int) -> list[dict[str, Any]]:
        """The outbox messages with a seq above ``after_seq``, in order."""
        stored = await self.store.hgetall(outbox_key(trip_id))
        out = [json.loads(v) for k, v in stored.items() if int(k) > after_seq]
        return sorted(out, key=lambda m: int(m["seq"]))

    async def fetch_many(self, wanted: dict[str, tuple[int, int]]) -> dict[str, list[bytes]]:
        """For each trip, its stored messages with seq in (after, upto], as stored JSON
        (missing ones, trimmed or expired, are left out). One store round trip."""
        if not wanted:
            return {}
        trips = list(wanted)
        args: list[int] = []
        for trip_id in trips:
            args += [wanted[trip_id][0], wanted[trip_id][1]]
        flat = await self.store.run_script(FETCH_MESSAGES, [outbox_key(t) for t in trips], args)
        out: dict[str, list[bytes]] = {}
        k = 0
        for trip_id in trips:
            after, upto = wanted[trip_id]
            n = max(upto - after, 0)
            out[trip_id] = [v for v in flat[k : k + n] if isinstance(v, bytes) and v]
            k += n
        return out

    async def set_position(self, session: TripSession, lat: float, lon: float) -> None:
        """Keep the latest reported position (only it, and only while the trip lives)."""
        record = {"lat": lat, "lon": lon, "wall": time.time()}
        await self.store.set(
            position_key(session.trip_id),
            json.dumps(record).encode(),
            ttl_s=session.ttl_s(),
        )

    async def position(self, trip_id: str, max_age_s: float = 300.0) -> tuple[float, float] | None:
        """The latest reported position, if recent."""
        raw = await self.store.get(position_key(trip_id))
        if raw is None:
            return None
        record = json.loads(raw)
        if time.time() - float(record["wall"]) > max_age_s:
            return None
        return float(record["lat"]), float(record["lon"])

    async def delete(self, session: TripSession) -> None:
        """Forget a trip at once: its document, outbox and position."""
        await self.store.delete(
            trip_key(session.trip_id), outbox_key(session.trip_id), position_key(session.trip_id)
        )
        await self.store.srem(active_key(session.city), session.trip_id)
        await self.store.publish(
            TRIP_ENDED, session.city, {"trip_id": session.trip_id, "deleted": True}
        )

    async def active(self, city: str) -> set[str]:
        """Ids of the city's active trips (expired ones are pruned)."""
        ids = await self.store.smembers(active_key(city))
        gone = [t for t in ids if not await self.store.exists(trip_key(t))]
        if gone:
            await self.store.srem(active_key(city), *gone)
        return ids - set(gone)

    async def count(self, city: str, name: str, amount: int = 1) -> None:
        """Add to one of a city's aggregate counters (no trip id: aggregates only)."""
        await self.store.incr(stats_key(city, name), amount)

    async def counters(self, city: str, names: tuple[str, ...]) -> dict[str, int]:
        """The city's aggregate counters."""
        out = {}
        for name in names:
            raw = await self.store.get(stats_key(city, name))
            out[name] = int(raw) if raw is not None else 0
        return out
