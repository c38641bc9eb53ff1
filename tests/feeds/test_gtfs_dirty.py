"""Dirty real feeds: tolerated faults give notices, real errors a clear message, and no input
gives a traceback (every GTFS under the shared data folder, plus generated faults)."""

from __future__ import annotations

import datetime as dt
import hashlib
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from correspondance.errors import CorrespondanceError
from correspondance.settings import REPO_ROOT
from feeds.gtfs import check_feed, load_gtfs
from routing.codec import compact_answer
from routing.gtfs_network import StopPoint, StopQuery, load_network
from routing.plan import answer

CALTRAIN = REPO_ROOT / "tests" / "fixtures" / "gtfs" / "caltrain" / "caltrain_gtfs.zip"
# Every GTFS zip the project ships, and those of the shared data folder when it is there;
# a file present in several places (same bytes) is read once.
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def _corpus() -> list[Path]:
    found: dict[str, Path] = {}
    for folder in (REPO_ROOT / "data", REPO_ROOT / "tests" / "fixtures" / "gtfs", SHARED_DATA):
        for path in sorted(folder.rglob("*.zip")) if folder.is_dir() else ():
            found.setdefault(hashlib.sha256(path.read_bytes()).hexdigest(), path)
    return sorted(found.values(), key=lambda p: p.name)


CORPUS = _corpus()
# Full loads (merge, interpolation) only of the small feeds: the others are read, tidied
# and validated, which is where dirty input breaks; merging them takes tens of seconds.
FULL_LOAD_MAX_BYTES = 300_000
QUERY = StopQuery(
    StopPoint("Palo Alto Caltrain"),
    StopPoint("San Jose Caltrain"),
    dt.datetime(2010, 3, 10, 8, 0),
)

Files = dict[str, str]


def caltrain_files() -> Files:
    with zipfile.ZipFile(CALTRAIN) as archive:
        return {name: archive.read(name).decode("utf-8") for name in archive.namelist()}


def write_zip(path: Path, files: Files, encoding: str = "utf-8") -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in files.items():
            archive.writestr(name, text.encode(encoding, errors="replace"))
    return path


def append_row(files: Files, name: str, row: str) -> Files:
    return {**files, name: files[name].rstrip("\r\n") + "\n" + row + "\n"}


def repeat_last_row(files: Files, name: str) -> Files:
    return append_row(files, name, files[name].rstrip("\r\n").splitlines()[-1])


def without(files: Files, *names: str) -> Files:
    return {k: v for k, v in files.items() if k not in names}


def replace(files: Files, name: str, old: str, new: str, count: int = -1) -> Files:
    assert old in files[name]
    return {**files, name: files[name].replace(old, new, count)}


def pad_ids(files: Files) -> Files:
    """Spaces around every field of stop_times.txt and trips.txt (unquoted, as exported)."""
    out = dict(files)
    for name in ("stop_times.txt", "trips.txt"):
        lines = files[name].splitlines()
        out[name] = "\n".join(
            [lines[0], *(",".join(f" {v} " if v else v for v in ln.split(",")) for ln in lines[1:])]
        )
    return out


def mixed_line_endings(files: Files) -> Files:
    out = {}
    for i, (name, text) in enumerate(files.items()):
        lines = text.splitlines()
        ending = ["\r\n", "\n", "\r"][i % 3]
        # within each file too: every other line ends differently
        out[name] = "".join(ln + (ending if j % 2 else "\r\n") for j, ln in enumerate(lines))
    return out


