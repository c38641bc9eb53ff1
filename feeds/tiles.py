"""The base map's vector tiles: OSM features (``feeds.osm_map``) cut into Mapbox Vector Tiles
for the city's bbox and written to one PMTiles archive, cached by a hash of the inputs.

The encoder is ours (a few dozen lines of protobuf wire format, spec 2.1): the PyPI encoder
``mapbox-vector-tile`` pins ``protobuf<7``, which the GTFS-Realtime bindings cannot run with.
Clipping and simplification are shapely's, vectorised per zoom over an STRtree.
"""

from __future__ import annotations

import gzip
import hashlib
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import shapely
from numpy.typing import NDArray
from pmtiles.reader import MemorySource, all_tiles
from pmtiles.reader import Reader as PMTilesReader
from pmtiles.tile import Compression, TileType, zxy_to_tileid
from pmtiles.writer import Writer as PMTilesWriter
from shapely.geometry.base import BaseGeometry

from feeds.errors import FeedError
from feeds.osm_map import MapFeature, MapFeatures, read_map_features

TILES_VERSION = "4"  # bump when the layers, properties or cutting change
MIN_ZOOM = 8
MAX_ZOOM = 15  # the style over-zooms past it: z15 keeps 0.3 m precision at 4096 units
EXTENT = 4096
BUFFER = 80  # tile units drawn past each edge, so strokes and line labels meet seamlessly
LAYERS = ("water", "parks", "waterways", "rail", "streets", "labels", "landmarks")

# -- protobuf wire format (only what MVT needs) -------------------------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field_bytes(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _field_varint(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value)


def _packed(number: int, values: Iterable[int]) -> bytes:
    return _field_bytes(number, b"".join(_varint(v) for v in values))


def _zigzag(n: int) -> int:
    return (n << 1) ^ (n >> 63)


# -- geometry commands (MVT spec 4.3) ------------------------------------------------------

_MOVE_TO, _LINE_TO, _CLOSE_PATH = 1, 2, 7
_POINT, _LINESTRING, _POLYGON = 1, 2, 3


def _command(cid: int, count: int) -> int:
    return (count << 3) | cid


class _Cursor:
    """The pen position: MVT geometry is delta-encoded across a feature's parts."""

    def __init__(self) -> None:
        self.x = 0
        self.y = 0

    def deltas(self, xy: NDArray[np.int64]) -> list[int]:
        out: list[int] = []
        for x, y in xy.tolist():
            out.append(_zigzag(x - self.x))
            out.append(_zigzag(y - self.y))
            self.x, self.y = x, y
        return out


def _dedupe(xy: NDArray[np.int64]) -> NDArray[np.int64]:
    """Drop repeated points (rounding to the tile grid makes them)."""
    if len(xy) < 2:
        return xy
    keep = np.ones(len(xy), bool)
    keep[1:] = np.any(xy[1:] != xy[:-1], axis=1)
    return xy[keep]


def _ring_area2(xy: NDArray[np.int64]) -> int:
    """Twice the surveyor's-formula area of a ring (positive = exterior in tile coordinates)."""
    x, y = xy[:, 0], xy[:, 1]
    return int(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))


def encode_geometry(geometry: BaseGeometry) -> tuple[int, list[int]] | None:
    """(MVT geometry type, command integers) of a geometry already in tile units, or ``None``
    when nothing is left of it on the tile grid."""
    cursor = _Cursor()
    commands: list[int] = []
    kind = shapely.get_type_id(geometry)
    if kind in (0, 4):  # (multi)point
        xy = np.rint(shapely.get_coordinates(geometry)).astype(np.int64)
        if not len(xy):
            return None
        return _POINT, [_command(_MOVE_TO, len(xy)), *cursor.deltas(xy)]
    if kind in (1, 2, 5):  # (multi)linestring
        for part in shapely.get_parts(geometry):
            xy = _dedupe(np.rint(shapely.get_coordinates(part)).astype(np.int64))
            if len(xy) < 2:
                continue
            commands.append(_command(_MOVE_TO, 1))
            commands.extend(cursor.deltas(xy[:1]))
            commands.append(_command(_LINE_TO, len(xy) - 1))
            commands.extend(cursor.deltas(xy[1:]))
        return (_LINESTRING, commands) if commands else None
    if kind in (3, 6):  # (multi)polygon
        for polygon in shapely.get_parts(geometry):
            rings = [polygon.exterior, *polygon.interiors]
            for index, ring in enumerate(rings):
                xy = _dedupe(np.rint(shapely.get_coordinates(ring)).astype(np.int64))[:-1]
                if len(xy) < 3:
                    if index == 0:
                        break  # an exterior gone to nothing takes its holes with it
                    continue
                area2 = _ring_area2(xy)
                if area2 == 0:
                    if index == 0:
                        break
                    continue
                if (area2 > 0) != (index == 0):  # exterior clockwise on screen, holes the other way
                    xy = xy[::-1]
                commands.append(_command(_MOVE_TO, 1))
                commands.extend(cursor.deltas(xy[:1]))
                commands.append(_command(_LINE_TO, len(xy) - 1))
                commands.extend(cursor.deltas(xy[1:]))
                commands.append(_command(_CLOSE_PATH, 1))
        return (_POLYGON, commands) if commands else None
    return None


