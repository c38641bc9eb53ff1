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
import functools
import json
import math
import re
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime
from typing import Any, ClassVar, TypeVar, cast
from urllib.parse import urlsplit, urlunsplit

from redis import exceptions as redis_errors
from redis.asyncio import BlockingConnectionPool, Redis, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from correspondance.store.base import (
    EVENTS_KEY,
    EVENTS_SEQ_KEY,
    Event,
    Fence,
    ScriptArg,
    ScriptResult,
    StateStore,
    StoreScript,
    Subscription,
    check_seq,
    check_ttl,
    encode_arg,
    encode_payload,
    utc_now,
)
from correspondance.store.errors import (
    FencedOutError,
    StoreError,
    StoreTypeError,
    StoreUnavailableError,
)

# Adds to a counter and, if it has no expiry yet (just created), sets one: INCRBY alone
# followed by PEXPIRE from the client could leave an immortal counter if the client died
# in between, and a rate limit would then block forever.
_INCR = """
local value = redis.call('INCRBY', KEYS[1], ARGV[1])
if ARGV[2] ~= '' and redis.call('PTTL', KEYS[1]) == -1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return value
"""

_ACQUIRE_LOCK = """
local holder = redis.call('GET', KEYS[1])
if holder == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
if holder then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

# Compare-and-act: only the holder may extend or delete, so a writer whose lock expired and
# was taken by another cannot free or prolong the new holder's lock.
_REFRESH_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

_RELEASE_LOCK = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# Next seq = 1 + max(counter, newest id on the stream), so losing either key alone does not
# make XADD fail or seqs repeat. XADD runs before the counter moves: if it fails, the script
# stops with nothing written, and seqs stay gap-free (subscribers treat a gap as lost events).
# Fenced (ARGV[6] not empty): nothing is written unless the lock KEYS[3] holds ARGV[6]. State
# keys KEYS[4..] get ARGV[7..] in the same step, before the event.
_PUBLISH = """
if ARGV[6] ~= '' and redis.call('GET', KEYS[3]) ~= ARGV[6] then
  return -1
end
for i = 4, #KEYS do
  redis.call('SET', KEYS[i], ARGV[i + 3])
end
local last = tonumber(redis.call('GET', KEYS[2]) or '0')
local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if newest[1] then
  local on_stream = tonumber(string.match(newest[1][1], '^(%d+)-'))
  if on_stream > last then last = on_stream end
end
local seq = last + 1
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], string.format('%d-0', seq),
  'type', ARGV[2], 'city', ARGV[3], 'at', ARGV[4], 'payload', ARGV[5])
