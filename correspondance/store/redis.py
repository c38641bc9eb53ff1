"""Redis backend: state shared by every process of a deployment (``redis.asyncio``).

Every multi-step operation that must be atomic (counter with TTL, locks, publish) is one Lua
script, so concurrent processes never see half of it.

The event stream is a Redis Stream whose entry ids are ``<seq>-0``: the seq is the id, so
"events after seq N" is ``XREAD``/``XRANGE`` from id ``N`` with no lookup table, and seq order
is stream order by construction. Subscribers use plain ``XREAD BLOCK`` with their own cursor
rather than consumer groups: a group shares work between its consumers, whereas every API
worker must see every event; a restarted consumer resumes by passing the last seq it
processed. The stream is capped with ``MAXLEN ~`` (cheap, trims whole nodes).

**Redis Cluster** (``redis+cluster://host:port``, any one node; redis-py's ``RedisCluster``
finds the others). Every multi-key operation — a script, a fenced publish — must stay in one
hash slot, so in cluster mode a key that names no hash tag of its own gets the namespace's
(``corr:{corr:}events``): the event stream, its counter, the writer locks and the state a
fenced publish writes, the report intake's keys all share one slot. Keys whose owner gives
them a tag keep it: a live trip's keys carry their trip partition
(``trip:{t5}:<id>``, ``lock:trip:{t5}:<id>``), so the bulk of the state — sessions and
outboxes — spreads over the cluster. On one Redis, keys are stored under their plain names.

Driver exceptions never leave this module: connection failures and timeouts become
:class:`~correspondance.store.errors.StoreUnavailableError`, ``WRONGTYPE`` replies
:class:`~correspondance.store.errors.StoreTypeError`, anything else
:class:`~correspondance.store.errors.StoreError`.
"""

from __future__ import annotations

import asyncio
import builtins
import json
import math
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any, ClassVar, cast
from urllib.parse import urlsplit, urlunsplit

from redis import exceptions as redis_errors
from redis.asyncio import BlockingConnectionPool, Redis, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from correspondance.store import redis_lua
from correspondance.store.base import StateStore, check_ttl
from correspondance.store.errors import (
    FencedOutError,
    StoreError,
    StoreTypeError,
    StoreUnavailableError,
)
from correspondance.store.events import (
    EVENTS_KEY,
    EVENTS_SEQ_KEY,
    Event,
    Fence,
    Subscription,
    check_publish,
    check_seq,
    utc_now,
)
from correspondance.store.redis_ride import (
    ConnectionLostError,
    RefusedError,
    refused,
    rides_through,
    timed_out,
)
from correspondance.store.redis_stream import (
    RedisSubscription,
    as_bytes,
    decode_text,
    optional_bytes,
    parse_entry,
)
from correspondance.store.scripts import ScriptArg, ScriptResult, StoreScript, encode_arg


class _GatedCluster(RedisCluster):
    """``RedisCluster`` with at most ``gate``'s value of commands under way at once, that
    (re)learns the cluster's layout alone: commands that start together on a client that
    has not (redis-py 8.1) made some of them fail or, retried, run twice (50 concurrent
    ``INCR`` on a new client counted up to 60)."""

    gate: asyncio.Semaphore  # set by the store
    layout: asyncio.Lock

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        if self._initialize:
            async with self.layout:
                await self.initialize()
        async with self.gate:
            return await super().execute_command(*args, **kwargs)


