"""Two processes' worth of state over one real Redis: the writer's changes reach a follower."""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest

from correspondance.store import create_store
from realtime.writer import LiveFollower, LiveWriter
from routing.base import CityBase
from routing.overlay import OverlayHolder, SharedStation, SharedSystem

REDIS_URL = os.environ.get("CORRESPONDANCE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _station(sid: str, bikes: int) -> SharedStation:
    return SharedStation("bikes", sid, f"S{sid}", -30.03, -51.21, "bicycle", bikes, 10 - bikes)


async def test_follower_mirrors_the_writer_through_redis(poa_base: CityBase) -> None:
    prefix = f"test:{uuid.uuid4().hex}:"
    writer_store = create_store(REDIS_URL, prefix=prefix)
    worker_store = create_store(REDIS_URL, prefix=prefix)
    drive = poa_base.streets["drive"]
    writer_holder, worker_holder = OverlayHolder(drive), OverlayHolder(drive)
    writer = LiveWriter("porto-alegre", writer_holder, writer_store)
    follower = LiveFollower("porto-alegre", worker_holder, worker_store)
    system = SharedSystem("bikes", "Bikes", "bicycle", False, True)
    try:
        await writer.apply_gbfs(system, [_station("1", 4)], [])
        await follower.catch_up()  # a worker starting late loads the stored state
        assert [s.vehicles_available for s in worker_holder.current.stations] == [4]

        async def consume() -> None:
            async for event in worker_store.subscribe(after_seq=follower.last_seq or 1):
                if await follower.apply(event):
                    return

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.2)
        await writer.apply_gbfs(system, [_station("1", 0), _station("2", 7)], [])
        await asyncio.wait_for(task, timeout=3)
        got = {s.station_id: s.vehicles_available for s in worker_holder.current.stations}
        assert got == {"1": 0, "2": 7}
        assert worker_holder.current.systems["bikes"].simulated is True
    finally:
        for key in await writer_store.scan_keys("*"):
            await writer_store.delete(key)
        await writer_store.aclose()
        await worker_store.aclose()
