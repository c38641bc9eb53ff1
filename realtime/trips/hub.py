"""The websocket side of live trips, in every API worker: one connection per traveller.

A :class:`TripHub` per process follows ``trip.messages`` events on the shared stream. For
the trips it holds sockets for, it reads the new messages of *all* of them from their
outboxes in one store round trip (:meth:`TripBook.fetch_many`) and hands each connection
its frames, already serialised as stored. A connection replays what it missed on connect
through the same outboxes, so live delivery and resume cannot disagree; a gap in what it
is handed (an event raced its replay) makes it re-read the outbox itself.

What a connection sends and when it closes is decided by its
:class:`~realtime.trips.stream.TripStream`, a protocol state machine with no I/O (resume
after ``after_seq``, seq order, the queue, heartbeats, slow clients, close codes); a
:class:`TripConnection` is its asyncio driver: it feeds the stream client frames, stored
messages and clock ticks, writes the frames it hands out, and makes the store changes and
reads it asks for.

Every connection has its own sender (the socket's task) and queue: a slow client only
delays itself. One whose queue grows past :data:`~realtime.trips.stream.MAX_QUEUE` frames,
or that does not take a frame within :data:`SEND_TIMEOUT_S`, is closed with 4409 and
resumes later with ``after_seq``. The send timeout is watched by the hub's ticker (a send
that does not complete at once is rare), not by a timer per frame: fan-out to thousands of
sockets stays a plain write per frame.

Progress (where the schedule or the last reported position puts the traveller) and
heartbeats come from one ticker per hub, computed per connection without the store. A
connection keeps only what that needs (clock, a float32 shape of the plan), not the plan,
and no more asyncio objects than it must (a future while it waits, a list while it has
frames queued): one process holds tens of thousands.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from correspondance.errors import CorrespondanceError, TripNotFoundError
from correspondance.store import StateStore, StoreUnavailableError
from realtime.loops import LoopHealth, cancel_and_wait
from realtime.trips import commands
from realtime.trips.sessions import (
    TRIP_ENDED,
    TRIP_MESSAGES,
    TRIP_UPDATED,
    TripBook,
    TripSession,
)
from realtime.trips.stream import (
    BINARY_REFUSED,
    CLIENT_LEFT,
    CLOSE_GOING_AWAY,
    CLOSE_GONE,
    CLOSE_SERVER_ERROR,
    CLOSE_STORE_UNAVAILABLE,
    CLOSE_UNSUPPORTED,
    Command,
    TripStream,
)

__all__ = [  # the close codes and refusal text the websocket route uses too
    "BINARY_REFUSED",
    "CLOSE_STORE_UNAVAILABLE",
    "CLOSE_UNSUPPORTED",
    "TripConnection",
    "TripHub",
]

log = logging.getLogger("correspondance.trips")

PROGRESS_S = 5.0
SEND_TIMEOUT_S = 10.0  # a client that does not take a frame this long is closed (4409)
TICK_S = 1.0  # how often the ticker looks for stuck sends
TICK_BATCH = 500  # connections ticked between two yields to the event loop

Send = Callable[[str], Awaitable[None]]
Close = Callable[[int, str], Awaitable[None]]


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
                conn.finish(CLOSE_GOING_AWAY, "server going away")

    def health(self) -> dict[str, Any]:
        """The hub's loops for a health check: running, errors caught, the last one.

        ``{"connections", "ticks", "follower": {...}, "ticker": {...}}``; a loop that is
        not running (never started or died) is unhealthy.
        """
        alive = [bool(self._tasks) and not t.done() for t in self._tasks] or [False, False]
        return {
            "connections": sum(len(c) for c in self.connections.values()),
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


class TripConnection:
    """One websocket following one trip: the asyncio driver of its :class:`TripStream`.

    The stream decides what is sent and when the socket closes; this carries it out: the
    sender task writes its frames and reads the outbox or session when it asks, the socket's
    task feeds it client frames and makes the store changes they command.
    """

    __slots__ = ("_receiving", "_task", "_waiter", "close_raw", "hub", "send_raw", "stream")

    def __init__(
        self, hub: TripHub, session: TripSession, send: Send, close: Close, after_seq: int
    ) -> None:
        self.hub = hub
        self.stream = TripStream(session, after_seq, time.monotonic())
        self.send_raw = send
        self.close_raw = close
        self._waiter: asyncio.Future[None] | None = None  # the sender, while idle
        self._task: asyncio.Task[Any] | None = None  # the sender's task
        self._receiving: asyncio.Task[Any] | None = None  # the socket's, while it reads

    @property
    def trip_id(self) -> str:
        """The trip followed."""
        return self.stream.trip_id

    @property
    def pushed(self) -> int:
        """The highest seq queued."""
        return self.stream.pushed

    @property
    def offset_s(self) -> float:
        """The trip clock's offset from the wall clock."""
        return self.stream.offset_s

    @offset_s.setter
    def offset_s(self, value: float) -> None:
        self.stream.offset_s = value

    # -- fed by the hub -----------------------------------------------------------------------

    def push(self, frames: list[bytes]) -> None:
        """Queue stored messages (in seq order); a gap makes the sender re-read the outbox."""
        self.stream.push(frames)
        self._wake()

    def tick(self, wall: float) -> None:
        """Queue progress while the trip runs, a heartbeat when idle."""
        self.stream.tick(wall, time.monotonic())
        self._wake()

    def resync(self) -> None:
        """Re-read the outbox after ``pushed`` (events may have been missed)."""
        self.stream.request_resync()
        self._wake()

    def refresh(self) -> None:
        """The stored session changed (its plan or clock): read it again."""
        self.stream.request_reload()
        self._wake()

    def finish(self, code: int, reason: str) -> None:
        """End the connection (code 0: the client left, nothing to send)."""
        self.stream.finish(code, reason)
        self._wake()

    def check_send(self, now: float) -> None:
        """Give up on a send that has not completed for :data:`SEND_TIMEOUT_S` (``now``:
        monotonic): the client is closed with 4409."""
        if self._task is not None and self.stream.send_overdue(now, SEND_TIMEOUT_S):
            self._wake()
            self._task.cancel()  # turned into TimeoutError by _send

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- the connection's life --------------------------------------------------------------

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
        stream = self.stream
        try:
            await self._sender()
        except (TimeoutError, TripNotFoundError):
            pass
        except StoreUnavailableError:
            stream.finish(CLOSE_STORE_UNAVAILABLE, "store unavailable: reconnect with after_seq")
        except Exception:
            if stream.close is None or stream.close[0] != CLIENT_LEFT:  # not only the client
                log.warning("trip connection %s failed", self.trip_id, exc_info=True)
            stream.finish(CLOSE_SERVER_ERROR, "server error")
        finally:
            self.hub.detach(self)
            self._task = None
            if stream.close is not None and stream.close[0] != CLIENT_LEFT:
                with contextlib.suppress(Exception):
                    await self.close_raw(*stream.close)

    async def _send(self, frame: str) -> None:
        self.stream.begin_send(time.monotonic())
        sent = False
        try:
            await self.send_raw(frame)
            sent = True
        except asyncio.CancelledError:
            if not self.stream.stalled:
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            raise TimeoutError("client too slow") from None
        finally:
            self.stream.end_send(sent)

    async def _sender(self) -> None:
        stream, book = self.stream, self.hub.book
        while stream.close is None:
            if not stream.has_work:
                if stream.close_after is not None:
                    stream.finish(*stream.close_after)
                    break
                self._waiter = asyncio.get_running_loop().create_future()
                try:
                    await self._waiter
                finally:
                    self._waiter = None
                continue
            if stream.take_reload():
                stream.adopt(await book.get(self.trip_id))
            if stream.take_resync():
                while (hello := stream.next_hello()) is not None:
                    await self._send(hello)
                if not stream.replay(await book.messages_after(self.trip_id, stream.pushed)):
                    break
            while (frame := stream.next_frame()) is not None:
                await self._send(frame)
                stream.sent(frame)

    async def _receive(self, frames: AsyncIterator[str | bytes]) -> None:
        try:
            async for frame in frames:
                await self.on_frame(frame)
        except Exception:
            log.debug("trip socket %s receive ended", self.trip_id, exc_info=True)
        self.finish(CLIENT_LEFT, "client left")

    async def on_frame(self, frame: str | bytes) -> None:
        """Handle one client message: the stream answers it or names the store change to
        make; a refused change is answered with ``error``."""
        command = self.stream.receive(frame, time.time(), time.monotonic())
        if command is not None:
            try:
                await self._carry_out(command)
            except CorrespondanceError as exc:
                self.stream.refused(command.now, exc)
        self._wake()

    async def _carry_out(self, command: Command) -> None:
        book, trip_id, city, now = self.hub.book, self.trip_id, self.stream.city, command.now
        if command.kind == "position":
            session = await book.get(trip_id)
            await book.set_position(session, command.lat, command.lon)
            self.stream.position_stored(now)
        elif command.kind == "accept":
            session, _ = await book.change(trip_id, commands.accept(command.suggestion_id, now))
            await book.count(city, "accepted")
            await book.count_incidents(city, session.suggestion_incidents, "accepted")
        elif command.kind == "decline":
            await book.change(
                trip_id,
                commands.close_suggestion(command.suggestion_id, "declined", now),
                event=None,
            )
            await book.count(city, "declined")
        elif command.kind == "end":
            await book.change(trip_id, commands.end("ended", now), event=TRIP_ENDED)
            await book.count(city, "ended")
