"""Place search benchmark: 1,000 prefixes typed letter by letter, answered over HTTP.

Names are drawn (seeded) from the place indexes of both bundled cities — stops, streets,
points of interest and addresses alike — and typed one letter at a time: "T", "Tø",
"Tøy"... until 500 prefixes per city. Each prefix is one ``GET /api/v1/places?q=&near=``
(``near`` = the city's centre, ``limit=8``) to a real ``correspondance serve`` on loopback,
over one keep-alive connection, as the app's search field sends them. The same prefixes are
also timed on the index alone (``routing.places.search_places`` in this process), which
is what the server spends of the answer.

Target: p95 ≤ 50 ms over the 1,000 HTTP answers.

Run ``.venv/bin/python -m benchmarks.bench_places``; exits 1 if the target is missed.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # also runnable as a script from benchmarks/run
    sys.path.insert(0, str(REPO))

from correspondance.cities import discover_cities  # noqa: E402
from routing.base import load_or_build  # noqa: E402
from routing.place_index import load_or_build_places  # noqa: E402
from routing.places import PlaceIndex, search_places  # noqa: E402
from tests.processes import free_port  # noqa: E402

CITY_CACHE = REPO / "var" / "cache"
CITIES = ("porto-alegre", "oslo")
PER_CITY = 500
SEED = 20261202
TARGET_P95_MS = 50.0
STARTUP_S = 240.0


def typed_prefixes(index: PlaceIndex, count: int, seed: int) -> list[str]:
    """``count`` prefixes of real names, each name typed letter by letter from its start."""
    rng = random.Random(seed)
    names = sorted(set(index.name))
    out: list[str] = []
    while len(out) < count:
        name = rng.choice(names)
        out.extend(name[:n] for n in range(1, len(name) + 1) if name[:n].strip())
    return out[:count]


def centre(bbox: tuple[float, float, float, float]) -> tuple[float, float]:
    west, south, east, north = bbox
    return (south + north) / 2, (west + east) / 2


def serve(city: str, port: int) -> subprocess.Popen[bytes]:
    """``correspondance serve`` for one city on loopback, in-process state, until healthy."""
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve", "--city", city, "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + STARTUP_S
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        if proc.poll() is not None:
            raise SystemExit(f"serve --city {city} exited with {proc.returncode}")
        time.sleep(0.5)
    proc.terminate()
    raise SystemExit(f"serve --city {city} not healthy after {STARTUP_S:.0f} s")


def percentiles(samples: list[float]) -> tuple[float, float, float]:
    values = np.array(samples)
    return (
        float(np.median(values)),
        float(np.percentile(values, 95)),
        float(values.max()),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-city", type=int, default=PER_CITY)
    args = parser.parse_args(argv)
    configs = discover_cities(REPO / "data")
    http_ms: list[float] = []
    index_ms: list[float] = []
    rows = []
    for city_id in CITIES:
        city = configs[city_id]
        base, _ = load_or_build(city, CITY_CACHE)
        index, _ = load_or_build_places(base, CITY_CACHE)
        near = centre(city.bbox)
        prefixes = typed_prefixes(index, args.per_city, SEED)
        hits = 0
        city_index: list[float] = []
        for prefix in prefixes:
            started = time.perf_counter()
            found = search_places(index, prefix, near, 8)
            city_index.append((time.perf_counter() - started) * 1000)
            hits += bool(found)
        port = free_port()
        proc = serve(city_id, port)
        city_http: list[float] = []
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
                http.get("/api/v1/places", params={"q": "a", "city": city_id})  # connect
                for prefix in prefixes:
                    params = {"q": prefix, "city": city_id, "near": f"{near[0]},{near[1]}"}
                    started = time.perf_counter()
                    response = http.get("/api/v1/places", params=params)
                    city_http.append((time.perf_counter() - started) * 1000)
                    if response.status_code != 200:
                        raise SystemExit(f"{prefix!r}: {response.status_code} {response.text}")
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        rows.append((city_id, len(index), len(prefixes), hits, city_http, city_index))
        http_ms += city_http
        index_ms += city_index

    print(
        f"{'city':<14}{'places':>8}{'prefixes':>10}{'found':>8}"
        f"{'HTTP p50':>10}{'p95':>8}{'index p50':>11}{'p95':>8}  (ms)"
    )
    for city_id, size, n, hits, h, i in rows:
        hp = percentiles(h)
        ip = percentiles(i)
        print(
            f"{city_id:<14}{size:>8}{n:>10}{hits:>8}{hp[0]:>10.2f}{hp[1]:>8.2f}"
            f"{ip[0]:>11.2f}{ip[1]:>8.2f}"
        )
    hp = percentiles(http_ms)
    ip = percentiles(index_ms)
    print(
        f"{'all':<14}{'':>8}{len(http_ms):>10}{'':>8}{hp[0]:>10.2f}{hp[1]:>8.2f}"
        f"{ip[0]:>11.2f}{ip[1]:>8.2f}"
    )
    print(f"max: HTTP {hp[2]:.1f} ms, index {ip[2]:.1f} ms")
    ok = hp[1] <= TARGET_P95_MS
    print(
        f"target: HTTP p95 ≤ {TARGET_P95_MS:.0f} ms over {len(http_ms)} typed prefixes: "
        f"{'pass' if ok else 'FAIL'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
