"""Porto car routing against OSRM, side by side in one interleaved run.

    python -m benchmarks.bench_street_engines [--pairs 1000] [--repeats 3] [--block 50]

The same coordinate pairs (random points of Porto, Portugal, within 100 m of a drive
street) are routed by:

* Correspondance, coordinates to coordinates: two snaps (uncached) and the landmark A*
  (ALT) between the snapped positions, path edges included (``StreetNetwork.between``);
* Correspondance, ALT from node to node (the snapped edges' ends);
* Correspondance, plain one-target Dijkstra (``routing.kernels.dijkstra``), the baseline;
* OSRM (``osrm-bindings`` from PyPI), contraction hierarchies and MLD, ``Route`` with no
  overview geometry, in its own process (see :mod:`benchmarks.osrm_side`).

Blocks of ``--block`` pairs go to each engine in turn (the order rotates per block), so all
see the same machine state; every engine times its own calls. Medians over every query of
every repeat, ratios of medians in the same run.

Also checked on all pairs: the ALT answer equals plain Dijkstra, on free-flow times and
under live multipliers (1,000 congested edges and 50 closures through ``OverlayHolder``),
and the time to apply 1,000 changed multipliers until the next query can use them.

OSRM needs Python ≥ 3.12: ``--osrm-venv`` (default ``var/osrm-venv``) is created when
missing with ``--python312`` (default: ``python3.12`` on PATH, else pyenv's) and
``pip install osrm-bindings==26.10.0``; the Porto extract is preprocessed once into
``var/cache/bench/osrm/{ch,mld}`` with the car profile the wheel ships. Exits 1 if a target
is missed (ALT ≤ OSRM CH, exact answers, live update ≤ 10 ms).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.bench_routing import BENCH_CACHE, PORTO_PBF, REPO, porto_drive
from routing.errors import NoStreetNearbyError
from routing.kernels import dijkstra
from routing.overlay import OverlayHolder
from routing.streets import StreetNetwork

OSRM_VERSION = "26.10.0"
SEED = 16
SNAP_M = 100.0


def python312(given: str | None) -> str:
    """An interpreter for the OSRM venv."""
    for candidate in (given, shutil.which("python3.12"), shutil.which("python3.13")):
        if candidate:
            return candidate
    pyenv = sorted(Path.home().glob(".pyenv/versions/3.1[2-9]*/bin/python"))
    if pyenv:
        return str(pyenv[-1])
    raise SystemExit("OSRM needs Python ≥ 3.12: pass --python312")


def osrm_ready(venv: Path, interpreter: str | None) -> Path:
    """The OSRM venv's python, creating the venv when missing."""
    python = venv / "bin" / "python"
    if not python.is_file():
        subprocess.run([python312(interpreter), "-m", "venv", str(venv)], check=True)
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", f"osrm-bindings=={OSRM_VERSION}"],
            check=True,
        )
    return python


