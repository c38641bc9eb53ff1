"""Earliest arrival on the 2018 NYC subway: run_raptor alone vs a Connection Scan baseline.

500 random stop pairs (fixed seed) on a Wednesday between 07:00 and 20:00, the day's
timetable and every query's access/egress prepared beforehand, so only the searches are
timed. Targets for run_raptor: p50 ≤ 2 ms, p95 ≤ 10 ms. Run with
``.venv/bin/python -m benchmarks.bench_transit``; exits 1 if a target is missed or the two
searches ever disagree.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # also runnable as a script from benchmarks/run
    sys.path.insert(0, str(REPO))

from routing.gtfs_network import StopPoint, load_network, local_to_unix  # noqa: E402
from routing.plan_access import access_times  # noqa: E402
from routing.raptor import run_raptor  # noqa: E402
from tests.routing.test_oracle_nyc import NYC_FEED, ConnectionOracle, _scan  # noqa: E402

DAY = dt.date(2018, 7, 11)
QUERIES = 500
SEED = 20180711
P50_TARGET_MS = 2.0
P95_TARGET_MS = 10.0


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table, return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_transit")
    parser.add_argument("--queries", type=int, default=QUERIES, help="random stop pairs")
    parser.add_argument("--seed", type=int, default=SEED)
    args, _others = parser.parse_known_args(argv)  # benchmarks/run passes its args to all
    n_queries = max(1, args.queries)
    started = time.perf_counter()
    network = load_network([NYC_FEED])
    tt = network.timetable
    day = tt.day(DAY)
    oracle = ConnectionOracle.build(tt.transit, DAY)
    print(
        f"NYC subway {DAY}: {tt.n_stops} stops, {day.n_trips} trips in the day's view, "
        f"{len(oracle.conn[0]):,} connections; set-up {time.perf_counter() - started:.1f} s"
    )
    served = sorted(set(tt.transit.stop_times["stop_id"].astype(str)))
    rng = random.Random(args.seed)
    prepared = []
    for _ in range(n_queries):
        a, b = rng.sample(served, 2)
        local = dt.datetime.combine(DAY, dt.time(7)) + dt.timedelta(
            seconds=rng.randrange(13 * 3600)
        )
        t0 = local_to_unix(network, local) - day.origin_unix
        access = access_times(network, StopPoint(a), outbound=True).seconds
        egress = access_times(network, StopPoint(b), outbound=False).seconds
        sources = {s: t0 + c for s, c in access.items()}
        o_t0 = t0 + day.origin_unix - oracle.origin_unix
        o_src = {oracle.index[str(tt.stop_ids[s])]: o_t0 + c for s, c in access.items()}
        o_tgt = {oracle.index[str(tt.stop_ids[s])]: c for s, c in egress.items()}
        prepared.append(
            (
                sources,
                egress,
                np.array(list(o_src), np.int64),
                np.array(list(o_src.values()), np.int64),
                np.array(list(o_tgt), np.int64),
                np.array(list(o_tgt.values()), np.int64),
            )
        )

    def raptor(q: tuple) -> int | None:  # type: ignore[type-arg]
        journeys = run_raptor(day, tt.n_stops, network.footpaths, tt.min_transfer_s, q[0], q[1], 10)
        return min((j.arrival for j in journeys), default=None)

    def scan(q: tuple) -> int | None:  # type: ignore[type-arg]
        best = _scan(
            *oracle.conn,
            oracle.n_trips,
            oracle.fp_off,
            oracle.fp_to,
            oracle.fp_dur,
            oracle.min_transfer,
            q[2],
            q[3],
            q[4],
            q[5],
        )
        return None if best >= 2**62 else int(best) + oracle.origin_unix - day.origin_unix

    raptor(prepared[0])  # compile (or load the numba cache) outside the timing
    scan(prepared[0])
    times: dict[str, list[float]] = {"run_raptor": [], "connection scan (oracle)": []}
    disagree = 0
    for q in prepared:
        t = time.perf_counter()
        got = raptor(q)
        times["run_raptor"].append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        expected = scan(q)
        times["connection scan (oracle)"].append((time.perf_counter() - t) * 1000)
        disagree += got != expected

    stats = {name: np.percentile(v, [50, 95]) for name, v in times.items()}
    print(f"\n{'search':<26} {'p50 ms':>8} {'p95 ms':>8} {'mean ms':>8}")
    for name, v in times.items():
        p50, p95 = stats[name]
        print(f"{name:<26} {p50:8.3f} {p95:8.3f} {np.mean(v):8.3f}")
    r50, r95 = stats["run_raptor"]
    b50, _ = stats["connection scan (oracle)"]
    print(f"\nmedian ratio run_raptor / baseline: {r50 / b50:.2f}")
    ok = r50 <= P50_TARGET_MS and r95 <= P95_TARGET_MS and disagree == 0
    print(
        f"targets p50 ≤ {P50_TARGET_MS} ms, p95 ≤ {P95_TARGET_MS} ms: "
        f"{'met' if ok else 'MISSED'}; {n_queries - disagree}/{n_queries} earliest arrivals agree"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
