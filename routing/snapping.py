"""Snapping a coordinate to the nearest street segment: a uniform grid over geometry
segments and its compiled nearest-segment query (numba).

The answer is the segment whose planar (equirectangular) distance to the point is the
smallest over the whole network, the lowest segment index winning ties; the arithmetic is
the one :meth:`routing.streets.StreetNetwork.snap` has always used (same expressions in the
same order), so the snapped edge, fraction and distance do not change.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit
from numpy.typing import NDArray

TARGET_PER_CELL = 4.0  # segments per occupied cell the grid aims at
MIN_CELL_M = 25.0


@dataclass(frozen=True, eq=False)
class SegmentGrid:
    """Geometry segments binned by the cells their bounding boxes cover (CSR by cell)."""

    x0: float
    y0: float
    cell_m: float
    nx: int
    ny: int
    cell_start: NDArray[np.int64]  # (nx * ny + 1,)
    cell_seg: NDArray[np.int64]  # segment start vertex indices, by cell


@njit(cache=True, nogil=True)
def _segment_starts(geom_offset):
    """Start vertex of every segment (i, i + 1) that lies within one edge's geometry."""
    n_vertices = geom_offset[-1]
    n_edges = geom_offset.shape[0] - 1
    out = np.empty(max(n_vertices - n_edges, 0), np.int64)
    k = 0
    for e in range(n_edges):
        for i in range(geom_offset[e], geom_offset[e + 1] - 1):
            out[k] = i
            k += 1
    return out[:k]


@njit(cache=True, nogil=True)
def _segment_cells(x, y, i, x0, y0, cell_m):
    """``(cx0, cx1, cy0, cy1)``: the grid cells the bounding box of segment ``i`` covers."""
    cx0 = int((min(x[i], x[i + 1]) - x0) / cell_m)
    cx1 = int((max(x[i], x[i + 1]) - x0) / cell_m)
    cy0 = int((min(y[i], y[i + 1]) - y0) / cell_m)
    cy1 = int((max(y[i], y[i + 1]) - y0) / cell_m)
    return cx0, cx1, cy0, cy1


@njit(cache=True, nogil=True)
def _bin_segments(x, y, starts, x0, y0, cell_m, nx, ny):
    counts = np.zeros(nx * ny + 1, np.int64)
    for i in starts:
        cx0, cx1, cy0, cy1 = _segment_cells(x, y, i, x0, y0, cell_m)
        for cx in range(cx0, cx1 + 1):
            for cy in range(cy0, cy1 + 1):
                counts[cy * nx + cx + 1] += 1
    cell_start = np.cumsum(counts)
    fill = cell_start[:-1].copy()
    cell_seg = np.empty(cell_start[-1], np.int64)
    for i in starts:
        cx0, cx1, cy0, cy1 = _segment_cells(x, y, i, x0, y0, cell_m)
        for cx in range(cx0, cx1 + 1):
            for cy in range(cy0, cy1 + 1):
                c = cy * nx + cx
                cell_seg[fill[c]] = i
                fill[c] += 1
    return cell_start, cell_seg


def build_grid(
    x: NDArray[np.float64], y: NDArray[np.float64], geom_offset: NDArray[np.int64]
) -> SegmentGrid:
    """Bin every segment of the geometry (projected vertices ``x``, ``y``) into a grid."""
    starts = _segment_starts(geom_offset)
    if len(starts) == 0:
        empty = np.zeros(0, np.int64)
        return SegmentGrid(0.0, 0.0, 1.0, 0, 0, np.zeros(1, np.int64), empty)
    x0, y0 = float(x.min()), float(y.min())
    width, height = float(x.max()) - x0, float(y.max()) - y0
    cell = max(MIN_CELL_M, math.sqrt(max(width * height, 1.0) * TARGET_PER_CELL / len(starts)))
    nx, ny = int(width / cell) + 1, int(height / cell) + 1
    cell_start, cell_seg = _bin_segments(x, y, starts, x0, y0, cell, nx, ny)
    return SegmentGrid(x0, y0, cell, nx, ny, cell_start, cell_seg)


@njit(cache=True, nogil=True)
def _segment_gap(x, y, i, px, py):
    """(gap, t) of point p to segment (i, i + 1), as ``StreetNetwork.snap`` computed it."""
    ax = x[i]
    ay = y[i]
    abx = x[i + 1] - ax
    aby = y[i + 1] - ay
    seg_len2 = abx * abx + aby * aby
    denom = seg_len2 if seg_len2 > 0 else 1.0
    t = ((px - ax) * abx + (py - ay) * aby) / denom
    t = min(max(t, 0.0), 1.0)
    return np.hypot(ax + t * abx - px, ay + t * aby - py), t


@njit(cache=True, nogil=True)
def nearest_segment(x, y, x0, y0, cell_m, nx, ny, cell_start, cell_seg, px, py, max_m):
    """The segment nearest to (px, py): ``(start vertex, gap, t)``; start -1 if none is
    within ``max_m``. Cells are visited in growing square rings until no unvisited cell can
    hold a segment as near as the best one (ties: the lowest start index)."""
    best = -1
    best_gap = np.inf
    best_t = 0.0
    if nx == 0:
        return best, best_gap, best_t
    fx = (px - x0) / cell_m
    fy = (py - y0) / cell_m
    cx = min(max(math.floor(fx), 0), nx - 1)
    cy = min(max(math.floor(fy), 0), ny - 1)
    r = 0
    while True:
        for gy in range(cy - r, cy + r + 1):
            if gy < 0 or gy >= ny:
                continue
            edge_row = gy == cy - r or gy == cy + r
            step = 1 if edge_row else 2 * r
            gx = cx - r
            while gx <= cx + r:
                if 0 <= gx < nx:
                    c = gy * nx + gx
                    for k in range(cell_start[c], cell_start[c + 1]):
                        i = cell_seg[k]
                        gap, t = _segment_gap(x, y, i, px, py)
                        if gap < best_gap or (gap == best_gap and i < best):
                            best = i
                            best_gap = gap
                            best_t = t
                if step == 0:
                    break
                gx += step
        # everything not visited lies outside the block of cells [cx - r, cx + r] × ...
        reach = min(
            px - (x0 + (cx - r) * cell_m),
            x0 + (cx + r + 1) * cell_m - px,
            py - (y0 + (cy - r) * cell_m),
            y0 + (cy + r + 1) * cell_m - py,
        )
        covers_all = cx - r <= 0 and cy - r <= 0 and cx + r >= nx - 1 and cy + r >= ny - 1
        if covers_all or reach > best_gap or reach > max_m:
            break
        r += 1
    if best_gap > max_m:
        return -1, best_gap, best_t
    return best, best_gap, best_t


@njit(cache=True, nogil=True)
def fraction_along(x, y, lo, hi, start, t):
    """Fraction of an edge's geometry length (vertices lo..hi-1) at ``t`` along segment
    ``start``, measured as ``StreetNetwork.snap`` measured it (cumulative planar lengths)."""
    before = 0.0
    total = 0.0
    seg_here = 0.0
    for i in range(lo, hi - 1):
        step = np.hypot(x[i + 1] - x[i], y[i + 1] - y[i])
        if i == start:
            before = total
            seg_here = step
        total += step
    if total <= 0:
        return 0.0
    along = before + t * ((before + seg_here) - before)
    return along / total