def osrm_data(python: Path) -> tuple[Path, Path]:
    """Porto preprocessed for CH and for MLD (once): the two ``.osrm`` base paths."""
    package = Path(
        subprocess.run(
            [str(python), "-c", "import osrm, os; print(os.path.dirname(osrm.__file__))"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    tools, profile = package / "bin", package / "share" / "profiles" / "car.lua"
    out: list[Path] = []
    for algo, steps in (("ch", ("osrm-contract",)), ("mld", ("osrm-partition", "osrm-customize"))):
        folder = BENCH_CACHE / "osrm" / algo
        base = folder / "porto.osrm"
        done = folder / "done"
        if not done.is_file():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
            shutil.copy(PORTO_PBF, folder / "porto.osm.pbf")
            run = [str(tools / "osrm-extract"), "-t", "1", "-p", str(profile)]
            subprocess.run([*run, str(folder / "porto.osm.pbf")], check=True, capture_output=True)
            for step in steps:
                subprocess.run(
                    [str(tools / step), "-t", "1", str(base)], check=True, capture_output=True
                )
            done.touch()
        out.append(base)
    return out[0], out[1]


class Osrm:
    """The OSRM process: JSON lines over a pipe."""

    def __init__(self, python: Path, ch: Path, mld: Path) -> None:
        self.proc = subprocess.Popen(
            [str(python), str(REPO / "benchmarks" / "osrm_side.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.ask({"cmd": "open", "ch": str(ch), "mld": str(mld)})

    def ask(self, msg: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(msg) + "\n")
        self.proc.stdin.flush()
        reply: dict[str, Any] = json.loads(self.proc.stdout.readline())
        return reply

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
        self.proc.stdin.close()
        self.proc.wait(30)


Pair = tuple[float, float, float, float]


def draw_pairs(net: StreetNetwork, osrm: Osrm, n: int, rng: np.random.Generator) -> list[Pair]:
    """Random coordinate pairs both engines route (within 100 m of a drive street)."""
    lat_lo, lat_hi = np.percentile(net.node_lat, [5, 95])
    lon_lo, lon_hi = np.percentile(net.node_lon, [5, 95])
    weight = net.base_time_s
    pairs: list[Pair] = []
    while len(pairs) < n:
        o_lat, o_lon, d_lat, d_lon = (
            float(rng.uniform(lat_lo, lat_hi)),
            float(rng.uniform(lon_lo, lon_hi)),
            float(rng.uniform(lat_lo, lat_hi)),
            float(rng.uniform(lon_lo, lon_hi)),
        )
        try:
            a, b = net._snap(o_lat, o_lon, SNAP_M), net._snap(d_lat, d_lon, SNAP_M)
        except NoStreetNearbyError:
            continue
        if not math.isfinite(net.between(a, b, weight)[0]):
            continue
        osrm.ask({"cmd": "pairs", "pairs": [[o_lat, o_lon, d_lat, d_lon]]})
        if osrm.ask({"cmd": "run", "algo": "ch", "lo": 0, "hi": 1})["duration_s"][0] is None:
            continue
        pairs.append((o_lat, o_lon, d_lat, d_lon))
    osrm.ask({"cmd": "pairs", "pairs": [list(p) for p in pairs]})
    return pairs


def plain_between(net: StreetNetwork, weight: np.ndarray, pair: Pair) -> float:
    """The reference: the same pricing as ``between``, searched by plain Dijkstra."""
    a, b = net._snap(pair[0], pair[1], SNAP_M), net._snap(pair[2], pair[3], SNAP_M)
    wa, wb = float(weight[a.edge]), float(weight[b.edge])
    src = np.array([net.tail[a.edge], net.head[a.edge]], np.int64)
    cost = np.array([a.fraction * wa if a.fraction > 0 else 0.0, 0.0])
    cost[1] = (1 - a.fraction) * wa if a.fraction < 1 else 0.0
    dist, _ = dijkstra(net.indptr, net.head, weight, src, cost, np.inf, np.zeros(0, np.int64))
    best = min(
        float(dist[net.tail[b.edge]]) + (b.fraction * wb if b.fraction > 0 else 0.0),
        float(dist[net.head[b.edge]]) + ((1 - b.fraction) * wb if b.fraction < 1 else 0.0),
    )
    if a.edge == b.edge and b.fraction >= a.fraction:
        best = min(best, (b.fraction - a.fraction) * wa if b.fraction > a.fraction else 0.0)
    return best


def exact(net: StreetNetwork, weight: np.ndarray, pairs: list[Pair]) -> int:
    """How many pairs' ALT answer differs from plain Dijkstra's (relative 1e-9)."""
    wrong = 0
    for p in pairs:
        a, b = net._snap(p[0], p[1], SNAP_M), net._snap(p[2], p[3], SNAP_M)
        ours, expected = net.between(a, b, weight)[0], plain_between(net, weight, p)
        same = ours == expected or math.isclose(ours, expected, rel_tol=1e-9)
        wrong += not same
    return wrong


def live_update(net: StreetNetwork, rng: np.random.Generator, trials: int = 30) -> list[float]:
    """Seconds from 1,000 changed multipliers until the next query can use them."""
    holder = OverlayHolder(net)
    out: list[float] = []
    for _ in range(trials):
        edges = rng.choice(net.n_edges, 1000, replace=False)
        update = dict(zip(edges.tolist(), (1 + rng.random(1000) * 3).tolist(), strict=True))
        start = time.perf_counter()
        holder.set_multipliers(update)
        weight = holder.current.drive_weights(net)
        net._scale(weight)  # the one pass the next search needs (then remembered)
        out.append(time.perf_counter() - start)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_street_engines")
    parser.add_argument("--pairs", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--block", type=int, default=50)
    parser.add_argument("--osrm-venv", type=Path, default=REPO / "var" / "osrm-venv")
    parser.add_argument("--python312")
    parser.add_argument("--out", type=Path, help="also write the results as JSON")
    args, _others = parser.parse_known_args(argv)
    rng = np.random.default_rng(SEED)
    python = osrm_ready(args.osrm_venv, args.python312)
    ch, mld = osrm_data(python)
    net = porto_drive()
    start = time.perf_counter()
    lm = net.landmarks()
    lm_s = time.perf_counter() - start
    weight = net.base_time_s
    osrm = Osrm(python, ch, mld)
    try:
        pairs = draw_pairs(net, osrm, args.pairs, rng)
        snaps = [(net._snap(p[0], p[1], SNAP_M), net._snap(p[2], p[3], SNAP_M)) for p in pairs]

        def ours_c2c(lo: int, hi: int) -> list[float]:
            out = []
            for p in pairs[lo:hi]:
                t0 = time.perf_counter()
                a, b = net._snap(p[0], p[1], SNAP_M), net._snap(p[2], p[3], SNAP_M)
                net.between(a, b, weight)
                out.append(time.perf_counter() - t0)
            return out

        def node_search(
            search: Callable[[np.ndarray, np.ndarray, np.ndarray], object],
        ) -> Callable[[int, int], list[float]]:
            def run(lo: int, hi: int) -> list[float]:
                out = []
                zero = np.zeros(1)
                for a, b in snaps[lo:hi]:
                    src = np.array([net.head[a.edge]], np.int64)
                    tgt = np.array([net.tail[b.edge]], np.int64)
                    t0 = time.perf_counter()
                    search(src, zero, tgt)
                    out.append(time.perf_counter() - t0)
                return out

            return run

        def osrm_run(algo: str) -> Callable[[int, int], list[float]]:
            def run(lo: int, hi: int) -> list[float]:
                seconds: list[float] = osrm.ask({"cmd": "run", "algo": algo, "lo": lo, "hi": hi})[
                    "seconds"
                ]
                return seconds

            return run

        engines: dict[str, Callable[[int, int], list[float]]] = {
            "Correspondance, coordinates → coordinates (2 snaps + ALT)": ours_c2c,
            "Correspondance, ALT node → node": node_search(
                lambda s, c, t: net.shortest_path(weight, s, c, t)
            ),
            "Correspondance, one-target Dijkstra kernel": node_search(
                lambda s, c, t: dijkstra(net.indptr, net.head, weight, s, c, np.inf, t)
            ),
            "OSRM, contraction hierarchies": osrm_run("ch"),
            "OSRM, MLD": osrm_run("mld"),
        }
        for fn in engines.values():
            fn(0, min(20, len(pairs)))  # JIT, numba cache, page cache
        samples: dict[str, list[float]] = {name: [] for name in engines}
        names = list(engines)
        block = 0
        for _ in range(args.repeats):
            for lo in range(0, len(pairs), args.block):
                hi = min(lo + args.block, len(pairs))
                order = names[block % len(names) :] + names[: block % len(names)]
                for name in order:
                    samples[name].extend(engines[name](lo, hi))
                block += 1
        durations = osrm.ask({"cmd": "run", "algo": "ch", "lo": 0, "hi": len(pairs)})["duration_s"]
    finally:
        osrm.close()
    ours_s = [net.between(a, b, weight)[0] for a, b in snaps]
    r = float(np.corrcoef(ours_s, durations)[0, 1])
    worst = max(
        max(x / y, y / x) for x, y in zip(ours_s, durations, strict=True) if x > 0 and y > 0
    )
    holder = OverlayHolder(net)
    congested = rng.choice(net.n_edges, 1050, replace=False)
    update = {int(e): float(1 + rng.random() * 3) for e in congested[:1000]}
    update.update({int(e): math.inf for e in congested[1000:]})
    holder.set_multipliers(update)
    wrong_free = exact(net, weight, pairs)
    wrong_live = exact(net, holder.current.drive_weights(net), pairs)
    upd = live_update(net, rng)
    medians = {name: statistics.median(s) * 1000 for name, s in samples.items()}
    osrm_ch = medians["OSRM, contraction hierarchies"]
    c2c = medians["Correspondance, coordinates → coordinates (2 snaps + ALT)"]
    print(
        f"Porto drive network: {net.n_nodes:,} nodes, {net.n_edges:,} edges; "
        f"{len(lm.nodes)} landmarks in {lm_s:.2f} s; {len(pairs)} pairs × {args.repeats}"
    )
    print("\n| engine | median per query | vs OSRM CH |\n|---|---|---|")
    for name, m in medians.items():
        print(f"| {name} | {m:.3f} ms | {m / osrm_ch:.2f}× |")
    u50 = statistics.median(upd) * 1000
    print(
        f"\nALT = plain Dijkstra: {len(pairs) - wrong_free}/{len(pairs)} free flow, "
        f"{len(pairs) - wrong_live}/{len(pairs)} under 1,000 multipliers + 50 closures"
    )
    print(f"1,000 changed multipliers → usable by the next query: median {u50:.2f} ms")
    print(f"travel times vs OSRM CH: r = {r:.3f}, worst pair {worst:.2f}× apart")
    ok = c2c <= osrm_ch and wrong_free == 0 and wrong_live == 0 and u50 <= 10
    if args.out:
        args.out.write_text(
            json.dumps(
                {
                    "medians_ms": medians,
                    "wrong_free": wrong_free,
                    "wrong_live": wrong_live,
                    "update_ms": u50,
                    "r": r,
                    "worst": worst,
                    "landmarks_s": lm_s,
                },
                indent=2,
            )
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
