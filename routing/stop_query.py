"""Stop-to-stop and point-to-point queries straight from GTFS files, without a city build.

The stages mirror :mod:`routing.plan`: ``load_network`` (once per process) → ``parse_*``
(validate input) → ``access_times`` (one footpath at the start and at the end) →
``transit_search`` (RAPTOR) → ``direct_walk`` → ``describe`` (legs with names and ISO
times) → ``itinerary_json``. Footpaths join distinct stops as the crow flies, or over the
OSM walk network when an extract is given; transfers.txt overrides both.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import math
import pickle
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from correspondance.errors import InputError
from correspondance.geo import WALK_SPEED_M_S, haversine_m
from feeds.gtfs import load_gtfs
from routing.base import BUILD_VERSION, StopLinks, make_footpaths
from routing.errors import NoServiceError
from routing.raptor import (
    FootLeg,
    Footpaths,
    RideLeg,
    TransitJourney,
    run_raptor,
    run_raptor_arrive_by,
)
from routing.streets import StreetNetwork
from routing.timetable import BaseTimetable, DayTimetable, build_base_timetable, crow_footpaths

DEFAULT_WALK_SPEED_M_S = WALK_SPEED_M_S
DEFAULT_MAX_TRANSFER_WALK_M = 400.0
MAX_RIDES = 10
SUPPORTED_MODES = frozenset({"walk", "transit"})
CITY_BUILD_MODES = frozenset(
    {"bike", "bicycle", "drive", "car", "bikeshare", "bike_share", "scooter", "carshare"}
)
# Networks built with an OSM extract are cached (reading the streets takes tens of
# seconds); this many stay in ``<cache_dir>/plan/``, the least recently used go first.
KEPT_NETWORKS = 4
_DEPART = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$")
_NUMBER = r"\s*([-+]?(?:\d+\.?\d*|\.\d+))\s*"
_LAT_LON = re.compile(rf"^{_NUMBER},{_NUMBER}$")


@dataclass(frozen=True)
class StopPoint:
    """An endpoint given as a GTFS ``stop_id``."""

    stop_id: str


@dataclass(frozen=True)
class CoordPoint:
    """An endpoint given as a WGS84 coordinate."""

    lat: float
    lon: float


Endpoint = StopPoint | CoordPoint


@dataclass(frozen=True)
class StopQuery:
    """One question: from, to, and a naive local time (agency timezone) to leave at, or
    with ``arrive_by`` to arrive by."""

    origin: Endpoint
    destination: Endpoint
    depart: dt.datetime
    arrive_by: bool = False


@dataclass(frozen=True, eq=False)
class TransitNetwork:
    """A timetable and its footpaths, loaded once and reused by every query."""

    timetable: BaseTimetable
    footpaths: Footpaths
    walk_speed_m_s: float
    max_transfer_walk_m: float
    zone: ZoneInfo
    walk: StreetNetwork | None = None
    stop_links: StopLinks | None = None


@dataclass(frozen=True)
class Access:
    """Stops reachable on foot from (or to) an endpoint, with the walk in seconds."""

    seconds: dict[int, int]


@dataclass(frozen=True)
class PlaceOut:
    """A leg end: a stop (``stop_id`` set) or the query's own coordinate."""

    stop_id: str | None
    name: str
    lat: float
    lon: float


@dataclass(frozen=True)
class LegOut:
    """One described leg; times are unix seconds."""

    mode: str
    origin: PlaceOut
    destination: PlaceOut
    departure: int
    arrival: int
    route_id: str | None = None
    trip_id: str | None = None
    route_short_name: str | None = None
    headsign: str | None = None


@dataclass(frozen=True)
class ItineraryOut:
    """One option: legs in order; ``departure``/``arrival`` in unix seconds."""

    departure: int
    arrival: int
    transfers: int
    legs: tuple[LegOut, ...]


