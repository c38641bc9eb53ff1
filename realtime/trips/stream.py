"""The protocol state of one trip socket, with no I/O: a Sans-I/O core under the hub.

A :class:`TripStream` is what one websocket following one trip *is*, as plain synchronous
state (the python-websockets design: a protocol object fed inputs, read for outputs, driven
by a thin asyncio layer, :mod:`realtime.trips.hub`). It never awaits, reads a clock or
touches the store: every input carries the times it needs, and every output is a value.

Inputs
    :meth:`receive` (a client frame), :meth:`push` (stored messages announced live),
    :meth:`replay` (the outbox read after ``pushed`` on resume or after a gap),
    :meth:`adopt` (the stored session, re-read), :meth:`tick` (the ticker's clock),
    :meth:`refused` / :meth:`position_stored` (how a client command went in the store),
    :meth:`begin_send` / :meth:`end_send` / :meth:`send_overdue` (the socket's writes).
Outputs
    :meth:`next_frame` and :meth:`next_hello` (text frames to send, in order), the
    :class:`Command` :meth:`receive` returns (a store change for the driver to make),
    :attr:`close` / :attr:`close_after` (the close code and reason, ``docs/protocol.md``),
    :meth:`take_resync` / :meth:`take_reload` (the outbox or session must be read).

Sequence numbers: ``pushed`` is the highest ``seq`` queued. A stored message at or below it
is a duplicate (skipped); one above ``pushed + 1`` is a gap, answered by a resync (re-read
the outbox) rather than a hole in what the client sees. A replay that starts after
``pushed + 1`` means the outbox dropped what the client missed: closed with 4409.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from correspondance.errors import CorrespondanceError
from realtime.trips.protocol import ProtocolError, error, message, parse_client_message
from realtime.trips.sessions import OUTBOX_KEEP, TripSession
from realtime.trips.track import Track

HEARTBEAT_S = 15.0  # a heartbeat after this long without a frame sent
MAX_QUEUE = OUTBOX_KEEP  # frames queued for one client before it is closed as too slow
POSITION_MIN_INTERVAL_S = 1.0
PROGRESS_AFTER_ARRIVAL_S = 60.0  # progress goes on this long past the plan's arrival
CLOSE_ENDED = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_UNSUPPORTED = 1003  # RFC 6455: a binary frame (the protocol is JSON text)
CLOSE_SERVER_ERROR = 1011
CLOSE_GONE = 4404
CLOSE_TOO_SLOW = 4409
CLOSE_STORE_UNAVAILABLE = 4503
CLIENT_LEFT = 0  # not a close code: the client went, nothing is sent
BINARY_REFUSED = "binary frames are not part of the protocol: send JSON text frames"
TOO_SLOW = "client too slow: reconnect with after_seq"
_HELLO = '{"v":1,"type":"hello"'
_PLAN_UPDATED = '{"v":1,"type":"plan_updated"'
_TRIP_ENDED = '{"v":1,"type":"trip_ended"'
_SEQ = re.compile(rb'"seq":\s*(\d+)\s*}\s*$')


def dumps(msg: dict[str, Any]) -> str:
    """A server message as its text frame (compact JSON, as the outbox stores it)."""
    return json.dumps(msg, separators=(",", ":"))


def seq_of(raw: bytes) -> int:
    """The ``seq`` of a stored message (the last key :meth:`TripBook.change` writes)."""
    match = _SEQ.search(raw, max(0, len(raw) - 40))
    return int(match[1]) if match else int(json.loads(raw)["seq"])


@dataclass(frozen=True, slots=True)
class Command:
    """A client command the driver carries out in the store (``docs/protocol.md``).

    ``kind`` is ``position``, ``accept``, ``decline`` or ``end``; ``now`` is the trip
    clock when the frame arrived (the time of any reply).
    """

    kind: str
    now: dt.datetime
    suggestion_id: str = ""
    lat: float = 0.0
    lon: float = 0.0


class TripStream:
    """One trip socket's protocol state: what to send next, and when to close."""

    __slots__ = (
        "_head",
        "_last_position",
        "_reload",
        "_resync",
        "_sending_since",
        "active",
        "city",
        "close",
        "close_after",
        "last_sent",
        "offset_s",
        "position",
        "pushed",
        "queue",
        "stalled",
        "track",
        "trip_id",
        "tz",
    )

    def __init__(self, session: TripSession, after_seq: int, mono: float) -> None:
        """Open on ``session``, resuming after ``after_seq`` (clamped to what exists);
        ``mono`` is the monotonic clock now. The first frame is ``hello``, then the replay."""
        self.trip_id = session.trip_id
        self.city = session.city
        self.pushed = max(0, min(after_seq, session.last_seq))  # highest seq queued
        self.queue: list[str] = []  # frames to send from queue[_head]
        self._head = 0
        self.position: tuple[float, float] | None = None
        self._last_position = float("-inf")
        self.last_sent = mono  # monotonic time the last frame was sent
        self._sending_since = 0.0  # monotonic start of the send in progress (0: none)
        self.stalled = False  # the send in progress was given up on
        self.close: tuple[int, str] | None = None  # (code, reason): close now
        self.close_after: tuple[int, str] | None = None  # ...once the queue is sent
        self._resync = True  # replay what was missed first...
        self._reload = False
        self.adopt(session)
        self.queue.append(self.hello(session))  # the first frame, before any replay

    def adopt(self, session: TripSession) -> None:
        """Take the stored session's clock, time zone, plan shape and status."""
        self.tz = ZoneInfo(session.timezone)
        self.offset_s = session.clock_offset_s
        self.track = Track(session.plan)
        self.active = session.status == "active"

    def now(self, wall: float) -> dt.datetime:
        """The trip clock at wall time ``wall``."""
        return dt.datetime.fromtimestamp(wall + self.offset_s, self.tz)

    def hello(self, session: TripSession) -> str:
        """The ``hello`` frame: the trip as it stands (the plan is not kept afterwards)."""
        now = session.now()
        return dumps(
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

    # -- inputs -------------------------------------------------------------------------------

    def push(self, frames: list[bytes]) -> None:
        """Queue stored messages (in seq order); a gap asks for a resync instead."""
        for raw in frames:
            seq = seq_of(raw)
            if seq <= self.pushed:
                continue
            if seq > self.pushed + 1:
                self._resync = True
                return
            self.queue.append(raw.decode())
            self.pushed = seq
        self._check_backlog()

    def replay(self, missed: list[dict[str, Any]]) -> bool:
        """Queue the outbox's messages after ``pushed``; False (and closed with 4409) when
        the outbox no longer holds the first of them."""
        if missed and int(missed[0]["seq"]) > self.pushed + 1:
            self.finish(CLOSE_TOO_SLOW, "messages were dropped: reconnect to resync")
            return False
        self.push([dumps(m).encode() for m in missed])
        return True

    def tick(self, wall: float, mono: float) -> None:
        """Queue progress while the trip runs, a heartbeat after :data:`HEARTBEAT_S` of
        silence; nothing otherwise."""
        now = self.now(wall)
        if self.active and now.timestamp() <= self.track.arrival + PROGRESS_AFTER_ARRIVAL_S:
            body = self.track.progress(now, self.position)
            self.queue.append(dumps(message("progress", self.trip_id, now, **body)))
        elif mono - self.last_sent >= HEARTBEAT_S:
            self.queue.append(dumps(message("heartbeat", self.trip_id, now)))
        else:
            return
        self._check_backlog()

    def receive(self, frame: str | bytes, wall: float, mono: float) -> Command | None:
        """One client frame: answered here (``ping``, a refused message: an ``error``) or
        returned as the :class:`Command` to carry out.

        A binary frame is answered with ``error`` and closes the socket with
        :data:`CLOSE_UNSUPPORTED` (1003) once that is sent: the protocol is JSON text.
        """
        now = self.now(wall)
        if isinstance(frame, bytes):
            self._reply(error(self.trip_id, now, "invalid_message", BINARY_REFUSED))
            self.finish_after_sending(CLOSE_UNSUPPORTED, "text frames only")
            return None
        try:
            msg = parse_client_message(frame)
            kind = msg["type"]
            if kind == "ping":
                self._reply(message("heartbeat", self.trip_id, now))
            elif kind == "auth":
                raise ProtocolError("'auth' is only accepted as the first message")
            elif kind == "position":
                if mono - self._last_position < POSITION_MIN_INTERVAL_S:
                    raise ProtocolError(
                        f"at most one position every {POSITION_MIN_INTERVAL_S:.0f} s",
                        code="rate_limited",
                    )
                self._last_position = mono
                self.position = (float(msg["lat"]), float(msg["lon"]))
                return Command("position", now, lat=self.position[0], lon=self.position[1])
            elif kind in ("accept", "decline"):
                return Command(kind, now, suggestion_id=str(msg["suggestion_id"]))
            elif kind == "end":
                return Command("end", now)
        except CorrespondanceError as exc:
            self.refused(now, exc)
        return None

    def refused(self, now: dt.datetime, exc: CorrespondanceError) -> None:
        """A client message or command was refused: an ``error``; the socket stays open."""
        self._reply(error(self.trip_id, now, exc.code, exc.message))

    def position_stored(self, now: dt.datetime) -> None:
        """The reported position was kept: progress from it at once."""
        body = self.track.progress(now, self.position)
        self._reply(message("progress", self.trip_id, now, **body))

    def request_resync(self) -> None:
        """Events may have been missed: re-read the outbox after ``pushed``."""
        self._resync = True

    def request_reload(self) -> None:
        """The stored session changed (its plan or clock): read it again."""
        self._reload = True

    def finish(self, code: int, reason: str) -> None:
        """Close now (code :data:`CLIENT_LEFT`: the client left, nothing to send)."""
        if self.close is None:
            self.close = (code, reason)

    def finish_after_sending(self, code: int, reason: str) -> None:
        """Close once what is queued (an ``error``, say) has been sent."""
        if self.close_after is None:
            self.close_after = (code, reason)

    # -- the socket's writes ------------------------------------------------------------------

    def begin_send(self, mono: float) -> None:
        """A frame's write started at monotonic ``mono``."""
        self._sending_since = mono

    def end_send(self, sent: bool) -> None:
        """The write in progress ended (``sent``: it completed)."""
        if sent:
            self.last_sent = self._sending_since
        self._sending_since = 0.0

    def send_overdue(self, mono: float, timeout_s: float) -> bool:
        """Whether to give up on the write in progress (not done within ``timeout_s``):
        once, and the socket closes with 4409."""
        since = self._sending_since
        if since and mono - since > timeout_s and not self.stalled:
            self.stalled = True
            self.finish(CLOSE_TOO_SLOW, TOO_SLOW)
            return True
        return False

    # -- outputs ------------------------------------------------------------------------------

    @property
    def has_work(self) -> bool:
        """Frames are queued, or the outbox or session must be read."""
        return self._head < len(self.queue) or self._resync or self._reload

    def take_resync(self) -> bool:
        """Whether the outbox must be read now (asked once)."""
        wanted, self._resync = self._resync, False
        return wanted

    def take_reload(self) -> bool:
        """Whether the session must be read now (asked once)."""
        wanted, self._reload = self._reload, False
        return wanted

    def next_hello(self) -> str | None:
        """The ``hello`` frame still at the head of the queue, sent before any replay."""
        if self._head < len(self.queue) and self.queue[self._head].startswith(_HELLO):
            return self._next()
        return None

    def next_frame(self) -> str | None:
        """The next frame to send; None when none is queued or the socket is closing."""
        if self._head < len(self.queue) and self.close is None:
            return self._next()
        return None

    def sent(self, frame: str) -> None:
        """``frame`` went out: a new plan is followed from now, an ended trip closes (1000)."""
        if frame.startswith(_PLAN_UPDATED):
            self.track = Track(json.loads(frame)["itinerary"])
        elif frame.startswith(_TRIP_ENDED):
            self.active = False
            self.finish(CLOSE_ENDED, "trip ended")

    # -- the queue ----------------------------------------------------------------------------

    def _reply(self, msg: dict[str, Any]) -> None:
        self.queue.append(dumps(msg))
        self._check_backlog()

    def _check_backlog(self) -> None:
        if len(self.queue) - self._head > MAX_QUEUE:
            self.queue.clear()
            self._head = 0
            self.finish(CLOSE_TOO_SLOW, TOO_SLOW)

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
