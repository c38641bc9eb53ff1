"""Trip engines scale out: throughput of one engine process against two, in the same run.

    python -m benchmarks.bench_engines [--trips 2000] [--affected 400] [--rounds 3]

What is measured is the deployed path, with real processes: a private redis-server, and
``correspondance worker`` processes (role ``worker``: writer election, fusion and the trip
engine on leased trip partitions). The active trips are stored once (real car itineraries
planned on Porto Alegre's streets, each traveller somewhere along its drive); then closures
are reported on the streets ahead of the affected ones through the report repository, so the
writer fuses them and every engine evaluates its own share of the affected trips.

Throughput is affected trips with a delivered suggestion per second, from the first report
(also from the writer's ``congestion.changed``, where the engines' own work starts: fusion
runs on a 1 s cadence in one process and does not split) to the last suggestion announced
on the event stream (a round ends when every affected trip
has one, or when none came for ``--quiet`` seconds: the policy finds no better option for a
few). Each configuration (1 then 2
processes) runs ``--rounds`` times on fresh keys and fresh processes; medians are printed
with the ratio. On a 2-core machine the ideal ratio is 2.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.bench_trips import start_redis
from correspondance.settings import REPO_ROOT, Settings
from correspondance.store import RedisStateStore

CITY = "porto-alegre"
PARTITIONS = 16


def _plans(n_hit: int, n_miss: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Distinct car itineraries through the centre (to be affected) and in the south."""
    from api.app import load_bases
    from correspondance.errors import CorrespondanceError
    from routing.codec import ItineraryOut
    from routing.overlay import OverlayHolder
    from routing.plan import PlanRequest, plan_trip

    bases, _ = load_bases(Settings(), [CITY])
    base = bases[CITY]
    holder = OverlayHolder(base.streets["drive"])
    depart = dt.datetime.combine(base.city.default_date, dt.time(13, 0), tzinfo=base.city.tz)
    rng = np.random.default_rng(11)
    modes = frozenset({"walk", "transit", "car"})

    def car(lat: tuple[float, float], lon: tuple[float, float], k: int) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        while len(out) < k:
            o = (rng.uniform(*lat), rng.uniform(*lon))
            d = (rng.uniform(*lat), rng.uniform(*lon))
            try:
                its = plan_trip(base, PlanRequest(o, d, depart, modes=modes), holder.current)
            except CorrespondanceError:
                continue
            cars = [i for i in its if sum(len(leg.drive_edges) for leg in i.legs) > 20]
            if cars:
                out.append(
                    ItineraryOut.of(cars[0], holder.current).model_dump(mode="json", by_alias=True)
                )
        return out

    return car((-30.045, -30.02), (-51.23, -51.19), n_hit), car(
        (-30.13, -30.09), (-51.24, -51.20), n_miss
    )


