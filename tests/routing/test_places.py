"""Place search (routing.places): typos, accents, codes, ranking by distance, hostile input,
the build cache, and the real Porto Alegre and Oslo indexes."""

from __future__ import annotations

import math
import pickle
import time
from pathlib import Path

import pytest

from correspondance.errors import InputError
from feeds.osm_places import OsmPlace, OsmPlaces
from routing.base import CityBase
from routing.place_index import index_places, load_or_build_places, places_cache_path
from routing.places import (
    MAX_LIMIT,
    MAX_QUERY_CHARS,
    PlaceIndex,
    StopPlace,
    fold,
    parse_near,
    search_places,
    words,
)

# Two neighbourhoods 5.5 km apart (Porto Alegre's centre and its east).
CENTRE = (-30.0346, -51.2177)
EAST = (-30.0300, -51.1610)


def street(name: str, lat: float, lon: float, way: int, importance: float = 0.6) -> OsmPlace:
    return OsmPlace(name, "street", lat, lon, (f"way/{way}",), importance=importance)


def poi(name: str, category: str, lat: float, lon: float, node: int, address: str = "") -> OsmPlace:
    return OsmPlace(name, category, lat, lon, (f"node/{node}",), secondary=address)


@pytest.fixture(scope="module")
def index() -> PlaceIndex:
    stops = [
        StopPlace("101", "Estação São Pedro", -30.0064, -51.2094, code="SP", rail=True),
        StopPlace("102", "Estação São Pedro", -30.0065, -51.2096, code="SP2", rail=True),
        StopPlace("201", "Tøyen", 59.9150, 10.7740, routes=("5", "T1")),
        StopPlace("301", "Praça XV", CENTRE[0], CENTRE[1], code="4471", routes=("343", "T5", "10")),
        StopPlace("302", "Praça XV", EAST[0], EAST[1], code="9902", routes=("411",)),
    ]
    osm = OsmPlaces(
        streets=(
            street("Rua dos Andradas", CENTRE[0] + 0.001, CENTRE[1], 1, importance=1.0),
            street("Rua dos Andradas", EAST[0] + 0.001, EAST[1], 2),
            street("Avenida Ipiranga", -30.0500, -51.2000, 3, importance=1.0),
            street("Tøyengata", 59.9140, 10.7690, 4),
            street("Rua Ala", CENTRE[0] + 0.002, CENTRE[1], 5),
        ),
        pois=(
            poi("Mercado Público", "shop", -30.0270, -51.2280, 10, "Largo Glênio Peres 1"),
            poi("Hospital de Clínicas", "hospital", -30.0386, -51.2067, 11),
            # a station's platform near the GTFS stop of the same name: that stop is the place
            poi("Estação São Pedro", "transit_stop", -30.0066, -51.2095, 12),
            poi("São Pedro", "station", -30.0063, -51.2093, 15),  # its words are the stop's
            # two platforms of one OSM stop, 60 m apart: one place with both ids
            poi("Grønland", "transit_stop", 59.9125, 10.7600, 13),
            poi("Grønland", "transit_stop", 59.9130, 10.7601, 14),
        ),
        addresses=(
            OsmPlace("Rua Alfa 191", "address", -30.0364, -51.1723, ("node/20",), "90000-000"),
        ),
    )
    return index_places("test", "hash", stops, osm)


def names(found: list) -> list[str]:  # type: ignore[type-arg]
    return [p.name for p in found]


def test_fold_removes_case_and_accents_and_spells_out_nordic_letters() -> None:
    assert fold("São Tomé") == "sao tome"
    assert fold("TØYEN Ærlig Straße") == "toyen aerlig strasse"
    assert words("Rua 7 de Setembro, 630") == ["rua", "7", "de", "setembro", "630"]


def test_accents_are_forgiven_both_ways(index: PlaceIndex) -> None:
    assert names(search_places(index, "sao pedro"))[0] == "Estação São Pedro"
    assert names(search_places(index, "SÃO PEDRO"))[0] == "Estação São Pedro"
    assert names(search_places(index, "toyen"))[:2] == ["Tøyen", "Tøyengata"]
    assert names(search_places(index, "Tøyen"))[0] == "Tøyen"
    assert names(search_places(index, "gronland"))[0] == "Grønland"


def test_prefixes_find_places_while_typing(index: PlaceIndex) -> None:
    typed = "Hospital de Clínicas"
    for n in range(3, len(typed) + 1):
        assert "Hospital de Clínicas" in names(search_places(index, typed[:n])), typed[:n]
    # every word may be a start: "av ipir"
    assert names(search_places(index, "av ipir")) == ["Avenida Ipiranga"]


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("ipirnga", "Avenida Ipiranga"),  # a letter left out
        ("ipiarnga", "Avenida Ipiranga"),  # two letters swapped: one error
        ("hospitsl", "Hospital de Clínicas"),  # a wrong key
        ("mercafo publico", "Mercado Público"),
        ("tyoen", "Tøyen"),  # swapped, and ø typed as o
        ("andradsa", "Rua dos Andradas"),
    ],
)
def test_typos_are_forgiven(index: PlaceIndex, typed: str, expected: str) -> None:
    assert expected in names(search_places(index, typed)[:2]), typed


