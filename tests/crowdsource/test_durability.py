"""An acknowledged report is never lost: SIGKILL Redis under load, restart it, count.

A private ``redis-server`` runs with the persistence of ``docker-compose.yml``
(``--appendonly yes --appendfsync always``); the API runs as its own process
(``correspondance serve``) against it. Threads post reports, each with a fresh token, while
Redis is killed and restarted on the same port and data directory. Afterwards every report
that got a 202 is in Redis, and is exported to its token over HTTP; during the outage the
API answered 503 ``store_unavailable`` within the store's timeouts, never 500, never a hang.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import redis
from processes import free_port

from correspondance.settings import REPO_ROOT

CACHE_DIR = Path(os.environ.get("CORRESPONDANCE_CACHE_DIR", REPO_ROOT / "var" / "cache"))
CITY = "porto-alegre"
# midpoints of central drive edges, with the heading of their direction of travel
SPOTS = [
    (-30.0353878, -51.2057233, 359.0),
    (-30.0331315, -51.2172603, 105.0),
    (-30.0321681, -51.2152765, 4.0),
    (-30.03367875, -51.2245012, 224.0),
]
STORE_TIMEOUTS_S = 2.0 + 5.0  # connect + socket timeout of RedisStateStore
pytestmark = pytest.mark.slow


def pings(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
    try:
        return bool(client.ping())
    except redis.ConnectionError:
        return False
    finally:
        client.close()


def wait(predicate: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not within {timeout_s} s")
        time.sleep(0.05)


@dataclass
class RedisProcess:
    """A redis-server with compose's persistence, restartable on the same port and dir."""

    folder: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary is not None, "redis-server is not installed"
        self.process = subprocess.Popen(
            [
                binary,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--dir", str(self.folder),
                "--appendonly", "yes",
                "--appendfsync", "always",
                "--save", "",
            ],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        wait(lambda: pings(self.url), 20, "redis-server start")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.kill()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisProcess]:
    server = RedisProcess(tmp_path / "redis")
    server.folder.mkdir()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def api(redis_server: RedisProcess, tmp_path: Path) -> Iterator[str]:
    """``correspondance serve`` in its own process, on the private Redis."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CORRESPONDANCE_")}
    env.update(
        {
            "REDIS_URL": redis_server.url,
            "CORRESPONDANCE_CACHE_DIR": str(CACHE_DIR),
            "CORRESPONDANCE_LIVE_FEEDS": "false",
            "CORRESPONDANCE_REDIS_PREFIX": f"dur:{uuid.uuid4().hex[:8]}:",
            "CORRESPONDANCE_CONTRIBUTOR_SECRET": secrets.token_hex(32),
            "CORRESPONDANCE_OPERATORS_FILE": str(tmp_path / "operators.json"),
            # one test client posts everything: lift the per-network limits (not the point here)
            "CORRESPONDANCE_REPORT_LIMITS": json.dumps(
                {"address_per_minute": 1_000_000, "address_per_hour": 1_000_000}
            ),
        }
    )
    log = (tmp_path / "server.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=REPO_ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert process.poll() is None, (tmp_path / "server.log").read_text()
        try:
            return httpx.get(f"{url}/api/v1/health", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait(up, 90, "API server start")
        yield url
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        log.close()
        text = (tmp_path / "server.log").read_text()
        assert "Traceback" not in text or "StoreUnavailableError" in text, text


@dataclass
class Outcome:
    token: str
    status: int
    elapsed_s: float
    report_id: str | None
    code: str | None
    sent_at: float


def load(url: str, stop: threading.Event, outcomes: list[Outcome], worker: int) -> None:
    lat, lon, heading = SPOTS[worker % len(SPOTS)]
    with httpx.Client(timeout=30, trust_env=False) as http:
        n = 0
        while not stop.is_set():
            n += 1
            token = secrets.token_urlsafe(24)
            body = {
                "lat": lat,
                "lon": lon,
                "heading": heading,
                "kind": "congestion",
                "level": 1 + n % 4,
            }
            started = time.monotonic()
            try:
                response = http.post(
                    f"{url}/api/v1/reports", json=body, headers={"X-Contributor-Token": token}
                )
            except httpx.TransportError as exc:  # the API itself must never drop us
                outcomes.append(
                    Outcome(token, -1, time.monotonic() - started, None, str(exc), started)
                )
                continue
            elapsed = time.monotonic() - started
            data = response.json()
            outcomes.append(
                Outcome(
                    token,
                    response.status_code,
                    elapsed,
                    data.get("report_id"),
                    data.get("error", {}).get("code"),
                    started,
                )
            )


def test_every_acknowledged_report_survives_a_redis_kill(
    redis_server: RedisProcess, api: str
) -> None:
    outcomes: list[Outcome] = []
    stop = threading.Event()
    threads = [
        threading.Thread(target=load, args=(api, stop, outcomes, i), daemon=True) for i in range(6)
    ]
    for thread in threads:
        thread.start()
    time.sleep(2.0)  # under load
    killed_at = time.monotonic()
    redis_server.kill()
    time.sleep(4.0)  # an outage longer than the store's ride-through (2 s): 503s
    restarted_at = time.monotonic()
    redis_server.start()
    time.sleep(2.5)  # load resumes against the restarted server
    stop.set()
    for thread in threads:
        thread.join(timeout=STORE_TIMEOUTS_S + 10)
        assert not thread.is_alive()

    statuses = {o.status for o in outcomes}
    print(
        f"{len(outcomes)} requests: {sum(o.status == 202 for o in outcomes)} acknowledged, "
        f"{sum(o.status == 503 for o in outcomes)} answered 503"
    )
    assert statuses <= {202, 503}, statuses  # never 500, never a dropped connection
    acked = [o for o in outcomes if o.status == 202]
    refused = [o for o in outcomes if o.status == 503]
    assert all(o.code == "store_unavailable" for o in refused)
    assert len([o for o in acked if o.sent_at < killed_at]) > 20
    assert refused, "no request met the outage"
    assert [o for o in acked if o.sent_at > restarted_at + 0.5], "no report after the restart"
    assert max(o.elapsed_s for o in outcomes) < STORE_TIMEOUTS_S + 1

    # 1. every acknowledged report is in the restarted Redis (read straight from it)
    client = redis.Redis.from_url(redis_server.url, socket_timeout=5)
    try:
        prefix = next(
            key.decode().split("cs:")[0] for key in client.scan_iter(match="*cs:*:report:*")
        )
        keys = [f"{prefix}cs:{CITY}:report:{o.report_id}" for o in acked]
        present = [bool(v) for v in client.mget(keys)]
    finally:
        client.close()
    lost = [o.report_id for o, there in zip(acked, present, strict=True) if not there]
    assert lost == [], f"{len(lost)} of {len(acked)} acknowledged reports lost"

    # 2. and their contributors get them back over HTTP (a sample, around the kill)
    around = sorted(acked, key=lambda o: abs(o.sent_at - killed_at))[:40]
    with httpx.Client(timeout=10, trust_env=False) as http:
        for outcome in around:
            export = http.get(
                f"{api}/api/v1/me/reports", headers={"X-Contributor-Token": outcome.token}
            )
            assert export.status_code == 200
            assert [r["report_id"] for r in export.json()["reports"]] == [outcome.report_id]
