"""``correspondance plan`` from GTFS files: Porto Alegre (2019) and Caltrain (2009 feed).

Most cases call :func:`routing.plan.answer` in-process; a handful run the real command in
a subprocess (each start costs seconds, so several queries share one ``--queries`` run).
Earliest arrivals are checked against the Connection Scan oracle of test_oracle_nyc.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import itertools
import json
import math
import random
import re
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from test_oracle_nyc import ConnectionOracle

from correspondance.errors import InputError
from correspondance.geo import haversine_m
from correspondance.settings import REPO_ROOT
from feeds.errors import FeedError
from routing.codec import compact_answer
from routing.errors import NoServiceError, UnknownStopError
from routing.gtfs_network import (
    CoordPoint,
    StopPoint,
    StopQuery,
    TransitNetwork,
    load_network,
    local_to_unix,
)
from routing.plan import answer
from routing.plan_queries import (
    check_endpoint,
    parse_depart,
    parse_lat_lon,
    parse_modes,
    read_queries,
)

POA = [
    REPO_ROOT / "data" / "porto-alegre" / "poa_eptc.zip",
    REPO_ROOT / "data/porto-alegre/poa_trensurb.zip",
]
CALTRAIN = Path(__file__).parents[1] / "fixtures" / "gtfs" / "caltrain" / "caltrain_gtfs.zip"
POA_DAY = dt.date(2019, 5, 15)
CALTRAIN_DAY = dt.date(2010, 3, 10)  # a Wednesday of the 2009-08-31 timetable
ISO_WITH_OFFSET = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}$"


def unix(when: dt.datetime) -> int:
    """An itinerary time (aware) in unix seconds, as the oracle gives them."""
    return int(when.timestamp())


@pytest.fixture(scope="module")
def poa() -> TransitNetwork:
    """Porto Alegre buses and rail, crow footpaths."""
    return load_network(POA)


@pytest.fixture(scope="module")
def caltrain() -> TransitNetwork:
    """Caltrain (no transfers.txt; trips after midnight up to 25:37)."""
    return load_network([CALTRAIN])


def run_plan(*args: str) -> subprocess.CompletedProcess[str]:
    """The real command, from the repository root."""
    return subprocess.run(
        [sys.executable, "-m", "api.cli", "plan", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def true_earliest(
    oracle: ConnectionOracle, network: TransitNetwork, query: StopQuery
) -> int | None:
    """The oracle's earliest arrival, walking only included (unix seconds)."""
    assert isinstance(query.origin, StopPoint)
    assert isinstance(query.destination, StopPoint)
    a, b = query.origin.stop_id, query.destination.stop_id
    t0 = local_to_unix(network, query.depart)
    options = [oracle.earliest_arrival(a, b, t0)]
    walk = oracle.footpaths_from(oracle.index[a]).get(oracle.index[b])
    options.append(None if walk is None else t0 + walk)
    found = [t for t in options if t is not None]
    return min(found) if found else None


def check_shape(result: dict[str, Any], origin: str | None, destination: str | None) -> None:
    """JSON shape, ISO times with offsets, legs chained end to start, sorted by arrival."""
    assert set(result) == {"itineraries"}
    arrivals = [dt.datetime.fromisoformat(i["arrival"]) for i in result["itineraries"]]
    assert arrivals == sorted(arrivals)
    for it in result["itineraries"]:
        assert {"departure", "arrival", "transfers", "legs"} <= set(it)
        legs = it["legs"]
        assert legs, "only a same-stop query has no leg"
        rides = [leg for leg in legs if leg["mode"] != "walk"]
        assert it["transfers"] == max(0, len(rides) - 1)
        assert legs[0]["from"]["stop_id"] == origin
        assert legs[-1]["to"]["stop_id"] == destination
        assert it["departure"] == legs[0]["departure"]
        assert it["arrival"] == legs[-1]["arrival"]
        for leg in legs:
            assert {"mode", "from", "to", "departure", "arrival", "route_id", "trip_id"} <= set(leg)
            assert {"stop_id", "name", "lat", "lon"} <= set(leg["from"])
            for key in ("departure", "arrival"):
                assert re.match(ISO_WITH_OFFSET, leg[key]), leg[key]
            assert leg["departure"] <= leg["arrival"]
            assert (leg["trip_id"] is None) == (leg["mode"] == "walk")
        for before, after in itertools.pairwise(legs):
            assert before["to"] == after["from"]
            assert dt.datetime.fromisoformat(before["arrival"]) <= dt.datetime.fromisoformat(
                after["departure"]
            )