def test_a_typo_never_beats_the_exact_spelling_even_next_door(index: PlaceIndex) -> None:
    # "Rua Ala" is 200 m from the centre, "Rua Alfa 191" 4.5 km away
    found = search_places(index, "rua alfa", near=CENTRE)
    assert found[0].name == "Rua Alfa 191"
    assert "Rua Ala" in names(found)  # still offered, after it
    # short words get no typo tolerance: "ala" is not "alfa"
    assert "Rua Alfa 191" not in names(search_places(index, "rua ala "))


def test_nothing_matches_gibberish(index: PlaceIndex) -> None:
    assert search_places(index, "xqzw") == []
    assert search_places(index, "hospital zzzz") == []


def test_ranking_by_distance_from_near(index: PlaceIndex) -> None:
    at_centre = search_places(index, "praça xv", near=CENTRE)
    at_east = search_places(index, "praça xv", near=EAST)
    assert [p.ids for p in at_centre] == [("301",), ("302",)]
    assert [p.ids for p in at_east] == [("302",), ("301",)]
    assert at_centre[0].distance_m == pytest.approx(0.0, abs=1)
    assert at_centre[1].distance_m == pytest.approx(5470, rel=0.02)
    streets = search_places(index, "rua dos andradas", near=EAST)
    assert [p.ids for p in streets] == [("way/2",), ("way/1",)]
    # without near, no distance is given
    assert search_places(index, "praça xv")[0].distance_m is None


def test_stop_codes_and_ids_find_stops(index: PlaceIndex) -> None:
    by_code = search_places(index, "4471")
    assert by_code[0].ids == ("301",)
    assert by_code[0].code == "4471"
    by_id = search_places(index, "302")
    assert by_id[0].ids == ("302",)
    assert search_places(index, "sp2")[0].name == "Estação São Pedro"


def test_stops_of_one_name_nearby_are_one_place_and_osm_repeats_are_dropped(
    index: PlaceIndex,
) -> None:
    found = search_places(index, "estação são pedro")
    assert len(found) == 1
    station = found[0]
    assert station.kind == "stop"
    assert station.category == "station"
    assert station.ids == ("101", "102")
    assert station.code == "SP SP2"
    gronland = search_places(index, "grønland")
    assert [(p.kind, p.category, p.ids) for p in gronland] == [
        ("poi", "transit_stop", ("node/13", "node/14"))
    ]


def test_results_carry_kind_secondary_text_and_ids(index: PlaceIndex) -> None:
    stop = search_places(index, "praça xv", near=CENTRE)[0]
    assert (stop.kind, stop.category, stop.secondary) == ("stop", "transit_stop", "10, 343, T5")
    market = search_places(index, "mercado")[0]
    assert (market.kind, market.category, market.secondary, market.ids) == (
        "poi",
        "shop",
        "Largo Glênio Peres 1",
        ("node/10",),
    )
    address = search_places(index, "rua alfa 191")[0]
    assert (address.kind, address.category, address.secondary) == (
        "address",
        "address",
        "90000-000",
    )
    assert all(
        math.isfinite(p.lat) and math.isfinite(p.lon) for p in search_places(index, "r", limit=50)
    )


def test_limit_caps_results(index: PlaceIndex) -> None:
    assert len(search_places(index, "r", limit=2)) == 2
    assert len(search_places(index, "r", limit=MAX_LIMIT)) == 4  # 3 streets + 1 address


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("", "empty_query"),
        ("   ", "empty_query"),
        ("?!-,", "empty_query"),
        ("a" * (MAX_QUERY_CHARS + 1), "query_too_long"),
        ("a " * 11, "query_too_long"),
    ],
)
def test_bad_queries_are_refused_with_a_code(index: PlaceIndex, query: str, code: str) -> None:
    with pytest.raises(InputError, match="'q'") as caught:
        search_places(index, query)
    assert caught.value.code == code


@pytest.mark.parametrize("limit", [0, -1, MAX_LIMIT + 1, 10**9])
def test_limits_outside_the_range_are_refused(index: PlaceIndex, limit: int) -> None:
    with pytest.raises(InputError, match="'limit' must be a whole number") as caught:
        search_places(index, "rua", limit=limit)
    assert caught.value.code == "out_of_range"


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("nan,nan", "non_finite_number"),
        ("-30,inf", "non_finite_number"),
        ("91,0", "out_of_range"),
        ("0,-181", "out_of_range"),
        ("-30.03", "invalid_parameter"),
        ("a,b", "invalid_parameter"),
        ("1,2,3", "invalid_parameter"),
    ],
)
def test_bad_near_is_refused_with_a_code(text: str, code: str) -> None:
    with pytest.raises(InputError, match="'near'") as caught:
        parse_near(text)
    assert caught.value.code == code


def test_near_is_parsed() -> None:
    assert parse_near("-30.0346, -51.2177") == (-30.0346, -51.2177)


