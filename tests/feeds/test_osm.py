"""OSM streets: osmnx's own network filters, and per-mode graphs from a tiny XML extract."""

from __future__ import annotations

import re
from pathlib import Path

import networkx as nx
import pytest

from feeds.errors import FeedError
from feeds.osm import StreetMode, load_street_graphs, mode_filter

# ── A tiny extract, drawn left to right (lat −30.03, lon −51.230 … −51.226):
#
#    1 ──100──▶ 2 ──100──▶ 3 ──300── 5 ── 6        100: one-way residential street
#               │                                  200: footway from 2 down to 4
#              200                                 300: motorway (not one-way tagged)
#               │                                  400: private service road 6 → 7
#               4
#
# Node 2 joins the street and the footway, node 3 the street and the motorway, so osmnx's
# simplification keeps them in the walk graph; every mode's graph stays one component.
TINY_OSM = """<?xml version="1.0" encoding="UTF-8"?>
<osm version="0.6" generator="correspondance-tests">
  <node id="1" version="1" lat="-30.0300" lon="-51.2300"/>
  <node id="2" version="1" lat="-30.0300" lon="-51.2290"/>
  <node id="3" version="1" lat="-30.0300" lon="-51.2280"/>
  <node id="4" version="1" lat="-30.0310" lon="-51.2290"/>
  <node id="5" version="1" lat="-30.0290" lon="-51.2270"/>
  <node id="6" version="1" lat="-30.0280" lon="-51.2260"/>
  <node id="7" version="1" lat="-30.0270" lon="-51.2250"/>
  <way id="100" version="1">
    <nd ref="1"/><nd ref="2"/><nd ref="3"/>
    <tag k="highway" v="residential"/><tag k="oneway" v="yes"/><tag k="name" v="Rua Um"/>
  </way>
  <way id="200" version="1">
    <nd ref="2"/><nd ref="4"/>
    <tag k="highway" v="footway"/>
  </way>
  <way id="300" version="1">
    <nd ref="3"/><nd ref="5"/><nd ref="6"/>
    <tag k="highway" v="motorway"/>
  </way>
  <way id="400" version="1">
    <nd ref="6"/><nd ref="7"/>
    <tag k="highway" v="residential"/><tag k="access" v="private"/>
  </way>
</osm>
"""


def edges(graph: nx.MultiDiGraph) -> set[tuple[int, int, int]]:
    """(u, v, way id) of every edge."""
    return {(int(u), int(v), int(data["osmid"])) for u, v, data in graph.edges(data=True)}


@pytest.mark.parametrize(
    ("mode", "tags", "expected"),
    [
        ("drive", {"highway": "residential"}, True),
        ("drive", {"highway": "motorway"}, True),
        ("drive", {"highway": "footway"}, False),
        ("drive", {"highway": "steps"}, False),
        ("drive", {"highway": "service", "service": "driveway"}, False),
        ("drive", {"highway": "residential", "motor_vehicle": "no"}, False),
        ("walk", {"highway": "footway"}, True),
        ("walk", {"highway": "steps"}, True),
        ("walk", {"highway": "motorway"}, False),
        ("walk", {"highway": "motorway_link"}, False),
        ("walk", {"highway": "cycleway"}, False),
        ("walk", {"highway": "residential", "foot": "no"}, False),
        ("walk", {"highway": "residential", "sidewalk": "separate"}, False),
        ("bike", {"highway": "cycleway"}, True),
        ("bike", {"highway": "residential"}, True),
        ("bike", {"highway": "steps"}, False),
        ("bike", {"highway": "footway"}, False),
        ("bike", {"highway": "residential", "bicycle": "no"}, False),
        ("walk", {"highway": "residential", "access": "private"}, False),
        ("bike", {"highway": "residential", "access": "private"}, False),
        ("drive", {"highway": "residential", "access": "private"}, False),
        ("walk", {"highway": "pedestrian", "area": "yes"}, False),
        ("walk", {"building": "yes"}, False),  # no highway tag at all
    ],
)
def test_mode_filter_applies_osmnx_network_filters(
    mode: StreetMode, tags: dict[str, str], expected: bool
) -> None:
    assert mode_filter(mode).matches(tags) is expected


def test_mode_filter_is_parsed_from_osmnx_filter_strings() -> None:
    drive = mode_filter("drive")
    assert drive.required == ("highway",)
    excluded = dict(drive.excluded)
    assert {"area", "access", "highway", "motor_vehicle", "motorcar", "service"} == set(excluded)
    assert excluded["access"].pattern == "private"
    assert "footway" in excluded["highway"].pattern.split("|")


@pytest.fixture(scope="module")
def tiny_graphs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, nx.MultiDiGraph]:
    path = tmp_path_factory.mktemp("osm") / "tiny.osm"
    path.write_text(TINY_OSM, encoding="utf-8")
    messages: list[str] = []
    graphs = load_street_graphs(path, progress=messages.append)
    assert messages[0] == "scanning tiny.osm"
    assert "building walk network (2 ways)" in messages
    assert "building drive network (2 ways)" in messages
    return dict(graphs)


def test_walk_graph_has_both_directions_of_the_one_way_street_and_the_footway(
    tiny_graphs: dict[str, nx.MultiDiGraph],
) -> None:
    assert edges(tiny_graphs["walk"]) == {
        (1, 2, 100),
        (2, 1, 100),
        (2, 3, 100),
        (3, 2, 100),
        (2, 4, 200),
        (4, 2, 200),
    }
    assert set(tiny_graphs["walk"].nodes) == {1, 2, 3, 4}


def test_drive_graph_keeps_the_one_way_street_one_way_and_has_no_footway(
    tiny_graphs: dict[str, nx.MultiDiGraph],
) -> None:
    # node 2 only joins the footway, so it is simplified away in the drive graph
    assert edges(tiny_graphs["drive"]) == {(1, 3, 100), (3, 6, 300), (6, 3, 300)}
    lengths = {(u, v): data["length"] for u, v, data in tiny_graphs["drive"].edges(data=True)}
    # 0.002° of longitude at 30° S is about 192.7 m
    assert lengths[(1, 3)] == pytest.approx(192.7, abs=0.5)


def test_bike_graph_has_neither_footway_nor_motorway(
    tiny_graphs: dict[str, nx.MultiDiGraph],
) -> None:
    assert edges(tiny_graphs["bike"]) == {(1, 3, 100)}


def test_a_missing_osm_file_is_a_feed_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.osm.pbf"
    with pytest.raises(FeedError, match=rf"{re.escape(str(missing))}: OSM file not found"):
        load_street_graphs(missing)


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("garbage.osm.pbf", b"\x00\x01garbage" * 50, "not a readable OSM file"),
        ("garbage.osm", b"this is not <xml", "not a readable OSM file"),
        (
            "empty.osm",
            b'<?xml version="1.0"?><osm version="0.6"></osm>',
            "no street usable by mode 'walk'",
        ),
    ],
)
def test_an_unreadable_osm_file_is_a_feed_error_naming_it(
    tmp_path: Path, name: str, content: bytes, problem: str
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(FeedError, match=rf"{re.escape(str(path))}: {re.escape(problem)}"):
        load_street_graphs(path)
