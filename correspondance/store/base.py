"""The state/events interface every backend implements.

Two backends implement :class:`StateStore`: :mod:`.memory` (the embedded default, one process)
and :mod:`.redis` (shared by many processes). Both pass the same contract tests in
``tests/store/``, so code written against this interface behaves the same on either.

Keys are plain strings chosen by callers (``"report:abc"``); backends add their own namespace
prefix, so keys given to and returned by the store never carry it. The names ``events`` and
``events:seq`` are reserved for the event stream, whose model is in :mod:`.events`;
:mod:`.scripts` holds the atomic multi-step operations callers hand to a backend.
"""

from __future__ import annotations

import builtins
from abc import abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

from correspondance.store.events import AsyncCloses, Event, Fence, Subscription
from correspondance.store.scripts import ScriptArg, ScriptResult, StoreScript


def check_ttl(ttl_s: float) -> None:
    """Raise ``ValueError`` for a TTL that is not strictly positive: Redis rejects one, and
    it would mean "already expired"."""
    if not ttl_s > 0:
        raise ValueError(f"ttl_s must be > 0, got {ttl_s!r}")


class StateStore(AsyncCloses):
    """Shared key/value state, indexes, counters, locks and the one event stream.

    All methods are coroutines and may raise
    :class:`~correspondance.store.errors.StoreUnavailableError` when the backend cannot be
    reached, and :class:`~correspondance.store.errors.StoreTypeError` when a key holds another
    kind of value than the operation expects. TTLs are in seconds (floats; Redis rounds up to
    the millisecond).
    """

    backend: ClassVar[str]
    """Short backend name for health reports: ``"memory"`` or ``"redis"``."""

    cluster: bool = False
    """Whether keys spread over the nodes of a Redis Cluster: the keys of one script (or
    of any multi-key call that must be atomic) must then share a hash tag (``{...}``)."""

    # -- key/value -------------------------------------------------------------------------

    @abstractmethod
    async def get(self, key: str) -> bytes | None:
        """Return the value of ``key``, or ``None`` if it is missing or expired.

        Parameters
        ----------
        key : str
            The key, without namespace prefix.

        Returns
        -------
        bytes or None
            The stored value (a counter reads as its decimal digits, e.g. ``b"3"``).
        """

    @abstractmethod
    async def set(self, key: str, value: bytes, ttl_s: float | None = None) -> None:
        """Store ``value`` under ``key``, replacing any value and any previous TTL.

        Parameters
        ----------
        key : str
            The key.
        value : bytes
            The value.
        ttl_s : float, optional
            Expire the key after this many seconds; ``None`` keeps it until deleted.

        Raises
        ------
        ValueError
            If ``ttl_s`` is not positive.
        """

    @abstractmethod
    async def delete(self, *keys: str) -> int:
        """Delete keys of any kind.

        Parameters
        ----------
        *keys : str
            Keys to delete.

        Returns
        -------
        int
            How many of them existed.
        """

    @abstractmethod
    async def exists(self, *keys: str) -> int:
        """Count how many of ``keys`` exist (a key named twice counts twice, as in Redis).

        Parameters
        ----------
        *keys : str
            Keys to check.

        Returns
        -------
        int
            Number of existing keys.
        """

    @abstractmethod
    async def expire(self, key: str, ttl_s: float) -> bool:
        """Set the time to live of an existing key of any kind.

        Parameters
        ----------
        key : str
            The key.
        ttl_s : float
            Seconds from now.

        Returns
        -------
        bool
            ``False`` if the key does not exist.

        Raises
        ------
        ValueError
            If ``ttl_s`` is not positive.
        """

    @abstractmethod
    async def ttl(self, key: str) -> float | None:
        """Return the remaining time to live of ``key`` in seconds.

        Parameters
        ----------
        key : str
            The key.

        Returns
        -------
        float or None
            Seconds left; ``None`` if the key does not exist or has no expiry (tell them
            apart with :meth:`exists`).
        """

    # -- hashes ----------------------------------------------------------------------------

    @abstractmethod
    async def hset(self, key: str, mapping: dict[str, bytes]) -> int:
        """Set fields of the hash at ``key``, creating it if needed; its TTL is kept.

        Parameters
        ----------
        key : str
            The key.
        mapping : dict of str to bytes
            Fields and values to set (must not be empty).

        Returns
        -------
        int
            Number of fields that were new.

        Raises
        ------
        ValueError
            If ``mapping`` is empty.
        """

    @abstractmethod
    async def hget(self, key: str, field: str) -> bytes | None:
        """Return one field of a hash, or ``None`` if the hash or field is missing.

        Parameters
        ----------
        key : str
            The key.
        field : str
            The field.

        Returns
        -------
        bytes or None
            The field's value.
        """

    @abstractmethod
    async def hgetall(self, key: str) -> dict[str, bytes]:
        """Return every field of a hash (empty if the key is missing).

        Parameters
        ----------
        key : str
            The key.

        Returns
        -------
        dict of str to bytes
            Fields and values.
        """

    @abstractmethod
    async def hdel(self, key: str, *fields: str) -> int:
        """Delete fields of a hash; the key disappears with its last field.

        Parameters
        ----------
        key : str
            The key.
        *fields : str
            Fields to delete.

        Returns
        -------
        int
            Number of fields that existed.
        """

    # -- sets ------------------------------------------------------------------------------

    @abstractmethod
    async def sadd(self, key: str, *members: str) -> int:
        """Add members to the set at ``key``, creating it if needed; its TTL is kept.

        Parameters
        ----------
        key : str
            The key.
        *members : str
            Members to add (at least one).

        Returns
        -------
        int
            Number of members that were new.

        Raises
        ------
        ValueError
            If no member is given.
        """

    @abstractmethod
    async def srem(self, key: str, *members: str) -> int:
        """Remove members from a set; the key disappears with its last member.

        Parameters
        ----------
        key : str
            The key.
        *members : str
            Members to remove.

        Returns
        -------
        int
            Number of members that were present.
        """

    @abstractmethod
    async def smembers(self, key: str) -> builtins.set[str]:
        """Return the members of a set (empty if the key is missing).

        Parameters
        ----------
        key : str
            The key.

        Returns
        -------
        set of str
            The members.
        """

    # -- counters --------------------------------------------------------------------------

    @abstractmethod
    async def incr(self, key: str, amount: int = 1, ttl_s: float | None = None) -> int:
        """Atomically add ``amount`` to the counter at ``key`` (missing counts as 0).

        The TTL is applied only when the counter has no expiry yet, i.e. when this call
        creates it: later increments do not extend the window, which is what a fixed-window
        rate limit needs.

        Parameters
        ----------
        key : str
            The key.
        amount : int, default 1
            Increment (may be negative).
        ttl_s : float, optional
            Expiry of a newly created counter, in seconds.

        Returns
        -------
        int
            The value after the increment.

        Raises
        ------
        StoreTypeError
            If the key holds something other than an integer.
        ValueError
            If ``ttl_s`` is not positive.
        """

    # -- scripts ---------------------------------------------------------------------------

    @abstractmethod
    async def run_script(
        self, script: StoreScript, keys: Sequence[str], args: Sequence[ScriptArg] = ()
    ) -> ScriptResult:
        """Run a :class:`StoreScript` atomically: no other client sees half of it.

        On Redis it is one ``EVALSHA`` (one round trip, and with ``appendfsync always``
        one fsync before the reply, whatever the script wrote); in process it is the
        script's ``local`` version, which never suspends.

        Parameters
        ----------
        script : StoreScript
            The operation.
        keys : sequence of str
            Keys it touches (without the namespace prefix; Redis needs every key a script
            touches named here).
        args : sequence of str, bytes, int or float
            Arguments (encoded with :func:`encode_arg`).

        Returns
        -------
        list of int and bytes
            What the script returned.

        Raises
        ------
        StoreTypeError
            If a key holds another kind of value than the script expects.
        StoreError
            If the script itself failed (a Lua error).
        """

    # -- scanning --------------------------------------------------------------------------

    @abstractmethod
    async def scan_keys(self, pattern: str = "*") -> list[str]:
        """List existing keys matching a glob pattern (Redis ``MATCH`` syntax: ``* ? [..]``).

        Meant for maintenance and privacy tests ("no key holds a raw token"), not for hot
        paths: it walks the whole namespace.

        Parameters
        ----------
        pattern : str, default "*"
            Glob over keys without the namespace prefix.

        Returns
        -------
        list of str
            Matching keys, without prefix, sorted. Includes the reserved ``events`` and
            ``events:seq`` once something has been published.
        """

    # -- locks -----------------------------------------------------------------------------

    @abstractmethod
    async def acquire_lock(self, name: str, owner: str, ttl_s: float) -> bool:
        """Take the lock ``name`` for ``owner`` unless someone else holds it.

        Re-acquiring a lock you already hold succeeds and extends it, so a writer loop may
        simply call this every tick. ``owner`` must be unique per process (e.g. host, pid and
        a random part): two holders with the same owner string are indistinguishable.

        Parameters
        ----------
        name : str
            Lock name (stored under key ``lock:<name>``).
        owner : str
            Identity of the would-be holder.
        ttl_s : float
            Lock expiry in seconds; a holder that dies releases it after this long.

        Returns
        -------
        bool
            ``True`` if ``owner`` holds the lock now.
        """

    @abstractmethod
    async def refresh_lock(self, name: str, owner: str, ttl_s: float) -> bool:
        """Extend a lock held by ``owner`` to ``ttl_s`` seconds from now.

        Parameters
        ----------
        name : str
            Lock name.
        owner : str
            Identity of the holder.
        ttl_s : float
            New expiry in seconds.

        Returns
        -------
        bool
            ``False`` if ``owner`` no longer holds it (expired or taken): stop writing.
        """

    @abstractmethod
    async def release_lock(self, name: str, owner: str) -> bool:
        """Release a lock if, and only if, ``owner`` holds it.

        Parameters
        ----------
        name : str
            Lock name.
        owner : str
            Identity of the holder.

        Returns
        -------
        bool
            ``True`` if it was held by ``owner`` and is now free.
        """

    # -- events ----------------------------------------------------------------------------

    @abstractmethod
    async def publish(
        self,
        type: str,
        city: str,
        payload: dict[str, Any],
        *,
        fence: Fence | None = None,
        state: dict[str, bytes] | None = None,
    ) -> Event:
        """Append an event to the stream, giving it the next ``seq``.

        Parameters
        ----------
        type : str
            Event type, e.g. ``"gbfs.updated"``.
        city : str
            City id.
        payload : dict
            JSON-compatible description of what changed.
        fence : Fence, optional
            Publish only while ``fence.owner`` holds the lock ``fence.lock``; otherwise raise
            :class:`~correspondance.store.errors.FencedOutError` with nothing written.
        state : dict of str to bytes, optional
            Keys to set (no expiry) in the same atomic step, before the event: the state an
            event announces is never missing when a follower reads it, and a fenced-out
            writer never overwrites the new writer's state.

        Returns
        -------
        Event
            The event as stored, with its ``seq`` and ``at``.

        Raises
        ------
        TypeError, ValueError
            If the payload is not JSON-compatible (checked before anything is stored).
        FencedOutError
            If ``fence`` is given and its owner no longer holds the lock.
        """

    @abstractmethod
    async def read_events(self, after_seq: int = 0, limit: int = 1000) -> list[Event]:
        """Return up to ``limit`` stored events with ``seq > after_seq``, oldest first.

        The history is bounded: events older than the oldest kept are gone. A caller that
        needs continuity checks that the first event is ``after_seq + 1``.

        Parameters
        ----------
        after_seq : int, default 0
            Return events after this one (0: from the oldest kept).
        limit : int, default 1000
            Maximum number of events.

        Returns
        -------
        list of Event
            Consecutive events in ``seq`` order.

        Raises
        ------
        ValueError
            If ``after_seq`` is negative or ``limit`` is not positive.
        """

    @abstractmethod
    async def last_event_seq(self) -> int:
        """Return the seq of the newest event, 0 if none was ever published.

        Returns
        -------
        int
            The newest seq.
        """

    @abstractmethod
    def subscribe(self, after_seq: int | None = None) -> Subscription:
        """Follow the event stream.

        Parameters
        ----------
        after_seq : int, optional
            Deliver events after this one (a restarted consumer passes the last seq it
            processed and gets what it missed from history). ``None``: only events published
            after the subscription starts (see :class:`Subscription`).

        Returns
        -------
        Subscription
            An async iterator of :class:`Event` and an async context manager.
        """

    # -- lifecycle -------------------------------------------------------------------------

    @abstractmethod
    async def ping(self) -> None:
        """Check that the backend answers.

        Raises
        ------
        StoreUnavailableError
            If it does not.
        """

    @abstractmethod
    async def aclose(self) -> None:
        """Release connections and end open subscriptions; later calls raise
        :class:`~correspondance.store.errors.StoreUnavailableError`. Idempotent."""

    async def find_lock_owner(self, name: str) -> str | None:
        """Return who holds the lock ``name`` now, or ``None`` if nobody does (read-only:
        health checks ask whether a city has a writer without touching the lock).

        Parameters
        ----------
        name : str
            Lock name, as given to :meth:`acquire_lock`.

        Returns
        -------
        str or None
            The holder's ``owner`` string.
        """
        raw = await self.get(f"lock:{name}")
        return None if raw is None else raw.decode(errors="replace")