class RedisStateStore(StateStore):
    """The :class:`~correspondance.store.base.StateStore` shared through a Redis server.

    Parameters
    ----------
    url : str
        ``redis://[:password@]host:port/db`` (or ``rediss://``, ``unix://``); a Redis Cluster
        is ``redis+cluster://[:password@]host:port`` (or ``rediss+cluster://``), any node.
    prefix : str, default "corr:"
        Namespace put before every key, so deployments and tests can share a server.
    history_size : int, default 100_000
        Approximate number of events kept on the stream (``XADD MAXLEN ~``).
    socket_timeout_s : float, default 5.0
        Maximum wait for any reply; a dead server surfaces as an error, never a hang.
    connect_timeout_s : float, default 2.0
        Maximum wait to open a connection.
    retries : int, default 0
        Retries the driver makes by itself after a connection error or a time-out. Keep
        0: the driver repeats any command, even one that may have run (a second ``INCR``,
        a second event); the store repeats what is safe to repeat (see ``ride_through_s``).
    block_s : float, default 1.0
        How long one ``XREAD BLOCK`` waits before a subscription checks again whether it was
        closed; must stay below ``socket_timeout_s``.
    max_connections : int, default 64
        Connections this store may open; callers beyond that wait for one to be free.
    ride_through_s : float, default 2.0
        How long a call keeps trying while the server refuses connections or loads its data
        (a restart), before :class:`StoreUnavailableError`: a restart shorter than this costs
        latency, not errors. A connection broken mid-call (the server killed, a reset) is
        ridden through too by the calls that are safe to repeat (reads, ``set``, ``hset``,
        ``sadd``, ``expire``, lock acquire/refresh, idempotent scripts such as the report
        intake); ``incr``, ``publish``, deletions and other scripts raise at once, since
        they may have run. Time-outs are never retried.
    """

    backend: ClassVar[str] = "redis"

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "corr:",
        history_size: int = 100_000,
        socket_timeout_s: float = 5.0,
        connect_timeout_s: float = 2.0,
        retries: int = 0,
        block_s: float = 1.0,
        max_connections: int = 64,
        ride_through_s: float = 2.0,
    ) -> None:
        if history_size < 1:
            raise ValueError("history_size must be >= 1")
        if not 0 < block_s < socket_timeout_s:
            raise ValueError("block_s must be > 0 and below socket_timeout_s")
        self._prefix = prefix
        self.ride_through_s = ride_through_s
        self._history_size = history_size
        self._block_ms = max(1, round(block_s * 1000))
        self._safe_url = _redact(url)
        self._closed = False
        scheme, _, rest = url.partition("://")
        self.cluster = scheme in CLUSTER_SCHEMES
        # untagged keys of a cluster share the namespace's slot (see the module docstring)
        self._tag = "{" + (prefix.replace("{", "").replace("}", "") or "ns") + "}"
        options: dict[str, Any] = {
            "max_connections": max_connections,
            "protocol": 2,
            "decode_responses": False,
            "socket_timeout": socket_timeout_s,
            "socket_connect_timeout": connect_timeout_s,
            "retry": Retry(ExponentialBackoff(cap=0.2, base=0.05), retries),
        }
        self._client: Redis
        if self.cluster:
            cluster = cast(
                _GatedCluster,
                _GatedCluster.from_url(f"{CLUSTER_SCHEMES[scheme]}://{rest}", **options),
            )
            # RedisCluster fails a call beyond max_connections to a node; as the blocking
            # pool does on one Redis, calls beyond that many wait for a turn instead
            cluster.gate = asyncio.Semaphore(max_connections)
            cluster.layout = asyncio.Lock()
            self._client = cast(Redis, cluster)  # the same commands, routed by slot
        else:
            # A blocking pool caps connections per process: a burst of concurrent calls
            # waits for a free connection (up to socket_timeout_s) instead of failing or
            # opening thousands of sockets. Each open subscription holds one connection
            # while it blocks.
            pool = BlockingConnectionPool.from_url(url, timeout=socket_timeout_s, **options)
            self._client = Redis.from_pool(pool)
        self._incr = self._register(redis_lua.INCR)
        self._acquire = self._register(redis_lua.ACQUIRE_LOCK)
        self._refresh = self._register(redis_lua.REFRESH_LOCK)
        self._release = self._register(redis_lua.RELEASE_LOCK)
        self._publish = self._register(redis_lua.PUBLISH)
        self._scripts: dict[StoreScript, Any] = {}  # registered (EVALSHA, loaded on demand)
        self.retried: Counter[str] = Counter()  # calls made again, by cause (for tests)
        self._subscriptions: set[RedisSubscription] = set()

    @property
    def prefix(self) -> str:
        """Namespace prefix of every key this store writes."""
        return self._prefix

    # -- internals -------------------------------------------------------------------------

    def _register(self, lua: str) -> Any:
        """A callable ``(keys=, args=)`` running ``lua``: ``EVALSHA`` (loaded on first use)
        on one Redis; plain ``EVAL`` on a cluster, whose nodes each need the script (one
        added or restarted lacks it) and where a ``NOSCRIPT`` reply costs a load on every
        node (the scripts are small; Redis caches them by digest)."""
        if not self.cluster:
            return self._client.register_script(lua)
        client = self._client

        async def evaluate(keys: Sequence[str], args: Sequence[Any]) -> Any:
            return await client.eval(lua, len(keys), *keys, *args)

        return evaluate

    def _key(self, key: str) -> str:
        if self.cluster and not _has_tag(key):
            return self._prefix + self._tag + key
        return self._prefix + key

    def _unkey(self, stored: str) -> str:
        key = stored[len(self._prefix) :]
        return key.removeprefix(self._tag) if self.cluster else key

    @contextmanager
    def _translate(self) -> Iterator[None]:
        """Turn driver exceptions into store errors (see module docstring)."""
        if self._closed:
            raise StoreUnavailableError(f"the Redis store for {self._safe_url} is closed")
        try:
            yield
        except (redis_errors.ConnectionError, redis_errors.TimeoutError, OSError) as exc:
            # OSError: socket errors the driver did not wrap (e.g. during reconnect).
            text = f"Redis at {self._safe_url} is unavailable ({type(exc).__name__}: {exc})"
            if refused(exc):  # nothing reached Redis: the call may be made again
                raise RefusedError(text) from exc
            if timed_out(exc):  # it may have run, and the time is spent: never repeated
                raise StoreUnavailableError(text) from exc
            raise ConnectionLostError(text) from exc  # repeated if harmless
        except redis_errors.ResponseError as exc:
            text = str(exc)
            if text.startswith("WRONGTYPE") or "not an integer" in text:
                raise StoreTypeError(f"Redis refused the operation: {text}") from exc
            raise StoreError(f"Redis error: {text}") from exc
        except redis_errors.RedisError as exc:
            raise StoreError(f"Redis error ({type(exc).__name__}: {exc})") from exc

    # -- key/value -------------------------------------------------------------------------

    @rides_through
    async def get(self, key: str) -> bytes | None:
        with self._translate():
            value = await self._client.get(self._key(key))
        return optional_bytes(value)

    @rides_through
    async def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        if not isinstance(value, bytes):
            raise TypeError(f"value must be bytes, not {type(value).__name__}")
        px = None if ttl_s is None else _ms(ttl_s)
        with self._translate():
            await self._client.set(self._key(key), value, px=px)

    @rides_through
    async def delete(self, *keys: str) -> int:
        if not keys:
            return 0
        with self._translate():
            return int(await self._client.delete(*map(self._key, keys)))

    @rides_through
    async def exists(self, *keys: str) -> int:
        if not keys:
            return 0
        with self._translate():
            return int(await self._client.exists(*map(self._key, keys)))

    @rides_through
    async def expire(self, key: str, ttl_s: float) -> bool:
        ms = _ms(ttl_s)
        with self._translate():
            return bool(await self._client.pexpire(self._key(key), ms))

    @rides_through
    async def ttl(self, key: str) -> float | None:
        with self._translate():
            ms = int(await self._client.pttl(self._key(key)))
        # -2: no such key, -1: no expiry.
        return None if ms < 0 else ms / 1000

    # -- hashes ----------------------------------------------------------------------------

    @rides_through
    async def hset(self, key: str, mapping: dict[str, bytes]) -> int:
        if not mapping:
            raise ValueError("hset needs at least one field")
        with self._translate():
            return int(await self._client.hset(self._key(key), mapping=dict[Any, Any](mapping)))

    @rides_through
    async def hget(self, key: str, field: str) -> bytes | None:
        with self._translate():
            value = await self._client.hget(self._key(key), field)
        return optional_bytes(value)

    @rides_through
    async def hgetall(self, key: str) -> dict[str, bytes]:
        with self._translate():
            raw = await self._client.hgetall(self._key(key))
        return {decode_text(name): as_bytes(value) for name, value in raw.items()}

    @rides_through
    async def hdel(self, key: str, *fields: str) -> int:
        if not fields:
            return 0
        with self._translate():
            return int(await self._client.hdel(self._key(key), *fields))

    # -- sets ------------------------------------------------------------------------------

    @rides_through
    async def sadd(self, key: str, *members: str) -> int:
        if not members:
            raise ValueError("sadd needs at least one member")
        with self._translate():
            return int(await self._client.sadd(self._key(key), *members))

    @rides_through
    async def srem(self, key: str, *members: str) -> int:
        if not members:
            return 0
        with self._translate():
            return int(await self._client.srem(self._key(key), *members))

    @rides_through
    async def smembers(self, key: str) -> builtins.set[str]:
        with self._translate():
            raw = await self._client.smembers(self._key(key))
        return {decode_text(member) for member in raw}

    # -- counters --------------------------------------------------------------------------

    @rides_through
    async def incr(self, key: str, amount: int = 1, ttl_s: float | None = None) -> int:
        ttl_arg = "" if ttl_s is None else str(_ms(ttl_s))
        with self._translate():
            return int(await self._incr(keys=[self._key(key)], args=[amount, ttl_arg]))

    # -- scripts ---------------------------------------------------------------------------

    @rides_through
    async def run_script(
        self, script: StoreScript, keys: Sequence[str], args: Sequence[ScriptArg] = ()
    ) -> ScriptResult:
        registered = self._scripts.get(script)
        if registered is None:
            registered = self._scripts[script] = self._register(script.lua)
        encoded = [encode_arg(a) for a in args]
        with self._translate():
            reply = await registered(keys=[self._key(k) for k in keys], args=encoded)
        if not isinstance(reply, list) or not all(
            isinstance(v, int | bytes) and not isinstance(v, bool) for v in reply
        ):
            raise StoreError(f"script {script.name!r} returned {reply!r}, not a flat list")
        return reply

    # -- scanning --------------------------------------------------------------------------

    @rides_through
    async def scan_keys(self, pattern: str = "*") -> list[str]:
        matches = [_escape_glob(self._prefix) + pattern]
        if self.cluster:  # untagged keys sit behind the namespace's tag
            matches.append(_escape_glob(self._prefix + self._tag) + pattern)
        found: set[str] = set()
        with self._translate():
            for match in matches:
                # SCAN may return a key twice across iterations; the set removes repeats.
                async for raw in self._client.scan_iter(match=match, count=1000):
                    found.add(self._unkey(decode_text(raw)))
        return sorted(found)

    # -- locks -----------------------------------------------------------------------------

    @rides_through
    async def acquire_lock(self, name: str, owner: str, ttl_s: float) -> bool:
        ms = _ms(ttl_s)
        with self._translate():
            return bool(await self._acquire(keys=[self._key(f"lock:{name}")], args=[owner, ms]))

    @rides_through
    async def refresh_lock(self, name: str, owner: str, ttl_s: float) -> bool:
        ms = _ms(ttl_s)
        with self._translate():
            return bool(await self._refresh(keys=[self._key(f"lock:{name}")], args=[owner, ms]))

    @rides_through
    async def release_lock(self, name: str, owner: str) -> bool:
        with self._translate():
            return bool(await self._release(keys=[self._key(f"lock:{name}")], args=[owner]))

    # -- events ----------------------------------------------------------------------------

    @rides_through
    async def publish(
        self,
        type: str,
        city: str,
        payload: dict[str, Any],
        *,
        fence: Fence | None = None,
        state: dict[str, bytes] | None = None,
    ) -> Event:
        # Validate before writing, so a bad type or city never reaches the stream.
        encoded = check_publish(type, city, payload, state)
        at = utc_now()
        state = state or {}
        lock_key = self._key(f"lock:{fence.lock}") if fence is not None else self._key("nolock")
        with self._translate():
            seq = await self._publish(
                keys=[
                    self._key(EVENTS_KEY),
                    self._key(EVENTS_SEQ_KEY),
                    lock_key,
                    *(self._key(k) for k in state),
                ],
                args=[
                    self._history_size,
                    type,
                    city,
                    at.isoformat(),
                    encoded,
                    fence.owner if fence is not None else "",
                    *state.values(),
                ],
            )
        if int(seq) < 0:
            assert fence is not None
            raise FencedOutError(f"lock {fence.lock!r} is no longer held by this writer")
        return Event(seq=int(seq), type=type, city=city, at=at, payload=json.loads(encoded))

    @rides_through
    async def read_events(self, after_seq: int = 0, limit: int = 1000) -> list[Event]:
        check_seq(after_seq)
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        with self._translate():
            entries = await self._client.xrange(
                self._key(EVENTS_KEY), min=f"{after_seq + 1}-0", max="+", count=limit
            )
        return [parse_entry(entry_id, fields) for entry_id, fields in entries or []]

    @rides_through
    async def last_event_seq(self) -> int:
        with self._translate():
            raw = await self._client.get(self._key(EVENTS_SEQ_KEY))
        return 0 if raw is None else int(raw)

    def subscribe(self, after_seq: int | None = None) -> Subscription:
        return RedisSubscription(self, after_seq)

    async def read_events_blocking(self, after_seq: int, limit: int) -> list[Event]:
        """Wait up to ``block_s`` for events after ``after_seq`` (used by subscriptions).

        Parameters
        ----------
        after_seq : int
            Seq to start after.
        limit : int
            Maximum number of events.

        Returns
        -------
        list of Event
            Possibly empty if nothing was published meanwhile.
        """
        with self._translate():
            reply = await self._client.xread(
                {self._key(EVENTS_KEY): f"{after_seq}-0"}, count=limit, block=self._block_ms
            )
        events: list[Event] = []
        # RESP2 replies [[stream, entries]]; tolerate RESP3's {stream: entries} as well.
        streams: Any = reply.items() if isinstance(reply, dict) else (reply or [])
        for _stream, entries in streams:
            events.extend(parse_entry(entry_id, fields) for entry_id, fields in entries)
        return events

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` was called."""
        return self._closed

    def track(self, subscription: RedisSubscription, active: bool) -> None:
        """Register or forget an open subscription, so :meth:`aclose` can end it.

        Parameters
        ----------
        subscription : RedisSubscription
            The subscription.
        active : bool
            ``True`` to register, ``False`` to forget.
        """
        if active:
            self._subscriptions.add(subscription)
        else:
            self._subscriptions.discard(subscription)

    # -- lifecycle -------------------------------------------------------------------------

    async def ping(self) -> None:
        with self._translate():
            await self._client.ping()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        # Cancel blocked XREADs first and let them unwind: the driver then drops their
        # connections itself, instead of a retry reconnecting after the pool was closed.
        reads = [sub.stop_reading() for sub in self._subscriptions]
        self._subscriptions.clear()
        await asyncio.gather(*(read for read in reads if read is not None), return_exceptions=True)
        # Closing connections to a dead server can fail; there is nothing left to do then.
        with suppress(redis_errors.RedisError, OSError):
            await self._client.aclose()


def _ms(ttl_s: float) -> int:
    check_ttl(ttl_s)
    # Round up so a short TTL never becomes 0 ms, which Redis rejects.
    return max(1, math.ceil(ttl_s * 1000))


_GLOB_SPECIAL = re.compile(r"([*?\[\]\\])")

CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
"""URL schemes of a Redis Cluster, and the scheme redis-py's ``RedisCluster`` reads."""


def _has_tag(key: str) -> bool:
    """Whether Redis Cluster hashes ``key`` by a tag of its own (``{...}``, not empty)."""
    start = key.find("{")
    if start < 0:
        return False
    end = key.find("}", start + 1)
    return end > start + 1


def _escape_glob(text: str) -> str:
    return _GLOB_SPECIAL.sub(r"\\\1", text)


def _redact(url: str) -> str:
    """Drop credentials from a URL before it goes into an error message or a log."""
    parts = urlsplit(url)
    if parts.password is None and parts.username is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, f"***@{host}", parts.path, parts.query, parts.fragment))
