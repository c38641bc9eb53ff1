"""Street networks as flat arrays: CSR adjacency, lengths, base times, geometry, way ids.

Compiled once from osmnx graphs at build time, saved as ``.npz``, loaded by reading
arrays. Snapping and searches work on these arrays only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import networkx as nx
import numpy as np
import osmnx as ox
from numpy.typing import NDArray
from scipy.spatial import cKDTree

from correspondance.geo import WALK_SPEED_M_S, project_xy
from routing.errors import NoStreetNearbyError
from routing.kernels import astar, dijkstra

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
    _tree: cKDTree = field(init=False, repr=False)
    _vertex_edge: NDArray[np.int64] = field(init=False, repr=False)
    _lat0: float = field(init=False, repr=False)
    _node_xy: NDArray[np.float64] = field(init=False, repr=False)
    _snaps: Callable[[float, float, float], Snap] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        # A KD-tree over every geometry vertex (equirectangular metres around the centre)
        # finds the nearest street *segment* region, not just the nearest intersection.
        lat0 = float(np.mean(self.node_lat)) if len(self.node_lat) else 0.0
        xy = project_xy(self.geom_lat, self.geom_lon, lat0)
        object.__setattr__(self, "_lat0", lat0)
        object.__setattr__(self, "_node_xy", project_xy(self.node_lat, self.node_lon, lat0))
        object.__setattr__(self, "_tree", cKDTree(xy))
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
        point = project_xy(np.array([lat]), np.array([lon]), self._lat0)[0]
        vertex_distance, _ = self._tree.query(point)
        if not np.isfinite(vertex_distance):
            raise NoStreetNearbyError(f"no {self.mode} street near {lat:.6f},{lon:.6f}")
        # The nearest vertex is not the nearest street: a point halfway along a 400 m
        # straight segment is 200 m from both its ends. Any segment that passes within
        # the vertex distance has an end within that distance plus half its length.
        radius = min(float(vertex_distance), max_distance_m) + self._half_longest_segment()
        near = np.asarray(self._tree.query_ball_point(point, radius), np.int64)
        edge_of = self._vertex_edge[near]
        # segments (i, i + 1) touching a nearby vertex, within one edge's geometry
        starts = np.unique(
            np.concatenate(
                [
                    near[near + 1 < self.geom_offset[edge_of + 1]],
                    near[near - 1 >= self.geom_offset[edge_of]] - 1,
                ]
            )
        )
        a = project_xy(self.geom_lat[starts], self.geom_lon[starts], self._lat0)
        b = project_xy(self.geom_lat[starts + 1], self.geom_lon[starts + 1], self._lat0)
        ab = b - a
        seg_len2 = np.einsum("ij,ij->i", ab, ab)
        t = np.clip(
            np.einsum("ij,ij->i", point - a, ab) / np.where(seg_len2 > 0, seg_len2, 1.0), 0, 1
        )
        gap = np.hypot(*(a + t[:, None] * ab - point).T)
        if not len(gap) or float(gap.min()) > max_distance_m:
            raise NoStreetNearbyError(
                f"no {self.mode} street within {max_distance_m:.0f} m of {lat:.6f},{lon:.6f}"
            )
        best = int(np.argmin(gap))
        start, edge = int(starts[best]), int(self._vertex_edge[starts[best]])
        lo, hi = int(self.geom_offset[edge]), int(self.geom_offset[edge + 1])
        xy = project_xy(self.geom_lat[lo:hi], self.geom_lon[lo:hi], self._lat0)
        seg = np.r_[0.0, np.cumsum(np.hypot(*np.diff(xy, axis=0).T))]
        along = seg[start - lo] + float(t[best]) * (seg[start - lo + 1] - seg[start - lo])
        fraction = float(along / seg[-1]) if seg[-1] > 0 else 0.0
        return Snap(lat=lat, lon=lon, edge=edge, fraction=fraction, distance_m=float(gap[best]))

    def _half_longest_segment(self) -> float:
        """Half the longest straight geometry segment, in metres (computed once)."""
        cached = self.__dict__.get("_half_segment_m")
        if cached is None:
            xy = project_xy(self.geom_lat, self.geom_lon, self._lat0)
            step = np.hypot(*np.diff(xy, axis=0).T)
            within = np.ones(len(step), bool)
            within[self.geom_offset[1:-1] - 1] = False  # a step from one edge to the next
            cached = float(step[within].max()) / 2 if within.any() else 0.0
            object.__setattr__(self, "_half_segment_m", cached)
        return float(cached)

    def shortest_path(
        self,
        weight: NDArray[np.float64],
        sources: NDArray[np.int64],
        source_cost: NDArray[np.float64],
        targets: NDArray[np.int64],
        limit: float = np.inf,
    ) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
        """Compiled multi-source search: A* for one unbounded target, else Dijkstra.

        See :func:`routing.kernels.astar` and :func:`routing.kernels.dijkstra`.
        """
        if len(targets) == 1 and not np.isfinite(limit):
            return self.point_to_point(weight, sources, source_cost, int(targets[0]))
        dist, pred = dijkstra(self.indptr, self.head, weight, sources, source_cost, limit, targets)
        return dist, pred

    def point_to_point(
        self,
        weight: NDArray[np.float64],
        sources: NDArray[np.int64],
        source_cost: NDArray[np.float64],
        target: int,
    ) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
        """A* to one target with a straight-line bound at the fastest edge speed.

        The bound is scaled by 0.99 so the planar (equirectangular) distance can never
        exceed the great-circle length it stands for: the result is exactly Dijkstra's.
        """
        fastest = self._fastest(weight)
        s_per_m = 0.99 / fastest if fastest > 0 else 0.0
        dist, pred = astar(
            self.indptr,
            self.head,
            weight,
            self._node_xy[:, 0],
            self._node_xy[:, 1],
            sources,
            source_cost,
            np.int64(target),
            s_per_m,
        )
        return dist, pred

    def _fastest(self, weight: NDArray[np.float64]) -> float:
        """The fastest edge speed (m/s) under ``weight``, computed once per weight array.

        Weight arrays are immutable (the live overlay publishes a new one on each change),
        so the scan of every edge happens once per overlay version, not once per query.
        """
        cached = self.__dict__.get("_fastest_for")
        if cached is not None and cached[0] is weight:
            return float(cached[1])
        with np.errstate(divide="ignore", invalid="ignore"):
            speeds = np.where(weight > 0, self.length_m / weight, 0.0)
        fastest = float(np.max(speeds[np.isfinite(speeds)], initial=0.0))
        object.__setattr__(self, "_fastest_for", (weight, fastest))
        return fastest

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
    return StreetNetwork(
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
