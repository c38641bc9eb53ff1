"""Units of the live runtime on the in-process store: trip partitions rebalance and move
after a crash, and a fenced writer that lost its lock writes nothing."""

from __future__ import annotations

import asyncio

import pytest

from correspondance.store import Fence, FencedOutError, MemoryStateStore
from realtime.runtime import TripPartitions, trip_partition
from realtime.writer import LiveWriter, congestion_state_key
from routing.base import CityBase
from routing.overlay import OverlayHolder

pytestmark = pytest.mark.anyio
TTL_S = 0.5


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_partitions_are_shared_fairly_and_taken_over_after_a_crash() -> None:
    store = MemoryStateStore()
    changes: list[str] = []

    def partitions(owner: str) -> TripPartitions:
        async def changed() -> None:
            changes.append(owner)

        return TripPartitions(store, "x", owner, 8, TTL_S, changed)

    a, b = partitions("host:1:a"), partitions("host:2:b")
    await a.step()
    assert a.held == set(range(8))  # alone: every partition
    await b.step()  # a newcomer: a still holds them all this round
    await a.step()  # a sees two engines: releases half
    await b.step()
    assert len(a.held) == len(b.held) == 4
    assert not a.held & b.held
    trip = next(f"trip-{i}" for i in range(100) if trip_partition(f"trip-{i}", 8) in b.held)
    assert b.owns(trip)
    assert not a.owns(trip)
    # b crashes (stops refreshing): its leases and its announcement expire, a takes over
    await asyncio.sleep(TTL_S * 1.5)
    await a.step()
    assert a.held == set(range(8))
    assert a.owns(trip)
    await a.settled()  # the engine re-reads its trips beside the lease keeping
    assert changes.count("host:1:a") == 3  # all, half, all again


async def test_a_fenced_writer_that_lost_its_lock_writes_nothing(poa_base: CityBase) -> None:
    store = MemoryStateStore()
    assert await store.acquire_lock("writer:porto-alegre", "old", 10)
    holder = OverlayHolder(poa_base.streets["drive"])
    writer = LiveWriter(
        "porto-alegre", holder, store, fence=Fence("writer:porto-alegre", "old"), epoch=3
    )
    event = await writer.apply_congestion({42: 2.0})
    assert event is not None
    assert event.payload["writer_epoch"] == 3
    stored = await store.get(congestion_state_key("porto-alegre"))
    # another process takes the lock: the old writer is refused, nothing of it lands
    assert await store.release_lock("writer:porto-alegre", "old")
    assert await store.acquire_lock("writer:porto-alegre", "new", 10)
    with pytest.raises(FencedOutError):
        await writer.apply_congestion({42: 3.0, 43: float("inf")})
    assert await store.get(congestion_state_key("porto-alegre")) == stored
    assert await store.last_event_seq() == event.seq