def load_network(
    gtfs_paths: Sequence[Path],
    osm_path: Path | None = None,
    walk_speed_m_s: float = DEFAULT_WALK_SPEED_M_S,
    max_transfer_walk_m: float = DEFAULT_MAX_TRANSFER_WALK_M,
) -> TransitNetwork:
    """Read the feeds (and the OSM extract, if any) and build timetable and footpaths.

    Parameters
    ----------
    gtfs_paths
        GTFS zip files; each file's stem names its feed (ids that collide get it as prefix).
    osm_path
        An OSM extract: footpaths, access and egress then follow the walk network.
    walk_speed_m_s, max_transfer_walk_m
        Walking speed and the longest footpath between two stops.

    Raises
    ------
    InputError
        If the speed or distance is not a positive finite number.
    feeds.errors.FeedError
        If a feed or the extract is missing, unreadable or invalid.
    """
    if not (math.isfinite(walk_speed_m_s) and walk_speed_m_s > 0):
        raise InputError(f"--walk-speed: {walk_speed_m_s} is not a positive speed in m/s")
    if not (math.isfinite(max_transfer_walk_m) and max_transfer_walk_m >= 0):
        raise InputError(f"--max-transfer-walk: {max_transfer_walk_m} is not a distance in metres")
    ids: list[str] = []
    for path in gtfs_paths:
        stem = path.name.removesuffix(".zip") or "gtfs"
        ids.append(stem if stem not in ids else f"{stem}-{len(ids) + 1}")
    transit = load_gtfs(list(zip(ids, gtfs_paths, strict=True)))
    timetable = build_base_timetable(transit)
    walk: StreetNetwork | None = None
    links: StopLinks | None = None
    if osm_path is None:
        fa, fb, fm = crow_footpaths(timetable, max_transfer_walk_m)
    else:
        from feeds.osm import load_street_graphs
        from routing.base import link_stops, street_footpaths
        from routing.streets import compile_street_graph

        graphs = load_street_graphs(osm_path, modes=("walk",))
        walk = compile_street_graph("walk", graphs["walk"], walk_speed_m_s)
        links = link_stops(walk, timetable)
        fa, fb, fm = street_footpaths(walk, links, max_transfer_walk_m)
    return TransitNetwork(
        timetable=timetable,
        footpaths=make_footpaths(timetable, fa, fb, fm, walk_speed_m_s),
        walk_speed_m_s=walk_speed_m_s,
        max_transfer_walk_m=max_transfer_walk_m,
        zone=ZoneInfo(timetable.timezone),
        walk=walk,
        stop_links=links,
    )


