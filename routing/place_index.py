"""Building a city's place index, and its cache beside the base.

:func:`index_places` groups stops, streets, points of interest and addresses into places
and makes the word postings :func:`routing.places.search_places` reads;
:func:`load_or_build_places` caches the index as
``var/cache/<city>/places-<input hash>-<PLACES_VERSION>.pickle``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from feeds.osm_places import OsmPlace, OsmPlaces, load_osm_places
from routing.base import CityBase, input_hash
from routing.cache import load_or_build_pickle
from routing.places import (
    ABBREVIATIONS,
    KINDS,
    PLACES_VERSION,
    PlaceFacts,
    PlaceIndex,
    StopPlace,
    fold,
    words,
)

STOP_GROUP_M = 250.0  # stops of one name closer than this are one place (both kerbs)
POI_GROUP_M = 300.0  # so are points of interest of one name and category (platforms)
ADDRESS_GROUP_M = 100.0
# Prior by kind (0..1); a street's is its class (feeds.osm_places).
_KIND_PRIOR = {"stop": 0.9, "poi": 0.5, "address": 0.4}
_RAIL_MODES = frozenset({"rail", "subway", "ferry", "funicular", "aerial_lift", "monorail"})
_TRANSIT_CATEGORIES = frozenset({"transit_stop", "station"})

_SPELLED_OUT = {full: short for short, full in ABBREVIATIONS.items()}


@dataclass(frozen=True)
class _Entry(PlaceFacts):
    code: str = ""
    prior: float = 0.0
    extra_words: tuple[str, ...] = ()


def _groups(
    names: Sequence[str], lat: NDArray[np.float64], lon: NDArray[np.float64], radius_m: float
) -> list[list[int]]:
    """Indices grouped: same folded name and a chain of neighbours within ``radius_m``."""
    n = len(names)
    if n == 0:
        return []
    xy = np.column_stack((lon * np.cos(np.radians(lat)) * 111_195.0, lat * 111_195.0))
    pairs = cKDTree(xy).query_pairs(radius_m, output_type="ndarray")
    folded = [fold(name) for name in names]
    same = [k for k, (a, b) in enumerate(pairs) if folded[a] == folded[b]]
    pairs = pairs[same] if same else np.zeros((0, 2), np.int64)
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
    _count, label = connected_components(graph, directed=False)
    grouped: dict[int, list[int]] = {}
    for i, g in enumerate(label):
        grouped.setdefault(int(g), []).append(i)
    return sorted(grouped.values(), key=lambda members: members[0])


def _stop_entries(stops: Sequence[StopPlace]) -> list[_Entry]:
    lat = np.array([s.lat for s in stops], np.float64)
    lon = np.array([s.lon for s in stops], np.float64)
    out = []
    for members in _groups([s.name for s in stops], lat, lon, STOP_GROUP_M):
        group = [stops[i] for i in members]
        routes = sorted({r for s in group for r in s.routes if r}, key=_natural)
        codes = sorted({s.code for s in group if s.code})
        out.append(
            _Entry(
                kind="stop",
                name=group[0].name,
                secondary=", ".join(routes[:8]) + (", …" if len(routes) > 8 else ""),
                category="station" if any(s.rail for s in group) else "transit_stop",
                lat=float(lat[members].mean()),
                lon=float(lon[members].mean()),
                ids=tuple(s.stop_id for s in group),
                code=" ".join(codes),
                prior=_KIND_PRIOR["stop"],
                extra_words=tuple(codes),
            )
        )
    return out


def _natural(text: str) -> tuple[int, str]:
    """Route names in a natural order: 2, 10, 343, T5."""
    digits = re.match(r"\d+", text)
    return (int(digits.group()) if digits else 1 << 30, text)


def _osm_entries(kind: str, places: Sequence[OsmPlace], radius_m: float) -> list[_Entry]:
    if not places:
        return []
    lat = np.array([p.lat for p in places], np.float64)
    lon = np.array([p.lon for p in places], np.float64)
    # a station and its stop positions and platforms, all of one name, are one place
    keys = [
        f"{'transit' if p.category in _TRANSIT_CATEGORIES else p.category}\x00{p.name}"
        for p in places
    ]
    out = []
    for members in _groups(keys, lat, lon, radius_m):
        group = [places[i] for i in members]
        first = group[0]
        categories = {p.category for p in group}
        out.append(
            _Entry(
                kind=kind,
                name=first.name,
                secondary=next((p.secondary for p in group if p.secondary), ""),
                category="station" if "station" in categories else first.category,
                lat=float(lat[members].mean()),
                lon=float(lon[members].mean()),
                ids=tuple(i for p in group for i in p.ids),
                prior=first.importance * 0.7 if kind == "street" else _KIND_PRIOR[kind],
            )
        )
    return out


def _drop_known_stops(pois: list[_Entry], stops: list[_Entry]) -> list[_Entry]:
    """OSM stops and stations named like a GTFS stop within :data:`POI_GROUP_M` (the words
    of one name hold the other's): the GTFS stop is the place (it has stop ids and routes)."""
    if not stops:
        return pois
    xy = np.array(
        [(s.lon * math.cos(math.radians(s.lat)) * 111_195.0, s.lat * 111_195.0) for s in stops]
    )
    tree = cKDTree(xy)
    keep = []
    for poi in pois:
        if poi.category in _TRANSIT_CATEGORIES:
            here = (poi.lon * math.cos(math.radians(poi.lat)) * 111_195.0, poi.lat * 111_195.0)
            near = tree.query_ball_point(here, POI_GROUP_M)
            mine = set(words(poi.name))
            # "Mercado" (OSM) beside "ESTACAO MERCADO" (GTFS): one word set holds the other
            if any(mine <= (theirs := set(words(stops[i].name))) or theirs <= mine for i in near):
                continue
        keep.append(poi)
    return keep


def index_places(
    city_id: str, source_hash: str, stops: Sequence[StopPlace], osm: OsmPlaces
) -> PlaceIndex:
    """Build the search index from stops and OSM places.

    Stops of one name within :data:`STOP_GROUP_M` become one place (its ids are every
    stop_id); OSM points of interest of one name and category within
    :data:`POI_GROUP_M` too, and OSM stops that repeat a GTFS stop are dropped.
    """
    stop_entries = _stop_entries(stops)
    pois = _drop_known_stops(_osm_entries("poi", osm.pois, POI_GROUP_M), stop_entries)
    entries = [
        *stop_entries,
        *_osm_entries("street", osm.streets, 0.0),
        *pois,
        *_osm_entries("address", osm.addresses, ADDRESS_GROUP_M),
    ]
    postings: dict[str, set[int]] = {}
    name_chars = np.zeros(len(entries), np.int32)
    exact: dict[str, list[int]] = {}
    for e, entry in enumerate(entries):
        found = words(entry.name)
        name_chars[e] = sum(len(w) for w in found)
        other_forms = [ABBREVIATIONS.get(w) or _SPELLED_OUT.get(w) for w in found]
        for word in [
            *found,
            *(w for w in other_forms if w),
            *(w for extra in entry.extra_words for w in words(extra)),
        ]:
            postings.setdefault(word, set()).add(e)
        if entry.kind == "stop":
            for key in {*entry.ids, *entry.extra_words}:
                exact.setdefault(" ".join(words(key)), []).append(e)
    vocab = tuple(sorted(postings))
    post_ptr = np.zeros(len(vocab) + 1, np.int64)
    post_ptr[1:] = np.cumsum([len(postings[w]) for w in vocab])
    post_entry = np.fromiter(
        (e for w in vocab for e in sorted(postings[w])), np.int32, int(post_ptr[-1])
    )
    return PlaceIndex(
        city_id=city_id,
        input_hash=source_hash,
        kind=np.array([KINDS.index(x.kind) for x in entries], np.int8),
        name=tuple(x.name for x in entries),
        secondary=tuple(x.secondary for x in entries),
        category=tuple(x.category for x in entries),
        code=tuple(x.code for x in entries),
        ids=tuple(x.ids for x in entries),
        lat=np.array([x.lat for x in entries], np.float64),
        lon=np.array([x.lon for x in entries], np.float64),
        prior=np.array([x.prior for x in entries], np.float32),
        name_chars=name_chars,
        vocab=vocab,
        post_ptr=post_ptr,
        post_entry=post_entry,
        exact={k: tuple(v) for k, v in exact.items() if k},
    )


def city_stops(base: CityBase) -> list[StopPlace]:
    """The stops of a city base worth searching: served by a trip and linked to the walk
    network (a stop outside the OSM extract cannot start or end a plan)."""
    tt = base.timetable
    served: dict[int, set[int]] = {}
    trip_of_pattern: dict[int, int] = {}
    for t, p in enumerate(tt.trip_pattern.tolist()):
        trip_of_pattern.setdefault(p, t)
    for p, t in trip_of_pattern.items():
        route = int(tt.trip_route[t])
        for s in tt.pat_stops[tt.pat_stop_off[p] : tt.pat_stop_off[p + 1]]:
            served.setdefault(int(s), set()).add(route)
    stops_table = tt.transit.stops
    codes: dict[str, str] = {}
    if "stop_code" in stops_table.columns:
        for stop_id, code in zip(stops_table["stop_id"], stops_table["stop_code"], strict=True):
            if isinstance(code, str) and code.strip():
                codes[str(stop_id)] = code.strip()
    out = []
    for s, routes in sorted(served.items()):
        if base.stop_links.edge[s] < 0:
            continue
        stop_id = str(tt.stop_ids[s])
        out.append(
            StopPlace(
                stop_id=stop_id,
                name=str(tt.stop_names[s]) or stop_id,
                lat=float(tt.stop_lat[s]),
                lon=float(tt.stop_lon[s]),
                code=codes.get(stop_id, ""),
                routes=tuple(
                    str(tt.route_short[r] or tt.route_long[r] or tt.route_ids[r]) for r in routes
                ),
                rail=any(str(tt.route_mode[r]) in _RAIL_MODES for r in routes),
            )
        )
    return out


def build_place_index(base: CityBase) -> PlaceIndex:
    """The place index of a built city: its stops and its OSM extract's places.

    Raises
    ------
    feeds.errors.FeedError
        If the OSM file is missing or unreadable.
    """
    city = base.city
    osm = load_osm_places(city.resolve(city.osm.path))
    return index_places(city.id, base.input_hash, city_stops(base), osm)


def places_cache_path(cache_dir: Path, base: CityBase) -> Path:
    """Where a city's place index is cached: beside its base, keyed by the same input hash."""
    return cache_dir / base.city.id / f"places-{input_hash(base.city)}-{PLACES_VERSION}.pickle"


def load_or_build_places(
    base: CityBase, cache_dir: Path, rebuild: bool = False
) -> tuple[PlaceIndex, bool]:
    """(the city's place index, whether it came from the cache): built and cached beside the
    base if needed, its lookup tables filled (:func:`warm`)."""
    index, cached = load_or_build_pickle(
        places_cache_path(cache_dir, base),
        PlaceIndex,
        lambda: build_place_index(base),
        "places-*.pickle",
        rebuild,
    )
    warm(index)
    return index, cached


def warm(index: PlaceIndex) -> None:
    """Fill the index's lookup tables now, so that no traveller's first keystrokes pay."""
    index._position("")
    for length in range(3, 17):
        index._vocab_cut(length)
