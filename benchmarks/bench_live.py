"""Live-update benchmarks: GBFS and GTFS-RT ingestion, poll → plan latency, plans under load.

* GBFS apply: the 58 real Oslo Bysykkel ``station_status`` snapshots (260 stations) in
  turn, each one different from the last, through :meth:`GbfsPoller.poll_once` with the
  response bytes already in memory: JSON decode + ``parse_station_status`` + building the
  ``SharedStation`` list + ``LiveWriter.apply_gbfs`` (overlay swap, store, event) with a
  ``MemoryStateStore``. Target: median ≤ 5 ms. The same poll over HTTP from a loopback
  ``GbfsServer`` replaying the recording is reported as well (no target).
* GTFS-RT apply: the three NYC subway samples in turn (~300 trip updates each) against the
  2018 static subway timetable: ``parse_feed`` + ``parse_trip_updates`` + ``parse_alerts``
  (the production ``nyc-suffix`` matcher, built once) + ``transit_state`` +
  ``LiveWriter.apply_transit``. Target: median ≤ 100 ms.
* poll → plan: Porto Alegre with a *simulated* station-based bike-share system (260
  stations on real streets, the Oslo volume). A walk + bike-share plan picks up at some
  station; that station is emptied in the next ``station_status``. Timed from the moment
  the poller has the response bytes until a ``plan_trip`` started after the apply returned
  has answered with a different pickup. Target: median ≤ 1 s.
* plans under live overlays: Porto Alegre walk + transit, 50 fixed origin/destination
  pairs at 2019-05-15 13:00, with the empty overlay vs an overlay carrying 1,000 drive
  multipliers, 50 delayed and 20 cancelled trips (real trip ids of that day) and the 260
  simulated stations. Steady state (the delayed day's timetable already built, as between
  two transit polls); target: ratio of medians ≤ 1.2. The first plan after a new delay set
  (which rebuilds the day's timetable) is reported as well (no target).

Run ``.venv/bin/python -m benchmarks.bench_live``; exits 1 if a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # also runnable as a script from benchmarks/run
    sys.path.insert(0, str(REPO))

from correspondance.cities import FeedSource, SimulatorConfig, discover_cities  # noqa: E402
from correspondance.store import MemoryStateStore  # noqa: E402
from feeds.gtfs import load_gtfs  # noqa: E402
from feeds.gtfsrt import parse_alerts, parse_feed, parse_trip_updates  # noqa: E402
from realtime.fetch import Fetched, Fetcher  # noqa: E402
from realtime.gbfs_poller import GbfsPoller  # noqa: E402
from realtime.gbfs_server import GbfsServer, discovery  # noqa: E402
from realtime.gtfsrt_poller import make_matcher  # noqa: E402
from realtime.health import HealthBook  # noqa: E402
from realtime.replay import Recording  # noqa: E402
from realtime.service import street_points  # noqa: E402
from realtime.simulator import GbfsSimulator  # noqa: E402
from realtime.transit import transit_state  # noqa: E402
from realtime.writer import LiveWriter  # noqa: E402
from routing.base import CityBase, load_or_build  # noqa: E402
from routing.overlay import LiveOverlay, OverlayHolder  # noqa: E402
from routing.plan import Itinerary, PlanRequest, plan_trip  # noqa: E402
from routing.timetable import build_base_timetable  # noqa: E402

OSLO_GBFS = REPO / "data" / "oslo" / "gbfs"
NYC_STATIC = REPO / "tests" / "fixtures" / "gtfs" / "nyc-subway-2018" / "nyc_subway.zip"
NYC_RT = REPO / "tests" / "fixtures" / "gtfs-rt" / "nyc"
NYC_SAMPLES = ("a_division.nyct.gtfsrt", "b_division.nyct.gtfsrt", "2_delay.nyct.gtfsrt")
CITY_CACHE = REPO / "var" / "cache"
SEED = 20190515
STATIONS = 260  # the Oslo Bysykkel volume
GTFSRT_RUNS = 60  # 20 of each sample
LATENCY_TRIALS = 20
OD_PAIRS = 50
REPEATS = 3  # plans per pair and overlay in the steady-state comparison
MULTIPLIERS = 1000
DELAYED = 50
CANCELLED = 20
FIRST_PLANS = 10  # new delay sets, each followed by one timed plan
MEM = "mem://feed"  # the in-memory "server" of BytesFetcher


class BytesFetcher(Fetcher):
    """A :class:`Fetcher` answering from memory: the response bytes are already here.

    ``None`` as a body answers 304 Not Modified, as a conditional GET of an unchanged
    document would.
    """

    def __init__(self, bodies: dict[str, bytes | None]) -> None:  # no client: no HTTP
        self.bodies = bodies

    async def get(self, url: str) -> Fetched:
        body = self.bodies[url]
        return Fetched(body, 200 if body is not None else 304)


def dumps(doc: dict[str, Any]) -> bytes:
    """A document as ``GbfsServer`` sends it."""
    return json.dumps(doc, separators=(",", ":")).encode()


def memory_poller(
    source: FeedSource, writer: LiveWriter, store: MemoryStateStore, info: bytes
) -> tuple[GbfsPoller, BytesFetcher]:
    """A real GBFS poller whose fetcher answers from memory (station_information: 304)."""
    names = ["station_information", "station_status"]
    fetcher = BytesFetcher(
        {
            f"{MEM}/gbfs.json": dumps(discovery(MEM, names, 10, int(time.time()))),
            f"{MEM}/station_information.json": info,
        }
    )
    poller = GbfsPoller(source, f"{MEM}/gbfs.json", fetcher, writer, HealthBook(store, writer.city))
    return poller, fetcher


def ms(samples: list[float]) -> tuple[float, float]:
    """(p50, p95) in milliseconds of samples in seconds."""
    p50, p95 = np.percentile(np.array(samples) * 1000, [50, 95])
    return float(p50), float(p95)


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# ----------------------------------------------------------------------------- GBFS apply


async def bench_gbfs_apply() -> tuple[list[float], list[float], int]:
    """Oslo snapshots: (in-memory polls, HTTP polls, overlay versions published)."""
    recording = Recording(OSLO_GBFS)
    epochs = recording.epochs
    bodies = [dumps(recording.status_at(e)) for e in epochs]
    source = FeedSource(id="oslo-bysykkel", name="Oslo Bysykkel", path="gbfs")

    store = MemoryStateStore()
    writer = LiveWriter("oslo", OverlayHolder(None), store)
    poller, fetcher = memory_poller(source, writer, store, dumps(recording.information))
    status_url = f"{MEM}/station_status.json"
    fetcher.bodies[status_url] = bodies[-1]
    assert await poller.poll_once(), "the first Oslo poll failed"
    fetcher.bodies[f"{MEM}/station_information.json"] = None  # unchanged from now on
    in_memory = []
    published = 0
    for body in bodies:
        fetcher.bodies[status_url] = body
        version = writer.holder.current.version
        start = time.perf_counter()
        ok = await poller.poll_once()
        elapsed = time.perf_counter() - start
        assert ok, poller.health.feeds[source.id]
        if writer.holder.current.version != version:  # a snapshot equal to the last: no-op
            in_memory.append(elapsed)
            published += 1
    n_stations = len(writer.holder.current.stations)
    await store.aclose()

    now = [float(epochs[-1])]
    server = GbfsServer(recording.provider(lambda: now[0], "Oslo Bysykkel")).start()
    store = MemoryStateStore()
    writer = LiveWriter("oslo", OverlayHolder(None), store)
    over_http = []
    try:
        async with httpx.AsyncClient(trust_env=False) as client:
            poller = GbfsPoller(
                source, server.discovery_url, Fetcher(client), writer, HealthBook(store, "oslo")
            )
            assert await poller.poll_once(), poller.health.feeds[source.id]
            for epoch in epochs:
                now[0] = float(epoch)
                version = writer.holder.current.version
                start = time.perf_counter()
                ok = await poller.poll_once()
                elapsed = time.perf_counter() - start
                assert ok, poller.health.feeds[source.id]
                if writer.holder.current.version != version:
                    over_http.append(elapsed)
    finally:
        server.stop()
        await store.aclose()
    print(
        f"Oslo Bysykkel: {len(bodies)} station_status snapshots, {n_stations} stations, "
        f"{published} of them differ from the one before (the others are no-ops, not timed)"
    )
    return in_memory, over_http, published


# ----------------------------------------------------------------------------- GTFS-RT


async def bench_gtfsrt() -> list[float]:
    """NYC subway samples in turn through parse → match → transit state → apply."""
    started = time.perf_counter()
    tt = build_base_timetable(load_gtfs([("nyc", NYC_STATIC)]))
    matcher = make_matcher("nyc-suffix", tt)
    tz = ZoneInfo(tt.timezone)
    samples = [(NYC_RT / name).read_bytes() for name in NYC_SAMPLES]
    store = MemoryStateStore()
    writer = LiveWriter("nyc", OverlayHolder(None), store)
    sizes = []

    async def apply(data: bytes) -> bool:
        message = parse_feed(data)
        updates = parse_trip_updates(message, matcher)
        alerts = parse_alerts(message, matcher)
        today = dt.datetime.fromtimestamp(message.header.timestamp, tz).date()
        state = transit_state(tt, updates, alerts, today)
        sizes.append(len(updates.updates))
        return await writer.apply_transit("nyc-subway", state) is not None

    for data in samples:  # the id caches of the timetable, built once per process
        await apply(data)
    print(
        f"NYC subway: timetable of {len(tt.trip_ids):,} trips built in "
        f"{time.perf_counter() - started:.1f} s; samples of {sizes[:3]} trip updates"
    )
    out = []
    for i in range(GTFSRT_RUNS):
        data = samples[i % len(samples)]
        start = time.perf_counter()
        changed = await apply(data)
        out.append(time.perf_counter() - start)
        assert changed, "every sample differs from the one before"
    await store.aclose()
    return out


# ----------------------------------------------------------------------------- Porto Alegre


def simulated_system(base: CityBase, seed: int) -> tuple[FeedSource, GbfsSimulator]:
    """A simulated bike-share system of ``STATIONS`` stations on Porto Alegre's streets."""
    config = SimulatorConfig(form_factor="bicycle", stations=STATIONS, seed=seed)
    source = FeedSource(
        id="sim-bike", name="Bike-share (simulated)", simulate=config, simulated=True
    )
    points = street_points(base, limit=10**9)
    frozen = float(int(time.time()))  # one tick: the feed changes only when told to
    simulator = GbfsSimulator("sim-bike", "Bike-share", config, points, clock=lambda: frozen)
    return source, simulator