# ---------------------------------------------------------------- in-process: itineraries


def test_poa_itineraries_chain_and_match_the_oracle(poa: TransitNetwork) -> None:
    query = StopQuery(StopPoint("4160"), StopPoint("1791"), dt.datetime(2019, 5, 15, 13, 0))
    itineraries = answer(poa, query)
    result = compact_answer(itineraries)
    check_shape(result, "4160", "1791")
    assert [i["transfers"] for i in result["itineraries"]] == [2, 1]  # Pareto: faster, more changes
    assert result["itineraries"][0]["departure"].endswith("-03:00")
    oracle = ConnectionOracle.build(poa.timetable.transit, POA_DAY)
    assert unix(itineraries[0].arrival) == true_earliest(oracle, poa, query)


def test_poa_random_pairs_match_the_oracle(poa: TransitNetwork) -> None:
    oracle = ConnectionOracle.build(poa.timetable.transit, POA_DAY)
    served = sorted(set(poa.timetable.transit.stop_times["stop_id"].astype(str)))
    rng = random.Random(20190515)
    reached = 0
    for _ in range(25):
        a, b = rng.sample(served, 2)
        depart = dt.datetime(2019, 5, 15, 12, 0) + dt.timedelta(seconds=rng.randrange(3 * 3600))
        query = StopQuery(StopPoint(a), StopPoint(b), depart)
        got = answer(poa, query)
        expected = true_earliest(oracle, poa, query)
        assert (unix(got[0].arrival) if got else None) == expected, (a, b, depart)
        reached += expected is not None
    assert reached >= 15


def test_caltrain_after_midnight_and_daytime_match_the_oracle(caltrain: TransitNetwork) -> None:
    oracle = ConnectionOracle.build(caltrain.timetable.transit, CALTRAIN_DAY)
    cases = [
        ("Palo Alto Caltrain", "San Francisco Caltrain", dt.datetime(2010, 3, 10, 8, 0)),
        ("San Francisco Caltrain", "Gilroy Caltrain", dt.datetime(2010, 3, 10, 16, 40)),
        ("Mountain View Caltrain", "22nd Street Caltrain", dt.datetime(2010, 3, 10, 12, 10)),
        ("San Francisco Caltrain", "San Jose Caltrain", dt.datetime(2010, 3, 10, 23, 55)),
    ]
    for a, b, depart in cases:
        query = StopQuery(StopPoint(a), StopPoint(b), depart)
        got = answer(caltrain, query)
        check_shape(compact_answer(got), a, b)
        assert unix(got[0].arrival) == true_earliest(oracle, caltrain, query), (a, b)
    late = answer(
        caltrain,
        StopQuery(
            StopPoint("San Francisco Caltrain"),
            StopPoint("San Jose Caltrain"),
            dt.datetime(2010, 3, 10, 23, 55),
        ),
    )
    # the last train of Wednesday leaves after 23:55 and reaches San Jose after midnight
    arrival = dt.datetime.fromtimestamp(unix(late[0].arrival), caltrain.zone)
    assert (
        dt.datetime(2010, 3, 11, 0, 0) < arrival.replace(tzinfo=None) < dt.datetime(2010, 3, 11, 3)
    )


def _caltrain_with_pickup_forbidden(tmp_path: Path, trip_id: str, stop_id: str) -> Path:
    """A copy of the Caltrain feed where ``trip_id`` does not pick up at ``stop_id``."""
    out = tmp_path / "caltrain_no_pickup.zip"
    with zipfile.ZipFile(CALTRAIN) as src, zipfile.ZipFile(out, "w") as dst:
        for name in src.namelist():
            data = src.read(name)
            if name == "stop_times.txt":
                rows = list(csv.DictReader(io.StringIO(data.decode("utf-8"))))
                hits = 0
                for row in rows:
                    if row["trip_id"] == trip_id and row["stop_id"] == stop_id:
                        row["pickup_type"] = "1"
                        hits += 1
                assert hits == 1
                buffer = io.StringIO()
                writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)
                data = buffer.getvalue().encode("utf-8")
            dst.writestr(name, data)
    return out


