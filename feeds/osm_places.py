"""Places a traveller may search for in an OSM extract: named streets, points of interest
and addresses.

One streaming pass with pyosmium (node locations attached to ways). What counts:

* **streets**: ways tagged ``highway`` with a ``name`` (platforms, construction and the like
  left out). Ways of one name that share a node, or come within :data:`STREET_GAP_M` of
  each other (an avenue's two carriageways), are one street; far apart they stay separate
  (the many "Beco 1" alleys of Porto Alegre are many places).
* **points of interest**: named nodes and ways with one of :data:`POI_KEYS` (``amenity``,
  ``shop``, ``tourism``, ``railway=station``, ``public_transport``, ``place``...); a way
  is reduced to the vertex nearest the mean of its nodes, so the point lies on it.
  Each gets a small fixed *category* code (:func:`poi_category`) the app words.
* **addresses**: nodes and ways with both ``addr:street`` and ``addr:housenumber``.

Relations (multipolygons, routes) are not read: no geometry is assembled for them, and
in the bundled extracts they hold a handful of places, all also tagged on a node or way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import osmium
from numpy.typing import NDArray
from scipy.spatial import cKDTree

from feeds.errors import FeedError

# Tags that make a named node or way a point of interest, in order of precedence.
POI_KEYS = (
    "amenity",
    "shop",
    "tourism",
    "leisure",
    "historic",
    "healthcare",
    "office",
    "railway",
    "public_transport",
    "aeroway",
    "place",
    "highway",
    "building",
)
# Values that name no destination (a bench, an entrance, a toll gantry).
_IGNORED_VALUES = {
    "amenity": {"bench", "waste_basket", "parking_entrance", "vending_machine", "recycling"},
    "railway": {"subway_entrance", "switch", "level_crossing", "crossing", "signal", "buffer_stop"},
}
# (key, value) → category; (key, "*") → category for any other value of that key.
_CATEGORY: dict[tuple[str, str], str] = {
    ("amenity", "school"): "school",
    ("amenity", "college"): "school",
    ("amenity", "kindergarten"): "school",
    ("amenity", "university"): "university",
    ("amenity", "hospital"): "hospital",
    ("amenity", "clinic"): "hospital",
    ("amenity", "doctors"): "hospital",
    ("amenity", "pharmacy"): "pharmacy",
    ("amenity", "restaurant"): "food",
    ("amenity", "fast_food"): "food",
    ("amenity", "cafe"): "food",
    ("amenity", "bar"): "food",
    ("amenity", "pub"): "food",
    ("amenity", "parking"): "parking",
    ("amenity", "bicycle_parking"): "parking",
    ("amenity", "place_of_worship"): "worship",
    ("amenity", "library"): "culture",
    ("amenity", "theatre"): "culture",
    ("amenity", "cinema"): "culture",
    ("amenity", "arts_centre"): "culture",
    ("amenity", "townhall"): "public_service",
    ("amenity", "police"): "public_service",
    ("amenity", "post_office"): "public_service",
    ("amenity", "courthouse"): "public_service",
    ("amenity", "fire_station"): "public_service",
    ("amenity", "bank"): "shop",
    ("amenity", "marketplace"): "shop",
    ("amenity", "fuel"): "fuel",
    ("amenity", "bus_station"): "station",
    ("amenity", "ferry_terminal"): "station",
    ("amenity", "*"): "amenity",
    ("shop", "*"): "shop",
    ("tourism", "hotel"): "hotel",
    ("tourism", "hostel"): "hotel",
    ("tourism", "guest_house"): "hotel",
    ("tourism", "museum"): "culture",
    ("tourism", "gallery"): "culture",
    ("tourism", "*"): "attraction",
    ("leisure", "park"): "park",
    ("leisure", "garden"): "park",
    ("leisure", "playground"): "park",
    ("leisure", "stadium"): "sport",
    ("leisure", "sports_centre"): "sport",
    ("leisure", "pitch"): "sport",
    ("leisure", "*"): "leisure",
    ("historic", "*"): "attraction",
    ("healthcare", "*"): "hospital",
    ("office", "government"): "public_service",
    ("office", "*"): "office",
    ("railway", "station"): "station",
    ("railway", "halt"): "station",
    ("railway", "tram_stop"): "transit_stop",
    ("public_transport", "station"): "station",
    ("public_transport", "*"): "transit_stop",
    ("aeroway", "aerodrome"): "airport",
    ("aeroway", "terminal"): "airport",
    ("place", "square"): "square",
    ("place", "*"): "area",
    ("highway", "bus_stop"): "transit_stop",
    ("building", "*"): "building",
}
CATEGORIES = frozenset(_CATEGORY.values())
"""Every category code a point of interest may carry (the app has a word for each)."""

# Highway values that are no street one would search for.
_NOT_STREETS = frozenset(
    {"platform", "bus_stop", "proposed", "construction", "abandoned", "raceway", "elevator"}
)
STREET_GAP_M = 300.0
"""Pieces of a street with the same name closer than this are one street."""
_M_PER_DEG = 111_195.0
# Rough importance of a street by class, 0..1: an avenue before a service lane of the
# same name (used as a small ranking prior).
_STREET_IMPORTANCE = {
    "motorway": 0.6,
    "trunk": 1.0,
    "primary": 1.0,
    "secondary": 0.9,
    "tertiary": 0.8,
    "residential": 0.6,
    "living_street": 0.6,
    "pedestrian": 0.7,
    "unclassified": 0.5,
}


@dataclass(frozen=True)
class OsmPlace:
    """One named place found in the extract.

    ``ids`` are OSM ids as ``node/<id>`` or ``way/<id>``; ``secondary`` is extra data text
    (a point of interest's address, an address's postcode and town), possibly empty.
    """

    name: str
    category: str
    lat: float
    lon: float
    ids: tuple[str, ...]
    secondary: str = ""
    importance: float = 0.0


@dataclass(frozen=True)
class OsmPlaces:
    """Streets, points of interest and addresses of an extract."""

    streets: tuple[OsmPlace, ...]
    pois: tuple[OsmPlace, ...]
    addresses: tuple[OsmPlace, ...]


def poi_category(tags: dict[str, str]) -> str | None:
    """The category of a named node or way, or ``None`` if it is no point of interest."""
    for key in POI_KEYS:
        value = tags.get(key)
        if value is None or value in ("no", "") or value in _IGNORED_VALUES.get(key, ()):
            continue
        if key == "highway" and value != "bus_stop":
            continue
        if key == "public_transport" and value == "stop_area":
            continue
        category = _CATEGORY.get((key, value)) or _CATEGORY.get((key, "*"))
        if category is not None:
            return category
    return None


def format_address(tags: dict[str, str]) -> str:
    """``"Sannergata 2"`` from ``addr:street`` and ``addr:housenumber`` (empty if either
    is missing)."""
    street = tags.get("addr:street", "").strip()
    number = tags.get("addr:housenumber", "").strip()
    return f"{street} {number}" if street and number else ""


def _address_area(tags: dict[str, str]) -> str:
    parts = [tags.get("addr:postcode", "").strip(), tags.get("addr:city", "").strip()]
    return " ".join(p for p in parts if p)


def _on_way(lats: NDArray[np.float64], lons: NDArray[np.float64]) -> tuple[float, float]:
    """The vertex nearest the mean of a polyline's vertices: a point on the way itself."""
    mean_lat, mean_lon = float(lats.mean()), float(lons.mean())
    scale = np.cos(np.radians(mean_lat))
    i = int(np.argmin((lats - mean_lat) ** 2 + ((lons - mean_lon) * scale) ** 2))
    return float(lats[i]), float(lons[i])