def random_pairs(
    base: CityBase, rng: np.random.Generator, n: int, min_m: float = 0.0, max_m: float = 1e9
) -> list[tuple[tuple[float, float], tuple[float, float]]]:
    """Walk-network node pairs inside the city, ``min_m``–``max_m`` apart (straight line)."""
    walk = base.streets["walk"]
    pairs: list[tuple[tuple[float, float], tuple[float, float]]] = []
    while len(pairs) < n:
        a, b = rng.integers(0, walk.n_nodes, 2)
        o = (float(walk.node_lat[a]), float(walk.node_lon[a]))
        d = (float(walk.node_lat[b]), float(walk.node_lon[b]))
        dy = (o[0] - d[0]) * 111_195.0
        dx = (o[1] - d[1]) * 111_195.0 * np.cos(np.radians(o[0]))
        if (
            base.city.contains(*o)
            and base.city.contains(*d)
            and min_m <= float(np.hypot(dx, dy)) <= max_m
        ):
            pairs.append((o, d))
    return pairs


def pickup(plans: list[Itinerary], system_id: str) -> str | None:
    """The station of the best bike-share itinerary's pickup, if there is one."""
    for it in plans:
        for leg in it.legs:
            if leg.system_id == system_id and leg.origin.station_id:
                return leg.origin.station_id
    return None


