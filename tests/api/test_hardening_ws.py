"""Websocket protocol deviations of issue #11, finding 6, over real websockets.

A real server (uvicorn in a thread) on a private ``redis-server`` (a free port; one test
kills its own): ``NaN`` positions, binary frames, bad ``after_seq`` values, a store outage
at connect, and operator sockets after logout or token expiry. Every frame received is
parsed strictly (``NaN`` is not JSON) and, for trip sockets, validated against
``realtime/trips/protocol.schema.json``.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from trip_helpers import (
    InThread,
    bearer,
    check_server_message,
    plan,
    serve_in_thread,
    start_trip,
    trip_settings,
    trip_socket,
    ws_url,
)
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from crowdsource.account_tables import open_operator_accounts
from routing.base import CityBase

pytestmark = pytest.mark.anyio
PASSWORD = "correct horse battery staple"
TOKEN_TTL_S = 4.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def strict_json(raw: str | bytes) -> Any:
    """Parse a server frame as a browser would: NaN and Infinity are not JSON."""

    def refuse(name: str) -> Any:
        raise AssertionError(f"the server sent {name}, which is not JSON")

    return json.loads(raw, parse_constant=refuse)


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with private_redis(tmp_path_factory.mktemp("redis")) as (url, _):
        yield url


class private_redis:  # noqa: N801 - a context manager used like a function
    """A redis-server of our own on a free port (so a test may kill it)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def __enter__(self) -> tuple[str, subprocess.Popen[bytes]]:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        binary = shutil.which("redis-server")
        assert binary is not None
        dirs = [str(self.folder)]
        self.process = subprocess.Popen(
            [binary, "--port", str(port), "--save", "", "--appendonly", "no", "--dir", *dirs],
            stdout=subprocess.DEVNULL,
        )
        url = f"redis://127.0.0.1:{port}/0"
        deadline = time.monotonic() + 10
        while True:
            try:
                client = redis.Redis.from_url(url, socket_timeout=1)
                try:
                    if client.ping():
                        break
                finally:
                    client.close()
            except redis.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        return url, self.process

    def __exit__(self, *_: object) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, poa_base: CityBase, redis_url: str
) -> Iterator[InThread]:
    settings = trip_settings(
        tmp_path_factory.mktemp("ws"),
        redis=True,
        redis_url=redis_url,
        live_feeds=False,
        operator_token_ttl_s=TOKEN_TTL_S,
    )
    with serve_in_thread(settings, poa_base) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=60) as client:
        yield client


@pytest.fixture
async def trip(server: InThread, http: httpx.AsyncClient) -> tuple[str, str]:
    itinerary = (await plan(http, server.url, modes="walk,transit"))[0]
    return await start_trip(http, server.url, itinerary)


async def raw_frames(conn: Any, timeout: float = 10.0) -> tuple[list[Any], int | None]:
    """Every frame (strictly parsed) until the server closes, and its close code."""
    frames: list[Any] = []
    try:
        async with asyncio.timeout(timeout):
            while True:
                frames.append(strict_json(await conn.recv()))
    except ConnectionClosed:
        pass
    return frames, conn.close_code


# -- non-finite numbers -------------------------------------------------------------------


@pytest.mark.parametrize(
    "frame",
    [
        '{"type": "position", "lat": NaN, "lon": -51.2}',
        '{"type": "position", "lat": -30.03, "lon": Infinity}',
        '{"type": "position", "lat": -30.03, "lon": -51.2, "accuracy_m": Infinity}',
        '{"type": "position", "lat": -30.03, "lon": -51.2, "accuracy_m": 1e400}',
        '{"type": "position", "lat": -Infinity, "lon": -51.2}',
    ],
    ids=["nan-lat", "inf-lon", "inf-accuracy", "overflowing-accuracy", "minus-inf-lat"],
)
async def test_non_finite_positions_are_refused_and_never_stored(
    server: InThread, http: httpx.AsyncClient, trip: tuple[str, str], frame: str
) -> None:
    trip_id, token = trip
    async with trip_socket(server.url, trip_id, token) as sock:
        await sock.recv_type("hello")
        await sock.conn.send(frame)
        refusal = await sock.recv_type("error")
        assert refusal["code"] == "invalid_message"
        assert "finite" in refusal["message"]
        # the connection stays, and what follows is still valid JSON
        await sock.send({"type": "ping"})
        await sock.recv_type("heartbeat")
        async with asyncio.timeout(10):
            while True:
                raw = await sock.conn.recv()
                if strict_json(raw)["type"] == "progress":
                    break
    export = await http.get(f"{server.url}/api/v1/trips/{trip_id}", headers=bearer(token))
    assert export.status_code == 200
    strict_json(export.text)
    assert export.json()["position"] is None


