"""GTFS loading: the real Porto Alegre feeds, and tiny feeds written into tmp_path."""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
import math
import zipfile
from pathlib import Path

import pytest

from correspondance.settings import REPO_ROOT
from feeds.errors import FeedError, FeedValidationError
from feeds.gtfs import TransitData, load_gtfs

POA = REPO_ROOT / "data" / "porto-alegre"
EPTC_ZIP = POA / "poa_eptc.zip"
TRENSURB_ZIP = POA / "poa_trensurb.zip"

AGENCY = "agency_id,agency_name,agency_url,agency_timezone\nA,Agency,http://a.example,UTC\n"
CALENDAR = (
    "service_id,monday,tuesday,wednesday,thursday,friday,saturday,sunday,start_date,end_date\n"
    "WK,1,1,1,1,1,0,0,20190101,20191231\n"
)
# Four stops due north of (0, 0): haversine distance is proportional to latitude here.
STOPS = (
    "stop_id,stop_name,stop_lat,stop_lon\n"
    "S1,One,0.000,0.0\nS2,Two,0.001,0.0\nS3,Three,0.003,0.0\nS4,Four,0.010,0.0\n"
)
ROUTES = "route_id,route_short_name,route_type\nR,1,3\n"


def write_feed(folder: Path, name: str, **tables: str | None) -> Path:
    """A GTFS zip of a minimal valid feed, with tables replaced (``None`` leaves one out)."""
    files: dict[str, str | None] = {
        "agency": AGENCY,
        "stops": STOPS,
        "routes": ROUTES,
        "trips": "route_id,service_id,trip_id\nR,WK,T1\n",
        "stop_times": (
            "trip_id,arrival_time,departure_time,stop_id,stop_sequence\n"
            "T1,08:00:00,08:00:00,S1,1\nT1,08:10:00,08:10:00,S4,2\n"
        ),
        "calendar": CALENDAR,
        **tables,
    }
    path = folder / name
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for table, text in files.items():
            if text is not None:
                archive.writestr(f"{table}.txt", text)
    return path


def hms(seconds: int) -> str:
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def times_of(data: TransitData, trip_id: str) -> list[tuple[str, str, str]]:
    """(stop_id, arrival, departure) of a trip, in stop_sequence order."""
    rows = data.stop_times[data.stop_times["trip_id"] == trip_id].sort_values("stop_sequence")
    return [
        (str(r.stop_id), hms(int(r.arrival_s)), hms(int(r.departure_s))) for r in rows.itertuples()
    ]


def read_table(zip_path: Path, table: str) -> list[dict[str, str]]:
    """A feed table read with the csv module, independently of gtfs-kit."""
    with zipfile.ZipFile(zip_path) as archive:
        text = archive.read(f"{table}.txt").decode("utf-8-sig")
    return list(csv.DictReader(io.StringIO(text)))


@pytest.fixture(scope="module")
def poa_transit() -> TransitData:
    return load_gtfs([("eptc", EPTC_ZIP), ("trensurb", TRENSURB_ZIP)])


# --- the real Porto Alegre feeds -------------------------------------------------------


def test_porto_alegre_feeds_merge_with_their_counts(poa_transit: TransitData) -> None:
    counts = {
        feed_id: (
            int((poa_transit.stops["feed_id"] == feed_id).sum()),
            int((poa_transit.trips["feed_id"] == feed_id).sum()),
            int((poa_transit.routes["feed_id"] == feed_id).sum()),
        )
        for feed_id in ("eptc", "trensurb")
    }
    assert counts == {"eptc": (3986, 2374, 115), "trensurb": (24, 1248, 2)}
    assert len(poa_transit.stops) == 4010
    assert len(poa_transit.trips) == 3622
    assert len(poa_transit.stop_times) == 130019 + 14855
    assert poa_transit.timezone == "America/Sao_Paulo"
    assert poa_transit.warnings == ()
    assert poa_transit.validity == (dt.date(2019, 3, 1), dt.date(2019, 12, 31))


def test_ids_stay_the_feeds_own_when_nothing_collides(poa_transit: TransitData) -> None:
    for feed_id, path in (("eptc", EPTC_ZIP), ("trensurb", TRENSURB_ZIP)):
        mine = poa_transit.stops["feed_id"] == feed_id
        assert set(poa_transit.stops.loc[mine, "stop_id"]) == {
            r["stop_id"] for r in read_table(path, "stops")
        }
        mine = poa_transit.trips["feed_id"] == feed_id
        assert set(poa_transit.trips.loc[mine, "trip_id"]) == {
            r["trip_id"] for r in read_table(path, "trips")
        }
    # Trensurb trip ids contain ':' themselves (FULLW_AP_MR_05:05:00), so look for the prefix.
    for column, frame in (("stop_id", poa_transit.stops), ("trip_id", poa_transit.trips)):
        assert not frame[column].str.startswith(("eptc:", "trensurb:")).any()
    assert set(poa_transit.trips["service_key"]) >= {"trensurb\x1fFULLW", "eptc\x1fT1@1"}