def network_hash(
    gtfs_paths: Sequence[Path],
    osm_path: Path | None,
    walk_speed_m_s: float,
    max_transfer_walk_m: float,
) -> str:
    """Hash of everything a :class:`TransitNetwork` is built from.

    The build code's version, the parameters, and each input file's name (feed ids come
    from file names) and bytes, in the order given.
    """
    digest = hashlib.sha256(
        f"plan:{BUILD_VERSION}:{walk_speed_m_s!r}:{max_transfer_walk_m!r}".encode()
    )
    for path in [*gtfs_paths, *([osm_path] if osm_path is not None else [])]:
        digest.update(b"\0" + path.name.encode() + b"\0")
        if path.is_file():
            with path.open("rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(chunk)
    return digest.hexdigest()[:16]


def load_or_build_network(
    gtfs_paths: Sequence[Path],
    osm_path: Path | None,
    walk_speed_m_s: float,
    max_transfer_walk_m: float,
    cache_dir: Path,
    progress: Callable[[str], None] | None = None,
) -> tuple[TransitNetwork, bool]:
    """:func:`load_network`, cached under ``cache_dir/plan/`` when an OSM extract is given.

    The cache is keyed by :func:`network_hash`, as ``correspondance build`` keys a city's
    base; it is written atomically and a stale or unreadable entry is rebuilt, never
    trusted. Without an extract the network is built every time (reading GTFS alone is
    quick).

    Returns
    -------
    (TransitNetwork, bool)
        The network and whether it came from the cache.

    Raises
    ------
    InputError, feeds.errors.FeedError
        As :func:`load_network`.
    """
    if osm_path is None:
        return load_network(gtfs_paths, None, walk_speed_m_s, max_transfer_walk_m), False
    key = network_hash(gtfs_paths, osm_path, walk_speed_m_s, max_transfer_walk_m)
    path = cache_dir / "plan" / f"network-{key}.pickle"
    if path.is_file():
        try:
            with path.open("rb") as handle:
                network = pickle.load(handle)
            if isinstance(network, TransitNetwork):
                path.touch()  # most recently used
                return network, True
        except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, ValueError):
            pass  # a stale or truncated cache is rebuilt
    if progress is not None:
        progress(f"building the walk network from {osm_path.name} (cached for the next run)")
    network = load_network(gtfs_paths, osm_path, walk_speed_m_s, max_transfer_walk_m)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{id(network)}")
    with tmp.open("wb") as handle:
        pickle.dump(network, handle, protocol=pickle.HIGHEST_PROTOCOL)
    tmp.replace(path)  # atomic: a crash mid-write never leaves a half cache
    entries = sorted(
        path.parent.glob("network-*.pickle"), key=lambda p: p.stat().st_mtime, reverse=True
    )
    for stale in entries[KEPT_NETWORKS:]:
        stale.unlink(missing_ok=True)
    return network, False


def parse_depart(text: str, option: str = "--depart") -> dt.datetime:
    """``YYYY-MM-DDTHH:MM:SS`` → naive local datetime.

    Raises
    ------
    InputError
        If the text is not exactly that form or not a real date and time.
    """
    try:
        if not _DEPART.match(text):
            raise ValueError("expected YYYY-MM-DDTHH:MM:SS")
        return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S")
    except ValueError as exc:
        raise InputError(
            f"{option}: {text!r} is not a local time YYYY-MM-DDTHH:MM:SS ({exc})", field=option
        ) from exc


def parse_lat_lon(text: str, option: str) -> CoordPoint:
    """``LAT,LON`` in degrees → :class:`CoordPoint`.

    Raises
    ------
    InputError
        If the text is not two numbers or they are out of range.
    """
    found = _LAT_LON.match(text)
    if found is None:
        raise InputError(f"{option}: {text!r} is not LAT,LON (two decimal degrees)", field=option)
    lat, lon = float(found[1]), float(found[2])
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise InputError(
            f"{option}: {text!r} is out of range (latitude −90..90, longitude −180..180)",
            field=option,
        )
    return CoordPoint(lat, lon)


def parse_modes(text: str) -> frozenset[str]:
    """``walk,transit`` → the set of modes.

    Raises
    ------
    InputError
        If a mode is unknown, needs a city build (street modes, sharing), or none is given.
    """
    modes = frozenset(m.strip().lower() for m in text.split(",") if m.strip())
    if not modes:
        raise InputError("--modes: no mode given (use walk,transit)", field="--modes")
    needs_city = sorted(modes & CITY_BUILD_MODES)
    if needs_city:
        raise InputError(
            f"--modes: {', '.join(needs_city)} need(s) a city build with live street and "
            "vehicle data: use the HTTP API (correspondance serve); plan accepts walk,transit",
            field="--modes",
        )
    unknown = sorted(modes - SUPPORTED_MODES)
    if unknown:
        raise InputError(
            f"--modes: unknown mode(s) {', '.join(unknown)} (plan accepts walk,transit)",
            field="--modes",
        )
    return modes


