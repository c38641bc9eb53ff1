"""Offline place search: a city's stops, streets, points of interest and addresses.

Built once per city next to its base (``correspondance build``), cached in
``var/cache/<city>/places-<input hash>-<PLACES_VERSION>.pickle`` and searched in memory.

Matching works on *folded* words (:func:`fold`: case folded, accents and ``ø``/``æ``/``ß``
spelled in plain Latin letters, so "sao" finds "São" and "toyen" finds "Tøyen"). Each
word of the query is scored against the index's vocabulary of words:

* the same word: 1.0;
* the start of a word (every query word may be a start, "av ipir" finds "Avenida
  Ipiranga"): :data:`PREFIX_SCORE`, a little less for a word that is not the last one;
* a word within a few typing errors (rapidfuzz's optimal string alignment distance, so a
  swap of two letters is one error; 1 error from 4 letters, 2 from 8): :data:`TYPO_SCORE`
  per error less. The last word is compared as a start: "tyoe" finds "Tøyen".

A place's text score is the mean of (a) the mean over query words of its best-matching
word and (b) the worst of them (every word must match; with three words or more, one may
be missing when too few places match them all), times a small bonus for how much of its
name the query covers. The rank adds
closeness to ``near`` (the map centre) and a small prior by kind (stops and main streets
first), both weighted so that a place spelled right never loses to a typo next door.
"""

from __future__ import annotations

import bisect
import math
import pickle
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from rapidfuzz import process
from rapidfuzz.distance import OSA
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from correspondance import bounds
from correspondance.errors import InputError
from correspondance.geo import haversine_m
from feeds.osm_places import OsmPlace, OsmPlaces, load_osm_places
from routing.base import CityBase, input_hash

PLACES_VERSION = "2"  # bump when the index layout or what it holds changes
KINDS = ("stop", "street", "poi", "address")
DEFAULT_LIMIT = 8
MAX_LIMIT = 50
MAX_QUERY_CHARS = 200
MAX_QUERY_WORDS = 10

PREFIX_SCORE = 0.93
INNER_PREFIX_SCORE = 0.88  # a word that is not the last one, matched by its start only
TYPO_SCORE = 0.80  # one typing error; each further error costs 0.1
NEAR_WEIGHT = 0.09  # closeness to ``near``: up to this much is added to the text score
NEAR_HALF_M = 2_000.0  # at this distance half of NEAR_WEIGHT is left
PRIOR_WEIGHT = 0.04
SAME_NAME_MAX = 3  # places of one name in a row of results, before others get a turn

STOP_GROUP_M = 250.0  # stops of one name closer than this are one place (both kerbs)
POI_GROUP_M = 300.0  # so are points of interest of one name and category (platforms)
ADDRESS_GROUP_M = 100.0
# Prior by kind (0..1); a street's is its class (feeds.osm_places).
_KIND_PRIOR = {"stop": 0.9, "poi": 0.5, "address": 0.4}
_RAIL_MODES = frozenset({"rail", "subway", "ferry", "funicular", "aerial_lift", "monorail"})
_TRANSIT_CATEGORIES = frozenset({"transit_stop", "station"})

# Abbreviations in Brazilian street and stop names (EPTC writes "DR", "PROF", "CEL", "JD"; OSM
# spells the words out): a place is also found by the other form. Folded, both ways.
ABBREVIATIONS = {
    "av": "avenida",
    "pca": "praca",
    "dr": "doutor",
    "dra": "doutora",
    "prof": "professor",
    "profa": "professora",
    "sta": "santa",
    "sto": "santo",
    "cel": "coronel",
    "gal": "general",
    "ten": "tenente",
    "cap": "capitao",
    "mal": "marechal",
    "alm": "almirante",
    "sen": "senador",
    "dep": "deputado",
    "des": "desembargador",
    "pres": "presidente",
    "eng": "engenheiro",
    "gov": "governador",
    "vl": "vila",
    "jd": "jardim",
    "trav": "travessa",
    "pq": "parque",
    "hosp": "hospital",
}
_SPELLED_OUT = {full: short for short, full in ABBREVIATIONS.items()}

