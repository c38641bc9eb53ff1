"""The static base of a city: street networks, timetable, stop links and footpaths.

Built once from the city's feeds, cached on disk keyed by a hash of the input files
and the build code's version, and loaded by unpickling arrays on the next start.
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from correspondance.cities import CityConfig
from feeds.gtfs import load_gtfs
from feeds.gtfs_checks import FeedNotice
from feeds.osm import STREET_MODES, load_street_graphs
from feeds.osm_buslanes import load_bus_lanes
from feeds.osm_pois import Parkings, load_parkings
from routing.cache import load_or_build_pickle
from routing.errors import BuildError, NoStreetNearbyError
from routing.kernels import bounded_many_to_many
from routing.raptor import Footpaths
from routing.streets import StreetNetwork, compile_street_graph
from routing.timetable import BaseTimetable, build_base_timetable
from routing.transit_geometry import TransitShapes, build_transit_shapes
from routing.transit_streets import TransitStreets, match_transit_streets

BUILD_VERSION = "12"  # bump when the cached layout or build logic changes
STOP_SNAP_M = 300.0


@dataclass(frozen=True, eq=False)
class StopLinks:
    """Each stop attached to the walk network: edge, fraction along it, offset metres.

    ``edge`` is −1 for stops with no walkable street within reach (outside the extract).
    """

    edge: NDArray[np.int64]
    fraction: NDArray[np.float64]
    offset_m: NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class CityBase:
    """Everything routing needs for one city that does not change while running."""

    city: CityConfig
    streets: dict[str, StreetNetwork]
    timetable: BaseTimetable
    stop_links: StopLinks
    footpath_from: NDArray[np.int64]
    footpath_to: NDArray[np.int64]
    footpath_m: NDArray[np.float64]
    input_hash: str
    build_seconds: float
    parkings: Parkings
    warnings: tuple[str, ...] = ()
    # faults of the GTFS feeds that reading repaired (``feeds.gtfs_checks.tidy_feed``)
    notices: tuple[FeedNotice, ...] = ()
    # street-running transit matched to drive edges (``routing.transit_streets``)
    transit_streets: TransitStreets | None = None
    # every pattern's shapes.txt line and its stops along it (``routing.transit_geometry``)
    transit_shapes: TransitShapes | None = None
    _footpaths: dict[float, Footpaths] = field(default_factory=dict, repr=False)

    def footpaths(self, walk_speed_m_s: float) -> Footpaths:
        """Footpaths with durations at a walk speed (cached per speed)."""
        cached = self._footpaths.get(walk_speed_m_s)
        if cached is None:
            cached = make_footpaths(
                self.timetable,
                self.footpath_from,
                self.footpath_to,
                self.footpath_m,
                walk_speed_m_s,
            )
            self._footpaths[walk_speed_m_s] = cached
        return cached


def make_footpaths(
    timetable: BaseTimetable,
    src: NDArray[np.int64],
    dst: NDArray[np.int64],
    metres: NDArray[np.float64],
    walk_speed_m_s: float,
) -> Footpaths:
    """CSR footpaths: ceil(metres / speed) seconds, overridden by transfers.txt."""
    duration = np.ceil(metres / walk_speed_m_s).astype(np.int64)
    pairs = {(int(a), int(b)): int(d) for a, b, d in zip(src, dst, duration, strict=True)}
    for a, b, secs in zip(
        timetable.transfer_from, timetable.transfer_to, timetable.transfer_s, strict=True
    ):
        pairs[(int(a), int(b))] = -1 if secs < 0 else int(secs)
    n = timetable.n_stops
    if not pairs:
        return Footpaths(np.zeros(n + 1, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64))
    keys = np.array(list(pairs), np.int64)
    values = np.array(list(pairs.values()), np.int64)
    order = np.lexsort((keys[:, 1], keys[:, 0]))
    keys, values = keys[order], values[order]
    offset = np.zeros(n + 1, np.int64)
    np.add.at(offset, keys[:, 0] + 1, 1)
    return Footpaths(np.cumsum(offset), keys[:, 1].copy(), values)


def input_hash(city: CityConfig) -> str:
    """Hash of the city config and every input file's bytes."""
    digest = hashlib.sha256(BUILD_VERSION.encode())
    # live feeds do not change the static base: editing them must not force a rebuild
    digest.update(city.model_dump_json(exclude={"gbfs", "gtfs_rt"}).encode())
    for path in sorted(
        {city.resolve(city.osm.path), *(city.resolve(g.path) for g in city.gtfs if g.path)}
    ):
        digest.update(path.name.encode())
        if path.is_file():
            with path.open("rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(chunk)
    return digest.hexdigest()[:16]


def link_stops(walk: StreetNetwork, timetable: BaseTimetable) -> StopLinks:
    """Attach every stop to its nearest walkable street segment."""
    n = timetable.n_stops
    edge = np.full(n, -1, np.int64)
    fraction = np.zeros(n)
    offset = np.zeros(n)
    for i in range(n):
        try:
            snap = walk.snap(
                float(timetable.stop_lat[i]), float(timetable.stop_lon[i]), STOP_SNAP_M
            )
        except NoStreetNearbyError:
            continue
        edge[i], fraction[i], offset[i] = snap.edge, snap.fraction, snap.distance_m
    return StopLinks(edge, fraction, offset)


def street_footpaths(
    walk: StreetNetwork, links: StopLinks, max_m: float
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]:
    """Stop pairs within ``max_m`` walking metres over the walk network."""
    linked = np.flatnonzero(links.edge >= 0)
    e = links.edge[linked]
    length = walk.length_m[e]
    to_tail = links.fraction[linked] * length
    to_head = (1 - links.fraction[linked]) * length
    use_tail = to_tail <= to_head
    anchor = np.where(use_tail, walk.tail[e], walk.head[e])
    anchor_off = np.where(use_tail, to_tail, to_head) + links.offset_m[linked]
    nodes, node_group = np.unique(anchor, return_inverse=True)
    node_target = np.full(walk.n_nodes, -1, np.int64)
    node_target[nodes] = np.arange(len(nodes))
    src_i, dst_i, dist = bounded_many_to_many(
        walk.indptr, walk.head, walk.length_m, nodes, max_m, node_target
    )
    members: dict[int, list[int]] = {}
    for stop_pos, group in enumerate(node_group):
        members.setdefault(int(group), []).append(stop_pos)
    out_a: list[int] = []
    out_b: list[int] = []
    out_d: list[float] = []
    for gs, gt, d in zip(src_i, dst_i, dist, strict=True):
        for a in members[int(gs)]:
            for b in members[int(gt)]:
                if a == b:
                    continue
                total = anchor_off[a] + d + anchor_off[b]
                if total <= max_m:
                    out_a.append(int(linked[a]))
                    out_b.append(int(linked[b]))
                    out_d.append(float(total))
    return np.array(out_a, np.int64), np.array(out_b, np.int64), np.array(out_d)


def build_city(
    city: CityConfig,
    max_transfer_walk_m: float = 400.0,
    progress: Callable[[str], None] | None = None,
) -> CityBase:
    """Build a city's base from its feeds.

    Raises
    ------
    feeds.errors.FeedError
        If a feed file is missing, unreadable or invalid (every problem listed).
    """
    say = progress or (lambda _msg: None)
    started = time.perf_counter()
    for source in city.gtfs:
        if source.url is not None:
            # build reads files only (no network at build or run time): say how to get one
            raise BuildError(
                f"feed {source.id!r}: GTFS feeds are read from files, and `correspondance "
                f"build` does not download URLs. Download it first, e.g. `curl -fL -o "
                f"{city.folder / (source.id + '.zip')} '{source.url}'`, then replace its "
                f'`url = ...` with `path = "{source.id}.zip"` in {city.folder / "city.toml"}'
            )
    say("reading GTFS feeds")
    transit = load_gtfs([(g.id, city.resolve(g.path or "")) for g in city.gtfs])
    timetable = build_base_timetable(transit)
    graphs = load_street_graphs(city.resolve(city.osm.path), STREET_MODES, progress=say)
    say("compiling street networks to arrays")
    streets: dict[str, StreetNetwork] = {
        mode: compile_street_graph(mode, graph) for mode, graph in graphs.items()
    }
    say("linking stops to the walk network")
    links = link_stops(streets["walk"], timetable)
    unlinked = int(np.sum(links.edge < 0))
    warnings = list(transit.warnings)
    if unlinked:
        warnings.append(
            f"{unlinked} of {timetable.n_stops} stops are farther than "
            f"{STOP_SNAP_M:.0f} m from any walkable street (outside the OSM extract)"
        )
    say("computing footpaths between stops")
    fa, fb, fm = street_footpaths(streets["walk"], links, max_transfer_walk_m)
    say("matching buses to streets")
    transit_streets = match_transit_streets(
        streets["drive"], timetable, load_bus_lanes(city.resolve(city.osm.path))
    )
    transit_shapes = build_transit_shapes(timetable)
    say("finding car parks")
    parkings = load_parkings(city.resolve(city.osm.path))
    return CityBase(
        city=city,
        parkings=parkings,
        streets=streets,
        timetable=timetable,
        stop_links=links,
        footpath_from=fa,
        footpath_to=fb,
        footpath_m=fm,
        input_hash=input_hash(city),
        build_seconds=time.perf_counter() - started,
        warnings=tuple(warnings),
        notices=transit.notices,
        transit_streets=transit_streets,
        transit_shapes=transit_shapes,
    )


def cache_path(cache_dir: Path, city: CityConfig) -> Path:
    """Where a city's base is cached for its current inputs."""
    return cache_dir / city.id / f"base-{input_hash(city)}.pickle"


def load_or_build(
    city: CityConfig,
    cache_dir: Path,
    max_transfer_walk_m: float = 400.0,
    progress: Callable[[str], None] | None = None,
    rebuild: bool = False,
) -> tuple[CityBase, bool]:
    """The city's base from cache, building (and caching) it if needed.

    Returns
    -------
    (CityBase, bool)
        The base and whether it came from the cache.
    """
    base, cached = load_or_build_pickle(
        cache_path(cache_dir, city),
        CityBase,
        lambda: build_city(city, max_transfer_walk_m, progress),
        "base-*.pickle",
        rebuild,
    )
    # the hash leaves live feeds out, so the cached config may name other ones:
    # the config read now is the one that holds (a new GTFS-RT feed is served)
    if cached and base.city != city:
        base = dataclasses.replace(base, city=city)
    return base, cached
