"""Shared by the report tests: real servers, clients with chosen source addresses, probes.

Every server is a real uvicorn on a free loopback port. A client's address is chosen by
binding its socket to one of the 127.0.0.0/8 loopback addresses (Linux routes the whole
block to ``lo``), so the server sees distinct ``request.client.host`` values through plain
TCP: no proxy header, no test-only code path.
"""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import redis
import uvicorn
from processes import delete_prefix as delete_prefix
from processes import wait_started

from correspondance.settings import REPO_ROOT, Settings
from correspondance.store import RedisStateStore
from crowdsource.account_tables import open_operator_accounts
from realtime.writer import congestion_state_key, decode_congestion
from routing.base import CityBase

REDIS_URL = os.environ.get("CORRESPONDANCE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
CACHE_DIR = Path(os.environ.get("CORRESPONDANCE_CACHE_DIR", REPO_ROOT / "var" / "cache"))
CITY = "porto-alegre"
SECRET = "report-tests-secret-0123456789abcdef"
TOKEN_HEADER = "X-Contributor-Token"
PASSWORD = "correct horse battery staple"
LISBON = (38.7223, -9.1393)
LAKE = (-30.04, -51.26)  # Guaíba, inside the city's bbox, no street within 60 m

# One-way drive edges of central Porto Alegre (tail → head), each used by one test only,
# with the midpoint and heading a driver on them would report.
EDGES: dict[str, dict[str, Any]] = {
    "fusion": {"edge": 264, "at": (-30.0353878, -51.2057233), "heading": 359.0},
    "attack": {"edge": 271, "at": (-30.0331315, -51.2172603), "heading": 105.0},
    "delete": {"edge": 282, "at": (-30.0321681, -51.2152765), "heading": 4.0},
    "view": {"edge": 140, "at": (-30.03367875, -51.2245012), "heading": 224.0},
    "confirm": {"edge": 278, "at": (-30.03311515, -51.2136117), "heading": 11.0},
    "single": {"edge": 301, "at": (-30.02662775, -51.21827135), "heading": 88.0},
    "lonely": {"edge": 133, "at": (-30.0314631, -51.22405485), "heading": 311.0},
    "ttl": {"edge": 109, "at": (-30.04763465, -51.2160458), "heading": 261.0},
    "privacy": {"edge": 356, "at": (-30.03497705, -51.2040613), "heading": 0.0},
}


def new_token() -> str:
    """A fresh contributor token, as a device would make one."""
    return secrets.token_urlsafe(24)


def new_address() -> str:
    """A loopback address no other test uses (127.x.y.z, x ≥ 10)."""
    return f"127.{random.randint(10, 250)}.{random.randint(0, 255)}.{random.randint(2, 254)}"


def report_at(name: str, **fields: Any) -> dict[str, Any]:
    """A congestion report (level 4 unless told) on the named test edge."""
    spot = EDGES[name]
    body: dict[str, Any] = {
        "lat": spot["at"][0],
        "lon": spot["at"][1],
        "heading": spot["heading"],
        "kind": "congestion",
        "level": 4,
        "mode": "car",
    }
    body.update(fields)
    return {k: v for k, v in body.items() if v is not None}


def client(address: str = "127.0.0.1", timeout: float = 10.0) -> httpx.Client:
    """An HTTP client whose connections come from ``address``."""
    return httpx.Client(
        transport=httpx.HTTPTransport(local_address=address), timeout=timeout, trust_env=False
    )


def post_report(
    url: str, body: Any, token: str | None, address: str = "127.0.0.1", **kwargs: Any
) -> httpx.Response:
    headers = {TOKEN_HEADER: token} if token is not None else {}
    with client(address) as http:
        return http.post(f"{url}/api/v1/reports", json=body, headers=headers, **kwargs)


def report_settings(kind: str, folder: Path, **overrides: Any) -> Settings:
    """Settings of a test server: embedded or Redis under a fresh prefix."""
    values: dict[str, Any] = {
        "cache_dir": CACHE_DIR,
        "live_feeds": True,
        "redis_url": REDIS_URL if kind == "redis" else None,
        "redis_prefix": f"test:{uuid.uuid4().hex}:",
        "operators_file": folder / "operators.json",
        "secret_file": folder / "secret",
        "contributor_secret": SECRET,
    }
    values.update(overrides)
    return Settings(**values)


@contextmanager
def serve(settings: Settings, base: CityBase) -> Iterator[str]:
    """A real uvicorn server of ``base`` on a free port of every loopback address."""
    from api.app import create_app

    app = create_app(settings, bases={CITY: base})
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_started(server, thread)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def fused(settings: Settings) -> dict[int, float]:
    """The fused congestion map the writer stored (Redis deployments)."""
    r = redis.Redis.from_url(REDIS_URL, socket_timeout=5)
    try:
        raw = r.get(settings.redis_prefix + congestion_state_key(CITY))
    finally:
        r.close()
    if raw is None:
        return {}
    assert isinstance(raw, bytes)
    return decode_congestion(raw)


def wait_for(predicate: Any, timeout_s: float, step_s: float = 0.1) -> float:
    """Poll until ``predicate()`` is true; return the seconds it took (AssertionError if not)."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"not true within {timeout_s} s")
        time.sleep(step_s)
    return time.monotonic() - started


def car_seconds(url: str, base: CityBase, name: str) -> int:
    """Duration of the fastest car trip along the named test edge (tail node → head node),
    as /api/v1/plan answers it: what routing's drive legs see."""
    drive = base.streets["drive"]
    edge = EDGES[name]["edge"]
    tail, head = int(drive.tail[edge]), int(drive.head[edge])
    response = httpx.get(
        f"{url}/api/v1/plan",
        params={
            "from": f"{drive.node_lat[tail]:.7f},{drive.node_lon[tail]:.7f}",
            "to": f"{drive.node_lat[head]:.7f},{drive.node_lon[head]:.7f}",
            "modes": "car",
        },
        timeout=30,
    )
    assert response.status_code == 200, response.text
    durations = [
        sum(leg["duration_s"] for leg in it["legs"] if leg["mode"] == "car")
        for it in response.json()["itineraries"]
        if any(leg["mode"] == "car" for leg in it["legs"])
    ]
    assert durations, response.text
    return int(min(durations))


def operator_token(settings: Settings, url: str) -> str:
    """Add an operator to the server's accounts and log in as them."""
    username = f"op-{uuid.uuid4().hex[:12]}"

    async def add() -> None:
        async with RedisStateStore(REDIS_URL, prefix=settings.redis_prefix) as store:
            await open_operator_accounts(store, settings.operators_file).add(username, PASSWORD)

    asyncio.run(add())
    response = httpx.post(
        f"{url}/api/v1/operators/token",
        json={"username": username, "password": PASSWORD},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token
