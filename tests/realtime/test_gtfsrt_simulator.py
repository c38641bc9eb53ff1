"""The simulated GTFS-Realtime feed of Porto Alegre (realtime/gtfsrt_simulator.py): what it
serves parses with the official bindings, speaks only of real EPTC trips and stops, is the
same for the same seed and clock, and goes through the real poller into the overlay and feed
health (fresh, simulated)."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import httpx
import pytest
from google.transit import gtfs_realtime_pb2

from correspondance.cities import CityConfig, RealtimeSimulatorConfig, RealtimeSource
from correspondance.store import MemoryStateStore
from feeds.gtfsrt import ExactTripMatcher, parse_alerts, parse_feed, parse_trip_updates
from realtime.fetch import Fetcher
from realtime.gtfsrt_poller import GtfsRtPoller
from realtime.gtfsrt_simulator import GtfsRtServer, GtfsRtSimulator
from realtime.health import HealthBook
from realtime.writer import GTFSRT_UPDATED, LiveWriter
from routing.base import CityBase
from routing.overlay import OverlayHolder

pytestmark = pytest.mark.anyio
SERVICE_DAY = dt.date(2019, 5, 15)
FROZEN = 1795445400.0  # the suite's simulated moment (tests/conftest.py)
WALL = 1796000000.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def config(cities: dict[str, CityConfig]) -> RealtimeSimulatorConfig:
    """The bundled simulator's settings, as data/porto-alegre/city.toml gives them."""
    (source,) = cities["porto-alegre"].gtfs_rt
    assert source.simulated
    assert source.simulate is not None
    return source.simulate


def simulator(
    base: CityBase, config: RealtimeSimulatorConfig, at: float | None = FROZEN, wall: float = WALL
) -> GtfsRtSimulator:
    return GtfsRtSimulator.for_transit(
        config, base.timetable.transit, SERVICE_DAY, clock=lambda: wall, frozen_at=at
    )


