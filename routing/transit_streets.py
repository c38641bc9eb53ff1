"""Buses share the road: street-running transit matched to drive edges, and what live
congestion and closures do to it.

At build (:func:`match_transit_streets`), every pattern of a street-running route (bus,
trolleybus, coach: ``STREET_RUNNING_MODES``) is matched to the drive edges it uses, segment by
segment (stop k → stop k + 1): along its ``shapes.txt`` line when the feed has one (the
shortest drive path that stays within ``CORRIDOR_M`` of the shape, leaving it only at a
``OFF_CORRIDOR_PENALTY`` times higher cost), else along the fastest drive path between the
stops. The result is an index both ways: segment → edges and edge → segments, so a change
on an edge finds the trips it touches without a scan.

Live (:func:`street_effects`), once per overlay version and never per query, the drive
multipliers become, per pattern:

- a *delay that grows along the trip*: each segment adds what its edges lose to congestion,
  ``Σ base_time × (multiplier − 1)``, so a bus is late at every stop after a jam by the jam's
  cost (a bus never looks faster than the traffic it sits in);
- for a closure: the stops *on the closed street* (those whose own street, the edge into or
  out of the stop, is an OSM way with a closed edge on the blocked stretch) and the stops
  between two blocked segments are not served, and the bus takes the fastest way around the
  blocked stretch (its extra time is the delay); with no way around within
  ``MAX_DETOUR_S`` more, every later stop of the trip is unservable.

Edges with a reserved bus lane in their direction (OSM ``busway``, ``lanes:bus``, ``busway:*``,
``bus:lanes``, psv lanes; :mod:`feeds.osm_buslanes`) are exempt from congestion. A closure
closes them too: a closed street is closed to buses. The day's timetable applies the effects
(:meth:`routing.timetable.BaseTimetable.day`), cached per distinct set of effects.

Congestion is the state *now* and, like a car leg's, applies to any departure time asked for.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray
from scipy.spatial import cKDTree

from correspondance.geo import haversine_m
from feeds.osm_buslanes import BusLaneWay
from routing.kernels import dijkstra
from routing.streets import StreetNetwork
from routing.timetable import BaseTimetable

if TYPE_CHECKING:
    from routing.base import CityBase
    from routing.overlay import LiveOverlay

STREET_RUNNING_MODES = frozenset({"bus", "trolleybus", "coach"})
MAX_STOP_TO_NODE_M = 150.0  # a stop farther from any drive node is not matched
CORRIDOR_M = 25.0  # drive edges within this of the shape are on the bus's way
OFF_CORRIDOR_PENALTY = 20.0
SAMPLE_M = 10.0  # spacing of the points sampled along streets
SHAPE_SAMPLE_M = 20.0  # and along shapes (a street on the shape is within 10 m of one)
MAX_DETOUR_S = 900.0  # a way around a closure costing more than this is no way around


def _rejected(path_m: float, straight_m: float) -> bool:
    """A matched path much longer than the stops' distance is a failed match, not a route."""
    return path_m > 3.0 * straight_m + 500.0


@dataclass(frozen=True, eq=False)
class TransitStreets:
    """Street-running patterns matched to drive edges (built once, cached with the base).

    Positions are flat pattern positions, laid out as ``BaseTimetable.pat_stop_off``: the
    segment at position ``f`` runs from that stop to the next stop of its pattern (the last
    stop of a pattern has an empty one).
    """

    running: NDArray[np.bool_]  # per base pattern: street-running and matched
    from_shape: NDArray[np.bool_]  # per base pattern: matched along shapes.txt
    flat_pattern: NDArray[np.int64]  # per flat position: its pattern
    stop_node: NDArray[np.int64]  # per flat position: the drive node of the stop, or -1
    seg_off: NDArray[np.int64]  # CSR over flat positions → ``seg_edges``
    seg_edges: NDArray[np.int64]
    edge_off: NDArray[np.int64]  # CSR over drive edges → ``edge_segs`` (flat positions)
    edge_segs: NDArray[np.int64]
    exempt: NDArray[np.bool_]  # per drive edge: a reserved bus lane in its direction

    def __getstate__(self) -> dict[str, Any]:
        # the live cache (``_last_effects``) is never part of the built base
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}

    def segment_edges(self, position: int) -> NDArray[np.int64]:
        """Drive edges of the segment leaving flat position ``position``, in travel order."""
        return self.seg_edges[self.seg_off[position] : self.seg_off[position + 1]]

    def segments_using(self, edges: NDArray[np.int64]) -> NDArray[np.int64]:
        """Flat positions whose segment uses any of ``edges`` (sorted, unique)."""
        edges = np.asarray(edges, np.int64)
        if not len(edges):
            return np.zeros(0, np.int64)
        starts, ends = self.edge_off[edges], self.edge_off[edges + 1]
        counts = ends - starts
        total = int(counts.sum())
        if not total:
            return np.zeros(0, np.int64)
        run_start = np.repeat(starts - (np.cumsum(counts) - counts), counts)
        return np.unique(self.edge_segs[run_start + np.arange(total)])


