"""Offline place search: a city's stops, streets, points of interest and addresses.

Built once per city next to its base (``correspondance build``) by
:mod:`routing.place_index`, cached there and searched in memory here.

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
import re
import unicodedata
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from rapidfuzz import process
from rapidfuzz.distance import OSA

from correspondance import bounds
from correspondance.errors import InputError
from correspondance.geo import haversine_m

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
class PlaceFacts:
    """What the index knows of a place: its kind, words, position and source ids."""

    kind: str
    name: str
    secondary: str
    category: str
    lat: float
    lon: float
    ids: tuple[str, ...]


@dataclass(frozen=True)
class Place(PlaceFacts):
    """One search result.

    ``secondary`` is data text shown under the name (a stop's routes, a point of interest's
    address, an address's postcode and town); ``category`` is a fixed code the app words
    (``transit_stop``, ``station``, ``street``, ``address``, ``school``...).
    """

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