# --- the real cities --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def poa_places(poa_base: CityBase, tmp_path_factory: pytest.TempPathFactory) -> PlaceIndex:
    index, cached = load_or_build_places(poa_base, tmp_path_factory.mktemp("cache"))
    assert not cached
    return index


@pytest.fixture(scope="module")
def oslo_places(oslo_base: CityBase, tmp_path_factory: pytest.TempPathFactory) -> PlaceIndex:
    index, _ = load_or_build_places(oslo_base, tmp_path_factory.mktemp("cache"))
    return index


def test_porto_alegre_index_holds_every_kind(poa_places: PlaceIndex, poa_base: CityBase) -> None:
    counts = {k: poa_places.count(k) for k in ("stop", "street", "poi", "address")}
    assert counts["stop"] > 500
    assert counts["street"] > 3000
    assert counts["poi"] > 100
    assert counts["address"] >= 10
    # only stops a plan can start from: linked to the walk network
    linked = {
        str(s)
        for s, e in zip(poa_base.timetable.stop_ids, poa_base.stop_links.edge, strict=True)
        if e >= 0
    }
    stop_ids = {
        i for ids, k in zip(poa_places.ids, poa_places.kind, strict=True) if k == 0 for i in ids
    }
    assert stop_ids <= linked


def test_porto_alegre_real_names(poa_places: PlaceIndex) -> None:
    centre = search_places(poa_places, "cristovao colombo", near=CENTRE)
    assert "Avenida Cristóvão Colombo" in names(centre)
    market = search_places(poa_places, "estacao mercado")[0]
    assert (market.kind, market.category) == ("stop", "station")
    assert "LINHA1" in market.secondary
    assert search_places(poa_places, "MR")[0].name == "ESTACAO MERCADO"  # Trensurb's stop id
    assert search_places(poa_places, "rua alfa 191")[0].kind == "address"
    assert "Avenida Ipiranga" in names(search_places(poa_places, "av ipirnga"))


def test_oslo_real_names(oslo_places: PlaceIndex) -> None:
    for typed in ("toyen", "Tøyen", "TOYEN"):
        assert search_places(oslo_places, typed)[0].name == "Tøyen", typed
    assert search_places(oslo_places, "oslo s")[0].kind == "stop"
    assert search_places(oslo_places, "sannergata 2")[0].secondary == "0557 Oslo"


def test_cache_is_keyed_like_the_base_and_reloaded(poa_base: CityBase, tmp_path: Path) -> None:
    first, cached = load_or_build_places(poa_base, tmp_path)
    assert not cached
    path = places_cache_path(tmp_path, poa_base)
    assert path.is_file()
    assert poa_base.input_hash in path.name
    assert path.parent.name == "porto-alegre"
    started = time.perf_counter()
    again, cached = load_or_build_places(poa_base, tmp_path)
    assert cached
    assert time.perf_counter() - started < 2.0
    assert again.vocab == first.vocab
    assert again.name == first.name
    # a truncated cache is rebuilt, never trusted
    path.write_bytes(pickle.dumps(first)[:100])
    _rebuilt, cached = load_or_build_places(poa_base, tmp_path)
    assert not cached
    # a stale index of other inputs is removed when a new one is written
    stale = path.with_name("places-0000000000000000-1.pickle")
    stale.write_bytes(b"old")
    load_or_build_places(poa_base, tmp_path, rebuild=True)
    assert not stale.exists()


def test_many_places_of_one_name_leave_room_for_others() -> None:
    stops = [
        StopPlace(str(i), "Floresta Cristóvão Colombo", -30.02 + 0.004 * i, -51.21)
        for i in range(6)
    ]
    osm = OsmPlaces(
        streets=(street("Avenida Cristóvão Colombo", -30.05, -51.21, 1),), pois=(), addresses=()
    )
    index = index_places("test", "hash", stops, osm)
    found = search_places(index, "cristovao colombo", near=(-30.02, -51.21), limit=5)
    assert names(found) == ["Floresta Cristóvão Colombo"] * 3 + [
        "Avenida Cristóvão Colombo",
        "Floresta Cristóvão Colombo",
    ]
    # the nearest of the name come first, and a full list is still full
    assert [p.ids for p in found[:3]] == [("0",), ("1",), ("2",)]
    assert len(search_places(index, "floresta", limit=6)) == 6


def test_abbreviations_find_the_spelled_out_name_and_back() -> None:
    stops = [StopPlace("1", "DR FLORES PROF OSCAR", -30.03, -51.22)]
    osm = OsmPlaces(
        streets=(street("Avenida Doutor Nilo Peçanha", -30.04, -51.20, 1),), pois=(), addresses=()
    )
    index = index_places("test", "hash", stops, osm)
    assert names(search_places(index, "doutor flores")) == ["DR FLORES PROF OSCAR"]
    assert names(search_places(index, "professor oscar")) == ["DR FLORES PROF OSCAR"]
    assert names(search_places(index, "av dr nilo")) == ["Avenida Doutor Nilo Peçanha"]
    # the name itself, and how much of it a query covers, stay as published
    assert search_places(index, "dr flores")[0].name == "DR FLORES PROF OSCAR"
