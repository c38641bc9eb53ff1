"""Shared by the live-trip tests: a schema-checking websocket client, servers, plans.

Every message a test receives from a trip (or operator) socket goes through
:class:`TripSocket`, which validates it against ``realtime/trips/protocol.schema.json`` before the
test sees it: a server message that breaks the published contract fails the test that
received it, whatever that test is about.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

import httpx
import jsonschema
import uvicorn
from processes import free_port, wait_started
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from correspondance.settings import REPO_ROOT, Settings
from realtime.trips.protocol import load_schema
from routing.base import CityBase

REDIS_URL = os.environ.get("CORRESPONDANCE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
CACHE_DIR = Path(os.environ.get("CORRESPONDANCE_CACHE_DIR", REPO_ROOT / "var" / "cache"))
CITY = "porto-alegre"
DEMO_FROM = "-30.0346,-51.2177"
DEMO_TO = "-30.003,-51.2"
DEPART = "2019-05-15T13:00:00"
T = TypeVar("T")
QUIET = frozenset({"progress", "heartbeat"})  # unsequenced chatter a test may skip


@lru_cache(maxsize=1)
def validator() -> jsonschema.Draft7Validator:
    """The published schema of server messages (itself checked as draft-07)."""
    schema = load_schema()
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def check_server_message(message: Any) -> dict[str, Any]:
    """``message`` if it is a valid server message; AssertionError naming what is wrong."""
    errors = sorted(validator().iter_errors(message), key=lambda e: list(e.path))
    if errors:
        detail = "; ".join(f"{list(e.path)}: {e.message[:200]}" for e in errors[:5])
        raise AssertionError(f"server message breaks protocol.schema.json: {detail}: {message}")
    assert isinstance(message, dict)
    return message


def ws_url(http_url: str, path: str) -> str:
    return "ws" + http_url.removeprefix("http") + path


class TripSocket:
    """A websocket client whose every received message is schema-validated and kept."""

    def __init__(self, conn: ClientConnection, validate: bool = True) -> None:
        self.conn = conn
        self.validate = validate
        self.received: list[dict[str, Any]] = []

    async def recv(self, timeout: float = 10.0) -> dict[str, Any]:
        """The next message (TimeoutError if none comes; ConnectionClosed if it closed)."""
        async with asyncio.timeout(timeout):
            raw = await self.conn.recv()
        assert isinstance(raw, str), "the protocol uses text frames only"
        message = json.loads(raw)
        if self.validate:
            check_server_message(message)
        self.received.append(message)
        return dict(message)

    async def recv_type(
        self, kind: str, timeout: float = 10.0, skip: frozenset[str] = QUIET
    ) -> dict[str, Any]:
        """The next message of type ``kind``, skipping only ``skip`` types on the way."""
        async with asyncio.timeout(timeout):
            while True:
                message = await self.recv(timeout)
                if message["type"] == kind:
                    return message
                assert message["type"] in skip, f"expected {kind}, got {message}"

    async def sequenced(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """The next ``count`` messages that carry ``seq`` (progress and heartbeats skipped)."""
        out: list[dict[str, Any]] = []
        async with asyncio.timeout(timeout):
            while len(out) < count:
                message = await self.recv(timeout)
                if message["type"] not in QUIET:
                    assert "seq" in message, message
                    out.append(message)
        return out

    async def quiet_for(self, seconds: float) -> list[dict[str, Any]]:
        """Everything but progress/heartbeats received within ``seconds`` (expected: none)."""
        out: list[dict[str, Any]] = []
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                while True:
                    message = await self.recv(seconds)
                    if message["type"] not in QUIET:
                        out.append(message)
        return out

    async def send(self, message: Any) -> None:
        await self.conn.send(message if isinstance(message, str) else json.dumps(message))

    async def closed(self, timeout: float = 10.0) -> int | None:
        """Read (validating) until the server closes; its close code (None: still open)."""
        with contextlib.suppress(ConnectionClosed, TimeoutError):
            async with asyncio.timeout(timeout):
                while True:
                    await self.recv(timeout)
        return self.conn.close_code


@asynccontextmanager
async def trip_socket(
    http_url: str,
    trip_id: str,
    token: str | None = None,
    after_seq: int | None = None,
    validate: bool = True,
    **options: Any,
) -> AsyncIterator[TripSocket]:
    """A validated client of ``/ws/v1/trips/{trip_id}`` (token in the URL when given)."""
    params = []
    if token is not None:
        params.append(f"token={token}")
    if after_seq is not None:
        params.append(f"after_seq={after_seq}")
    query = ("?" + "&".join(params)) if params else ""
    async with connect(
        ws_url(http_url, f"/ws/v1/trips/{trip_id}{query}"), open_timeout=10, **options
    ) as conn:
        yield TripSocket(conn, validate=validate)


# -- servers --------------------------------------------------------------------------------


def trip_settings(folder: Path, redis: bool = False, **overrides: Any) -> Settings:
    """Settings of a test server: embedded by default, or Redis under a fresh prefix."""
    values: dict[str, Any] = {
        "cache_dir": CACHE_DIR,
        "live_feeds": True,
        "redis_url": REDIS_URL if redis else None,
        "redis_prefix": f"test:{uuid.uuid4().hex}:",
        "operators_file": folder / "operators.json",
        "secret_file": folder / "secret",
        "contributor_secret": "trip-tests-secret-0123456789abcdef",
    }
    values.update(overrides)
    return Settings(**values)


@contextmanager
def serve_process(settings: Settings, log: Path) -> Iterator[str]:
    """A real separate server process (``python -m api.cli serve``) with ``settings``."""
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("CORRESPONDANCE_") and k != "REDIS_URL"
    }
    env.update(
        {
            "CORRESPONDANCE_CACHE_DIR": str(settings.cache_dir),
            "CORRESPONDANCE_ROLE": settings.role,
            "CORRESPONDANCE_LIVE_FEEDS": str(settings.live_feeds).lower(),
            "CORRESPONDANCE_REDIS_PREFIX": settings.redis_prefix,
            "CORRESPONDANCE_OPERATORS_FILE": str(settings.operators_file),
            "CORRESPONDANCE_SECRET_FILE": str(settings.secret_file),
            "CORRESPONDANCE_DEMO": str(settings.demo).lower(),
            "PYTHONUNBUFFERED": "1",
        }
    )
    if settings.simulated_feeds_at is not None:
        env["CORRESPONDANCE_SIMULATED_FEEDS_AT"] = repr(settings.simulated_feeds_at)
    if settings.contributor_secret is not None:
        env["CORRESPONDANCE_CONTRIBUTOR_SECRET"] = settings.contributor_secret.get_secret_value()
    if settings.redis_url:
        env["REDIS_URL"] = settings.redis_url
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "serve", "--port", str(port)],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"server process died: {log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/api/v1/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server process did not start: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


class InThread:
    """A real uvicorn server in a thread of the test process, with its app and loop at hand
    (to read its in-process store)."""

    def __init__(self, url: str, app: Any, loop: asyncio.AbstractEventLoop, settings: Settings):
        self.url = url
        self.app = app
        self.loop = loop
        self.settings = settings

    @property
    def state(self) -> Any:
        return self.app.state.correspondance

    async def call(self, make: Callable[[Any], Awaitable[T]]) -> T:
        """``await make(state)`` on the server's own loop."""
        future = asyncio.run_coroutine_threadsafe(make(self.state), self.loop)
        return await asyncio.wrap_future(future)


