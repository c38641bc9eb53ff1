"""Memory tracing for ``bench_soak --trace-memory``: imported by every Python process the
soak starts (this folder is put on their ``PYTHONPATH``), inert unless
``SOAK_MEMTRACE_DIR`` is set.

On the first SIGUSR2 a process counts its objects by type (``gc.get_objects()``) and starts
``tracemalloc``; on the second it counts them again and takes a snapshot, which then holds
only what was allocated *since the first signal and is still alive*: growth, by the line
that allocated it. Both are written to ``$SOAK_MEMTRACE_DIR/<pid>-{base,end}.json``. The
handler runs in the main thread between two bytecodes (the event loop's thread), so the
process pauses for as long as the counting takes (about a second with a city loaded).
Nothing here is imported by the product.
"""

from __future__ import annotations

import os
import signal

_DIR = os.environ.get("SOAK_MEMTRACE_DIR")
_FRAMES = 6


def _on_signal(_signum: int, _frame: object) -> None:
    import gc
    import json
    import time
    import tracemalloc
    from collections import Counter

    assert _DIR is not None
    started = time.monotonic()
    counts = Counter(type(o).__qualname__ for o in gc.get_objects())
    out: dict[str, object] = {"pid": os.getpid(), "objects": dict(counts.most_common(400))}
    if not tracemalloc.is_tracing():
        tracemalloc.start(_FRAMES)
        name = "base"
    else:
        snapshot = tracemalloc.take_snapshot()
        tracemalloc.stop()
        stats = snapshot.statistics("traceback")
        out["traced_bytes"] = sum(s.size for s in stats)
        out["traced_blocks"] = sum(s.count for s in stats)
        out["top"] = [
            {
                "kib": round(s.size / 1024, 1),
                "blocks": s.count,
                "where": [f"{f.filename}:{f.lineno}" for f in s.traceback][::-1],
            }
            for s in stats[:25]
        ]
        name = "end"
    out["took_s"] = round(time.monotonic() - started, 2)
    with open(os.path.join(_DIR, f"{os.getpid()}-{name}.json"), "w") as f:
        json.dump(out, f)


if _DIR:
    signal.signal(signal.SIGUSR2, _on_signal)
