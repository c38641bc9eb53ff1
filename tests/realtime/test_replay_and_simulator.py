"""The recorded Oslo day replayed as a live feed, and the deterministic simulator."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from correspondance.cities import FeedSource, SimulatorConfig
from correspondance.settings import REPO_ROOT
from correspondance.store import MemoryStateStore
from realtime.fetch import Fetcher
from realtime.gbfs_poller import GbfsPoller
from realtime.gbfs_server import GbfsServer
from realtime.health import HealthBook
from realtime.replay import Recording, VirtualClock
from realtime.simulator import GbfsSimulator
from realtime.writer import LiveWriter
from routing.base import CityBase
from routing.overlay import OverlayHolder

OSLO_GBFS = REPO_ROOT / "data" / "oslo" / "gbfs"
pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_recording_picks_the_snapshot_in_force() -> None:
    rec = Recording(OSLO_GBFS)
    assert len(rec.epochs) == 58
    first, second = rec.epochs[0], rec.epochs[1]
    assert rec.status_at(first - 1000)["last_updated"] == first  # before the day: first
    assert rec.status_at(second - 1)["last_updated"] == first
    assert rec.status_at(second)["last_updated"] == second
    assert rec.status_at(10**12)["last_updated"] == rec.epochs[-1]


def test_virtual_clock_runs_at_speed() -> None:
    real = FakeClock()
    clock = VirtualClock(start=1000.0, speed=60.0, real=real)
    real.t = 10.0
    assert clock() == pytest.approx(1600.0)


async def test_replay_goes_through_the_poller_and_applies_real_availability(
    poa_base: CityBase,
) -> None:
    rec = Recording(OSLO_GBFS)
    real = FakeClock()
    clock = VirtualClock(start=rec.epochs[0], speed=60.0, real=real)
    server = GbfsServer(rec.provider(clock, "oslo-bysykkel")).start()
    store = MemoryStateStore()
    holder = OverlayHolder(poa_base.streets["drive"])
    async with httpx.AsyncClient(trust_env=False) as client:
        poller = GbfsPoller(
            FeedSource(id="oslo-bysykkel", name="Oslo Bysykkel", path="gbfs"),
            server.discovery_url,
            Fetcher(client),
            LiveWriter("oslo", holder, store),
            HealthBook(store, "oslo"),
            clock=clock,
            replay=True,
        )
        try:
            assert await poller.poll_once()
            raw = json.loads((OSLO_GBFS / "station_status" / f"{rec.epochs[0]}.json").read_text())
            expected = {s["station_id"]: s["num_bikes_available"] for s in raw["data"]["stations"]}
            got = {s.station_id: s.vehicles_available for s in holder.current.stations}
            assert got == {k: v for k, v in expected.items() if k in got}
            assert len(got) >= 250
            # midday of the recorded day, reached at 60× speed: that snapshot applies
            real.t = (rec.epochs[30] - rec.epochs[0]) / 60.0 + 1
            assert await poller.poll_once()
            events = await store.read_events()
            assert len(events) == 2
            assert events[1].payload["n_stations_changed"] > 0
            raw = json.loads((OSLO_GBFS / "station_status" / f"{rec.epochs[30]}.json").read_text())
            midday = {s["station_id"]: s["num_bikes_available"] for s in raw["data"]["stations"]}
            got = {s.station_id: s.vehicles_available for s in holder.current.stations}
            assert got == {k: v for k, v in midday.items() if k in got}
            assert poller.health.feeds["oslo-bysykkel"].replay is True
            assert poller.health.feeds["oslo-bysykkel"].status == "ok"
        finally:
            server.stop()
            await store.aclose()


def _simulator(seed: int = 7, clock: Any = None) -> GbfsSimulator:
    points = np.column_stack([np.linspace(-30.05, -30.02, 50), np.linspace(-51.22, -51.18, 50)])
    cfg = SimulatorConfig(
        form_factor="car", stations=10, vehicles=5, seed=seed, free_floating_return=True, tick_s=60
    )
    return GbfsSimulator(
        "sim",
        "Sim cars",
        cfg,
        points,
        "America/Sao_Paulo",
        clock=clock or (lambda: 1_700_000_000.0),
    )


def test_simulator_is_deterministic_for_a_seed() -> None:
    a, b = _simulator(), _simulator()
    for feed in ("station_information", "station_status", "free_bike_status"):
        assert a.document(feed, "http://x") == b.document(feed, "http://x")
    other = _simulator(seed=8)
    assert other.document("station_information", "http://x") != a.document(
        "station_information", "http://x"
    )


def test_simulator_availability_moves_and_stays_within_capacity() -> None:
    t = [1_700_000_000.0]
    sim = _simulator(clock=lambda: t[0])
    seen = []
    for step in range(30):
        t[0] = 1_700_000_000.0 + step * 600
        doc = sim.document("station_status", "http://x")
        assert doc is not None
        for s, cap in zip(doc["data"]["stations"], sim.capacity, strict=True):
            assert 0 <= s["num_bikes_available"] <= cap
            assert s["num_bikes_available"] + s["num_docks_available"] == cap
        seen.append(tuple(s["num_bikes_available"] for s in doc["data"]["stations"]))
    assert len(set(seen)) > 10


def test_simulator_says_it_is_simulated() -> None:
    doc = _simulator().document("system_information", "http://x")
    assert doc is not None
    assert "(simulated)" in doc["data"]["name"]


def test_simulator_documents_validate_against_the_official_gbfs_schemas() -> None:
    import jsonschema

    schema_dir = Path(__import__("feeds").__file__).parent / "schemas" / "gbfs" / "v2.3"
    sim = _simulator()
    for feed in (
        "gbfs",
        "system_information",
        "vehicle_types",
        "station_information",
        "station_status",
        "free_bike_status",
    ):
        schema = json.loads((schema_dir / f"{feed}.json").read_text())
        jsonschema.validate(sim.document(feed, "http://127.0.0.1:1"), schema)


def test_a_simulator_source_is_always_labelled_simulated() -> None:
    source = FeedSource(id="sim", simulate=SimulatorConfig(form_factor="bicycle"))
    assert source.simulated is True


async def test_vehicle_types_decide_the_form_factor(poa_base: CityBase) -> None:
    sim = _simulator(clock=time.time)  # a car system, published with vehicle_types, live
    server = GbfsServer(sim.document).start()
    store = MemoryStateStore()
    holder = OverlayHolder(poa_base.streets["drive"])
    async with httpx.AsyncClient(trust_env=False) as client:
        # configured without a form factor: the default would say bicycle
        source = FeedSource(id="cars", url=server.discovery_url)
        assert source.form_factor == "bicycle"
        poller = GbfsPoller(
            source,
            server.discovery_url,
            Fetcher(client),
            LiveWriter("poa", holder, store),
            HealthBook(store, "poa"),
        )
        try:
            assert await poller.poll_once()
            assert holder.current.systems["cars"].form_factor == "car"
            assert {s.form_factor for s in holder.current.stations} == {"car"}
            assert len(holder.current.vehicles) == 5  # free-floating cars from the feed
        finally:
            server.stop()
            await store.aclose()
