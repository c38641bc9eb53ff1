"""GBFS polling through real HTTP: good updates, and every fault keeps the last good state."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from tests_realtime_helpers import gbfs_docs

from correspondance.cities import FeedSource
from correspondance.store import MemoryStateStore
from realtime.fetch import Fetcher
from realtime.gbfs_poller import GbfsPoller
from realtime.health import HealthBook, read_health
from realtime.writer import GBFS_UPDATED, LiveWriter
from routing.base import CityBase
from routing.overlay import OverlayHolder

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def rig(feed_server: Any, poa_base: CityBase) -> AsyncIterator[dict[str, Any]]:
    store = MemoryStateStore()
    holder = OverlayHolder(poa_base.streets["drive"])
    writer = LiveWriter("porto-alegre", holder, store)
    health = HealthBook(store, "porto-alegre")
    client = httpx.AsyncClient(trust_env=False)
    fetcher = Fetcher(client, retries=1, backoff_s=0.01, timeout_s=0.5)
    source = FeedSource(id="test-bikes", name="Test bikes", url=f"{feed_server.base_url}/gbfs.json")
    poller = GbfsPoller(source, source.url or "", fetcher, writer, health)
    for name, doc in gbfs_docs(feed_server.base_url, now=int(time.time())).items():
        feed_server.set(name, doc)
    yield {
        "store": store,
        "holder": holder,
        "poller": poller,
        "server": feed_server,
        "health": health,
    }
    await client.aclose()
    await store.aclose()


def _stations(holder: OverlayHolder) -> dict[str, tuple[int, int]]:
    return {
        s.station_id: (s.vehicles_available, s.docks_available) for s in holder.current.stations
    }


async def test_good_poll_applies_stations_and_publishes_one_event(rig: dict[str, Any]) -> None:
    assert await rig["poller"].poll_once() is True
    assert _stations(rig["holder"]) == {"a": (3, 7), "b": (0, 10), "c": (5, 0)}
    events = await rig["store"].read_events()
    assert [e.type for e in events] == [GBFS_UPDATED]
    assert events[0].payload["station_ids"] == ["a", "b", "c"]
    assert events[0].payload["system_id"] == "test-bikes"
    health = {h["feed_id"]: h for h in await read_health(rig["store"], "porto-alegre")}
    assert health["test-bikes"]["status"] == "ok"
    assert health["test-bikes"]["records"] == 3


async def test_unchanged_data_publishes_no_event(rig: dict[str, Any]) -> None:
    await rig["poller"].poll_once()
    version = rig["holder"].current.version
    await rig["poller"].poll_once()
    assert rig["holder"].current.version == version
    assert len(await rig["store"].read_events()) == 1


async def test_changed_station_is_named_in_the_event(rig: dict[str, Any]) -> None:
    await rig["poller"].poll_once()
    docs = gbfs_docs(rig["server"].base_url, now=int(time.time()), bikes_at_b=4)
    rig["server"].set("station_status", docs["station_status"])
    await rig["poller"].poll_once()
    events = await rig["store"].read_events()
    assert events[-1].payload["station_ids"] == ["b"]
    assert _stations(rig["holder"])["b"] == (4, 6)


def _fault_cases(base_url: str) -> dict[str, tuple[dict[str, Any], str]]:
    now = int(time.time())
    docs = gbfs_docs(base_url, now=now)
    zero = {**docs["station_status"], "data": {"stations": []}}
    future = {**docs["station_status"], "last_updated": now + 86_400}
    ancient = {**docs["station_status"], "last_updated": now - 3 * 86_400}
    return {
        "timeout": ({"doc": docs["station_status"], "delay_s": 1.5}, "timeout"),
        "http 500": ({"doc": {"error": "boom"}, "status": 500}, "HTTP 500"),
        "invalid json": ({"raw": b"{not json"}, "invalid JSON"),
        "truncated": ({"raw": b'{"last_updated": 1, "data": {"stations": [{"sta'}, "invalid JSON"),
        "zero stations": ({"doc": zero}, "suddenly lists zero stations"),
        "future": ({"doc": future}, "in the future"),
        "far past": ({"doc": ancient}, "h old"),
        "not gbfs": ({"doc": {"hello": "world"}}, "data"),
    }


@pytest.mark.parametrize(
    "fault",
    [
        "timeout",
        "http 500",
        "invalid json",
        "truncated",
        "zero stations",
        "future",
        "far past",
        "not gbfs",
    ],
)
async def test_fault_keeps_last_good_state_and_marks_degraded(
    rig: dict[str, Any], fault: str
) -> None:
    await rig["poller"].poll_once()
    good = _stations(rig["holder"])
    version = rig["holder"].current.version
    behaviour, reason = _fault_cases(rig["server"].base_url)[fault]
    rig["server"].set("station_status", **behaviour)
    assert await rig["poller"].poll_once() is False
    assert _stations(rig["holder"]) == good
    assert rig["holder"].current.version == version
    health = rig["health"].feeds["test-bikes"]
    assert health.status == "degraded"
    assert reason in (health.reason or "")
    # the feed comes back: polling resumes and the state updates again
    docs = gbfs_docs(rig["server"].base_url, now=int(time.time()), bikes_at_b=9)
    rig["server"].set("station_status", docs["station_status"])
    assert await rig["poller"].poll_once() is True
    assert health.status == "ok"
    assert _stations(rig["holder"])["b"] == (9, 1)


async def test_connection_refused_is_degraded_not_fatal(rig: dict[str, Any]) -> None:
    await rig["poller"].poll_once()
    good = _stations(rig["holder"])
    rig["poller"].urls["station_status"] = "http://127.0.0.1:9/station_status.json"
    assert await rig["poller"].poll_once() is False
    assert "connection failed" in (rig["health"].feeds["test-bikes"].reason or "")
    assert _stations(rig["holder"]) == good


async def test_invalid_record_is_dropped_and_counted(rig: dict[str, Any]) -> None:
    docs = gbfs_docs(rig["server"].base_url, now=int(time.time()))
    docs["station_status"]["data"]["stations"][1]["num_bikes_available"] = -3
    rig["server"].set("station_status", docs["station_status"])
    assert await rig["poller"].poll_once() is True
    assert set(_stations(rig["holder"])) == {"a", "c"}
    assert rig["health"].feeds["test-bikes"].records_rejected == 1


async def test_polling_loop_survives_faults_and_keeps_polling(rig: dict[str, Any]) -> None:
    rig["poller"].interval_s = 0.05
    rig["server"].set("station_status", raw=b"garbage")
    stop = asyncio.Event()
    task = asyncio.create_task(rig["poller"].run(stop))
    await asyncio.sleep(0.6)
    docs = gbfs_docs(rig["server"].base_url, now=int(time.time()))
    rig["server"].set("station_status", docs["station_status"])
    for _ in range(100):
        if rig["holder"].current.stations:
            break
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, timeout=5)
    assert rig["server"].hits["station_status"] >= 3
    assert _stations(rig["holder"])["a"] == (3, 7)


async def test_geofencing_zones_reach_the_overlay(rig: dict[str, Any]) -> None:
    now = int(time.time())
    docs = gbfs_docs(rig["server"].base_url, now=now)
    names = [f["name"] for f in docs["gbfs"]["data"]["en"]["feeds"]] + ["geofencing_zones"]
    docs["gbfs"]["data"]["en"]["feeds"] = [
        {"name": n, "url": f"{rig['server'].base_url}/{n}.json"} for n in names
    ]
    ring = [
        [-51.20, -30.04],
        [-51.19, -30.04],
        [-51.19, -30.03],
        [-51.20, -30.03],
        [-51.20, -30.04],
    ]
    rig["server"].set("gbfs", docs["gbfs"])
    rig["server"].set(
        "geofencing_zones",
        {
            "last_updated": now,
            "ttl": 60,
            "version": "2.3",
            "data": {
                "geofencing_zones": {
                    "type": "FeatureCollection",
                    "features": [
                        {
                            "type": "Feature",
                            "properties": {
                                "name": "Park",
                                "rules": [{"ride_allowed": False, "ride_through_allowed": False}],
                            },
                            "geometry": {"type": "MultiPolygon", "coordinates": [[ring]]},
                        }
                    ],
                }
            },
        },
    )
    assert await rig["poller"].poll_once()
    zones = rig["holder"].current.zones["test-bikes"]
    assert len(zones) == 1
    assert zones[0].ride_end_allowed is False
    assert zones[0].ride_through_allowed is False
    assert zones[0].polygons[0][0][0] == (-51.20, -30.04)


async def test_free_floating_vehicles_are_schema_checked(rig: dict[str, Any]) -> None:
    now = int(time.time())
    docs = gbfs_docs(rig["server"].base_url, now=now)
    docs["gbfs"]["data"]["en"]["feeds"].append(
        {"name": "free_bike_status", "url": f"{rig['server'].base_url}/free_bike_status.json"}
    )
    rig["server"].set("gbfs", docs["gbfs"])
    bikes = [
        {
            "bike_id": "ok-1",
            "lat": -30.031,
            "lon": -51.21,
            "is_reserved": False,
            "is_disabled": False,
            "last_reported": now,
        },
        {
            "bike_id": "bad-1",
            "lat": "north",
            "lon": -51.21,
            "is_reserved": False,
            "is_disabled": False,
            "last_reported": now,
        },
        {
            "bike_id": "busy-1",
            "lat": -30.032,
            "lon": -51.21,
            "is_reserved": True,
            "is_disabled": False,
            "last_reported": now,
        },
    ]
    rig["server"].set(
        "free_bike_status",
        {"last_updated": now, "ttl": 10, "version": "2.3", "data": {"bikes": bikes}},
    )
    assert await rig["poller"].poll_once()
    assert [v.vehicle_id for v in rig["holder"].current.vehicles] == ["ok-1"]
    assert rig["health"].feeds["test-bikes"].records_rejected == 1
