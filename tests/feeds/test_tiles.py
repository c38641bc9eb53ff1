"""The base map's vector tiles: features read from OSM, MVT encoding (checked with an
independent protobuf decoder, ``tests/mvt.py``), and the cached PMTiles archive of a city."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
import shapely

from correspondance.cities import CityConfig
from feeds.errors import FeedError
from feeds.osm_map import read_map_features
from feeds.tiles import (
    BUFFER,
    EXTENT,
    MAX_ZOOM,
    MIN_ZOOM,
    TileArchive,
    build_tiles,
    encode_layer,
    tile_range,
    tiles_key,
)
from tests.mvt import decode_tile, ring_area2


def test_line_polygon_and_point_round_trip_through_an_independent_decoder() -> None:
    line = shapely.LineString([(10, 10), (10.4, 10.2), (200, 10), (200, 300)])
    # exterior drawn counter-clockwise on screen and a hole drawn the same way: both wrong
    square = [(0, 0), (0, 100), (100, 100), (100, 0), (0, 0)]
    hole = [(20, 20), (20, 40), (40, 40), (40, 20), (20, 20)]
    polygon = shapely.Polygon(square, [hole])
    point = shapely.Point(-5, 4100)
    data = encode_layer(
        "things",
        [(line, {"name": "Rua A"}), (polygon, {"class": "park"}), (point, {"name": "Rua A"})],
    )
    layer = decode_tile(data)["things"]
    assert (layer.version, layer.extent) == (2, EXTENT)
    kinds = [(f.kind, f.properties) for f in layer.features]
    assert kinds == [
        ("line", {"name": "Rua A"}),
        ("polygon", {"class": "park"}),
        ("point", {"name": "Rua A"}),
    ]
    # (10.4, 10.2) rounds onto (10, 10): repeated points are dropped
    assert layer.features[0].parts == [[(10, 10), (200, 10), (200, 300)]]
    outer, inner = layer.features[1].parts
    assert ring_area2(outer) == 2 * 100 * 100  # exterior: positive area (clockwise, y down)
    assert ring_area2(inner) == -2 * 20 * 20  # hole: negative
    assert set(outer) == set(square)
    assert set(inner) == set(hole)
    assert layer.features[2].parts == [[(-5, 4100)]]


def test_nothing_left_on_the_grid_encodes_to_nothing() -> None:
    tiny = shapely.Polygon([(0, 0), (0.2, 0), (0.2, 0.2), (0, 0)])
    assert encode_layer("x", [(tiny, {}), (shapely.LineString([(1, 1), (1.1, 1.2)]), {})]) == b""


def test_osm_features_carry_names_and_classes(cities: dict[str, CityConfig]) -> None:
    city = cities["porto-alegre"]
    features = read_map_features(city.resolve(city.osm.path))
    streets = features.layers["streets"]
    assert len(streets) > 10_000
    names = {f.properties.get("name") for f in streets}
    assert {"Avenida Borges de Medeiros", "Rua dos Andradas"} <= names
    assert {f.properties["class"] for f in features.layers["rail"]} == {"subway"}  # Trensurb
    assert "Fonte Luminosa" in {f.properties.get("name") for f in features.layers["water"]}
    assert "Praça Montevidéu" in {f.properties.get("name") for f in features.layers["parks"]}
    assert all(f.properties.get("name") for f in features.layers["landmarks"])
    assert all(
        f.geometry.geom_type in ("Polygon", "MultiPolygon") for f in features.layers["parks"]
    )


def test_missing_osm_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(FeedError, match=r"nowhere\.osm\.pbf: OSM file not found"):
        build_tiles(tmp_path / "nowhere.osm.pbf", (0, 0, 1, 1), tmp_path, "x")


@pytest.fixture(scope="module")
def poa_tiles(cities: dict[str, CityConfig], tmp_path_factory: pytest.TempPathFactory) -> Path:
    city = cities["porto-alegre"]
    cache = tmp_path_factory.mktemp("tiles-cache")
    path, cached = build_tiles(city.resolve(city.osm.path), city.bbox, cache, city.id)
    assert not cached
    return path


def _decoded(archive: TileArchive, z: int, x: int, y: int) -> dict[str, object]:
    data = archive.find(z, x, y)
    assert data is not None, f"no tile {z}/{x}/{y}"
    return decode_tile(gzip.decompress(data))  # type: ignore[return-value]


def test_every_zoom_has_tiles_over_the_city(poa_tiles: Path, cities: dict[str, CityConfig]) -> None:
    bbox = cities["porto-alegre"].bbox
    archive = TileArchive(poa_tiles)
    assert (archive.min_zoom, archive.max_zoom) == (MIN_ZOOM, MAX_ZOOM)
    assert archive.bounds == pytest.approx(bbox)
    for zoom in range(MIN_ZOOM, MAX_ZOOM + 1):
        x0, y0, x1, y1 = tile_range(bbox, zoom)
        here = {(x, y) for z, x, y in archive.tiles if z == zoom}
        assert here <= {(x, y) for x in range(x0, x1 + 1) for y in range(y0, y1 + 1)}
        # the bbox's west is lake Guaíba, which this street extract leaves empty
        assert len(here) >= 0.5 * (x1 - x0 + 1) * (y1 - y0 + 1), zoom


def _tile_of(lon: float, lat: float, zoom: int) -> tuple[int, int]:
    x, y, _, _ = tile_range((lon, lat, lon, lat), zoom)
    return x, y


def test_downtown_tiles_hold_named_streets_water_parks_rail_and_landmarks(poa_tiles: Path) -> None:
    archive = TileArchive(poa_tiles)
    layers: dict[str, list[object]] = {}
    for z, x, y in archive.tiles:
        if z == MAX_ZOOM:
            for name, layer in _decoded(archive, z, x, y).items():
                layers.setdefault(name, []).extend(layer.features)  # type: ignore[attr-defined]
    assert set(layers) == {"streets", "water", "parks", "rail", "landmarks", "labels"}
    named = {f.properties.get("name") for f in layers["streets"]}  # type: ignore[attr-defined]
    assert {"Avenida Borges de Medeiros", "Rua dos Andradas", "Avenida Ipiranga"} <= named
    # Praça Montevidéu, in front of the city hall: its tile has the park and its street names
    x, y = _tile_of(-51.2287, -30.0283, MAX_ZOOM)
    tile = _decoded(archive, MAX_ZOOM, x, y)
    parks = tile["parks"].features  # type: ignore[attr-defined]
    assert any(f.properties.get("name") == "Praça Montevidéu" for f in parks)
    assert all(f.kind == "polygon" for f in parks)
    for layer in tile.values():
        for f in layer.features:  # type: ignore[attr-defined]
            for part in f.parts:
                for px, py in part:
                    assert -BUFFER - 1 <= px <= EXTENT + BUFFER + 1
                    assert -BUFFER - 1 <= py <= EXTENT + BUFFER + 1


def test_small_streets_only_from_their_zoom(poa_tiles: Path) -> None:
    archive = TileArchive(poa_tiles)
    classes_at: dict[int, set[str]] = {}
    named_at: dict[int, set[str]] = {}  # classes carrying names: only where the style shows them
    for z, x, y in archive.tiles:
        for f in _decoded(archive, z, x, y).get("streets").features:  # type: ignore[union-attr]
            classes_at.setdefault(z, set()).add(f.properties["class"])
            if "name" in f.properties:
                named_at.setdefault(z, set()).add(f.properties["class"])
    assert 11 not in named_at
    assert "primary" in named_at[12]
    assert "minor" not in named_at[13]
    assert "minor" in named_at[14]
    assert classes_at[8] <= {"motorway", "trunk"}
    assert "minor" not in classes_at[10]
    assert "minor" in classes_at[11]
    assert "service" not in classes_at[13]
    assert "service" in classes_at[14]
    assert "path" not in classes_at[12]
    assert "path" in classes_at[13]


def test_archive_is_cached_and_keyed_by_osm_bytes_and_bbox(
    poa_tiles: Path, cities: dict[str, CityConfig], tmp_path: Path
) -> None:
    city = cities["porto-alegre"]
    osm = city.resolve(city.osm.path)
    cache = poa_tiles.parents[1]
    stamp = poa_tiles.stat().st_mtime_ns
    again, cached = build_tiles(osm, city.bbox, cache, city.id)
    assert cached
    assert again == poa_tiles
    assert poa_tiles.stat().st_mtime_ns == stamp
    assert poa_tiles.name == f"basemap-{tiles_key(osm, city.bbox)}.pmtiles"
    assert TileArchive(poa_tiles).key == tiles_key(osm, city.bbox)
    smaller = (city.bbox[0] + 0.05, *city.bbox[1:])
    assert tiles_key(osm, smaller) != tiles_key(osm, city.bbox)
    copy = tmp_path / "poa.osm.pbf"
    copy.write_bytes(osm.read_bytes())
    assert tiles_key(copy, city.bbox) == tiles_key(osm, city.bbox)  # bytes, not the path
    oslo = cities["oslo"]
    assert tiles_key(oslo.resolve(oslo.osm.path), city.bbox) != tiles_key(osm, city.bbox)
