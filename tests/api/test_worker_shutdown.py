"""A ``correspondance worker`` busy with many active trips stops promptly on SIGTERM.

Found by ``bench_engines``: a worker holding 2,000 trips did not exit within 30 s of SIGTERM,
and a second SIGTERM was ignored. Its trip engine's tick (store calls for every trip) kept
running: on Python 3.11, ``asyncio.wait_for`` (which redis-py wraps around every command it
sends) swallows a cancellation that lands as the command's send completes, so one
``cancel()`` did not stop the loop (``realtime.loops.cancel_and_wait``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from processes import redis_server, wait_until, worker
from trip_helpers import CITY, DEMO_FROM, DEMO_TO, trip_settings

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