def test_only_colliding_ids_get_the_later_feeds_prefix(tmp_path: Path) -> None:
    first = write_feed(tmp_path, "first.zip")
    second = write_feed(
        tmp_path,
        "second.zip",
        stops="stop_id,stop_name,stop_lat,stop_lon\nS1,Other one,0.0,0.001\nS9,Nine,0.0,0.002\n",
        routes="route_id,route_type\nR,3\nR2,3\n",
        trips="route_id,service_id,trip_id\nR,WK,T1\nR2,WK,T2\n",
        stop_times=(
            "trip_id,arrival_time,departure_time,stop_id,stop_sequence\n"
            "T1,09:00:00,09:00:00,S1,1\nT1,09:05:00,09:05:00,S9,2\n"
            "T2,10:00:00,10:00:00,S9,1\nT2,10:05:00,10:05:00,S1,2\n"
        ),
        transfers="from_stop_id,to_stop_id,transfer_type,min_transfer_time\nS1,S9,2,120\n",
    )
    data = load_gtfs([("a", first), ("b", second)])

    assert list(data.stops["stop_id"]) == ["S1", "S2", "S3", "S4", "b:S1", "S9"]
    assert list(data.routes["route_id"]) == ["R", "b:R", "R2"]
    assert sorted(data.trips["trip_id"]) == ["T1", "T2", "b:T1"]
    assert dict(zip(data.trips["trip_id"], data.trips["route_id"], strict=True)) == {
        "T1": "R",
        "b:T1": "b:R",
        "T2": "R2",
    }
    assert times_of(data, "T1") == [("S1", "08:00:00", "08:00:00"), ("S4", "08:10:00", "08:10:00")]
    assert times_of(data, "b:T1") == [
        ("b:S1", "09:00:00", "09:00:00"),
        ("S9", "09:05:00", "09:05:00"),
    ]
    assert times_of(data, "T2") == [
        ("S9", "10:00:00", "10:00:00"),
        ("b:S1", "10:05:00", "10:05:00"),
    ]
    assert data.transfers[["from_stop_id", "to_stop_id"]].values.tolist() == [["b:S1", "S9"]]
    # service ids never collide: they are qualified by feed in service_key
    assert sorted(data.trips["service_key"]) == ["a\x1fWK", "b\x1fWK", "b\x1fWK"]


# --- interpolation of non-timepoint stops ----------------------------------------------


def _haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = (
        math.sin((p2 - p1) / 2) ** 2
        + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    )
    return 2 * 6_371_000.0 * math.asin(math.sqrt(a))


def _seconds(text: str) -> int:
    h, m, s = (int(x) for x in text.split(":"))
    return h * 3600 + m * 60 + s


def test_real_eptc_trip_times_are_interpolated_by_distance(poa_transit: TransitData) -> None:
    trip_id = "T1-2@1#1202"  # timed only at its first and last stop
    raw = sorted(
        (r for r in read_table(EPTC_ZIP, "stop_times") if r["trip_id"] == trip_id),
        key=lambda r: int(r["stop_sequence"]),
    )
    coords = {
        r["stop_id"]: (float(r["stop_lat"]), float(r["stop_lon"]))
        for r in read_table(EPTC_ZIP, "stops")
    }
    assert raw[0]["arrival_time"] == "12:02:00"
    timed = [i for i, r in enumerate(raw) if r["arrival_time"]]
    assert timed == [0, len(raw) - 1]
    along = [0.0]
    for a, b in itertools.pairwise(raw):
        along.append(along[-1] + _haversine_m(*coords[a["stop_id"]], *coords[b["stop_id"]]))
    start, end = _seconds(raw[0]["arrival_time"]), _seconds(raw[-1]["arrival_time"])
    expected = [math.floor(start + (end - start) * d / along[-1]) for d in along]

    got = poa_transit.stop_times[poa_transit.stop_times["trip_id"] == trip_id]
    assert list(got["stop_id"]) == [r["stop_id"] for r in raw]
    assert list(got["arrival_s"]) == expected
    assert list(got["departure_s"]) == expected
    # one spot value, so a regression shows a readable number
    assert hms(expected[10]) == hms(int(got["arrival_s"].iloc[10]))
    assert expected[0] < expected[10] < expected[-1]


