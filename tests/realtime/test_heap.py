"""Freed heap memory goes back to the operating system (:mod:`realtime.heap`), and the
worker role runs the trimming loop (an engine worker's RSS otherwise creeps up with memory
glibc keeps after it was freed)."""

from __future__ import annotations

import asyncio
import os

import pytest

from correspondance.settings import Settings
from correspondance.store import MemoryStateStore
from realtime import heap
from realtime.runtime import LiveRuntime

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _rss_kib() -> int:
    with open(f"/proc/{os.getpid()}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_trim_gives_freed_memory_back() -> None:
    assert heap.available()  # glibc (Linux, the Docker image)
    # 40 MB in blocks under glibc's mmap threshold, touched, all freed but the last: the
    # freed space sits below a block still in use, so malloc keeps it
    blocks = [bytearray(100_000) for _ in range(400)]
    for block in blocks:
        block[::4096] = b"\1" * len(block[::4096])
    kept = blocks[-1]
    del blocks
    before = _rss_kib()
    assert heap.trim()
    assert before - _rss_kib() > 20_000  # KiB
    assert kept[0] == 1


async def test_trim_forever_trims_every_period(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def counted() -> bool:
        calls.append(1)
        return True

    monkeypatch.setattr(heap, "trim", counted)
    task = asyncio.create_task(heap.trim_forever(0.01))
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(calls) >= 3


async def test_the_worker_role_runs_the_trimming_loop_and_the_api_role_does_not() -> None:
    for role, expected in (("worker", True), ("api", False)):
        runtime = LiveRuntime(Settings(role=role), MemoryStateStore(), {}, {})
        await runtime.start()
        try:
            assert ("heap-trim" in runtime.health()["loops"]) is expected
        finally:
            await runtime.stop()
