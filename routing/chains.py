"""Street searches between sets of points: the building block of every street mode.

A *point set* (stops, bike-share stations, parkings, the traveller) is attached to a
network once. ``reach`` turns a finished search into costs at points; ``launch`` turns
costs at points into sources of the next search. Chaining them gives walk → bike-share →
walk, drive → park → walk, and the access/egress legs of transit trips. Every search is the
compiled Dijkstra kernel; paths are rebuilt from predecessor edges.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from correspondance.geo import distance_m
from routing.errors import NoStreetNearbyError
from routing.streets import StreetNetwork


@dataclass(frozen=True, eq=False)
class Attachment:
    """Points attached to one network: edge ends, fraction along the edge, offset metres.

    Points farther than the snapping distance have ``tail == -1`` and are never reached.
    A point joins its street at either end of the edge it lies on.
    """

    tail: NDArray[np.int64]
    head: NDArray[np.int64]
    fraction: NDArray[np.float64]
    offset_m: NDArray[np.float64]
    edge: NDArray[np.int64]  # the tail → head edge whose weight prices the partial edge
    # the edge the point was snapped to, whose geometry ``fraction`` is measured along (a
    # parallel edge between the same nodes may be drawn differently); None: ``edge``
    snapped: NDArray[np.int64] | None = None

    @property
    def size(self) -> int:
        """Number of points."""
        return len(self.tail)


def attach(
    net: StreetNetwork, lat: NDArray[np.float64], lon: NDArray[np.float64], max_m: float
) -> Attachment:
    """Attach points to the nearest street segment of ``net`` within ``max_m``."""
    n = len(lat)
    tail = np.full(n, -1, np.int64)
    head = np.full(n, -1, np.int64)
    fraction = np.zeros(n)
    offset = np.zeros(n)
    edge = np.zeros(n, np.int64)
    snapped = np.zeros(n, np.int64)
    for i in range(n):
        try:
            snap = net.snap(float(lat[i]), float(lon[i]), max_m)
        except NoStreetNearbyError:
            continue
        e = snap.edge
        snapped[i] = e
        tail[i], head[i] = net.tail[e], net.head[e]
        fraction[i], offset[i] = snap.fraction, snap.distance_m
        # the first tail → head edge of the CSR row (parallel edges: the same one every time)
        row = net.head[net.indptr[tail[i]] : net.indptr[tail[i] + 1]]
        edge[i] = net.indptr[tail[i]] + int(np.flatnonzero(row == head[i])[0])
    return Attachment(tail, head, fraction, offset, edge, snapped)


@dataclass
class Search:
    """A finished search on one network: node costs, predecessors, and who launched it."""

    net: StreetNetwork
    weight: NDArray[np.float64]
    dist: NDArray[np.float64]
    pred: NDArray[np.int64]
    source_point: dict[int, int]  # source node → launching point index
    start_cost: NDArray[np.float64]  # per node: cost at the point whose launch reached it
    limit: float  # seconds this phase may last from its own launch


def _start_cost(
    net: StreetNetwork,
    dist: NDArray[np.float64],
    pred: NDArray[np.int64],
    launched: dict[int, float],
) -> NDArray[np.float64]:
    """For every node, the launch cost of the source its shortest path starts from."""
    root = np.arange(len(dist), dtype=np.int64)
    has_pred = pred >= 0
    root[has_pred] = net.tail[pred[has_pred]]
    while True:  # pointer jumping: log(depth) passes over the arrays
        nxt = root[root]
        if np.array_equal(nxt, root):
            break
        root = nxt
    at_source = np.full(len(dist), np.inf)
    for node, cost in launched.items():
        at_source[node] = cost
    return at_source[root]


def launch(
    net: StreetNetwork,
    weight: NDArray[np.float64],
    att: Attachment,
    point_cost: NDArray[np.float64],
    speed_m_s: float,
    limit: float,
    targets: NDArray[np.int64] | None = None,
) -> Search:
    """Search ``net`` from every point with a finite cost (plus its way onto the street).

    ``speed_m_s`` prices the straight offset between a point and its street, and the
    partial edge, when ``weight`` has no per-metre meaning there (we use the edge's own
    time per metre for the partial edge).

    ``limit`` bounds this phase alone, from each point's own launch cost: a walk of at most
    20 minutes after a 25-minute ride is allowed, however late the ride ended.
    """
    best: dict[int, tuple[float, int]] = {}
    ok = np.flatnonzero(np.isfinite(point_cost) & (att.tail >= 0))
    edge_t = weight[att.edge]
    for p in ok:
        base = float(point_cost[p]) + att.offset_m[p] / speed_m_s
        for node, part in ((att.tail[p], att.fraction[p]), (att.head[p], 1 - att.fraction[p])):
            cost = base + part * float(edge_t[p])
            if cost < best.get(int(node), (np.inf, -1))[0]:
                best[int(node)] = (cost, int(p))
    nodes = np.fromiter(best.keys(), np.int64, len(best))
    costs = np.fromiter((c for c, _ in best.values()), np.float64, len(best))
    latest = float(np.max(point_cost[ok])) if len(ok) else 0.0
    dist, pred = net.shortest_path(
        weight,
        nodes,
        costs,
        np.zeros(0, np.int64) if targets is None else targets,
        latest + limit,
    )
    launched = {n: float(point_cost[p]) for n, (_, p) in best.items()}
    return Search(
        net,
        weight,
        dist,
        pred,
        {n: p for n, (_, p) in best.items()},
        _start_cost(net, dist, pred, launched),
        limit,
    )


def reach(
    search: Search, att: Attachment, speed_m_s: float
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Cost of reaching every point from a finished search, and the node it is reached by.

    Points the phase would reach only by running over its own time limit are unreached.
    """
    n = att.size
    cost = np.full(n, np.inf)
    via = np.full(n, -1, np.int64)
    ok = np.flatnonzero(att.tail >= 0)
    tail, head, frac = att.tail[ok], att.head[ok], att.fraction[ok]
    edge_t = search.weight[att.edge[ok]]
    # a point exactly at an end of its edge costs nothing more than that end, even when the
    # edge itself is closed (infinite weight: inf × 0 would be NaN)
    a = search.dist[tail] + frac * np.where(frac > 0, edge_t, 0.0)
    b = search.dist[head] + (1 - frac) * np.where(frac < 1, edge_t, 0.0)
    node = np.where(a <= b, tail, head)
    total = np.minimum(a, b) + att.offset_m[ok] / speed_m_s
    with np.errstate(invalid="ignore"):  # inf − inf where neither end was reached
        fine = np.isfinite(total) & (total - search.start_cost[node] <= search.limit)
    cost[ok[fine]] = total[fine]
    via[ok[fine]] = node[fine]
    return cost, via