INTERPOLATION_TRIPS = "route_id,service_id,trip_id\nR,WK,SHAPE\nR,WK,CROW\n"


def test_shape_dist_traveled_on_every_stop_sets_the_proportion(tmp_path: Path) -> None:
    # 601 s between the timed ends, so flooring is visible in every interpolated time.
    feed = write_feed(
        tmp_path,
        "shape.zip",
        trips=INTERPOLATION_TRIPS,
        stop_times=(
            "trip_id,arrival_time,departure_time,stop_id,stop_sequence,shape_dist_traveled\n"
            "SHAPE,08:00:00,08:00:00,S1,1,0\nSHAPE,,,S2,2,5\n"
            "SHAPE,,,S3,3,6\nSHAPE,08:10:01,08:10:01,S4,4,10\n"
            "CROW,08:00:00,08:00:00,S1,1,0\nCROW,,,S2,2,5\n"
            "CROW,,,S3,3,\nCROW,08:10:01,08:10:01,S4,4,10\n"
        ),
    )
    data = load_gtfs([("f", feed)])
    # shape_dist_traveled 0, 5, 6, 10: 601 × 0.5 = 300.5 and 601 × 0.6 = 360.6
    assert times_of(data, "SHAPE") == [
        ("S1", "08:00:00", "08:00:00"),
        ("S2", "08:05:00", "08:05:00"),
        ("S3", "08:06:00", "08:06:00"),
        ("S4", "08:10:01", "08:10:01"),
    ]
    # one stop lacks shape_dist_traveled, so the whole trip uses haversine distance;
    # the stops lie on a meridian at latitudes 0, 0.001, 0.003, 0.010: 601 × 0.1 = 60.1
    # and 601 × 0.3 = 180.3
    assert times_of(data, "CROW") == [
        ("S1", "08:00:00", "08:00:00"),
        ("S2", "08:01:00", "08:01:00"),
        ("S3", "08:03:00", "08:03:00"),
        ("S4", "08:10:01", "08:10:01"),
    ]


def test_trips_with_an_untimed_first_or_last_stop_are_dropped_with_a_warning(
    tmp_path: Path,
) -> None:
    feed = write_feed(
        tmp_path,
        "ends.zip",
        trips="route_id,service_id,trip_id\nR,WK,OK\nR,WK,NOSTART\nR,WK,NOEND\n",
        stop_times=(
            "trip_id,arrival_time,departure_time,stop_id,stop_sequence\n"
            "OK,08:00:00,08:00:00,S1,1\nOK,,,S2,2\nOK,08:10:00,08:10:00,S4,3\n"
            "NOSTART,,,S1,1\nNOSTART,08:05:00,08:05:00,S2,2\nNOSTART,08:10:00,08:10:00,S4,3\n"
            "NOEND,08:00:00,08:00:00,S1,1\nNOEND,08:05:00,08:05:00,S2,2\nNOEND,,,S4,3\n"
        ),
    )
    data = load_gtfs([("f", feed)])
    assert data.warnings == ("f: trips dropped: first or last stop has no time: NOEND, NOSTART",)
    assert set(data.stop_times["trip_id"]) == {"OK"}
    assert list(data.trips["trip_id"]) == ["OK"]
    assert times_of(data, "OK")[1] == ("S2", "08:01:00", "08:01:00")


# --- frequencies, pickup/drop-off, after-midnight times --------------------------------


