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


_MMAP_PROBE = """
import ctypes, sys
from realtime import heap

class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks",
                "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

mallinfo2 = ctypes.CDLL("libc.so.6").mallinfo2
mallinfo2.restype = Info
if sys.argv[1] == "tuned":
    assert heap.tune()
# free an 8 MiB mapping first: glibc's dynamic threshold then rises to 8 MiB
big = ctypes.create_string_buffer(8 << 20)
del big
before = mallinfo2().hblks
block = ctypes.create_string_buffer(2 << 20)  # 2 MiB: mapped on its own only if tuned
print(mallinfo2().hblks - before)
"""


@pytest.mark.parametrize(("mode", "mapped"), [("tuned", 1), ("default", 0)])
def test_tune_fixes_the_mmap_threshold_so_big_blocks_go_back_when_freed(
    mode: str, mapped: int
) -> None:
    # a fresh interpreter: the allocator settings are process-wide and sticky
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-c", _MMAP_PROBE, mode], capture_output=True, text=True, check=True
    )
    assert int(out.stdout.strip()) == mapped


async def test_the_worker_role_tunes_the_allocator(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[int, int]] = []
    monkeypatch.setattr(heap, "tune", lambda: calls.append((heap.ARENA_MAX, heap.MMAP_THRESHOLD)))
    runtime = LiveRuntime(Settings(role="worker"), MemoryStateStore(), {}, {})
    await runtime.start()
    try:
        assert calls == [(2, 1 << 20)]
    finally:
        await runtime.stop()