@dataclass(frozen=True, eq=False)
class StreetEffects:
    """What the live drive multipliers do to street-running transit, per base pattern.

    Equal (and hashed) by content, so a new overlay version with the same effects reuses the
    cached day timetable.
    """

    delays: Mapping[int, NDArray[np.int64]]  # pattern → seconds late at each stop position
    skips: Mapping[int, tuple[int, ...]]  # pattern → stop positions not served
    key: bytes = field(default=b"")

    def __hash__(self) -> int:
        return hash(self.key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StreetEffects) and other.key == self.key

    def delay_at(self, pattern: int, position: int) -> int:
        """Seconds late at a stop position of a base pattern (0 when untouched)."""
        late = self.delays.get(pattern)
        return int(late[position]) if late is not None else 0


# --------------------------------------------------------------------------- build


def _densify(
    lon: NDArray[np.float64],
    lat: NDArray[np.float64],
    offsets: NDArray[np.int64],
    step_m: float,
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Points at most ``step_m`` apart along many polylines at once (vertices included).

    ``offsets`` delimits the polylines in ``lon``/``lat`` (CSR). Returns the points as
    (lon, lat) rows and, for each, the index of its polyline.
    """
    owner_v = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    if len(lon) == 0:
        return np.zeros((0, 2)), np.zeros(0, np.int64)
    same = owner_v[:-1] == owner_v[1:]  # a step inside one polyline (not to the next)
    steps = np.flatnonzero(same)
    d = haversine_m(lat[steps], lon[steps], lat[steps + 1], lon[steps + 1])
    k = np.maximum(1, np.ceil(d / step_m).astype(np.int64))
    at = np.repeat(steps, k)
    t = (np.arange(int(k.sum())) - np.repeat(np.cumsum(k) - k, k) + 1) / np.repeat(k, k)
    inner = np.column_stack(
        [lon[at] + t * (lon[at + 1] - lon[at]), lat[at] + t * (lat[at + 1] - lat[at])]
    )
    firsts = offsets[:-1][np.diff(offsets) > 0]
    points = np.concatenate([np.column_stack([lon[firsts], lat[firsts]]), inner])
    owners = np.concatenate([owner_v[firsts], owner_v[at]]).astype(np.int64)
    return points, owners


def _samples(
    lon: NDArray[np.float64], lat: NDArray[np.float64], step_m: float
) -> NDArray[np.float64]:
    """Points at most ``step_m`` apart along one polyline, as (lon, lat) rows."""
    points, _ = _densify(lon, lat, np.array([0, len(lon)], np.int64), step_m)
    return points


class _Metres:
    """Equirectangular metres around a network's mean latitude (for KD-trees)."""

    def __init__(self, drive: StreetNetwork) -> None:
        self.cos = float(np.cos(np.radians(np.mean(drive.node_lat)))) if drive.n_nodes else 1.0

    def project(self, lon: NDArray[np.float64], lat: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.column_stack([lon * 111_320.0 * self.cos, lat * 111_320.0])


class _EdgeSamples:
    """Points every ``SAMPLE_M`` along every drive edge, in a KD-tree (metres)."""

    def __init__(self, drive: StreetNetwork) -> None:
        self.metres = _Metres(drive)
        points, self.edge = _densify(drive.geom_lon, drive.geom_lat, drive.geom_offset, SAMPLE_M)
        self.tree = cKDTree(self.project(points))

    def project(self, lonlat: NDArray[np.float64]) -> NDArray[np.float64]:
        return self.metres.project(lonlat[:, 0], lonlat[:, 1])

    def near(self, lonlat: NDArray[np.float64], radius_m: float) -> NDArray[np.int64]:
        """Edges with a sample within ``radius_m`` of any of the points."""
        hits = self.tree.query_ball_point(self.project(lonlat), radius_m, return_sorted=False)
        flat = np.fromiter(itertools.chain.from_iterable(hits), np.int64)
        return np.unique(self.edge[flat])


def _pattern_shapes(timetable: BaseTimetable) -> dict[int, tuple[str, str]]:
    """Base pattern → (feed_id, shape_id): the shape most of its trips follow."""
    trips = timetable.transit.trips
    if "shape_id" not in trips.columns:
        return {}
    known = trips[trips["shape_id"].notna()]
    shape_of = {
        str(t): (str(f), str(s))
        for t, f, s in zip(known["trip_id"], known["feed_id"], known["shape_id"], strict=True)
        if str(s)
    }
    votes: dict[int, dict[tuple[str, str], int]] = {}
    for index, trip_id in enumerate(timetable.trip_ids):
        shape = shape_of.get(str(trip_id))
        if shape is not None:
            tally = votes.setdefault(int(timetable.trip_pattern[index]), {})
            tally[shape] = tally.get(shape, 0) + 1
    return {p: max(tally, key=lambda s: tally[s]) for p, tally in votes.items()}


def shape_points(
    timetable: BaseTimetable, feed_id: str, shape_id: str
) -> tuple[NDArray[np.float64], NDArray[np.float64]] | None:
    """A shape's (lon, lat) points in ``shape_pt_sequence`` order, or None."""
    return _shape_table(timetable).get((feed_id, shape_id))


@lru_cache(maxsize=4)
def _shape_table(
    timetable: BaseTimetable,
) -> dict[tuple[str, str], tuple[NDArray[np.float64], NDArray[np.float64]]]:
    """Every shape of every feed, read once: (feed_id, shape_id) → (lon, lat)."""
    table: dict[tuple[str, str], tuple[NDArray[np.float64], NDArray[np.float64]]] = {}
    for feed_id, feed in timetable.transit.feeds.items():
        shapes = getattr(feed, "shapes", None)
        if shapes is None or shapes.empty:
            continue
        ordered = shapes.assign(shape_id=shapes["shape_id"].astype(str)).sort_values(
            ["shape_id", "shape_pt_sequence"], kind="stable"
        )
        ids = ordered["shape_id"].to_numpy()
        lon = ordered["shape_pt_lon"].to_numpy(float)
        lat = ordered["shape_pt_lat"].to_numpy(float)
        cuts = np.r_[0, np.flatnonzero(ids[1:] != ids[:-1]) + 1, len(ids)]
        for lo, hi in itertools.pairwise(cuts.tolist()):
            if hi - lo >= 2:
                table[(str(feed_id), str(ids[lo]))] = (lon[lo:hi], lat[lo:hi])
    return table


def _edge_runs_with_way(drive: StreetNetwork, edge: int, way: BusLaneWay) -> bool | None:
    """Whether an edge runs in its way's direction (None: cannot tell)."""
    if len(way.coords) < 2:
        return None
    coords = drive.edge_coords(edge)
    wx = np.array([c[0] for c in way.coords])
    wy = np.array([c[1] for c in way.coords])
    first = int(np.argmin((wx - coords[0, 0]) ** 2 + (wy - coords[0, 1]) ** 2))
    last = int(np.argmin((wx - coords[-1, 0]) ** 2 + (wy - coords[-1, 1]) ** 2))
    if first != last:
        return last > first
    i = min(first, len(wx) - 2)
    along = (coords[-1, 0] - coords[0, 0]) * (wx[i + 1] - wx[i]) + (
        coords[-1, 1] - coords[0, 1]
    ) * (wy[i + 1] - wy[i])
    return bool(along > 0) if along != 0 else None


def bus_lane_edges(drive: StreetNetwork, lanes: Mapping[int, BusLaneWay]) -> NDArray[np.bool_]:
    """Per drive edge: whether every OSM way it follows has a bus lane in its direction."""
    edges, ways = drive.edge_ways()
    exempt = np.zeros(drive.n_edges, bool)
    if not lanes:
        return exempt
    verdict: dict[int, bool] = {}
    for edge, way_id in zip(edges.tolist(), ways.tolist(), strict=True):
        way = lanes.get(int(way_id))
        ok = False
        if way is not None:
            forward = _edge_runs_with_way(drive, int(edge), way)
            ok = forward is not None and (way.forward if forward else way.backward)
        verdict[int(edge)] = verdict.get(int(edge), True) and ok
    for edge, ok in verdict.items():
        exempt[edge] = ok
    return exempt


def match_transit_streets(
    drive: StreetNetwork,
    timetable: BaseTimetable,
    lanes: Mapping[int, BusLaneWay] | None = None,
) -> TransitStreets:
    """Match every street-running pattern to the drive edges it uses (see the module doc)."""
    tt = timetable
    n_pat = len(tt.pat_stop_off) - 1
    n_flat = len(tt.pat_stops)
    flat_pattern = np.repeat(np.arange(n_pat), np.diff(tt.pat_stop_off)).astype(np.int64)
    stop_node = np.full(n_flat, -1, np.int64)
    segments: list[list[int]] = [[] for _ in range(n_flat)]
    running = np.zeros(n_pat, bool)
    from_shape = np.zeros(n_pat, bool)
    first_trip = np.full(n_pat, -1, np.int64)
    seen = np.unique(tt.trip_pattern, return_index=True)
    first_trip[seen[0]] = seen[1]
    metres = _Metres(drive)
    node_tree = cKDTree(metres.project(drive.node_lon, drive.node_lat))
    samples: _EdgeSamples | None = None
    shapes = _pattern_shapes(tt)
    drive_memo: dict[tuple[int, int], list[int]] = {}
    for p in range(n_pat):
        if first_trip[p] < 0:
            continue
        mode = str(tt.route_mode[tt.trip_route[first_trip[p]]])
        if mode not in STREET_RUNNING_MODES:
            continue
        lo, hi = int(tt.pat_stop_off[p]), int(tt.pat_stop_off[p + 1])
        stops = tt.pat_stops[lo:hi]
        shape = shapes.get(p)
        line = shape_points(tt, *shape) if shape is not None else None
        weight = drive.base_time_s
        tree, tree_nodes = node_tree, np.arange(drive.n_nodes)
        memo: dict[tuple[int, int], list[int]] = drive_memo
        if line is not None:
            if samples is None:
                samples = _EdgeSamples(drive)
            corridor = samples.near(_samples(line[0], line[1], SHAPE_SAMPLE_M), CORRIDOR_M)
            if len(corridor):
                on = np.zeros(drive.n_edges, bool)
                on[corridor] = True
                weight = drive.length_m * np.where(on, 1.0, OFF_CORRIDOR_PENALTY)
                tree_nodes = np.unique(np.r_[drive.tail[corridor], drive.head[corridor]])
                tree = cKDTree(
                    metres.project(drive.node_lon[tree_nodes], drive.node_lat[tree_nodes])
                )
                memo = {}
                from_shape[p] = True
        xy = metres.project(tt.stop_lon[stops], tt.stop_lat[stops])
        gap, nearest = tree.query(xy)
        nodes = np.where(
            gap <= MAX_STOP_TO_NODE_M, tree_nodes[np.minimum(nearest, len(tree_nodes) - 1)], -1
        )
        stop_node[lo:hi] = nodes
        matched = 0
        for k in range(hi - lo - 1):
            a, b = int(nodes[k]), int(nodes[k + 1])
            if a < 0 or b < 0 or a == b:
                continue
            path = memo.get((a, b))
            if path is None:
                path = _path(drive, weight, a, b)
                straight = float(
                    haversine_m(
                        drive.node_lat[a], drive.node_lon[a], drive.node_lat[b], drive.node_lon[b]
                    )
                )
                if path and _rejected(float(drive.length_m[path].sum()), straight):
                    path = []
                memo[(a, b)] = path
            segments[lo + k] = path
            matched += bool(path)
        running[p] = matched > 0
        if not running[p]:
            from_shape[p] = False
    seg_len = np.array([len(s) for s in segments], np.int64)
    seg_off = np.r_[0, np.cumsum(seg_len)].astype(np.int64)
    seg_edges = (
        np.concatenate([np.asarray(s, np.int64) for s in segments if s])
        if seg_off[-1]
        else np.zeros(0, np.int64)
    )
    owner = np.repeat(np.arange(n_flat), seg_len)
    order = np.argsort(seg_edges, kind="stable")
    edge_off = np.zeros(drive.n_edges + 1, np.int64)
    np.add.at(edge_off, seg_edges + 1, 1)
    return TransitStreets(
        running=running,
        from_shape=from_shape,
        flat_pattern=flat_pattern,
        stop_node=stop_node,
        seg_off=seg_off,
        seg_edges=seg_edges,
        edge_off=np.cumsum(edge_off),
        edge_segs=owner[order].astype(np.int64),
        exempt=bus_lane_edges(drive, lanes or {}),
    )


def _path(drive: StreetNetwork, weight: NDArray[np.float64], a: int, b: int) -> list[int]:
    """Edges of the cheapest path from node a to node b under ``weight`` ([] if none)."""
    dist, pred = dijkstra(
        drive.indptr,
        drive.head,
        weight,
        np.array([a], np.int64),
        np.zeros(1),
        np.inf,
        np.array([b], np.int64),
    )
    if not np.isfinite(dist[b]):
        return []
    return drive.path_edges(pred, b)


# --------------------------------------------------------------------------- live


def compute_street_effects(
    streets: TransitStreets,
    drive: StreetNetwork,
    timetable: BaseTimetable,
    multiplier: NDArray[np.float64],
) -> StreetEffects | None:
    """Delays and unservable stops of street-running patterns under drive multipliers.

    Returns None when no matched segment is touched (the common case: nothing to apply).
    """
    if len(multiplier) != drive.n_edges:
        return None
    closed = ~np.isfinite(multiplier)
    bus_mult = np.where(streets.exempt & ~closed, 1.0, multiplier)
    relevant = np.flatnonzero(bus_mult != 1.0)
    touched = streets.segments_using(relevant)
    if not len(touched):
        return None
    bus_time = drive.base_time_s * bus_mult
    # per touched segment: what its edges lose to congestion, and whether one is closed
    counts = streets.seg_off[touched + 1] - streets.seg_off[touched]
    flat = np.repeat(streets.seg_off[touched] - (np.cumsum(counts) - counts), counts) + np.arange(
        int(counts.sum())
    )
    edges = streets.seg_edges[flat]
    owner = np.repeat(np.arange(len(touched)), counts)
    lost = drive.base_time_s[edges] * np.where(closed[edges], 0.0, bus_mult[edges] - 1.0)
    extra_at = np.bincount(owner, weights=lost, minlength=len(touched))
    blocked_at = np.bincount(owner, weights=closed[edges], minlength=len(touched)) > 0
    patterns, first = np.unique(streets.flat_pattern[touched], return_index=True)
    ends = np.r_[first[1:], len(touched)]
    delays: dict[int, NDArray[np.int64]] = {}
    skips: dict[int, tuple[int, ...]] = {}
    detours: dict[tuple[int, int], float] = {}
    for p, a, z in zip(patterns.tolist(), first.tolist(), ends.tolist(), strict=True):
        lo, hi = int(timetable.pat_stop_off[p]), int(timetable.pat_stop_off[p + 1])
        n = hi - lo
        extra = np.zeros(max(n - 1, 0))
        skipped: set[int] = set()
        positions = touched[a:z] - lo  # touched is sorted: one run per pattern
        extra[positions] = np.where(blocked_at[a:z], 0.0, extra_at[a:z])
        blocked = positions[blocked_at[a:z]].tolist()
        for k0, k1 in _runs(blocked):
            closed_ways = {
                int(drive.way_id[e])
                for k in range(k0, k1 + 1)
                for e in streets.segment_edges(lo + k)
                if closed[e]
            }
            skipped.update(range(k0 + 1, k1 + 1))  # between two blocked segments
            for k in (k0, k1 + 1):
                if _on_ways(streets, drive, lo, n, k, closed_ways):
                    skipped.add(k)
            base_s = float(
                sum(
                    drive.base_time_s[streets.segment_edges(lo + k)].sum()
                    for k in range(k0, k1 + 1)
                )
            )
            a, b = int(streets.stop_node[lo + k0]), int(streets.stop_node[lo + k1 + 1])
            key = (a, b)
            if key not in detours:
                detours[key] = _detour_s(drive, bus_time, a, b, base_s + MAX_DETOUR_S)
            around = detours[key]
            extra[k0 : k1 + 1] = 0.0
            if np.isfinite(around):
                extra[k0] = max(0.0, around - base_s)
            else:  # no way around: the trip cannot go on past the blockage
                skipped.update(range(k0 + 1, n))
        late = np.rint(np.r_[0.0, np.cumsum(extra)]).astype(np.int64)
        if late.any():
            late.setflags(write=False)
            delays[p] = late
        if skipped:
            skips[p] = tuple(sorted(skipped))
    if not delays and not skips:
        return None
    digest = hashlib.sha256()
    for p in sorted(delays):
        digest.update(f"d{p}:".encode() + delays[p].tobytes())
    for p in sorted(skips):
        digest.update(f"s{p}:{skips[p]}".encode())
    return StreetEffects(delays=delays, skips=skips, key=digest.digest())


def _runs(positions: list[int]) -> list[tuple[int, int]]:
    """Maximal runs of consecutive integers, as (first, last)."""
    runs: list[tuple[int, int]] = []
    for k in positions:
        if runs and runs[-1][1] == k - 1:
            runs[-1] = (runs[-1][0], k)
        else:
            runs.append((k, k))
    return runs


def _on_ways(
    streets: TransitStreets, drive: StreetNetwork, lo: int, n: int, k: int, ways: set[int]
) -> bool:
    """Whether stop position k sits on one of ``ways``: the edge into it or out of it."""
    own: list[int] = []
    if k > 0:
        into = streets.segment_edges(lo + k - 1)
        own += into[-1:].tolist()
    if k < n - 1:
        out = streets.segment_edges(lo + k)
        own += out[:1].tolist()
    return any(int(drive.way_id[e]) in ways for e in own)


def _detour_s(
    drive: StreetNetwork, bus_time: NDArray[np.float64], a: int, b: int, limit: float
) -> float:
    """Fastest live drive time from node a to node b within ``limit`` (inf if none)."""
    if a < 0 or b < 0:
        return float("inf")
    dist, _ = dijkstra(
        drive.indptr,
        drive.head,
        bus_time,
        np.array([a], np.int64),
        np.zeros(1),
        limit,
        np.array([b], np.int64),
    )
    return float(dist[b])


def street_effects(base: CityBase, overlay: LiveOverlay) -> StreetEffects | None:
    """The effects of an overlay's drive multipliers on a city's street-running transit.

    Computed once per overlay version (kept on the overlay, which never changes) and shared
    by consecutive versions with the same multiplier array (copy-on-write: a GBFS or GTFS-RT
    update keeps the array), so planning never pays for it per query.
    """
    streets = base.transit_streets
    drive = base.streets.get("drive")
    multiplier = overlay.drive_multiplier
    if streets is None or drive is None:
        return None
    cached = overlay.__dict__.get("_street_effects")
    if cached is not None and cached[0] is streets:
        found: StreetEffects | None = cached[1]
        return found
    last = streets.__dict__.get("_last_effects")
    if last is not None and last[0] is multiplier:
        effects: StreetEffects | None = last[1]
    else:
        effects = compute_street_effects(streets, drive, base.timetable, multiplier)
        object.__setattr__(streets, "_last_effects", (multiplier, effects))
    object.__setattr__(overlay, "_street_effects", (streets, effects))
    return effects
