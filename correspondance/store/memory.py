"""In-process backend: the embedded default, for one process with no Redis.

State lives in a dict; expiry is lazy (checked on access), as nothing else can observe a key
between accesses. Every method runs without awaiting in the middle, so on one event loop each
is atomic, as the Redis commands and scripts it mirrors are.

Events: a bounded history (``deque``) plus, per subscriber, a bounded queue. Publishing never
waits for subscribers. When a subscriber's queue is full, the publisher drops that queue and
marks the subscriber as catching up; the subscriber then reads from the history in batches
after the last seq it delivered and switches back to live delivery once it has reached the
newest event. Only if the history itself has been trimmed past that point does it raise
:class:`~correspondance.store.errors.EventsLostError`. A slow subscriber thus costs bounded
memory and never slows publishers or other subscribers.
"""

from __future__ import annotations

import asyncio
import builtins
import fnmatch
import itertools
import json
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from correspondance.store.base import StateStore, check_ttl
from correspondance.store.errors import FencedOutError, StoreTypeError, StoreUnavailableError
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
from correspondance.store.scripts import ScriptArg, ScriptResult, StoreScript, encode_arg

_Value = bytes | dict[str, bytes] | set[str]


@dataclass(slots=True)
class _Entry:
    value: _Value
    expires_at: float | None = None  # time.monotonic() deadline