def read_queries(network: TransitNetwork, path: Path) -> list[StopQuery]:
    """Queries from a CSV with columns ``from_stop,to_stop,depart``, in file order.

    Every row is checked first; one error lists every problem.

    Raises
    ------
    InputError
        If the file is unreadable, lacks a column, or any row names an unknown stop or a
        malformed time.
    """
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.DictReader(handle))
            columns = set(rows[0]) if rows else set()
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"--queries: cannot read {path} ({exc})", field="--queries") from exc
    missing = {"from_stop", "to_stop", "depart"} - columns
    if rows and missing:
        raise InputError(
            f"--queries: {path} lacks column(s) {', '.join(sorted(missing))}", field="--queries"
        )
    problems: list[str] = []
    queries: list[StopQuery] = []
    known = _stop_ids(network.timetable)
    for line, row in enumerate(rows, start=2):
        here: list[str] = []
        from_stop = (row.get("from_stop") or "").strip()
        to_stop = (row.get("to_stop") or "").strip()
        for stop_id in (from_stop, to_stop):
            if stop_id not in known:
                here.append(f"line {line}: unknown stop_id {stop_id!r}")
        try:
            depart = parse_depart((row.get("depart") or "").strip(), "depart")
        except InputError as exc:
            here.append(f"line {line}: {exc}")
        if here:
            problems += here
            continue
        queries.append(StopQuery(StopPoint(from_stop), StopPoint(to_stop), depart))
    if problems:
        raise InputError(
            f"--queries {path}: {len(problems)} problem(s): " + "; ".join(problems),
            field="--queries",
        )
    return queries


def _stop_ids(timetable: BaseTimetable) -> frozenset[str]:
    return frozenset(str(s) for s in timetable.stop_ids)


def check_endpoint(network: TransitNetwork, endpoint: Endpoint, option: str) -> None:
    """Raise :class:`~routing.errors.UnknownStopError` naming ``option`` for a bad stop_id."""
    if isinstance(endpoint, StopPoint):
        from routing.errors import UnknownStopError

        try:
            network.timetable.stop_index(endpoint.stop_id)
        except UnknownStopError as exc:
            raise UnknownStopError(f"{option}: {exc}") from exc


def station_members(timetable: BaseTimetable, stop: int) -> tuple[int, ...]:
    """A stop and, when it is a station (``parent_station`` of other stops), its stops.

    Returns
    -------
    tuple[int, ...]
        ``stop`` first, then its child stops' indices in feed order.
    """
    return (stop, *_children(timetable).get(stop, ()))


@lru_cache(maxsize=8)
def _children(timetable: BaseTimetable) -> dict[int, tuple[int, ...]]:
    stops = timetable.transit.stops
    if "parent_station" not in stops.columns:
        return {}
    index = {str(s): i for i, s in enumerate(timetable.stop_ids)}
    found: dict[int, list[int]] = {}
    for stop_id, parent in zip(stops["stop_id"].astype(str), stops["parent_station"], strict=True):
        if pd.isna(parent) or str(parent) not in index or stop_id not in index:
            continue
        found.setdefault(index[str(parent)], []).append(index[stop_id])
    return {p: tuple(c) for p, c in found.items()}


def access_times(network: TransitNetwork, endpoint: Endpoint, *, outbound: bool) -> Access:
    """Stops within one footpath of an endpoint and the walk to (or from) each.

    ``outbound`` walks away from the endpoint (access); otherwise towards it (egress). A
    stop endpoint reaches itself in 0 s and its footpath neighbours (transfers.txt
    included); a coordinate reaches stops within ``max_transfer_walk_m``.
    """
    tt = network.timetable
    if isinstance(endpoint, StopPoint):
        stop = tt.stop_index(endpoint.stop_id)
        # a station is its platforms: each is reached in 0 s, never through the station's
        # own transfers.txt minimum time (that is for changing between two rides)
        members = station_members(tt, stop)
        seconds = dict.fromkeys(members, 0)
        fp = network.footpaths
        for member in members:
            if outbound:
                lo, hi = int(fp.offset[member]), int(fp.offset[member + 1])
                near, cost = fp.to[lo:hi], fp.duration[lo:hi]
            else:
                into = fp.to == member
                near = np.searchsorted(fp.offset, np.flatnonzero(into), side="right") - 1
                cost = fp.duration[into]
            for s, c in zip(near.tolist(), cost.tolist(), strict=True):
                if c >= 0 and int(s) not in members and c < seconds.get(int(s), c + 1):
                    seconds[int(s)] = int(c)
        return Access(seconds)
    costs = _walk_seconds_to_stops(network, endpoint)
    ok = np.flatnonzero(np.isfinite(costs))
    return Access({int(s): math.ceil(float(costs[s])) for s in ok})


