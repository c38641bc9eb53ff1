"""Give the memory a process has freed back to the operating system, once in a while.

A trip-engine worker allocates and frees large numpy arrays from several threads all day
(repairs and replans run in threads; every writer term builds its feed simulators): glibc
keeps what was freed in its arenas for reuse instead of returning it, so the resident size
creeps up while nothing more is held. Measured by ``benchmarks/memtrace/engine_soak.py``
(1,000 trips, reports and trips started and ended at a steady rate, two workers): over the
steady period a worker's RSS grew 16 MiB while the bytes ``malloc`` had in use *fell*
8 MiB and its freed-but-kept bytes grew 20 MiB; ``malloc_trim(0)`` then gave back 52 MiB.

:func:`trim_forever` calls ``malloc_trim(0)`` every ``period_s`` (a supervised loop of the
worker role, see :class:`realtime.runtime.LiveRuntime`), in a thread so that the event loop
never waits for it. Where the C library has no ``malloc_trim`` (not glibc) it does nothing.

:func:`tune` is called once when an engine role starts: it caps glibc's arenas
(``M_ARENA_MAX``, what ``MALLOC_ARENA_MAX`` sets: each thread that allocates otherwise gets
an arena of its own, and freed memory in one arena is never reused by another) and fixes the
mmap threshold (``M_MMAP_THRESHOLD``): glibc's default threshold *rises* to the size of the
largest mmapped block freed so far (up to 32 MiB), so after the first large numpy array is
freed, later ones of that size come from the heap and leave holes it cannot give back. A
fixed threshold keeps every block of 1 MiB or more in its own mapping, returned to the
system the moment it is freed.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import functools
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger("correspondance.heap")

TRIM_PERIOD_S = 15.0
"""A worker at 2,000 trips frees up to 90 MiB a minute (``engine_soak``): trimming once a
minute let RSS swing by that much; ``malloc_trim`` costs a few milliseconds, in a thread."""
ARENA_MAX = 2
MMAP_THRESHOLD = 1 << 20
_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameters (malloc.h)
_M_ARENA_MAX = -8


@functools.cache
def _libc_function(symbol: str) -> Any:
    """``symbol`` of the C library, or None where it has no such function (not glibc)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return getattr(ctypes.CDLL(name), symbol)
    except (OSError, AttributeError):
        return None


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    call = _libc_function("malloc_trim")
    if call is None:
        return None
    call.argtypes = [ctypes.c_size_t]
    call.restype = ctypes.c_int
    trim: Callable[[int], int] = call
    return trim


@functools.cache
def _mallopt() -> Callable[[int, int], int] | None:
    call = _libc_function("mallopt")
    if call is None:
        return None
    call.argtypes = [ctypes.c_int, ctypes.c_int]
    call.restype = ctypes.c_int
    opt: Callable[[int, int], int] = call
    return opt


def tune(arena_max: int = ARENA_MAX, mmap_threshold: int = MMAP_THRESHOLD) -> bool:
    """Cap the arenas and fix the mmap threshold (see the module's docstring); whether
    the C library took both (False where it has no ``mallopt``)."""
    call = _mallopt()
    if call is None:
        return False
    took = call(_M_ARENA_MAX, arena_max) == 1
    took &= call(_M_MMAP_THRESHOLD, mmap_threshold) == 1
    if not took:
        log.warning("the C library refused the allocator settings")
    return took


def available() -> bool:
    """Whether this C library can give freed memory back (glibc's ``malloc_trim``)."""
    return _malloc_trim() is not None


def trim() -> bool:
    """Return freed heap memory to the operating system; whether some was returned
    (always False where ``malloc_trim`` is missing)."""
    call = _malloc_trim()
    return bool(call(0)) if call is not None else False


async def trim_forever(period_s: float = TRIM_PERIOD_S) -> None:
    """:func:`trim` every ``period_s`` seconds, in a thread (spawn it only where
    :func:`available`)."""
    while True:
        await asyncio.sleep(period_s)
        await asyncio.to_thread(trim)