class MemoryStateStore(StateStore):
    """The :class:`~correspondance.store.base.StateStore` of a single process.

    Parameters
    ----------
    history_size : int, default 10_000
        Events kept for :meth:`read_events` and for subscribers catching up.
    subscriber_queue_size : int, default 1_000
        Events buffered per subscriber before it falls back to reading the history.
    """

    backend: ClassVar[str] = "memory"

    def __init__(self, *, history_size: int = 10_000, subscriber_queue_size: int = 1_000) -> None:
        if history_size < 1 or subscriber_queue_size < 1:
            raise ValueError("history_size and subscriber_queue_size must be >= 1")
        self._data: dict[str, _Entry] = {}
        self._history: deque[Event] = deque(maxlen=history_size)
        self._seq = 0
        self._subscriber_queue_size = subscriber_queue_size
        self._subscribers: set[_MemorySubscription] = set()
        self._closed = False

    # -- internals -------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise StoreUnavailableError("the in-memory store is closed")

    def _entry(self, key: str) -> _Entry | None:
        self._check_open()
        entry = self._data.get(key)
        deadline = None if entry is None else entry.expires_at
        if deadline is not None and deadline <= time.monotonic():
            del self._data[key]
            return None
        return entry

    def _typed(self, key: str, kind: type[bytes | dict[str, bytes] | set[str]]) -> _Entry | None:
        entry = self._entry(key)
        if entry is not None and not isinstance(entry.value, kind):
            raise StoreTypeError(
                f"key {key!r} holds a {_kind_name(entry.value)}, not a {kind.__name__}"
            )
        return entry

    # -- key/value -------------------------------------------------------------------------

    async def get(self, key: str) -> bytes | None:
        entry = self._typed(key, bytes)
        return None if entry is None else _as_bytes(entry.value)

    async def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        self._check_open()
        if ttl_s is not None:
            check_ttl(ttl_s)
        if not isinstance(value, bytes):
            raise TypeError(f"value must be bytes, not {type(value).__name__}")
        self._data[key] = _Entry(value, _deadline(ttl_s))

    async def delete(self, *keys: str) -> int:
        deleted = 0
        for key in keys:
            if self._entry(key) is not None:
                del self._data[key]
                deleted += 1
        return deleted

    async def exists(self, *keys: str) -> int:
        return sum(self._entry(key) is not None for key in keys)

    async def expire(self, key: str, ttl_s: float) -> bool:
        check_ttl(ttl_s)
        entry = self._entry(key)
        if entry is None:
            return False
        entry.expires_at = _deadline(ttl_s)
        return True

    async def ttl(self, key: str) -> float | None:
        entry = self._entry(key)
        if entry is None or entry.expires_at is None:
            return None
        return max(0.0, entry.expires_at - time.monotonic())

    # -- hashes ----------------------------------------------------------------------------

    async def hset(self, key: str, mapping: dict[str, bytes]) -> int:
        if not mapping:
            raise ValueError("hset needs at least one field")
        entry = self._typed(key, dict)
        if entry is None:
            entry = self._data[key] = _Entry({})
        fields = _as_hash(entry.value)
        new = sum(name not in fields for name in mapping)
        fields.update(mapping)
        return new

    async def hget(self, key: str, field: str) -> bytes | None:
        entry = self._typed(key, dict)
        return None if entry is None else _as_hash(entry.value).get(field)

    async def hgetall(self, key: str) -> dict[str, bytes]:
        entry = self._typed(key, dict)
        return {} if entry is None else dict(_as_hash(entry.value))

    async def hdel(self, key: str, *fields: str) -> int:
        entry = self._typed(key, dict)
        if entry is None:
            return 0
        values = _as_hash(entry.value)
        removed = sum(values.pop(name, None) is not None for name in set(fields))
        if not values:
            del self._data[key]
        return removed

    # -- sets ------------------------------------------------------------------------------

    async def sadd(self, key: str, *members: str) -> int:
        if not members:
            raise ValueError("sadd needs at least one member")
        entry = self._typed(key, set)
        if entry is None:
            entry = self._data[key] = _Entry(set())
        values = _as_set(entry.value)
        before = len(values)
        values.update(members)
        return len(values) - before

    async def srem(self, key: str, *members: str) -> int:
        entry = self._typed(key, set)
        if entry is None:
            return 0
        values = _as_set(entry.value)
        before = len(values)
        values.difference_update(members)
        if not values:
            del self._data[key]
        return before - len(values)

    async def smembers(self, key: str) -> builtins.set[str]:
        entry = self._typed(key, set)
        return set() if entry is None else set(_as_set(entry.value))

    # -- counters --------------------------------------------------------------------------

    async def incr(self, key: str, amount: int = 1, ttl_s: float | None = None) -> int:
        if ttl_s is not None:
            check_ttl(ttl_s)
        entry = self._typed(key, bytes)
        if entry is None:
            entry = self._data[key] = _Entry(b"0")
        try:
            value = int(_as_bytes(entry.value)) + amount
        except ValueError:
            raise StoreTypeError(f"key {key!r} holds a value that is not an integer") from None
        # Stored as decimal bytes, as Redis does, so get() reads the same on both backends.
        entry.value = str(value).encode()
        if ttl_s is not None and entry.expires_at is None:
            entry.expires_at = _deadline(ttl_s)
        return value

    # -- scripts ---------------------------------------------------------------------------

    async def run_script(
        self, script: StoreScript, keys: Sequence[str], args: Sequence[ScriptArg] = ()
    ) -> ScriptResult:
        self._check_open()
        running = script.local(self, list(keys), [encode_arg(a) for a in args])
        # Driven by hand, one step: it must finish without suspending, so no other task
        # runs in the middle of it (what makes it atomic, as EVALSHA is on Redis).
        try:
            running.send(None)
        except StopIteration as finished:
            result: ScriptResult = finished.value
            return result
        running.close()
        raise RuntimeError(
            f"script {script.name!r}: its local version suspended (it may await only the "
            "store's own methods), so it would not be atomic"
        )

    # -- scanning --------------------------------------------------------------------------

    async def scan_keys(self, pattern: str = "*") -> list[str]:
        self._check_open()
        names = [key for key in list(self._data) if self._entry(key) is not None]
        if self._seq:
            names += [EVENTS_KEY, EVENTS_SEQ_KEY]
        return sorted(name for name in names if fnmatch.fnmatchcase(name, pattern))

    # -- locks -----------------------------------------------------------------------------

    async def acquire_lock(self, name: str, owner: str, ttl_s: float) -> bool:
        check_ttl(ttl_s)
        key = _lock_key(name)
        entry = self._typed(key, bytes)
        if entry is not None and entry.value != owner.encode():
            return False
        self._data[key] = _Entry(owner.encode(), _deadline(ttl_s))
        return True

    async def refresh_lock(self, name: str, owner: str, ttl_s: float) -> bool:
        check_ttl(ttl_s)
        entry = self._typed(_lock_key(name), bytes)
        if entry is None or entry.value != owner.encode():
            return False
        entry.expires_at = _deadline(ttl_s)
        return True

    async def release_lock(self, name: str, owner: str) -> bool:
        key = _lock_key(name)
        entry = self._typed(key, bytes)
        if entry is None or entry.value != owner.encode():
            return False
        del self._data[key]
        return True

    # -- events ----------------------------------------------------------------------------

    async def publish(
        self,
        type: str,
        city: str,
        payload: dict[str, Any],
        *,
        fence: Fence | None = None,
        state: dict[str, bytes] | None = None,
    ) -> Event:
        self._check_open()
        encoded = check_publish(type, city, payload, state)
        if fence is not None:
            held = self._typed(_lock_key(fence.lock), bytes)
            if held is None or held.value != fence.owner.encode():
                raise FencedOutError(f"lock {fence.lock!r} is no longer held by this writer")
        for key, value in (state or {}).items():
            self._data[key] = _Entry(value, None)
        event = Event(
            seq=self._seq + 1, type=type, city=city, at=utc_now(), payload=json.loads(encoded)
        )
        self._seq = event.seq
        self._history.append(event)
        for subscriber in self._subscribers:
            subscriber.deliver(event)
        return event

    async def read_events(self, after_seq: int = 0, limit: int = 1000) -> list[Event]:
        self._check_open()
        check_seq(after_seq)
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        return self.history_after(after_seq, limit)

    async def last_event_seq(self) -> int:
        self._check_open()
        return self._seq

    def subscribe(self, after_seq: int | None = None) -> Subscription:
        return _MemorySubscription(self, after_seq, self._subscriber_queue_size)

    def history_after(self, after_seq: int, limit: int) -> list[Event]:
        """Up to ``limit`` consecutive kept events after ``after_seq`` (no checks; for the
        subscriptions catching up)."""
        if not self._history:
            return []
        # Seqs in the history are consecutive, so the position is arithmetic, no search.
        start = max(0, after_seq - self._history[0].seq + 1)
        return list(itertools.islice(self._history, start, start + limit))

    def attach(self, subscriber: _MemorySubscription) -> None:
        """Register a subscriber for live delivery (used by subscriptions).

        Parameters
        ----------
        subscriber : _MemorySubscription
            The subscription.
        """
        self._check_open()
        self._subscribers.add(subscriber)

    def detach(self, subscriber: _MemorySubscription) -> None:
        """Unregister a subscriber (used by subscriptions).

        Parameters
        ----------
        subscriber : _MemorySubscription
            The subscription.
        """
        self._subscribers.discard(subscriber)

    # -- lifecycle -------------------------------------------------------------------------

    async def ping(self) -> None:
        self._check_open()

    async def aclose(self) -> None:
        self._closed = True
        for subscriber in list(self._subscribers):
            subscriber.stop()
        self._subscribers.clear()