def test_feed_parses_with_the_official_bindings_and_names_real_trips_and_stops(
    poa_base: CityBase, config: RealtimeSimulatorConfig
) -> None:
    sim = simulator(poa_base, config)
    message = gtfs_realtime_pb2.FeedMessage()
    message.ParseFromString(sim.feed_bytes())
    assert message.IsInitialized()
    assert message.header.gtfs_realtime_version == "2.0"
    assert message.header.incrementality == gtfs_realtime_pb2.FeedHeader.FULL_DATASET
    assert message.header.timestamp == int(WALL // config.tick_s * config.tick_s)

    transit = poa_base.timetable.transit
    trips = transit.trips
    eptc = trips[trips["feed_id"] == "eptc"]
    running = eptc[eptc["service_key"].isin(list(transit.active_service_keys(SERVICE_DAY)))]
    updates = [e.trip_update for e in message.entity if e.HasField("trip_update")]
    # at most one update per scheduled trip, and every trip of the day has one
    assert sorted(u.trip.trip_id for u in updates) == sorted(running["trip_id"])
    first = transit.stop_times.groupby("trip_id").first()
    kinds: Counter[str] = Counter()
    for update in updates:
        assert update.trip.start_date == "20190515"
        row = first.loc[update.trip.trip_id]
        seconds = int(row["departure_s"])
        expected_start = f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
        assert update.trip.start_time == expected_start
        if update.trip.schedule_relationship == gtfs_realtime_pb2.TripDescriptor.CANCELED:
            assert len(update.stop_time_update) == 0
            kinds["cancelled"] += 1
            continue
        assert update.trip.schedule_relationship == gtfs_realtime_pb2.TripDescriptor.SCHEDULED
        (stu,) = update.stop_time_update
        assert stu.stop_sequence == int(row["stop_sequence"])
        assert stu.stop_id == row["stop_id"]
        # SCHEDULED with both events, as the static stop time has both; the delay propagates
        assert stu.HasField("arrival")
        assert stu.HasField("departure")
        assert stu.arrival.delay == stu.departure.delay
        delay = stu.departure.delay
        assert delay == 0 or (60 <= delay <= config.max_delay_s and delay % 30 == 0)
        kinds["late" if delay else "on time"] += 1
    n = len(updates)
    assert abs(kinds["cancelled"] / n - config.cancel_share) < 0.02, kinds
    assert abs(kinds["late"] / n - config.late_share) < 0.05, kinds

    alerts = [e.alert for e in message.entity if e.HasField("alert")]
    assert len(alerts) == config.alerts == 3
    effects = {gtfs_realtime_pb2.Alert.Effect.Name(a.effect) for a in alerts}
    assert effects == {"SIGNIFICANT_DELAYS", "DETOUR", "STOP_MOVED"}
    route_ids = set(transit.routes["route_id"])
    stop_ids = set(transit.stops["stop_id"])
    for alert in alerts:
        assert not alert.active_period  # active while it is in the feed
        (entity,) = alert.informed_entity
        assert entity.route_id in route_ids or entity.stop_id in stop_ids
        languages = {t.language: t.text for t in alert.header_text.translation}
        assert set(languages) == {"en", "pt"}
        notes = {t.language: t.text for t in alert.description_text.translation}
        assert notes["en"].startswith("Simulated by Correspondance")
        assert notes["pt"].startswith("Simulado pelo Correspondance")


def test_the_delay_alert_names_the_route_with_the_most_late_trips(
    poa_base: CityBase, config: RealtimeSimulatorConfig
) -> None:
    sim = simulator(poa_base, config)
    message = parse_feed(sim.feed_bytes())
    late: Counter[str] = Counter()
    for entity in message.entity:
        update = entity.trip_update
        has_stop = entity.HasField("trip_update") and bool(update.stop_time_update)
        if has_stop and update.stop_time_update[0].departure.delay:
            late[update.trip.route_id] += 1
    most = max(late.values())
    (alert,) = [a for a in parse_alerts(message) if a.effect == "SIGNIFICANT_DELAYS"]
    (selector,) = alert.informed_entities
    assert selector.route_id is not None
    assert late[selector.route_id] == most


def test_same_seed_and_clock_same_bytes_other_seed_or_tick_other_feed(
    poa_base: CityBase, config: RealtimeSimulatorConfig
) -> None:
    one = simulator(poa_base, config).feed_bytes()
    assert simulator(poa_base, config).feed_bytes() == one
    # frozen: the wall clock only moves the header timestamp (the feed stays fresh)
    later = parse_feed(simulator(poa_base, config, wall=WALL + 3600).feed_bytes())
    first = parse_feed(one)
    assert later.header.timestamp == first.header.timestamp + 3600
    assert list(later.entity) == list(first.entity)

    other_seed = config.model_copy(update={"seed": config.seed + 1})
    assert simulator(poa_base, other_seed).feed_bytes() != one

    # one tick later a few trips changed, most did not: situations hold for an episode
    sim = simulator(poa_base, config)
    tick = sim.tick()
    now, then = sim.situation(tick), sim.situation(tick + 1)
    changed = sum(a != b for a, b in zip(now, then, strict=True))
    assert 0 < changed < len(now) * 2 / config.episode_ticks
    # and a running clock serves what the frozen one serves at the same moment
    running = simulator(poa_base, config, at=None, wall=FROZEN)
    assert running.situation(running.tick()) == now


def test_change_tick_predicts_what_the_feed_will_say(
    poa_base: CityBase, config: RealtimeSimulatorConfig
) -> None:
    sim = simulator(poa_base, config)
    tick = sim.tick()
    found = 0
    for trip in sim.trips[:400]:
        at = sim.change_tick(trip.trip_id, tick, cancelled=True, within=3 * config.episode_ticks)
        if at is None:
            continue
        found += 1
        before = {s.trip_id: s for s in sim.situation(at - 1)}[trip.trip_id]
        after = {s.trip_id: s for s in sim.situation(at)}[trip.trip_id]
        assert not before.cancelled
        assert before.delay_s == 0
        assert after.cancelled
    assert found > 0


async def test_the_poller_applies_the_simulated_feed_and_health_shows_it_fresh_and_simulated(
    poa_base: CityBase, config: RealtimeSimulatorConfig
) -> None:
    sim = simulator(poa_base, config, wall=WALL)
    server = GtfsRtServer(sim.feed_bytes).start()
    store = MemoryStateStore()
    holder = OverlayHolder(poa_base.streets["drive"])
    events = []
    try:
        async with httpx.AsyncClient(trust_env=False) as client:
            health = HealthBook(store, "porto-alegre")
            source = RealtimeSource(id="sim", simulate=config, poll_s=10)
            writer = LiveWriter("porto-alegre", holder, store)
            poller = GtfsRtPoller(
                source,
                Fetcher(client),
                writer,
                health,
                poa_base.timetable,
                server.url,
                clock=lambda: WALL + 5,
            )
            async with store.subscribe() as stream:
                assert await poller.poll_once()
                async for event in stream:
                    events.append(event)
                    break
            # the same tick again: 304, nothing re-applied
            assert not await poller.poll_once()
    finally:
        server.stop()

    overlay = holder.current
    situation = sim.situation(sim.tick())
    assert overlay.cancelled_trips == {s.trip_id for s in situation if s.cancelled}
    assert dict(overlay.trip_delays) == {s.trip_id: s.delay_s for s in situation if s.delay_s}
    assert overlay.simulated_trips == {s.trip_id for s in situation}
    assert len(overlay.alerts) == 3
    assert all(a.simulated for a in overlay.alerts)
    (event,) = events
    assert event.type == GTFSRT_UPDATED
    assert event.payload["n_trips_changed"] == len(overlay.trip_delays) + len(
        overlay.cancelled_trips
    )

    feed = health.feeds["sim"]
    assert feed.simulated
    assert feed.status == "ok"
    assert feed.polls == 2
    assert feed.not_modified == 1
    assert feed.records == len(situation) + 3
    assert feed.records_rejected == 0
    assert feed.staleness_s(WALL + 5) == pytest.approx(WALL + 5 - WALL // 30 * 30)
    # every static trip id the matcher knows: nothing unmatched
    updates = parse_trip_updates(
        parse_feed(sim.feed_bytes()), ExactTripMatcher(map(str, poa_base.timetable.trip_ids))
    )
    assert updates.unmatched == 0