def test_forbidden_pickup_is_never_boarded(caltrain: TransitNetwork, tmp_path: Path) -> None:
    query = StopQuery(
        StopPoint("Palo Alto Caltrain"),
        StopPoint("San Francisco Caltrain"),
        dt.datetime(2010, 3, 10, 8, 0),
    )
    before = answer(caltrain, query)[0]
    first_trip = before.legs[0].trip_id
    assert first_trip == "32320090831"  # the 08:05 bullet
    network = load_network(
        [_caltrain_with_pickup_forbidden(tmp_path, first_trip, "Palo Alto Caltrain")]
    )
    after = answer(network, query)
    assert after, "a later train still runs"
    assert all(leg.trip_id != first_trip for it in after for leg in it.legs)
    assert unix(after[0].arrival) > unix(before.arrival)
    oracle = ConnectionOracle.build(network.timetable.transit, CALTRAIN_DAY)
    assert unix(after[0].arrival) == true_earliest(oracle, network, query)


def test_same_stop_is_a_zero_length_itinerary(caltrain: TransitNetwork) -> None:
    depart = dt.datetime(2010, 3, 10, 9, 30)
    query = StopQuery(StopPoint("Palo Alto Caltrain"), StopPoint("Palo Alto Caltrain"), depart)
    result = compact_answer(answer(caltrain, query))
    assert result == {
        "itineraries": [
            {
                "departure": "2010-03-10T09:30:00-08:00",
                "arrival": "2010-03-10T09:30:00-08:00",
                "duration_s": 0,
                "transfers": 0,
                "legs": [],
            }
        ]
    }


def test_no_itinerary_is_an_empty_list(caltrain: TransitNetwork) -> None:
    query = StopQuery(
        StopPoint("Palo Alto Caltrain"), StopPoint("Gilroy Caltrain"), dt.datetime(2010, 3, 10, 9)
    )
    assert answer(caltrain, query, frozenset({"walk"})) == []  # 60 km is not a footpath


def test_coordinates_walk_to_stops_within_reach(caltrain: TransitNetwork) -> None:
    near_palo_alto = CoordPoint(37.4440, -122.1650)  # ~110 m north of the station
    query = StopQuery(
        near_palo_alto, StopPoint("San Francisco Caltrain"), dt.datetime(2010, 3, 10, 8)
    )
    best = answer(caltrain, query)[0]
    walk, ride = best.legs[0], best.legs[1]
    assert walk.mode == "walk"
    assert walk.origin.stop_id is None
    assert walk.destination.stop_id == "Palo Alto Caltrain"
    metres = float(haversine_m(37.4440, -122.1650, walk.destination.lat, walk.destination.lon))
    assert 100 < metres < 150
    assert unix(walk.arrival) - unix(walk.departure) == math.ceil(metres / 1.3)
    assert unix(walk.arrival) == unix(ride.departure)
    far = StopQuery(
        CoordPoint(37.0, -121.0), StopPoint("San Francisco Caltrain"), dt.datetime(2010, 3, 10, 8)
    )
    assert answer(caltrain, far) == []


# ---------------------------------------------------------------- in-process: bad input


def test_malformed_input_names_the_problem(caltrain: TransitNetwork, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"--depart: '2010-03-10 08:00' is not a local time"):
        parse_depart("2010-03-10 08:00")
    with pytest.raises(InputError, match=r"--depart: '2010-02-30T08:00:00'"):
        parse_depart("2010-02-30T08:00:00")
    with pytest.raises(InputError, match=r"--from: '37.4,north' is not LAT,LON"):
        parse_lat_lon("37.4,north", "--from")
    with pytest.raises(InputError, match=r"--to: '97,-122' is out of range"):
        parse_lat_lon("97,-122", "--to")
    with pytest.raises(InputError, match=r"bike need\(s\) a city build.*use the HTTP API"):
        parse_modes("walk,bike")
    with pytest.raises(InputError, match=r"unknown mode\(s\) teleport"):
        parse_modes("teleport")
    with pytest.raises(UnknownStopError, match=r"--from-stop: unknown stop_id 'Atlantis'"):
        check_endpoint(caltrain, StopPoint("Atlantis"), "--from-stop")
    with pytest.raises(NoServiceError, match=r"2030-01-01 is outside the feeds' service period"):
        answer(
            caltrain,
            StopQuery(
                StopPoint("Palo Alto Caltrain"),
                StopPoint("San Jose Caltrain"),
                dt.datetime(2030, 1, 1, 8),
            ),
        )
    bad = tmp_path / "queries.csv"
    bad.write_text(
        "from_stop,to_stop,depart\n"
        "Palo Alto Caltrain,Nowhere,2010-03-10T08:00:00\n"
        "Palo Alto Caltrain,San Jose Caltrain,8am\n"
    )
    with pytest.raises(
        InputError,
        match=r"2 problem\(s\): line 2: unknown stop_id 'Nowhere'; line 3: depart: '8am'",
    ):
        read_queries(caltrain, bad)
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"PK\x03\x04 definitely not a zip")
    with pytest.raises(FeedError, match=r"broken\.zip: not a readable GTFS zip"):
        load_network([broken])
    with pytest.raises(InputError, match=r"--walk-speed: 0.0 is not a positive speed"):
        load_network([CALTRAIN], walk_speed_m_s=0.0)


