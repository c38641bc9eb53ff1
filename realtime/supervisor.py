"""Supervised loops: a long-running loop that raises is logged, counted and restarted.

:class:`Supervisor` runs every loop of a process's live side (:mod:`realtime.runtime`), so
none dies silently; its :meth:`~Supervisor.health` shows each loop's state.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from realtime.loops import LoopHealth, cancel_and_wait

log = logging.getLogger("correspondance.runtime")


class Supervisor:
    """Runs long-lived loops; a loop that raises is logged, counted and restarted.

    Backoff grows from ``min_backoff_s`` to ``max_backoff_s`` while a loop keeps failing and
    resets once it has run for a minute. :meth:`stop` ends every loop within
    ``stop_timeout_s``, then runs each loop's clean-up (``close``), in spawn order.
    """

    def __init__(
        self, min_backoff_s: float = 0.5, max_backoff_s: float = 10.0, stop_timeout_s: float = 5.0
    ) -> None:
        self.min_backoff_s = min_backoff_s
        self.max_backoff_s = max_backoff_s
        self.stop_timeout_s = stop_timeout_s
        self.loops: dict[str, LoopHealth] = {}
        self.running: dict[str, bool] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._closes: list[tuple[str, Callable[[], Awaitable[None]]]] = []

    def spawn(
        self,
        name: str,
        loop: Callable[[], Awaitable[None]],
        close: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """Run ``loop()`` until stopped, restarting it whenever it raises or returns.

        ``close()``, if given, is awaited by :meth:`stop` once the loop has ended: a loop is
        cancelled, possibly several times (see :func:`~realtime.loops.cancel_and_wait`), so
        what it must undo (release a lock) is done there, never in the loop's ``finally``.
        """
        self.loops[name] = LoopHealth(name)
        self._tasks.append(asyncio.create_task(self._run(name, loop), name=name))
        if close is not None:
            self._closes.append((name, close))

    async def _run(self, name: str, loop: Callable[[], Awaitable[None]]) -> None:
        health = self.loops[name]
        backoff = self.min_backoff_s
        while True:
            started = time.monotonic()
            self.running[name] = True
            try:
                await loop()
                raise RuntimeError("loop returned")  # a supervised loop runs forever
            except asyncio.CancelledError:
                self.running[name] = False
                raise
            except Exception as exc:
                self.running[name] = False
                health.failed(exc, f"restarting in {backoff:.1f} s")
            if time.monotonic() - started > 60.0:
                backoff = self.min_backoff_s
            await asyncio.sleep(backoff)
            backoff = min(self.max_backoff_s, backoff * 2)

    def health(self) -> dict[str, Any]:
        """Each loop's state, by name: running, errors survived (each a restart), last one."""
        return {
            name: loop.as_dict(self.running.get(name, False))
            for name, loop in sorted(self.loops.items())
        }

    async def stop(self) -> None:
        """End every loop (each within ``stop_timeout_s``), then run their clean-ups (never
        raises: shutdown goes on)."""
        await cancel_and_wait(self._tasks, "supervised loops", self.stop_timeout_s)
        self._tasks.clear()
        for name, close in self._closes:
            try:
                await close()
            except Exception:
                log.exception("closing %s failed", name)
        self._closes.clear()
