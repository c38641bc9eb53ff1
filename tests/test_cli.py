"""The ``correspondance`` command line, run as a real subprocess."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from correspondance.settings import REPO_ROOT
from feeds.tiles import tiles_key
from routing.base import CityBase

# The same cache tests/conftest.py builds Porto Alegre into, so `build` finds it warm.
CACHE_DIR = Path(os.environ.get("CORRESPONDANCE_CACHE_DIR", REPO_ROOT / "var" / "cache"))
POA = REPO_ROOT / "data" / "porto-alegre"


def run_cli(
    *args: str, data_dir: Path | None = None, cache_dir: Path = CACHE_DIR, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CORRESPONDANCE_")}
    env["CORRESPONDANCE_CACHE_DIR"] = str(cache_dir)
    env["CORRESPONDANCE_DATA_DIR"] = str(data_dir or REPO_ROOT / "data")
    env.pop("REDIS_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "api.cli", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_build_of_an_unknown_city_exits_2_listing_the_known_ones() -> None:
    result = run_cli("build", "--city", "atlantis")
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "correspondance build: error: unknown city 'atlantis'; known cities: oslo, porto-alegre"
    )
    assert result.stdout == ""


def test_build_of_porto_alegre_loads_the_warm_cache_and_prints_counts(
    poa_base: CityBase,  # builds the cache first if this is the session's first use
) -> None:
    result = run_cli("build", "--city", "porto-alegre")
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith("Building Porto Alegre (porto-alegre)\nLoaded from cache in ")
    tt = poa_base.timetable
    assert (tt.n_stops, len(tt.trip_ids)) == (4010, 3622)
    assert "4,010 stops, 3,622 trips, walk " in result.stderr
    walk = poa_base.streets["walk"]
    assert f"walk {walk.n_nodes:,} nodes/{walk.n_edges:,} edges" in result.stderr
    streets = poa_base.transit_streets
    assert streets is not None
    assert (
        f"buses on streets: {int(streets.running.sum()):,} patterns matched to drive edges "
        f"({int(streets.from_shape.sum()):,} along shapes.txt)"
    ) in result.stderr
    # the kernels are compiled into numba's disk cache now, not on serve's first plan
    assert "\nKernels compiled and cached in " in result.stderr

    # the base map's vector tiles are cut (or found) by the same command, keyed by the OSM
    key = tiles_key(POA / "poa_osm.pbf", (-51.2664, -30.1134, -51.1321, -29.9876))
    line = re.search(
        r"^Base map (built|loaded from cache) in [\d.]+ s: (\S+) ", result.stderr, re.M
    )
    assert line is not None, result.stderr
    assert line.group(2) == f"basemap-{key}.pmtiles"
    assert (CACHE_DIR / "porto-alegre" / line.group(2)).is_file()


def test_serve_prints_its_url_once_it_answers(poa_base: CityBase) -> None:
    """The URL is a promise: the first request after it is answered, never refused."""
    import httpx

    from tests.processes import free_port

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CORRESPONDANCE_")}
    env |= {"CORRESPONDANCE_CACHE_DIR": str(CACHE_DIR), "CORRESPONDANCE_WARM_UP": "true"}
    env.pop("REDIS_URL", None)
    server = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve", "--city", "porto-alegre", "--port", str(port)],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = next((line for line in server.stdout if "Open http://" in line), "")
        assert f"Open http://127.0.0.1:{port}/" in line
        answer = httpx.get(f"http://127.0.0.1:{port}/api/v1/cities", timeout=30)  # no retry
        assert answer.status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=60)
        if server.stdout is not None:
            server.stdout.close()


def test_serve_with_an_impossible_port_exits_2_naming_port() -> None:
    result = run_cli("serve", "--port", "99999")
    assert result.returncode == 2
    assert result.stderr.strip() == "correspondance serve: error: --port: 99999 is not a TCP port"


def test_serve_on_a_port_in_use_exits_2() -> None:
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        result = run_cli("serve", "--host", "127.0.0.1", "--port", str(port))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"correspondance serve: error: --port: 127.0.0.1:{port} is already in use"
    )


def test_an_unknown_subcommand_exits_2() -> None:
    result = run_cli("frobnicate")
    assert result.returncode == 2
    assert "invalid choice: 'frobnicate'" in result.stderr
    assert "usage: correspondance" in result.stderr


def test_a_non_numeric_port_exits_2() -> None:
    result = run_cli("serve", "--port", "eighty")
    assert result.returncode == 2
    assert "argument --port: invalid int value: 'eighty'" in result.stderr


def test_build_of_a_city_with_a_corrupt_feed_exits_2_and_caches_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    city_dir = data_dir / "porto-alegre"
    city_dir.mkdir(parents=True)
    shutil.copy(POA / "city.toml", city_dir / "city.toml")
    for name in ("poa_osm.pbf", "poa_trensurb.zip"):
        (city_dir / name).symlink_to(POA / name)
    corrupt = city_dir / "poa_eptc.zip"
    corrupt.write_bytes(b"PK\x03\x04 this zip was cut short")
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()

    result = run_cli("build", "--city", "porto-alegre", data_dir=data_dir, cache_dir=cache_dir)

    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"correspondance build: error: {corrupt}: not a readable GTFS zip")
    assert "Traceback" not in result.stderr
    assert list(cache_dir.iterdir()) == []


@pytest.mark.parametrize("command", ["build", "serve"])
def test_a_broken_city_config_exits_2_naming_the_problem(tmp_path: Path, command: str) -> None:
    city_dir = tmp_path / "data" / "porto-alegre"
    city_dir.mkdir(parents=True)
    text = (POA / "city.toml").read_text(encoding="utf-8")
    (city_dir / "city.toml").write_text(
        text.replace("America/Sao_Paulo", "America/Atlantis"), encoding="utf-8"
    )
    with socket.socket() as probe:  # a port nobody holds, so serve gets as far as the config
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    extra = ["--port", port] if command == "serve" else []
    result = run_cli(
        command,
        "--city",
        "porto-alegre",
        *extra,
        data_dir=tmp_path / "data",
        cache_dir=tmp_path,
        timeout=120,
    )
    assert result.returncode == 2
    assert f"correspondance {command}: error: {city_dir / 'city.toml'}: invalid city config" in (
        result.stderr
    )
    assert "unknown timezone 'America/Atlantis'" in result.stderr


def test_serve_with_several_workers_needs_redis() -> None:
    result = run_cli("serve", "--workers", "2")
    assert result.returncode == 2
    assert result.stderr.strip().startswith(
        "correspondance serve: error: --workers: several processes need shared state; set REDIS_URL"
    )


@pytest.mark.parametrize("workers", ["0", "65"])
def test_serve_with_an_impossible_worker_count_exits_2(workers: str) -> None:
    result = run_cli("serve", "--workers", workers)
    assert result.returncode == 2
    assert f"--workers: {workers} must be between 1 and" in result.stderr


def test_serve_with_two_workers_on_redis_answers_from_both_processes(
    poa_base: CityBase,  # the warm cache the workers load
) -> None:
    import time
    import uuid

    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("CORRESPONDANCE_")}
    env |= {
        "CORRESPONDANCE_CACHE_DIR": str(CACHE_DIR),
        "CORRESPONDANCE_LIVE_FEEDS": "false",
        "CORRESPONDANCE_REDIS_PREFIX": f"cli-{uuid.uuid4().hex[:8]}:",
        "REDIS_URL": os.environ.get("CORRESPONDANCE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve", "--workers", "2", "--port", str(port)],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/api/v1/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        # uvicorn's supervisor forks two workers sharing the listening socket
        children = subprocess.run(
            ["pgrep", "-P", str(server.pid)], capture_output=True, text=True, check=False
        ).stdout.split()
        assert len(children) >= 2, children
        with httpx.Client(base_url=url, timeout=30) as client:
            answers = [client.get("/api/v1/health").json()["backend"] for _ in range(20)]
        assert set(answers) == {"redis"}
    finally:
        server.terminate()
        server.wait(30)
        import redis  # leave no key behind in the shared Redis

        shared = redis.Redis.from_url(env["REDIS_URL"], socket_timeout=5)
        try:
            keys = list(shared.scan_iter(match=f"{env['CORRESPONDANCE_REDIS_PREFIX']}*"))
            if keys:
                shared.delete(*keys)
        finally:
            shared.close()
