"""First plan after start-up: empty caches → ``correspondance build`` → ``serve`` → first plan.

What a new user of ``scripts/run.sh`` lives through, in fresh processes: an empty build
cache and an empty numba cache (``CORRESPONDANCE_CACHE_DIR``, ``NUMBA_CACHE_DIR`` in a
temporary folder), ``correspondance build`` (which builds the base and compiles the kernels
into numba's on-disk cache), then ``correspondance serve``. The clock starts when ``serve``
prints its URL and stops when the first ``GET /api/v1/plan`` (the city's demo trip, or a
trip across its middle, all modes) has answered. Target: ≤ 1 s. Then a second ``serve`` on
the same caches, as after a restart.

Run ``.venv/bin/python -m benchmarks.bench_first_plan [--city porto-alegre]`` from the
repository root. Exit status 1 when the target is missed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO_ROOT = Path(__file__).resolve().parent.parent
TARGET_FIRST_PLAN_S = 1.0
SERVE_TIMEOUT_S = 600.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def plan_params(city_id: str) -> dict[str, str]:
    """The city's demo trip (a real door-to-door query), else one across its middle at noon."""
    from correspondance.cities import discover_cities, get_city
    from correspondance.settings import Settings

    city = get_city(discover_cities(Settings().data_dir), city_id)
    if city.demo is not None:
        (olat, olon), (dlat, dlon) = city.demo.origin, city.demo.destination
        clock = city.demo.depart
    else:
        west, south, east, north = city.bbox
        olat, olon = south + (north - south) * 3 / 8, west + (east - west) * 3 / 8
        dlat, dlon = south + (north - south) * 5 / 8, west + (east - west) * 5 / 8
        clock = dt.time(12, 0)
    return {
        "city": city.id,
        "from": f"{olat},{olon}",
        "to": f"{dlat},{dlon}",
        "depart": f"{city.default_date}T{clock:%H:%M}:00",
        "modes": "transit,walk,bicycle,car,bikeshare,carshare",
    }


def build(city_id: str, env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "api.cli", "build", "--city", city_id],
        cwd=REPO_ROOT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def serve_and_plan(
    city_id: str, env: dict[str, str], params: dict[str, str]
) -> tuple[float, float]:
    """(seconds from launch to the URL, seconds from the URL to the first plan's answer)."""
    port = free_port()
    launched = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve", "--city", city_id, "--port", str(port)],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        deadline = launched + SERVE_TIMEOUT_S
        for line in proc.stdout:
            if "Open http://" in line:
                break
            if time.perf_counter() > deadline:
                raise TimeoutError("serve printed no URL")
        else:
            raise RuntimeError(f"serve exited ({proc.wait()}) before printing its URL")
        shown = time.perf_counter()
        url = f"http://127.0.0.1:{port}/api/v1/plan"
        while True:  # a URL printed too early would show here as refused connections
            try:
                response = httpx.get(url, params=params, timeout=120)
                break
            except httpx.TransportError:
                time.sleep(0.01)
        answered = time.perf_counter()
        response.raise_for_status()
        assert response.json()["itineraries"], response.text
        return shown - launched, answered - shown
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--city", default="porto-alegre")
    args = parser.parse_args(argv)
    params = plan_params(args.city)
    with tempfile.TemporaryDirectory(prefix="bench-first-plan-") as tmp:
        env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
        env |= {
            "CORRESPONDANCE_CACHE_DIR": str(Path(tmp) / "cache"),
            "NUMBA_CACHE_DIR": str(Path(tmp) / "numba"),
            "CORRESPONDANCE_DEMO": "false",
        }
        built = build(args.city, env)
        rows: list[tuple[str, float, float | None]] = [("build (empty caches)", built, None)]
        for label in ("serve after build", "serve again (restart)"):
            ready, first = serve_and_plan(args.city, env, params)
            rows.append((f"{label}: launch → URL", ready, None))
            rows.append((f"{label}: URL → first plan", first, TARGET_FIRST_PLAN_S))
    print(f"first plan after start-up, {args.city} (load average {os.getloadavg()[0]:.1f})")
    print(f"{'measure':<44} {'seconds':>8}  target")
    missed = False
    for label, seconds, target in rows:
        verdict = "" if target is None else ("ok" if seconds <= target else "MISSED")
        missed |= verdict == "MISSED"
        shown = f"≤ {target:.0f} s {verdict}" if target is not None else ""
        print(f"{label:<44} {seconds:>8.2f}  {shown}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