async def test_a_finite_position_is_still_taken(server: InThread, trip: tuple[str, str]) -> None:
    trip_id, token = trip
    async with trip_socket(server.url, trip_id, token) as sock:
        await sock.recv_type("hello")
        await sock.send({"type": "position", "lat": -30.03, "lon": -51.21, "accuracy_m": 8})
        progress = await sock.recv_type("progress")
        assert progress["source"] == "position"
        assert progress["position"] == {"lat": -30.03, "lon": -51.21}


# -- binary frames --------------------------------------------------------------------------


async def test_a_binary_first_frame_gets_an_error_and_1003(
    server: InThread, trip: tuple[str, str]
) -> None:
    trip_id, token = trip
    async with connect(ws_url(server.url, f"/ws/v1/trips/{trip_id}")) as conn:
        await conn.send(json.dumps({"type": "auth", "token": token}).encode())
        frames, code = await raw_frames(conn)
    assert [check_server_message(f)["type"] for f in frames] == ["error"]
    assert frames[0]["code"] == "invalid_message"
    assert "binary" in frames[0]["message"]
    assert code == 1003


async def test_a_binary_frame_later_gets_an_error_and_1003(
    server: InThread, trip: tuple[str, str]
) -> None:
    trip_id, token = trip
    async with trip_socket(server.url, trip_id, token) as sock:
        await sock.recv_type("hello")
        await sock.conn.send(b"\x00\x01 not text")
        refusal = await sock.recv_type("error")
        assert refusal["code"] == "invalid_message"
        assert await sock.closed() == 1003


# -- bad query values ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "after_seq",
    ["²", "٣", "-1", "1.5", "", "9" * 16, "9" * 5000, "0x10"],
    ids=[
        "superscript",
        "arabic-indic",
        "negative",
        "fraction",
        "empty",
        "16-digits",
        "huge",
        "hex",
    ],
)
async def test_a_bad_after_seq_is_refused_with_4400(
    server: InThread, trip: tuple[str, str], after_seq: str
) -> None:
    trip_id, token = trip
    url = ws_url(server.url, f"/ws/v1/trips/{trip_id}")
    params = httpx.QueryParams({"token": token, "after_seq": after_seq})
    async with connect(f"{url}?{params}") as conn:
        frames, code = await raw_frames(conn)
    assert [check_server_message(f)["code"] for f in frames] == ["invalid_message"]
    assert "after_seq" in frames[0]["message"]
    assert code == 4400


async def test_an_auth_message_with_a_huge_after_seq_is_refused(
    server: InThread, trip: tuple[str, str]
) -> None:
    trip_id, token = trip
    async with connect(ws_url(server.url, f"/ws/v1/trips/{trip_id}")) as conn:
        await conn.send(f'{{"type": "auth", "token": "{token}", "after_seq": 1e300}}')
        frames, code = await raw_frames(conn)
    assert [check_server_message(f)["code"] for f in frames] == ["invalid_message"]
    assert code == 4400


async def test_a_long_unicode_refusal_still_closes_cleanly(server: InThread) -> None:
    """A close reason is at most 123 bytes: a refusal quoting multibyte text is cut."""
    trip_id = "C" * 22
    async with connect(ws_url(server.url, f"/ws/v1/trips/{trip_id}")) as conn:
        await conn.send(json.dumps({"type": "é" * 200}))
        frames, code = await raw_frames(conn)
    assert [check_server_message(f)["code"] for f in frames] == ["unknown_type"]
    assert code == 4400


# -- operators: logout, expiry, binary ----------------------------------------------------