async def bench_poll_to_plan(
    base: CityBase, rng: np.random.Generator, seed: int
) -> tuple[list[float], list[float]]:
    """(response bytes → plan that sees the change, of which the poll alone) in seconds."""
    source, simulator = simulated_system(base, seed)
    status = simulator.document("station_status", MEM)
    info = simulator.document("station_information", MEM)
    assert status is not None and info is not None
    store = MemoryStateStore()
    holder = OverlayHolder(base.streets["drive"])
    writer = LiveWriter(base.city.id, holder, store)
    poller, fetcher = memory_poller(source, writer, store, dumps(info))
    status_url = f"{MEM}/station_status.json"
    fetcher.bodies[status_url] = dumps(status)
    assert await poller.poll_once(), poller.health.feeds[source.id]
    fetcher.bodies[f"{MEM}/station_information.json"] = None

    depart = dt.datetime(2019, 5, 15, 13, 0, tzinfo=base.city.tz)
    modes = frozenset({"walk", "bikeshare"})
    totals: list[float] = []
    polls: list[float] = []
    tries = 0
    while len(totals) < LATENCY_TRIALS:
        tries += 1
        assert tries < 50 * LATENCY_TRIALS, "too few pairs with a bike-share itinerary"
        ((o, d),) = random_pairs(base, rng, 1, 1500.0, 6000.0)
        request = PlanRequest(o, d, depart, modes=modes)
        before = pickup(plan_trip(base, request, holder.current), source.id)
        if before is None:
            continue  # walking wins or no station nearby: draw another pair
        station = before.split(":", 1)[1]
        for s in status["data"]["stations"]:
            if s["station_id"] == station:  # empty the station the plan picked up at
                s["num_docks_available"] += s["num_bikes_available"]
                s["num_bikes_available"] = 0
                s["vehicle_types_available"][0]["count"] = 0
        body = dumps(status)
        fetcher.bodies[status_url] = body  # the poller has the response bytes
        start = time.perf_counter()
        applied = await poller.poll_once()
        polled = time.perf_counter()
        after = pickup(plan_trip(base, request, holder.current), source.id)
        end = time.perf_counter()
        assert applied and after != before, (before, after)
        totals.append(end - start)
        polls.append(polled - start)
    await store.aclose()
    print(
        f"poll → plan: {LATENCY_TRIALS} trials ({tries} pairs drawn), "
        f"{len(holder.current.stations)} simulated stations"
    )
    return totals, polls


