"""The GTFS-only network of the ``plan`` command: timetable and footpaths read straight from
GTFS files (and an optional OSM extract), without a city build, and the questions asked of
it (:class:`StopQuery`: stop or coordinate endpoints and a local time).

The planner stages answer those questions like city requests: access and egress walks in
:mod:`routing.plan_access`, the search in :mod:`routing.plan_search`, legs of the one
itinerary model in :mod:`routing.plan_assemble`, the pipeline in :func:`routing.plan.answer`.
Footpaths join distinct stops as the crow flies, or over the OSM walk network when an
extract is given; transfers.txt overrides both.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd

from correspondance.errors import InputError
from correspondance.geo import WALK_SPEED_M_S
from feeds.gtfs import load_gtfs
from routing.base import BUILD_VERSION, StopLinks, make_footpaths
from routing.errors import NoServiceError
from routing.raptor import Footpaths
from routing.streets import StreetNetwork
from routing.timetable import BaseTimetable, DayTimetable, build_base_timetable, crow_footpaths

DEFAULT_WALK_SPEED_M_S = WALK_SPEED_M_S
DEFAULT_MAX_TRANSFER_WALK_M = 400.0
MAX_RIDES = 10
SUPPORTED_MODES = frozenset({"walk", "transit"})
# Networks built with an OSM extract are cached (reading the streets takes tens of
# seconds); this many stay in ``<cache_dir>/plan/``, the least recently used go first.
KEPT_NETWORKS = 4


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
