"""Live trips over real HTTP and real websockets.

One embedded server (in a thread of this process: its store and module globals are at
hand) runs live feeds, the trip engine and the scripted demo. Two separate server
processes sharing Redis (a writer with the engine, an API-only one) check that a client of
either gets everything. Every server message is validated against
``realtime/trips/protocol.schema.json`` by :class:`trip_helpers.TripSocket`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import jsonschema
import pytest
from report_helpers import delete_prefix, operator_token
from trip_helpers import (
    QUIET,
    InThread,
    TripSocket,
    bearer,
    plan,
    serve_in_thread,
    serve_process,
    start_trip,
    trip_settings,
    trip_socket,
    with_mode,
    ws_url,
)
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedOK
from websockets.frames import Close

import api.routes.trips as trip_routes
import realtime.trips.hub as hub_module
from correspondance.settings import Settings
from routing.base import CityBase

pytestmark = pytest.mark.anyio
Body = dict[str, Any]
TRIP_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
UNKNOWN_TRIP = "A" * 22


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Api:
    """The embedded server and the itineraries planned on it before any jam."""

    def __init__(self, server: InThread, carshare: Body, transit: Body) -> None:
        self.server = server
        self.url = server.url
        self.carshare = carshare
        self.transit = transit

    async def trip_keys(self) -> set[str]:
        async def scan(state: Any) -> list[str]:
            keys: list[str] = await state.store.scan_keys("trip*")
            return keys

        return set(await self.server.call(scan))


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, poa_base: CityBase) -> Iterator[Api]:
    settings = trip_settings(tmp_path_factory.mktemp("trips"), demo=True)
    with serve_in_thread(settings, poa_base) as server:

        async def itineraries() -> tuple[Body, Body]:
            async with httpx.AsyncClient(timeout=30) as http:
                car = with_mode(await plan(http, server.url), "carshare")
                buses = await plan(http, server.url, modes="walk,transit")
                bus = next(it for it in buses if any(leg["trip_id"] for leg in it["legs"]))
                return car, bus

        car, bus = asyncio.run(itineraries())
        yield Api(server, car, bus)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


def open_suggestion_body(message: Body) -> Body:
    return {k: v for k, v in message.items() if k not in ("v", "type", "trip_id", "sent_at", "seq")}


# -- the demo, accept, resume -----------------------------------------------------------------


async def test_demo_suggests_a_switch_and_a_resumed_client_misses_nothing(
    api: Api, http: httpx.AsyncClient
) -> None:
    demo = (await http.get(f"{api.url}/api/v1/demo")).json()
    assert demo["simulated"] is True
    itineraries = await plan(
        http,
        api.url,
        modes=",".join(demo["modes"]),
        origin=f"{demo['from']['lat']},{demo['from']['lon']}",
        destination=f"{demo['to']['lat']},{demo['to']['lon']}",
        depart=demo["depart"],
    )
    itinerary = with_mode(itineraries, "carshare")
    trip_id, token = await start_trip(http, api.url, itinerary, modes=demo["modes"])

    async with trip_socket(api.url, trip_id, token) as first:
        hello = await first.recv()
        assert hello["type"] == "hello"
        assert hello["last_seq"] == 0
        jam = await http.post(f"{api.url}/api/v1/trips/{trip_id}/demo", headers=bearer(token))
        assert jam.status_code == 202, jam.text
        assert jam.json()["simulated"] is True
        assert jam.json()["edges"] > 0
        started = time.monotonic()
        suggestion = await first.recv_type("switch_suggestion", timeout=15)
        assert time.monotonic() - started < 10
    assert suggestion["seq"] == 1
    assert suggestion["reason"]["code"] == "congestion"
    text = suggestion["reason"]["message"]
    switch_at = suggestion["switch_at"]
    new_legs = suggestion["itinerary"]["legs"]
    ride = next((leg for leg in new_legs if leg["trip_id"]), None)
    if ride is not None:  # the scripted closure: leave the car at X, take bus Y
        assert switch_at["leg_index"] > 0
        assert f"leave the car at {switch_at['name']}" in text
        assert f"at {ride['from']['name']}" in text
        assert (ride["route_short_name"] or ride["route_long_name"]) in text
        # ...and as codes the app words in its language
        line = ride["route_short_name"] or ride["route_long_name"]
        assert suggestion["reason"]["leave"] == {
            "code": "leave_vehicle",
            "params": {"vehicle": "car", "stop": switch_at["name"]},
        }
        assert suggestion["reason"]["action"] == {
            "code": "board",
            "params": {"mode": ride["mode"], "line": line, "stop": ride["from"]["name"]},
        }
        assert switch_at["here"] is False
        assert new_legs[switch_at["leg_index"]]["from"]["name"] == switch_at["name"]
    assert new_legs[0]["mode"] == "carshare"  # the traveller is at the wheel
    assert suggestion["plan_broken"] is (suggestion["current_arrival"] is None)

    # a second client (auth message, resuming at 1) sees the open suggestion and accepts it
    async with trip_socket(api.url, trip_id) as second:
        await second.send({"type": "auth", "token": token, "after_seq": 1})
        hello = await second.recv()
        assert hello["type"] == "hello"
        assert hello["last_seq"] == 1
        assert hello["suggestion"] == open_suggestion_body(suggestion)
        await second.send({"type": "accept", "suggestion_id": suggestion["suggestion_id"]})
        updated = await second.recv_type("plan_updated")
        assert updated["seq"] == 2
        assert updated["suggestion_id"] == suggestion["suggestion_id"]
        assert updated["itinerary"] == suggestion["itinerary"]
        await second.send({"type": "accept", "suggestion_id": suggestion["suggestion_id"]})
        refused = await second.recv_type("error")
        assert refused["code"] == "suggestion_closed"
        await second.send({"type": "end"})
        ended = await second.recv_type("trip_ended")
        assert ended["seq"] == 3
        assert ended["reason"] == "ended"
        assert await second.closed() == 1000

    # the first client comes back after seq 1: hello, then exactly 2 and 3, in order
    async with trip_socket(api.url, trip_id, token, after_seq=1) as back:
        hello = await back.recv()
        assert hello["type"] == "hello"
        assert hello["status"] == "ended"
        assert hello["last_seq"] == 3
        assert hello["itinerary"] == suggestion["itinerary"]
        assert hello["progress"] is None
        assert await back.closed() == 1000, back.received
        replayed = [m for m in back.received[1:] if m["type"] not in QUIET]
    export = (await http.get(f"{api.url}/api/v1/trips/{trip_id}", headers=bearer(token))).json()
    assert replayed == export["messages"][1:]
    assert [(m["seq"], m["type"]) for m in replayed] == [(2, "plan_updated"), (3, "trip_ended")]
    assert export["trip"]["history"][0]["outcome"] == "accepted"
    assert export["trip"]["status"] == "ended"


async def test_five_demo_runs_each_suggest_and_never_change_other_plans(
    api: Api, http: httpx.AsyncClient
) -> None:
    """The demo's jam closes the road for the demo trip alone: run after run it suggests a
    switch, and the same query planned by anyone else gives the same plans as before."""
    demo = (await http.get(f"{api.url}/api/v1/demo")).json()
    query = {
        "modes": ",".join(demo["modes"]),
        "origin": f"{demo['from']['lat']},{demo['from']['lon']}",
        "destination": f"{demo['to']['lat']},{demo['to']['lon']}",
        "depart": demo["depart"],
    }
    before = await plan(http, api.url, **query)
    reports_before = await api.server.call(_report_keys)
    for run in range(5):
        itinerary = with_mode(await plan(http, api.url, **query), "carshare")
        trip_id, token = await start_trip(http, api.url, itinerary, modes=demo["modes"])
        async with trip_socket(api.url, trip_id, token) as ws:
            assert (await ws.recv())["type"] == "hello"
            jam = await http.post(f"{api.url}/api/v1/trips/{trip_id}/demo", headers=bearer(token))
            assert jam.status_code == 202, jam.text
            assert jam.json()["edges"] > 0
            suggestion = await ws.recv_type("switch_suggestion", timeout=20)
            assert suggestion["reason"]["code"] == "congestion", run
            assert suggestion["itinerary"]["legs"][0]["mode"] == "carshare", run
            await ws.send({"type": "end"})
            assert (await ws.recv_type("trip_ended"))["reason"] == "ended"
        export = (await http.get(f"{api.url}/api/v1/trips/{trip_id}", headers=bearer(token))).json()
        assert export["trip"]["private_closures"] == []  # cleared when the trip ended
    # nothing was reported or fused for the city: every plan is as it was
    assert await api.server.call(_report_keys) == reports_before
    assert await plan(http, api.url, **query) == before


async def _report_keys(state: Any) -> list[str]:
    keys: list[str] = await state.store.scan_keys("cs:*")
    return sorted(keys)


# -- starting, exporting ------------------------------------------------------------------------


async def test_start_a_trip_then_follow_and_export_it(api: Api, http: httpx.AsyncClient) -> None:
    trip_id, token = await start_trip(http, api.url, api.carshare)
    assert TRIP_ID.match(trip_id)
    assert len(token) >= 40
    async with trip_socket(api.url, trip_id, token) as ws:
        hello = await ws.recv()
    assert hello["type"] == "hello"
    assert hello["status"] == "active"
    assert hello["last_seq"] == 0
    assert hello["suggestion"] is None
    assert hello["itinerary"] == api.carshare
    assert hello["progress"]["source"] == "schedule"
    assert hello["progress"]["leg_index"] == 0
    assert hello["sent_at"] == api.carshare["departure"]  # the trip clock starts there

    response = await http.get(f"{api.url}/api/v1/trips/{trip_id}", headers=bearer(token))
    assert response.status_code == 200
    export = response.json()
    assert export["trip"]["trip_id"] == trip_id
    assert export["trip"]["plan"] == api.carshare
    assert export["trip"]["modes"] == ["carshare", "transit", "walk"]
    assert export["position"] is None
    assert export["messages"] == []
    assert "token_hash" not in export["trip"]
    assert token not in response.text

    for headers in ({}, bearer("x" * 43), {"Authorization": f"Basic {token}"}):
        refused = await http.get(f"{api.url}/api/v1/trips/{trip_id}", headers=headers)
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "unauthorized"
    missing = await http.get(f"{api.url}/api/v1/trips/{UNKNOWN_TRIP}", headers=bearer(token))
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "trip_not_found"


def _legless(it: Body) -> Body:
    return {**it, "legs": []}


def _far(it: Body) -> Body:
    legs = json.loads(json.dumps(it["legs"]))
    legs[0]["geometry"]["coordinates"][0] = [-9.14, 38.72]
    return {**it, "legs": legs}


INVALID = "invalid_parameter"
BAD_STARTS: list[tuple[str, Any, int, str]] = [
    ("no-legs", lambda a: {"itinerary": _legless(a.carshare)}, 400, "invalid_itinerary"),
    ("outside", lambda a: {"itinerary": _far(a.carshare)}, 400, "invalid_itinerary"),
    ("not-a-plan", lambda a: {"itinerary": {"hello": 1}}, 400, "invalid_itinerary"),
    ("city", lambda a: {"itinerary": a.carshare, "city": "atlantis"}, 404, "unknown_city"),
    ("mode", lambda a: {"itinerary": a.carshare, "modes": ["hoverboard"]}, 400, INVALID),
    ("too-many-modes", lambda a: {"itinerary": a.carshare, "modes": ["walk"] * 7}, 400, INVALID),
    ("no-itinerary", lambda a: {"city": "porto-alegre"}, 400, INVALID),
    ("itinerary-a-list", lambda a: {"itinerary": [a.carshare]}, 400, INVALID),
]


@pytest.mark.parametrize(
    ("make", "status", "code"), [c[1:] for c in BAD_STARTS], ids=[c[0] for c in BAD_STARTS]
)
async def test_a_bad_start_is_refused_and_stores_nothing(
    api: Api, http: httpx.AsyncClient, make: Any, status: int, code: str
) -> None:
    before = await api.trip_keys()
    response = await http.post(f"{api.url}/api/v1/trips", json=make(api))
    assert 400 <= response.status_code < 500, response.text
    if status:
        assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) >= {"code", "message"}
    assert error["message"]
    if code:
        assert error["code"] == code
    assert await api.trip_keys() == before


# -- connecting ---------------------------------------------------------------------------------


async def test_the_token_can_come_in_the_first_message(api: Api, http: httpx.AsyncClient) -> None:
    trip_id, token = await start_trip(http, api.url, api.transit)
    async with trip_socket(api.url, trip_id) as ws:
        await ws.send({"type": "auth", "token": token})
        hello = await ws.recv()
        assert hello["type"] == "hello"
        assert hello["trip_id"] == trip_id
        await ws.send({"type": "ping"})
        assert (await ws.recv_type("heartbeat", skip=frozenset({"progress"})))["trip_id"] == trip_id


@pytest.mark.parametrize("where", ["url", "message"])
async def test_a_wrong_token_is_refused_with_4401(
    api: Api, http: httpx.AsyncClient, where: str
) -> None:
    trip_id, token = await start_trip(http, api.url, api.transit)
    wrong = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    async with trip_socket(api.url, trip_id, wrong if where == "url" else None) as ws:
        if where == "message":
            await ws.send({"type": "auth", "token": wrong})
        error = await ws.recv()
        assert error["type"] == "error"
        assert error["code"] == "unauthorized"
        assert await ws.closed() == 4401
    assert [m["type"] for m in ws.received] == ["error"]


async def test_an_unknown_trip_is_refused_with_4404(api: Api) -> None:
    async with trip_socket(api.url, UNKNOWN_TRIP, "whatever") as ws:
        error = await ws.recv()
        assert error["code"] == "trip_not_found"
        assert await ws.closed() == 4404


async def test_no_auth_in_time_closes_with_4408(
    api: Api, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(trip_routes, "AUTH_TIMEOUT_S", 0.5)
    trip_id, _ = await start_trip(http, api.url, api.transit)
    async with trip_socket(api.url, trip_id) as ws:
        started = time.monotonic()
        assert await ws.closed() == 4408
        assert time.monotonic() - started < 3
    assert ws.received == []


async def test_a_first_message_that_is_not_auth_is_refused(
    api: Api, http: httpx.AsyncClient
) -> None:
    trip_id, _ = await start_trip(http, api.url, api.transit)
    async with trip_socket(api.url, trip_id) as ws:
        await ws.send({"type": "ping"})
        error = await ws.recv()
        assert error["code"] == "invalid_message"
        assert await ws.closed() == 4400


MALFORMED: list[tuple[str, str]] = [
    ("this is not json", "invalid_message"),
    ("[]", "invalid_message"),
    ('{"type": "teleport"}', "unknown_type"),
    ('{"type": "position", "lat": 200, "lon": 0}', "invalid_message"),
    ('{"type": "accept"}', "invalid_message"),
    ('{"type": "auth", "token": "again"}', "invalid_message"),
    ('{"type": "accept", "suggestion_id": "no-such-suggestion"}', "suggestion_closed"),
    ('{"type": "decline", "suggestion_id": "no-such-suggestion"}', "suggestion_closed"),
    (json.dumps({"type": "ping", "pad": "x" * 5000}), "invalid_message"),
]


async def test_bad_client_frames_get_errors_and_the_connection_stays(
    api: Api, http: httpx.AsyncClient
) -> None:
    trip_id, token = await start_trip(http, api.url, api.transit)
    async with trip_socket(api.url, trip_id, token) as ws:
        await ws.recv()
        for frame, code in MALFORMED:
            await ws.send(frame)
            error = await ws.recv_type("error", skip=frozenset({"progress"}))
            assert error["code"] == code, frame
        await ws.send({"type": "ping"})
        await ws.recv_type("heartbeat", skip=frozenset({"progress"}))
    export = (await http.get(f"{api.url}/api/v1/trips/{trip_id}", headers=bearer(token))).json()
    assert export["messages"] == []  # errors are not stored
    assert export["trip"]["status"] == "active"


async def test_a_reported_position_drives_progress(api: Api, http: httpx.AsyncClient) -> None:
    trip_id, token = await start_trip(http, api.url, api.transit)
    here = {"lat": -30.031, "lon": -51.221}
    async with trip_socket(api.url, trip_id, token) as ws:
        assert (await ws.recv())["progress"]["source"] == "schedule"
        await ws.send({"type": "position", **here, "accuracy_m": 12})
        progress = await ws.recv_type("progress")
        assert progress["source"] == "position"
        assert progress["position"] == here
        await ws.send({"type": "position", **here})
        assert (await ws.recv_type("error", skip=frozenset({"progress"})))["code"] == "rate_limited"
    export = (await http.get(f"{api.url}/api/v1/trips/{trip_id}", headers=bearer(token))).json()
    assert export["position"] == here


async def test_delete_closes_sockets_and_forgets_the_trip(
    api: Api, http: httpx.AsyncClient
) -> None:
    trip_id, token = await start_trip(http, api.url, api.transit)
    async with trip_socket(api.url, trip_id, token) as ws:
        await ws.recv()
        unauthorized = await http.delete(f"{api.url}/api/v1/trips/{trip_id}")
        assert unauthorized.status_code == 401
        response = await http.delete(f"{api.url}/api/v1/trips/{trip_id}", headers=bearer(token))
        assert response.status_code == 204
        assert await ws.closed(timeout=5) == 4404
    assert not {k for k in await api.trip_keys() if trip_id in k}
    gone = await http.get(f"{api.url}/api/v1/trips/{trip_id}", headers=bearer(token))
    assert gone.status_code == 404
    assert gone.json()["error"]["code"] == "trip_not_found"
    again = await http.delete(f"{api.url}/api/v1/trips/{trip_id}", headers=bearer(token))
    assert again.status_code == 404
    async with trip_socket(api.url, trip_id, token) as ws:
        assert (await ws.recv())["code"] == "trip_not_found"
        assert await ws.closed() == 4404


async def test_an_ended_trip_refuses_commands(api: Api, http: httpx.AsyncClient) -> None:
    trip_id, token = await start_trip(http, api.url, api.transit)
    async with trip_socket(api.url, trip_id, token) as ws:
        await ws.recv()
        await ws.send({"type": "end"})
        assert (await ws.recv_type("trip_ended"))["reason"] == "ended"
        assert await ws.closed() == 1000
    async with trip_socket(api.url, trip_id, token, after_seq=1) as ws:
        hello = await ws.recv()
        assert hello["status"] == "ended"
        assert hello["last_seq"] == 1
        await ws.send({"type": "end"})
        assert (await ws.recv_type("error"))["code"] == "trip_ended"
        await ws.send({"type": "accept", "suggestion_id": "whatever-id"})
        assert (await ws.recv_type("error"))["code"] == "trip_ended"


async def test_without_demo_mode_the_demo_is_404(api_url: str, http: httpx.AsyncClient) -> None:
    response = await http.get(f"{api_url}/api/v1/demo")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "demo_disabled"
    itinerary = (await plan(http, api_url, modes="walk,transit"))[0]
    trip_id, token = await start_trip(http, api_url, itinerary)
    jam = await http.post(f"{api_url}/api/v1/trips/{trip_id}/demo", headers=bearer(token))
    assert jam.status_code == 404
    assert jam.json()["error"]["code"] == "demo_disabled"


# -- a slow reader --------------------------------------------------------------------------------


async def test_a_client_that_does_not_read_does_not_stall_another(
    api: Api, http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hub_module, "SEND_TIMEOUT_S", 2.0)
    slow_id, slow_token = await start_trip(http, api.url, api.transit)
    fast_id, fast_token = await start_trip(http, api.url, api.transit)
    # a small receive buffer, and a client that stops reading after one queued frame
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.connect(("127.0.0.1", int(api.url.rsplit(":", 1)[1])))
    raw.setblocking(False)
    slow_url = ws_url(api.url, f"/ws/v1/trips/{slow_id}?token={slow_token}")
    async with (
        connect(slow_url, sock=raw, max_queue=1, ping_interval=None, close_timeout=1) as slow,
        trip_socket(api.url, fast_id, fast_token) as fast,
    ):
        await fast.recv()
        ping = json.dumps({"type": "ping"})
        for _ in range(20_000):  # each answered by a heartbeat this client does not read
            await slow.send(ping)
        latencies: list[float] = []
        finish = time.monotonic() + 5  # past the slow client's send timeout
        while time.monotonic() < finish:
            started = time.monotonic()
            await fast.send({"type": "ping"})
            await fast.recv_type("heartbeat", timeout=5, skip=frozenset({"progress"}))
            latencies.append(time.monotonic() - started)
            await asyncio.sleep(0.05)
        assert len(latencies) > 20
        assert sorted(latencies)[len(latencies) // 2] < 0.2, latencies
        assert max(latencies) < 1.5, latencies
        # the slow client was given up on: it reads what was queued, then the 4409
        slow_socket = TripSocket(slow)
        assert await slow_socket.closed(timeout=20) == 4409
        assert 0 < len(slow_socket.received) < 20_000
        await fast.send({"type": "ping"})
        await fast.recv_type("heartbeat", skip=frozenset({"progress"}))


# -- two processes sharing Redis ------------------------------------------------------------------


class Pair:
    def __init__(self, writer: str, api_only: str, settings: Settings) -> None:
        self.writer = writer
        self.api = api_only
        self.settings = settings


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    """Process A (role all: live feeds, writer, engine, demo) and process B (role api)."""
    folder = tmp_path_factory.mktemp("pair")
    prefix = f"test:{uuid.uuid4().hex}:"
    a = trip_settings(folder, redis=True, redis_prefix=prefix, demo=True)
    b = trip_settings(folder, redis=True, redis_prefix=prefix, demo=True, role="api")
    try:
        with (
            serve_process(a, folder / "a.log") as writer,
            serve_process(b, folder / "b.log") as api_only,
        ):
            yield Pair(writer, api_only, a)
    finally:
        delete_prefix(prefix)


async def test_a_client_of_the_api_process_gets_the_writers_suggestion(
    pair: Pair, http: httpx.AsyncClient
) -> None:
    deadline = time.monotonic() + 20
    while True:  # B mirrors the writer's shared-mobility state through the stream
        try:
            itinerary = with_mode(await plan(http, pair.api), "carshare")
            break
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)
    trip_id, token = await start_trip(http, pair.api, itinerary)
    async with trip_socket(pair.api, trip_id, token) as on_b:
        assert (await on_b.recv())["type"] == "hello"
        jam = await http.post(f"{pair.writer}/api/v1/trips/{trip_id}/demo", headers=bearer(token))
        assert jam.status_code == 202, jam.text
        suggestion = await on_b.recv_type("switch_suggestion", timeout=20)
    seq = suggestion["seq"]
    assert seq >= 1

    # reconnect to the other process, resuming: nothing lost, nothing twice
    async with trip_socket(pair.writer, trip_id, token, after_seq=seq) as on_a:
        hello = await on_a.recv()
        assert hello["last_seq"] == seq
        assert hello["suggestion"] == open_suggestion_body(suggestion)
        assert await on_a.quiet_for(1.0) == []
    async with (
        trip_socket(pair.writer, trip_id, token, after_seq=seq - 1) as on_a,
        trip_socket(pair.api, trip_id, token, after_seq=seq) as still_on_b,
    ):
        assert (await on_a.recv())["type"] == "hello"
        assert (await on_a.recv_type("switch_suggestion")) == suggestion
        assert (await still_on_b.recv())["type"] == "hello"
        await on_a.send({"type": "accept", "suggestion_id": suggestion["suggestion_id"]})
        on_writer = await on_a.recv_type("plan_updated")
        on_api = await still_on_b.recv_type("plan_updated", timeout=10)
        assert on_writer == on_api
        assert on_api["seq"] == seq + 1
        assert on_api["itinerary"] == suggestion["itinerary"]


OPERATOR_SCHEMA: Body = {
    "oneOf": [
        {
            "type": "object",
            "required": ["type", "v", "city", "at", "k", "active_trips", "incidents"],
            "properties": {
                "type": {"const": "aggregates"},
                "v": {"const": 1},
                "city": {"type": "string"},
                "at": {"type": "string", "format": "date-time"},
                "k": {"type": "integer", "minimum": 1},
                "active_trips": {"type": ["integer", "null"], "minimum": 0},
                "suggestions_made": {"type": "integer", "minimum": 0},
                "suggestions_accepted": {"type": "integer", "minimum": 0},
                "suggestions_declined": {"type": "integer", "minimum": 0},
                "trips_started": {"type": "integer", "minimum": 0},
                "trips_ended": {"type": "integer", "minimum": 0},
                "incidents": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": [
                            "incident_id",
                            "trips_touched",
                            "suggestions_made",
                            "suggestions_accepted",
                        ],
                        "properties": {
                            "incident_id": {"type": "string"},
                            "trips_touched": {"type": ["integer", "null"], "minimum": 0},
                            "suggestions_made": {"type": ["integer", "null"], "minimum": 0},
                            "suggestions_accepted": {"type": ["integer", "null"], "minimum": 0},
                        },
                        "additionalProperties": False,
                    },
                },
            },
            "additionalProperties": False,
        },
        {
            "type": "object",
            "required": ["type", "v", "code", "message"],
            "properties": {"type": {"const": "error"}, "code": {"type": "string"}},
        },
    ]
}


AGGREGATES: Body = {  # a valid aggregates message, as docs/protocol.md shows it
    "type": "aggregates",
    "v": 1,
    "city": "porto-alegre",
    "at": "2026-12-02T13:00:00+00:00",
    "k": 2,
    "active_trips": None,
    "trips_started": 3,
    "trips_ended": 0,
    "suggestions_made": 1,
    "suggestions_accepted": 0,
    "suggestions_declined": 0,
    "incidents": [
        {
            "incident_id": "i1",
            "trips_touched": 2,
            "suggestions_made": None,
            "suggestions_accepted": 0,
        }
    ],
}


async def read_operator_messages(sock: TripSocket) -> None:
    """Read until the socket closes or sends aggregates; every message must match
    :data:`OPERATOR_SCHEMA` (a ValidationError fails the test; only the close ends it)."""
    with contextlib.suppress(ConnectionClosed):
        while True:
            message = await sock.recv()
            jsonschema.validate(message, OPERATOR_SCHEMA)
            if message["type"] == "aggregates":
                return


async def operator_messages(url: str, query: str = "", first: Any = None) -> TripSocket:
    """Connect to the operator socket and read until it closes or sends aggregates."""
    async with connect(ws_url(url, f"/ws/v1/operator{query}"), open_timeout=10) as conn:
        sock = TripSocket(conn, validate=False)
        if first is not None:
            await sock.send(first)
        await read_operator_messages(sock)
        return sock


class ScriptedConnection:
    """A client connection that receives the given frames, then is closed by the server."""

    def __init__(self, frames: list[Body]) -> None:
        self.frames = [json.dumps(f) for f in frames]

    async def recv(self) -> str:
        if not self.frames:
            raise ConnectionClosedOK(Close(1000, ""), Close(1000, ""), True)
        return self.frames.pop(0)


@pytest.mark.parametrize(
    "bad",
    [
        {"type": "aggregates", "v": 1, "city": "x", "at": "t", "k": 3, "incidents": []},
        {"type": "error", "v": 1, "code": "unauthorized"},
        {"type": "hello", "v": 1},
        {**AGGREGATES, "trip_id": "A" * 22},
        {**AGGREGATES, "incidents": [{"incident_id": "i1", "trips_touched": -1}]},
    ],
    ids=[
        "aggregates-without-active-trips",
        "error-without-message",
        "unknown-type",
        "aggregates-naming-a-trip",
        "bad-incident",
    ],
)
async def test_the_operator_socket_check_fails_on_a_message_off_the_schema(bad: Body) -> None:
    good_error = {"type": "error", "v": 1, "code": "unauthorized", "message": "no"}
    await read_operator_messages(TripSocket(ScriptedConnection([good_error]), validate=False))
    await read_operator_messages(TripSocket(ScriptedConnection([AGGREGATES]), validate=False))
    sock = TripSocket(ScriptedConnection([good_error, bad]), validate=False)
    with pytest.raises(jsonschema.ValidationError):
        await read_operator_messages(sock)


@pytest.mark.parametrize(
    ("query", "first"),
    [
        ("", {"type": "auth"}),
        ("", {"type": "auth", "token": "not-a-token"}),
        ("", {"type": "hello"}),
        ("?token=not-a-token", None),
        ("?token=" + "A" * 43, None),
    ],
    ids=["auth-no-token", "auth-bad-token", "not-auth", "url-bad-token", "url-unknown-token"],
)
async def test_the_operator_socket_refuses_without_a_valid_token(
    pair: Pair, query: str, first: Any
) -> None:
    sock = await operator_messages(pair.api, query, first)
    assert [m["type"] for m in sock.received] == ["error"]
    assert sock.received[0]["code"] == "unauthorized"
    assert sock.conn.close_code == 4401


async def test_an_operator_sees_counts_and_never_a_trip(
    pair: Pair, http: httpx.AsyncClient
) -> None:
    token = await asyncio.to_thread(operator_token, pair.settings, pair.writer)
    itinerary = (await plan(http, pair.api, modes="walk,transit"))[0]
    trips = [await start_trip(http, pair.api, itinerary) for _ in range(3)]
    for url in (pair.api, pair.writer):
        sock = await operator_messages(url, f"?token={token}")
        (aggregates,) = sock.received
        assert aggregates["type"] == "aggregates"
        assert aggregates["city"] == "porto-alegre"
        assert aggregates["active_trips"] is not None
        assert aggregates["active_trips"] >= 3
        assert aggregates["trips_started"] >= 3
        text = json.dumps(aggregates)
        for trip_id, trip_token in trips:
            assert trip_id not in text
            assert trip_token not in text
    via_message = await operator_messages(pair.api, "", {"type": "auth", "token": token})
    assert [m["type"] for m in via_message.received] == ["aggregates"]