async def loaded_overlay(
    base: CityBase, rng: np.random.Generator, seed: int, date: dt.date
) -> tuple[OverlayHolder, dict[str, int]]:
    """Multipliers, delays, cancellations and simulated stations, as the live side sets them."""
    drive = base.streets["drive"]
    holder = OverlayHolder(drive)
    edges = rng.choice(drive.n_edges, MULTIPLIERS, replace=False)
    holder.set_multipliers(
        dict(zip(edges.tolist(), (1 + rng.random(MULTIPLIERS) * 3).tolist(), strict=True))
    )
    tt = base.timetable
    running = np.unique(tt.trip_ids[tt.day(date).trip_base].astype(str))
    picked = rng.choice(running, DELAYED + CANCELLED, replace=False).tolist()
    delays = {
        str(t): int(s)
        for t, s in zip(picked[:DELAYED], rng.integers(60, 900, DELAYED), strict=True)
    }
    holder.set_transit_state(cancelled_trips=picked[DELAYED:], trip_delays=delays)
    source, simulator = simulated_system(base, seed)
    info = simulator.document("station_information", MEM)
    status = simulator.document("station_status", MEM)
    assert info is not None and status is not None
    store = MemoryStateStore()
    poller, fetcher = memory_poller(
        source, LiveWriter(base.city.id, holder, store), store, dumps(info)
    )
    fetcher.bodies[f"{MEM}/station_status.json"] = dumps(status)
    assert await poller.poll_once(), poller.health.feeds[source.id]
    await store.aclose()
    return holder, delays