def test_frequencies_expand_to_one_trip_per_departure_before_end_time(tmp_path: Path) -> None:
    feed = write_feed(
        tmp_path,
        "freq.zip",
        trips="route_id,service_id,trip_id\nR,WK,F\nR,WK,PLAIN\n",
        stop_times=(
            "trip_id,arrival_time,departure_time,stop_id,stop_sequence\n"
            "F,06:00:00,06:00:30,S1,1\nF,06:04:00,06:04:30,S2,2\nF,06:10:00,06:10:00,S4,3\n"
            "PLAIN,12:00:00,12:00:00,S1,1\nPLAIN,12:10:00,12:10:00,S4,2\n"
        ),
        frequencies=(
            "trip_id,start_time,end_time,headway_secs\n"
            "F,07:00:00,08:00:00,1200\n"  # 07:00, 07:20, 07:40 — 08:00 is the end, excluded
            "F,08:00:00,08:25:00,600\n"  # 08:00, 08:10, 08:20
            "F,23:50:00,24:30:00,1800\n"  # 23:50, 24:20
        ),
    )
    data = load_gtfs([("f", feed)])
    starts = [
        "07:00:00",
        "07:20:00",
        "07:40:00",
        "08:00:00",
        "08:10:00",
        "08:20:00",
        "23:50:00",
        "24:20:00",
    ]
    expanded = sorted(t for t in data.trips["trip_id"] if t.startswith("F@"))
    assert expanded == [f"F@{s}" for s in starts]
    assert sorted(data.trips["trip_id"]) == sorted([*expanded, "PLAIN"])
    assert set(data.stop_times["trip_id"]) == {*expanded, "PLAIN"}
    assert set(data.trips.loc[data.trips["trip_id"] != "PLAIN", "service_key"]) == {"f\x1fWK"}
    # the template's offsets from its first departure (06:00:30) are kept
    assert times_of(data, "F@07:20:00") == [
        ("S1", "07:19:30", "07:20:00"),
        ("S2", "07:23:30", "07:24:00"),
        ("S4", "07:29:30", "07:29:30"),
    ]
    assert times_of(data, "F@24:20:00")[-1] == ("S4", "24:29:30", "24:29:30")
    assert times_of(data, "PLAIN") == [
        ("S1", "12:00:00", "12:00:00"),
        ("S4", "12:10:00", "12:10:00"),
    ]


def test_frequencies_of_a_colliding_trip_id_are_still_expanded(tmp_path: Path) -> None:
    first = write_feed(tmp_path, "first.zip")  # has a plain trip T1
    second = write_feed(
        tmp_path,
        "second.zip",
        frequencies="trip_id,start_time,end_time,headway_secs\nT1,07:00:00,07:30:00,900\n",
    )
    data = load_gtfs([("a", first), ("b", second)])
    assert sorted(data.trips["trip_id"]) == ["T1", "b:T1@07:00:00", "b:T1@07:15:00"]
    assert times_of(data, "b:T1@07:15:00") == [
        ("b:S1", "07:15:00", "07:15:00"),
        ("b:S4", "07:25:00", "07:25:00"),
    ]
    assert times_of(data, "T1")[0] == ("S1", "08:00:00", "08:00:00")


def test_pickup_and_drop_off_types_are_kept(tmp_path: Path) -> None:
    feed = write_feed(
        tmp_path,
        "pickup.zip",
        stop_times=(
            "trip_id,arrival_time,departure_time,stop_id,stop_sequence,pickup_type,drop_off_type\n"
            "T1,08:00:00,08:00:00,S1,1,0,1\nT1,08:02:00,08:02:00,S2,2,2,3\n"
            "T1,08:04:00,08:04:00,S3,3,,\nT1,08:10:00,08:10:00,S4,4,1,0\n"
        ),
    )
    data = load_gtfs([("f", feed)])
    rows = data.stop_times.sort_values("stop_sequence")
    assert list(rows["pickup_type"]) == [0, 2, 0, 1]
    assert list(rows["drop_off_type"]) == [1, 3, 0, 0]
    assert str(rows["pickup_type"].dtype) == "int8"


def test_times_past_midnight_parse_as_seconds_after_the_service_day_origin(
    tmp_path: Path,
) -> None:
    feed = write_feed(
        tmp_path,
        "night.zip",
        stop_times=(
            "trip_id,arrival_time,departure_time,stop_id,stop_sequence\n"
            "T1,23:50:00,23:51:00,S1,1\nT1,24:00:00,24:00:00,S2,2\n"
            "T1,24:10:00,24:10:30,S3,3\nT1,25:05:30,25:05:30,S4,4\n"
        ),
    )
    data = load_gtfs([("f", feed)])
    rows = data.stop_times.sort_values("stop_sequence")
    assert list(rows["arrival_s"]) == [85800, 86400, 87000, 90330]
    assert list(rows["departure_s"]) == [85860, 86400, 87030, 90330]


# --- validation and unreadable files ---------------------------------------------------


def test_validation_reports_every_problem_at_once(tmp_path: Path) -> None:
    feed = write_feed(
        tmp_path,
        "broken.zip",
        agency="agency_id,agency_name,agency_url,agency_timezone\nA,A,http://a,Mars/Olympus\n",
        stops="stop_id,stop_name,stop_lon\nS1,One,0.0\nS4,Four,0.0\n",
        stop_times=(
            "trip_id,arrival_time,departure_time,stop_id,stop_sequence\n"
            "T1,08:00:00,08:00:00,S1,1\nT1,8h05,08:05:00,NOWHERE,2\n"
            "T1,08:10:00,08:10:00,S4,3\n"
        ),
    )
    with pytest.raises(FeedValidationError, match=r"broken\.zip: 4 problem\(s\)") as caught:
        load_gtfs([("f", feed)])
    assert caught.value.problems == [
        "broken.zip: stops.txt lacks required column(s) stop_lat",
        "broken.zip: stop_times.txt names unknown stop_id: NOWHERE",
        "broken.zip: stop_times.txt arrival_time not HH:MM:SS: 8h05",
        "broken.zip: agency.txt has unknown agency_timezone 'Mars/Olympus'",
    ]
    assert caught.value.code == "feed_validation_failed"


