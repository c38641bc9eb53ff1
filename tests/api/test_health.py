"""Honest health (issue 11, finding 7): ``/api/v1/health`` checks the store, each city's
writer and its feeds, and answers 503 while the store is down."""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import uvicorn
from processes import RedisServer, delete_prefix, free_port

from correspondance.settings import REPO_ROOT, Settings
from correspondance.store import RedisStateStore
from routing.base import CityBase

CACHE_DIR = Path(os.environ.get("CORRESPONDANCE_CACHE_DIR", REPO_ROOT / "var" / "cache"))
REDIS_URL = os.environ.get("CORRESPONDANCE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


@contextmanager
def running(settings: Settings, base: CityBase) -> Iterator[str]:
    """A real uvicorn server of the app on a free port, in a thread."""
    from api.app import create_app

    app = create_app(settings, bases={"porto-alegre": base})
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            httpx.get(f"{url}/api/v1/cities", timeout=1)
            break
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise AssertionError("server did not start") from None
            time.sleep(0.1)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def test_embedded_health_checks_store_writer_and_feeds(api_url: str) -> None:
    response = httpx.get(f"{api_url}/api/v1/health", timeout=10)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok", body
    assert body["store"]["status"] == "ok"
    assert body["store"]["backend"] == "memory"
    assert body["store"]["latency_ms"] >= 0
    assert body["writers"] == {"porto-alegre": {"status": "ok", "lock": "writer:porto-alegre"}}
    feeds = body["feeds"]["porto-alegre"]
    assert feeds["status"] == "ok"
    assert sum(feeds["counts"].values()) >= 2  # the simulated car-share and bike-share
    assert response.headers["Cache-Control"] == "no-store"


def test_health_is_503_while_the_store_is_down(tmp_path: Path, poa_base: CityBase) -> None:
    server = RedisServer(tmp_path)
    server.start()
    try:
        settings = Settings(
            cache_dir=CACHE_DIR,
            redis_url=server.url,
            live_feeds=False,
            contributor_secret="health-tests-secret-0123456789",
        )
        with running(settings, poa_base) as url:
            up = httpx.get(f"{url}/api/v1/health", timeout=10)
            assert up.status_code == 200
            assert up.json()["store"]["status"] == "ok"
            # without live feeds there is no writer to check
            assert up.json()["writers"]["porto-alegre"] == {"status": "off", "lock": None}
            server.stop()
            started = time.perf_counter()
            down = httpx.get(f"{url}/api/v1/health", timeout=10)
            assert time.perf_counter() - started < 5
            assert down.status_code == 503, down.text
            body = down.json()
            assert body["status"] == "down"
            assert body["store"]["status"] == "down"
            assert body["store"]["latency_ms"] is None
            assert body["store"]["error"]
            assert body["writers"]["porto-alegre"]["status"] == "unknown"
            # plans do not need the store: the process still serves them
            assert httpx.get(f"{url}/api/v1/cities", timeout=10).status_code == 200
            server.start()  # same port, empty: the store answers again
            deadline = time.monotonic() + 15
            while (again := httpx.get(f"{url}/api/v1/health", timeout=10)).status_code != 200:
                assert time.monotonic() < deadline, again.text
                time.sleep(0.2)
            assert again.json()["store"]["status"] == "ok"
    finally:
        server.stop()


def test_a_city_without_a_writer_is_degraded(poa_base: CityBase) -> None:
    prefix = f"health-{uuid.uuid4().hex[:8]}:"
    settings = Settings(
        cache_dir=CACHE_DIR,
        redis_url=REDIS_URL,
        redis_prefix=prefix,
        role="api",  # an API worker: the writer is another process, and none runs
        contributor_secret="health-tests-secret-0123456789",
    )
    try:
        with running(settings, poa_base) as url:
            body = httpx.get(f"{url}/api/v1/health", timeout=10).json()
            assert body["status"] == "degraded"
            assert body["writers"]["porto-alegre"] == {
                "status": "missing",
                "lock": "writer:porto-alegre",
            }

            async def take_lock() -> None:
                async with RedisStateStore(REDIS_URL, prefix=prefix) as store:
                    assert await store.acquire_lock("writer:porto-alegre", "elsewhere:1", 30)

            asyncio.run(take_lock())
            body = httpx.get(f"{url}/api/v1/health", timeout=10).json()
            assert body["writers"]["porto-alegre"]["status"] == "ok"
    finally:
        delete_prefix(prefix, REDIS_URL)


@pytest.mark.parametrize("path", ["/api/v1/health", "/api/v1/feeds"])
def test_health_and_feeds_answer_head(api_url: str, path: str) -> None:
    assert httpx.head(f"{api_url}{path}", timeout=10).status_code == 200