def path_back(search: Search, node: int) -> tuple[list[int], int]:
    """Edges from the search's source to ``node`` and the point that launched it."""
    edges = search.net.path_edges(search.pred, node)
    start = int(search.net.tail[edges[0]]) if edges else node
    return edges, search.source_point.get(start, -1)


def edges_geometry(net: StreetNetwork, edges: list[int]) -> list[tuple[float, float]]:
    """(lon, lat) coordinates along consecutive edges."""
    coords: list[tuple[float, float]] = []
    for e in edges:
        coords.extend((float(x), float(y)) for x, y in net.edge_coords(e))
    return coords


def partial_edge(
    net: StreetNetwork, att: Attachment, point: int, node: int
) -> tuple[list[tuple[float, float]], float]:
    """The walk between an attached point's spot on its street and one end of that edge.

    Returns (lon, lat) coordinates from the spot to ``node`` and the metres of that part
    of the edge, priced exactly as :func:`launch` and :func:`reach` price it (the fraction
    of the edge's length). ``node`` must be the edge's tail or head.
    """
    edge = int(att.edge[point])
    fraction = float(att.fraction[point])
    drawn = edge if att.snapped is None else int(att.snapped[point])
    lo, hi = int(net.geom_offset[drawn]), int(net.geom_offset[drawn + 1])
    coords = list(zip(net.geom_lon[lo:hi].tolist(), net.geom_lat[lo:hi].tolist(), strict=True))
    # the spot: ``fraction`` of the way along the drawn line
    steps = [distance_m(a[1], a[0], b[1], b[0]) for a, b in itertools.pairwise(coords)]
    at = fraction * sum(steps)
    i, done = 0, 0.0
    while i < len(steps) - 1 and done + steps[i] < at:
        done += steps[i]
        i += 1
    if steps and steps[i] > 0:
        t = min(max((at - done) / steps[i], 0.0), 1.0)
        (x0, y0), (x1, y1) = coords[i], coords[i + 1]
        spot = (x0 + t * (x1 - x0), y0 + t * (y1 - y0))
    else:
        spot = coords[0]
    length = float(net.length_m[edge])
    if node == int(att.tail[point]):
        return [spot, *coords[i::-1]], fraction * length
    return [spot, *coords[i + 1 :]], (1 - fraction) * length


@dataclass(frozen=True, eq=False)
class PointSet:
    """Named points of one kind (origin, stations, stops, car parks)."""

    kind: str
    ids: tuple[str, ...]
    names: tuple[str, ...]
    lat: NDArray[np.float64]
    lon: NDArray[np.float64]

    @property
    def size(self) -> int:
        """Number of points."""
        return len(self.ids)

    @classmethod
    def single(cls, kind: str, name: str, lat: float, lon: float) -> PointSet:
        """A one-point set (the traveller's origin or destination)."""
        return cls(kind, (kind,), (name,), np.array([lat]), np.array([lon]))


