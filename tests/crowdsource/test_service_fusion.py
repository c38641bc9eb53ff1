"""The writer process fuses reports once a second: a corroborated jam reaches the overlay
in about a second, and only the process holding the writer lock fuses."""

from __future__ import annotations

import asyncio
import time

import pytest
from crowdsource_helpers import CITY, make_report

from correspondance.store import Fence, StateStore
from crowdsource.repository import ReportRepository
from realtime.runtime import WriterElection
from realtime.service import LiveService
from routing.base import CityBase
from routing.overlay import OverlayHolder

pytestmark = pytest.mark.anyio


async def _wait_for(predicate: object, timeout_s: float) -> float:
    started = time.perf_counter()
    while not predicate():  # type: ignore[operator]
        if time.perf_counter() - started > timeout_s:
            raise AssertionError(f"not within {timeout_s} s")
        await asyncio.sleep(0.02)
    return time.perf_counter() - started


async def test_the_writer_process_fuses_every_interval(
    poa_base: CityBase, store: StateStore
) -> None:
    holder = OverlayHolder(poa_base.streets["drive"])
    service = LiveService(poa_base, holder, store, fusion_interval_s=0.2, owner="writer-1")
    other = LiveService(poa_base, OverlayHolder(poa_base.streets["drive"]), store, owner="writer-2")

    async def nothing() -> None:
        return None

    async def start(fence: Fence, epoch: int) -> None:
        await service.start(fence, epoch)

    async def start_other(fence: Fence, epoch: int) -> None:
        await other.start(fence, epoch)

    election = WriterElection(store, CITY, "writer-1", 15.0, start, nothing)
    standby = WriterElection(store, CITY, "writer-2", 15.0, start_other, nothing)
    await election.step()
    assert election.leader
    try:
        await standby.step()
        assert not standby.leader  # not the writer: no fusion there
        assert other.fuser is None
        repo = ReportRepository(store, CITY)
        await repo.add(make_report(contributor="a" * 64, origin="n1", edges=(42,)))
        await repo.add(make_report(contributor="b" * 64, origin="n2", edges=(42,)))
        await _wait_for(lambda: holder.current.drive_multiplier[42] > 1.0, 2.0)
        assert holder.current.drive_multiplier[42] == pytest.approx(1.9)
        assert service.fuser is not None
        assert service.fuser.multipliers == {42: pytest.approx(1.9)}
        # a deletion wakes fusion at once
        await repo.delete_all("a" * 64)
        waited = await _wait_for(lambda: holder.current.drive_multiplier[42] == 1.0, 2.0)
        assert waited < 1.0
    finally:
        await service.stop()
        await store.release_lock(election.lock, "writer-1")
