"""Health of long-running loops (the trip hub's ticker and follower, the engine's tick).

A loop that catches an error logs it, counts it here and goes on; ``health()`` methods
report the count, the last error and whether the loop still runs.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
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