@dataclass(frozen=True, eq=False)
class Phase:
    """One street leg kind in a chain: travel ``net`` from points of set A to set B.

    ``exit_cost`` (per B point) adds the time to end this leg there (docking a bike,
    parking) and is ``inf`` where the leg may not end (a full dock, a station that does not
    accept returns).
    """

    mode: str
    net: StreetNetwork
    weight: NDArray[np.float64]
    offset_speed_m_s: float
    source_set: PointSet
    source_att: Attachment
    target_set: PointSet
    target_att: Attachment
    exit_cost: NDArray[np.float64]
    limit_s: float


@dataclass(frozen=True)
class Segment:
    """A street leg found by a chain: its mode, ends, duration and geometry."""

    mode: str
    from_kind: str
    from_index: int
    to_kind: str
    to_index: int
    seconds: float
    metres: float
    coords: list[tuple[float, float]]
    from_name: str
    to_name: str
    from_latlon: tuple[float, float]
    to_latlon: tuple[float, float]
    from_id: str = ""
    to_id: str = ""
    network: str = ""
    edges: tuple[int, ...] = ()


@dataclass
class ChainResult:
    """Costs at the last phase's points and what is needed to describe any of them."""

    phases: list[Phase]
    searches: list[Search]
    costs: list[NDArray[np.float64]]  # costs[0]: start set; costs[k+1]: after phase k
    vias: list[NDArray[np.int64]]

    @property
    def final_cost(self) -> NDArray[np.float64]:
        """Seconds from the start to each point of the last phase's target set."""
        return self.costs[-1]

    def describe(self, point: int) -> list[Segment]:
        """The street legs that reach ``point`` of the last target set, in travel order."""
        segments: list[Segment] = []
        for k in range(len(self.phases) - 1, -1, -1):
            phase, search = self.phases[k], self.searches[k]
            via = int(self.vias[k][point])
            edges, source = path_back(search, via)
            if source < 0:  # the node itself launched the search (no edge walked)
                source = search.source_point.get(via, 0)
            # every walked metre: the straight connector from the point to its street, the
            # part of its edge to the node the search left from, the edges, and the same
            # two pieces at the other end (priced so by launch and reach)
            start = int(phase.net.tail[edges[0]]) if edges else via
            head_in, head_m = partial_edge(phase.net, phase.source_att, source, start)
            tail_in, tail_m = partial_edge(phase.net, phase.target_att, point, via)
            coords = [(float(phase.source_set.lon[source]), float(phase.source_set.lat[source]))]
            coords += head_in
            coords += edges_geometry(phase.net, edges)
            coords += tail_in[::-1]
            coords.append((float(phase.target_set.lon[point]), float(phase.target_set.lat[point])))
            metres = float(np.sum(phase.net.length_m[edges])) if edges else 0.0
            metres += head_m + tail_m
            metres += float(phase.source_att.offset_m[source] + phase.target_att.offset_m[point])
            seconds = float(self.costs[k + 1][point] - self.costs[k][source])
            segments.append(
                Segment(
                    mode=phase.mode,
                    from_kind=phase.source_set.kind,
                    from_index=source,
                    to_kind=phase.target_set.kind,
                    to_index=point,
                    seconds=seconds,
                    metres=metres,
                    coords=coords,
                    from_name=phase.source_set.names[source],
                    to_name=phase.target_set.names[point],
                    from_latlon=(
                        float(phase.source_set.lat[source]),
                        float(phase.source_set.lon[source]),
                    ),
                    to_latlon=(
                        float(phase.target_set.lat[point]),
                        float(phase.target_set.lon[point]),
                    ),
                    from_id=phase.source_set.ids[source],
                    to_id=phase.target_set.ids[point],
                    network=phase.net.mode,
                    edges=tuple(int(e) for e in edges),
                )
            )
            point = source
        segments.reverse()
        return segments


def _aim(att: Attachment) -> NDArray[np.int64] | None:
    """The two ends of a lone target point's edge (the destination): the search can stop
    there, and aims at them (landmark A*); None for a set of points."""
    if att.size != 1 or att.tail[0] < 0:
        return None
    return np.array([att.tail[0], att.head[0]], np.int64)


def run_chain(phases: list[Phase], start_cost: NDArray[np.float64]) -> ChainResult:
    """Run phases in order; each starts from the previous phase's target costs."""
    costs = [start_cost]
    searches: list[Search] = []
    vias: list[NDArray[np.int64]] = []
    for phase in phases:
        search = launch(
            phase.net,
            phase.weight,
            phase.source_att,
            costs[-1],
            phase.offset_speed_m_s,
            phase.limit_s,
            _aim(phase.target_att),
        )
        reached, via = reach(search, phase.target_att, phase.offset_speed_m_s)
        costs.append(reached + phase.exit_cost)
        searches.append(search)
        vias.append(via)
    return ChainResult(phases, searches, costs, vias)