# (fault, mutation, notice codes expected; answers must equal the clean feed's)
TOLERATED: list[tuple[str, Callable[[Files], Files], set[tuple[str, str]]]] = [
    (
        "agency row twice",
        lambda f: repeat_last_row(f, "agency.txt"),
        {("duplicate_key", "agency.txt")},
    ),
    (
        "stop row twice, routes row twice",
        lambda f: repeat_last_row(repeat_last_row(f, "stops.txt"), "routes.txt"),
        {("duplicate_key", "stops.txt"), ("duplicate_key", "routes.txt")},
    ),
    (
        "a stop_id repeated with another name",
        lambda f: append_row(
            f, "stops.txt", 'Gilroy Caltrain,Gilroy Again,"elsewhere",37.0,-121.5,6,'
        ),
        {("duplicate_key", "stops.txt")},
    ),
    (
        "a stop time repeated with another time",
        lambda f: append_row(
            f, "stop_times.txt", "10120090831,6:52:00,6:52:00,22nd Street Caltrain,21,,0,0,"
        ),
        {("duplicate_key", "stop_times.txt")},
    ),
    (
        "a calendar_dates row twice",
        lambda f: repeat_last_row(f, "calendar_dates.txt"),
        {("duplicate_key", "calendar_dates.txt")},
    ),
    (
        "whitespace around ids and times",
        pad_ids,
        {
            ("leading_or_trailing_whitespaces", "stop_times.txt"),
            ("leading_or_trailing_whitespaces", "trips.txt"),
        },
    ),
    ("a BOM on every file", lambda f: {k: "\ufeff" + v for k, v in f.items()}, set()),
    ("CRLF, LF and CR line endings mixed", mixed_line_endings, set()),
    (
        "optional files missing",
        lambda f: without(f, "shapes.txt", "fare_attributes.txt", "fare_rules.txt"),
        set(),
    ),
    (
        "calendar_dates.txt missing",
        lambda f: without(f, "calendar_dates.txt"),
        set(),
    ),
]


@pytest.fixture(scope="module")
def clean_answer() -> dict[str, object]:
    network = load_network([CALTRAIN])
    result = compact_answer(answer(network, QUERY))
    assert result["itineraries"], "the reference query has an answer"
    return result


@pytest.mark.parametrize(("fault", "mutate", "codes"), TOLERATED, ids=[t[0] for t in TOLERATED])
def test_tolerated_faults_give_notices_and_the_same_answers(
    fault: str,
    mutate: Callable[[Files], Files],
    codes: set[tuple[str, str]],
    clean_answer: dict[str, object],
    tmp_path: Path,
) -> None:
    path = write_zip(tmp_path / "caltrain.zip", mutate(caltrain_files()))
    network = load_network([path])
    notices = network.timetable.transit.notices
    got = {(n.code, n.filename) for n in notices} - {("missing_recommended_file", "feed_info.txt")}
    clean = {
        ("leading_or_trailing_whitespaces", "stops.txt"),
        ("leading_or_trailing_whitespaces", "trips.txt"),
    }
    assert got - clean == codes - clean, fault
    assert codes <= got
    assert compact_answer(answer(network, QUERY)) == clean_answer


# (fault, mutation, the message that must name it)
REFUSED: list[tuple[str, Callable[[Files], Files], str]] = [
    (
        "no calendar at all",
        lambda f: without(f, "calendar.txt", "calendar_dates.txt"),
        "neither calendar.txt nor calendar_dates.txt defines any service",
    ),
    ("no stop_times.txt", lambda f: without(f, "stop_times.txt"), "stop_times.txt is missing"),
    (
        "blank agency_timezone",
        lambda f: replace(f, "agency.txt", "America/Los_Angeles", ""),
        "agency without agency_timezone",
    ),
    (
        "a time that is not a time",
        lambda f: replace(f, "stop_times.txt", "5:52:00", "5h52", 1),
        "arrival_time not HH:MM:SS: 5h52",
    ),
    (
        "a stop time naming an unknown stop",
        lambda f: replace(f, "stop_times.txt", "22nd Street Caltrain,21", "Atlantis,21", 1),
        "stop_times.txt names unknown stop_id: Atlantis",
    ),
    (
        "header only stops.txt",
        lambda f: {**f, "stops.txt": f["stops.txt"].splitlines()[0] + "\n"},
        "stops.txt is missing or empty",
    ),
    (
        "a row with too many fields",
        lambda f: append_row(f, "routes.txt", "x,y,z,1,2,3,4,5,6,7,8,9"),
        "cannot read GTFS feed",
    ),
    (
        "a stop_sequence that is not a number",
        lambda f: replace(f, "stop_times.txt", "Caltrain,21,", "Caltrain,twenty,", 1),
        "cannot read GTFS feed",
    ),
    (
        "a calendar date that is no date",
        lambda f: replace(f, "calendar.txt", "20190831", "20191345", 1),
        "calendar.txt",
    ),
    (
        "latitude out of range",
        lambda f: replace(f, "stops.txt", "37.44307", "137.44307"),
        "stops with invalid coordinates: Palo Alto Caltrain",
    ),
]


