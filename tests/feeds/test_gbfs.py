"""GBFS parsing: the spec's own examples, Oslo Bysykkel's real files, and broken feeds."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from correspondance.settings import REPO_ROOT
from feeds.errors import FeedError
from feeds.gbfs import (
    GeofencingZone,
    StationStatus,
    VehicleTypeCount,
    parse_discovery,
    parse_free_bike_status,
    parse_geofencing_zones,
    parse_station_information,
    parse_station_status,
    parse_system_information,
    parse_vehicle_status,
    parse_vehicle_types,
)

EXAMPLES = Path(__file__).parent.parent / "fixtures" / "gbfs" / "examples"
OSLO = REPO_ROOT / "data" / "oslo" / "gbfs"
OSLO_SNAPSHOTS = sorted((OSLO / "station_status").glob("*.json"))


def example(version: str, name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((EXAMPLES / version / f"{name}.json").read_text())
    return doc


def oslo_status(index: int = 0) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(OSLO_SNAPSHOTS[index].read_text())
    return doc


# ------------------------------------------------------------------ spec examples

RECORD_EXAMPLES = [
    ("v2.3", "station_information-1", parse_station_information, 1),
    ("v2.3", "station_information-2", parse_station_information, 1),
    ("v2.3", "station_status", parse_station_status, 2),
    ("v2.3", "free_bike_status-1", parse_free_bike_status, 2),
    ("v2.3", "free_bike_status-2", parse_free_bike_status, 2),
    ("v2.3", "vehicle_types", parse_vehicle_types, 4),
    ("v2.3", "geofencing_zones", parse_geofencing_zones, 1),
    ("v3.0", "station_information-1", parse_station_information, 1),
    ("v3.0", "station_information-2", parse_station_information, 1),
    ("v3.0", "station_information-3", parse_station_information, 1),
    ("v3.0", "station_status", parse_station_status, 2),
    ("v3.0", "vehicle_status-1", parse_vehicle_status, 2),
    ("v3.0", "vehicle_status-2", parse_vehicle_status, 2),
    ("v3.0", "vehicle_types", parse_vehicle_types, 4),
    ("v3.0", "geofencing_zones", parse_geofencing_zones, 2),  # 1 global rule + 1 zone rule
]


@pytest.mark.parametrize(("version", "name", "parse", "count"), RECORD_EXAMPLES)
def test_spec_examples_parse_with_nothing_rejected(
    version: str, name: str, parse: Any, count: int
) -> None:
    raw = (EXAMPLES / version / f"{name}.json").read_bytes()
    parsed = parse(raw)
    assert parsed.rejected == 0, parsed.reasons
    assert len(parsed.records) == count
    assert parsed.version == version[1:]
    assert parsed.notes == ()


def test_v23_station_status_example_values() -> None:
    parsed = parse_station_status(example("v2.3", "station_status"))
    first = parsed.records[0]
    assert first == StationStatus(
        station_id="station1",
        num_vehicles_available=1,
        num_docks_available=3,
        is_renting=True,
        is_returning=True,
        is_installed=True,
        last_reported=1609866125,
        vehicle_types_available=(VehicleTypeCount("abc123", 1), VehicleTypeCount("def456", 0)),
    )
    assert parsed.last_updated == 1640887163
    assert parsed.ttl == 0


def test_v30_timestamps_and_localised_names_are_converted() -> None:
    status = parse_station_status(example("v3.0", "station_status"))
    # "2023-07-17T13:34:13+02:00"
    assert status.last_updated == 1689593653
    assert status.records[0].last_reported == 1689593653
    assert status.records[0].num_vehicles_available == 1
    info = parse_station_information(example("v3.0", "station_information-1"))
    assert info.records[0].name == "Parking garage A"
    assert (info.records[0].lat, info.records[0].lon) == (12.345678, 45.678901)


def test_vehicle_examples_map_both_id_names() -> None:
    bikes = parse_free_bike_status(example("v2.3", "free_bike_status-1")).records
    assert [b.vehicle_id for b in bikes] == [
        "973a5c94-c288-4a2b-afa6-de8aeb6ae2e5",
        "987fd100-b822-4347-86a4-b3eef8ca8b53",
    ]
    floating, docked = bikes
    assert floating.is_free_floating
    assert (floating.lat, floating.lon, floating.vehicle_type_id) == (12.34, 56.78, "abc123")
    assert not docked.is_free_floating
    assert (docked.station_id, docked.current_range_meters) == ("86", 6543.0)
    vehicles = parse_vehicle_status(example("v3.0", "vehicle_status-2")).records
    assert vehicles[0].vehicle_id == "45bd3fb7-a2d5-4def-9de1-c645844ba962"
    assert (vehicles[0].lat, vehicles[0].lon) == (12.345678, 56.789012)
    assert vehicles[0].is_reserved is False
    assert vehicles[0].current_range_meters == 400000.0


def test_vehicle_types_carry_form_factor_and_propulsion() -> None:
    types = {
        t.vehicle_type_id: t for t in parse_vehicle_types(example("v3.0", "vehicle_types")).records
    }
    assert types["abc123"].form_factor == "bicycle"
    assert types["abc123"].propulsion_type == "human"
    assert types["abc123"].name == "Example Basic Bike"
    assert types["cargo123"].form_factor == "cargo_bicycle"
    assert {t.form_factor for t in types.values()} == {
        "bicycle",
        "cargo_bicycle",
        "car",
        "scooter_standing",
    }


def test_geofencing_v23_ride_allowed_sets_start_and_end() -> None:
    (zone,) = parse_geofencing_zones(example("v2.3", "geofencing_zones")).records
    assert zone.name == "NE 24th/NE Knott"
    assert zone.vehicle_type_ids == ("moped1", "car1")
    assert (zone.ride_start_allowed, zone.ride_end_allowed, zone.ride_allowed) == (
        False,
        False,
        False,
    )
    assert zone.ride_through_allowed is True
    assert zone.maximum_speed_kph == 10
    assert (zone.start, zone.end) == (1593878400, 1593907260)
    assert len(zone.polygons) == 2
    exterior = zone.polygons[0][0]
    assert exterior[0] == exterior[-1] == (-122.578067, 45.562982)
    assert not zone.is_global


def test_geofencing_v30_global_rules_come_first() -> None:
    parsed = parse_geofencing_zones(example("v3.0", "geofencing_zones"))
    global_rule, zone = parsed.records
    assert global_rule == GeofencingZone(
        name=None,
        polygons=(),
        vehicle_type_ids=(),
        ride_start_allowed=False,
        ride_end_allowed=False,
        ride_through_allowed=True,
        station_parking=None,
        maximum_speed_kph=None,
        start=None,
        end=None,
        is_global=True,
    )
    assert zone.name == "NE 24th/NE Knott"
    assert zone.station_parking is True
    assert (zone.start, zone.end) == (1689593653, 1721302453)


def test_discovery_examples_are_invalid_and_say_so() -> None:
    # The spec's gbfs.json examples list station_information without station_status, which
    # their own schema forbids (an excerpt, not a feed): the envelope check refuses them.
    for version in ("v2.3", "v3.0"):
        with pytest.raises(FeedError, match=r"gbfs \(GBFS \d\.\d\): invalid document") as info:
            parse_discovery(example(version, "gbfs"))
        assert info.value.code == "invalid_gbfs_document"


def test_discovery_lists_feeds_per_version() -> None:
    doc = example("v2.3", "gbfs")
    for language in ("en", "fr"):
        doc["data"][language]["feeds"].append(
            {"name": "station_status", "url": f"https://www.example.com/gbfs/1/{language}/ss"}
        )
    english = parse_discovery(doc)
    assert english.language == "en"
    assert english.version == "2.3"
    assert english.feeds == {
        "system_information": "https://www.example.com/gbfs/1/en/system_information",
        "station_information": "https://www.example.com/gbfs/1/en/station_information",
        "station_status": "https://www.example.com/gbfs/1/en/ss",
    }
    assert parse_discovery(doc, language="fr").feeds["station_status"].endswith("/fr/ss")
    with pytest.raises(FeedError, match="no feed list for language 'nb'"):
        parse_discovery(doc, language="nb")

    doc3 = example("v3.0", "gbfs")
    doc3["data"]["feeds"].append({"name": "station_status", "url": "https://x.example/ss"})
    discovery = parse_discovery(doc3)
    assert discovery.language is None
    assert discovery.last_updated == 1689593653
    assert sorted(discovery.feeds) == [
        "station_information",
        "station_status",
        "system_information",
    ]


def test_system_information_examples() -> None:
    v23 = parse_system_information(example("v2.3", "system_information"))
    assert (v23.system_id, v23.name, v23.timezone) == (
        "example_cityname",
        "Example Bike Rental",
        "America/Chicago",
    )
    v30 = parse_system_information(example("v3.0", "system_information-1"))
    assert (v30.system_id, v30.name, v30.timezone) == (
        "example_cityname",
        "Example Bike Rental",
        "America/Chicago",
    )
    # system_information-2 is an excerpt that lacks two fields 3.0 requires.
    with pytest.raises(FeedError, match="'opening_hours' is a required property"):
        parse_system_information(example("v3.0", "system_information-2"))


# ------------------------------------------------------------------ Oslo, real files


def test_oslo_station_information() -> None:
    parsed = parse_station_information((OSLO / "station_information.json").read_bytes())
    assert parsed.rejected == 0
    assert len(parsed.records) == 260
    assert parsed.version == "2.2"
    first = parsed.records[0]
    assert (first.station_id, first.name, first.capacity) == ("2351", "Sogn Studentby", 18)
    assert first.lat == pytest.approx(59.95208441268443)


def test_oslo_all_status_snapshots_parse() -> None:
    assert len(OSLO_SNAPSHOTS) == 58
    for path in OSLO_SNAPSHOTS:
        parsed = parse_station_status(path.read_bytes())
        assert parsed.rejected == 0, (path.name, parsed.reasons)
        assert len(parsed.records) == 260
        assert parsed.last_updated == int(path.stem)
        # Oslo publishes 0/1 for booleans: accepted, and said so.
        assert parsed.notes == (
            "260 record(s) used 0/1 for boolean fields (GBFS 1.x style); read as booleans",
        )


def test_oslo_availability_matches_the_raw_json() -> None:
    for index in (0, 29, 57):
        raw = oslo_status(index)
        by_id = {s.station_id: s for s in parse_station_status(raw).records}
        for station in raw["data"]["stations"][::37]:
            parsed = by_id[station["station_id"]]
            assert parsed.num_vehicles_available == station["num_bikes_available"]
            assert parsed.num_docks_available == station["num_docks_available"]
            assert parsed.is_renting is bool(station["is_renting"])
            assert parsed.is_installed is bool(station["is_installed"])
            assert parsed.last_reported == station["last_reported"]
    first = {s.station_id: s for s in parse_station_status(oslo_status(0)).records}
    assert (first["2351"].num_vehicles_available, first["2351"].num_docks_available) == (10, 8)
    assert (first["2350"].num_vehicles_available, first["2350"].num_docks_available) == (19, 6)


# ------------------------------------------------------------------ freshness


def test_freshness_against_now() -> None:
    raw = oslo_status(0)
    updated = raw["last_updated"]
    assert parse_station_status(raw, now=updated + 5).stale is False
    assert parse_station_status(raw, now=updated + 3600).stale is False  # 3×ttl = 30 s < 1 h
    assert parse_station_status(raw, now=updated + 3601).stale is True
    assert parse_station_status(raw).stale is False  # no ``now``: not judged
    long_ttl = {**raw, "ttl": 1800}
    assert parse_station_status(long_ttl, now=updated + 5000).stale is False  # 3×ttl = 90 min
    assert parse_station_status(long_ttl, now=updated + 5401).stale is True


def test_last_updated_in_the_future_is_refused() -> None:
    raw = oslo_status(0)
    updated = raw["last_updated"]
    assert parse_station_status(raw, now=updated - 300).rejected == 0  # clock skew tolerated
    with pytest.raises(FeedError, match="last_updated is 301 s after now") as info:
        parse_station_status(raw, now=updated - 301)
    assert info.value.code == "feed_from_future"


# ------------------------------------------------------------------ broken feeds


def test_invalid_json_is_refused() -> None:
    with pytest.raises(FeedError, match="station_status: not valid JSON"):
        parse_station_status(b'{"last_updated": 1, "data": {')


def test_missing_data_is_refused() -> None:
    raw = {k: v for k, v in oslo_status(0).items() if k != "data"}
    with pytest.raises(FeedError, match="no 'data' object"):
        parse_station_status(raw)


def test_invalid_envelope_names_the_feed_and_problem() -> None:
    raw = {**oslo_status(0), "ttl": "ten"}
    with pytest.raises(
        FeedError, match=r"station_status \(GBFS 2.2\).*ttl: 'ten' is not of type 'integer'"
    ):
        parse_station_status(raw)


def test_unsupported_version_is_refused() -> None:
    raw = {**oslo_status(0), "version": "1.1"}
    with pytest.raises(FeedError, match=r"GBFS version '1\.1' is not supported") as info:
        parse_station_status(raw)
    assert info.value.code == "unsupported_gbfs_version"


def test_bad_records_are_dropped_and_counted() -> None:
    info = json.loads((OSLO / "station_information.json").read_text())
    info["data"]["stations"][0]["lat"] = "59.95"
    parsed = parse_station_information(info)
    assert (len(parsed.records), parsed.rejected) == (259, 1)
    assert parsed.reasons == ("station_id 2351: lat: '59.95' is not of type 'number'",)

    status = oslo_status(0)
    status["data"]["stations"][1]["num_bikes_available"] = -1
    status["data"]["stations"][2]["is_renting"] = 2  # not 0/1: no leniency
    del status["data"]["stations"][3]["station_id"]
    parsed_status = parse_station_status(status)
    assert (len(parsed_status.records), parsed_status.rejected) == (257, 3)
    assert parsed_status.reasons == (
        "station_id 2350: num_bikes_available: -1 is less than the minimum of 0",
        "station_id 2349: is_renting: 2 is not of type 'boolean'",
        "record #3: 'station_id' is a required property",
    )
    assert "2350" not in {s.station_id for s in parsed_status.records}


def test_zero_stations_parse_to_zero_records() -> None:
    raw = copy.deepcopy(oslo_status(0))
    raw["data"]["stations"] = []
    parsed = parse_station_status(raw)
    assert (parsed.records, parsed.rejected, parsed.reasons) == ((), 0, ())


def test_unclosed_geofencing_ring_drops_the_feature() -> None:
    doc = example("v2.3", "geofencing_zones")
    ring = doc["data"]["geofencing_zones"]["features"][0]["geometry"]["coordinates"][0][0]
    ring[-1] = [0.0, 0.0]
    parsed = parse_geofencing_zones(doc)
    assert (parsed.records, parsed.rejected) == ((), 1)
    assert parsed.reasons == ("record #0: a polygon ring is not closed (first position != last)",)
