"""GTFS-Realtime parsing: real MTA subway samples, broken bytes, a hand-built message."""

from __future__ import annotations

import csv
import io
import zipfile
from datetime import date
from functools import cache
from pathlib import Path

import pytest
from google.transit import gtfs_realtime_pb2

from feeds.errors import FeedError
from feeds.gtfsrt import (
    ActivePeriod,
    Alert,
    EntitySelector,
    ExactTripMatcher,
    NycSuffixTripMatcher,
    StopTimeEvent,
    StopTimeUpdate,
    TripDescriptor,
    nyc_trip_key,
    parse_alerts,
    parse_feed,
    parse_trip_updates,
    parse_vehicle_positions,
)

FIXTURES = Path(__file__).parent.parent / "fixtures"
NYC_RT = FIXTURES / "gtfs-rt" / "nyc"
NYC_STATIC = FIXTURES / "gtfs" / "nyc-subway-2018" / "nyc_subway.zip"
DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

# Sample → (trip updates, vehicle positions, NYC matches with the date filter, without it).
# The samples are from 2021 and the static feed from 2018: unmatched trips are mostly
# timetable changes in between, not matcher failures.
SAMPLES = {
    "a_division.nyct.gtfsrt": (285, 174, 216, 199),
    "b_division.nyct.gtfsrt": (156, 156, 48, 44),
    "2_delay.nyct.gtfsrt": (208, 136, 139, 126),
}


@cache
def static_table(name: str) -> tuple[dict[str, str], ...]:
    with zipfile.ZipFile(NYC_STATIC) as archive, archive.open(name) as handle:
        return tuple(csv.DictReader(io.TextIOWrapper(handle, encoding="utf-8-sig")))


@cache
def service_of_trip() -> dict[str, str]:
    return {row["trip_id"]: row["service_id"] for row in static_table("trips.txt")}


def runs_on_weekday(trip_id: str, service_date: date) -> bool:
    """The calendar's weekday pattern, ignoring its 2018 date range (the samples are 2021)."""
    calendar = {row["service_id"]: row for row in static_table("calendar.txt")}
    return calendar[service_of_trip()[trip_id]][DAYS[service_date.weekday()]] == "1"


def nyc_matcher() -> NycSuffixTripMatcher:
    return NycSuffixTripMatcher(service_of_trip(), runs_on_weekday)


def sample(name: str) -> bytes:
    return (NYC_RT / name).read_bytes()


# ------------------------------------------------------------------ real samples


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_nyc_samples_parse_and_count(name: str) -> None:
    n_updates, n_vehicles, n_matched, n_matched_undated = SAMPLES[name]
    message = parse_feed(sample(name))
    assert sum(e.HasField("trip_update") for e in message.entity) == n_updates

    nyc = parse_trip_updates(message, nyc_matcher())
    assert len(nyc.updates) == n_updates
    assert (nyc.matched, nyc.unmatched) == (n_matched, n_updates - n_matched)
    assert nyc.timestamp == message.header.timestamp
    assert len(nyc.unmatched_trip_ids) == 10
    statics = set(service_of_trip())
    for update in nyc.updates:
        if update.trip_id is not None:
            assert update.trip_id in statics
            static_key, realtime_key = (
                nyc_trip_key(update.trip_id),
                nyc_trip_key(update.trip.trip_id or ""),
            )
            assert static_key is not None
            assert realtime_key is not None
            assert static_key[:3] == realtime_key[:3]
            assert runs_on_weekday(update.trip_id, date(2021, 11, 26))  # a Friday

    # Without the date filter, suffixes shared by Weekday/Saturday/Sunday stay ambiguous
    # (and a lone Saturday candidate is taken for Friday's train: fewer, less right matches).
    undated = parse_trip_updates(message, NycSuffixTripMatcher(statics))
    assert undated.matched == n_matched_undated
    # The static ids carry a service prefix the realtime ids lack.
    assert parse_trip_updates(message, ExactTripMatcher(statics)).matched == 0

    vehicles = parse_vehicle_positions(message, nyc_matcher())
    assert len(vehicles) == n_vehicles
    assert all(v.lat is None and v.stop_id for v in vehicles)  # NYC sends stops, no coordinates