@pytest.mark.parametrize(("fault", "mutate", "message"), REFUSED, ids=[r[0] for r in REFUSED])
def test_real_errors_stop_with_a_message_naming_them(
    fault: str, mutate: Callable[[Files], Files], message: str, tmp_path: Path
) -> None:
    path = write_zip(tmp_path / "caltrain.zip", mutate(caltrain_files()))
    with pytest.raises(CorrespondanceError, match=r"caltrain\.zip") as caught:
        load_network([path])
    assert message in str(caught.value), fault


@pytest.mark.parametrize("path", CORPUS, ids=[p.name for p in CORPUS])
def test_every_feed_of_the_corpus_reads_without_a_traceback(path: Path) -> None:
    _feed, notices, problems = check_feed(path.stem, path)
    assert problems == []
    assert all(
        n.code in {"duplicate_key", "leading_or_trailing_whitespaces", "missing_recommended_file"}
        for n in notices
    )
    if path.stat().st_size <= FULL_LOAD_MAX_BYTES:
        data = load_gtfs([(path.stem, path)])
        assert len(data.stop_times) > 0
        assert tuple(notices) == data.notices


# Faults whose outcome may be either a usable feed or a clear error, never a traceback.
ODD: list[tuple[str, Callable[[Files], Files]]] = [
    (
        "transfers.txt naming unknown stops",
        lambda f: {
            **f,
            "transfers.txt": "from_stop_id,to_stop_id,transfer_type,min_transfer_time\n"
            "Atlantis,Palo Alto Caltrain,2,120\nPalo Alto Caltrain,Palo Alto Caltrain,2,\n",
        },
    ),
    (
        "frequencies.txt with a zero headway and a garbage time",
        lambda f: {
            **f,
            "frequencies.txt": "trip_id,start_time,end_time,headway_secs\n"
            "10120090831,06:00:00,07:00:00,0\n10220090831,6h,07:00:00,600\n",
        },
    ),
    (
        "parent_station naming an unknown stop",
        lambda f: replace(
            f,
            "stops.txt",
            "stop_id,stop_name,stop_desc,stop_lat,stop_lon,zone_id,stop_url",
            "stop_id,stop_name,stop_desc,stop_lat,stop_lon,zone_id,stop_url,parent_station",
        ),
    ),
    ("an unknown route_type", lambda f: replace(f, "routes.txt", ",2,", ",9999,")),
    ("a route_type that is text", lambda f: replace(f, "routes.txt", ",2,", ",rail,")),
    ("trips of an unknown service_id", lambda f: replace(f, "trips.txt", "WD20090831", "NOPE")),
    (
        "a trip with a single stop time",
        lambda f: append_row(
            {**f, "trips.txt": f["trips.txt"].rstrip() + "\nct_local,WD20090831,SOLO,1,x,0,,\n"},
            "stop_times.txt",
            "SOLO,8:00:00,8:00:00,Palo Alto Caltrain,1,,0,0,",
        ),
    ),
    ("a duplicated column", lambda f: replace(f, "stops.txt", ",stop_url", ",stop_name")),
    ("Latin-1 bytes", lambda f: replace(f, "stops.txt", "Palo Alto", "Palo Alt\u00e9")),
    ("an empty agency.txt", lambda f: {**f, "agency.txt": ""}),
    ("a stop without coordinates", lambda f: replace(f, "stops.txt", "37.44307", "")),
]


@pytest.mark.parametrize(("fault", "mutate"), ODD, ids=[o[0] for o in ODD])
def test_odd_feeds_plan_or_fail_clearly(
    fault: str, mutate: Callable[[Files], Files], tmp_path: Path
) -> None:
    encoding = "latin-1" if fault == "Latin-1 bytes" else "utf-8"
    path = write_zip(tmp_path / "caltrain.zip", mutate(caltrain_files()), encoding)
    try:
        network = load_network([path])
    except CorrespondanceError as exc:
        error: CorrespondanceError | None = exc
    else:
        error = None
    if error is not None:
        assert "caltrain.zip" in str(error), fault
        return
    for itinerary in answer(network, QUERY):
        assert itinerary.arrival >= itinerary.departure


