"""The documented production topology, as real processes on loopback (docker-compose.yml):
one Redis (persistent, as compose runs it), ``correspondance worker`` and two
``correspondance serve`` processes of role ``api``.

* A contributor's report posted to one API process becomes a switch suggestion on a trip
  socket held by the *other* API process (the worker fuses and runs the trip engine).
* With two workers, killing one (SIGKILL) hands its trip partitions — and, if it wrote, the
  city's writer lock — to the other within 10 s; no session or message is lost, and its
  trips still get their suggestions.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from processes import Process, RedisServer, redis_server, serve, wait_until, worker
from topology_helpers import close_road_ahead, suggestion_on_other_api
from trip_helpers import (
    CITY,
    bearer,
    closure_ahead,
    plan,
    start_trip,
    trip_settings,
    trip_socket,
    with_mode,
)

from correspondance.settings import Settings
from routing.base import CityBase

pytestmark = pytest.mark.anyio
PARTITIONS = 8


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Topology:
    redis: RedisServer
    settings: Settings
    workers: list[Process]
    apis: list[Process]

    def key(self, name: str) -> str:
        return f"{self.settings.redis_prefix}{name}"

    def lock_owner(self, name: str) -> str | None:
        raw = self.redis.client().get(self.key(f"lock:{name}"))
        return None if raw is None else raw.decode()

    def partition_owners(self) -> dict[int, str | None]:
        return {k: self.lock_owner(f"trips:{CITY}:{k}") for k in range(PARTITIONS)}


def _pid(owner: str | None) -> int | None:
    return None if owner is None else int(owner.split(":")[1])


def _start_topology(stack: ExitStack, folder: Path, n_workers: int, n_apis: int) -> Topology:
    redis = stack.enter_context(redis_server(folder / "redis", persistent=True))
    settings = trip_settings(
        folder,
        redis=True,
        redis_url=redis.url,
        writer_lock_ttl_s=3.0,
        trip_lease_ttl_s=2.0,
        trip_partitions=PARTITIONS,
    )
    workers = [
        stack.enter_context(worker(settings, folder / f"worker-{i}.log")) for i in range(n_workers)
    ]
    apis = [
        stack.enter_context(
            serve(settings.model_copy(update={"role": "api"}), folder / f"api-{i}.log")
        )
        for i in range(n_apis)
    ]
    topology = Topology(redis, settings, workers, apis)
    pids = {w.pid for w in workers}
    # one worker writes the city; the workers share every trip partition between them
    wait_until(lambda: _pid(topology.lock_owner(f"writer:{CITY}")) in pids, 20, "a writer")
    wait_until(
        lambda: {_pid(o) for o in topology.partition_owners().values()} == pids,
        20,
        "partitions shared by the workers",
    )
    return topology


@pytest.fixture
def topology(tmp_path: Path, poa_base: CityBase) -> Iterator[Topology]:
    """Redis + one worker + two API processes (what docker-compose.yml runs)."""
    with ExitStack() as stack:
        yield _start_topology(stack, tmp_path, n_workers=1, n_apis=2)


@pytest.fixture
def two_workers(tmp_path: Path, poa_base: CityBase) -> Iterator[Topology]:
    """Redis + two workers + one API process."""
    with ExitStack() as stack:
        yield _start_topology(stack, tmp_path, n_workers=2, n_apis=1)


async def test_a_report_on_one_api_process_reaches_a_socket_on_the_other(
    topology: Topology, poa_base: CityBase
) -> None:
    first, second = (api.url or "" for api in topology.apis)
    async with suggestion_on_other_api(first, second, poa_base) as suggested:
        suggestion, ws = suggested.suggestion, suggested.ws
        # accepted on the second process, the plan is updated for every process
        await ws.send({"type": "accept", "suggestion_id": suggestion["suggestion_id"]})
        updated = await ws.recv_type("plan_updated", timeout=10)
        assert updated["itinerary"] == suggestion["itinerary"]
    trip_id, token, waited = suggested.trip_id, suggested.token, suggested.waited_s
    async with httpx.AsyncClient(timeout=30) as http:
        export = await http.get(f"{first}/api/v1/trips/{trip_id}", headers=bearer(token))
    assert export.json()["trip"]["plan"] == suggestion["itinerary"]
    # the worker wrote it (fenced, with its epoch); the API processes wrote no live state
    events = topology.redis.client().xrange(topology.key("events"))
    congestion = [f for _, f in events if f[b"type"] == b"congestion.changed"]
    assert congestion
    assert all(b'"writer_epoch":' in f[b"payload"] for f in congestion)
    # where the time went, should it ever be slow: the stream's own timestamps
    timeline = [
        (f[b"type"].decode(), f[b"at"].decode()) for _, f in events if f[b"type"] != b"trip.started"
    ]
    assert waited < 5.0, f"suggestion {waited:.1f} s after the last report: {timeline}"


async def test_a_killed_engine_process_hands_its_trips_over_within_10_s(
    two_workers: Topology, poa_base: CityBase
) -> None:
    topology = two_workers
    url = topology.apis[0].url or ""
    victim, survivor = topology.workers
    victim_parts = {k for k, o in topology.partition_owners().items() if _pid(o) == victim.pid}
    trips: list[tuple[str, str]] = []
    async with httpx.AsyncClient(timeout=30) as http:
        itinerary = with_mode(await plan(http, url), "carshare")
        # trips until one is the victim's (half the partitions are)
        while not any(zlib.crc32(t.encode()) % PARTITIONS in victim_parts for t, _ in trips):
            trips.append(await start_trip(http, url, itinerary))
            assert len(trips) < 40
    trip_id, token = next(
        t for t in trips if zlib.crc32(t[0].encode()) % PARTITIONS in victim_parts
    )
    report, closed = closure_ahead(poa_base, itinerary)
    async with trip_socket(url, trip_id, token) as ws:
        assert (await ws.recv())["type"] == "hello"
        victim.kill()
        killed = time.monotonic()
        took = wait_until(
            lambda: {_pid(o) for o in topology.partition_owners().values()} == {survivor.pid},
            10,
            "the survivor holds every partition",
        )
        assert time.monotonic() - killed <= 10.0, f"took {took:.1f} s"
        # the city still has a writer (the victim may have been it)
        wait_until(
            lambda: _pid(topology.lock_owner(f"writer:{CITY}")) == survivor.pid,
            10,
            "the survivor writes the city",
        )
        await close_road_ahead(url, report)
        suggestion = await ws.recv_type("switch_suggestion", timeout=15)
        driven = {e for leg in suggestion["itinerary"]["legs"] for e in leg["drive_edges"]}
        assert not driven & closed
    # no session lost: every trip still answers, and every one got its suggestion
    async with httpx.AsyncClient(timeout=30) as http:
        for other_id, other_token in trips:
            response = await http.get(f"{url}/api/v1/trips/{other_id}", headers=bearer(other_token))
            assert response.status_code == 200, response.text
        deadline = time.monotonic() + 15
        for other_id, other_token in trips:
            while True:
                response = await http.get(
                    f"{url}/api/v1/trips/{other_id}", headers=bearer(other_token)
                )
                kinds = [m["type"] for m in response.json()["messages"]]
                if "switch_suggestion" in kinds or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
            assert "switch_suggestion" in kinds, (other_id, kinds)