# ---------------------------------------------------------------- the real command


def test_cli_plans_between_two_porto_alegre_stops(poa: TransitNetwork) -> None:
    done = run_plan(
        *(arg for path in POA for arg in ("--gtfs", str(path))),
        "--from-stop", "4160", "--to-stop", "1791",
        "--depart", "2019-05-15T13:00:00", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    check_shape(result, "4160", "1791")
    query = StopQuery(StopPoint("4160"), StopPoint("1791"), dt.datetime(2019, 5, 15, 13))
    assert result == compact_answer(answer(poa, query))


def test_cli_queries_file_answers_in_input_order(
    caltrain: TransitNetwork, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [
        ("San Jose Caltrain", "San Francisco Caltrain", "2010-03-10T17:00:00"),
        ("Palo Alto Caltrain", "Palo Alto Caltrain", "2010-03-10T09:30:00"),
        ("San Francisco Caltrain", "Gilroy Caltrain", "2010-03-10T16:40:00"),
        ("Gilroy Caltrain", "Palo Alto Caltrain", "2010-03-10T23:50:00"),
    ]
    queries = tmp_path / "queries.csv"
    queries.write_text("from_stop,to_stop,depart\n" + "".join(f"{a},{b},{t}\n" for a, b, t in rows))
    # in process (same entry point as the command) so the CLI module is measured by coverage
    from api.cli import main

    assert main(["plan", "--gtfs", str(CALTRAIN), "--queries", str(queries), "--json"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(rows)
    for line, (a, b, t) in zip(lines, rows, strict=True):
        expected = answer(caltrain, StopQuery(StopPoint(a), StopPoint(b), parse_depart(t)))
        assert json.loads(line) == compact_answer(expected)
    assert json.loads(lines[1])["itineraries"][0]["legs"] == []


def test_cli_no_itinerary_prints_an_empty_list() -> None:
    done = run_plan(
        "--gtfs", str(CALTRAIN), "--from-stop", "Palo Alto Caltrain",
        "--to-stop", "Gilroy Caltrain", "--depart", "2010-03-10T09:00:00",
        "--modes", "walk", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"itineraries": []}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            [
                "--from-stop",
                "Atlantis",
                "--to-stop",
                "Gilroy Caltrain",
                "--depart",
                "2010-03-10T09:00:00",
            ],
            "--from-stop: unknown stop_id 'Atlantis'",
        ),
        (
            [
                "--from-stop",
                "Palo Alto Caltrain",
                "--to-stop",
                "Gilroy Caltrain",
                "--depart",
                "2010-03-10T9h",
            ],
            "--depart: '2010-03-10T9h' is not a local time YYYY-MM-DDTHH:MM:SS",
        ),
        (
            [
                "--from",
                "37.44;-122.16",
                "--to-stop",
                "Gilroy Caltrain",
                "--depart",
                "2010-03-10T09:00:00",
            ],
            "--from: '37.44;-122.16' is not LAT,LON",
        ),
    ],
)
def test_cli_bad_input_exits_2_naming_the_problem(args: list[str], message: str) -> None:
    done = run_plan("--gtfs", str(CALTRAIN), *args, "--json")
    assert done.returncode == 2
    assert message in done.stderr
    assert done.stdout == ""


def test_cli_unreadable_feed_exits_2(tmp_path: Path) -> None:
    broken = tmp_path / "broken.zip"
    broken.write_text("not a zip")
    done = run_plan(
        "--gtfs", str(broken), "--from-stop", "A", "--to-stop", "B",
        "--depart", "2010-03-10T09:00:00", "--json",
    )  # fmt: skip
    assert done.returncode == 2
    assert f"{broken}: not a readable GTFS zip" in done.stderr


def test_cli_defaults_match_the_engine() -> None:
    import api.plan_cli as cli
    import routing.gtfs_network as engine

    assert cli.DEFAULT_WALK_SPEED_M_S == engine.DEFAULT_WALK_SPEED_M_S
    assert cli.DEFAULT_MAX_TRANSFER_WALK_M == engine.DEFAULT_MAX_TRANSFER_WALK_M


# ---------------------------------------------------------------- argument parsing, caching


@pytest.mark.parametrize(
    ("argv", "joined"),
    [
        (["--from", "-30.03,-51.21"], ["--from=-30.03,-51.21"]),
        (["--to", "-.5,10", "--json"], ["--to=-.5,10", "--json"]),
        (["--from", "--to", "1,2"], ["--from", "--to", "1,2"]),  # an option stays an option
        (["--from-stop", "-1"], ["--from-stop", "-1"]),  # only coordinate options
        (["--from"], ["--from"]),
        (["--", "--from", "-1,2"], ["--", "--from", "-1,2"]),
    ],
)
def test_negative_coordinates_are_joined_to_their_option(
    argv: list[str], joined: list[str]
) -> None:
    from api.plan_cli import join_coordinate_values

    assert join_coordinate_values(argv) == joined


def test_cli_takes_southern_and_western_coordinates_as_written(
    poa: TransitNetwork, capsys: pytest.CaptureFixture[str]
) -> None:
    from api.cli import main

    argv = [
        *(arg for path in POA for arg in ("--gtfs", str(path))),
        "--from", "-30.0277,-51.2287", "--to", "-30.0346,-51.2177",
        "--depart", "2019-05-15T13:00:00", "--json",
    ]  # fmt: skip
    assert main(["plan", *argv]) == 0
    got = json.loads(capsys.readouterr().out)
    query = StopQuery(
        CoordPoint(-30.0277, -51.2287), CoordPoint(-30.0346, -51.2177), dt.datetime(2019, 5, 15, 13)
    )
    assert got == compact_answer(answer(poa, query))
    assert got["itineraries"], "the two points are served"


def test_usage_shows_depart_as_required_and_abbreviations_are_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from api.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["plan", "--help"])
    assert exited.value.code == 0
    usage = capsys.readouterr().out.split("\n\n")[0]
    single, batch = usage.split("   or: ")
    assert " (--depart | --arrive) YYYY-MM-DDTHH:MM:SS" in single
    assert "[--depart" not in usage
    assert "[--arrive" not in usage
    assert "(--from LAT,LON | --from-stop STOP_ID)" in single
    assert "--queries FILE.csv" in batch
    assert "--depart" not in batch
    assert "--arrive" not in batch
    with pytest.raises(SystemExit) as exited:
        main(["plan", "--gtfs", str(CALTRAIN), "--fr", "-1,2"])
    assert exited.value.code == 2
    assert "unrecognized arguments: --fr" in capsys.readouterr().err
    assert main(["plan", "--gtfs", str(CALTRAIN), "--from-stop", "A", "--to-stop", "B"]) == 2
    assert "--depart or --arrive is required" in capsys.readouterr().err


