"""The trip socket's protocol state machine, without a socket, a store or a clock.

:class:`~realtime.trips.stream.TripStream` is fed frames, stored messages and times, and read
for the frames to send and the close code; hostile client input (binary frames, ``NaN``,
oversize frames, a bad ``after_seq``) is answered as ``docs/protocol.md`` says.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import jsonschema
import pytest

from realtime.trips.protocol import MAX_CLIENT_MESSAGE, load_schema, message
from realtime.trips.sessions import TripSession
from realtime.trips.stream import (
    CLOSE_ENDED,
    CLOSE_TOO_SLOW,
    CLOSE_UNSUPPORTED,
    HEARTBEAT_S,
    MAX_QUEUE,
    POSITION_MIN_INTERVAL_S,
    Command,
    TripStream,
    dumps,
)

TZ = dt.timezone(dt.timedelta(hours=-3))
DEPARTURE = dt.datetime(2019, 5, 15, 13, 0, tzinfo=TZ)
TRIP = "stream-test-trip-0001"
WALL = 1_700_000_000.0  # wall clock of the tests; the trip clock starts at DEPARTURE
MONO = 1000.0
Body = dict[str, Any]


def leg(start_min: int, end_min: int, mode: str, coords: list[list[float]]) -> Body:
    return {
        "departure": (DEPARTURE + dt.timedelta(minutes=start_min)).isoformat(),
        "arrival": (DEPARTURE + dt.timedelta(minutes=end_min)).isoformat(),
        "mode": mode,
        "geometry": {"type": "LineString", "coordinates": coords},
    }


PLAN: Body = {
    "departure": DEPARTURE.isoformat(),
    "arrival": (DEPARTURE + dt.timedelta(minutes=20)).isoformat(),
    "legs": [
        leg(0, 10, "walk", [[-51.23, -30.03], [-51.22, -30.03]]),
        leg(10, 20, "bicycle", [[-51.22, -30.03], [-51.21, -30.02]]),
    ],
}


def session(last_seq: int = 0, status: str = "active", plan: Body = PLAN) -> TripSession:
    return TripSession(
        trip_id=TRIP,
        city="porto-alegre",
        timezone="America/Sao_Paulo",
        token_hash="x",
        plan=plan,
        modes=["walk"],
        started_wall=WALL,
        clock_offset_s=DEPARTURE.timestamp() - WALL,
        status=status,
        last_seq=last_seq,
    )


def stored(seq: int, kind: str = "suggestion_closed") -> bytes:
    """A message as the outbox stores it (``seq`` last)."""
    body = message(kind, TRIP, DEPARTURE, suggestion_id="s1", outcome="expired")
    return dumps({**body, "seq": seq}).encode()


def drain(stream: TripStream) -> list[Body]:
    out = []
    while (frame := stream.next_frame()) is not None:
        out.append(json.loads(frame))
        stream.sent(frame)
    return out


def opened(after_seq: int = 0, last_seq: int = 0) -> TripStream:
    """A stream past its hello and (empty) replay."""
    stream = TripStream(session(last_seq), after_seq, MONO)
    assert stream.next_hello() is not None
    assert stream.take_resync()
    assert stream.replay([])
    return stream


def check(msg: Body) -> Body:
    """A server message valid against the published schema (hello aside: its plan here is
    a sketch)."""
    jsonschema.Draft7Validator(load_schema()).validate(msg)
    return msg


def test_hello_comes_first_then_the_replay_after_after_seq() -> None:
    stream = TripStream(session(last_seq=3), 1, MONO)
    assert stream.has_work
    hello = stream.next_hello()
    assert hello is not None
    assert json.loads(hello)["type"] == "hello"
    assert json.loads(hello)["last_seq"] == 3
    assert stream.next_hello() is None
    assert stream.take_resync()
    assert not stream.take_resync()  # asked once
    outbox = [json.loads(stored(s)) for s in (2, 3)]
    assert stream.replay(outbox)
    assert [m["seq"] for m in drain(stream)] == [2, 3]
    assert stream.pushed == 3
    assert not stream.has_work


@pytest.mark.parametrize(("after_seq", "pushed"), [(-5, 0), (0, 0), (2, 2), (10**15, 3)])
def test_after_seq_is_clamped_to_what_exists(after_seq: int, pushed: int) -> None:
    assert TripStream(session(last_seq=3), after_seq, MONO).pushed == pushed


def test_a_replay_that_lost_messages_closes_with_4409() -> None:
    stream = TripStream(session(last_seq=9), 2, MONO)
    stream.take_resync()
    assert not stream.replay([json.loads(stored(5))])  # 3 and 4 were trimmed
    assert stream.close == (CLOSE_TOO_SLOW, "messages were dropped: reconnect to resync")
    assert stream.next_frame() is None  # nothing more is sent once closing


def test_live_messages_skip_duplicates_and_a_gap_asks_for_a_resync() -> None:
    stream = opened()
    stream.push([stored(1), stored(1), stored(2)])
    assert [m["seq"] for m in drain(stream)] == [1, 2]
    stream.push([stored(4)])  # 3 is missing: no hole, re-read the outbox
    assert stream.next_frame() is None
    assert stream.take_resync()
    assert stream.replay([json.loads(stored(s)) for s in (3, 4)])
    assert [m["seq"] for m in drain(stream)] == [3, 4]


def test_a_binary_frame_gets_an_error_then_closes_with_1003() -> None:
    stream = opened()
    assert stream.receive(b"\x00\x01", WALL, MONO) is None
    (refusal,) = drain(stream)
    assert check(refusal)["code"] == "invalid_message"
    assert stream.close is None  # the error goes out first...
    assert stream.close_after == (CLOSE_UNSUPPORTED, "text frames only")


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ('{"type": "position", "lat": NaN, "lon": -51.2}', "invalid_message"),
        ('{"type": "position", "lat": Infinity, "lon": -51.2}', "invalid_message"),
        ('{"type": "position", "lat": 1e400, "lon": -51.2}', "invalid_message"),
        ('{"type": "ping", "pad": "' + "x" * MAX_CLIENT_MESSAGE + '"}', "invalid_message"),
        ("[1, 2]", "invalid_message"),
        ("not json", "invalid_message"),
        ('{"type": "accept"}', "invalid_message"),
        ('{"type": "auth", "token": "t"}', "invalid_message"),
        ('{"type": "teleport"}', "unknown_type"),
        ('{"type": "' + "é" * 200 + '"}', "unknown_type"),
    ],
    ids=[
        "nan",
        "infinity",
        "overflow",
        "oversize",
        "array",
        "not-json",
        "accept-no-id",
        "auth-later",
        "unknown",
        "long-type",
    ],
)
def test_a_hostile_frame_gets_an_error_and_the_socket_stays_open(frame: str, code: str) -> None:
    stream = opened()
    assert stream.receive(frame, WALL, MONO) is None
    (refusal,) = drain(stream)
    assert check(refusal)["type"] == "error"
    assert refusal["code"] == code
    assert stream.close is None
    assert stream.close_after is None
    assert stream.position is None


def test_ping_is_answered_and_commands_are_handed_to_the_driver() -> None:
    stream = opened()
    assert stream.receive('{"type": "ping"}', WALL, MONO) is None
    assert check(drain(stream)[0])["type"] == "heartbeat"
    now = stream.now(WALL)
    accept = stream.receive('{"type": "accept", "suggestion_id": "s1"}', WALL, MONO)
    assert accept == Command("accept", now, suggestion_id="s1")
    decline = stream.receive('{"type": "decline", "suggestion_id": "s2"}', WALL, MONO)
    assert decline == Command("decline", now, suggestion_id="s2")
    assert stream.receive('{"type": "end"}', WALL, MONO) == Command("end", now)
    assert drain(stream) == []


def test_positions_are_rate_limited_and_progress_follows_them() -> None:
    stream = opened()
    frame = '{"type": "position", "lat": -30.025, "lon": -51.215}'
    command = stream.receive(frame, WALL, MONO)
    assert command is not None
    assert (command.lat, command.lon) == (-30.025, -51.215)
    stream.position_stored(command.now)
    progress = check(drain(stream)[0])
    assert progress["source"] == "position"
    assert progress["position"] == {"lat": -30.025, "lon": -51.215}
    assert stream.receive(frame, WALL, MONO + POSITION_MIN_INTERVAL_S / 2) is None
    assert check(drain(stream)[0])["code"] == "rate_limited"
    assert stream.receive(frame, WALL, MONO + POSITION_MIN_INTERVAL_S + 0.1) is not None


def test_progress_while_the_trip_runs_heartbeats_after_silence() -> None:
    stream = opened()
    stream.tick(WALL + 300, MONO)  # 5 minutes in: the first leg
    progress = check(drain(stream)[0])
    assert (progress["type"], progress["leg_index"], progress["source"]) == (
        "progress",
        0,
        "schedule",
    )
    assert progress["remaining_s"] == 15 * 60
    after = WALL + 21 * 60 + 61  # past the arrival: heartbeats only, after 15 s of silence
    stream.begin_send(MONO)
    stream.end_send(True)
    stream.tick(after, MONO + HEARTBEAT_S - 1)
    assert drain(stream) == []
    stream.tick(after, MONO + HEARTBEAT_S)
    assert check(drain(stream)[0])["type"] == "heartbeat"


def test_a_client_that_lets_its_queue_overflow_is_closed_with_4409() -> None:
    stream = opened()
    for _ in range(MAX_QUEUE):
        stream.receive('{"type": "ping"}', WALL, MONO)
    assert stream.close is None
    stream.receive('{"type": "ping"}', WALL, MONO)
    assert stream.close == (CLOSE_TOO_SLOW, "client too slow: reconnect with after_seq")
    assert not stream.queue


def test_a_send_stuck_past_the_timeout_is_given_up_once() -> None:
    stream = opened()
    assert not stream.send_overdue(MONO + 100, 10.0)  # nothing is being sent
    stream.begin_send(MONO)
    assert not stream.send_overdue(MONO + 10.0, 10.0)
    assert stream.send_overdue(MONO + 10.5, 10.0)
    assert stream.stalled
    assert stream.close == (CLOSE_TOO_SLOW, "client too slow: reconnect with after_seq")
    assert not stream.send_overdue(MONO + 20.0, 10.0)  # once
    stream.end_send(False)
    assert stream.last_sent == MONO  # the stuck frame never counted as sent


def test_a_sent_plan_update_is_followed_and_a_sent_trip_end_closes_with_1000() -> None:
    stream = opened()
    new_plan = {**PLAN, "legs": [leg(0, 40, "walk", [[-51.23, -30.03], [-51.2, -30.0]])]}
    update = message("plan_updated", TRIP, DEPARTURE, suggestion_id="s1", itinerary=new_plan)
    stream.push([dumps({**update, "seq": 1}).encode()])
    drain(stream)
    assert stream.track.arrival == (DEPARTURE + dt.timedelta(minutes=40)).timestamp()
    ended = message("trip_ended", TRIP, DEPARTURE, reason="ended")
    stream.push([dumps({**ended, "seq": 2}).encode(), stored(3)])
    assert [m["type"] for m in drain(stream)] == ["trip_ended"]  # nothing after it
    assert stream.close == (CLOSE_ENDED, "trip ended")
    assert not stream.active


def test_a_session_read_again_is_adopted() -> None:
    stream = opened()
    stream.request_reload()
    assert stream.has_work
    assert stream.take_reload()
    assert not stream.take_reload()
    stream.adopt(session(status="ended"))
    stream.tick(WALL + 60, MONO)  # an ended trip gets no progress
    assert drain(stream) == []