# Two streets crossing next to Palo Alto Caltrain: enough for a city build in a second.
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
    <nd ref="4"/><nd ref="2"/><nd ref="5"/><tag k="highway" v="residential"/>
  </way>
</osm>
"""
CITY_TOML = """id = "{id}"
name = "Dirty Palo Alto"
timezone = "America/Los_Angeles"
bbox = [-122.17, 37.44, -122.16, 37.45]
default_date = 2010-03-10

[osm]
path = "streets.osm"

[[gtfs]]
id = "caltrain"
path = "caltrain.zip"
"""


def write_city(data_dir: Path, city_id: str, files: Files) -> Path:
    folder = data_dir / city_id
    folder.mkdir(parents=True)
    (folder / "city.toml").write_text(CITY_TOML.format(id=city_id))
    (folder / "streets.osm").write_text(PALO_ALTO_OSM)
    write_zip(folder / "caltrain.zip", files)
    return folder


def test_build_output_and_the_feeds_endpoint_list_the_notices(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import threading
    import time

    import httpx
    import uvicorn

    from api.app import create_app
    from api.cli import main
    from correspondance.cities import discover_cities
    from correspondance.settings import Settings
    from routing.base import load_or_build

    data_dir, cache_dir = tmp_path / "data", tmp_path / "cache"
    write_city(data_dir, "dirty", repeat_last_row(caltrain_files(), "agency.txt"))
    monkeypatch.setenv("CORRESPONDANCE_DATA_DIR", str(data_dir))
    monkeypatch.setenv("CORRESPONDANCE_CACHE_DIR", str(cache_dir))
    assert main(["build", "--city", "dirty"]) == 0
    err = capsys.readouterr().err
    assert "Built in " in err
    assert (
        "  notice: caltrain: duplicate_key: agency.txt: "
        "1 row(s) repeated verbatim: dropped, the first kept\n"
    ) in err
    assert "  notice: caltrain: missing_recommended_file: feed_info.txt" in err

    settings = Settings(data_dir=data_dir, cache_dir=cache_dir, redis_url=None)
    base, cached = load_or_build(discover_cities(data_dir)["dirty"], cache_dir)
    assert cached
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings, bases={"dirty": base}), host="127.0.0.1", port=0, log_level="error"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        port = server.servers[0].sockets[0].getsockname()[1]
        reply = httpx.get(f"http://127.0.0.1:{port}/api/v1/feeds?city=dirty", timeout=10)
    finally:
        server.should_exit = True
        thread.join(timeout=15)
    assert reply.status_code == 200
    body = reply.json()
    assert {
        "code": "duplicate_key",
        "feed_id": "caltrain",
        "filename": "agency.txt",
        "count": 1,
        "detail": "1 row(s) repeated verbatim: dropped, the first kept",
    } in body["gtfs_notices"]


def test_one_citys_broken_config_skips_it_and_the_others_build_and_serve(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from api.app import load_bases
    from api.cli import main
    from correspondance.settings import Settings

    data_dir, cache_dir = tmp_path / "data", tmp_path / "cache"
    write_city(data_dir, "good", caltrain_files())
    broken = write_city(data_dir, "broken", caltrain_files())
    (broken / "city.toml").write_text(CITY_TOML.format(id="broken").replace("[osm]", "[osn]"))
    monkeypatch.setenv("CORRESPONDANCE_DATA_DIR", str(data_dir))
    monkeypatch.setenv("CORRESPONDANCE_CACHE_DIR", str(cache_dir))
    assert main(["build"]) == 0  # the default city: the only valid one
    err = capsys.readouterr().err
    assert "Building Dirty Palo Alto (good)" in err
    assert main(["build", "--city", "broken"]) == 2
    err = capsys.readouterr().err
    assert f"correspondance build: error: {broken / 'city.toml'}: invalid city config" in err
    bases, default = load_bases(Settings(data_dir=data_dir, cache_dir=cache_dir), None)
    assert (list(bases), default) == (["good"], "good")