def _walk_seconds_to_stops(network: TransitNetwork, point: CoordPoint) -> NDArray[np.float64]:
    """Seconds from a coordinate to every stop (inf beyond ``max_transfer_walk_m``)."""
    tt = network.timetable
    speed = network.walk_speed_m_s
    if network.walk is None or network.stop_links is None:
        metres = haversine_m(point.lat, point.lon, tt.stop_lat, tt.stop_lon)
        return np.where(metres <= network.max_transfer_walk_m, metres / speed, np.inf)
    walk, links = network.walk, network.stop_links
    # The multi-source pattern of routing.plan.access_egress, bounded by the footpath limit.
    snap = walk.snap(point.lat, point.lon, network.max_transfer_walk_m)
    limit_m = network.max_transfer_walk_m
    e = snap.edge
    sources = np.array([walk.tail[e], walk.head[e]], np.int64)
    cost = np.array(
        [
            snap.distance_m + snap.fraction * walk.length_m[e],
            snap.distance_m + (1 - snap.fraction) * walk.length_m[e],
        ]
    )
    dist, _pred = walk.shortest_path(walk.length_m, sources, cost, np.zeros(0, np.int64), limit_m)
    out = np.full(tt.n_stops, np.inf)
    linked = np.flatnonzero(links.edge >= 0)
    le = links.edge[linked]
    via_tail = dist[walk.tail[le]] + links.fraction[linked] * walk.length_m[le]
    via_head = dist[walk.head[le]] + (1 - links.fraction[linked]) * walk.length_m[le]
    metres = np.minimum(via_tail, via_head) + links.offset_m[linked]
    same_edge = le == e
    along = np.abs(links.fraction[linked] - snap.fraction) * walk.length_m[e]
    metres = np.where(
        same_edge, np.minimum(metres, snap.distance_m + along + links.offset_m[linked]), metres
    )
    ok = metres <= limit_m
    out[linked[ok]] = metres[ok] / speed
    return out


def direct_walk_seconds(network: TransitNetwork, query: StopQuery) -> int | None:
    """Seconds to walk from origin to destination with no ride, or None if out of reach.

    The same stop is 0 s; two stops use their footpath (so transfers.txt applies); any
    other pair walks at most ``max_transfer_walk_m``.
    """
    o, d = query.origin, query.destination
    tt = network.timetable
    if isinstance(o, StopPoint) and isinstance(d, StopPoint):
        a, b = tt.stop_index(o.stop_id), tt.stop_index(d.stop_id)
        if a == b:
            return 0
        return access_times(network, o, outbound=True).seconds.get(b)
    if isinstance(d, StopPoint):
        return access_times(network, o, outbound=True).seconds.get(tt.stop_index(d.stop_id))
    if isinstance(o, StopPoint):
        return access_times(network, d, outbound=False).seconds.get(tt.stop_index(o.stop_id))
    if network.walk is None:
        metres = float(haversine_m(o.lat, o.lon, d.lat, d.lon))
    else:
        metres = _street_metres(network, o, d)
    if metres > network.max_transfer_walk_m:
        return None
    return math.ceil(metres / network.walk_speed_m_s)