def encode_layer(name: str, features: Iterable[tuple[BaseGeometry, dict[str, str]]]) -> bytes:
    """One MVT layer (version 2, string properties) of geometries already in tile units."""
    keys: dict[str, int] = {}
    values: dict[str, int] = {}
    encoded: list[bytes] = []
    for geometry, properties in features:
        geom = encode_geometry(geometry)
        if geom is None:
            continue
        tags: list[int] = []
        for key, value in properties.items():
            tags.append(keys.setdefault(key, len(keys)))
            tags.append(values.setdefault(value, len(values)))
        body = _packed(2, tags) + _field_varint(3, geom[0]) + _packed(4, geom[1])
        encoded.append(_field_bytes(2, body))
    if not encoded:
        return b""
    layer = (
        _field_varint(15, 2)
        + _field_bytes(1, name.encode())
        + b"".join(encoded)
        + b"".join(_field_bytes(3, k.encode()) for k in keys)
        + b"".join(_field_bytes(4, _field_bytes(1, v.encode())) for v in values)
        + _field_varint(5, EXTENT)
    )
    return _field_bytes(3, layer)


# -- tiling ---------------------------------------------------------------------------------


def _mercator(coords: NDArray[np.float64]) -> NDArray[np.float64]:
    """(lon, lat) → web-mercator world units in [0, 1], y down."""
    lon = coords[:, 0]
    lat = np.clip(coords[:, 1], -85.05112878, 85.05112878)
    x = (lon + 180.0) / 360.0
    s = np.sin(np.radians(lat))
    y = 0.5 - np.log((1 + s) / (1 - s)) / (4 * math.pi)
    return np.column_stack([x, y])


def tile_range(bbox: tuple[float, float, float, float], zoom: int) -> tuple[int, int, int, int]:
    """(min_x, min_y, max_x, max_y) of the tiles covering a (lon/lat) bbox at a zoom."""
    min_lon, min_lat, max_lon, max_lat = bbox
    corners = _mercator(np.array([[min_lon, max_lat], [max_lon, min_lat]]))
    n = 2**zoom
    (x0, y0), (x1, y1) = np.floor(corners * n).astype(int).tolist()
    return max(x0, 0), max(y0, 0), min(x1, n - 1), min(y1, n - 1)


@dataclass(frozen=True)
class _Projected:
    layer: str
    geometries: NDArray[np.object_]
    properties: list[dict[str, str]]
    tree: shapely.STRtree


def _merge_streets(features: list[MapFeature]) -> list[MapFeature]:
    """One line per street (same class, name and ref) instead of one per OSM way, so names are
    placed along whole streets and tiles carry fewer, longer lines."""
    groups: dict[tuple[tuple[str, str], ...], list[MapFeature]] = {}
    for f in features:
        groups.setdefault(tuple(sorted(f.properties.items())), []).append(f)
    merged: list[MapFeature] = []
    for props, group in groups.items():
        lines = shapely.line_merge(shapely.multilinestrings([f.geometry for f in group]))
        merged.append(MapFeature(lines, dict(props), min(f.min_zoom for f in group)))
    return merged


#: the zoom from which a street class carries its name (the style labels it from there)
STREET_NAME_ZOOM = {"minor": 14, "service": 14, "path": 14}
STREET_NAME_ZOOM_DEFAULT = 12


def _properties_at(layer: str, properties: dict[str, str], zoom: int) -> dict[str, str]:
    """What a feature carries at a zoom: street names only where they are drawn, so the
    overview tiles stay small and their unnamed streets merge (see :func:`_merge_lines`)."""
    if layer != "streets":
        return properties
    name_zoom = STREET_NAME_ZOOM.get(properties["class"], STREET_NAME_ZOOM_DEFAULT)
    if zoom >= name_zoom:
        return properties
    return {"class": properties["class"]}


