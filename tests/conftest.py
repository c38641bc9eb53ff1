"""Shared fixtures: the Porto Alegre base (built once per session, cached) and a live server."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from processes import delete_prefix

from correspondance.cities import CityConfig, discover_cities
from correspondance.settings import REPO_ROOT, Settings
from routing.base import CityBase, load_or_build

# Simulated GBFS feeds follow the time of day; every test server sees them as they were at
# one fixed moment (2026-11-23 14:50 UTC: car-share cars near the demo trip, and the demo's
# closure turning it into a bus ride), so plans do not depend on when the suite runs.
SIMULATED_FEEDS_AT = "1795445400"
os.environ.setdefault("CORRESPONDANCE_SIMULATED_FEEDS_AT", SIMULATED_FEEDS_AT)

DATA_DIR = REPO_ROOT / "data"
CACHE_DIR = Path(os.environ.get("CORRESPONDANCE_CACHE_DIR", REPO_ROOT / "var" / "cache"))


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix no other test uses; every key under it is deleted afterwards (on the
    shared Redis: tests/store overrides this for its own servers)."""
    prefix = f"test:{uuid.uuid4().hex}:"
    yield prefix
    delete_prefix(prefix)


@pytest.fixture(scope="session")
def cities() -> dict[str, CityConfig]:
    """Every bundled city config."""
    return discover_cities(DATA_DIR)


@pytest.fixture(scope="session")
def poa_base(cities: dict[str, CityConfig]) -> CityBase:
    """The Porto Alegre base, from the build cache (built on first use), with what
    ``correspondance build`` also prepares: the place index and the compiled kernels (on a
    fresh clone the numba cache is empty, and compiling them inside the first test server's
    start-up took longer than its start limit)."""
    from routing.overlay import OverlayHolder
    from routing.place_index import load_or_build_places
    from routing.warmup import warm_up

    base, _ = load_or_build(cities["porto-alegre"], CACHE_DIR)
    load_or_build_places(base, CACHE_DIR)
    warm_up(base, OverlayHolder(base.streets.get("drive")).current)
    return base


@pytest.fixture(scope="session")
def api_url(poa_base: CityBase) -> Iterator[str]:
    """A real uvicorn server on a free loopback port serving Porto Alegre."""
    from api.app import create_app

    settings = Settings(cache_dir=CACHE_DIR, redis_url=None)
    app = create_app(settings, bases={"porto-alegre": poa_base})
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/api/v1/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.1)
    else:
        raise RuntimeError("test server did not start")
    yield url
    server.should_exit = True
    thread.join(timeout=10)