def _street_metres(network: TransitNetwork, o: CoordPoint, d: CoordPoint) -> float:
    walk = network.walk
    assert walk is not None  # only called with an extract
    a = walk.snap(o.lat, o.lon, network.max_transfer_walk_m)
    b = walk.snap(d.lat, d.lon, network.max_transfer_walk_m)
    ea, eb = a.edge, b.edge
    sources = np.array([walk.tail[ea], walk.head[ea]], np.int64)
    cost = np.array(
        [
            a.distance_m + a.fraction * walk.length_m[ea],
            a.distance_m + (1 - a.fraction) * walk.length_m[ea],
        ]
    )
    targets = np.array([walk.tail[eb], walk.head[eb]], np.int64)
    limit = network.max_transfer_walk_m
    dist, _pred = walk.shortest_path(walk.length_m, sources, cost, targets, limit)
    best = min(
        dist[walk.tail[eb]] + b.fraction * walk.length_m[eb],
        dist[walk.head[eb]] + (1 - b.fraction) * walk.length_m[eb],
    )
    if ea == eb:
        best = min(best, a.distance_m + abs(a.fraction - b.fraction) * walk.length_m[ea])
    return float(best + b.distance_m)


def local_to_unix(network: TransitNetwork, local: dt.datetime) -> int:
    """A naive local time in the agency timezone → unix seconds (earlier of a DST repeat)."""
    return int(local.replace(tzinfo=network.zone).timestamp())


def day_timetable(network: TransitNetwork, local: dt.datetime) -> DayTimetable | None:
    """The day timetable for a local departure; None if nothing runs that date.

    Raises
    ------
    NoServiceError
        If the date lies outside the feeds' service period.
    """
    lo, hi = network.timetable.validity
    day = local.date()
    if not lo <= day <= hi:
        raise NoServiceError(
            f"--depart: {day.isoformat()} is outside the feeds' service period "
            f"({lo.isoformat()} to {hi.isoformat()})"
        )
    try:
        return network.timetable.day(day)
    except NoServiceError:
        return None  # a date inside the period with no service: no transit itinerary


def transit_search(
    network: TransitNetwork,
    query: StopQuery,
    access: Access,
    egress: Access,
    max_rides: int = MAX_RIDES,
) -> tuple[list[TransitJourney], DayTimetable | None]:
    """RAPTOR from the access stops (at depart + walk) to the egress stops; arriving by
    the query's time, the latest departures (:func:`routing.raptor.run_raptor_arrive_by`)."""
    day = day_timetable(network, query.depart)
    if day is None:
        return [], None
    t0 = local_to_unix(network, query.depart) - day.origin_unix
    if query.arrive_by:
        journeys = run_raptor_arrive_by(
            day,
            network.timetable.n_stops,
            network.footpaths,
            network.timetable.min_transfer_s,
            access.seconds,
            egress.seconds,
            t0,
            max_rides,
        )
        return journeys, day
    sources = {s: t0 + c for s, c in access.seconds.items()}
    journeys = run_raptor(
        day,
        network.timetable.n_stops,
        network.footpaths,
        network.timetable.min_transfer_s,
        sources,
        egress.seconds,
        max_rides,
    )
    return journeys, day


def _place(network: TransitNetwork, endpoint: Endpoint, label: str) -> PlaceOut:
    if isinstance(endpoint, StopPoint):
        return _stop_place(network, network.timetable.stop_index(endpoint.stop_id))
    return PlaceOut(None, label, endpoint.lat, endpoint.lon)


def _stop_place(network: TransitNetwork, stop: int) -> PlaceOut:
    tt = network.timetable
    return PlaceOut(
        str(tt.stop_ids[stop]),
        str(tt.stop_names[stop]),
        float(tt.stop_lat[stop]),
        float(tt.stop_lon[stop]),
    )


