"""The websocket side of live trips, in every API worker: one connection per traveller.

A :class:`TripHub` per process follows ``trip.messages`` events on the shared stream and
wakes the connections it holds for those trips. Each :class:`TripConnection` then reads
the messages after its cursor from the trip's outbox and sends them in order — the same
path a reconnecting client's replay takes, so live delivery and resume cannot disagree.
Every connection has its own sender task: a slow client only delays itself, and one that
falls further behind than the outbox keeps (or does not take a frame within
:data:`SEND_TIMEOUT_S`) is closed with 4409 to resume later.

Progress (where the schedule or the last reported position puts the traveller) and
heartbeats are computed here, per connection, without touching the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import numpy as np

from correspondance.errors import CorrespondanceError
from correspondance.store import StateStore
from realtime.trips import commands
from realtime.trips.plan_view import _along
from realtime.trips.protocol import ProtocolError, error, message, parse_client_message, stamp
from realtime.trips.sessions import (
    TRIP_ENDED,
    TRIP_MESSAGES,
    TRIP_UPDATED,
    TripBook,
    TripNotFoundError,
    TripSession,
)

log = logging.getLogger("correspondance.trips")

PROGRESS_S = 5.0
HEARTBEAT_S = 15.0
SEND_TIMEOUT_S = 10.0
POSITION_MIN_INTERVAL_S = 1.0
CLOSE_TOO_SLOW = 4409
CLOSE_GONE = 4404
CLOSE_ENDED = 1000

Send = Callable[[dict[str, Any]], Awaitable[None]]
Close = Callable[[int, str], Awaitable[None]]


class Track:
    """The plan reduced to what progress needs: leg times, modes and float32 shapes."""

    __slots__ = ("arrival", "legs")

    def __init__(self, plan: dict[str, Any]) -> None:
        self.legs = [
            (
                dt.datetime.fromisoformat(leg["departure"]).timestamp(),
                dt.datetime.fromisoformat(leg["arrival"]).timestamp(),
                "transit" if leg.get("trip_id") else leg["mode"],
                np.asarray(leg["geometry"]["coordinates"], dtype=np.float32).reshape(-1, 2),
            )
            for leg in plan["legs"]
        ]
        self.arrival = self.legs[-1][1]

    def progress(self, now: dt.datetime, position: tuple[float, float] | None) -> dict[str, Any]:
        """The ``progress`` body at trip time ``now``."""
        t = now.timestamp()
        index = next((i for i, leg in enumerate(self.legs) if t < leg[1]), len(self.legs) - 1)
        dep, arr, mode, shape = self.legs[index]
        if position is None:
            fraction = min(max((t - dep) / (arr - dep), 0.0), 1.0) if arr > dep else 1.0
            geometry = tuple((float(x), float(y)) for x, y in shape)
            lat, lon = _along(geometry, fraction) if len(geometry) else (0.0, 0.0)
        else:
            lat, lon = position
        eta = dt.datetime.fromtimestamp(max(self.arrival, t), now.tzinfo)
        return {
            "leg_index": index,
            "mode": mode,
            "position": {"lat": round(lat, 6), "lon": round(lon, 6)},
            "source": "position" if position is not None else "schedule",
            "eta": stamp(eta),
            "remaining_s": int(max(self.arrival - t, 0.0)),
        }


class TripHub:
    """This process's open trip connections, woken by ``trip.messages`` events."""

    def __init__(self, store: StateStore) -> None:
        self.book = TripBook(store)
        self.connections: dict[str, set[TripConnection]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Follow the event stream."""
        self._task = asyncio.create_task(self._follow())

    async def stop(self) -> None:
        """Stop following and close every connection."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for conns in list(self.connections.values()):
            for conn in list(conns):
                conn.stop()

    async def _follow(self) -> None:
        while True:
            try:
                async with self.book.store.subscribe() as events:
                    async for event in events:
                        if event.type == TRIP_MESSAGES:
                            for trip_id, last in event.payload["trips"].items():
                                for conn in self.connections.get(trip_id, ()):
                                    conn.announce(int(last))
                        elif event.type == TRIP_UPDATED:
                            for conn in self.connections.get(event.payload["trip_id"], ()):
                                conn.refresh()
                        elif event.type == TRIP_ENDED and event.payload.get("deleted"):
                            for conn in list(self.connections.get(event.payload["trip_id"], ())):
                                conn.gone()
            except asyncio.CancelledError:
                raise
            except Exception:  # lost events or a store outage: every connection re-reads
                log.warning("trip hub restarting", exc_info=True)
                for conns in self.connections.values():
                    for conn in conns:
                        conn.announce(None)
                await asyncio.sleep(1.0)

    def attach(self, conn: TripConnection) -> None:
        """Route a trip's messages to ``conn``."""
        self.connections[conn.trip_id].add(conn)

    def detach(self, conn: TripConnection) -> None:
        """Stop routing to ``conn``."""
        conns = self.connections.get(conn.trip_id)
        if conns is not None:
            conns.discard(conn)
            if not conns:
                del self.connections[conn.trip_id]

    @property
    def open_connections(self) -> int:
        """Connections held by this process."""
        return sum(len(c) for c in self.connections.values())


class TripConnection:
    """One websocket following one trip: replay, live messages, progress, commands."""

    def __init__(
        self, hub: TripHub, session: TripSession, send: Send, close: Close, after_seq: int
    ) -> None:
        self.hub = hub
        self.trip_id = session.trip_id
        self.session = session
        self.send_raw = send
        self.close_raw = close
        self.cursor = max(0, min(after_seq, session.last_seq))
        self.known = session.last_seq
        self.track = Track(session.plan)
        self.position: tuple[float, float] | None = None
        self._last_position = 0.0
        self._last_sent = time.monotonic()
        self._wake = asyncio.Event()
        self._done = asyncio.Event()
        self._close: tuple[int, str] | None = None
        self._reload = False

    # -- wake-ups from the hub --------------------------------------------------------------

    def announce(self, last_seq: int | None) -> None:
        """New messages up to ``last_seq`` (None: unknown, re-read) are in the outbox."""
        if last_seq is None or last_seq > self.known:
            self.known = max(self.known, last_seq or self.known)
            self._wake.set()

    def refresh(self) -> None:
        """The stored session changed (its plan or clock): read it again."""
        self._reload = True
        self._wake.set()

    def gone(self) -> None:
        """The trip was deleted."""
        self._finish(CLOSE_GONE, "trip deleted")

    def stop(self) -> None:
        """Server shutdown."""
        self._finish(1001, "server going away")

    def _finish(self, code: int, reason: str) -> None:
        if self._close is None:
            self._close = (code, reason)
        self._done.set()
        self._wake.set()

    # -- the connection's life --------------------------------------------------------------

    async def send(self, msg: dict[str, Any]) -> None:
        """Send one message, or give up on a client that does not read."""
        try:
            await asyncio.wait_for(self.send_raw(msg), SEND_TIMEOUT_S)
        except TimeoutError:
            self._finish(CLOSE_TOO_SLOW, "client too slow: reconnect with after_seq")
            raise
        self._last_sent = time.monotonic()

    async def serve(self, frames: AsyncIterator[str]) -> None:
        """Hello, replay, then live until the client leaves or the trip ends."""
        self.hub.attach(self)
        tasks = [
            asyncio.create_task(self._pump()),
            asyncio.create_task(self._ticker()),
            asyncio.create_task(self._receive(frames)),
        ]
        try:
            await self._hello()
            self._wake.set()
            await self._done.wait()
        finally:
            self.hub.detach(self)
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            if self._close is not None and self._close[0] != 0:
                with contextlib.suppress(Exception):
                    await self.close_raw(*self._close)

    async def _hello(self) -> None:
        s = self.session
        now = s.now()
        await self.send(
            message(
                "hello",
                s.trip_id,
                now,
                status="active" if s.status == "active" else "ended",
                last_seq=s.last_seq,
                itinerary=s.plan,
                suggestion=s.suggestion,
                progress=self.track.progress(now, self.position) if s.status == "active" else None,
            )
        )

    async def _pump(self) -> None:
        try:
            while not self._done.is_set():
                await self._wake.wait()
                self._wake.clear()
                if self._done.is_set():
                    break
                if self._reload:
                    self._reload = False
                    self.session = await self.hub.book.get(self.trip_id)
                    self.track = Track(self.session.plan)
                pending = await self.hub.book.messages_after(self.trip_id, self.cursor)
                if pending and int(pending[0]["seq"]) > self.cursor + 1:
                    self._finish(CLOSE_TOO_SLOW, "messages were dropped: reconnect to resync")
                    break
                for msg in pending:
                    await self.send(msg)
                    self.cursor = int(msg["seq"])
                    self._apply(msg)
                    if msg["type"] == "trip_ended":
                        self._finish(CLOSE_ENDED, "trip ended")
                        return
        except TripNotFoundError:
            self._finish(CLOSE_GONE, "trip expired or deleted")
        except TimeoutError:
            pass
        except Exception:
            log.warning("trip connection %s failed", self.trip_id, exc_info=True)
            self._finish(1011, "server error")

    def _apply(self, msg: dict[str, Any]) -> None:
        kind = msg["type"]
        if kind == "plan_updated":
            self.session.plan = msg["itinerary"]
            self.track = Track(msg["itinerary"])
        elif kind == "switch_suggestion":
            self.session.suggestion = {
                k: msg[k] for k in msg if k not in ("v", "type", "trip_id", "sent_at", "seq")
            }
        elif kind == "suggestion_closed":
            self.session.suggestion = None

    async def _ticker(self) -> None:
        with contextlib.suppress(TimeoutError):
            while not self._done.is_set():
                await asyncio.sleep(PROGRESS_S)
                now = self.session.now()
                if now.timestamp() <= self.track.arrival + 60:
                    await self.send(
                        message(
                            "progress", self.trip_id, now, **self.track.progress(now, self.position)
                        )
                    )
                elif time.monotonic() - self._last_sent >= HEARTBEAT_S:
                    await self.send(message("heartbeat", self.trip_id, now))

    async def _receive(self, frames: AsyncIterator[str]) -> None:
        try:
            async for frame in frames:
                await self.on_frame(frame)
        except Exception:
            log.debug("trip socket %s receive ended", self.trip_id, exc_info=True)
        self._finish(0, "client left")

    async def on_frame(self, frame: str) -> None:
        """Handle one client message; a bad one is answered with ``error``."""
        now = self.session.now()
        try:
            msg = parse_client_message(frame)
            kind = msg["type"]
            if kind == "ping":
                await self.send(message("heartbeat", self.trip_id, now))
            elif kind == "auth":
                raise ProtocolError("'auth' is only accepted as the first message")
            elif kind == "position":
                await self._position(float(msg["lat"]), float(msg["lon"]), now)
            elif kind == "accept":
                await self.hub.book.change(self.trip_id, commands.accept(msg["suggestion_id"], now))
                await self.hub.book.count(self.session.city, "accepted")
            elif kind == "decline":
                await self.hub.book.change(
                    self.trip_id,
                    commands.close_suggestion(msg["suggestion_id"], "declined", now),
                    event=None,
                )
                await self.hub.book.count(self.session.city, "declined")
            elif kind == "end":
                await self.hub.book.change(
                    self.trip_id, commands.end("ended", now), event=TRIP_ENDED
                )
                await self.hub.book.count(self.session.city, "ended")
        except CorrespondanceError as exc:
            await self.send(error(self.trip_id, now, exc.code, exc.message))

    async def _position(self, lat: float, lon: float, now: dt.datetime) -> None:
        wall = time.monotonic()
        if wall - self._last_position < POSITION_MIN_INTERVAL_S:
            raise ProtocolError(
                f"at most one position every {POSITION_MIN_INTERVAL_S:.0f} s", code="rate_limited"
            )
        self._last_position = wall
        self.position = (lat, lon)
        await self.hub.book.set_position(self.session, lat, lon)
        await self.send(
            message("progress", self.trip_id, now, **self.track.progress(now, self.position))
        )
