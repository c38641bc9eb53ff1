"""The writer election holds (issue 11, finding 2).

* Standbys keep trying: killing the writer process of ``serve --workers 2`` hands the lock
  to the other process within two TTLs, and the new writer really writes (fusion runs
  there: reports become a ``congestion.changed`` of the new epoch).
* A Redis outage longer than the TTL never yields two writers: the holder steps down when it
  cannot confirm its lock, and writes are fenced in the store, so the stream never shows
  two epochs interleaved.
* Supervised loops never die silently: a failing loop is logged, counted and restarted.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from pathlib import Path

import httpx
import pytest
from processes import redis_server, serve, wait_until
from report_helpers import new_address, new_token, post_report, report_at
from trip_helpers import CITY, trip_settings

from correspondance.store import Fence, RedisStateStore, StoreError
from realtime.runtime import Supervisor, WriterElection
from routing.base import CityBase

pytestmark = pytest.mark.anyio
TTL_S = 2.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _pid(owner: bytes | None) -> int | None:
    return None if owner is None else int(owner.decode().split(":")[1])


def test_killing_the_writer_of_two_workers_hands_over_within_two_ttls(
    tmp_path: Path, poa_base: CityBase
) -> None:
    ttl = 5.0
    with redis_server(tmp_path / "redis", persistent=True) as redis:
        settings = trip_settings(
            tmp_path, redis=True, redis_url=redis.url, writer_lock_ttl_s=ttl, fusion_k=2
        )
        lock = f"{settings.redis_prefix}lock:writer:{CITY}".encode()
        client = redis.client()
        with serve(settings, tmp_path / "serve.log", "--workers", "2") as server:
            url = server.url or ""
            wait_until(lambda: client.get(lock) is not None, 30, "a writer")
            writer = _pid(client.get(lock))
            assert writer is not None
            epoch = int(client.get(f"{settings.redis_prefix}writer-epoch:{CITY}") or 0)
            os.kill(writer, signal.SIGKILL)
            took = wait_until(
                lambda: _pid(client.get(lock)) not in (None, writer), 2 * ttl + 1, "a new writer"
            )
            assert took <= 2 * ttl, f"took over after {took:.1f} s"
            new_epoch = int(client.get(f"{settings.redis_prefix}writer-epoch:{CITY}") or 0)
            assert new_epoch > epoch
            # the new writer fuses: two contributors on two networks close an edge
            for _ in range(2):
                response = post_report(url, report_at("fusion"), new_token(), new_address())
                assert response.status_code == 202, response.text

            def fused_by_new_writer() -> bool:
                for _, fields in client.xrange(f"{settings.redis_prefix}events"):
                    if fields[b"type"] == b"congestion.changed":
                        payload = json.loads(fields[b"payload"])
                        if payload["writer_epoch"] == new_epoch:
                            return True
                return False

            wait_until(fused_by_new_writer, 15, "congestion fused by the new writer")
            assert httpx.get(f"{url}/api/v1/health", timeout=5).status_code == 200
        client.close()


async def test_a_redis_outage_longer_than_the_ttl_never_yields_two_writers(
    tmp_path: Path,
) -> None:
    with redis_server(tmp_path / "redis", persistent=True) as redis:
        stores = [
            RedisStateStore(redis.url, prefix="elect:", socket_timeout_s=1.0, block_s=0.5)
            for _ in range(2)
        ]
        both_leading = 0
        written: list[int] = []

        def candidate(i: int) -> WriterElection:
            store = stores[i]
            writing: list[asyncio.Task[None]] = []

            async def write(fence: Fence, epoch: int) -> None:
                while True:  # a writer publishing fenced events as fast as feeds would
                    with contextlib.suppress(StoreError, ConnectionError):
                        await store.publish(
                            "test.written", CITY, {"writer_epoch": epoch}, fence=fence
                        )
                        written.append(epoch)
                    await asyncio.sleep(0.05)

            async def elected(fence: Fence, epoch: int) -> None:
                writing.append(asyncio.create_task(write(fence, epoch)))

            async def demoted() -> None:
                for task in writing:
                    task.cancel()
                writing.clear()

            return WriterElection(store, CITY, f"host:{i}:x", TTL_S, elected, demoted)

        elections = [candidate(0), candidate(1)]
        supervisor = Supervisor()
        for i, election in enumerate(elections):
            supervisor.spawn(f"election-{i}", election.run)
        try:
            deadline = time.monotonic() + 2 * TTL_S
            while not any(e.leader for e in elections) and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            first = next(e for e in elections if e.leader)
            await asyncio.sleep(1.0)
            redis.freeze()  # the outage: longer than the TTL
            outage_end = time.monotonic() + 2.5 * TTL_S
            while time.monotonic() < outage_end:
                both_leading += all(e.leader for e in elections)
                await asyncio.sleep(0.02)
            assert not first.leader, "the writer kept its role through the outage"
            redis.thaw()
            after = time.monotonic() + 3 * TTL_S
            while time.monotonic() < after:
                both_leading += all(e.leader for e in elections)
                await asyncio.sleep(0.02)
            assert any(e.leader for e in elections), "nobody writes after the outage"
        finally:
            await supervisor.stop()
            redis.thaw()
        events = await stores[0].read_events()
        epochs = [e.payload["writer_epoch"] for e in events if e.type == "test.written"]
        for store in stores:
            await store.aclose()
    assert both_leading == 0
    assert epochs == sorted(epochs), "two writers' events interleave"
    assert len(set(epochs)) >= 2, "no new term after the outage"
    assert set(written) == set(epochs)


async def test_a_failing_loop_is_logged_counted_and_restarted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runs = 0

    async def flaky() -> None:
        nonlocal runs
        runs += 1
        if runs < 3:
            raise RuntimeError(f"boom {runs}")
        await asyncio.Event().wait()

    supervisor = Supervisor(min_backoff_s=0.01, max_backoff_s=0.02)
    supervisor.spawn("flaky", flaky)
    try:
        deadline = time.monotonic() + 5
        while runs < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        health = supervisor.health()["flaky"]
        assert runs == 3
        assert health["running"] is True
        assert health["errors"] == 2  # each one a restart
        assert health["last_error"] == "restarting in 0.0 s: RuntimeError: boom 2"
        assert "flaky: restarting in 0.0 s failed (error 2)" in caplog.text
    finally:
        await supervisor.stop()