def _merge_lines(
    features: Iterable[tuple[BaseGeometry, dict[str, str]]],
) -> list[tuple[BaseGeometry, dict[str, str]]]:
    """One multi-line per distinct set of properties on a tile (fewer features to parse and
    lay out); points and polygons pass unchanged, in order."""
    out: list[tuple[BaseGeometry, dict[str, str]]] = []
    groups: dict[tuple[tuple[str, str], ...], list[BaseGeometry]] = {}
    for geometry, properties in features:
        if shapely.get_type_id(geometry) in (1, 5):
            key = tuple(sorted(properties.items()))
            groups.setdefault(key, []).extend(shapely.get_parts(geometry))
        else:
            out.append((geometry, properties))
    out.extend((shapely.multilinestrings(parts), dict(key)) for key, parts in groups.items())
    return out


def _project(layer: str, features: list[MapFeature], zoom: int) -> _Projected | None:
    chosen = [f for f in features if f.min_zoom <= zoom]
    if not chosen:
        return None
    scale = float(2**zoom * EXTENT)
    geoms = np.array([f.geometry for f in chosen], dtype=object)
    geoms = shapely.transform(geoms, lambda c: _mercator(c) * scale)
    # below the top zoom, detail finer than half a screen pixel (4 units of 4096) is not seen
    tolerance = 4.0 if zoom < MAX_ZOOM else 1.0
    kinds = shapely.get_type_id(geoms)
    lines = np.isin(kinds, (1, 2, 5))
    polys = np.isin(kinds, (3, 6))
    geoms[lines] = shapely.simplify(geoms[lines], tolerance, preserve_topology=False)
    geoms[polys] = shapely.simplify(geoms[polys], tolerance, preserve_topology=True)
    properties = [_properties_at(layer, f.properties, zoom) for f in chosen]
    return _Projected(layer, geoms, properties, shapely.STRtree(geoms))


def _tile_layers(projected: list[_Projected], x: int, y: int) -> bytes:
    x0, y0 = x * EXTENT, y * EXTENT
    box = shapely.box(x0 - BUFFER, y0 - BUFFER, x0 + EXTENT + BUFFER, y0 + EXTENT + BUFFER)
    out = []
    for p in projected:
        hits = p.tree.query(box, predicate="intersects")
        if not len(hits):
            continue
        hits.sort()  # keep the source order: the style draws in it
        clipped = shapely.clip_by_rect(p.geometries[hits], *box.bounds)
        clipped = shapely.transform(clipped, lambda c: c - (x0, y0))
        feats = ((g, p.properties[i]) for g, i in zip(clipped, hits, strict=True) if not g.is_empty)
        out.append(encode_layer(p.layer, _merge_lines(feats)))
    return b"".join(out)


def cut_tiles(
    features: MapFeatures,
    bbox: tuple[float, float, float, float],
    zooms: range = range(MIN_ZOOM, MAX_ZOOM + 1),
) -> Iterator[tuple[int, int, int, bytes]]:
    """(z, x, y, uncompressed MVT bytes) of every non-empty tile over the bbox."""
    by_layer = dict(features.layers)
    if "streets" in by_layer:
        by_layer["streets"] = _merge_streets(by_layer["streets"])
    for zoom in zooms:
        projected = [
            p for name in LAYERS if (p := _project(name, by_layer.get(name, []), zoom)) is not None
        ]
        min_x, min_y, max_x, max_y = tile_range(bbox, zoom)
        for x in range(min_x, max_x + 1):
            for y in range(min_y, max_y + 1):
                data = _tile_layers(projected, x, y)
                if data:
                    yield zoom, x, y, data


# -- the cached archive ----------------------------------------------------------------------


def tiles_key(osm_path: Path, bbox: tuple[float, float, float, float]) -> str:
    """Cache key of a city's tiles: the OSM file's bytes, the bbox and :data:`TILES_VERSION`."""
    digest = hashlib.sha256(f"{TILES_VERSION}|{bbox!r}|".encode())
    with osm_path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]


def tiles_path(cache_dir: Path, city_id: str, key: str) -> Path:
    """Where a city's archive with that key lives in the build cache."""
    return cache_dir / city_id / f"basemap-{key}.pmtiles"