def test_nyc_match_rate_floor() -> None:
    updates = [parse_trip_updates(parse_feed(sample(n)), nyc_matcher()) for n in SAMPLES]
    matched = sum(u.matched for u in updates)
    total = sum(len(u.updates) for u in updates)
    assert (matched, total) == (403, 649)  # 62.1 %
    assert matched / total > 0.6


def test_nyc_stop_ids_exist_in_the_static_feed() -> None:
    stops = {row["stop_id"] for row in static_table("stops.txt")}
    for name, expected_known in [
        ("a_division.nyct.gtfsrt", 6109),
        ("2_delay.nyct.gtfsrt", 4109),
        # B division: the 2018 fixture lacks the A line's far ends and the Rockaway and
        # Franklin shuttles (A02-A07, A57-A65, H01-H19, S01-S04); every other stop is there.
        ("b_division.nyct.gtfsrt", 2151),
    ]:
        updates = parse_trip_updates(parse_feed(sample(name)), ExactTripMatcher(()))
        ids = [s.stop_id for u in updates.updates for s in u.stop_time_updates]
        assert sum(i in stops for i in ids) == expected_known, name
    b_ids = {
        s.stop_id
        for u in parse_trip_updates(
            parse_feed(sample("b_division.nyct.gtfsrt")), ExactTripMatcher(())
        ).updates
        for s in u.stop_time_updates
    }
    assert {(i or "?")[0] for i in b_ids - stops} == {"A", "H", "S"}


def test_nyc_alert_sample() -> None:
    (alert,) = parse_alerts(parse_feed(sample("2_delay.nyct.gtfsrt")), nyc_matcher())
    assert alert.header_text == "Train delayed"
    assert alert.effect == "UNKNOWN_EFFECT"
    assert [e.trip.trip_id for e in alert.informed_entities if e.trip] == [
        "120700_2..N01R",
        "126400_7X..34ST-11M",
        "129000_7..MAIN ST34",
    ]
    assert [e.trip.route_id for e in alert.informed_entities if e.trip] == ["2", "7X", "7"]
    assert all(e.route_id is None for e in alert.informed_entities)  # routes only via trips


def test_nyc_trip_key() -> None:
    assert nyc_trip_key("ASP18GEN-GS019-Weekday-00_052750_GS.S04R") == ("052750", "GS", "S", "04R")
    assert nyc_trip_key("048450_1..N") == ("048450", "1", "N", "")
    assert nyc_trip_key("050350_0") is None


def test_nyc_matcher_requires_the_path_when_given() -> None:
    matcher = NycSuffixTripMatcher(["X-Weekday_048450_1..N03R", "X-Weekday_048450_1..N01R"])

    def trip(trip_id: str) -> TripDescriptor:
        return TripDescriptor(trip_id, "1", None, None, None, "SCHEDULED")

    assert matcher(trip("048450_1..N03R")) == "X-Weekday_048450_1..N03R"
    assert matcher(trip("048450_1..N")) is None  # two paths fit: ambiguous, not guessed
    assert matcher.candidates(trip("048450_1..N")) == [
        "X-Weekday_048450_1..N03R",
        "X-Weekday_048450_1..N01R",
    ]
    assert matcher(trip("048450_1..S03R")) is None


# ------------------------------------------------------------------ broken bytes


def test_truncated_sample_is_refused() -> None:
    data = sample("a_division.nyct.gtfsrt")
    assert len(data) == 214259
    for keep in range(0, len(data), 997):  # 215 cuts, from the empty message to the last bytes
        with pytest.raises(FeedError, match=r"GTFS-Realtime: .*FeedMessage") as info:
            parse_feed(data[:keep])
        assert info.value.code == "invalid_gtfsrt"
    # A cut that falls exactly between two entities is a valid, shorter message: protobuf
    # cannot tell it from a small feed (the writer compares entity counts between polls).
    assert len(parse_feed(data[:1000]).entity) == 6


def test_garbage_and_empty_bytes_are_refused() -> None:
    with pytest.raises(FeedError, match="not a FeedMessage"):
        parse_feed(b"<html>502 Bad Gateway</html>")
    with pytest.raises(FeedError, match=r"incomplete FeedMessage \(0 bytes\), missing header"):
        parse_feed(b"")


# ------------------------------------------------------------------ a hand-built message