# Letters NFKD does not take apart into a base letter and an accent.
_SPELLED = str.maketrans(
    {"ø": "o", "æ": "ae", "œ": "oe", "đ": "d", "ð": "d", "ł": "l", "þ": "th", "ı": "i"}
)
_WORD = re.compile(r"[^\W_]+")


def fold(text: str) -> str:
    """``text`` case folded, without accents: ``fold("Tøyen São")`` is ``"toyen sao"``."""
    decomposed = unicodedata.normalize("NFKD", text.casefold().translate(_SPELLED))
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def words(text: str) -> list[str]:
    """The folded words of ``text`` (letters and digits; punctuation separates)."""
    return _WORD.findall(fold(text))


def max_typos(word: str) -> int:
    """Typing errors tolerated in a query word of this length (none under 4 letters)."""
    if len(word) < 4:
        return 0
    return 1 if len(word) < 8 else 2


@dataclass(frozen=True)
class StopPlace:
    """A transit stop as the index takes it (one row of the timetable, or a test's)."""

    stop_id: str
    name: str
    lat: float
    lon: float
    code: str = ""
    routes: tuple[str, ...] = ()
    rail: bool = False


@dataclass(frozen=True)
class Place:
    """One search result.

    ``secondary`` is data text shown under the name (a stop's routes, a point of interest's
    address, an address's postcode and town); ``category`` is a fixed code the app words
    (``transit_stop``, ``station``, ``street``, ``address``, ``school``...).
    """

    kind: str
    name: str
    secondary: str
    category: str
    lat: float
    lon: float
    ids: tuple[str, ...]
    code: str
    distance_m: float | None
    score: float


@dataclass(frozen=True, eq=False)
class PlaceIndex:
    """The searchable places of one city (immutable; safe to search from many threads)."""

    city_id: str
    input_hash: str
    kind: NDArray[np.int8]  # index into KINDS
    name: tuple[str, ...]
    secondary: tuple[str, ...]
    category: tuple[str, ...]
    code: tuple[str, ...]
    ids: tuple[tuple[str, ...], ...]
    lat: NDArray[np.float64]
    lon: NDArray[np.float64]
    prior: NDArray[np.float32]
    name_chars: NDArray[np.int32]  # letters and digits in the folded name
    vocab: tuple[str, ...]  # sorted distinct folded words
    post_ptr: NDArray[np.int64]  # CSR: word i → entries post_entry[post_ptr[i]:post_ptr[i+1]]
    post_entry: NDArray[np.int32]
    exact: dict[str, tuple[int, ...]]  # folded stop_id or code → entries (whole query)
    _word_pos: dict[str, int] = field(default_factory=dict, repr=False)
    _cut: dict[int, list[str]] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.name)

    def count(self, kind: str) -> int:
        """How many places of a kind the index holds."""
        return int(np.sum(self.kind == KINDS.index(kind)))

    def _position(self, word: str) -> int | None:
        if not self._word_pos:
            self._word_pos.update({w: i for i, w in enumerate(self.vocab)})
        return self._word_pos.get(word)

    def _vocab_cut(self, length: int) -> list[str]:
        """Every vocabulary word cut to ``length`` letters (for typos in a word's start)."""
        cut = self._cut.get(length)
        if cut is None:
            cut = self._cut[length] = [w[:length] for w in self.vocab]
        return cut


def _word_matches(
    index: PlaceIndex, word: str, last: bool
) -> tuple[NDArray[np.int64], NDArray[np.float32]]:
    """(vocabulary positions, scores) of the words matching one query word."""
    scores: dict[int, float] = {}
    prefix = PREFIX_SCORE if last else INNER_PREFIX_SCORE
    lo = bisect.bisect_left(index.vocab, word)
    hi = bisect.bisect_left(index.vocab, word + "\U0010ffff")
    for i in range(lo, hi):
        scores[i] = 1.0 if index.vocab[i] == word else prefix
    typos = max_typos(word)
    if typos:
        # a last word is a start: compare it with each word's start of about its length
        lengths = (len(word) - 1, len(word), len(word) + 1) if last else (None,)
        for length in lengths:
            choices = index.vocab if length is None else index._vocab_cut(length)
            dist = process.cdist(
                [word], choices, scorer=OSA.distance, score_cutoff=typos, dtype=np.int32
            )[0]
            for i in np.flatnonzero(dist <= typos).tolist():
                d = int(dist[i])
                if d == 0:
                    continue  # a start or the word itself: scored above
                score = TYPO_SCORE - 0.1 * (d - 1)
                if scores.get(i, 0.0) < score:
                    scores[i] = score
    if not scores:
        return np.zeros(0, np.int64), np.zeros(0, np.float32)
    positions = np.fromiter(scores.keys(), np.int64, len(scores))
    return positions, np.fromiter(scores.values(), np.float32, len(scores))


