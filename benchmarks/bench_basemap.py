"""Base map: tiles cut at build, and the map interactive in a browser on loopback.

1. **Tile build**: ``feeds.tiles.build_tiles`` for the city into an empty temporary cache
   (read OSM → cut z8–15 → PMTiles), in a fresh subprocess; wall time, archive size, tiles
   and peak RSS. Target ≤ 60 s.
2. **Map interactive**: a ``correspondance serve`` process on a free loopback port and
   Debian's headless Chromium (software WebGL: SwiftShader). Each run is a fresh browser
   context (empty HTTP cache, as a first visit) that opens ``/`` and reads the User Timing
   mark ``basemap-idle`` (MapLibre's first ``idle``: style, tiles and fonts loaded and drawn),
   measured from navigation start, for a phone (390×844) and a desktop (1440×900) viewport.
   Median of the runs; target ≤ 2 s. Every request must stay on the server's origin.

``.venv/bin/python -m benchmarks.bench_basemap [--city porto-alegre] [--repeats 7]``
(``--base-url http://127.0.0.1:PORT`` uses a running server instead of starting one).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from tests.processes import free_port  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-quic",
    "--no-first-run",
    "--use-angle=swiftshader",
    "--enable-unsafe-swiftshader",
]
VIEWPORTS = {"phone 390×844": (390, 844), "desktop 1440×900": (1440, 900)}
TARGET_BUILD_S = 60.0
TARGET_IDLE_S = 2.0
LINES = "(no WebGL: street lines)"

BUILD_CHILD = """
import json, resource, sys, time
from pathlib import Path
t0 = time.perf_counter()
from correspondance.cities import discover_cities, get_city
from correspondance.settings import Settings
from feeds.tiles import TileArchive, build_tiles
settings = Settings()
city = get_city(discover_cities(settings.data_dir), sys.argv[1])
t1 = time.perf_counter()
path, cached = build_tiles(city.resolve(city.osm.path), city.bbox, Path(sys.argv[2]), city.id)
t2 = time.perf_counter()
archive = TileArchive(path)
print(json.dumps({"build_s": t2 - t1, "imports_s": t1 - t0, "cached": cached,
                  "bytes": path.stat().st_size, "tiles": len(archive.tiles),
                  "rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}))
"""


def measure_build(city: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-basemap-") as tmp:
        out = subprocess.run(
            [sys.executable, "-c", BUILD_CHILD, city, tmp],
            cwd=REPO_ROOT,
            check=True,
            capture_output=True,
            text=True,
        )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def _healthy(base: str) -> bool:
    try:
        with urllib.request.urlopen(f"{base}/api/v1/health", timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


@contextmanager
def server(city: str) -> Iterator[str]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    cmd = [sys.executable, "-m", "api.cli", "serve", "--city", city]
    cmd += ["--host", "127.0.0.1", "--port", str(port)]
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 300
            while not _healthy(base):
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise SystemExit(f"server did not start:\n{log.read().decode()[-3000:]}")
                time.sleep(0.5)
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


READY_OBSERVER = """new MutationObserver(() => {
  if (document.body?.dataset.ready === '1' && !window.__readyAt) {
    window.__readyAt = performance.now();
  }
}).observe(document, {
  subtree: true, attributes: true, attributeFilter: ['data-ready'],
});"""
NO_WEBGL = """(() => {
  const getContext = HTMLCanvasElement.prototype.getContext;
  HTMLCanvasElement.prototype.getContext = function (kind, ...rest) {
    return /webgl/.test(kind) ? null : getContext.call(this, kind, ...rest);
  };
})();"""
LINES_JS = """async () => {
  const deadline = performance.now() + 30000;
  while (!window.__readyAt) {
    if (performance.now() > deadline) throw new Error('the page was not ready in 30 s');
    await new Promise((r) => setTimeout(r, 20));
  }
  const res = performance.getEntriesByType('resource');
  return {ready: window.__readyAt, basemap: document.getElementById('map').dataset.basemap,
          kib: res.reduce((n, r) => n + (r.transferSize || 0), 0) / 1024};
}"""
IDLE_JS = """async () => {
  const deadline = performance.now() + 30000;
  while (!performance.getEntriesByName('basemap-idle').length) {
    if (performance.now() > deadline) throw new Error('no basemap-idle mark in 30 s');
    await new Promise((r) => setTimeout(r, 20));
  }
  const at = (name) => performance.getEntriesByName(name)[0]?.startTime ?? null;
  const res = performance.getEntriesByType('resource');
  const kib = res.reduce((n, r) => n + (r.transferSize || 0), 0) / 1024;
  return {idle: at('basemap-idle'), load: at('basemap-load'), kib, ready: window.__readyAt,
          basemap: document.getElementById('map').dataset.basemap};
}"""


def measure_idle(base: str, repeats: int) -> dict[str, list[dict[str, Any]]]:
    from playwright.sync_api import sync_playwright

    results: dict[str, list[dict[str, Any]]] = {name: [] for name in VIEWPORTS}
    results |= {f"{name} {LINES}": [] for name in VIEWPORTS}
    outside: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            for run in range(repeats + 1):  # run 0 warms the server's caches, not counted
                for name, (width, height) in VIEWPORTS.items():
                    context = browser.new_context(
                        viewport={"width": width, "height": height}, device_scale_factor=1
                    )
                    page = context.new_page()
                    tiles: list[str] = []
                    page.on("request", lambda r: outside.append(r.url))
                    page.on("request", lambda r, seen=tiles: seen.append(r.url))
                    page.add_init_script(READY_OBSERVER)
                    page.goto(f"{base}/")
                    sample = page.evaluate(IDLE_JS)
                    sample["tiles"] = sum("/tiles/" in u for u in tiles)
                    context.close()
                    if sample["basemap"] != "vector":
                        raise SystemExit(f"{name}: no vector base map ({sample['basemap']})")
                    if run:
                        results[name].append(sample)
                    # the same page without WebGL: street lines from GeoJSON (the map before)
                    context = browser.new_context(
                        viewport={"width": width, "height": height}, device_scale_factor=1
                    )
                    page = context.new_page()
                    page.on("request", lambda r: outside.append(r.url))
                    page.add_init_script(NO_WEBGL)
                    page.add_init_script(READY_OBSERVER)
                    page.goto(f"{base}/")
                    lines = page.evaluate(LINES_JS)
                    context.close()
                    if lines["basemap"] != "lines":
                        raise SystemExit(f"{name}: no street-line fallback ({lines['basemap']})")
                    if run:
                        results[f"{name} {LINES}"].append(lines)
        finally:
            browser.close()
    outside = [u for u in outside if not u.startswith((f"{base}/", "data:", "blob:"))]
    if outside:
        raise SystemExit(f"requests left the server: {outside[:5]}")
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--city", default="porto-alegre")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--base-url", default="", help="a running server (else one is started)")
    args = parser.parse_args()

    build = measure_build(args.city)
    if args.base_url:
        idle = measure_idle(args.base_url.rstrip("/"), args.repeats)
    else:
        with server(args.city) as base:
            idle = measure_idle(base, args.repeats)

    failed = False
    print(f"\nbench_basemap — {args.city}, load average {os.getloadavg()[0]:.1f}\n")
    print("| metric | measured | target | result |")
    print("|---|---|---|---|")
    ok = build["build_s"] <= TARGET_BUILD_S
    failed |= not ok
    print(
        f"| tile build (read OSM → z8–15 → PMTiles) | {build['build_s']:.1f} s, "
        f"{build['tiles']} tiles, {build['bytes'] / 1e6:.2f} MB, peak RSS "
        f"{build['rss_gib']:.2f} GiB | ≤ {TARGET_BUILD_S:.0f} s | {'pass' if ok else 'FAIL'} |"
    )
    for name, samples in idle.items():
        if LINES in name:
            continue
        times = [s["idle"] / 1000 for s in samples]
        median = statistics.median(times)
        ok = median <= TARGET_IDLE_S
        failed |= not ok
        print(
            f"| base map interactive, {name}, median of {len(times)} | {median:.2f} s "
            f"(MapLibre load {statistics.median(s['load'] for s in samples) / 1000:.2f} s, "
            f"{statistics.median(s['tiles'] for s in samples):.0f} tiles, "
            f"{statistics.median(s['kib'] for s in samples):.0f} KiB moved) "
            f"| ≤ {TARGET_IDLE_S:.0f} s | {'pass' if ok else 'FAIL'} |"
        )
    for name in VIEWPORTS:
        samples = idle[f"{name} {LINES}"]
        print(
            f"| for comparison: {name} without WebGL, street lines (the previous map), "
            f"median of {len(samples)} | "
            f"{statistics.median(s['ready'] for s in samples) / 1000:.2f} s "
            f"to drawn ({statistics.median(s['kib'] for s in samples):.0f} KiB moved) | — | — |"
        )
    for name, samples in idle.items():
        key = "ready" if LINES in name else "idle"
        print(f"\n{name}, every run (s): " + ", ".join(f"{s[key] / 1000:.2f}" for s in samples))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