def bench_overlay_plans(
    base: CityBase, holder: OverlayHolder, delays: dict[str, int], rng: np.random.Generator
) -> tuple[list[float], list[float], list[float], int]:
    """(plans with the empty overlay, with the loaded one, first plans after a change, pairs)."""
    depart = dt.datetime(2019, 5, 15, 13, 0, tzinfo=base.city.tz)
    modes = frozenset({"walk", "transit"})
    requests = [
        PlanRequest(o, d, depart, modes=modes) for o, d in random_pairs(base, rng, OD_PAIRS)
    ]
    empty = OverlayHolder(base.streets["drive"]).current
    live = holder.current
    for overlay in (empty, live):  # warm: the day's timetables (plain and delayed) built
        plan_trip(base, requests[0], overlay)
    plain: list[float] = []
    loaded: list[float] = []
    for r in range(REPEATS):
        for i, request in enumerate(requests):
            order: tuple[tuple[list[float], LiveOverlay], ...] = (
                (plain, empty),
                (loaded, live),
            )
            for samples, overlay in order if (i + r) % 2 else order[::-1]:
                samples.append(timed(partial(plan_trip, base, request, overlay)))

    first: list[float] = []
    trip_id = next(iter(delays))
    for k in range(FIRST_PLANS):
        changed = holder.set_transit_state(trip_delays={**delays, trip_id: delays[trip_id] + k + 1})
        request = requests[k % len(requests)]
        first.append(timed(partial(plan_trip, base, request, changed)))
    return plain, loaded, first, len(requests)


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    """Run every measurement, print the table, return the exit status."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_live")
    parser.add_argument("--seed", type=int, default=SEED)
    args, _others = parser.parse_known_args(argv)  # benchmarks/run passes its args to all
    rng = np.random.default_rng(args.seed)
    rows: list[tuple[str, float, float, str, str, bool]] = []

    in_memory, over_http, _published = asyncio.run(bench_gbfs_apply())
    g50, g95 = ms(in_memory)
    rows.append(("GBFS apply, Oslo snapshot (260 st.)", g50, g95, "median ≤ 5 ms", "", g50 <= 5))
    h50, h95 = ms(over_http)
    rows.append(("GBFS poll over loopback HTTP", h50, h95, "informative", "", True))

    nyc = asyncio.run(bench_gtfsrt())
    n50, n95 = ms(nyc)
    rows.append(
        ("GTFS-RT apply, NYC sample (~300 trips)", n50, n95, "median ≤ 100 ms", "", n50 <= 100)
    )

    city = discover_cities(REPO / "data")["porto-alegre"]
    base, _ = load_or_build(city, CITY_CACHE)
    totals, polls = asyncio.run(bench_poll_to_plan(base, rng, args.seed))
    l50, l95 = ms(totals)
    p50, p95 = ms(polls)
    rows.append(("poll response → plan sees change", l50, l95, "median ≤ 1 s", "", l50 <= 1000))
    rows.append(("  of which the poll (parse + apply)", p50, p95, "informative", "", True))

    date = dt.date(2019, 5, 15)
    holder, delays = asyncio.run(loaded_overlay(base, rng, args.seed, date))
    plain, loaded, first, n_pairs = bench_overlay_plans(base, holder, delays, rng)
    e50, e95 = ms(plain)
    o50, o95 = ms(loaded)
    f50, f95 = ms(first)
    ratio = o50 / e50
    rows.append(
        (
            "plan w+t, live overlays (steady)",
            o50,
            o95,
            "≤ 1.2× empty",
            f"{ratio:.2f}× empty",
            ratio <= 1.2,
        )
    )
    rows.append(("plan w+t, empty overlay", e50, e95, "baseline", "1×", True))
    rows.append(
        ("first plan after new delay set", f50, f95, "informative", f"{f50 / e50:.2f}× empty", True)
    )

    print(f"\n{'measurement':<40} {'p50 ms':>8} {'p95 ms':>8}  {'target':<16} {'ratio':<12} result")
    for label, q50, q95, target, ratio_s, ok in rows:
        verdict = "pass" if ok else "MISSED"
        print(f"{label:<40} {q50:8.2f} {q95:8.2f}  {target:<16} {ratio_s:<12} {verdict}")
    print(
        f"\n{len(in_memory)} GBFS snapshots, {len(nyc)} GTFS-RT applies, {len(totals)} poll → "
        f"plan trials, {n_pairs} pairs × {REPEATS} plans per overlay, {len(first)} first plans"
    )
    return 0 if all(ok for *_, ok in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