def _entry_scores(
    index: PlaceIndex, positions: NDArray[np.int64], scores: NDArray[np.float32]
) -> NDArray[np.float32]:
    """Best score per entry over the matched vocabulary words."""
    best = np.zeros(len(index), np.float32)
    if not len(positions):
        return best
    starts = index.post_ptr[positions]
    lengths = index.post_ptr[positions + 1] - starts
    total = int(lengths.sum())
    # the postings of every matched word, gathered without a Python loop
    offsets = np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(total)
    np.maximum.at(best, index.post_entry[offsets], np.repeat(scores, lengths))
    return best


def check_query(query: str) -> list[str]:
    """The folded words of a search text.

    Raises
    ------
    InputError
        ``empty_query`` if it holds no letter or digit; ``query_too_long`` past
        :data:`MAX_QUERY_CHARS` characters or :data:`MAX_QUERY_WORDS` words.
    """
    if len(query) > MAX_QUERY_CHARS:
        raise InputError(
            f"'q' is {len(query)} characters long; at most {MAX_QUERY_CHARS}",
            code="query_too_long",
            field="q",
        )
    found = words(query)
    if not found:
        raise InputError(
            "'q' must hold at least one letter or digit", code="empty_query", field="q"
        )
    if len(found) > MAX_QUERY_WORDS:
        raise InputError(
            f"'q' has {len(found)} words; at most {MAX_QUERY_WORDS}",
            code="query_too_long",
            field="q",
        )
    return found


def parse_near(text: str) -> tuple[float, float]:
    """``"LAT,LON"`` (decimal degrees) → (lat, lon).

    Raises
    ------
    InputError
        ``invalid_parameter`` if it is not two numbers; ``non_finite_number`` for NaN or
        infinity; ``out_of_range`` outside [-90, 90] × [-180, 180].
    """
    parts = text.split(",")
    try:
        if len(parts) != 2:
            raise ValueError(text)
        lat, lon = float(parts[0]), float(parts[1])
    except ValueError:
        raise InputError(
            f"'near' must be 'LAT,LON' in decimal degrees, got {text[:40]!r}", field="near"
        ) from None
    return (
        bounds.check_number(lat, "near", -90.0, 90.0),
        bounds.check_number(lon, "near", -180.0, 180.0),
    )


