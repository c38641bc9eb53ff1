"""What transit legs look like on a map: rides along ``shapes.txt``, transfer walks along
their street path.

At build, :func:`build_transit_shapes` projects every stop of a pattern onto the shape its
trips follow, in order (each stop onto the nearest part of the shape *at or after* the
previous stop's, so a line that passes a stop twice, a loop, is cut at the right pass).
A ride is drawn as the slice of the shape between its boarding and alighting stops'
projections; a pattern without a shape is drawn stop to stop.

A transfer walk (a footpath between two stops) is drawn as the walk that
``routing.base.street_footpaths`` priced: from the stop to its street, along that street
to its nearer end, over the walk network, and the same at the other end, so its drawn
length is its ``distance_m``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from correspondance.geo import haversine_m
from routing.kernels import dijkstra
from routing.streets import StreetNetwork
from routing.timetable import BaseTimetable

if TYPE_CHECKING:
    from routing.base import CityBase

SAME_PASS_M = 20.0  # a later part of the shape must be this much nearer to be preferred


@dataclass(frozen=True, eq=False)
class TransitShapes:
    """Shapes of the patterns that have one, and every stop's place along its shape.

    ``pattern_shape[p]`` indexes the shape CSR (``shape_off``, ``lon``, ``lat``) or is −1;
    per flat pattern position (``BaseTimetable.pat_stop_off`` layout), ``seg`` is the shape
    segment (points ``seg``, ``seg + 1``) the stop projects onto and ``t`` how far along it.
    """

    pattern_shape: NDArray[np.int64]
    shape_off: NDArray[np.int64]
    lon: NDArray[np.float64]
    lat: NDArray[np.float64]
    seg: NDArray[np.int64]
    t: NDArray[np.float64]

    def ride_geometry(
        self, pattern: int, pat_stop_off: NDArray[np.int64], board: int, alight: int
    ) -> tuple[list[tuple[float, float]], float] | None:
        """(lon, lat) of the shape between two stop positions of a pattern, and its length
        in metres (None: the pattern has no shape)."""
        s = int(self.pattern_shape[pattern])
        if s < 0 or alight <= board:
            return None
        base = int(self.shape_off[s])
        f_a, f_b = int(pat_stop_off[pattern]) + board, int(pat_stop_off[pattern]) + alight
        j_a, j_b = int(self.seg[f_a]), int(self.seg[f_b])
        t_a, t_b = float(self.t[f_a]), float(self.t[f_b])
        inner = slice(base + j_a + 1, base + j_b + 1)
        line = [
            self._point(base, j_a, t_a),
            *zip(self.lon[inner].tolist(), self.lat[inner].tolist(), strict=True),
            self._point(base, j_b, t_b),
        ]
        step, along = self._metres()
        metres = (along[base + j_b] + t_b * step[base + j_b]) - (
            along[base + j_a] + t_a * step[base + j_a]
        )
        return line, float(metres)

    def _metres(self) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Per shape point: metres to the next point of its shape, and from its shape's
        start (computed once, on first use)."""
        cached = self.__dict__.get("_along")
        if cached is None:
            step = np.zeros(len(self.lon))
            if len(self.lon) > 1:
                step[:-1] = haversine_m(self.lat[:-1], self.lon[:-1], self.lat[1:], self.lon[1:])
            step[self.shape_off[1:] - 1] = 0.0  # no step from one shape to the next
            along = np.cumsum(step) - step
            starts = np.repeat(along[self.shape_off[:-1]], np.diff(self.shape_off))
            cached = (step, along - starts)
            object.__setattr__(self, "_along", cached)
        return cached

    def __getstate__(self) -> dict[str, object]:
        # the distances cache is rebuilt on first use, never pickled with the base
        return {k: v for k, v in self.__dict__.items() if not k.startswith("_")}

    def _point(self, base: int, j: int, t: float) -> tuple[float, float]:
        i = base + j
        return (
            float(self.lon[i] + t * (self.lon[i + 1] - self.lon[i])),
            float(self.lat[i] + t * (self.lat[i + 1] - self.lat[i])),
        )


