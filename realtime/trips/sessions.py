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

A stored session that cannot be read back whole (not JSON, ``NaN``, missing fields, a trip
clock that would leave the calendar, as a session written straight into the store might)
is *quarantined* by :meth:`TripBook.get`: moved aside to ``quarantine:trip:<id>`` (expiring
after :data:`QUARANTINE_TTL_S`, never longer than a trip could have lived), logged, and
reported as gone (:class:`CorruptTripError`, a :class:`TripNotFoundError`), so no reader —
start-up, the engine's tick, the hub — ever fails on it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import hmac
import json
import logging
import math
import os
import secrets
import socket
import time
import zlib
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from correspondance import bounds
from correspondance.errors import CorrespondanceError, TripNotFoundError
from correspondance.store import ScriptResult, StateStore, StoreScript
from correspondance.store.errors import StoreUnavailableError

OUTBOX_KEEP = 500
ENDED_TTL_S = 600.0
MAX_TRIP_S = 24 * 3600.0
AFTER_ARRIVAL_S = 2 * 3600.0
LOCK_TTL_S = 10.0
QUARANTINE_TTL_S = MAX_TRIP_S
CLOCK_LIMITS = (dt.datetime(1971, 1, 1, tzinfo=dt.UTC), dt.datetime(9000, 1, 1, tzinfo=dt.UTC))
"""A stored trip clock outside these years is corrupt (requests are held to the feeds'
service window, far inside): it could overflow ``datetime`` while the trip lives."""

log = logging.getLogger("correspondance.trips")

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


FETCH_MESSAGES = StoreScript("fetch_trip_messages", _FETCH_LUA, _fetch_local, idempotent=True)
"""Outbox messages of many trips in one round trip: for each key, seqs lo+1..hi. A read:
idempotent, so the Redis store repeats it when Redis is killed mid-call (a socket's catch-up
rides through a restart instead of closing with 4503)."""


class CorruptTripError(TripNotFoundError):
    """A stored session could not be read back; it has been quarantined."""


class CorruptSessionError(ValueError):
    """A stored session document is not a readable, sane session."""


class TripTokenError(CorrespondanceError, PermissionError):
    """The trip token is missing or wrong."""

    code = "unauthorized"


KEY_PARTITIONS = 16
"""A trip's keys carry the hash tag of its partition among these (``{t<k>}``, the trip
engines' partition with the default ``trip_partitions``): on a Redis Cluster a trip's keys
share one slot, and trips spread over the cluster (:mod:`correspondance.store.redis`)."""


def trip_tag(trip_id: str) -> str:
    """The hash tag of a trip's keys: its partition, ``{t0}`` … ``{t15}``."""
    return f"{{t{zlib.crc32(trip_id.encode()) % KEY_PARTITIONS}}}"


def trip_key(trip_id: str) -> str:
    """Store key of a trip's session document (its lock is ``lock:`` + this)."""
    return f"trip:{trip_tag(trip_id)}:{trip_id}"


def outbox_key(trip_id: str) -> str:
    """Store key of a trip's outbox (seq → message JSON)."""
    return f"trip:{trip_tag(trip_id)}:{trip_id}:out"


def position_key(trip_id: str) -> str:
    """Store key of a trip's latest reported position."""
    return f"trip:{trip_tag(trip_id)}:{trip_id}:pos"


def quarantine_key(trip_id: str) -> str:
    """Store key a corrupt session is moved to (for an operator to look at; it expires)."""
    return f"quarantine:trip:{trip_tag(trip_id)}:{trip_id}"


def active_key(city: str) -> str:
    """Store key of the set of a city's active trips."""
    return f"trips:{city}"


def stats_key(city: str, name: str) -> str:
    """Store key of one of a city's aggregate trip counters."""
    return f"tripstats:{city}:{name}"


INCIDENT_STATS_TTL_S = 24 * 3600.0


def incident_trips_key(city: str, incident_id: str) -> str:
    """Store key of the set of active trips an operator's incident touches (as digests)."""
    return f"tripstats:{city}:incident:{incident_id}:trips"