def search_places(
    index: PlaceIndex,
    query: str,
    near: tuple[float, float] | None = None,
    limit: int = DEFAULT_LIMIT,
) -> list[Place]:
    """The places best matching ``query``, best first.

    Parameters
    ----------
    index : PlaceIndex
        The city's index.
    query : str
        What the traveller typed; the last word may be unfinished.
    near : (lat, lon), optional
        The map centre: closer places rank higher, and results carry their distance.
    limit : int
        At most this many results, 1 to :data:`MAX_LIMIT`.

    Returns
    -------
    list of Place
        Possibly empty.

    Raises
    ------
    InputError
        ``empty_query``, ``query_too_long`` (:func:`check_query`); ``out_of_range`` for a
        limit outside [1, MAX_LIMIT]; ``non_finite_number``/``out_of_range`` for ``near``.
    """
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise bounds.OutOfRangeError(
            f"'limit' must be a whole number within [1, {MAX_LIMIT}]", field="limit"
        )
    if near is not None:
        near = (
            bounds.check_number(near[0], "near", -90.0, 90.0),
            bounds.check_number(near[1], "near", -180.0, 180.0),
        )
    query_words = check_query(query)
    if not len(index):
        return []
    finished = not query[-1:].isalnum()  # "rua " : the last word is complete
    per_word = np.zeros((len(query_words), len(index)), np.float32)
    for row, word in enumerate(query_words):
        last = row == len(query_words) - 1 and not finished
        positions, scores = _word_matches(index, word, last)
        per_word[row] = _entry_scores(index, positions, scores)
    matched = (per_word > 0).sum(axis=0)
    # half mean, half worst word: one misspelt word costs at least TYPO's 0.2 / 2, more
    # than NEAR_WEIGHT, however many words are spelt right
    text = 0.5 * (per_word.mean(axis=0) + per_word.min(axis=0))
    exact = index.exact.get(" ".join(query_words), ())
    if exact:
        text[list(exact)] = np.maximum(text[list(exact)], 1.0)
        matched[list(exact)] = len(query_words)
    candidates = np.flatnonzero(matched == len(query_words))
    if len(candidates) < limit and len(query_words) >= 3:
        candidates = np.flatnonzero(matched >= len(query_words) - 1)
    if not len(candidates):
        return []
    typed = sum(len(w) for w in query_words)
    coverage = np.minimum(1.0, typed / np.maximum(index.name_chars[candidates], 1))
    rank = text[candidates] * (0.9 + 0.1 * coverage) + PRIOR_WEIGHT * index.prior[candidates]
    distance: NDArray[np.float64] | None = None
    if near is not None:
        distance = haversine_m(near[0], near[1], index.lat[candidates], index.lon[candidates])
        rank = rank + NEAR_WEIGHT / (1.0 + distance / NEAR_HALF_M)
    top = _diverse(np.argsort(-rank, kind="stable")[: limit * 6], candidates, index, limit)
    out = []
    for j in top:
        e = int(candidates[j])
        out.append(
            Place(
                kind=KINDS[int(index.kind[e])],
                name=index.name[e],
                secondary=index.secondary[e],
                category=index.category[e],
                lat=float(index.lat[e]),
                lon=float(index.lon[e]),
                ids=index.ids[e],
                code=index.code[e],
                distance_m=None if distance is None else round(float(distance[j]), 1),
                score=round(float(rank[j]), 4),
            )
        )
    return out


def _diverse(
    order: NDArray[np.int64], candidates: NDArray[np.int64], index: PlaceIndex, limit: int
) -> list[int]:
    """The first ``limit`` of ``order`` with at most :data:`SAME_NAME_MAX` places of one name
    (the stops of one name all along an avenue), unless nothing else is left to show."""
    kept: list[int] = []
    later: list[int] = []
    seen: dict[str, int] = {}
    for j in order.tolist():
        name = index.name[int(candidates[j])].casefold()
        seen[name] = seen.get(name, 0) + 1
        (kept if seen[name] <= SAME_NAME_MAX else later).append(j)
        if len(kept) == limit:
            break
    return (kept + later)[:limit]


# --- building ---------------------------------------------------------------------------------


@dataclass
class _Entry:
    kind: str
    name: str
    secondary: str
    category: str
    lat: float
    lon: float
    ids: tuple[str, ...]
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
    """The city's place index from cache, building (and caching) it if needed.

    Returns
    -------
    (PlaceIndex, bool)
        The index and whether it came from the cache.
    """
    path = places_cache_path(cache_dir, base)
    if path.is_file() and not rebuild:
        try:
            with path.open("rb") as handle:
                index = pickle.load(handle)
            if isinstance(index, PlaceIndex):
                warm(index)
                return index, True
        except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, TypeError):
            pass  # a stale or truncated cache is rebuilt, never trusted
    index = build_place_index(base)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tmp.open("wb") as handle:
        pickle.dump(index, handle, protocol=pickle.HIGHEST_PROTOCOL)
    tmp.replace(path)  # atomic, as the base's cache
    for stale in path.parent.glob("places-*.pickle"):
        if stale != path:
            stale.unlink(missing_ok=True)
    warm(index)
    return index, False


def warm(index: PlaceIndex) -> None:
    """Fill the index's lookup tables now, so that no traveller's first keystrokes pay."""
    index._position("")
    for length in range(3, 17):
        index._vocab_cut(length)