# Two streets crossing next to Palo Alto Caltrain (37.44307, -122.1649).
PALO_ALTO_OSM = """<?xml version="1.0" encoding="UTF-8"?>
<osm version="0.6" generator="correspondance-tests">
  <node id="1" version="1" lat="37.4420" lon="-122.1660"/>
  <node id="2" version="1" lat="37.4430" lon="-122.1650"/>
  <node id="3" version="1" lat="37.4440" lon="-122.1640"/>
  <node id="4" version="1" lat="37.4440" lon="-122.1660"/>
  <node id="5" version="1" lat="37.4420" lon="-122.1640"/>
  <way id="10" version="1">
    <nd ref="1"/><nd ref="2"/><nd ref="3"/><tag k="highway" v="residential"/>
  </way>
  <way id="20" version="1">
    <nd ref="4"/><nd ref="2"/><nd ref="5"/><tag k="highway" v="footway"/>
  </way>
</osm>
"""


def test_plan_with_osm_caches_the_network_by_input_hash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import feeds.osm
    from api.cli import main

    osm = tmp_path / "palo-alto.osm"
    osm.write_text(PALO_ALTO_OSM)
    cache = tmp_path / "cache"
    monkeypatch.setenv("CORRESPONDANCE_CACHE_DIR", str(cache))
    builds: list[Path] = []
    real = feeds.osm.load_street_graphs

    def counting(path: Path, *args: Any, **kwargs: Any) -> Any:
        builds.append(path)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(feeds.osm, "load_street_graphs", counting)
    argv = [
        "plan", "--gtfs", str(CALTRAIN), "--osm", str(osm),
        "--from", "37.4431,-122.1652", "--to-stop", "Gilroy Caltrain",
        "--depart", "2010-03-10T08:00:00", "--json",
    ]  # fmt: skip
    assert main(argv) == 0
    first = capsys.readouterr()
    assert "cached for the next run" in first.err
    assert builds == [osm]
    assert len(list((cache / "plan").glob("network-*.pickle"))) == 1
    assert main(argv) == 0
    second = capsys.readouterr()
    assert builds == [osm], "the second call read the cache"
    assert second.out == first.out
    assert json.loads(first.out)["itineraries"][0]["legs"][0]["mode"] == "walk"
    # another input (here the walking speed) is another key: built again
    assert main([*argv, "--walk-speed", "1.1"]) == 0
    assert builds == [osm, osm]
    osm.write_text(PALO_ALTO_OSM.replace("37.4440", "37.4441"))  # edited extract: rebuilt
    assert main(argv) == 0
    assert builds == [osm, osm, osm]
    assert len(list((cache / "plan").glob("network-*.pickle"))) == 3