@contextmanager
def serve_in_thread(settings: Settings, base: Any) -> Iterator[InThread]:
    from api.app import create_app

    app = create_app(settings, bases={CITY: base})
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", lifespan="on")
    )
    loops: list[asyncio.AbstractEventLoop] = []

    async def main() -> None:
        loops.append(asyncio.get_running_loop())
        await server.serve()

    thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
    thread.start()
    wait_started(server, thread)
    try:
        yield InThread(f"http://127.0.0.1:{port}", app, loops[0], settings)
    finally:
        server.should_exit = True
        thread.join(timeout=15)


# -- plans ----------------------------------------------------------------------------------


async def plan(
    http: httpx.AsyncClient,
    url: str,
    modes: str = "walk,transit,carshare",
    origin: str = DEMO_FROM,
    destination: str = DEMO_TO,
    depart: str = DEPART,
) -> list[dict[str, Any]]:
    response = await http.get(
        f"{url}/api/v1/plan",
        params={"from": origin, "to": destination, "depart": depart, "modes": modes},
    )
    assert response.status_code == 200, response.text
    itineraries: list[dict[str, Any]] = response.json()["itineraries"]
    return itineraries


def with_mode(itineraries: list[dict[str, Any]], mode: str) -> dict[str, Any]:
    """The first itinerary with a ``mode`` leg that has drive edges (car-share, car)."""
    for it in itineraries:
        if any(leg["mode"] == mode and leg.get("drive_edges") for leg in it["legs"]):
            return it
    shapes = [[leg["mode"] for leg in it["legs"]] for it in itineraries]
    raise AssertionError(f"no {mode} itinerary in {shapes}")


async def start_trip(
    http: httpx.AsyncClient, url: str, itinerary: dict[str, Any], **fields: Any
) -> tuple[str, str]:
    response = await http.post(f"{url}/api/v1/trips", json={"itinerary": itinerary, **fields})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["websocket"] == f"/ws/v1/trips/{body['trip_id']}"
    return str(body["trip_id"]), str(body["token"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def closure_ahead(base: CityBase, itinerary: dict[str, Any]) -> tuple[dict[str, Any], set[int]]:
    """A closure report in the middle of the trip's drive, heading the way the car goes,
    and the edges of the drive leg near that point (what it should close)."""
    leg = next(leg for leg in itinerary["legs"] if leg["drive_edges"])
    edges = leg["drive_edges"]
    drive = base.streets["drive"]
    # the longest edge of the second half: a report on it cannot match a neighbour instead
    half = edges[len(edges) // 2 :]
    edge = max(half, key=lambda e: float(drive.length_m[e]))
    tail, head = int(drive.tail[edge]), int(drive.head[edge])
    lat = float(drive.node_lat[tail] + drive.node_lat[head]) / 2
    lon = float(drive.node_lon[tail] + drive.node_lon[head]) / 2
    dy = float(drive.node_lat[head] - drive.node_lat[tail])
    dx = float(drive.node_lon[head] - drive.node_lon[tail]) * math.cos(math.radians(lat))
    heading = math.degrees(math.atan2(dx, dy)) % 360.0
    report = {
        "lat": lat,
        "lon": lon,
        "heading": round(heading, 1),
        "kind": "closure",
        "mode": "car",
    }
    return report, {edge}
