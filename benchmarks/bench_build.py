"""Build and start-up benchmark of one city: cold build, warm start, peak memory.

Every measurement runs in a fresh Python subprocess, so imports, numba's JIT cache and
the allocator start from scratch each time, as they do for ``correspondance build`` and
``correspondance serve``:

- **cold build**: an empty temporary build cache and an empty numba cache; the child runs
  ``load_or_build`` (which builds and writes the cache). Timed from process start to exit.
- **warm start**: the cache the cold build wrote; the child runs ``load_or_build`` and
  answers one ``plan_trip`` query, i.e. everything before the app could serve a request.
  Timed from process start to the first answer. Repeated, the median is reported.
- **peak RSS**: ``ru_maxrss`` of that one child, from ``os.wait4`` (``RUSAGE_CHILDREN``
  would give the maximum over *all* children, not each one).

Run ``.venv/bin/python -m benchmarks.bench_build`` (or ``benchmarks/run``) from the
repository root. Exit status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
GIB = 1024**3
TARGET_COLD_S = 60.0
TARGET_WARM_S = 3.0
TARGET_RSS_B = int(1.5 * GIB)
# A query the API tests also make: the centre of Porto Alegre to the east side.
QUERIES: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {
    "porto-alegre": ((-30.0346, -51.2177), (-30.0277, -51.1793)),
}


@dataclass(frozen=True)
class Sample:
    """One child process, as the parent saw it and as it reported itself.

    ``ready_s`` runs from the spawn to the moment the child had its answer (built and
    cached, or loaded and planned); ``wall_s`` also includes interpreter teardown.
    ``startup_s`` is the interpreter start before the child's first line of work.
    """

    wall_s: float
    ready_s: float
    startup_s: float
    peak_rss_b: int
    import_s: float
    load_s: float
    query_s: float
    from_cache: bool
    itineraries: int


# --- the child: one cold build or one warm start ----------------------------------------


def _query_points(base: Any) -> tuple[tuple[float, float], tuple[float, float]]:
    """Two stops linked to the walk network and far apart, for cities without a set query."""
    import numpy as np

    tt = base.timetable
    linked = np.flatnonzero(base.stop_links.edge >= 0)
    first = int(linked[0])
    far = int(
        linked[np.argmax(np.hypot(tt.stop_lat[linked] - tt.stop_lat[first], tt.stop_lon[linked]))]
    )
    return (
        (float(tt.stop_lat[first]), float(tt.stop_lon[first])),
        (float(tt.stop_lat[far]), float(tt.stop_lon[far])),
    )


def run_child(stage: str, city_id: str, cache_dir: Path, result_path: Path) -> None:
    """Do one cold build or warm start in this process and write what happened as JSON."""
    started_at = time.monotonic()  # CLOCK_MONOTONIC: comparable across processes (Linux)
    started = time.perf_counter()
    from correspondance.cities import discover_cities, get_city
    from correspondance.settings import Settings
    from routing.base import load_or_build
    from routing.plan import PlanRequest, plan_trip

    imported = time.perf_counter()
    settings = Settings(cache_dir=cache_dir)
    city = get_city(discover_cities(settings.data_dir), city_id)
    base, from_cache = load_or_build(city, cache_dir, settings.max_transfer_walk_m)
    loaded = time.perf_counter()
    if from_cache != (stage == "warm"):
        raise SystemExit(f"{stage} run: expected from_cache={stage == 'warm'}, got {from_cache}")
    itineraries = 0
    if stage == "warm":
        origin, destination = QUERIES.get(city.id) or _query_points(base)
        depart = dt.datetime.combine(city.default_date, city.default_time, tzinfo=city.tz)
        answer = plan_trip(base, PlanRequest(origin, destination, depart))
        itineraries = len(answer)
        if not itineraries:
            raise SystemExit("warm run: the first plan query found no itinerary")
    answered = time.perf_counter()
    answered_at = time.monotonic()
    result_path.write_text(
        json.dumps(
            {
                "import_s": imported - started,
                "load_s": loaded - imported,
                "query_s": answered - loaded,
                "from_cache": from_cache,
                "itineraries": itineraries,
                "started_at": started_at,
                "answered_at": answered_at,
            }
        ),
        encoding="utf-8",
    )


# --- the parent: spawn children, collect wall time and rusage ----------------------------


def spawn(stage: str, city_id: str, cache_dir: Path, numba_dir: Path) -> Sample:
    """Run one child to completion; its wall time is measured from before the spawn."""
    with tempfile.TemporaryDirectory(prefix="corr-bench-") as tmp:
        result_path = Path(tmp) / "result.json"
        log_path = Path(tmp) / "child.log"
        env = {**os.environ, "NUMBA_CACHE_DIR": str(numba_dir)}
        command = [
            sys.executable,
            "-m",
            "benchmarks.bench_build",
            "--child",
            stage,
            "--city",
            city_id,
            "--cache-dir",
            str(cache_dir),
            "--result",
            str(result_path),
        ]
        with log_path.open("wb") as log:
            spawned_at = time.monotonic()
            child = subprocess.Popen(
                command, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
            )
            _, status, usage = os.wait4(child.pid, 0)
            wall = time.monotonic() - spawned_at
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0 or not result_path.is_file():
            tail = log_path.read_text(encoding="utf-8", errors="replace")[-3000:]
            raise SystemExit(f"{stage} run failed (exit {child.returncode}):\n{tail}")
        reported = json.loads(result_path.read_text(encoding="utf-8"))
    return Sample(
        wall_s=wall,
        ready_s=reported.pop("answered_at") - spawned_at,
        startup_s=reported.pop("started_at") - spawned_at,
        peak_rss_b=usage.ru_maxrss * 1024,  # Linux reports ru_maxrss in KiB
        **reported,
    )


def _verdict(ok: bool) -> str:
    return "pass" if ok else "FAIL"


def report(city_id: str, cold: Sample, warm: list[Sample]) -> bool:
    """Print the results table; True when every target is met."""
    warm_ready = statistics.median(s.ready_s for s in warm)
    warm_rss = statistics.median(s.peak_rss_b for s in warm)
    rows = [
        ("cold build (process start → cached)", cold.ready_s, TARGET_COLD_S, "s"),
        (
            f"warm start (process start → first plan), median of {len(warm)}",
            warm_ready,
            TARGET_WARM_S,
            "s",
        ),
        ("peak RSS, cold build", cold.peak_rss_b / GIB, TARGET_RSS_B / GIB, "GiB"),
        (f"peak RSS, warm start, median of {len(warm)}", warm_rss / GIB, TARGET_RSS_B / GIB, "GiB"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"\nBuild benchmark: {city_id}")
    print(f"{'metric':<{width}}  {'measured':>10}  {'target':>10}  result")
    passed = True
    for label, measured, target, unit in rows:
        ok = measured <= target
        passed &= ok
        shown = f"{measured:.2f} {unit}"
        print(f"{label:<{width}}  {shown:>10}  {f'≤ {target:g} {unit}':>10}  {_verdict(ok)}")

    def med(values: Iterable[float]) -> str:
        return f"{statistics.median(values):.2f}"

    print(
        f"\nwarm start, medians: interpreter start {med(s.startup_s for s in warm)} s, "
        f"imports {med(s.import_s for s in warm)} s, load cache {med(s.load_s for s in warm)} s, "
        f"first plan {med(s.query_s for s in warm)} s ({warm[0].itineraries} itinerary(ies)); "
        f"exit {med(s.wall_s - s.ready_s for s in warm)} s (not counted)"
    )
    print("warm start, each run: " + ", ".join(f"{s.ready_s:.2f}" for s in warm) + " s")
    print(
        f"cold build: interpreter start {cold.startup_s:.2f} s, imports {cold.import_s:.2f} s, "
        f"load_or_build {cold.load_s:.1f} s; exit {cold.wall_s - cold.ready_s:.2f} s (not counted)"
    )
    return passed


def main(argv: list[str] | None = None) -> int:
    """Benchmark entry point (also the child's, with ``--child``)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_build")
    parser.add_argument("--city", default="porto-alegre")
    parser.add_argument("--repeats", type=int, default=5, help="warm starts to run")
    parser.add_argument("--child", choices=["cold", "warm"], help=argparse.SUPPRESS)
    parser.add_argument("--cache-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        run_child(args.child, args.city, args.cache_dir, args.result)
        return 0
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")

    work = Path(tempfile.mkdtemp(prefix="corr-bench-cache-"))
    try:
        cache_dir, numba_dir = work / "cache", work / "numba"
        cache_dir.mkdir()
        numba_dir.mkdir()
        print(f"cold build of {args.city} into an empty cache ({cache_dir})…", flush=True)
        cold = spawn("cold", args.city, cache_dir, numba_dir)
        warm = []
        for i in range(args.repeats):
            print(f"warm start {i + 1}/{args.repeats}…", flush=True)
            warm.append(spawn("warm", args.city, cache_dir, numba_dir))
        return 0 if report(args.city, cold, warm) else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
