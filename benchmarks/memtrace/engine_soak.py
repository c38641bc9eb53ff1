"""Where a trip-engine worker's memory goes, without the full soak (diagnosis, not CI).

    python -m benchmarks.memtrace.engine_soak [--minutes 4] [--trips 1000] [--churn flat]

Starts a private ``redis-server`` and ``--workers`` real ``correspondance worker`` processes
(writer election, fusion, the trip engine on leased partitions: what the soak's workers run),
each with :mod:`benchmarks.memtrace.sitecustomize` on its path. Stores ``--trips`` active trips
(car itineraries planned here on Porto Alegre's streets), then for ``--minutes`` feeds the
workers what the soak's API processes would: congestion reports on the trips' drive legs
through the report repository (``--report-rate``; fusion then moves the congestion map and the
engines evaluate the trips it touches) and new trips (``--trip-rate``). ``--churn flat`` ends
one of the trips it started for every new one once ``--trip-rate × warm-up`` of them run, so
the active population stays flat; ``--churn grow`` never ends one (as the soak did).

Measured per worker, from the end of ``--warm`` to the end: RSS growth and slope, the active
trips, glibc's bytes in use and kept free (``SOAK_MEMTRACE_MALLOC_S``), tracemalloc's
allocations still held by line, and the object types whose number grew. With ``--trim`` the
final snapshot also runs ``malloc_trim(0)`` and shows what it gave back.
Everything runs on a private Redis: no key is left in the shared one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from benchmarks.bench_soak import _slope
from benchmarks.bench_trips import rss_kib, start_redis
from correspondance.settings import REPO_ROOT
from correspondance.store import RedisStateStore

CITY = "porto-alegre"
TZ = "America/Sao_Paulo"
MEMTRACE = Path(__file__).resolve().parent
PREFIX = "memsoak:"


def _itineraries(n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` distinct car itineraries through the centre, long enough to outlive the run."""
    from routing.wire import ItineraryOut

    from api.app import load_bases
    from correspondance.errors import CorrespondanceError
    from correspondance.settings import Settings
    from routing.overlay import OverlayHolder
    from routing.plan import PlanRequest, plan_trip

    bases, _ = load_bases(Settings(), [CITY])
    base = bases[CITY]
    holder = OverlayHolder(base.streets["drive"])
    depart = dt.datetime.combine(base.city.default_date, dt.time(13, 0), tzinfo=base.city.tz)
    rng = random.Random(seed)
    modes = frozenset({"walk", "transit", "car"})
    out: list[dict[str, Any]] = []
    while len(out) < n:
        o = (rng.uniform(-30.06, -30.0), rng.uniform(-51.24, -51.17))
        d = (rng.uniform(-30.06, -30.0), rng.uniform(-51.24, -51.17))
        try:
            its = plan_trip(base, PlanRequest(o, d, depart, modes=modes), holder.current)
        except CorrespondanceError:
            continue
        cars = [i for i in its if sum(len(leg.drive_edges) for leg in i.legs) > 40]
        if cars:
            it = ItineraryOut.of(cars[0], holder.current).model_dump(mode="json", by_alias=True)
            out.append(it)
    return out


def _worker(url: str, folder: Path, i: int, ttl_s: float) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CORRESPONDANCE_")}
    env |= {
        "REDIS_URL": url,
        "CORRESPONDANCE_REDIS_PREFIX": PREFIX,
        "CORRESPONDANCE_WRITER_LOCK_TTL_S": str(ttl_s),
        "CORRESPONDANCE_SIMULATED_FEEDS_AT": "1795445400",
        "CORRESPONDANCE_LIVE_FEEDS": "true",
        "PYTHONPATH": os.pathsep.join([str(MEMTRACE), str(REPO_ROOT)]),
        "PYTHONUNBUFFERED": "1",
        "SOAK_MEMTRACE_DIR": str(folder),
        "SOAK_MEMTRACE_MALLOC_S": "5",
    }
    with (folder / f"worker-{i}.log").open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "api.cli", "worker", "--city", CITY],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def _start_trip(book: Any, plan: dict[str, Any]) -> str:
    drive = next(leg for leg in plan["legs"] if leg["drive_edges"])
    at = dt.datetime.fromisoformat(drive["departure"])
    session, _ = await book.create(CITY, TZ, plan, ["walk", "car"], at)
    return str(session.trip_id)