async def _store_trips(
    store: RedisStateStore, hits: list[dict[str, Any]], misses: list[dict[str, Any]], n: int, k: int
) -> tuple[set[str], set[int]]:
    from realtime.trips.sessions import TripBook

    book = TripBook(store)
    rng = np.random.default_rng(5)
    affected: set[str] = set()
    closed: set[int] = set()
    for i in range(n):
        hit = i < k
        plan = hits[i % len(hits)] if hit else misses[i % len(misses)]
        drive = next(leg for leg in plan["legs"] if leg["drive_edges"])
        start = dt.datetime.fromisoformat(drive["departure"])
        span = dt.datetime.fromisoformat(drive["arrival"]) - start
        at = start + span * float(rng.uniform(0, 0.3)) if hit else start
        session, _ = await book.create(CITY, "America/Sao_Paulo", plan, ["walk", "car"], at)
        if hit:
            affected.add(session.trip_id)
            edges = drive["drive_edges"]
            closed.update(int(e) for e in edges[len(edges) // 2 : len(edges) // 2 + 2])
    return affected, closed


def _worker(url: str, prefix: str, log: Path) -> subprocess.Popen[bytes]:
    settings = {
        "REDIS_URL": url,
        "CORRESPONDANCE_REDIS_PREFIX": prefix,
        "CORRESPONDANCE_TRIP_PARTITIONS": str(PARTITIONS),
        "CORRESPONDANCE_FUSION_K": "2",
        "CORRESPONDANCE_SIMULATED_FEEDS_AT": "1795445400",
    }
    env = {k: v for k, v in os.environ.items() if not k.startswith("CORRESPONDANCE_")}
    env.update(settings)
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "api.cli", "worker", "--city", CITY],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def _settled(url: str, quiet_per_s: float = 100.0, timeout_s: float = 60.0) -> None:
    """Wait until the workers' start-up reads are over: Redis serves fewer than
    ``quiet_per_s`` commands a second (lease keeping and feeds only), for one second."""
    from redis.asyncio import Redis

    client = Redis.from_url(url)
    try:
        deadline = time.monotonic() + timeout_s
        before = int((await client.info("stats"))["total_commands_processed"])
        while time.monotonic() < deadline:
            await asyncio.sleep(1.0)
            now = int((await client.info("stats"))["total_commands_processed"])
            if now - before < quiet_per_s:
                return
            before = now
    finally:
        await client.aclose()


async def _round(
    url: str, engines: int, plans: tuple[list[dict[str, Any]], list[dict[str, Any]]], args: Any
) -> tuple[float, float]:
    from crowdsource.models import Report
    from crowdsource.repository import ReportRepository

    prefix = f"bench-engines:{uuid.uuid4().hex[:8]}:"
    store = RedisStateStore(url, prefix=prefix)
    affected, closed = await _store_trips(store, *plans, args.trips, args.affected)
    folder = Path(tempfile.mkdtemp(prefix="bench-engines-"))
    workers = [_worker(url, prefix, folder / f"worker-{i}.log") for i in range(engines)]
    try:
        deadline = time.monotonic() + 300
        while True:  # every process up, warmed and holding its share of the partitions
            logs = [(folder / f"worker-{i}.log").read_text() for i in range(engines)]
            held = [await store.get(f"lock:trips:{CITY}:{p}") for p in range(PARTITIONS)]
            owners = {owner.split(b":")[1] for owner in held if owner}  # host:pid:random
            if all("running for" in text for text in logs) and len(owners) == engines:
                break
            if time.monotonic() > deadline or any(w.poll() is not None for w in workers):
                raise RuntimeError("workers did not start:\n" + "\n".join(logs))
            await asyncio.sleep(0.2)
        await _settled(url)  # the engines have indexed their trips
        repository = ReportRepository(store, CITY)
        seen: set[str] = set()
        async with store.subscribe() as events:
            started = time.perf_counter()
            now = time.time()
            for i in range(3):  # three contributors on three networks (k = 2) close them
                await repository.add(
                    Report(
                        report_id=uuid.uuid4().hex,
                        contributor=f"{i}" * 64,
                        lat=-30.0277,
                        lon=-51.2287,
                        kind="closure",
                        level=None,
                        heading=None,
                        mode="car",
                        observed_at=now,
                        received_at=now,
                        edge_ids=tuple(sorted(closed)),
                        city=CITY,
                        origin=f"network-{i}",
                    )
                )
            last = started
            fused: float | None = None  # the writer's congestion.changed: engines start here
            limit = started + args.timeout
            # until every affected trip has one, or nothing new came for --quiet seconds (the
            # policy finds no better option for some)
            while len(seen & affected) < len(affected) and time.perf_counter() < limit:
                if seen & affected and time.perf_counter() - last > args.quiet:
                    break
                try:
                    event = await asyncio.wait_for(anext(events), 1.0)
                except TimeoutError:
                    continue
                if event.type == "congestion.changed" and fused is None:
                    fused = time.perf_counter()
                if event.type == "trip.messages":
                    new = set(event.payload["trips"]) - seen
                    if new & affected:
                        last = time.perf_counter()
                    seen |= new
        delivered = len(seen & affected)
        took = last - started
        engine_took = last - (fused if fused is not None else started)
        print(
            f"  {engines} engine process(es): {delivered}/{len(affected)} suggestions "
            f"in {took:.2f} s from the first report, {engine_took:.2f} s from the fused closure",
            file=sys.stderr,
        )
        return (
            delivered / took if took > 0 else 0.0,
            delivered / engine_took if engine_took > 0 else 0.0,
        )
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            w.wait(30)
        for key in await store.scan_keys("*"):
            await store.delete(key)
        await store.aclose()


async def main_async(args: Any) -> dict[str, Any]:
    process, url = start_redis()
    try:
        plans = _plans(40, 25)
        results: dict[int, list[tuple[float, float]]] = {1: [], 2: []}
        for _ in range(args.rounds):
            for engines in (1, 2):  # interleaved: both see the same machine state
                results[engines].append(await _round(url, engines, plans, args))
    finally:
        process.kill()
        process.wait(10)
    one, two = (statistics.median(r[0] for r in results[e]) for e in (1, 2))
    one_engine, two_engine = (statistics.median(r[1] for r in results[e]) for e in (1, 2))
    return {
        "trips": args.trips,
        "affected": args.affected,
        "rounds": args.rounds,
        "one_per_s": one,
        "two_per_s": two,
        "ratio": two / one if one else 0.0,
        "one_engine_per_s": one_engine,
        "two_engine_per_s": two_engine,
        "engine_ratio": two_engine / one_engine if one_engine else 0.0,
        "all": {str(k): v for k, v in results.items()},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trips", type=int, default=2000)
    parser.add_argument("--affected", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=120.0, help="per round, seconds")
    parser.add_argument("--quiet", type=float, default=8.0, help="end a round after this long")
    parser.add_argument("--out", type=Path, help="also write the results as JSON")
    args = parser.parse_args()
    if not 0 < args.affected <= args.trips:
        parser.error("--affected must be between 1 and --trips")
    result = asyncio.run(main_async(args))
    print("| engine processes | trips / s from the first report | from the fused closure |")
    print("|---|---|---|")
    print(f"| 1 | {result['one_per_s']:.1f} | {result['one_engine_per_s']:.1f} |")
    print(f"| 2 | {result['two_per_s']:.1f} | {result['two_engine_per_s']:.1f} |")
    print(f"\nratio 2 / 1: {result['ratio']:.2f} (target ≥ 1.6)")
    print(f"ratio 2 / 1 from the fused closure: {result['engine_ratio']:.2f}")
    if args.out:
        args.out.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
