"""The websocket side of live trips, in every API worker: one connection per traveller.

A :class:`TripHub` per process follows ``trip.messages`` events on the shared stream. For
the trips it holds sockets for, it reads the new messages of *all* of them from their
outboxes in one store round trip (:meth:`TripBook.fetch_many`) and hands each connection
its frames, already serialised as stored. A connection replays what it missed on connect
through the same outboxes, so live delivery and resume cannot disagree; a gap in what it
is handed (an event raced its replay) makes it re-read the outbox itself.

Every connection has its own sender (the socket's task) and queue: a slow client only
delays itself. One whose queue grows past :data:`MAX_QUEUE` frames, or that does not take a
frame within :data:`SEND_TIMEOUT_S`, is closed with 4409 and resumes later with
``after_seq``. The send timeout is watched by the hub's ticker (a send that does not
complete at once is rare), not by a timer per frame: fan-out to thousands of sockets stays
a plain write per frame.

Progress (where the schedule or the last reported position puts the traveller) and
heartbeats come from one ticker per hub, computed per connection without the store. A
connection keeps only what that needs (clock, a float32 shape of the plan), not the plan,
and no more asyncio objects than it must (a future while it waits, a list while it has
frames queued): one process holds tens of thousands.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import math
import re
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from correspondance.errors import CorrespondanceError, TripNotFoundError
from correspondance.store import StateStore, StoreUnavailableError
from realtime.loops import LoopHealth, cancel_and_wait
from realtime.trips import commands
from realtime.trips.protocol import ProtocolError, error, message, parse_client_message, stamp
from realtime.trips.sessions import (
    OUTBOX_KEEP,
    TRIP_ENDED,
    TRIP_MESSAGES,
    TRIP_UPDATED,
    TripBook,
    TripSession,
)

log = logging.getLogger("correspondance.trips")

PROGRESS_S = 5.0
HEARTBEAT_S = 15.0
SEND_TIMEOUT_S = 10.0
MAX_QUEUE = OUTBOX_KEEP
POSITION_MIN_INTERVAL_S = 1.0
CLOSE_TOO_SLOW = 4409
CLOSE_GONE = 4404
CLOSE_ENDED = 1000
CLOSE_UNSUPPORTED = 1003  # RFC 6455: a binary frame (the protocol is JSON text)
CLOSE_SERVER_ERROR = 1011
CLOSE_STORE_UNAVAILABLE = 4503
TICK_S = 1.0  # how often the ticker looks for stuck sends
TICK_BATCH = 500  # connections ticked between two yields to the event loop
BINARY_REFUSED = "binary frames are not part of the protocol: send JSON text frames"
_HELLO = '{"v":1,"type":"hello"'
_PLAN_UPDATED = '{"v":1,"type":"plan_updated"'
_TRIP_ENDED = '{"v":1,"type":"trip_ended"'

Send = Callable[[str], Awaitable[None]]
Close = Callable[[int, str], Awaitable[None]]


def _dumps(msg: dict[str, Any]) -> str:
    return json.dumps(msg, separators=(",", ":"))


class Track:
    """The plan reduced to what progress needs: leg times, modes and float32 shapes."""

    __slots__ = ("_leg", "_steps", "_total", "arrival", "legs")

    def __init__(self, plan: dict[str, Any]) -> None:
        self._leg = -1  # the leg whose segment lengths are kept (the current one)
        self._steps: np.ndarray[Any, Any] | None = None
        self._total = 0.0
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
            if len(shape) > 1:
                lat, lon = self._along(index, shape, fraction)
            elif len(shape) == 1:
                lat, lon = float(shape[0, 1]), float(shape[0, 0])
            else:
                lat, lon = 0.0, 0.0
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

    def _along(
        self, index: int, shape: np.ndarray[Any, Any], fraction: float
    ) -> tuple[float, float]:
        """:func:`~realtime.trips.plan_view._along` on a leg's shape, the same float64
        arithmetic, with the segment lengths of the current leg kept between ticks."""
        if self._leg != index:
            xy = shape.astype(np.float64)
            scale = math.cos(math.radians(float(xy[:, 1].mean())))
            lengths = np.hypot(np.diff(xy[:, 0]) * scale, np.diff(xy[:, 1]))
            self._leg, self._steps, self._total = index, lengths, float(lengths.sum())
        steps = self._steps
        assert steps is not None
        if self._total == 0.0:
            return float(shape[0, 1]), float(shape[0, 0])
        target = min(max(fraction, 0.0), 1.0) * self._total
        cum = np.concatenate(([0.0], np.cumsum(steps)))
        k = min(int(np.searchsorted(cum, target, side="right")) - 1, len(steps) - 1)
        t = (target - cum[k]) / steps[k] if steps[k] > 0 else 0.0
        x0, y0 = float(shape[k, 0]), float(shape[k, 1])
        lon = x0 + t * (float(shape[k + 1, 0]) - x0)
        lat = y0 + t * (float(shape[k + 1, 1]) - y0)
        return float(lat), float(lon)


class TripHub:
    """This process's open trip connections, fed by ``trip.messages`` events."""

    def __init__(self, store: StateStore, progress_s: float = PROGRESS_S) -> None:
        self.book = TripBook(store)
        self.progress_s = progress_s
        self.connections: dict[str, set[TripConnection]] = defaultdict(set)
        self._tasks: list[asyncio.Task[None]] = []
        self.follower_health = LoopHealth("trip hub follower")
        self.ticker_health = LoopHealth("trip hub ticker")
        self.ticks = 0  # ticker rounds completed

    def start(self) -> None:
        """Follow the event stream and tick progress."""
        self._tasks = [asyncio.create_task(self._follow()), asyncio.create_task(self._ticker())]

    async def stop(self) -> None:
        """Stop following and close every connection (never raises: shutdown goes on)."""
        await cancel_and_wait(self._tasks, "trip hub")  # a cancel alone may be swallowed
        for conns in list(self.connections.values()):
            for conn in list(conns):
                conn.finish(1001, "server going away")

    def health(self) -> dict[str, Any]:
        """The hub's loops for a health check: running, errors caught, the last one.

        ``{"connections", "ticks", "follower": {...}, "ticker": {...}}``; a loop that is
        not running (never started or died) is unhealthy.
        """
        alive = [bool(self._tasks) and not t.done() for t in self._tasks] or [False, False]
        return {
            "connections": self.open_connections,
            "ticks": self.ticks,
            "follower": self.follower_health.as_dict(alive[0]),
            "ticker": self.ticker_health.as_dict(alive[-1]),
        }

    async def _follow(self) -> None:
        while True:
            try:
                async with self.book.store.subscribe() as events:
                    async for event in events:
                        if event.type == TRIP_MESSAGES:
                            await self.deliver(event.payload["trips"])
                        elif event.type == TRIP_UPDATED:
                            for conn in self.connections.get(event.payload["trip_id"], ()):
                                conn.refresh()
                        elif event.type == TRIP_ENDED and event.payload.get("deleted"):
                            for conn in list(self.connections.get(event.payload["trip_id"], ())):
                                conn.finish(CLOSE_GONE, "trip deleted")
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # lost events or a store outage: every connection re-reads
                self.follower_health.failed(exc, "following trip events")
                for conns in list(self.connections.values()):
                    for conn in list(conns):
                        conn.resync()
                await asyncio.sleep(1.0)

    async def deliver(self, announced: dict[str, int]) -> None:
        """Read the announced messages of the trips held here (one round trip), hand them on."""
        wanted: dict[str, tuple[int, int]] = {}
        for trip_id, last in announced.items():
            conns = self.connections.get(trip_id)
            if conns:
                lowest = min(c.pushed for c in conns)
                if int(last) > lowest:
                    wanted[trip_id] = (lowest, int(last))
        if not wanted:
            return
        frames = await self.book.fetch_many(wanted)
        for trip_id, raw in frames.items():
            for conn in list(self.connections.get(trip_id, ())):
                conn.push(raw)

    async def _ticker(self) -> None:
        """Progress every ``progress_s``; every second, give up on sends stuck too long.

        Never ends on an error: a connection whose tick fails is closed (1011) and counted,
        the others go on (one bad trip must not stop every socket's progress).
        """
        step = min(self.progress_s, TICK_S)
        due = time.monotonic() + self.progress_s
        while True:
            await asyncio.sleep(step)
            try:
                now = time.monotonic()
                progress = now >= due - step / 10
                if progress:
                    due = max(due + self.progress_s, now + step)
                wall = time.time()
                held = [conn for conns in self.connections.values() for conn in conns]
                for i, conn in enumerate(held, 1):
                    try:
                        conn.check_send(now)
                        if progress:
                            conn.tick(wall)
                    except Exception as exc:
                        self.ticker_health.failed(exc, f"ticking trip {conn.trip_id}")
                        conn.finish(CLOSE_SERVER_ERROR, "server error")
                        self.detach(conn)  # its sender (if any) closes the socket
                    if i % TICK_BATCH == 0:  # thousands of sockets: let deliveries through
                        await asyncio.sleep(0)
                self.ticks += 1
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.ticker_health.failed(exc, "ticking")

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

    __slots__ = (
        "_close",
        "_close_after",
        "_head",
        "_last_position",
        "_last_sent",
        "_receiving",
        "_reload",
        "_resync",
        "_sending_since",
        "_stalled",
        "_task",
        "_waiter",
        "active",
        "city",
        "close_raw",
        "hub",
        "offset_s",
        "position",
        "pushed",
        "queue",
        "send_raw",
        "track",
        "trip_id",
        "tz",
    )

    def __init__(
        self, hub: TripHub, session: TripSession, send: Send, close: Close, after_seq: int
    ) -> None:
        self.hub = hub
        self.trip_id = session.trip_id
        self.city = session.city
        self.send_raw = send
        self.close_raw = close
        self.pushed = max(0, min(after_seq, session.last_seq))  # highest seq queued
        self.queue: list[str] = []  # frames to send from queue[_head]
        self._head = 0
        self.position: tuple[float, float] | None = None
        self._last_position = 0.0
        self._last_sent = time.monotonic()
        self._sending_since = 0.0  # monotonic start of the send in progress (0: none)
        self._stalled = False  # the ticker gave up on the send in progress
        self._waiter: asyncio.Future[None] | None = None  # the sender, while idle
        self._task: asyncio.Task[Any] | None = None  # the sender's task
        self._receiving: asyncio.Task[Any] | None = None  # the socket's, while it reads
        self._close: tuple[int, str] | None = None
        self._close_after: tuple[int, str] | None = None  # once the queue is sent
        self._resync = True  # replay what was missed first...
        self._reload = False
        self._adopt(session)
        self.queue.append(self.hello(session))  # the first frame, before any replay

    def _adopt(self, session: TripSession) -> None:
        self.tz = ZoneInfo(session.timezone)
        self.offset_s = session.clock_offset_s
        self.track = Track(session.plan)
        self.active = session.status == "active"

    def now(self, wall: float | None = None) -> dt.datetime:
        """The trip clock."""
        t = (time.time() if wall is None else wall) + self.offset_s
        return dt.datetime.fromtimestamp(t, self.tz)

    # -- fed by the hub -----------------------------------------------------------------------

    def push(self, frames: list[bytes]) -> None:
        """Queue stored messages (in seq order); a gap makes the sender re-read the outbox."""
        for raw in frames:
            seq = _seq_of(raw)
            if seq <= self.pushed:
                continue
            if seq > self.pushed + 1:
                self.resync()
                return
            self.queue.append(raw.decode())
            self.pushed = seq
        self._check_backlog()
        self._wake()

    def tick(self, wall: float) -> None:
        """Queue progress while the trip runs, a heartbeat when idle."""
        now = self.now(wall)
        if self.active and now.timestamp() <= self.track.arrival + 60:
            body = self.track.progress(now, self.position)
            self.queue.append(_dumps(message("progress", self.trip_id, now, **body)))
        elif time.monotonic() - self._last_sent >= HEARTBEAT_S:
            self.queue.append(_dumps(message("heartbeat", self.trip_id, now)))
        else:
            return
        self._check_backlog()
        self._wake()

    def resync(self) -> None:
        """Re-read the outbox after ``pushed`` (events may have been missed)."""
        self._resync = True
        self._wake()

    def refresh(self) -> None:
        """The stored session changed (its plan or clock): read it again."""
        self._reload = True
        self._wake()

    def finish(self, code: int, reason: str) -> None:
        """End the connection (code 0: the client left, nothing to send)."""
        if self._close is None:
            self._close = (code, reason)
        self._wake()

    def finish_after_sending(self, code: int, reason: str) -> None:
        """End the connection once what is queued (an ``error``, say) has been sent."""
        if self._close_after is None:
            self._close_after = (code, reason)
        self._wake()

    def check_send(self, now: float) -> None:
        """Give up on a send that has not completed for :data:`SEND_TIMEOUT_S` (``now``:
        monotonic): the client is closed with 4409."""
        since = self._sending_since
        if since and now - since > SEND_TIMEOUT_S and not self._stalled and self._task:
            self._stalled = True
            self.finish(CLOSE_TOO_SLOW, "client too slow: reconnect with after_seq")
            self._task.cancel()  # turned into TimeoutError by _send

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _check_backlog(self) -> None:
        if len(self.queue) - self._head > MAX_QUEUE:
            self.queue.clear()
            self._head = 0
            self.finish(CLOSE_TOO_SLOW, "client too slow: reconnect with after_seq")

    def _next(self) -> str:
        frame = self.queue[self._head]
        self._head += 1
        if self._head == len(self.queue):
            self.queue.clear()
            self._head = 0
        elif self._head >= 256:  # a client that stays a little behind: forget sent frames
            del self.queue[: self._head]
            self._head = 0
        return frame

    # -- the connection's life --------------------------------------------------------------

    def hello(self, session: TripSession) -> str:
        """The ``hello`` frame: the trip as it stands (the plan is not kept afterwards)."""
        now = session.now()
        return _dumps(
            message(
                "hello",
                session.trip_id,
                now,
                status="active" if session.status == "active" else "ended",
                last_seq=session.last_seq,
                itinerary=session.plan,
                suggestion=session.suggestion,
                progress=self.track.progress(now, None) if self.active else None,
            )
        )

    async def serve(self, frames: AsyncIterator[str | bytes]) -> None:
        """Hello, replay, then live until the client leaves or the trip ends.

        The socket's task reads the client; sending runs in a task of its own, shallow
        (the socket's task is deep in the ASGI stack, and the sender wakes for every frame).
        """
        receiving = asyncio.current_task()
        self.hub.attach(self)
        sender = self._task = asyncio.create_task(self._sending())
        sender.add_done_callback(lambda _: self._stop_receiving(receiving))
        self._receiving = receiving
        try:
            await self._receive(frames)
        except asyncio.CancelledError:
            if self._receiving is not None or receiving is None:  # not by the sender
                sender.cancel()
                raise
            receiving.uncancel()
        finally:
            self._receiving = None
        if not sender.done():  # the client left: the sender notices at once
            await sender

    def _stop_receiving(self, receiving: asyncio.Task[Any] | None) -> None:
        if self._receiving is not None and receiving is not None:
            self._receiving = None  # tells serve the cancellation is this one
            receiving.cancel()

    async def _sending(self) -> None:
        try:
            await self._sender()
        except (TimeoutError, TripNotFoundError):
            pass
        except StoreUnavailableError:
            self.finish(CLOSE_STORE_UNAVAILABLE, "store unavailable: reconnect with after_seq")
        except Exception:
            if self._close is None or self._close[0] != 0:  # not only the client leaving
                log.warning("trip connection %s failed", self.trip_id, exc_info=True)
            self.finish(1011, "server error")
        finally:
            self.hub.detach(self)
            self._task = None
            if self._close is not None and self._close[0] != 0:
                with contextlib.suppress(Exception):
                    await self.close_raw(*self._close)

    async def _send(self, frame: str) -> None:
        self._sending_since = started = time.monotonic()
        try:
            await self.send_raw(frame)
        except asyncio.CancelledError:
            if not self._stalled:
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            raise TimeoutError("client too slow") from None
        finally:
            self._sending_since = 0.0
        self._last_sent = started

    async def _sender(self) -> None:
        while self._close is None:
            if not (self._head < len(self.queue) or self._resync or self._reload):
                if self._close_after is not None:
                    self.finish(*self._close_after)
                    break
                self._waiter = asyncio.get_running_loop().create_future()
                try:
                    await self._waiter
                finally:
                    self._waiter = None
                continue
            if self._reload:
                self._reload = False
                self._adopt(await self.hub.book.get(self.trip_id))
            if self._resync:
                self._resync = False
                while self._head < len(self.queue) and self.queue[self._head].startswith(_HELLO):
                    await self._send(self._next())
                missed = await self.hub.book.messages_after(self.trip_id, self.pushed)
                if missed and int(missed[0]["seq"]) > self.pushed + 1:
                    self.finish(CLOSE_TOO_SLOW, "messages were dropped: reconnect to resync")
                    break
                self.push([_dumps(m).encode() for m in missed])
            while self._head < len(self.queue) and self._close is None:
                frame = self._next()
                await self._send(frame)
                if frame.startswith(_PLAN_UPDATED) or frame.startswith(_TRIP_ENDED):
                    self._after(json.loads(frame))

    def _after(self, msg: dict[str, Any]) -> None:
        if msg["type"] == "plan_updated":
            self.track = Track(msg["itinerary"])
        elif msg["type"] == "trip_ended":
            self.active = False
            self.finish(CLOSE_ENDED, "trip ended")

    async def _receive(self, frames: AsyncIterator[str | bytes]) -> None:
        try:
            async for frame in frames:
                await self.on_frame(frame)
        except Exception:
            log.debug("trip socket %s receive ended", self.trip_id, exc_info=True)
        self.finish(0, "client left")

    async def on_frame(self, frame: str | bytes) -> None:
        """Handle one client message; a bad one is answered with ``error``.

        A binary frame is answered with ``error`` and the connection is closed with
        :data:`CLOSE_UNSUPPORTED` (1003): the protocol is JSON text.
        """
        now = self.now()
        book = self.hub.book
        if isinstance(frame, bytes):
            self._reply(error(self.trip_id, now, "invalid_message", BINARY_REFUSED))
            self.finish_after_sending(CLOSE_UNSUPPORTED, "text frames only")
            return
        try:
            msg = parse_client_message(frame)
            kind = msg["type"]
            if kind == "ping":
                self._reply(message("heartbeat", self.trip_id, now))
            elif kind == "auth":
                raise ProtocolError("'auth' is only accepted as the first message")
            elif kind == "position":
                await self._position(float(msg["lat"]), float(msg["lon"]), now)
            elif kind == "accept":
                session, _ = await book.change(
                    self.trip_id, commands.accept(msg["suggestion_id"], now)
                )
                await book.count(self.city, "accepted")
                await book.count_incidents(self.city, session.suggestion_incidents, "accepted")
            elif kind == "decline":
                await book.change(
                    self.trip_id,
                    commands.close_suggestion(msg["suggestion_id"], "declined", now),
                    event=None,
                )
                await book.count(self.city, "declined")
            elif kind == "end":
                await book.change(self.trip_id, commands.end("ended", now), event=TRIP_ENDED)
                await book.count(self.city, "ended")
        except CorrespondanceError as exc:
            self._reply(error(self.trip_id, now, exc.code, exc.message))

    def _reply(self, msg: dict[str, Any]) -> None:
        self.queue.append(_dumps(msg))
        self._check_backlog()
        self._wake()

    async def _position(self, lat: float, lon: float, now: dt.datetime) -> None:
        wall = time.monotonic()
        if wall - self._last_position < POSITION_MIN_INTERVAL_S:
            raise ProtocolError(
                f"at most one position every {POSITION_MIN_INTERVAL_S:.0f} s", code="rate_limited"
            )
        self._last_position = wall
        self.position = (lat, lon)
        session = await self.hub.book.get(self.trip_id)
        await self.hub.book.set_position(session, lat, lon)
        self._reply(
            message("progress", self.trip_id, now, **self.track.progress(now, self.position))
        )


def _seq_of(raw: bytes) -> int:
    """The ``seq`` of a stored message (the last key :meth:`TripBook.change` writes)."""
    match = _SEQ.search(raw, max(0, len(raw) - 40))
    return int(match[1]) if match else int(json.loads(raw)["seq"])


_SEQ = re.compile(rb'"seq":\s*(\d+)\s*}\s*$')
