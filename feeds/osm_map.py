"""What the base map draws, read from a city's OSM extract: streets with their names, water,
parks, rail, landmarks and place names.

Each feature is a shapely geometry in WGS84 (lon, lat) with a few string properties and the
lowest map zoom it shows at. Cutting the features into vector tiles is ``feeds.tiles``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import osmium
import shapely
from shapely.geometry.base import BaseGeometry

from feeds.errors import FeedError

#: highway=* → (street class drawn by the style, lowest zoom it is in the tiles)
STREET_CLASSES: dict[str, tuple[str, int]] = {
    "motorway": ("motorway", 8),
    "motorway_link": ("motorway", 11),
    "trunk": ("trunk", 8),
    "trunk_link": ("trunk", 11),
    "primary": ("primary", 9),
    "primary_link": ("primary", 12),
    "secondary": ("secondary", 10),
    "secondary_link": ("secondary", 13),
    "tertiary": ("tertiary", 10),
    "tertiary_link": ("tertiary", 13),
    "residential": ("minor", 11),
    "unclassified": ("minor", 11),
    "living_street": ("minor", 11),
    "road": ("minor", 11),
    "service": ("service", 14),
    "pedestrian": ("path", 13),
    "footway": ("path", 14),
    "path": ("path", 14),
    "cycleway": ("path", 14),
    "steps": ("path", 14),
    "track": ("path", 14),
    "bridleway": ("path", 14),
}
RAIL_CLASSES = {"rail": 9, "subway": 10, "light_rail": 10, "tram": 11, "narrow_gauge": 10}
WATERWAY_CLASSES = {"river": 8, "canal": 10, "stream": 12, "drain": 13, "ditch": 13}
#: (key, value) → park class drawn green
PARK_TAGS: dict[tuple[str, str], str] = {
    ("leisure", "park"): "park",
    ("leisure", "garden"): "park",
    ("leisure", "nature_reserve"): "park",
    ("leisure", "recreation_ground"): "park",
    ("leisure", "playground"): "park",
    ("landuse", "grass"): "grass",
    ("landuse", "recreation_ground"): "park",
    ("landuse", "village_green"): "grass",
    ("landuse", "meadow"): "grass",
    ("landuse", "forest"): "forest",
    ("natural", "wood"): "forest",
    ("natural", "scrub"): "forest",
    ("landuse", "cemetery"): "cemetery",
}
#: (key, value) → landmark kind; only named objects become landmarks
LANDMARK_TAGS: dict[tuple[str, str], str] = {
    ("tourism", "attraction"): "attraction",
    ("tourism", "museum"): "museum",
    ("tourism", "viewpoint"): "viewpoint",
    ("tourism", "gallery"): "museum",
    ("tourism", "zoo"): "attraction",
    ("amenity", "place_of_worship"): "worship",
    ("amenity", "hospital"): "hospital",
    ("amenity", "university"): "education",
    ("amenity", "college"): "education",
    ("amenity", "townhall"): "civic",
    ("amenity", "courthouse"): "civic",
    ("amenity", "library"): "civic",
    ("amenity", "theatre"): "culture",
    ("amenity", "arts_centre"): "culture",
    ("amenity", "marketplace"): "market",
    ("railway", "station"): "station",
    ("leisure", "stadium"): "stadium",
    ("leisure", "sports_centre"): "stadium",
}
PLACE_ZOOM = {"city": 8, "town": 9, "suburb": 11, "quarter": 12, "neighbourhood": 13}
LANDMARK_ZOOM = 14
AREA_LABEL_ZOOM = 13


@dataclass(frozen=True)
class MapFeature:
    """One drawn thing: geometry (lon, lat), its properties and the lowest zoom it is in."""

    geometry: BaseGeometry
    properties: dict[str, str]
    min_zoom: int


@dataclass
class MapFeatures:
    """The base map's features, one list per vector-tile layer."""

    layers: dict[str, list[MapFeature]] = field(default_factory=dict)

    def add(self, layer: str, feature: MapFeature) -> None:
        """Append a feature to a layer."""
        self.layers.setdefault(layer, []).append(feature)

    def count(self, layer: str) -> int:
        """How many features a layer has (0 for a layer never added to)."""
        return len(self.layers.get(layer, ()))


def _name(tags: dict[str, str]) -> dict[str, str]:
    name = tags.get("name", "").strip()
    return {"name": name} if name else {}


def _park_class(tags: dict[str, str]) -> str | None:
    for key in ("leisure", "landuse", "natural"):
        kind = PARK_TAGS.get((key, tags.get(key, "")))
        if kind:
            return kind
    return None