class _MemorySubscription(Subscription):
    """Live queue of one subscriber, with fallback to the store's history on overflow."""

    def __init__(self, store: MemoryStateStore, after_seq: int | None, queue_size: int) -> None:
        super().__init__(after_seq)
        self._store = store
        self._queue_size = queue_size
        self._pending: deque[Event] = deque()
        # While catching up the publisher leaves this subscriber alone; the subscriber pulls
        # from the history instead, so overflow drops nothing that history still holds.
        self._catching_up = False
        self._wakeup = asyncio.Event()
        self._stopped = False

    def deliver(self, event: Event) -> None:
        """Take one newly published event (called by the publisher; never blocks).

        Parameters
        ----------
        event : Event
            The event.
        """
        if self._catching_up:
            return
        if len(self._pending) >= self._queue_size:
            self._pending.clear()
            self._catching_up = True
        else:
            self._pending.append(event)
        self._wakeup.set()

    def stop(self) -> None:
        """End iteration, waking a consumer blocked in another task."""
        self._stopped = True
        self._wakeup.set()

    async def _head_seq(self) -> int:
        return await self._store.last_event_seq()

    async def _on_start(self, start_seq: int) -> None:
        self._store.attach(self)
        # A resuming subscriber first replays the history through the same path.
        self._catching_up = start_seq < self._store._seq

    async def _next_event(self) -> Event | None:
        while True:
            if self._stopped:
                return None
            if self._pending:
                return self._pending.popleft()
            if self._catching_up:
                assert self._last_seq is not None
                batch = self._store.history_after(self._last_seq, self._queue_size)
                self._pending.extend(batch)
                # No await since reading the batch: if it reaches the newest event, live
                # delivery resumes exactly after it, with nothing published in between.
                if not batch or batch[-1].seq >= self._store._seq:
                    self._catching_up = False
                continue
            self._wakeup.clear()
            await self._wakeup.wait()

    async def _on_close(self) -> None:
        self.stop()
        self._store.detach(self)
        self._pending.clear()


def _deadline(ttl_s: float | None) -> float | None:
    return None if ttl_s is None else time.monotonic() + ttl_s


def _lock_key(name: str) -> str:
    return f"lock:{name}"


def _kind_name(value: _Value) -> str:
    return {bytes: "string", dict: "hash", set: "set"}[type(value)]


def _as_bytes(value: _Value) -> bytes:
    assert isinstance(value, bytes)
    return value


def _as_hash(value: _Value) -> dict[str, bytes]:
    assert isinstance(value, dict)
    return value


def _as_set(value: _Value) -> set[str]:
    assert isinstance(value, set)
    return value
