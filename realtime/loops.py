"""Health of long-running loops (the trip hub's ticker and follower, the engine's tick),
and stopping them (:func:`cancel_and_wait`).

A loop that catches an error logs it, counts it here and goes on; ``health()`` methods
report the count, the last error and whether the loop still runs.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Iterable
from typing import Any

log = logging.getLogger("correspondance.loops")


class LoopHealth:
    """Errors a long-running loop caught and survived: counted, the last one kept."""

    __slots__ = ("errors", "last_error", "last_error_at", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.errors = 0
        self.last_error: str | None = None
        self.last_error_at: float | None = None  # unix time

    def failed(self, exc: BaseException, what: str) -> None:
        """Count and log one caught error (with its traceback)."""
        self.errors += 1
        self.last_error = f"{what}: {type(exc).__name__}: {exc}"[:300]
        self.last_error_at = time.time()
        log.warning("%s: %s failed (error %d)", self.name, what, self.errors, exc_info=exc)

    def as_dict(self, running: bool) -> dict[str, Any]:
        """``{"running", "errors", "last_error", "last_error_at"}`` for health checks."""
        at = self.last_error_at
        return {
            "running": running,
            "errors": self.errors,
            "last_error": self.last_error,
            "last_error_at": dt.datetime.fromtimestamp(at, dt.UTC).isoformat(timespec="seconds")
            if at is not None
            else None,
        }


async def cancel_and_wait(
    tasks: Iterable[asyncio.Task[Any]], what: str, timeout_s: float = 5.0
) -> list[asyncio.Task[Any]]:
    """Cancel ``tasks`` and wait until they end; the ones still running after ``timeout_s``.

    One ``cancel()`` is not enough on Python 3.11: ``asyncio.wait_for``, which redis-py
    wraps around every command it sends, swallows a cancellation that arrives just as the
    awaited step completes (CPython gh-86296, fixed in 3.12). A loop busy with store calls
    (a trip engine ticking 2,000 trips) then never ends, and its process ignores SIGTERM.
    So every task still running is cancelled again every 50 ms. A task must therefore not
    do its clean-up in ``finally`` (a repeated cancel would cut it short): the owner cleans
    up after the task has ended. Errors the tasks end with are logged, never raised.
    """
    given = list(tasks)
    pending = {t for t in given if not t.done()}
    ended = [t for t in given if t.done()]
    deadline = time.monotonic() + timeout_s
    while pending:
        for task in pending:
            task.cancel()
        done, pending = await asyncio.wait(pending, timeout=0.05)
        ended.extend(done)
        if pending and time.monotonic() > deadline:
            log.error("%s: %d task(s) did not stop within %.0f s", what, len(pending), timeout_s)
            break
    for task in ended:
        if not task.cancelled() and task.exception() is not None:
            log.error("%s: a task ended with an error", what, exc_info=task.exception())
    return list(pending)