def _point_of(obj: osmium.osm.Node | osmium.osm.Way) -> tuple[float, float, str] | None:
    """(lat, lon, OSM id) of a node, or of the vertex nearest a way's middle."""
    if isinstance(obj, osmium.osm.Node):
        if not obj.location.valid():
            return None
        return obj.location.lat, obj.location.lon, f"node/{obj.id}"
    points = [(n.location.lat, n.location.lon) for n in obj.nodes if n.location.valid()]
    if not points:
        return None
    lat, lon = _on_way(np.array([p[0] for p in points]), np.array([p[1] for p in points]))
    return lat, lon, f"way/{obj.id}"


class _Streets:
    """Named highway ways, merged into streets by shared nodes (union-find per name)."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.way_ids: list[int] = []
        self.importance: list[float] = []
        self.coords: list[tuple[NDArray[np.float64], NDArray[np.float64]]] = []
        self.node_owner: dict[tuple[str, int], int] = {}
        self.parent: list[int] = []

    def _find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def add(self, way: osmium.osm.Way, name: str, highway: str) -> None:
        nodes = [(n.ref, n.location) for n in way.nodes if n.location.valid()]
        if not nodes:
            return
        i = len(self.names)
        self.names.append(name)
        self.way_ids.append(way.id)
        self.importance.append(_STREET_IMPORTANCE.get(highway, 0.3))
        self.coords.append(
            (
                np.array([loc.lat for _, loc in nodes]),
                np.array([loc.lon for _, loc in nodes]),
            )
        )
        self.parent.append(i)
        for ref, _loc in nodes:
            other = self.node_owner.setdefault((name, ref), i)
            if other != i:
                self._union(i, other)

    def _union(self, i: int, j: int) -> None:
        a, b = self._find(i), self._find(j)
        if a != b:
            self.parent[max(a, b)] = min(a, b)

    def _merge_near_pieces(self) -> None:
        """Join pieces of one name that come within :data:`STREET_GAP_M` of each other
        (the two carriageways of an avenue, a street cut by a square)."""
        by_name: dict[str, list[int]] = {}
        for i, name in enumerate(self.names):
            by_name.setdefault(name, []).append(i)
        for ways in by_name.values():
            if len({self._find(i) for i in ways}) < 2:
                continue
            owner = np.concatenate([np.full(len(self.coords[i][0]), i) for i in ways])
            lats = np.concatenate([self.coords[i][0] for i in ways])
            lons = np.concatenate([self.coords[i][1] for i in ways])
            xy = np.column_stack(
                (lons * np.cos(np.radians(lats.mean())) * _M_PER_DEG, lats * _M_PER_DEG)
            )
            for a, b in cKDTree(xy).query_pairs(STREET_GAP_M, output_type="ndarray"):
                self._union(int(owner[a]), int(owner[b]))

    def places(self) -> tuple[OsmPlace, ...]:
        self._merge_near_pieces()
        groups: dict[int, list[int]] = {}
        for i in range(len(self.names)):
            groups.setdefault(self._find(i), []).append(i)
        out = []
        for members in groups.values():
            lats = np.concatenate([self.coords[i][0] for i in members])
            lons = np.concatenate([self.coords[i][1] for i in members])
            lat, lon = _on_way(lats, lons)
            out.append(
                OsmPlace(
                    name=self.names[members[0]],
                    category="street",
                    lat=lat,
                    lon=lon,
                    ids=tuple(f"way/{self.way_ids[i]}" for i in sorted(members)),
                    importance=max(self.importance[i] for i in members),
                )
            )
        out.sort(key=lambda p: p.ids[0])
        return tuple(out)


def load_osm_places(osm_path: Path | str) -> OsmPlaces:
    """Every named street, point of interest and address of an OSM extract.

    Parameters
    ----------
    osm_path : path-like
        A ``.pbf`` or ``.osm`` file.

    Returns
    -------
    OsmPlaces
        Streets (ways sharing a node merged), points of interest, addresses; each sorted
        by its first OSM id so the result does not depend on the file's order.

    Raises
    ------
    FeedError
        If the file is missing or unreadable.
    """
    path = str(osm_path)
    if not Path(path).is_file():
        raise FeedError(f"{path}: OSM file not found")
    try:
        processor = osmium.FileProcessor(path).with_locations()
    except (RuntimeError, OSError) as exc:
        raise FeedError(f"{path}: OSM file not found or unreadable ({exc})") from exc
    streets = _Streets()
    pois: list[OsmPlace] = []
    addresses: list[OsmPlace] = []
    try:
        for obj in processor:
            if not obj.tags or not isinstance(obj, osmium.osm.Node | osmium.osm.Way):
                continue
            tags = {t.k: t.v for t in obj.tags}
            name = tags.get("name", "").strip()
            highway = tags.get("highway")
            if (
                isinstance(obj, osmium.osm.Way)
                and name
                and highway is not None
                and highway not in _NOT_STREETS
                and tags.get("area") != "yes"
            ):
                streets.add(obj, name, highway)
                continue
            address = format_address(tags)
            category = poi_category(tags) if name else None
            if category is None and not address:
                continue
            where = _point_of(obj)
            if where is None:
                continue
            lat, lon, osm_id = where
            if category is not None:
                pois.append(OsmPlace(name, category, lat, lon, (osm_id,), secondary=address))
            if address:
                area = _address_area(tags)
                addresses.append(OsmPlace(address, "address", lat, lon, (osm_id,), secondary=area))
    except RuntimeError as exc:
        raise FeedError(f"{path}: not a readable OSM file ({exc})") from exc
    pois.sort(key=lambda p: p.ids[0])
    addresses.sort(key=lambda p: p.ids[0])
    return OsmPlaces(streets.places(), tuple(pois), tuple(addresses))