def _is_water_area(tags: dict[str, str]) -> bool:
    return (
        tags.get("natural") == "water"
        or "water" in tags
        or tags.get("landuse") in ("reservoir", "basin")
        or tags.get("waterway") == "riverbank"
    )


def _landmark_kind(tags: dict[str, str]) -> str | None:
    for (key, value), kind in LANDMARK_TAGS.items():
        if tags.get(key) == value:
            return kind
    if "historic" in tags:
        return "historic"
    return None


def _way(
    obj: osmium.osm.Way, tags: dict[str, str], wkb: osmium.geom.WKBFactory, out: MapFeatures
) -> None:
    highway = tags.get("highway")
    if highway in STREET_CLASSES and tags.get("area") != "yes":
        street_class, zoom = STREET_CLASSES[highway]
        props = {"class": street_class, **_name(tags)}
        if tags.get("ref"):
            props["ref"] = tags["ref"]
        out.add("streets", MapFeature(_line(obj, wkb), props, zoom))
        return
    railway = tags.get("railway")
    if railway in RAIL_CLASSES:
        props = {"class": railway, **_name(tags)}
        out.add("rail", MapFeature(_line(obj, wkb), props, RAIL_CLASSES[railway]))
        return
    waterway = tags.get("waterway")
    if waterway in WATERWAY_CLASSES:
        props = {"class": waterway, **_name(tags)}
        out.add("waterways", MapFeature(_line(obj, wkb), props, WATERWAY_CLASSES[waterway]))


def _line(obj: osmium.osm.Way, wkb: osmium.geom.WKBFactory) -> BaseGeometry:
    return shapely.from_wkb(wkb.create_linestring(obj))


def _area(
    obj: osmium.osm.Area, tags: dict[str, str], wkb: osmium.geom.WKBFactory, out: MapFeatures
) -> None:
    water = _is_water_area(tags)
    park = None if water else _park_class(tags)
    kind = _landmark_kind(tags)
    if not (water or park or (kind and tags.get("name"))):
        return
    try:
        geometry = shapely.make_valid(shapely.from_wkb(wkb.create_multipolygon(obj)))
    except RuntimeError:  # an unclosed ring or missing nodes at the extract's edge
        return
    if geometry.is_empty:
        return
    named = _name(tags)
    if water:
        out.add("water", MapFeature(geometry, {"class": "water", **named}, 8))
    elif park:
        out.add("parks", MapFeature(geometry, {"class": park, **named}, 10))
    if named and (water or park):
        label = {"class": "water" if water else "park", **named}
        out.add("labels", MapFeature(geometry.representative_point(), label, AREA_LABEL_ZOOM))
    elif named and kind:
        point = geometry.representative_point()
        out.add("landmarks", MapFeature(point, {"class": kind, **named}, LANDMARK_ZOOM))


def _node(obj: osmium.osm.Node, tags: dict[str, str], out: MapFeatures) -> None:
    named = _name(tags)
    if not named:
        return
    point = shapely.Point(obj.location.lon, obj.location.lat)
    place = tags.get("place")
    if place in PLACE_ZOOM:
        out.add("labels", MapFeature(point, {"class": place, **named}, PLACE_ZOOM[place]))
        return
    kind = _landmark_kind(tags)
    if kind:
        out.add("landmarks", MapFeature(point, {"class": kind, **named}, LANDMARK_ZOOM))


def read_map_features(osm_path: Path) -> MapFeatures:
    """Every feature the base map draws from an OSM extract (PBF or XML).

    Streets keep their OSM ``name`` (and ``ref``); areas come from closed ways and multipolygon
    relations, assembled by libosmium.

    Raises
    ------
    FeedError
        If the file is missing or cannot be read.
    """
    if not osm_path.is_file():
        raise FeedError(f"{osm_path}: OSM file not found")
    out = MapFeatures()
    wkb = osmium.geom.WKBFactory()
    try:
        for obj in osmium.FileProcessor(str(osm_path)).with_locations().with_areas():
            if not obj.tags:
                continue
            tags = {t.k: t.v for t in obj.tags}
            try:
                if isinstance(obj, osmium.osm.Way):
                    _way(obj, tags, wkb, out)
                elif isinstance(obj, osmium.osm.Area):
                    _area(obj, tags, wkb, out)
                elif isinstance(obj, osmium.osm.Node):
                    _node(obj, tags, out)
            except osmium.InvalidLocationError:
                continue  # a way leaving the extract: its missing nodes have no position
    except RuntimeError as exc:
        raise FeedError(f"{osm_path}: cannot read OSM data: {exc}") from exc
    return out