def built_message() -> bytes:
    message = gtfs_realtime_pb2.FeedMessage()
    message.header.gtfs_realtime_version = "2.0"
    message.header.timestamp = 1_700_000_000

    cancelled = message.entity.add(id="cancel-1")
    cancelled.trip_update.trip.trip_id = "T1"
    cancelled.trip_update.trip.start_date = "20231114"
    cancelled.trip_update.trip.schedule_relationship = (
        gtfs_realtime_pb2.TripDescriptor.ScheduleRelationship.Value("CANCELED")
    )

    delayed = message.entity.add(id="delay-1")
    delayed.trip_update.trip.trip_id = "T2"
    delayed.trip_update.timestamp = 1_699_999_990
    skipped = delayed.trip_update.stop_time_update.add(stop_sequence=3, stop_id="S3")
    skipped.schedule_relationship = (
        gtfs_realtime_pb2.TripUpdate.StopTimeUpdate.ScheduleRelationship.Value("SKIPPED")
    )
    late = delayed.trip_update.stop_time_update.add(stop_sequence=4, stop_id="S4")
    late.arrival.delay = 120
    late.departure.time = 1_700_000_300

    unknown = message.entity.add(id="added-1")
    unknown.trip_update.trip.trip_id = "NOT-IN-STATIC"
    unknown.trip_update.trip.schedule_relationship = (
        gtfs_realtime_pb2.TripDescriptor.ScheduleRelationship.Value("ADDED")
    )

    closure = message.entity.add(id="alert-1")
    closure.alert.effect = gtfs_realtime_pb2.Alert.Effect.Value("NO_SERVICE")
    closure.alert.cause = gtfs_realtime_pb2.Alert.Cause.Value("CONSTRUCTION")
    closure.alert.active_period.add(start=1_700_000_000, end=1_700_086_400)
    closure.alert.informed_entity.add(stop_id="S3")
    closure.alert.header_text.translation.add(text="Station closed", language="en")
    closure.alert.header_text.translation.add(text="Station fermée", language="fr")

    position = message.entity.add(id="veh-1")
    position.vehicle.trip.trip_id = "T2"
    position.vehicle.vehicle.id = "bus-42"
    position.vehicle.position.latitude = 59.9
    position.vehicle.position.longitude = 10.75
    position.vehicle.current_stop_sequence = 4
    position.vehicle.current_status = gtfs_realtime_pb2.VehiclePosition.VehicleStopStatus.Value(
        "IN_TRANSIT_TO"
    )
    data: bytes = message.SerializeToString()
    return data


def test_built_message_round_trips() -> None:
    message = parse_feed(built_message())
    match = ExactTripMatcher(["T1", "T2"])

    updates = parse_trip_updates(message, match)
    assert (updates.matched, updates.unmatched) == (2, 1)
    assert updates.unmatched_trip_ids == ("NOT-IN-STATIC",)
    assert updates.timestamp == 1_700_000_000
    cancelled, delayed, added = updates.updates
    assert cancelled.trip_id == "T1"
    assert cancelled.schedule_relationship == "CANCELED"
    assert cancelled.trip.start_date == date(2023, 11, 14)
    assert cancelled.stop_time_updates == ()
    assert delayed.timestamp == 1_699_999_990
    assert delayed.stop_time_updates == (
        StopTimeUpdate(3, "S3", None, None, "SKIPPED"),
        StopTimeUpdate(
            4,
            "S4",
            StopTimeEvent(delay=120, time=None, uncertainty=None),
            StopTimeEvent(delay=None, time=1_700_000_300, uncertainty=None),
            "SCHEDULED",
        ),
    )
    assert (added.trip_id, added.schedule_relationship) == (None, "ADDED")

    assert parse_alerts(message) == [
        Alert(
            alert_id="alert-1",
            cause="CONSTRUCTION",
            effect="NO_SERVICE",
            active_periods=(ActivePeriod(1_700_000_000, 1_700_086_400),),
            informed_entities=(EntitySelector(None, None, None, None, "S3", None, None),),
            header_text="Station closed",
            description_text=None,
            url=None,
        )
    ]

    (vehicle,) = parse_vehicle_positions(message, match)
    assert (vehicle.vehicle_id, vehicle.trip_id, vehicle.current_stop_sequence) == (
        "bus-42",
        "T2",
        4,
    )
    assert vehicle.lat == pytest.approx(59.9)
    assert vehicle.lon == pytest.approx(10.75)
    assert vehicle.current_status == "IN_TRANSIT_TO"
    assert vehicle.stop_id is None