def incident_count_key(city: str, incident_id: str, name: str) -> str:
    """Store key of one of an incident's counters (``suggested``, ``accepted``)."""
    return f"tripstats:{city}:incident:{incident_id}:{name}"


def trip_digest(trip_id: str) -> str:
    """What incident statistics keep of a trip: a digest of its (random) id, never the id."""
    return hashlib.sha256(f"incident-stats:{trip_id}".encode()).hexdigest()[:32]


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
    # the operators' incidents behind the last suggestion (per-incident statistics)
    suggestion_incidents: list[str] = field(default_factory=list)

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
        """Read the stored form.

        Raises
        ------
        CorruptSessionError
            If it is not JSON (``NaN`` included), misses or mistypes a field, or its clock
            or plan times fall outside :data:`CLOCK_LIMITS` while the trip could live.
        """
        try:
            data = bounds.loads(raw, "session", walk=False)  # a plan can be 50k points
            if not isinstance(data, dict):
                raise CorruptSessionError("not a JSON object")
            session = cls(**data)
            session.check()
        except CorruptSessionError:
            raise
        except (ValueError, TypeError, KeyError, OverflowError, AttributeError) as exc:
            raise CorruptSessionError(f"{type(exc).__name__}: {exc}") from None
        return session

    def check(self) -> None:
        """Check what every reader relies on (types, the clock, the plan's times).

        Raises
        ------
        CorruptSessionError
        """
        texts = (self.trip_id, self.city, self.timezone, self.token_hash, self.status)
        if not all(isinstance(v, str) for v in texts):
            raise CorruptSessionError("trip_id, city, timezone, token_hash, status: strings")
        ZoneInfo(self.timezone)  # unknown zones raise (a KeyError or ValueError)
        numbers = (self.started_wall, self.clock_offset_s)
        if not all(isinstance(v, int | float) and math.isfinite(v) for v in numbers):
            raise CorruptSessionError("started_wall, clock_offset_s: finite numbers")
        if not isinstance(self.last_seq, int) or not isinstance(self.plan_version, int):
            raise CorruptSessionError("last_seq, plan_version: integers")
        if not isinstance(self.plan, dict) or not isinstance(self.modes, list):
            raise CorruptSessionError("plan: an object, modes: a list")
        low, high = CLOCK_LIMITS
        wall = time.time()
        # the clock from the trip's start to long after it could have expired
        for t in (self.started_wall, wall, wall + 2 * MAX_TRIP_S):
            clock = t + self.clock_offset_s
            if not bounds.unix_seconds(low) <= clock <= bounds.unix_seconds(high):
                raise CorruptSessionError(f"trip clock {clock!r} is outside {low.year}-{high.year}")
        legs = self.plan.get("legs")
        if not isinstance(legs, list) or not legs:
            raise CorruptSessionError("plan.legs: a non-empty list")
        times = [self.plan["arrival"]] + [leg[k] for leg in legs for k in ("departure", "arrival")]
        for text in times:
            at = dt.datetime.fromisoformat(text)
            if at.tzinfo is None:
                raise CorruptSessionError(f"plan time {text!r} has no UTC offset")
            bounds.check_datetime(at, CLOCK_LIMITS, "plan")
        for leg in legs:
            if not isinstance(leg["geometry"]["coordinates"], list):
                raise CorruptSessionError("plan.legs.*.geometry.coordinates: a list")


