"""feeds.osm_places: named streets (pieces merged), points of interest, addresses."""

from __future__ import annotations

from pathlib import Path

import pytest

from feeds.errors import FeedError
from feeds.osm_places import format_address, load_osm_places, poi_category

# A tiny extract (lat −30.03, lon −51.23 …):
#   ways 1 and 2: "Rua da Praia", sharing node 2          → one street
#   way 3: "Rua da Praia" 100 m further on, not touching  → the same street (within 300 m)
#   way 4: "Rua da Praia" 5 km away                       → another street
#   way 5: a named platform (highway=platform)            → no street
#   way 6: a closed way, amenity=school, with an address  → a point of interest + an address
#   node 20: bus stop; node 21: a bench (no place); node 22: a gate with an address only
TINY_OSM = """<?xml version="1.0" encoding="UTF-8"?>
<osm version="0.6" generator="correspondance-tests">
  <node id="1" version="1" lat="-30.0300" lon="-51.2300"/>
  <node id="2" version="1" lat="-30.0300" lon="-51.2290"/>
  <node id="3" version="1" lat="-30.0300" lon="-51.2280"/>
  <node id="4" version="1" lat="-30.0300" lon="-51.2270"/>
  <node id="5" version="1" lat="-30.0300" lon="-51.2260"/>
  <node id="6" version="1" lat="-30.0750" lon="-51.2300"/>
  <node id="7" version="1" lat="-30.0750" lon="-51.2290"/>
  <node id="8" version="1" lat="-30.0310" lon="-51.2300"/>
  <node id="9" version="1" lat="-30.0310" lon="-51.2290"/>
  <node id="10" version="1" lat="-30.0320" lon="-51.2300"/>
  <node id="11" version="1" lat="-30.0320" lon="-51.2290"/>
  <node id="12" version="1" lat="-30.0330" lon="-51.2290"/>
  <node id="13" version="1" lat="-30.0330" lon="-51.2300"/>
  <node id="20" version="1" lat="-30.0301" lon="-51.2295">
    <tag k="highway" v="bus_stop"/><tag k="name" v="Praia"/>
  </node>
  <node id="21" version="1" lat="-30.0302" lon="-51.2295">
    <tag k="amenity" v="bench"/><tag k="name" v="Banco"/>
  </node>
  <node id="22" version="1" lat="-30.0303" lon="-51.2295">
    <tag k="barrier" v="gate"/><tag k="addr:street" v="Rua da Praia"/>
    <tag k="addr:housenumber" v="415"/><tag k="addr:postcode" v="90000-000"/>
  </node>
  <way id="1" version="1"><nd ref="1"/><nd ref="2"/>
    <tag k="highway" v="residential"/><tag k="name" v="Rua da Praia"/></way>
  <way id="2" version="1"><nd ref="2"/><nd ref="3"/>
    <tag k="highway" v="primary"/><tag k="name" v="Rua da Praia"/></way>
  <way id="3" version="1"><nd ref="4"/><nd ref="5"/>
    <tag k="highway" v="residential"/><tag k="name" v="Rua da Praia"/></way>
  <way id="4" version="1"><nd ref="6"/><nd ref="7"/>
    <tag k="highway" v="residential"/><tag k="name" v="Rua da Praia"/></way>
  <way id="5" version="1"><nd ref="8"/><nd ref="9"/>
    <tag k="highway" v="platform"/><tag k="name" v="Plataforma"/></way>
  <way id="6" version="1"><nd ref="10"/><nd ref="11"/><nd ref="12"/><nd ref="13"/><nd ref="10"/>
    <tag k="amenity" v="school"/><tag k="name" v="Escola Estadual"/>
    <tag k="addr:street" v="Rua da Praia"/><tag k="addr:housenumber" v="7"/></way>
</osm>
"""


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.osm"
    path.write_text(TINY_OSM)
    return path


def test_streets_are_merged_by_shared_nodes_and_nearness(tiny: Path) -> None:
    places = load_osm_places(tiny)
    streets = sorted((p.ids, p.name) for p in places.streets)
    assert streets == [
        (("way/1", "way/2", "way/3"), "Rua da Praia"),
        (("way/4",), "Rua da Praia"),
    ]
    centre = next(p for p in places.streets if p.ids[0] == "way/1")
    # the point is a vertex of the street, near its middle; the class prior is its best way's
    assert (centre.lat, centre.lon) == (-30.03, -51.228)
    assert centre.importance == 1.0
    assert all(p.category == "street" for p in places.streets)


def test_points_of_interest_and_addresses(tiny: Path) -> None:
    places = load_osm_places(tiny)
    pois = {p.name: p for p in places.pois}
    assert set(pois) == {"Praia", "Escola Estadual"}  # no bench, no platform
    assert pois["Praia"].category == "transit_stop"
    assert pois["Praia"].ids == ("node/20",)
    school = pois["Escola Estadual"]
    assert school.category == "school"
    assert school.secondary == "Rua da Praia 7"
    assert school.ids == ("way/6",)
    assert (school.lat, school.lon) in {(-30.032, -51.23), (-30.032, -51.229), (-30.033, -51.229)}
    addresses = {(p.name, p.secondary, p.ids) for p in places.addresses}
    assert addresses == {
        ("Rua da Praia 415", "90000-000", ("node/22",)),
        ("Rua da Praia 7", "", ("way/6",)),
    }


@pytest.mark.parametrize(
    ("tags", "category"),
    [
        ({"amenity": "hospital"}, "hospital"),
        ({"amenity": "toilets"}, "amenity"),
        ({"amenity": "bench"}, None),
        ({"amenity": "bench", "shop": "bakery"}, "shop"),
        ({"railway": "station"}, "station"),
        ({"railway": "subway_entrance"}, None),
        ({"public_transport": "stop_area"}, None),
        ({"public_transport": "platform"}, "transit_stop"),
        ({"highway": "bus_stop"}, "transit_stop"),
        ({"highway": "traffic_signals"}, None),
        ({"leisure": "park"}, "park"),
        ({"place": "square"}, "square"),
        ({"building": "yes"}, "building"),
        ({"amenity": "no"}, None),
        ({}, None),
    ],
)
def test_poi_category(tags: dict[str, str], category: str | None) -> None:
    assert poi_category(tags) == category


def test_format_address() -> None:
    assert format_address({"addr:street": "Sannergata", "addr:housenumber": "2"}) == "Sannergata 2"
    assert format_address({"addr:street": "Sannergata"}) == ""
    assert format_address({"addr:housenumber": "2"}) == ""


def test_missing_or_broken_file_is_a_feed_error(tmp_path: Path) -> None:
    with pytest.raises(FeedError, match="not found"):
        load_osm_places(tmp_path / "missing.pbf")
    broken = tmp_path / "broken.osm.pbf"
    broken.write_bytes(b"\x00\x01 not a pbf at all")
    with pytest.raises(FeedError, match=r"broken\.osm\.pbf: not"):
        load_osm_places(broken)