def _footpath_seconds(network: TransitNetwork, a: int, b: int) -> int:
    fp = network.footpaths
    lo, hi = int(fp.offset[a]), int(fp.offset[a + 1])
    hits = np.flatnonzero(fp.to[lo:hi] == b)
    return int(fp.duration[lo + int(hits[0])])


def describe(
    network: TransitNetwork,
    query: StopQuery,
    journey: TransitJourney,
    day: DayTimetable,
    access: Access,
) -> ItineraryOut:
    """Turn a RAPTOR journey into legs: walk to the first stop, rides, footpaths, walk on.

    The access walk ends when the first ride leaves; footpaths start when a ride arrives.
    """
    tt = network.timetable
    origin_place = _place(network, query.origin, "Origin")
    destination_place = _place(network, query.destination, "Destination")
    legs: list[LegOut] = []
    clock = -1
    for leg in journey.legs:
        if isinstance(leg, FootLeg):
            secs = _footpath_seconds(network, leg.from_stop, leg.to_stop)
            legs.append(
                LegOut(
                    "walk",
                    _stop_place(network, leg.from_stop),
                    _stop_place(network, leg.to_stop),
                    day.origin_unix + clock,
                    day.origin_unix + clock + secs,
                )
            )
            clock += secs
            continue
        assert isinstance(leg, RideLeg)
        p = leg.pattern
        s_lo = int(day.pat_stop_off[p])
        n = int(day.pat_stop_off[p + 1]) - s_lo
        row = int(day.pat_time_off[p]) + (leg.trip - int(day.pat_trip_off[p])) * n
        dep = int(day.dep[row + leg.board_pos])
        arr = int(day.arr[row + leg.alight_pos])
        board = int(day.pat_stops[s_lo + leg.board_pos])
        alight = int(day.pat_stops[s_lo + leg.alight_pos])
        if not legs:
            walk_s = access.seconds[journey.access_stop]
            # a station's own platform is where the trip starts: no leg into it
            if origin_place.stop_id != str(tt.stop_ids[board]) and not (
                walk_s == 0 and board in _members(network, query.origin)
            ):
                legs.append(
                    LegOut(
                        "walk",
                        origin_place,
                        _stop_place(network, board),
                        day.origin_unix + dep - walk_s,
                        day.origin_unix + dep,
                    )
                )
        trip = int(day.trip_base[leg.trip])
        route = int(tt.trip_route[trip])
        legs.append(
            LegOut(
                mode=str(tt.route_mode[route]),
                origin=_stop_place(network, board),
                destination=_stop_place(network, alight),
                departure=day.origin_unix + dep,
                arrival=day.origin_unix + arr,
                route_id=str(tt.route_ids[route]),
                trip_id=str(tt.trip_ids[trip]),
                route_short_name=str(tt.route_short[route]) or None,
                headsign=str(tt.trip_headsign[trip]) or None,
            )
        )
        clock = arr
    if destination_place.stop_id != str(tt.stop_ids[journey.egress_stop]) and not (
        journey.arrival == clock and journey.egress_stop in _members(network, query.destination)
    ):
        legs.append(
            LegOut(
                "walk",
                _stop_place(network, journey.egress_stop),
                destination_place,
                day.origin_unix + clock,
                day.origin_unix + journey.arrival,
            )
        )
    return ItineraryOut(
        departure=legs[0].departure,
        arrival=legs[-1].arrival,
        transfers=journey.rides - 1,
        legs=tuple(legs),
    )


def _members(network: TransitNetwork, endpoint: Endpoint) -> tuple[int, ...]:
    if not isinstance(endpoint, StopPoint):
        return ()
    return station_members(network.timetable, network.timetable.stop_index(endpoint.stop_id))


