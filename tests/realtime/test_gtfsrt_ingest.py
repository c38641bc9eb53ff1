"""GTFS-Realtime into live transit state: real NYC samples against the NYC static feed."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from google.transit import gtfs_realtime_pb2

from correspondance.cities import RealtimeSource
from correspondance.settings import REPO_ROOT
from correspondance.store import MemoryStateStore
from feeds.gtfs import load_gtfs, service_day_origin
from feeds.gtfsrt import NycSuffixTripMatcher, parse_alerts, parse_feed, parse_trip_updates
from realtime.fetch import Fetcher
from realtime.gtfsrt_poller import GtfsRtPoller
from realtime.health import HealthBook
from realtime.transit import transit_state
from realtime.writer import GTFSRT_UPDATED, LiveWriter
from routing.overlay import OverlayHolder
from routing.timetable import BaseTimetable, build_base_timetable

FIXTURES = REPO_ROOT / "tests" / "fixtures"
NYC_STATIC = FIXTURES / "gtfs" / "nyc-subway-2018" / "nyc_subway.zip"
A_DIVISION = FIXTURES / "gtfs-rt" / "nyc" / "a_division.nyct.gtfsrt"
pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def nyc() -> BaseTimetable:
    return build_base_timetable(load_gtfs([("nyc", NYC_STATIC)]))


def _state(nyc: BaseTimetable):  # type: ignore[no-untyped-def]
    message = parse_feed(A_DIVISION.read_bytes())
    matcher = NycSuffixTripMatcher([str(t) for t in nyc.trip_ids])
    updates = parse_trip_updates(message, matcher)
    stamp = dt.datetime.fromtimestamp(message.header.timestamp, dt.UTC).date()
    return message, updates, transit_state(nyc, updates, parse_alerts(message, matcher), stamp)


def test_delays_are_predicted_minus_scheduled_times(nyc: BaseTimetable) -> None:
    _message, updates, state = _state(nyc)
    assert updates.matched > 150
    assert len(state.delays) > 100
    assert all(abs(d) <= 6 * 3600 for d in state.delays.values())
    # recompute three delays independently from the raw static stop_times
    st = nyc.transit.stop_times
    checked = 0
    for update in updates.updates:
        if update.trip_id not in state.delays or checked == 3:
            continue
        first = next(
            u
            for u in update.stop_time_updates
            if u.schedule_relationship != "SKIPPED" and (u.arrival or u.departure)
        )
        event = first.arrival if first.arrival is not None else first.departure
        assert event is not None
        if event.time is None:
            continue
        rows = st[(st["trip_id"] == update.trip_id) & (st["stop_id"] == first.stop_id)]
        if rows.empty:
            continue
        date = update.trip.start_date
        assert date is not None
        scheduled = service_day_origin(date, nyc.timezone) + int(rows["arrival_s"].iloc[0])
        assert state.delays[update.trip_id] == event.time - scheduled
        checked += 1
    assert checked == 3


async def test_writer_applies_transit_state_once_and_names_changed_trips(
    nyc: BaseTimetable,
) -> None:
    _message, _updates, state = _state(nyc)
    store = MemoryStateStore()
    holder = OverlayHolder(None)
    writer = LiveWriter("nyc", holder, store)
    event = await writer.apply_transit("a-division", state)
    assert event is not None
    assert event.type == GTFSRT_UPDATED
    assert set(event.payload["trip_ids"]) == set(state.delays) | state.cancelled
    assert dict(holder.current.trip_delays) == state.delays
    assert await writer.apply_transit("a-division", state) is None  # nothing changed
    await store.aclose()


def test_delays_shift_the_days_timetable(nyc: BaseTimetable) -> None:
    _message, updates, state = _state(nyc)
    trip_id, delay = next(iter(state.delays.items()))
    trip = nyc.trip_index(trip_id)
    assert trip is not None
    date = dt.date(2018, 7, 11)
    plain = nyc.day(date)
    late = nyc.day(date, ((trip, delay),))

    def times(day):  # type: ignore[no-untyped-def]
        where = np.flatnonzero((day.trip_base == trip) & (day.trip_shift == 0))
        if not len(where):
            return None
        t = int(where[0])
        p = int(np.searchsorted(day.pat_trip_off, t, side="right") - 1)
        n = day.pat_stop_off[p + 1] - day.pat_stop_off[p]
        off = day.pat_time_off[p] + (t - day.pat_trip_off[p]) * n
        return day.arr[off : off + n]

    before, after = times(plain), times(late)
    if before is not None:  # the trip runs that Wednesday
        assert np.array_equal(after, before + delay)
    del updates


def _message_bytes(stamp: int, *, no_service_stop: str | None = None) -> bytes:
    feed = gtfs_realtime_pb2.FeedMessage()
    feed.header.gtfs_realtime_version = "2.0"
    feed.header.timestamp = stamp
    bus = feed.entity.add()
    bus.id = "veh-1"
    bus.vehicle.vehicle.id = "bus-42"
    bus.vehicle.position.latitude = 40.75
    bus.vehicle.position.longitude = -73.99
    if no_service_stop:
        entity = feed.entity.add()
        entity.id = "alert-1"
        entity.alert.effect = gtfs_realtime_pb2.Alert.NO_SERVICE
        entity.alert.informed_entity.add().stop_id = no_service_stop
        entity.alert.header_text.translation.add().text = "Station closed"
    return feed.SerializeToString()


async def test_poller_faults_keep_the_last_good_state(nyc: BaseTimetable, tmp_path: Path) -> None:
    path = tmp_path / "rt.pb"
    store = MemoryStateStore()
    holder = OverlayHolder(None)
    health = HealthBook(store, "nyc")
    async with httpx.AsyncClient() as client:
        poller = GtfsRtPoller(
            RealtimeSource(id="rt", path=str(path)),
            Fetcher(client),
            LiveWriter("nyc", holder, store),
            health,
            nyc,
            str(path),
        )
        path.write_bytes(_message_bytes(int(time.time()), no_service_stop="101N"))
        assert await poller.poll_once()
        assert holder.current.closed_stops == frozenset({"101N"})
        assert holder.current.alerts[0].header == "Station closed"
        assert [(v.vehicle_id, v.lat, v.lon) for v in holder.current.transit_vehicles] == [
            ("bus-42", pytest.approx(40.75), pytest.approx(-73.99))
        ]
        good = holder.current.version
        for bad, reason in (
            (A_DIVISION.read_bytes()[:777], "GTFS-Realtime"),
            (_message_bytes(int(time.time()) + 86_400), "in the future"),
            (b"", ""),
        ):
            path.write_bytes(bad)
            assert not await poller.poll_once()
            assert health.feeds["rt"].status == "degraded"
            assert reason in (health.feeds["rt"].reason or "")
            assert holder.current.version == good
        path.unlink()
        assert not await poller.poll_once()  # a missing file is a fault, not a crash
        path.write_bytes(_message_bytes(int(time.time())))
        assert await poller.poll_once()
        assert health.feeds["rt"].status == "ok"
        assert holder.current.closed_stops == frozenset()
    await store.aclose()


def test_skipped_stop_is_neither_boarded_nor_alighted_by_that_trip(poa_base) -> None:  # type: ignore[no-untyped-def]
    from routing.plan import PlanRequest, plan_trip

    holder = OverlayHolder(poa_base.streets["drive"])
    request = PlanRequest(
        (-30.0346, -51.2177),
        (-30.0277, -51.1793),
        dt.datetime(2019, 5, 15, 13, tzinfo=poa_base.city.tz),
    )
    before = plan_trip(poa_base, request, holder.current)
    ride = next(leg for it in before for leg in it.legs if leg.trip_id)
    assert ride.trip_id is not None
    skipped = ride.destination.stop_id
    holder.set_transit_state(skipped_stops={ride.trip_id: [skipped or ""]})
    after = plan_trip(poa_base, request, holder.current)
    for it in after:
        for leg in it.legs:
            if leg.trip_id == ride.trip_id:
                assert skipped not in (leg.origin.stop_id, leg.destination.stop_id)
    # the transit state reads SKIPPED from trip updates
    feed = gtfs_realtime_pb2.FeedMessage()
    feed.header.gtfs_realtime_version = "2.0"
    feed.header.timestamp = int(time.time())
    entity = feed.entity.add()
    entity.id = "t"
    entity.trip_update.trip.trip_id = ride.trip_id
    stu = entity.trip_update.stop_time_update.add()
    stu.stop_id = skipped or ""
    stu.schedule_relationship = gtfs_realtime_pb2.TripUpdate.StopTimeUpdate.SKIPPED
    from feeds.gtfsrt import ExactTripMatcher

    message = parse_feed(feed.SerializeToString())
    updates = parse_trip_updates(message, ExactTripMatcher([ride.trip_id]))
    state = transit_state(poa_base.timetable, updates, [], dt.date(2019, 5, 15))
    assert state.skipped == {ride.trip_id: {skipped}}
