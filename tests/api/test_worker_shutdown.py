"""A ``correspondance worker`` busy with many active trips, and a ``serve`` process with
open and abandoned websockets, stop promptly on SIGTERM.

Found by ``bench_engines``: a worker holding 2,000 trips did not exit within 30 s of SIGTERM,
and a second SIGTERM was ignored. Its trip engine's tick (store calls for every trip) kept
running: on Python 3.11, ``asyncio.wait_for`` (which redis-py wraps around every command it
sends) swallows a cancellation that lands as the command's send completes, so one
``cancel()`` did not stop the loop (``realtime.loops.cancel_and_wait``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from processes import redis_server, serve, wait_until, worker
from trip_helpers import CITY, DEMO_FROM, DEMO_TO, plan, start_trip, trip_settings
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from correspondance.store import RedisStateStore
from realtime.trips.sessions import TripBook
from routing.base import CityBase
from routing.codec import ItineraryOut
from routing.overlay import OverlayHolder
from routing.plan import PlanRequest, plan_trip

TRIPS = 1500
PARTITIONS = 8


def _car_plan(base: CityBase) -> dict[str, Any]:
    holder = OverlayHolder(base.streets["drive"])
    origin, destination = (tuple(map(float, p.split(","))) for p in (DEMO_FROM, DEMO_TO))
    depart = dt.datetime.combine(base.city.default_date, dt.time(13, 0), tzinfo=base.city.tz)
    request = PlanRequest(origin, destination, depart, modes=frozenset({"walk", "car"}))
    itineraries = plan_trip(base, request, holder.current)
    car = next(i for i in itineraries if any(leg.drive_edges for leg in i.legs))
    return ItineraryOut.of(car, holder.current).model_dump(mode="json", by_alias=True)


async def _store_trips(url: str, prefix: str, plan: dict[str, Any], n: int) -> None:
    store = RedisStateStore(url, prefix=prefix)
    try:
        book = TripBook(store)
        start = dt.datetime.fromisoformat(plan["departure"])
        for _ in range(n):
            await book.create(CITY, "America/Sao_Paulo", plan, ["walk", "car"], start)
    finally:
        await store.aclose()


def test_a_worker_ticking_many_trips_exits_within_seconds_of_sigterm(
    tmp_path: Path, poa_base: CityBase
) -> None:
    plan = _car_plan(poa_base)
    with redis_server(tmp_path / "redis") as redis:
        settings = trip_settings(
            tmp_path,
            redis=True,
            redis_url=redis.url,
            trip_partitions=PARTITIONS,
            warm_up=False,
        )
        asyncio.run(_store_trips(redis.url, settings.redis_prefix, plan, TRIPS))
        client = redis.client()
        prefix = settings.redis_prefix

        def held() -> list[bytes]:
            patterns = ("lock:trips:*", "lock:writer:*", "engines:*")
            return [key for p in patterns for key in client.keys(f"{prefix}{p}".encode())]

        with worker(settings, tmp_path / "worker.log") as child:
            wait_until(lambda: len(held()) == PARTITIONS + 2, 30, "leases, writer lock, heartbeat")

            def commands() -> int:
                return int(client.info("stats")["total_commands_processed"])

            # SIGTERM while the engine's tick is reading its trips (a burst of commands)
            def ticking() -> bool:
                before = commands()
                time.sleep(0.1)
                return commands() - before > 100

            wait_until(ticking, 30, "the engine ticking its trips")
            child.process.send_signal(signal.SIGTERM)
            sent = time.monotonic()
            try:
                code = child.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pytest.fail(f"the worker ignored SIGTERM for 10 s:\n{child.tail()}")
            took = time.monotonic() - sent
            assert code == 0, child.tail()
            # it left at once: no lease, writer lock or heartbeat waits for its TTL
            assert held() == [], held()
        client.close()
    assert took < 10.0


async def _sockets_then_sigterm(url: str, child: Any) -> tuple[list[int | None], float]:
    """Leave a congestion socket (the page closed), keep another and a trip socket open,
    SIGTERM the server: (close codes the open sockets got, seconds until it exited)."""
    ws = url.replace("http://", "ws://")
    async with httpx.AsyncClient(timeout=60, trust_env=False) as http:
        trip_id, token = await start_trip(http, url, (await plan(http, url, "walk,transit"))[0])
    left = await connect(f"{ws}/ws/v1/congestion?city={CITY}")
    await left.close()  # what a closed tab does: its socket's handler must end now
    watching = await connect(f"{ws}/ws/v1/congestion?city={CITY}")
    riding = await connect(f"{ws}/ws/v1/trips/{trip_id}?token={token}")
    assert json.loads(await riding.recv())["type"] == "hello"
    await asyncio.sleep(0.5)
    child.process.send_signal(signal.SIGTERM)
    sent = time.monotonic()
    codes: list[int | None] = []
    for sock in (watching, riding):
        with contextlib.suppress(ConnectionClosed):
            while True:
                await asyncio.wait_for(sock.recv(), 15)
        codes.append(sock.close_code)
    await asyncio.to_thread(child.process.wait, 15)
    return codes, time.monotonic() - sent


def test_a_server_with_open_and_abandoned_sockets_exits_within_seconds_of_sigterm(
    tmp_path: Path,
) -> None:
    # found using the app: a server whose page had been closed ignored SIGTERM (20 s, then
    # killed): a congestion socket whose page left waited for the next map change to end
    with serve(trip_settings(tmp_path, warm_up=False), tmp_path / "serve.log") as child:
        assert child.url is not None
        try:
            codes, took = asyncio.run(_sockets_then_sigterm(child.url, child))
        except subprocess.TimeoutExpired:
            pytest.fail(f"the server ignored SIGTERM for 15 s:\n{child.tail()}")
        # uvicorn re-raises the signal once shut down: "terminated by SIGTERM", as asked
        assert child.process.returncode in (0, -signal.SIGTERM), child.tail()
        assert "stepping down as writer" in child.tail()  # the lifespan's shutdown ran
        assert codes == [1012, 1012]  # "service restart": clients reconnect elsewhere
        assert took < 10.0, child.tail()  # docker stop's grace period