def test_validation_lists_the_problems_of_every_feed(tmp_path: Path) -> None:
    no_stops = write_feed(tmp_path, "no-stops.zip", stops=None)
    no_service = write_feed(
        tmp_path,
        "no-service.zip",
        calendar=None,
        trips="route_id,service_id,trip_id\nR,WK,T1\nGHOST,WK,T1\n",
    )
    with pytest.raises(FeedValidationError, match=r"no-stops\.zip, .*no-service\.zip") as caught:
        load_gtfs([("a", no_stops), ("b", no_service)])
    # the repeated trip_id keeps its first row (a duplicate_key notice, not a problem)
    assert caught.value.problems == [
        "no-stops.zip: stops.txt is missing or empty",
        "no-service.zip: neither calendar.txt nor calendar_dates.txt defines any service",
    ]


def test_a_missing_gtfs_file_is_a_feed_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.zip"
    with pytest.raises(FeedError, match=r"nowhere\.zip: GTFS file not found"):
        load_gtfs([("f", missing)])


def test_a_file_that_is_not_a_zip_is_a_feed_error_naming_it(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.zip"
    garbage.write_bytes(b"this is not a zip archive\n" * 20)
    with pytest.raises(FeedError, match=r"garbage\.zip: not a readable GTFS zip"):
        load_gtfs([("f", garbage)])
    truncated = tmp_path / "truncated.zip"
    truncated.write_bytes(TRENSURB_ZIP.read_bytes()[:50_000])
    with pytest.raises(FeedError, match=r"truncated\.zip: not a readable GTFS zip"):
        load_gtfs([("f", truncated)])


def test_a_zip_with_a_damaged_member_is_a_feed_error_naming_the_member(tmp_path: Path) -> None:
    stop_times = "trip_id,arrival_time,departure_time,stop_id,stop_sequence\n" + "".join(
        f"T1,08:{m:02d}:00,08:{m:02d}:00,S{m % 4 + 1},{m}\n" for m in range(1, 60)
    )
    good = write_feed(tmp_path, "good.zip", stop_times=stop_times)
    data = bytearray(good.read_bytes())
    with zipfile.ZipFile(good) as archive:
        info = archive.getinfo("stop_times.txt")
    # the member's compressed bytes start after its 30-byte local header, name and extra
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    for i in range(start + 10, start + 40):
        data[i] ^= 0xFF
    damaged = tmp_path / "damaged.zip"
    damaged.write_bytes(bytes(data))
    with pytest.raises(FeedError, match=r"damaged\.zip: .*stop_times\.txt is corrupt"):
        load_gtfs([("f", damaged)])


def test_no_feed_at_all_is_a_feed_error() -> None:
    with pytest.raises(FeedError, match="no GTFS feed given"):
        load_gtfs([])


# --- service dates ---------------------------------------------------------------------


def test_calendar_dates_removals_take_services_off_that_day(poa_transit: TransitData) -> None:
    removed_on_good_friday = {
        r["service_id"]
        for r in read_table(EPTC_ZIP, "calendar_dates")
        if r["date"] == "20190419" and r["exception_type"] == "2"
    }
    weekday_services = {r["service_id"] for r in read_table(EPTC_ZIP, "calendar")}
    assert len(removed_on_good_friday) == 54
    assert len(weekday_services) == 115

    thursday = poa_transit.active_service_keys(dt.date(2019, 4, 18))
    good_friday = poa_transit.active_service_keys(dt.date(2019, 4, 19))
    assert thursday == {f"eptc\x1f{s}" for s in weekday_services} | {"trensurb\x1fFULLW"}
    assert thursday - good_friday == {f"eptc\x1f{s}" for s in removed_on_good_friday}
    assert len(good_friday) == 115 - 54 + 1
    assert poa_transit.active_service_keys(dt.date(2019, 4, 20)) == {"trensurb\x1fSA"}
    # outside EPTC's calendar range only Trensurb runs
    assert poa_transit.active_service_keys(dt.date(2019, 7, 17)) == {"trensurb\x1fFULLW"}
