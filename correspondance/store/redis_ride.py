"""Riding through a Redis restart: which failures mean the command never ran, which calls
are safe to make again, and the decorator that makes them again within the store's
``ride_through_s``."""

from __future__ import annotations

import asyncio
import builtins
import functools
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar, cast

from redis import exceptions as redis_errors

from correspondance.store.errors import StoreUnavailableError


class RidingStore(Protocol):
    """What :func:`rides_through` reads and counts on the store it retries for."""

    ride_through_s: float
    retried: Counter[str]


class RefusedError(StoreUnavailableError):
    """The server refused the connection or is still loading: the command never ran."""


class ConnectionLostError(StoreUnavailableError):
    """The connection broke (reset, closed, broken pipe) after the command may have been
    sent: it may have run, or not."""


def _caused_by(
    exc: BaseException, kinds: type[BaseException] | tuple[type[BaseException], ...]
) -> bool:
    """Whether ``exc`` or one of the errors behind it (the driver wraps the socket error
    once or twice) is one of ``kinds``."""
    seen: BaseException | None = exc
    for _ in range(4):
        if seen is None:
            return False
        if isinstance(seen, kinds):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def refused(exc: BaseException) -> bool:
    """Whether the server refused the connection or is loading: the command never ran."""
    return isinstance(exc, redis_errors.BusyLoadingError) or _caused_by(exc, ConnectionRefusedError)


def timed_out(exc: BaseException) -> bool:
    """Whether the call timed out: it may have run, and its time is spent."""
    return _caused_by(exc, (redis_errors.TimeoutError, builtins.TimeoutError))


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
SAFE_TO_REPEAT = frozenset(
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


def rides_through(method: _Method) -> _Method:
    """Retry a call through a restart of the server, for up to the store's
    ``ride_through_s``, then raise ``StoreUnavailableError``.

    * Refused connection or loading: the command never ran; every call is made again.
    * Connection broken mid-call (reset, closed by the server, broken pipe): made again only
      if repeating it is harmless (:data:`SAFE_TO_REPEAT`, or a script declared
      ``idempotent``); any other call raises at once, since it may have run.
    * Time-out: never made again.

    The driver itself retries nothing (``retries=0``): it cannot tell these cases apart.
    """
    safe = method.__name__ in SAFE_TO_REPEAT

    @functools.wraps(method)
    async def riding(self: RidingStore, *args: Any, **kwargs: Any) -> Any:
        deadline = time.monotonic() + self.ride_through_s
        delay = 0.05
        repeatable = safe or (
            method.__name__ == "run_script" and getattr(args[0], "idempotent", False)
        )
        while True:
            try:
                return await method(self, *args, **kwargs)
            except (RefusedError, ConnectionLostError) as exc:
                if isinstance(exc, ConnectionLostError) and not repeatable:
                    raise StoreUnavailableError(str(exc)) from exc
                if time.monotonic() + delay > deadline:
                    raise StoreUnavailableError(str(exc)) from exc
                self.retried[type(exc).__name__] += 1
                await asyncio.sleep(delay)
                delay = min(2 * delay, 0.25)

    return cast(_Method, riding)
