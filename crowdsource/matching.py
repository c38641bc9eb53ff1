"""Match a report's position (and heading) to the drive edge(s) it describes.

Pure functions over :class:`routing.streets.StreetNetwork` arrays. A per-network index of
geometry segments (a KD-tree over segment midpoints, built once per network) finds every
street within reach, so a heading can pick the right street at a crossing, not just the
right direction of the nearest one.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.spatial import cKDTree

from correspondance.geo import project_xy
from crowdsource.errors import ReportRejectedError
from routing.streets import StreetNetwork

MAX_MATCH_M = 60.0
MAX_HEADING_GAP_DEG = 60.0
PIECE_M = 40.0  # longest indexed piece of a street segment


@dataclass(frozen=True, eq=False)
class _SegmentIndex:
    lat0: float
    start: NDArray[np.int64]  # first geometry vertex of each piece's segment
    edge: NDArray[np.int64]  # edge of each segment
    a: NDArray[np.float64]  # projected start points (m)
    b: NDArray[np.float64]  # projected end points (m)
    tree: cKDTree
    half_longest: float


_INDEXES: weakref.WeakKeyDictionary[StreetNetwork, _SegmentIndex] = weakref.WeakKeyDictionary()


def _index(drive: StreetNetwork) -> _SegmentIndex:
    found = _INDEXES.get(drive)
    if found is not None:
        return found
    lat0 = float(np.mean(drive.node_lat)) if drive.n_nodes else 0.0
    counts = np.diff(drive.geom_offset)
    vertex_edge = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    start = np.arange(len(drive.geom_lat) - 1, dtype=np.int64)
    # a segment joins two vertices of the same edge, never the last of one and first of next
    start = start[vertex_edge[start] == vertex_edge[start + 1]]
    xy = project_xy(drive.geom_lat, drive.geom_lon, lat0)
    a, b = xy[start], xy[start + 1]
    # long segments are indexed as pieces of at most PIECE_M: the search radius is the
    # match distance plus half the longest piece, so a few pieces of 500 m would otherwise
    # make every search visit hundreds of segments (same distances and bearings per edge)
    pieces = np.maximum(1, np.ceil(np.hypot(*(b - a).T) / PIECE_M)).astype(np.int64)
    owner = np.repeat(np.arange(len(start), dtype=np.int64), pieces)
    k = np.arange(len(owner), dtype=np.int64) - np.repeat(np.cumsum(pieces) - pieces, pieces)
    n = pieces[owner].astype(np.float64)
    ab = b[owner] - a[owner]
    first, last = (k == 0)[:, None], (k + 1 == pieces[owner])[:, None]
    # the ends of a segment stay exact, so distances to a shared vertex still tie exactly
    a, b = (
        np.where(first, a[owner], a[owner] + ab * (k / n)[:, None]),
        np.where(last, b[owner], a[owner] + ab * ((k + 1) / n)[:, None]),
    )
    lengths = np.hypot(*(b - a).T)
    index = _SegmentIndex(
        lat0=lat0,
        start=start[owner],
        edge=vertex_edge[start][owner],
        a=a,
        b=b,
        tree=cKDTree((a + b) / 2),
        half_longest=float(lengths.max()) / 2 if len(lengths) else 0.0,
    )
    _INDEXES[drive] = index
    return index


def bearing_deg(dx: NDArray[np.float64], dy: NDArray[np.float64]) -> NDArray[np.float64]:
    """Compass bearing (0 = north, clockwise) of planar vectors (east, north) in metres."""
    return np.degrees(np.arctan2(dx, dy)) % 360.0


def heading_gap_deg(a: NDArray[np.float64] | float, b: float) -> NDArray[np.float64]:
    """Smallest angle between bearings, 0 to 180 degrees."""
    gap = np.abs((np.asarray(a, np.float64) - b) % 360.0)
    return np.minimum(gap, 360.0 - gap)


def _near_edges(
    drive: StreetNetwork, lat: float, lon: float, max_m: float
) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.float64]]:
    """Edges with a segment within ``max_m``: (edge, distance m, bearing there), nearest first."""
    index = _index(drive)
    point = project_xy(np.array([lat]), np.array([lon]), index.lat0)[0]
    # sorted: pieces are numbered along their edge, which breaks ties below
    near = np.sort(
        np.asarray(index.tree.query_ball_point(point, max_m + index.half_longest), np.int64)
    )
    if not len(near):
        return np.zeros(0, np.int64), np.zeros(0), np.zeros(0)
    a, b = index.a[near], index.b[near]
    ab = b - a
    seg_len2 = np.einsum("ij,ij->i", ab, ab)
    t = np.clip(np.einsum("ij,ij->i", point - a, ab) / np.where(seg_len2 > 0, seg_len2, 1.0), 0, 1)
    gap = np.hypot(*(a + t[:, None] * ab - point).T)
    keep = (gap <= max_m) & (seg_len2 > 0)
    near, gap, ab = near[keep], gap[keep], ab[keep]
    edges = index.edge[near]
    # the nearest segment of each edge stands for it (at a tie, e.g. at the vertex two
    # segments share, the first along the edge)
    order = np.lexsort((near, gap, edges))
    edges, gap, ab = edges[order], gap[order], ab[order]
    first = np.r_[True, edges[1:] != edges[:-1]] if len(edges) else np.zeros(0, bool)
    edges, gap, ab = edges[first], gap[first], ab[first]
    bearing = bearing_deg(ab[:, 0], ab[:, 1])
    by_distance = np.argsort(gap, kind="stable")
    return edges[by_distance], gap[by_distance], bearing[by_distance]


def reverse_edges(drive: StreetNetwork, edge: int) -> tuple[int, ...]:
    """The other direction(s) of a two-way street's edge: same OSM way, ends swapped.

    Parameters
    ----------
    drive : StreetNetwork
        The drive network (CSR by tail node).
    edge : int
        An edge id.

    Returns
    -------
    tuple of int
        Reverse edges (empty for a one-way street).
    """
    tail, head = int(drive.tail[edge]), int(drive.head[edge])
    out = np.arange(drive.indptr[head], drive.indptr[head + 1], dtype=np.int64)
    twins = out[(drive.head[out] == tail) & (drive.way_id[out] == drive.way_id[edge])]
    return tuple(int(e) for e in twins)


def match_report(
    drive: StreetNetwork,
    lat: float,
    lon: float,
    heading: float | None,
    max_m: float = MAX_MATCH_M,
) -> tuple[int, ...]:
    """Drive edge(s) a report at ``lat, lon`` describes.

    Without a heading: the nearest drive edge and, on a two-way street, its reverse edge(s)
    (a jam seen from the pavement could be either way). With a heading: the nearest edge
    within ``max_m`` whose direction at the nearest point is within 60 degrees of the
    heading, alone (at a crossing, the street being driven along, in its direction).

    Parameters
    ----------
    drive : StreetNetwork
        The city's drive network.
    lat, lon : float
        Report position (WGS84).
    heading : float or None
        Direction of travel in degrees clockwise from north.
    max_m : float, default 60
        Farthest a street may be from the position.

    Returns
    -------
    tuple of int
        Edge ids, sorted, at least one.

    Raises
    ------
    ReportRejectedError
        ``no_street_nearby`` if no drive street (in the reported direction, with a heading)
        is within ``max_m``.
    """
    edges, _, bearings = _near_edges(drive, lat, lon, max_m)
    if not len(edges):
        raise ReportRejectedError(
            f"no drive street within {max_m:.0f} m of the reported position",
            code="no_street_nearby",
        )
    if heading is None:
        nearest = int(edges[0])
        return tuple(sorted({nearest, *reverse_edges(drive, nearest)}))
    along = heading_gap_deg(bearings, heading) <= MAX_HEADING_GAP_DEG
    if not along.any():
        raise ReportRejectedError(
            f"no drive street within {max_m:.0f} m runs in the reported heading "
            f"({heading:.0f} degrees)",
            code="no_street_nearby",
        )
    return (int(edges[np.argmax(along)]),)