async def operator_login(server: InThread, http: httpx.AsyncClient) -> str:
    username = f"op-{uuid.uuid4().hex[:12]}"

    async def add(state: Any) -> None:
        accounts = open_operator_accounts(state.store, state.settings.operators_file)
        await accounts.add(username, PASSWORD)

    await server.call(add)
    response = await http.post(
        f"{server.url}/api/v1/operators/token", json={"username": username, "password": PASSWORD}
    )
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


async def test_the_operator_socket_closes_at_logout(
    server: InThread, http: httpx.AsyncClient
) -> None:
    token = await operator_login(server, http)
    async with connect(ws_url(server.url, f"/ws/v1/operator?token={token}")) as conn:
        first = strict_json(await conn.recv())
        assert first["type"] == "aggregates"
        out = await http.post(f"{server.url}/api/v1/operators/logout", headers=bearer(token))
        assert out.status_code == 204
        started = time.monotonic()
        frames, code = await raw_frames(conn, timeout=6)
    assert time.monotonic() - started < 4
    assert [f["type"] for f in frames][-1] == "error"
    assert frames[-1]["code"] == "unauthorized"
    assert "logout" in frames[-1]["message"]
    assert code == 4401


async def test_the_operator_socket_closes_when_its_token_expires(
    server: InThread, http: httpx.AsyncClient
) -> None:
    token = await operator_login(server, http)
    issued = time.monotonic()
    async with connect(ws_url(server.url, f"/ws/v1/operator?token={token}")) as conn:
        frames, code = await raw_frames(conn, timeout=TOKEN_TTL_S + 6)
    closed_after = time.monotonic() - issued
    assert TOKEN_TTL_S - 1 <= closed_after <= TOKEN_TTL_S + 3
    kinds = [f["type"] for f in frames]
    assert kinds[0] == "aggregates"
    assert kinds[-1] == "error"
    assert frames[-1]["code"] == "unauthorized"
    assert code == 4401


async def test_a_binary_frame_on_the_operator_socket_closes_it_with_1003(
    server: InThread, http: httpx.AsyncClient
) -> None:
    token = await operator_login(server, http)
    async with connect(ws_url(server.url, "/ws/v1/operator")) as conn:
        await conn.send(json.dumps({"type": "auth", "token": token}).encode())
        frames, code = await raw_frames(conn)
    assert [(f["type"], f["code"]) for f in frames] == [("error", "invalid_message")]
    assert code == 1003
    async with connect(ws_url(server.url, f"/ws/v1/operator?token={token}")) as conn:
        assert strict_json(await conn.recv())["type"] == "aggregates"
        await conn.send(b"\xff")
        frames, code = await raw_frames(conn)
    assert frames[-1]["code"] == "invalid_message"
    assert code == 1003


# -- the store is down ----------------------------------------------------------------------


async def test_a_connect_while_the_store_is_down_gets_4503(
    tmp_path: Path, poa_base: CityBase, http: httpx.AsyncClient
) -> None:
    with private_redis(tmp_path) as (url, process):
        settings = trip_settings(tmp_path, redis=True, redis_url=url, live_feeds=False)
        with serve_in_thread(settings, poa_base) as running:
            itinerary = (await plan(http, running.url, modes="walk,transit"))[0]
            trip_id, token = await start_trip(http, running.url, itinerary)
            token_op = await operator_login(running, http)
            async with trip_socket(running.url, trip_id, token) as before:
                await before.recv_type("hello")
                process.send_signal(signal.SIGKILL)
                process.wait(timeout=10)
                # the hub loses the stream; re-reading the outbox fails: 4503, not 1011
                assert await before.closed(timeout=30) == 4503
            follower = running.state.trip_hub.health()["follower"]
            assert follower["running"] is True  # it caught the outage, counted it, goes on
            assert follower["errors"] >= 1
            assert "Redis" in follower["last_error"]
            started = time.monotonic()
            async with trip_socket(running.url, trip_id, token) as sock:
                assert await sock.closed(timeout=15) == 4503
            assert time.monotonic() - started < 12
            assert [m["type"] for m in sock.received] == ["error"]
            assert sock.received[0]["code"] == "store_unavailable"
            op_url = ws_url(running.url, f"/ws/v1/operator?token={token_op}")
            async with connect(op_url) as conn:
                frames, code = await raw_frames(conn, timeout=15)
            assert [(f["type"], f["code"]) for f in frames] == [("error", "store_unavailable")]
            assert code == 4503
