"""Street searches: the compiled kernel against networkx on the same graph and weights,
path reconstruction, and snapping (Porto Alegre, OSM 2020-08)."""

from __future__ import annotations

import itertools

import networkx as nx
import numpy as np
import pytest

from routing.base import CityBase
from routing.errors import NoStreetNearbyError
from routing.streets import StreetNetwork

PAIRS = 60


def to_digraph(net: StreetNetwork, weight: np.ndarray) -> nx.DiGraph:
    """A DiGraph of the network keeping the cheapest of parallel edges."""
    graph = nx.DiGraph()
    graph.add_nodes_from(range(net.n_nodes))
    order = np.argsort(-weight, kind="stable")  # heaviest first, so the lightest wins
    graph.add_weighted_edges_from(
        (int(net.tail[e]), int(net.head[e]), float(weight[e])) for e in order
    )
    return graph


@pytest.mark.parametrize("mode", ["walk", "bike", "drive"])
def test_kernel_distances_and_paths_agree_with_networkx(poa_base: CityBase, mode: str) -> None:
    net = poa_base.streets[mode]
    weight = net.base_time_s
    graph = to_digraph(net, weight)
    rng = np.random.default_rng({"walk": 1, "bike": 2, "drive": 3}[mode])
    reachable = unreachable = 0
    while reachable < PAIRS:
        s, t = (int(x) for x in rng.integers(0, net.n_nodes, 2))
        dist, pred = net.shortest_path(weight, np.array([s]), np.zeros(1), np.array([t], np.int64))
        try:
            expected = nx.shortest_path_length(graph, s, t, weight="weight")
        except nx.NetworkXNoPath:
            assert dist[t] == np.inf
            assert pred[t] == -1
            unreachable += 1
            assert unreachable < 10 * PAIRS, "the network is mostly disconnected"
            continue
        reachable += 1
        assert dist[t] == pytest.approx(expected, rel=1e-9, abs=1e-9)
        edges = net.path_edges(pred, t)
        if s == t:
            assert edges == []
            continue
        assert int(net.tail[edges[0]]) == s
        assert int(net.head[edges[-1]]) == t
        for a, b in itertools.pairwise(edges):
            assert int(net.head[a]) == int(net.tail[b])
        assert float(np.sum(weight[edges])) == pytest.approx(expected, rel=1e-9)


def test_target_early_exit_settles_the_target_with_its_final_distance(
    poa_base: CityBase,
) -> None:
    net = poa_base.streets["drive"]
    weight = net.base_time_s
    rng = np.random.default_rng(4)
    for _ in range(20):
        s, t = (int(x) for x in rng.integers(0, net.n_nodes, 2))
        full, _ = net.shortest_path(weight, np.array([s]), np.zeros(1), np.zeros(0, np.int64))
        early, _ = net.shortest_path(weight, np.array([s]), np.zeros(1), np.array([t]))
        assert early[t] == full[t]
        # the early search stopped: nothing it labelled is cheaper than in the full one
        assert np.all(early[np.isfinite(early)] >= full[np.isfinite(early)])


def test_closed_edges_are_never_used(poa_base: CityBase) -> None:
    net = poa_base.streets["drive"]
    weight = net.base_time_s.copy()
    rng = np.random.default_rng(5)
    s, t = 0, 0
    while True:
        s, t = (int(x) for x in rng.integers(0, net.n_nodes, 2))
        dist, pred = net.shortest_path(weight, np.array([s]), np.zeros(1), np.array([t]))
        if np.isfinite(dist[t]) and len(net.path_edges(pred, t)) > 3:
            break
    route = net.path_edges(pred, t)
    weight[route[len(route) // 2]] = np.inf
    dist2, pred2 = net.shortest_path(weight, np.array([s]), np.zeros(1), np.array([t]))
    assert route[len(route) // 2] not in net.path_edges(pred2, t)
    assert dist2[t] >= dist[t]


@pytest.mark.parametrize("mode", ["walk", "bike", "drive"])
def test_points_on_streets_snap_within_5_m(poa_base: CityBase, mode: str) -> None:
    net = poa_base.streets[mode]
    rng = np.random.default_rng(6)
    # midpoints of random geometry segments, and of the 20 longest ones (far from vertices)
    lo = net.geom_offset[:-1]
    counts = np.diff(net.geom_offset)
    edges = rng.integers(0, net.n_edges, 100)
    starts = lo[edges] + (rng.random(100) * (counts[edges] - 1)).astype(np.int64)
    step = np.hypot(
        np.diff(net.geom_lat) * 111_320, np.diff(net.geom_lon) * 111_320 * np.cos(np.radians(30))
    )
    within = np.ones(len(step), bool)
    within[net.geom_offset[1:-1] - 1] = False
    longest = np.argsort(np.where(within, step, 0))[-20:]
    assert step[longest].min() > 300  # the case a nearest-vertex snap gets wrong
    for i in np.r_[starts, longest]:
        lat = float(net.geom_lat[i] + net.geom_lat[i + 1]) / 2
        lon = float(net.geom_lon[i] + net.geom_lon[i + 1]) / 2
        snap = net.snap(lat, lon, 50.0)
        assert snap.distance_m < 5.0
        assert 0.0 <= snap.fraction <= 1.0
        coords = net.edge_coords(snap.edge)
        # the point really lies along the snapped edge's geometry
        along = np.r_[0, np.cumsum(np.hypot(*np.diff(coords, axis=0).T))]
        assert along[-1] > 0 or snap.fraction == 0.0


def test_snap_fraction_is_the_projection_along_the_edge(poa_base: CityBase) -> None:
    net = poa_base.streets["walk"]
    counts = np.diff(net.geom_offset)
    edge = int(np.flatnonzero((counts == 2) & (net.length_m > 200))[0])
    lon = net.geom_lon[net.geom_offset[edge] : net.geom_offset[edge + 1]]
    lat = net.geom_lat[net.geom_offset[edge] : net.geom_offset[edge + 1]]
    snap = net.snap(
        float(lat[0] + 0.25 * (lat[1] - lat[0])), float(lon[0] + 0.25 * (lon[1] - lon[0])), 50
    )
    assert snap.distance_m < 1.0
    assert net.tail[snap.edge] in (net.tail[edge], net.head[edge])
    expected = 0.25 if net.tail[snap.edge] == net.tail[edge] else 0.75
    assert snap.fraction == pytest.approx(expected, abs=0.01)


def test_far_point_raises_no_street_nearby(poa_base: CityBase) -> None:
    net = poa_base.streets["walk"]
    # Lago Guaíba, 2 km west of the shore of central Porto Alegre
    with pytest.raises(NoStreetNearbyError, match="no walk street within 300 m"):
        net.snap(-30.05, -51.27, 300.0)
    with pytest.raises(NoStreetNearbyError, match="no drive street"):
        poa_base.streets["drive"].snap(-30.05, -51.27, 300.0)


def test_snaps_are_cached_and_survive_pickling(poa_base: CityBase) -> None:
    import pickle

    walk = poa_base.streets["walk"]
    first = walk.snap(-30.0346, -51.2177, 300.0)
    assert walk.snap(-30.0346, -51.2177, 300.0) is first  # the cached answer
    assert walk.snap(-30.0346, -51.2177, 50.0) == first  # another limit: its own entry
    copy = pickle.loads(pickle.dumps(walk, protocol=pickle.HIGHEST_PROTOCOL))
    assert copy.snap(-30.0346, -51.2177, 300.0) == first
    assert copy.snap(-30.0346, -51.2177, 300.0) is not first  # the copy has its own cache