def project_stops(
    lon: NDArray[np.float64],
    lat: NDArray[np.float64],
    stop_lon: NDArray[np.float64],
    stop_lat: NDArray[np.float64],
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Each stop's (segment, fraction) along a polyline, never going back along it.

    Among the segments at or after the previous stop's, the earliest one within
    ``SAME_PASS_M`` of the nearest is taken: a loop's second pass near a stop is not
    mistaken for the first.
    """
    cos = float(np.cos(np.radians(np.mean(lat))))
    x, y = lon * 111_320.0 * cos, lat * 111_320.0
    ax, ay, bx, by = x[:-1], y[:-1], x[1:], y[1:]
    dx, dy = bx - ax, by - ay
    len2 = np.where(dx * dx + dy * dy > 0, dx * dx + dy * dy, 1.0)
    segs = np.zeros(len(stop_lon), np.int64)
    ts = np.zeros(len(stop_lon))
    start, since = 0, 0.0
    for k, (sx, sy) in enumerate(
        zip(stop_lon * 111_320.0 * cos, stop_lat * 111_320.0, strict=True)
    ):
        t = np.clip(
            ((sx - ax[start:]) * dx[start:] + (sy - ay[start:]) * dy[start:]) / len2[start:], 0, 1
        )
        t[0] = max(float(t[0]), since)  # on the previous stop's segment: not behind it
        gap = np.hypot(ax[start:] + t * dx[start:] - sx, ay[start:] + t * dy[start:] - sy)
        j = int(np.flatnonzero(gap <= gap.min() + SAME_PASS_M)[0])
        segs[k], ts[k] = start + j, float(t[j])
        start, since = start + j, float(t[j])
    return segs, ts


def build_transit_shapes(timetable: BaseTimetable) -> TransitShapes:
    """Project every pattern's stops onto its shape (patterns without one get −1)."""
    from routing.transit_streets import _pattern_shapes, shape_points

    tt = timetable
    n_pat = len(tt.pat_stop_off) - 1
    pattern_shape = np.full(n_pat, -1, np.int64)
    seg = np.zeros(len(tt.pat_stops), np.int64)
    t = np.zeros(len(tt.pat_stops))
    index: dict[tuple[str, str], int] = {}
    lons: list[NDArray[np.float64]] = []
    lats: list[NDArray[np.float64]] = []
    for p, shape in _pattern_shapes(tt).items():
        if shape not in index:
            points = shape_points(tt, *shape)
            if points is None:
                continue
            index[shape] = len(lons)
            lons.append(points[0])
            lats.append(points[1])
        s = index[shape]
        lo, hi = int(tt.pat_stop_off[p]), int(tt.pat_stop_off[p + 1])
        stops = tt.pat_stops[lo:hi]
        seg[lo:hi], t[lo:hi] = project_stops(
            lons[s], lats[s], tt.stop_lon[stops], tt.stop_lat[stops]
        )
        pattern_shape[p] = s
    sizes = [len(x) for x in lons]
    return TransitShapes(
        pattern_shape=pattern_shape,
        shape_off=np.r_[0, np.cumsum(sizes)].astype(np.int64),
        lon=np.concatenate(lons) if lons else np.zeros(0),
        lat=np.concatenate(lats) if lats else np.zeros(0),
        seg=seg,
        t=t,
    )


def line_metres(coords: list[tuple[float, float]]) -> float:
    """Length of a (lon, lat) polyline in metres."""
    if len(coords) < 2:
        return 0.0
    lon, lat = np.array(coords).T
    return float(np.sum(haversine_m(lat[:-1], lon[:-1], lat[1:], lon[1:])))


def _to_end(
    walk: StreetNetwork, edge: int, fraction: float, to_tail: bool
) -> list[tuple[float, float]]:
    """(lon, lat) from the spot ``fraction`` along an edge to its tail or its head."""
    coords = walk.edge_coords(edge)
    lon, lat = coords[:, 0], coords[:, 1]
    steps = haversine_m(lat[:-1], lon[:-1], lat[1:], lon[1:]) if len(lon) > 1 else np.zeros(0)
    at = fraction * float(steps.sum())
    done = np.r_[0.0, np.cumsum(steps)]
    found = int(np.searchsorted(done, at, side="right")) - 1
    i = min(max(found, 0), max(len(steps) - 1, 0))
    if len(steps) and steps[i] > 0:
        u = min(max((at - done[i]) / steps[i], 0.0), 1.0)
        spot = (
            float(lon[i] + u * (lon[i + 1] - lon[i])),
            float(lat[i] + u * (lat[i + 1] - lat[i])),
        )
    else:
        spot = (float(lon[0]), float(lat[0]))
    rest = coords[i::-1] if to_tail else coords[i + 1 :]
    return [spot, *((float(x), float(y)) for x, y in rest)]


def footpath_geometry(
    walk: StreetNetwork,
    edge: NDArray[np.int64],
    fraction: NDArray[np.float64],
    stop_lon: NDArray[np.float64],
    stop_lat: NDArray[np.float64],
    a: int,
    b: int,
    limit_m: float,
) -> list[tuple[float, float]] | None:
    """The street walk from stop ``a`` to stop ``b`` as ``street_footpaths`` prices it:
    each stop joins its street at its nearer end. None when a stop is not on the network
    or no path is found within ``limit_m``."""
    if edge[a] < 0 or edge[b] < 0:
        return None
    ends = []
    for s in (a, b):
        e, f = int(edge[s]), float(fraction[s])
        use_tail = f <= 1 - f  # the rule of street_footpaths: the nearer end
        node = int(walk.tail[e] if use_tail else walk.head[e])
        ends.append(
            (node, [(float(stop_lon[s]), float(stop_lat[s])), *_to_end(walk, e, f, use_tail)])
        )
    (node_a, part_a), (node_b, part_b) = ends
    edges: list[int] = []
    if node_a != node_b:
        dist, pred = dijkstra(
            walk.indptr,
            walk.head,
            walk.length_m,
            np.array([node_a], np.int64),
            np.zeros(1),
            limit_m,
            np.array([node_b], np.int64),
        )
        if not np.isfinite(dist[node_b]):
            return None
        edges = walk.path_edges(pred, node_b)
    middle = [(float(x), float(y)) for e in edges for x, y in walk.edge_coords(e)]
    return part_a + middle + part_b[::-1]


def ride_line(
    base: CityBase, pattern: int, board: int, alight: int
) -> tuple[list[tuple[float, float]], float] | None:
    """A ride's drawn line along its pattern's shape and its metres, or None (drawn stop to
    stop)."""
    shapes = base.transit_shapes
    if shapes is None:
        return None
    return shapes.ride_geometry(pattern, base.timetable.pat_stop_off, board, alight)


def transfer_line(
    base: CityBase, a: int, b: int, metres: float
) -> list[tuple[float, float]] | None:
    """A transfer walk's drawn line along its street path, or None (drawn straight)."""
    walk = base.streets.get("walk")
    if walk is None:
        return None
    links, tt = base.stop_links, base.timetable
    return footpath_geometry(
        walk, links.edge, links.fraction, tt.stop_lon, tt.stop_lat, a, b, metres + 1.0
    )
