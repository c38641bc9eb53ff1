"""The event stream's model: :class:`Event`, the :class:`Fence` of a guarded write, and
the :class:`Subscription` every backend's consumer derives from.

Both backends (:mod:`.memory`, :mod:`.redis`) encode payloads and check publishes and resume
points with the helpers here, so an event that one backend refuses the other refuses too.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator

from correspondance.store.errors import EventsLostError

EVENTS_KEY = "events"
EVENTS_SEQ_KEY = "events:seq"


class AsyncCloses(ABC):
    """Something used with ``async with``: entering gives it back, leaving closes it."""

    @abstractmethod
    async def aclose(self) -> None:
        """Release what it holds (idempotent)."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


@dataclass(frozen=True)
class Fence:
    """A lock that guards writes: a fenced write happens only while ``owner`` holds ``lock``.

    The check and the write are one atomic step in the store (a Lua script on Redis), so a
    writer that lost its lock — expired during an outage, or taken over by a standby — can
    never write again, however late its request arrives.
    """

    lock: str
    owner: str


class Event(BaseModel):
    """One change to live state, as carried on the event stream.

    Attributes
    ----------
    seq : int
        Position on the stream: 1 for the first event, then +1 per event, with no gaps.
    type : str
        What happened, dotted (``"gbfs.updated"``, ``"incident.declared"``).
    city : str
        City id the change belongs to.
    at : datetime
        When it was published (UTC, publisher's clock).
    payload : dict
        JSON-compatible description of exactly what changed (edge ids, station ids, ...).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    seq: int = Field(ge=1)
    type: str = Field(min_length=1)
    city: str = Field(min_length=1)
    at: datetime
    payload: dict[str, Any] = Field(default_factory=dict)

    @field_validator("at")
    @classmethod
    def _require_utc(cls, value: datetime) -> datetime:
        # A naive datetime would be compared with aware ones elsewhere and fail late; refuse it.
        if value.tzinfo is None:
            raise ValueError("Event.at must be timezone-aware")
        return value.astimezone(UTC)


def encode_payload(payload: dict[str, Any]) -> str:
    """Serialize an event payload to JSON, the form both backends store.

    The memory backend round-trips through this too, so a payload that Redis could not carry
    fails in tests on the embedded backend as well, and no subscriber shares a mutable dict
    with the publisher.

    Parameters
    ----------
    payload : dict
        The payload to encode.

    Returns
    -------
    str
        Compact JSON.

    Raises
    ------
    TypeError
        If the payload holds values JSON cannot represent (sets, datetimes, objects).
    ValueError
        If it holds NaN or infinity, or a circular reference.
    """
    if not isinstance(payload, dict):
        raise TypeError(f"event payload must be a dict, not {type(payload).__name__}")
    return json.dumps(payload, separators=(",", ":"), allow_nan=False)


def check_seq(after_seq: int) -> None:
    """Raise ``ValueError`` for a negative sequence number (seqs start at 1; 0 means "from
    the beginning")."""
    if after_seq < 0:
        raise ValueError(f"after_seq must be >= 0, got {after_seq}")


def check_publish(
    type: str, city: str, payload: dict[str, Any], state: dict[str, bytes] | None
) -> str:
    """Check a publish before anything is written, and encode its payload.

    Parameters
    ----------
    type, city : str
        The event's type and city (validated as :class:`Event` fields).
    payload : dict
        The payload (:func:`encode_payload`).
    state : dict of str to bytes, optional
        The state keys written with the event.

    Returns
    -------
    str
        The encoded payload.

    Raises
    ------
    TypeError, ValueError
        If the payload is not JSON-compatible, ``type`` or ``city`` is empty, or a state value
        is not bytes.
    """
    encoded = encode_payload(payload)
    Event(seq=1, type=type, city=city, at=utc_now())
    for value in (state or {}).values():
        if not isinstance(value, bytes):
            raise TypeError(f"state values must be bytes, not {value.__class__.__name__}")
    return encoded


def utc_now() -> datetime:
    """Return the current time, timezone-aware in UTC.

    Returns
    -------
    datetime
        Now, in UTC.
    """
    return datetime.now(UTC)


class Subscription(AsyncIterator[Event], AsyncCloses):
    """An ordered, gap-checked iterator over the event stream, for one consumer.

    Every subscription sees every event (fan-out, not work-sharing), in ``seq`` order. Its
    starting point is fixed when it is entered (``async with``) or first iterated, whichever
    comes first: events published after that are delivered, even if published before the
    first ``__anext__``. Prefer ``async with store.subscribe() as events: async for ...`` so
    the starting point is pinned before you publish and resources are released on exit.

    If an event the subscriber needs is no longer available (trimmed from the bounded
    history), iteration raises :class:`~correspondance.store.errors.EventsLostError` rather
    than silently skipping: the consumer must rebuild its state and resubscribe.
    """

    def __init__(self, after_seq: int | None) -> None:
        if after_seq is not None:
            check_seq(after_seq)
        self._after_seq = after_seq
        self._last_seq: int | None = None
        self._finished = False

    @property
    def last_seq(self) -> int | None:
        """Seq of the last event delivered (or the starting point); ``None`` before start."""
        return self._last_seq

    async def start(self) -> None:
        """Pin the starting point now (idempotent).

        Raises
        ------
        StoreUnavailableError
            If the backend cannot be reached.
        EventsLostError
            If ``after_seq`` is ahead of the newest event (the stream was reset).
        """
        if self._last_seq is None:
            head = await self._head_seq()
            if self._after_seq is None:
                start = head
            elif self._after_seq > head:
                # The consumer remembers events this stream never had: the stream was reset
                # (new Redis, restarted embedded process). Waiting would skip the new events.
                raise EventsLostError(
                    self._after_seq,
                    head + 1,
                    message=(
                        f"resume point {self._after_seq} is ahead of the newest event {head}: "
                        "the event stream was reset; rebuild state and resubscribe"
                    ),
                )
            else:
                start = self._after_seq
            self._last_seq = start
            await self._on_start(start)

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Event:
        if self._finished:
            raise StopAsyncIteration
        await self.start()
        assert self._last_seq is not None  # set by start()
        while True:
            event = await self._next_event()
            if event is None:
                self._finished = True
                await self._on_close()
                raise StopAsyncIteration
            # Backends may hand over an event twice while switching between history and
            # live delivery; skipping here keeps each backend simple.
            if event.seq <= self._last_seq:
                continue
            if event.seq != self._last_seq + 1:
                raise EventsLostError(self._last_seq, event.seq)
            self._last_seq = event.seq
            return event

    async def aclose(self) -> None:
        """Stop the subscription and release what it holds (idempotent)."""
        if not self._finished:
            self._finished = True
            await self._on_close()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    @abstractmethod
    async def _head_seq(self) -> int:
        """Return the seq of the newest event (0 if none)."""

    @abstractmethod
    async def _on_start(self, start_seq: int) -> None:
        """Begin receiving events after ``start_seq``."""

    @abstractmethod
    async def _next_event(self) -> Event | None:
        """Wait for the next event after :attr:`last_seq`; ``None`` once the store is closed."""

    @abstractmethod
    async def _on_close(self) -> None:
        """Release backend resources."""