def test_arrive_by_gives_the_latest_departures_that_make_it(caltrain: TransitNetwork) -> None:
    """Arriving by 10:30 at Gilroy: every option arrives in time; leaving at the latest
    departure makes it, and a minute later no train does (forward answers)."""
    a, b = StopPoint("Palo Alto Caltrain"), StopPoint("San Jose Caltrain")
    deadline = dt.datetime(2010, 3, 10, 10, 30)
    got = answer(caltrain, StopQuery(a, b, deadline, arrive_by=True), frozenset({"transit"}))
    assert got
    deadline_unix = local_to_unix(caltrain, deadline)
    assert all(unix(it.arrival) <= deadline_unix for it in got)
    latest = unix(got[0].departure)
    assert latest == max(unix(it.departure) for it in got)
    leave = dt.datetime.fromtimestamp(latest, caltrain.zone).replace(tzinfo=None)
    on_time = answer(caltrain, StopQuery(a, b, leave), frozenset({"transit"}))
    assert unix(on_time[0].arrival) <= deadline_unix
    late = answer(
        caltrain, StopQuery(a, b, leave + dt.timedelta(minutes=1)), frozenset({"transit"})
    )
    assert not late or unix(late[0].arrival) > deadline_unix


def test_cli_arrive_and_depart_exclude_one_another(capsys: pytest.CaptureFixture[str]) -> None:
    from api.cli import main

    with pytest.raises(SystemExit) as exited:
        main(
            ["plan", "--gtfs", str(CALTRAIN), "--from-stop", "A", "--to-stop", "B",
             "--depart", "2010-03-10T09:00:00", "--arrive", "2010-03-10T10:00:00"]
        )  # fmt: skip
    assert exited.value.code == 2
    assert "argument --arrive: not allowed with argument --depart" in capsys.readouterr().err


def test_cli_arrive_prints_latest_departures_first() -> None:
    done = run_plan(
        "--gtfs", str(CALTRAIN), "--from-stop", "Palo Alto Caltrain",
        "--to-stop", "San Jose Caltrain", "--arrive", "2010-03-10T10:30:00",
        "--modes", "transit", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)["itineraries"]
    assert found
    assert all(it["arrival"] <= "2010-03-10T10:30:00-08:00" for it in found)
    departures = [it["departure"] for it in found]
    assert departures == sorted(departures, reverse=True)