redis.call('SET', KEYS[2], string.format('%d', seq))
return seq
"""


class _RefusedError(StoreUnavailableError):
    """The server refused the connection or is still loading: the command never ran."""


class _ConnectionLostError(StoreUnavailableError):
    """The connection broke (reset, closed, broken pipe) after the command may have been
    sent: it may have run, or not."""


def _refused(exc: BaseException) -> bool:
    if isinstance(exc, redis_errors.BusyLoadingError):
        return True
    seen: BaseException | None = exc
    for _ in range(4):  # the driver wraps the socket error once or twice
        if seen is None:
            return False
        if isinstance(seen, ConnectionRefusedError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _timed_out(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    for _ in range(4):
        if seen is None:
            return False
        if isinstance(seen, redis_errors.TimeoutError | builtins.TimeoutError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


# Calls that may be made again after a connection broke mid-call (the first may or may not
# have run): running them twice leaves the store as running them once does. Reads; writes of
# a given value (set, hset, sadd, expire); the writer lock's acquire and refresh by its owner
# (the owner re-acquiring its own lock only extends it). A retried write may return a
# different count than the first would have (hset, sadd: fields "added" by the first run
# are not new any more); no caller uses those counts.
#
# Not repeated after a broken connection, only after a refusal (which means the command
# never ran): incr (would count twice), publish (a second event), delete, hdel, srem and
# release_lock (their answer, "was it there?", would be wrong: a logout would report that the
# session did not exist), and run_script unless the script says it is idempotent
# (StoreScript.idempotent: the report intake, which recognises its own report id).
# Time-outs are never repeated: the call has already waited socket_timeout_s (beyond the
# ride-through), and a slow server is not helped by more commands.
_SAFE_TO_REPEAT = frozenset(
    {
        "get",
        "set",
        "exists",
        "expire",
        "ttl",
        "hset",
        "hget",
        "hgetall",
        "sadd",
        "smembers",
        "scan_keys",
        "acquire_lock",
        "refresh_lock",
        "read_events",
        "last_event_seq",
    }
)


_Method = TypeVar("_Method", bound=Callable[..., Awaitable[Any]])


def _rides_through(method: _Method) -> _Method:
    """Retry a call through a restart of the server, for up to the store's
    ``ride_through_s``, then raise ``StoreUnavailableError``.

    * Refused connection or loading: the command never ran; every call is made again.
    * Connection broken mid-call (reset, closed by the server, broken pipe): made again only
      if repeating it is harmless (:data:`_SAFE_TO_REPEAT`, or a script declared
      ``idempotent``); any other call raises at once, since it may have run.
    * Time-out: never made again.

    The driver itself retries nothing (``retries=0``): it cannot tell these cases apart.
    """
    safe = method.__name__ in _SAFE_TO_REPEAT

    @functools.wraps(method)
    async def riding(self: RedisStateStore, *args: Any, **kwargs: Any) -> Any:
        deadline = time.monotonic() + self.ride_through_s
        delay = 0.05
        repeatable = safe or (
            method.__name__ == "run_script" and getattr(args[0], "idempotent", False)
        )
        while True:
            try:
                return await method(self, *args, **kwargs)
            except (_RefusedError, _ConnectionLostError) as exc:
                if isinstance(exc, _ConnectionLostError) and not repeatable:
                    raise StoreUnavailableError(str(exc)) from exc
                if time.monotonic() + delay > deadline:
                    raise StoreUnavailableError(str(exc)) from exc
                self.retried[type(exc).__name__] += 1
                await asyncio.sleep(delay)
                delay = min(2 * delay, 0.25)

    return cast(_Method, riding)


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
        self._client: Redis
        if self.cluster:
            cluster = cast(
                _GatedCluster,
                _GatedCluster.from_url(
                    f"{CLUSTER_SCHEMES[scheme]}://{rest}",
                    max_connections=max_connections,
                    protocol=2,
                    decode_responses=False,
                    socket_timeout=socket_timeout_s,
                    socket_connect_timeout=connect_timeout_s,
                    retry=Retry(ExponentialBackoff(cap=0.2, base=0.05), retries),
                ),
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
            pool = BlockingConnectionPool.from_url(
                url,
                max_connections=max_connections,
                timeout=socket_timeout_s,
                protocol=2,
                decode_responses=False,
                socket_timeout=socket_timeout_s,
                socket_connect_timeout=connect_timeout_s,
                retry=Retry(ExponentialBackoff(cap=0.2, base=0.05), retries),
            )
            self._client = Redis.from_pool(pool)
        self._incr = self._register(_INCR)
        self._acquire = self._register(_ACQUIRE_LOCK)
        self._refresh = self._register(_REFRESH_LOCK)
        self._release = self._register(_RELEASE_LOCK)
        self._publish = self._register(_PUBLISH)
        self._scripts: dict[StoreScript, Any] = {}  # registered (EVALSHA, loaded on demand)
        self.retried: Counter[str] = Counter()  # calls made again, by cause (for tests)
        self._subscriptions: set[_RedisSubscription] = set()

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
            if _refused(exc):  # nothing reached Redis: the call may be made again
                raise _RefusedError(text) from exc
            if _timed_out(exc):  # it may have run, and the time is spent: never repeated
                raise StoreUnavailableError(text) from exc
            raise _ConnectionLostError(text) from exc  # repeated if harmless
        except redis_errors.ResponseError as exc:
            text = str(exc)
            if text.startswith("WRONGTYPE") or "not an integer" in text:
                raise StoreTypeError(f"Redis refused the operation: {text}") from exc
            raise StoreError(f"Redis error: {text}") from exc
        except redis_errors.RedisError as exc:
            raise StoreError(f"Redis error ({type(exc).__name__}: {exc})") from exc

    # -- key/value -------------------------------------------------------------------------

    @_rides_through
    async def get(self, key: str) -> bytes | None:
        with self._translate():
            value = await self._client.get(self._key(key))
        return _optional_bytes(value)

    @_rides_through
    async def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        if not isinstance(value, bytes):
            raise TypeError(f"value must be bytes, not {type(value).__name__}")
        px = None if ttl_s is None else _ms(ttl_s)
        with self._translate():
            await self._client.set(self._key(key), value, px=px)

    @_rides_through
    async def delete(self, *keys: str) -> int:
        if not keys:
            return 0
        with self._translate():
            return int(await self._client.delete(*map(self._key, keys)))

    @_rides_through
    async def exists(self, *keys: str) -> int:
        if not keys:
            return 0
        with self._translate():
            return int(await self._client.exists(*map(self._key, keys)))

    @_rides_through
    async def expire(self, key: str, ttl_s: float) -> bool:
        ms = _ms(ttl_s)
        with self._translate():
            return bool(await self._client.pexpire(self._key(key), ms))

    @_rides_through
    async def ttl(self, key: str) -> float | None:
        with self._translate():
            ms = int(await self._client.pttl(self._key(key)))
        # -2: no such key, -1: no expiry.
        return None if ms < 0 else ms / 1000

    # -- hashes ----------------------------------------------------------------------------

    @_rides_through
    async def hset(self, key: str, mapping: dict[str, bytes]) -> int:
        if not mapping:
            raise ValueError("hset needs at least one field")
        with self._translate():
            return int(await self._client.hset(self._key(key), mapping=dict[Any, Any](mapping)))

    @_rides_through
    async def hget(self, key: str, field: str) -> bytes | None:
        with self._translate():
            value = await self._client.hget(self._key(key), field)
        return _optional_bytes(value)

    @_rides_through
    async def hgetall(self, key: str) -> dict[str, bytes]:
        with self._translate():
            raw = await self._client.hgetall(self._key(key))
        return {_text(name): _as_bytes(value) for name, value in raw.items()}

    @_rides_through
    async def hdel(self, key: str, *fields: str) -> int:
        if not fields:
            return 0
        with self._translate():
            return int(await self._client.hdel(self._key(key), *fields))

    # -- sets ------------------------------------------------------------------------------

    @_rides_through
    async def sadd(self, key: str, *members: str) -> int:
        if not members:
            raise ValueError("sadd needs at least one member")
        with self._translate():
            return int(await self._client.sadd(self._key(key), *members))

    @_rides_through
    async def srem(self, key: str, *members: str) -> int:
        if not members:
            return 0
        with self._translate():
            return int(await self._client.srem(self._key(key), *members))

    @_rides_through
    async def smembers(self, key: str) -> builtins.set[str]:
        with self._translate():
            raw = await self._client.smembers(self._key(key))
        return {_text(member) for member in raw}

    # -- counters --------------------------------------------------------------------------

    @_rides_through
    async def incr(self, key: str, amount: int = 1, ttl_s: float | None = None) -> int:
        ttl_arg = "" if ttl_s is None else str(_ms(ttl_s))
        with self._translate():
            return int(await self._incr(keys=[self._key(key)], args=[amount, ttl_arg]))

    # -- scripts ---------------------------------------------------------------------------

    @_rides_through
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

    @_rides_through
    async def scan_keys(self, pattern: str = "*") -> list[str]:
        matches = [_escape_glob(self._prefix) + pattern]
        if self.cluster:  # untagged keys sit behind the namespace's tag
            matches.append(_escape_glob(self._prefix + self._tag) + pattern)
        found: set[str] = set()
        with self._translate():
            for match in matches:
                # SCAN may return a key twice across iterations; the set removes repeats.
                async for raw in self._client.scan_iter(match=match, count=1000):
                    found.add(self._unkey(_text(raw)))
        return sorted(found)

    # -- locks -----------------------------------------------------------------------------

    @_rides_through
    async def acquire_lock(self, name: str, owner: str, ttl_s: float) -> bool:
        ms = _ms(ttl_s)
        with self._translate():
            return bool(await self._acquire(keys=[self._key(f"lock:{name}")], args=[owner, ms]))

    @_rides_through
    async def refresh_lock(self, name: str, owner: str, ttl_s: float) -> bool:
        ms = _ms(ttl_s)
        with self._translate():
            return bool(await self._refresh(keys=[self._key(f"lock:{name}")], args=[owner, ms]))

    @_rides_through
    async def release_lock(self, name: str, owner: str) -> bool:
        with self._translate():
            return bool(await self._release(keys=[self._key(f"lock:{name}")], args=[owner]))

    # -- events ----------------------------------------------------------------------------

    @_rides_through
    async def publish(
        self,
        type: str,
        city: str,
        payload: dict[str, Any],
        *,
        fence: Fence | None = None,
        state: dict[str, bytes] | None = None,
    ) -> Event:
        encoded = encode_payload(payload)
        at = utc_now()
        # Validate before writing, so a bad type or city never reaches the stream.
        Event(seq=1, type=type, city=city, at=at)
        state = state or {}
        for value in state.values():
            if not isinstance(value, bytes):
                raise TypeError(f"state values must be bytes, not {value.__class__.__name__}")
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

    @_rides_through
    async def read_events(self, after_seq: int = 0, limit: int = 1000) -> list[Event]:
        check_seq(after_seq)
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        with self._translate():
            entries = await self._client.xrange(
                self._key(EVENTS_KEY), min=f"{after_seq + 1}-0", max="+", count=limit
            )
        return [_parse_entry(entry_id, fields) for entry_id, fields in entries or []]

    @_rides_through
    async def last_event_seq(self) -> int:
        with self._translate():
            raw = await self._client.get(self._key(EVENTS_SEQ_KEY))
        return 0 if raw is None else int(raw)

    def subscribe(self, after_seq: int | None = None) -> Subscription:
        return _RedisSubscription(self, after_seq)

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
            events.extend(_parse_entry(entry_id, fields) for entry_id, fields in entries)
        return events

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` was called."""
        return self._closed

    def track(self, subscription: _RedisSubscription, active: bool) -> None:
        """Register or forget an open subscription, so :meth:`aclose` can end it.

        Parameters
        ----------
        subscription : _RedisSubscription
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


class _RedisSubscription(Subscription):
    """Cursor over the stream, advanced with ``XREAD BLOCK``."""

    _BATCH = 500

    def __init__(self, store: RedisStateStore, after_seq: int | None) -> None:
        super().__init__(after_seq)
        self._store = store
        self._pending: deque[Event] = deque()
        self._reading: asyncio.Task[list[Event]] | None = None
        self._stopped = False

    def stop_reading(self) -> asyncio.Task[list[Event]] | None:
        """End iteration because the store is closing; cancel a blocked read.

        Returns
        -------
        asyncio.Task or None
            The cancelled read, for the store to await before closing connections.
        """
        reading = self._reading
        if reading is not None:
            reading.cancel()
        return reading

    async def _head_seq(self) -> int:
        return await self._store.last_event_seq()

    async def _on_start(self, start_seq: int) -> None:
        self._store.track(self, True)

    async def _next_event(self) -> Event | None:
        while not self._pending:
            if self._stopped or self._store.closed:
                return None
            assert self._last_seq is not None
            # A task of its own, so aclose() can cancel the read without cancelling the
            # consumer; cancelling the consumer still cancels the read (await propagates).
            self._reading = asyncio.ensure_future(
                self._store.read_events_blocking(self._last_seq, self._BATCH)
            )
            try:
                batch = await self._reading
            except asyncio.CancelledError:
                current = asyncio.current_task()
                # Cancelled by aclose() of the store or of this subscription (possibly from
                # another task): that ends the iteration; a cancelled consumer re-raises.
                stopping = self._stopped or self._store.closed
                if stopping and current is not None and not current.cancelling():
                    return None
                raise
            except StoreUnavailableError:
                # A real outage propagates to the consumer, who may resubscribe later.
                if self._store.closed:
                    return None
                raise
            finally:
                self._reading = None
            self._pending.extend(batch)
        return self._pending.popleft()

    async def _on_close(self) -> None:
        self._stopped = True
        self._store.track(self, False)
        self._pending.clear()
        if self._reading is not None:
            self._reading.cancel()


def _ms(ttl_s: float) -> int:
    check_ttl(ttl_s)
    # Round up so a short TTL never becomes 0 ms, which Redis rejects.
    return max(1, math.ceil(ttl_s * 1000))


def _text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


def _as_bytes(raw: Any) -> bytes:
    if isinstance(raw, bytes):
        return raw
    raise StoreError(f"unexpected reply from Redis: {raw!r}")


def _optional_bytes(raw: Any) -> bytes | None:
    return None if raw is None else _as_bytes(raw)


def _parse_entry(entry_id: Any, fields: Any) -> Event:
    if not isinstance(entry_id, bytes | str) or not isinstance(fields, dict):
        raise StoreError(f"unexpected stream entry from Redis: {entry_id!r}")
    values = {_text(name): _text(value) for name, value in fields.items()}
    return Event(
        seq=int(_text(entry_id).split("-", 1)[0]),
        type=values["type"],
        city=values["city"],
        at=datetime.fromisoformat(values["at"]),
        payload=json.loads(values["payload"]),
    )


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