def write_archive(
    path: Path,
    tiles: Iterable[tuple[int, int, int, bytes]],
    bbox: tuple[float, float, float, float],
    metadata: Mapping[str, object],
) -> int:
    """Write gzip-compressed tiles to a PMTiles v3 archive (atomically). Returns the tile count."""
    ordered = sorted(
        ((zxy_to_tileid(z, x, y), gzip.compress(data, 6, mtime=0)) for z, x, y, data in tiles),
        key=lambda t: t[0],
    )
    if not ordered:
        raise FeedError(f"{path}: no tile has anything to draw over bbox {bbox}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as handle:
        writer = PMTilesWriter(handle)  # type: ignore[no-untyped-call]
        for tile_id, data in ordered:
            writer.write_tile(tile_id, data)  # type: ignore[no-untyped-call]
        min_lon, min_lat, max_lon, max_lat = bbox
        writer.finalize(  # type: ignore[no-untyped-call]
            {
                "tile_type": TileType.MVT,
                "tile_compression": Compression.GZIP,
                "min_lon_e7": int(min_lon * 1e7),
                "min_lat_e7": int(min_lat * 1e7),
                "max_lon_e7": int(max_lon * 1e7),
                "max_lat_e7": int(max_lat * 1e7),
                "center_zoom": 12,
                "center_lon_e7": int((min_lon + max_lon) / 2 * 1e7),
                "center_lat_e7": int((min_lat + max_lat) / 2 * 1e7),
            },
            metadata,
        )
    tmp.replace(path)
    return len(ordered)


def build_tiles(
    osm_path: Path,
    bbox: tuple[float, float, float, float],
    cache_dir: Path,
    city_id: str,
    attribution: str = "© OpenStreetMap contributors (ODbL)",
    progress: Callable[[str], None] | None = None,
    rebuild: bool = False,
) -> tuple[Path, bool]:
    """The city's base-map archive, built (and cached) if needed.

    Returns
    -------
    (Path, bool)
        The archive and whether it came from the cache.

    Raises
    ------
    FeedError
        If the OSM file is missing or unreadable, or nothing falls inside the bbox.
    """
    if not osm_path.is_file():
        raise FeedError(f"{osm_path}: OSM file not found")
    key = tiles_key(osm_path, bbox)
    path = tiles_path(cache_dir, city_id, key)
    if path.is_file() and not rebuild:
        return path, True
    if progress:
        progress("reading map features from OSM")
    features = read_map_features(osm_path)
    if progress:
        progress(f"cutting vector tiles z{MIN_ZOOM}–{MAX_ZOOM}")
    metadata = {
        "name": f"{city_id} base map",
        "attribution": attribution,
        "key": key,
        "vector_layers": [
            {"id": name, "minzoom": MIN_ZOOM, "maxzoom": MAX_ZOOM} for name in LAYERS
        ],
        "feature_counts": {name: features.count(name) for name in LAYERS},
    }
    write_archive(path, cut_tiles(features, bbox), bbox, metadata)
    for stale in path.parent.glob("basemap-*.pmtiles"):
        if stale != path:
            stale.unlink(missing_ok=True)
    return path, False


class TileArchive:
    """A base-map archive held in memory (a city's is a few MB): gzip-compressed tiles by
    (z, x, y), its key and metadata."""

    def __init__(self, path: Path) -> None:
        data = path.read_bytes()
        source = MemorySource(data)  # type: ignore[no-untyped-call]
        reader = PMTilesReader(source)  # type: ignore[no-untyped-call]
        header = reader.header()  # type: ignore[no-untyped-call]
        if header["tile_type"] != TileType.MVT or header["tile_compression"] != Compression.GZIP:
            raise FeedError(f"{path}: not a gzip-compressed MVT archive")
        self.metadata: dict[str, object] = reader.metadata()  # type: ignore[no-untyped-call]
        self.key = str(self.metadata.get("key", path.stem))
        self.min_zoom: int = header["min_zoom"]
        self.max_zoom: int = header["max_zoom"]
        self.bounds = (
            header["min_lon_e7"] / 1e7,
            header["min_lat_e7"] / 1e7,
            header["max_lon_e7"] / 1e7,
            header["max_lat_e7"] / 1e7,
        )
        self.tiles: dict[tuple[int, int, int], bytes] = {
            (z, x, y): bytes(tile)
            for (z, x, y), tile in all_tiles(source)  # type: ignore[no-untyped-call]
        }

    def find(self, z: int, x: int, y: int) -> bytes | None:
        """The gzip-compressed tile, or ``None`` where the archive has none."""
        return self.tiles.get((z, x, y))
