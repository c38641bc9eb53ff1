"""Street networks as flat arrays: CSR adjacency, lengths, base times, geometry, way ids.

Compiled once from osmnx graphs at build time, saved as ``.npz``, loaded by reading
arrays. Snapping and searches work on these arrays only.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import osmnx as ox
from numpy.typing import NDArray

from correspondance.geo import METRES_PER_DEG_LAT, WALK_SPEED_M_S, project_xy
from routing.errors import NoStreetNearbyError
from routing.kernels import dijkstra
from routing.landmarks import Landmarks, alt_route, alt_search, build_landmarks, lower_scale
from routing.snapping import SegmentGrid, build_grid, fraction_along, nearest_segment

# Urban free-flow speeds (km/h) by highway class when OSM has no maxspeed; osmnx imputes
# the rest from the mean of tagged edges of the same class.
DRIVE_SPEEDS_KPH: dict[str, float] = {
    "motorway": 90,
    "motorway_link": 50,
    "trunk": 70,
    "trunk_link": 40,
    "primary": 50,
    "primary_link": 40,
    "secondary": 45,
    "secondary_link": 35,
    "tertiary": 40,
    "tertiary_link": 30,
    "unclassified": 30,
    "residential": 30,
    "living_street": 15,
    "road": 30,
}
DRIVE_FALLBACK_KPH = 30.0
SNAP_CACHE_SIZE = 4096  # recent snaps kept per network
SCALES_KEPT = 8  # weight arrays whose lower-bound scale is remembered
ALT_MAX_TARGETS = 4  # searches for at most this many targets use landmarks (ALT)
BIKE_SPEED_M_S = 4.5  # ~16 km/h, an everyday city cyclist
HIGHWAY_CLASSES = (
    "other",
    "motorway",
    "trunk",
    "primary",
    "secondary",
    "tertiary",
    "unclassified",
    "residential",
    "living_street",
    "service",
    "pedestrian",
    "footway",
    "path",
    "cycleway",
    "steps",
    "track",
    "motorway_link",
    "trunk_link",
    "primary_link",
    "secondary_link",
    "tertiary_link",
    "road",
)
_HIGHWAY_CODE = {name: i for i, name in enumerate(HIGHWAY_CLASSES)}


def _first(value: Any) -> Any:
    """osmnx keeps lists where simplification merged ways with different tags."""
    return value[0] if isinstance(value, list) else value


@dataclass(frozen=True, eq=False)
class StreetNetwork:
    """One mode's street network as arrays. Edges are sorted by tail node (CSR)."""

    mode: str
    node_lat: NDArray[np.float64]
    node_lon: NDArray[np.float64]
    indptr: NDArray[np.int64]
    tail: NDArray[np.int64]
    head: NDArray[np.int64]
    length_m: NDArray[np.float64]
    base_time_s: NDArray[np.float64]
    way_id: NDArray[np.int64]
    highway: NDArray[np.uint8]
    name_idx: NDArray[np.int32]
    names: tuple[str, ...]
    geom_offset: NDArray[np.int64]
    geom_lon: NDArray[np.float64]
    geom_lat: NDArray[np.float64]
    # Every OSM way of each edge (CSR), where simplification merged several ways into one
    # edge; ``way_id`` keeps only the first. None in networks compiled before it existed.
    way_offset: NDArray[np.int64] | None = None
    way_ids: NDArray[np.int64] | None = None
    _vertex_edge: NDArray[np.int64] = field(init=False, repr=False)
    _lat0: float = field(init=False, repr=False)
    _node_xy: NDArray[np.float64] = field(init=False, repr=False)
    _geom_x: NDArray[np.float64] = field(init=False, repr=False)
    _geom_y: NDArray[np.float64] = field(init=False, repr=False)
    _grid: SegmentGrid = field(init=False, repr=False)
    _snaps: Callable[[float, float, float], Snap] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # A grid over every geometry segment (equirectangular metres around the centre)
        # finds the nearest street *segment*, not just the nearest intersection.
        lat0 = float(np.mean(self.node_lat)) if len(self.node_lat) else 0.0
        xy = project_xy(self.geom_lat, self.geom_lon, lat0)
        geom_x, geom_y = np.ascontiguousarray(xy[:, 0]), np.ascontiguousarray(xy[:, 1])
        object.__setattr__(self, "_lat0", lat0)
        object.__setattr__(self, "_node_xy", project_xy(self.node_lat, self.node_lon, lat0))
        object.__setattr__(self, "_geom_x", geom_x)
        object.__setattr__(self, "_geom_y", geom_y)
        object.__setattr__(self, "_grid", build_grid(geom_x, geom_y, self.geom_offset))
        counts = np.diff(self.geom_offset)
        object.__setattr__(self, "_vertex_edge", np.repeat(np.arange(len(counts)), counts))
        self._keep_snaps()

    def _keep_snaps(self) -> None:
        # Snapping costs about as much as a short search; the same places come back (a live
        # trip's destination at every replan, stops, stations), so recent answers are kept.
        object.__setattr__(self, "_snaps", lru_cache(maxsize=SNAP_CACHE_SIZE)(self._snap))

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_snaps", None)  # a cache of bound calls: made anew when loaded
        for derived in ("_scales", "_local"):  # made again when first needed
            state.pop(derived, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._keep_snaps()

    @property
    def n_nodes(self) -> int:
        """Number of nodes."""
        return len(self.node_lat)

    @property
    def n_edges(self) -> int:
        """Number of directed edges."""
        return len(self.head)

    def travel_time(
        self, speed_m_s: float | None = None, multiplier: NDArray[np.float64] | None = None
    ) -> NDArray[np.float64]:
        """Edge weights in seconds: base times, or lengths at ``speed_m_s``, times a multiplier."""
        base = self.base_time_s if speed_m_s is None else self.length_m / speed_m_s
        return base if multiplier is None else base * multiplier

    def edge_ways(self) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        """(edge, OSM way id) pairs: every way of every edge (just ``way_id`` if unknown)."""
        if self.way_offset is None or self.way_ids is None:
            return np.arange(self.n_edges, dtype=np.int64), self.way_id
        return np.repeat(np.arange(self.n_edges), np.diff(self.way_offset)), self.way_ids

    def edge_coords(self, edge: int) -> NDArray[np.float64]:
        """[[lon, lat], ...] of one edge, tail to head."""
        lo, hi = self.geom_offset[edge], self.geom_offset[edge + 1]
        return np.column_stack([self.geom_lon[lo:hi], self.geom_lat[lo:hi]])

    def snap(self, lat: float, lon: float, max_distance_m: float) -> Snap:
        """Nearest street position to a coordinate (recent answers are cached).

        Returns the edge whose geometry passes nearest to the point, the fraction along
        it of the point's projection onto that geometry, and the straight-line distance
        from the point to the street.

        Raises
        ------
        NoStreetNearbyError
            If no street of this mode is within ``max_distance_m``.
        """
        return self._snaps(float(lat), float(lon), float(max_distance_m))

    def _snap(self, lat: float, lon: float, max_distance_m: float) -> Snap:
        # the point in the same planar metres as the geometry (as ``project_xy`` computes)
        px = lon * METRES_PER_DEG_LAT * math.cos(math.radians(self._lat0))
        py = lat * METRES_PER_DEG_LAT
        g = self._grid
        if g.nx == 0:
            raise NoStreetNearbyError(f"no {self.mode} street near {lat:.6f},{lon:.6f}")
        start, gap, t = nearest_segment(
            self._geom_x,
            self._geom_y,
            g.x0,
            g.y0,
            g.cell_m,
            g.nx,
            g.ny,
            g.cell_start,
            g.cell_seg,
            px,
            py,
            max_distance_m,
        )
        if start < 0:
            raise NoStreetNearbyError(
                f"no {self.mode} street within {max_distance_m:.0f} m of {lat:.6f},{lon:.6f}"
            )
        edge = int(self._vertex_edge[start])
        lo, hi = int(self.geom_offset[edge]), int(self.geom_offset[edge + 1])
        fraction = fraction_along(self._geom_x, self._geom_y, lo, hi, start, t)
        return Snap(lat=lat, lon=lon, edge=edge, fraction=float(fraction), distance_m=float(gap))

    def shortest_path(
        self,
        weight: NDArray[np.float64],
        sources: NDArray[np.int64],
        source_cost: NDArray[np.float64],
        targets: NDArray[np.int64],
        limit: float = np.inf,
    ) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
        """Compiled multi-source search, bounded by ``limit``; exact either way.

        With a few targets (at most :data:`ALT_MAX_TARGETS`), A* guided by landmark lower
        bounds (:mod:`routing.landmarks`); otherwise Dijkstra (:func:`routing.kernels.dijkstra`),
        which stops once every target is settled. With targets, only the targets' costs
        (and paths) are final; no cost is ever below the true one.
        """
        if 0 < len(targets) <= ALT_MAX_TARGETS and len(sources):
            return self._alt(weight, sources, source_cost, targets, limit)
        dist, pred = dijkstra(self.indptr, self.head, weight, sources, source_cost, limit, targets)
        return dist, pred

    def point_to_point(
        self,
        weight: NDArray[np.float64],
        sources: NDArray[np.int64],
        source_cost: NDArray[np.float64],
        target: int,
    ) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
        """The cheapest way from the sources to one target (A* with landmark bounds)."""
        return self._alt(weight, sources, source_cost, np.array([target], np.int64), np.inf)

    def between(self, a: Snap, b: Snap, weight: NDArray[np.float64]) -> tuple[float, list[int]]:
        """Cost and edges from one snapped position to another along the streets.

        Both ends are priced along their own snapped edge (its share of the edge's weight,
        as :func:`routing.chains.launch` and :func:`routing.chains.reach` do), without the
        straight offsets to the coordinates. ``(inf, [])`` when ``b`` is unreachable.
        Searched by ALT on a per-thread workspace (see :func:`routing.landmarks.alt_route`).
        """
        ea, eb = a.edge, b.edge
        wa, wb = float(weight[ea]), float(weight[eb])
        # a point exactly at an end of its edge costs that end, even on a closed edge
        cost = np.array(
            [
                a.fraction * wa if a.fraction > 0 else 0.0,
                (1 - a.fraction) * wa if a.fraction < 1 else 0.0,
            ]
        )
        exit_cost = np.array(
            [
                b.fraction * wb if b.fraction > 0 else 0.0,
                (1 - b.fraction) * wb if b.fraction < 1 else 0.0,
            ]
        )
        lm = self.landmarks()
        dist, pred, done, h_of, touched = self._workspace()
        best, _target, path = alt_route(
            self.indptr,
            self.head,
            self.tail,
            weight,
            lm.from_lm,
            lm.to_lm,
            self._scale(weight),
            np.array([self.tail[ea], self.head[ea]], np.int64),
            cost,
            np.array([self.tail[eb], self.head[eb]], np.int64),
            exit_cost,
            dist,
            pred,
            done,
            h_of,
            touched,
        )
        if ea == eb and b.fraction >= a.fraction:
            along = (b.fraction - a.fraction) * wa if b.fraction > a.fraction else 0.0
            if along <= best:
                return along, []
        if not math.isfinite(best):
            return math.inf, []
        return float(best), path.tolist()

    def _workspace(
        self,
    ) -> tuple[
        NDArray[np.float64],
        NDArray[np.int64],
        NDArray[np.bool_],
        NDArray[np.float64],
        NDArray[np.int64],
    ]:
        """This thread's clean per-node search buffers (the kernels leave them clean)."""
        local = self.__dict__.get("_local")
        if local is None:
            local = threading.local()
            object.__setattr__(self, "_local", local)
        buffers = getattr(local, "buffers", None)
        if buffers is None:
            n = self.n_nodes
            buffers = (
                np.full(n, np.inf),
                np.full(n, -1, np.int64),
                np.zeros(n, np.bool_),
                np.full(n, -1.0),
                np.empty(n, np.int64),
            )
            local.buffers = buffers
        return buffers

    def _alt(
        self,
        weight: NDArray[np.float64],
        sources: NDArray[np.int64],
        source_cost: NDArray[np.float64],
        targets: NDArray[np.int64],
        limit: float,
    ) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
        lm = self.landmarks()
        dist, pred = alt_search(
            self.indptr,
            self.head,
            weight,
            lm.from_lm,
            lm.to_lm,
            self._scale(weight),
            np.asarray(sources, np.int64),
            np.asarray(source_cost, np.float64),
            np.asarray(targets, np.int64),
            float(limit),
        )
        return dist, pred

    def landmarks(self) -> Landmarks:
        """This network's landmark tables on free-flow times.

        Built by :func:`compile_street_graph` (so a city base carries them); networks read
        from ``.npz`` or older pickles compute them at first use.
        """
        cached = self.__dict__.get("_landmarks")
        if cached is None:
            cached = build_landmarks(
                self.indptr,
                self.tail,
                self.head,
                self.base_time_s,
                self._node_xy[:, 0],
                self._node_xy[:, 1],
            )
            object.__setattr__(self, "_landmarks", cached)
        return cached

    def _scale(self, weight: NDArray[np.float64]) -> float:
        """How far ``weight`` is at least above free flow (``min(weight / base_time_s)``).

        One pass over the edges per weight array, remembered for the last few arrays: a
        live overlay publishes a new read-only array per version (so the pass happens at
        the first search after each update), and walk searches reuse theirs.
        """
        scales: dict[int, tuple[NDArray[np.float64], float]] = self.__dict__.get("_scales", {})
        hit = scales.get(id(weight))
        if hit is not None and hit[0] is weight:
            return hit[1]
        scale = float(lower_scale(weight, self.base_time_s))
        # copy on write: concurrent searches read a complete dict (a lost entry is redone)
        kept = dict(list(scales.items())[-(SCALES_KEPT - 1) :])
        kept[id(weight)] = (weight, scale)
        object.__setattr__(self, "_scales", kept)
        return scale

    def path_edges(self, pred: NDArray[np.int64], node: int) -> list[int]:
        """Edges from the search's source to ``node``, in travel order."""
        edges: list[int] = []
        while pred[node] >= 0:
            edge = int(pred[node])
            edges.append(edge)
            node = int(self.tail[edge])
        edges.reverse()
        return edges

    def save(self, path: Path) -> None:
        """Write the arrays to one ``.npz`` file."""
        arrays: dict[str, NDArray[Any]] = {
            "mode": np.array(self.mode),
            "node_lat": self.node_lat,
            "node_lon": self.node_lon,
            "indptr": self.indptr,
            "tail": self.tail,
            "head": self.head,
            "length_m": self.length_m,
            "base_time_s": self.base_time_s,
            "way_id": self.way_id,
            "highway": self.highway,
            "name_idx": self.name_idx,
            "names": np.array(self.names, dtype=object),
            "geom_offset": self.geom_offset,
            "geom_lon": self.geom_lon,
            "geom_lat": self.geom_lat,
        }
        if self.way_offset is not None and self.way_ids is not None:
            arrays["way_offset"] = self.way_offset
            arrays["way_ids"] = self.way_ids
        np.savez(path, allow_pickle=True, **arrays)

    @classmethod
    def load(cls, path: Path) -> StreetNetwork:
        """Read arrays written by :meth:`save`."""
        with np.load(path, allow_pickle=True) as z:
            return cls(
                mode=str(z["mode"]),
                node_lat=z["node_lat"],
                node_lon=z["node_lon"],
                indptr=z["indptr"],
                tail=z["tail"],
                head=z["head"],
                length_m=z["length_m"],
                base_time_s=z["base_time_s"],
                way_id=z["way_id"],
                highway=z["highway"],
                name_idx=z["name_idx"],
                names=tuple(z["names"].tolist()),
                geom_offset=z["geom_offset"],
                geom_lon=z["geom_lon"],
                geom_lat=z["geom_lat"],
                way_offset=z["way_offset"] if "way_offset" in z.files else None,
                way_ids=z["way_ids"] if "way_ids" in z.files else None,
            )


@dataclass(frozen=True)
class Snap:
    """A coordinate attached to a street edge at a fraction of its length."""

    lat: float
    lon: float
    edge: int
    fraction: float
    distance_m: float


def compile_street_graph(
    mode: str, graph: nx.MultiDiGraph, walk_speed_m_s: float = WALK_SPEED_M_S
) -> StreetNetwork:
    """Turn an osmnx graph into a :class:`StreetNetwork`.

    Drive speeds come from osmnx (``maxspeed`` where tagged, class means and
    :data:`DRIVE_SPEEDS_KPH` otherwise); walk and bike use constant speeds.
    """
    if mode == "drive":
        graph = ox.routing.add_edge_speeds(
            graph, hwy_speeds=DRIVE_SPEEDS_KPH, fallback=DRIVE_FALLBACK_KPH
        )
        graph = ox.routing.add_edge_travel_times(graph)
    nodes = list(graph.nodes)
    index = {node: i for i, node in enumerate(nodes)}
    node_lat = np.array([graph.nodes[n]["y"] for n in nodes], dtype=np.float64)
    node_lon = np.array([graph.nodes[n]["x"] for n in nodes], dtype=np.float64)
    rows: list[tuple[int, int, float, float, list[int], int, int, Any]] = []
    names: dict[str, int] = {"": 0}
    for u, v, data in graph.edges(data=True):
        length = float(data.get("length", 0.0))
        if mode == "drive":
            time_s = float(data["travel_time"])
        elif mode == "bike":
            time_s = length / BIKE_SPEED_M_S
        else:
            time_s = length / walk_speed_m_s
        name = _first(data.get("name")) or ""
        name_i = names.setdefault(str(name), len(names))
        highway = _HIGHWAY_CODE.get(str(_first(data.get("highway"))), 0)
        osmid = data.get("osmid", 0)
        ways = [int(w) for w in (osmid if isinstance(osmid, list) else [osmid])]
        rows.append(
            (index[u], index[v], length, time_s, ways, highway, name_i, data.get("geometry"))
        )
    rows.sort(key=lambda r: r[0])
    tail = np.array([r[0] for r in rows], dtype=np.int64)
    head = np.array([r[1] for r in rows], dtype=np.int64)
    indptr = np.zeros(len(nodes) + 1, dtype=np.int64)
    np.add.at(indptr, tail + 1, 1)
    indptr = np.cumsum(indptr)
    geom_lon: list[float] = []
    geom_lat: list[float] = []
    offsets = [0]
    for r in rows:
        geometry = r[7]
        if geometry is not None:
            xs, ys = geometry.xy
            geom_lon.extend(xs)
            geom_lat.extend(ys)
        else:
            geom_lon.extend((node_lon[r[0]], node_lon[r[1]]))
            geom_lat.extend((node_lat[r[0]], node_lat[r[1]]))
        offsets.append(len(geom_lon))
    net = StreetNetwork(
        mode=mode,
        node_lat=node_lat,
        node_lon=node_lon,
        indptr=indptr,
        tail=tail,
        head=head,
        length_m=np.array([r[2] for r in rows]),
        base_time_s=np.array([r[3] for r in rows]),
        way_id=np.array([r[4][0] for r in rows], dtype=np.int64),
        highway=np.array([r[5] for r in rows], dtype=np.uint8),
        name_idx=np.array([r[6] for r in rows], dtype=np.int32),
        names=tuple(names),
        geom_offset=np.array(offsets, dtype=np.int64),
        geom_lon=np.array(geom_lon),
        geom_lat=np.array(geom_lat),
        way_offset=np.cumsum([0, *(len(r[4]) for r in rows)], dtype=np.int64),
        way_ids=np.array([w for r in rows for w in r[4]], dtype=np.int64),
    )
    net.landmarks()  # built with the network, so they are pickled into the city base
    return net