async def run(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    from crowdsource.models import Report
    from crowdsource.repository import ReportRepository
    from realtime.trips.commands import end
    from realtime.trips.sessions import TRIP_ENDED, TripBook

    plans = _itineraries(args.itineraries, args.seed)
    edges = sorted({e for p in plans for leg in p["legs"] for e in leg["drive_edges"]})
    redis, url = start_redis()
    workers: list[subprocess.Popen[bytes]] = []
    store = RedisStateStore(url, prefix=PREFIX)
    rng = random.Random(args.seed)
    try:
        book = TripBook(store)
        for i in range(args.trips):
            await _start_trip(book, plans[i % len(plans)])
        workers = [_worker(url, folder, i, args.writer_ttl) for i in range(args.workers)]
        deadline = time.monotonic() + 900
        while not all(
            "running for" in (folder / f"worker-{i}.log").read_text(errors="replace")
            for i in range(args.workers)
        ):
            if time.monotonic() > deadline or any(w.poll() is not None for w in workers):
                raise RuntimeError(f"workers did not start (logs in {folder})")
            await asyncio.sleep(0.5)
        print(f"{args.workers} workers running; load for {args.minutes} min", flush=True)
        repository = ReportRepository(store, CITY)
        contributors = [f"{i:064x}" for i in range(300)]
        churn: list[str] = []
        rss: dict[int, list[tuple[float, float]]] = {w.pid: [] for w in workers}
        active: list[tuple[float, int]] = []
        t0 = time.monotonic()
        end_at = t0 + args.minutes * 60
        warm_at = t0 + args.warm
        traced = False
        next_report = next_trip = next_sample = t0
        ended = started = reports = 0
        while (now := time.monotonic()) < end_at:
            if now >= next_sample:
                for w in workers:
                    rss[w.pid].append((round(now - t0, 1), rss_kib(w.pid)))
                active.append((round(now - t0, 1), len(await book.active(CITY))))
                next_sample += 5
            if not traced and now >= warm_at:
                for w in workers:
                    os.kill(w.pid, signal.SIGUSR2)
                traced = True
                args.warm_wall = time.time()
            if now >= next_report:
                wall = time.time()
                k = rng.randrange(len(edges))
                await repository.add(
                    Report(
                        report_id=uuid.uuid4().hex,
                        contributor=rng.choice(contributors),
                        lat=-30.03,
                        lon=-51.22,
                        kind="congestion",
                        level=rng.randint(2, 4),
                        heading=None,
                        mode="car",
                        observed_at=wall,
                        received_at=wall,
                        edge_ids=tuple(edges[k : k + 3]),
                        city=CITY,
                        origin=f"network-{rng.randrange(50)}",
                    )
                )
                reports += 1
                next_report += 1 / args.report_rate
            if args.trip_rate > 0 and now >= next_trip:
                churn.append(await _start_trip(book, rng.choice(plans)))
                started += 1
                if args.churn == "flat" and len(churn) > args.trip_rate * args.warm:
                    gone = churn.pop(0)
                    with contextlib.suppress(Exception):  # the engine may have ended it
                        wall_dt = dt.datetime.now(dt.UTC)
                        await book.change(gone, end("arrived", wall_dt), event=TRIP_ENDED)
                        ended += 1
                next_trip += 1 / args.trip_rate
            await asyncio.sleep(0.02)
        for w in workers:
            rss[w.pid].append((round(time.monotonic() - t0, 1), rss_kib(w.pid)))
            os.kill(w.pid, signal.SIGUSR2)
        active.append((round(time.monotonic() - t0, 1), len(await book.active(CITY))))
        await asyncio.sleep(15)  # the handlers write their snapshots
        return _summary(args, folder, workers, rss, active, started, ended, reports)
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            with contextlib.suppress(subprocess.TimeoutExpired):
                w.wait(timeout=20)
            if w.poll() is None:
                w.kill()
        await store.aclose()
        redis.terminate()
        redis.wait(timeout=10)


def _summary(
    args: argparse.Namespace,
    folder: Path,
    workers: list[subprocess.Popen[bytes]],
    rss: dict[int, list[tuple[float, float]]],
    active: list[tuple[float, int]],
    started: int,
    ended: int,
    reports: int,
) -> dict[str, Any]:
    base_active = next((n for t, n in active if t >= args.warm), active[-1][1])
    out: dict[str, Any] = {
        "config": vars(args),
        "trips_started": started,
        "trips_ended_by_harness": ended,
        "reports": reports,
        "active_trips": {"at_warm_up": base_active, "at_end": active[-1][1]},
        "workers": {},
    }
    for w in workers:
        series = rss[w.pid]
        steady = [s for s in series if s[0] >= args.warm]
        entry: dict[str, Any] = {"rss_series_mib": [(t, round(k / 1024, 1)) for t, k in series]}
        if len(steady) >= 2:
            entry |= {
                "baseline_mib": round(steady[0][1] / 1024, 1),
                "end_mib": round(steady[-1][1] / 1024, 1),
                "growth_pct": round(100 * (steady[-1][1] - steady[0][1]) / steady[0][1], 2),
                "slope_mib_per_min": round(_slope(steady) * 60 / 1024, 2),
            }
        malloc_path = folder / f"{w.pid}-malloc.jsonl"
        if malloc_path.exists():
            lines = [json.loads(x) for x in malloc_path.read_text().splitlines() if x]
            entry["malloc_first_last"] = [lines[0], lines[-1]] if lines else []
            t_warm = getattr(args, "warm_wall", 0.0)
            warm = [x for x in lines if x["t"] >= t_warm]
            if len(warm) >= 2:
                entry["malloc_steady_delta_kib"] = {
                    k: warm[-1][k] - warm[0][k] for k in warm[0] if k != "t"
                }
        base_f, end_f = folder / f"{w.pid}-base.json", folder / f"{w.pid}-end.json"
        if base_f.exists() and end_f.exists():
            before = json.loads(base_f.read_text())["objects"]
            after = json.loads(end_f.read_text())
            grown = Counter({k: n - before.get(k, 0) for k, n in after["objects"].items()})
            final = after.get("objects_after_gc", {})
            kept = Counter({k: n - before.get(k, 0) for k, n in final.items()})
            entry |= {
                "traced_kib": round(after["traced_bytes"] / 1024, 1),
                "top": [
                    f"{t['kib']} KiB in {t['blocks']} blocks: "
                    + " < ".join(x.replace(str(REPO_ROOT) + "/", "") for x in t["where"][:4])
                    for t in after["top"][:12]
                ],
                "objects_grown": {k: n for k, n in grown.most_common(15) if n > 0},
                "gc_collected": after.get("gc_collected"),
                "rss_gc_kib": after.get("rss_gc_kib"),
                "traced_kib_after_gc": round(after.get("traced_bytes_after_gc", 0) / 1024, 1),
                "top_after_gc": [
                    f"{t['kib']} KiB in {t['blocks']} blocks: "
                    + " < ".join(x.replace(str(REPO_ROOT) + "/", "") for x in t["where"][:4])
                    for t in after.get("top_after_gc", [])[:12]
                ],
                "objects_grown_after_gc": {k: n for k, n in kept.most_common(15) if n > 0},
                "malloc_at_end": after.get("malloc"),
                "trim_rss_kib": after.get("trim_rss_kib"),
            }
        out["workers"][str(w.pid)] = entry
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=4.0)
    parser.add_argument("--warm", type=float, default=60.0, help="seconds before the baseline")
    parser.add_argument("--trips", type=int, default=1000, help="active trips at the start")
    parser.add_argument("--itineraries", type=int, default=12)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--report-rate", type=float, default=5.0)
    parser.add_argument("--trip-rate", type=float, default=0.5)
    parser.add_argument("--churn", choices=("flat", "grow"), default="flat")
    parser.add_argument("--writer-ttl", type=float, default=5.0)
    parser.add_argument("--trim", action="store_true", help="malloc_trim(0) at the end")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.trim:
        os.environ["SOAK_MEMTRACE_TRIM"] = "1"
    folder = Path(tempfile.mkdtemp(prefix="memsoak-"))
    result = asyncio.run(run(args, folder))
    result["config"] = {k: str(v) for k, v in vars(args).items()}
    text = json.dumps(result, indent=1)
    if args.out is not None:
        args.out.write_text(text)
    for pid, w in result["workers"].items():
        print(
            f"worker {pid}: "
            + json.dumps({k: v for k, v in w.items() if k != "rss_series_mib"}, indent=1)
        )
    print(
        "active trips:",
        result["active_trips"],
        "started",
        result["trips_started"],
        "ended",
        result["trips_ended_by_harness"],
        "reports",
        result["reports"],
        "logs",
        folder,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