def walk_itinerary(network: TransitNetwork, query: StopQuery, seconds: int) -> ItineraryOut:
    """The walk-only option (no leg at all when origin and destination are one stop)."""
    start = local_to_unix(network, query.depart) - (seconds if query.arrive_by else 0)
    origin = _place(network, query.origin, "Origin")
    destination = _place(network, query.destination, "Destination")
    if seconds == 0 and origin == destination:
        return ItineraryOut(start, start, 0, ())
    return ItineraryOut(
        start, start + seconds, 0, (LegOut("walk", origin, destination, start, start + seconds),)
    )


def answer(
    network: TransitNetwork,
    query: StopQuery,
    modes: frozenset[str] = SUPPORTED_MODES,
    max_rides: int = MAX_RIDES,
) -> list[ItineraryOut]:
    """Every itinerary for a query, earliest arrival first (latest departure first when
    arriving by the query's time).

    The RAPTOR Pareto set over (arrival, transfers) plus the walk-only option; transit
    options that arrive no earlier than walking are dropped (walking has no transfer).

    Raises
    ------
    UnknownStopError
        If an endpoint names an unknown stop.
    NoServiceError
        If the date is outside the feeds' service period.
    NoStreetNearbyError
        With an OSM extract, if a coordinate is far from any walkable street.
    """
    o, d = query.origin, query.destination
    tt = network.timetable
    if (
        isinstance(o, StopPoint)
        and isinstance(d, StopPoint)
        and tt.stop_index(o.stop_id) == tt.stop_index(d.stop_id)
    ):
        return [walk_itinerary(network, query, 0)]  # already there, whatever the modes
    walk_s = direct_walk_seconds(network, query) if "walk" in modes else None
    options: list[ItineraryOut] = []
    if walk_s is not None:
        options.append(walk_itinerary(network, query, walk_s))
    if "transit" in modes and walk_s != 0:
        access = access_times(network, query.origin, outbound=True)
        egress = access_times(network, query.destination, outbound=False)
        journeys, day = transit_search(network, query, access, egress, max_rides)
        walk = options[0] if options else None
        for journey in journeys:
            assert day is not None
            itinerary = describe(network, query, journey, day, access)
            if walk is None:
                options.append(itinerary)
            elif query.arrive_by and itinerary.departure > walk.departure:
                options.append(itinerary)  # arriving by a time: leaving later than walking
            elif not query.arrive_by and itinerary.arrival < walk.arrival:
                options.append(itinerary)
    if query.arrive_by:
        return sorted(options, key=lambda i: (-i.departure, i.transfers, i.arrival))
    return sorted(options, key=lambda i: (i.arrival, i.transfers, -i.departure))


def _iso(network: TransitNetwork, unix: int) -> str:
    return dt.datetime.fromtimestamp(unix, network.zone).isoformat()


def _place_json(place: PlaceOut) -> dict[str, Any]:
    return {"stop_id": place.stop_id, "name": place.name, "lat": place.lat, "lon": place.lon}


def itinerary_json(network: TransitNetwork, itinerary: ItineraryOut) -> dict[str, Any]:
    """An itinerary as the CLI's JSON object (times ISO 8601 with the agency's offset)."""
    return {
        "departure": _iso(network, itinerary.departure),
        "arrival": _iso(network, itinerary.arrival),
        "duration_s": itinerary.arrival - itinerary.departure,
        "transfers": itinerary.transfers,
        "legs": [
            {
                "mode": leg.mode,
                "from": _place_json(leg.origin),
                "to": _place_json(leg.destination),
                "departure": _iso(network, leg.departure),
                "arrival": _iso(network, leg.arrival),
                "route_id": leg.route_id,
                "trip_id": leg.trip_id,
                "route_short_name": leg.route_short_name,
                "headsign": leg.headsign,
            }
            for leg in itinerary.legs
        ],
    }


def answer_json(network: TransitNetwork, itineraries: list[ItineraryOut]) -> dict[str, Any]:
    """``{"itineraries": [...]}`` for one query."""
    return {"itineraries": [itinerary_json(network, i) for i in itineraries]}
