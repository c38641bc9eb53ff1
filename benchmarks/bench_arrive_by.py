"""Door-to-door plan latency leaving at a time and arriving by one (issue 15), and the
cost of a range query.

* d2d depart: Porto Alegre walk + transit, 100 random pairs (as ``bench_routing``),
  2019-05-15 13:00; the before/after comparison for the arrive-by work runs this same
  module on the previous commit's tree (``--depart-only``), alternating with this one.
* d2d arrive: the same pairs arriving by 14:00 (RAPTOR/McRAPTOR on the reversed timetable).
* range: every Pareto-optimal departure in 12:00–13:00 between stops linked to the pairs'
  nearest stops (informative: two exact searches per departure found).

Target: depart p50 within 10 % of the previous commit's, in the same run.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from correspondance.cities import discover_cities  # noqa: E402
from routing.base import load_or_build  # noqa: E402
from routing.plan import PlanRequest, plan_trip  # noqa: E402

SEED = 20190515
PAIRS = 100


def main(argv: list[str] | None = None) -> int:
    """Print p50/p95 per measurement, one line each (``label p50 p95``)."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_arrive_by")
    parser.add_argument("--depart-only", action="store_true", help="for a tree before arrive-by")
    parser.add_argument("--cache", type=Path, default=REPO / "var" / "cache")
    args, _ = parser.parse_known_args(argv)
    rng = np.random.default_rng(SEED)
    base, _ = load_or_build(discover_cities(REPO / "data")["porto-alegre"], args.cache)
    walk = base.streets["walk"]
    tz = base.city.tz
    pairs = []
    while len(pairs) < PAIRS:
        a, b = rng.integers(0, walk.n_nodes, 2)
        o = (float(walk.node_lat[a]), float(walk.node_lon[a]))
        d = (float(walk.node_lat[b]), float(walk.node_lon[b]))
        if base.city.contains(*o) and base.city.contains(*d):
            pairs.append((o, d))
    depart = dt.datetime(2019, 5, 15, 13, 0, tzinfo=tz)
    arrive = dt.datetime(2019, 5, 15, 14, 0, tzinfo=tz)
    cases: list[tuple[str, dict[str, object]]] = [("d2d depart w+t", {"depart": depart})]
    if not args.depart_only:
        cases.append(("d2d arrive w+t", {"depart": arrive, "arrive_by": True}))
    for label, extra in cases:
        plan_trip(base, PlanRequest(*pairs[0], **extra))  # type: ignore[arg-type]  # warm
        samples = []
        for o, d in pairs:
            start = time.perf_counter()
            plan_trip(base, PlanRequest(o, d, **extra))  # type: ignore[arg-type]
            samples.append(time.perf_counter() - start)
        p50, p95 = np.percentile(np.array(samples) * 1000, [50, 95])
        print(f"{label:<20} {p50:8.2f} {p95:8.2f}", flush=True)
    if not args.depart_only:
        bench_range(base, pairs)
    return 0


def bench_range(base, pairs) -> None:  # type: ignore[no-untyped-def]
    from routing.raptor import run_raptor_range

    tt = base.timetable
    day = tt.day(dt.date(2019, 5, 15))
    fp = base.footpaths(1.3)
    near = base.stop_links.edge >= 0
    lat, lon = tt.stop_lat, tt.stop_lon
    samples, found = [], []
    for o, d in pairs[:30]:
        src = int(np.argmin(np.where(near, (lat - o[0]) ** 2 + (lon - o[1]) ** 2, np.inf)))
        dst = int(np.argmin(np.where(near, (lat - d[0]) ** 2 + (lon - d[1]) ** 2, np.inf)))
        start = time.perf_counter()
        journeys = run_raptor_range(
            day, tt.n_stops, fp, tt.min_transfer_s, {src: 0}, {dst: 0}, 12 * 3600, 13 * 3600, 5
        )
        samples.append(time.perf_counter() - start)
        found.append(len(journeys))
    p50, p95 = np.percentile(np.array(samples) * 1000, [50, 95])
    print(f"{'range 12-13h':<20} {p50:8.2f} {p95:8.2f}  ({np.median(found):.0f} departures)")


if __name__ == "__main__":
    sys.exit(main())