class TripBook:
    """Sessions, outboxes and counters of live trips in a :class:`StateStore`."""

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.quarantined = 0  # sessions this book moved aside

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
        """The session of ``trip_id``; a corrupt one is quarantined (:meth:`quarantine`).

        Raises
        ------
        TripNotFoundError
            :class:`CorruptTripError` if it was corrupt.
        """
        raw = await self.store.get(trip_key(trip_id))
        if raw is None:
            raise TripNotFoundError(f"no live trip {trip_id!r}: it ended, expired or never was")
        try:
            session = TripSession.decode(raw)
            if session.trip_id != trip_id:  # caches and indexes key on the stored id
                raise CorruptSessionError(f"stored under {trip_id!r} but names {session.trip_id!r}")
            return session
        except CorruptSessionError as exc:
            await self.quarantine(trip_id, raw, str(exc))
            raise CorruptTripError(
                f"no live trip {trip_id!r}: its stored state was unreadable"
            ) from None

    async def quarantine(self, trip_id: str, raw: bytes | None, reason: str) -> None:
        """Move a trip's stored session aside (``quarantine:trip:<id>``, expiring after
        :data:`QUARANTINE_TTL_S`), forget its keys, log it, and tell every process (a
        ``trip.ended`` event with ``deleted``, if its city can be read: its sockets close
        with 4404).

        Raises
        ------
        StoreUnavailableError
            Only the store's own errors.
        """
        self.quarantined += 1
        if raw is None:  # the caller found it unusable without reading it: keep what is there
            raw = await self.store.get(trip_key(trip_id))
        if raw is not None:
            await self.store.set(quarantine_key(trip_id), raw, ttl_s=QUARANTINE_TTL_S)
        await self.store.delete(trip_key(trip_id), outbox_key(trip_id), position_key(trip_id))
        city = _city_of(raw)
        if city is not None:
            await self.store.srem(active_key(city), trip_id)
        log.error(
            "trip %s quarantined under %s (%s): %s",
            trip_id,
            quarantine_key(trip_id),
            "kept" if raw is not None else "nothing to keep",
            reason[:300],
        )
        if city:  # sockets following it close (4404) where they are held
            await self.store.publish(
                TRIP_ENDED, city, {"trip_id": trip_id, "deleted": True, "quarantined": True}
            )

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
        (missing ones, trimmed or expired, are left out). One store round trip (on a Redis
        Cluster, one per trip partition, side by side: a script stays in one slot)."""
        if not wanted:
            return {}
        if self.store.cluster and len({trip_tag(t) for t in wanted}) > 1:
            groups: dict[str, dict[str, tuple[int, int]]] = {}
            for trip_id, span in wanted.items():
                groups.setdefault(trip_tag(trip_id), {})[trip_id] = span
            parts = await asyncio.gather(*(self.fetch_many(group) for group in groups.values()))
            return {trip_id: found for part in parts for trip_id, found in part.items()}
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
        try:
            record = bounds.loads(raw, "position")
            wall, lat, lon = (float(record[k]) for k in ("wall", "lat", "lon"))
            bounds.check_number(lat, "lat", -90.0, 90.0)
            bounds.check_number(lon, "lon", -180.0, 180.0)
            bounds.check_number(wall, "wall")
        except (ValueError, TypeError, KeyError) as exc:  # never trust what is stored
            log.warning("trip %s: ignoring an unreadable stored position: %s", trip_id, exc)
            await self.store.delete(position_key(trip_id))
            return None
        if time.time() - wall > max_age_s:
            return None
        return lat, lon

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

    async def count_incidents(self, city: str, incidents: list[str], name: str) -> None:
        """Add one to ``name`` of each incident (aggregates only: no trip id is kept)."""
        for incident in incidents:
            await self.store.incr(
                incident_count_key(city, incident, name), ttl_s=INCIDENT_STATS_TTL_S
            )

    async def incident_stats(self, city: str, incident_id: str) -> dict[str, int]:
        """An incident's active trips touched, suggestions made and accepted."""
        touched = await self.store.smembers(incident_trips_key(city, incident_id))
        out = {"trips_touched": len(touched)}
        for name in ("suggested", "accepted"):
            raw = await self.store.get(incident_count_key(city, incident_id, name))
            out[name] = int(raw) if raw is not None else 0
        return out

    async def counters(self, city: str, names: tuple[str, ...]) -> dict[str, int]:
        """The city's aggregate counters."""
        out = {}
        for name in names:
            raw = await self.store.get(stats_key(city, name))
            out[name] = int(raw) if raw is not None else 0
        return out


def _city_of(raw: bytes | None) -> str | None:
    """The ``city`` of a stored session, if that much of it can be read."""
    try:
        data = json.loads(raw) if raw is not None else None
    except (ValueError, RecursionError):
        return None
    city = data.get("city") if isinstance(data, dict) else None
    return city if isinstance(city, str) else None
