"""Memory tracing for ``bench_soak --trace-memory``: imported by every Python process the
soak starts (this folder is put on their ``PYTHONPATH``), inert unless
``SOAK_MEMTRACE_DIR`` is set.

On the first SIGUSR2 a process counts its objects by type (``gc.get_objects()``) and starts
``tracemalloc``; on the second it counts them again and takes a snapshot, which then holds
only what was allocated *since the first signal and is still alive*: growth, by the line
that allocated it. Both are written to ``$SOAK_MEMTRACE_DIR/<pid>-{base,end}.json``. The
handler runs in the main thread between two bytecodes (the event loop's thread), so the
process pauses for as long as the counting takes (about a second with a city loaded).
With ``SOAK_MEMTRACE_MALLOC_S`` set too, a daemon thread writes every that many seconds a
line to ``$SOAK_MEMTRACE_DIR/<pid>-malloc.jsonl``: RSS, glibc's ``mallinfo2`` (bytes in use
by ``malloc``, free bytes kept in its arenas, bytes in mmapped chunks) and the number of
blocks Python's allocator has handed out, so RSS growth can be told apart as objects still
held (in use grows), memory ``malloc`` keeps after they were freed (free grows), or neither.
With ``SOAK_MEMTRACE_TRIM=1`` the second signal also calls ``malloc_trim(0)`` and records
RSS before and after it (what the allocator gave back).
Nothing here is imported by the product.
"""

from __future__ import annotations

import os
import signal

_DIR = os.environ.get("SOAK_MEMTRACE_DIR")
_FRAMES = 6
_MALLOC_S = float(os.environ.get("SOAK_MEMTRACE_MALLOC_S") or 0)


def _rss_kib() -> int:
    with open(f"/proc/{os.getpid()}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _mallinfo() -> dict[str, int]:
    """glibc's counters in KiB (empty where ``mallinfo2`` is missing)."""
    import ctypes

    class _Info(ctypes.Structure):
        _fields_ = [
            (name, ctypes.c_size_t)
            for name in (
                "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks",
                "uordblks", "fordblks", "keepcost",
            )
        ]  # fmt: skip

    try:
        call = ctypes.CDLL("libc.so.6").mallinfo2
    except (OSError, AttributeError):
        return {}
    call.restype = _Info
    info = call()
    return {
        "in_use_kib": (info.uordblks + info.hblkhd) // 1024,
        "free_kept_kib": info.fordblks // 1024,
        "arena_kib": info.arena // 1024,
        "mmap_kib": info.hblkhd // 1024,
    }


def _sample_malloc() -> None:
    import json
    import sys
    import threading
    import time

    assert _DIR is not None
    path = os.path.join(_DIR, f"{os.getpid()}-malloc.jsonl")

    def loop() -> None:
        while True:
            line = {
                "t": round(time.time(), 1),
                "rss_kib": _rss_kib(),
                "py_blocks": sys.getallocatedblocks(),
                **_mallinfo(),
            }
            with open(path, "a") as f:
                f.write(json.dumps(line) + "\n")
            time.sleep(_MALLOC_S)

    threading.Thread(target=loop, name="memtrace-malloc", daemon=True).start()


def _on_signal(_signum: int, _frame: object) -> None:
    import gc
    import json
    import time
    import tracemalloc
    from collections import Counter

    assert _DIR is not None
    started = time.monotonic()
    if not tracemalloc.is_tracing():
        gc.collect()  # the baseline without pending cyclic garbage
    counts = Counter(type(o).__qualname__ for o in gc.get_objects())
    out: dict[str, object] = {"pid": os.getpid(), "objects": dict(counts.most_common(400))}
    if not tracemalloc.is_tracing():
        tracemalloc.start(_FRAMES)
        name = "base"
    else:
        snapshot = tracemalloc.take_snapshot()
        # what a full collection frees: cyclic garbage still counted above (a full
        # collection runs rarely with millions of long-lived objects), not a leak
        rss_before = _rss_kib()
        out["gc_collected"] = gc.collect()
        collected = tracemalloc.take_snapshot()
        tracemalloc.stop()
        out["rss_gc_kib"] = [rss_before, _rss_kib()]
        out["objects_after_gc"] = dict(
            Counter(type(o).__qualname__ for o in gc.get_objects()).most_common(400)
        )
        out["traced_bytes_after_gc"] = sum(s.size for s in collected.statistics("filename"))
        stats = snapshot.statistics("traceback")
        out["traced_bytes"] = sum(s.size for s in stats)
        out["traced_blocks"] = sum(s.count for s in stats)
        out["top_after_gc"] = [
            {
                "kib": round(s.size / 1024, 1),
                "blocks": s.count,
                "where": [f"{f.filename}:{f.lineno}" for f in s.traceback][::-1],
            }
            for s in collected.statistics("traceback")[:25]
        ]
        out["top"] = [
            {
                "kib": round(s.size / 1024, 1),
                "blocks": s.count,
                "where": [f"{f.filename}:{f.lineno}" for f in s.traceback][::-1],
            }
            for s in stats[:25]
        ]
        name = "end"
        out["malloc"] = _mallinfo()
        if os.environ.get("SOAK_MEMTRACE_TRIM") == "1":
            import ctypes

            before = _rss_kib()
            ctypes.CDLL("libc.so.6").malloc_trim(0)
            out["trim_rss_kib"] = [before, _rss_kib()]
    out["took_s"] = round(time.monotonic() - started, 2)
    with open(os.path.join(_DIR, f"{os.getpid()}-{name}.json"), "w") as f:
        json.dump(out, f)


if _DIR:
    signal.signal(signal.SIGUSR2, _on_signal)
    if _MALLOC_S > 0:
        _sample_malloc()
