"""The Redis backend's side of the event stream: a subscription advanced with ``XREAD
BLOCK``, and the parsing of replies and stream entries into :class:`Event`."""

from __future__ import annotations

import asyncio
import json
from collections import deque
from datetime import datetime
from typing import TYPE_CHECKING, Any

from correspondance.store.errors import StoreError, StoreUnavailableError
from correspondance.store.events import Event, Subscription

if TYPE_CHECKING:
    from correspondance.store.redis import RedisStateStore


def decode_text(raw: bytes | str) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


def as_bytes(raw: Any) -> bytes:
    if isinstance(raw, bytes):
        return raw
    raise StoreError(f"unexpected reply from Redis: {raw!r}")


def optional_bytes(raw: Any) -> bytes | None:
    return None if raw is None else as_bytes(raw)


def parse_entry(entry_id: Any, fields: Any) -> Event:
    if not isinstance(entry_id, bytes | str) or not isinstance(fields, dict):
        raise StoreError(f"unexpected stream entry from Redis: {entry_id!r}")
    values = {decode_text(name): decode_text(value) for name, value in fields.items()}
    return Event(
        seq=int(decode_text(entry_id).split("-", 1)[0]),
        type=values["type"],
        city=values["city"],
        at=datetime.fromisoformat(values["at"]),
        payload=json.loads(values["payload"]),
    )


class RedisSubscription(Subscription):
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
