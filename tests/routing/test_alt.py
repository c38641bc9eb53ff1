"""Landmark A* (ALT) answers exactly as plain Dijkstra, also under live multipliers and
closures, and grid snapping answers exactly as a scan of every segment (Porto Alegre)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from numpy.typing import NDArray

from correspondance.geo import project_xy
from routing.base import CityBase
from routing.errors import NoStreetNearbyError
from routing.kernels import dijkstra
from routing.landmarks import lower_scale
from routing.overlay import OverlayHolder
from routing.streets import Snap, StreetNetwork

PAIRS = 150


def live_weights(
    net: StreetNetwork, rng: np.random.Generator, mode: str
) -> dict[str, NDArray[np.float64]]:
    """Weight arrays searches really use: free flow, walk metres, congestion + closures."""
    congested = np.ones(net.n_edges)
    hit = rng.choice(net.n_edges, net.n_edges // 5, replace=False)
    congested[hit] = 1 + rng.random(len(hit)) * 4
    congested[rng.choice(net.n_edges, net.n_edges // 50, replace=False)] = np.inf
    return {
        "free flow": net.base_time_s,
        "metres": net.length_m,
        "live": net.base_time_s * congested,
        "slower everywhere": net.base_time_s * 2.5,
    }


def plain(
    net: StreetNetwork,
    weight: NDArray[np.float64],
    src: NDArray[np.int64],
    cost: NDArray[np.float64],
) -> NDArray[np.float64]:
    dist, _ = dijkstra(net.indptr, net.head, weight, src, cost, np.inf, np.zeros(0, np.int64))
    return np.asarray(dist)


def check_path(
    net: StreetNetwork,
    weight: NDArray[np.float64],
    pred: NDArray[np.int64],
    src: dict[int, float],
    t: int,
    expected: float,
) -> None:
    edges = net.path_edges(pred, t)
    start = int(net.tail[edges[0]]) if edges else t
    assert start in src
    for a, b in itertools.pairwise(edges):
        assert int(net.head[a]) == int(net.tail[b])
    total = src[start] + float(np.sum(weight[edges]))
    assert total == pytest.approx(expected, rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("mode", ["walk", "bike", "drive"])
def test_alt_equals_dijkstra_on_random_pairs_under_live_weights(
    poa_base: CityBase, mode: str
) -> None:
    net = poa_base.streets[mode]
    rng = np.random.default_rng({"walk": 11, "bike": 12, "drive": 13}[mode])
    compared = 0
    for label, weight in live_weights(net, rng, mode).items():
        for _ in range(PAIRS // 3):
            # one or two sources with launch costs, one or two targets (a snapped point)
            n_src, n_tgt = (int(x) for x in rng.integers(1, 3, 2))
            src = rng.integers(0, net.n_nodes, n_src)
            cost = rng.random(n_src) * 30
            targets = rng.integers(0, net.n_nodes, n_tgt)
            expected = plain(net, weight, src, cost)
            dist, pred = net.shortest_path(weight, src, cost, targets)
            launched = {int(s): float(c) for s, c in zip(src, cost, strict=True)}
            launched = {s: min(c, launched[s]) for s, c in launched.items()}
            for t in targets:
                t = int(t)
                if math.isinf(expected[t]):
                    assert dist[t] == np.inf, label
                    continue
                compared += 1
                assert dist[t] == pytest.approx(expected[t], rel=1e-9, abs=1e-9), label
                check_path(net, weight, pred, launched, t, float(expected[t]))
            # labels are never below the truth, wherever the search stopped
            seen = np.isfinite(dist)
            assert np.all(dist[seen] >= expected[seen] - 1e-9)
    assert compared >= PAIRS  # most pairs are connected


def test_alt_respects_the_limit_like_dijkstra(poa_base: CityBase) -> None:
    net = poa_base.streets["walk"]
    rng = np.random.default_rng(21)
    for _ in range(60):
        s, t = (int(x) for x in rng.integers(0, net.n_nodes, 2))
        limit = float(rng.uniform(100, 3000))
        src, zero, tgt = np.array([s]), np.zeros(1), np.array([t])
        ref, _ = dijkstra(net.indptr, net.head, net.length_m, src, zero, limit, tgt)
        dist, _ = net.shortest_path(net.length_m, src, zero, tgt, limit)
        assert dist[t] == ref[t] or dist[t] == pytest.approx(ref[t], rel=1e-9)


def test_a_closure_on_the_route_is_avoided_at_the_next_query(poa_base: CityBase) -> None:
    drive = poa_base.streets["drive"]
    holder = OverlayHolder(drive)
    rng = np.random.default_rng(22)
    while True:
        s, t = (int(x) for x in rng.integers(0, drive.n_nodes, 2))
        weight = holder.current.drive_weights(drive)
        dist, pred = drive.point_to_point(weight, np.array([s]), np.zeros(1), t)
        if np.isfinite(dist[t]) and len(drive.path_edges(pred, t)) > 6:
            break
    route = drive.path_edges(pred, t)
    closed = route[len(route) // 2]
    jam = {int(e): 3.0 for e in route[:3]}
    holder.set_multipliers({closed: math.inf, **jam})
    weight = holder.current.drive_weights(drive)
    dist2, pred2 = drive.point_to_point(weight, np.array([s]), np.zeros(1), t)
    assert closed not in drive.path_edges(pred2, t)
    expected = plain(drive, weight, np.array([s]), np.zeros(1))[t]
    assert dist2[t] == pytest.approx(expected, rel=1e-9) or dist2[t] == expected
    assert dist2[t] >= dist[t]


def test_scale_bounds_every_weight_from_below(poa_base: CityBase) -> None:
    drive = poa_base.streets["drive"]
    weight = drive.base_time_s * np.where(np.arange(drive.n_edges) % 7 == 0, np.inf, 1.5)
    scale = lower_scale(weight, drive.base_time_s)
    assert scale == pytest.approx(1.5)
    assert scale <= 1.5
    assert np.all(scale * drive.base_time_s <= weight)
    walk = poa_base.streets["walk"]
    scale = lower_scale(walk.length_m, walk.base_time_s)
    assert np.all(scale * walk.base_time_s <= walk.length_m)
    assert lower_scale(np.full(3, np.inf), np.ones(3)) == 0.0  # all closed: no bound


def test_landmark_tables_travel_with_the_pickled_network(poa_base: CityBase) -> None:
    import pickle

    bike = poa_base.streets["bike"]
    lm = bike.landmarks()
    assert lm.from_lm.shape == (bike.n_nodes, len(lm.nodes))
    assert len(set(lm.nodes.tolist())) == len(lm.nodes)  # distinct landmarks
    copy = pickle.loads(pickle.dumps(bike, protocol=pickle.HIGHEST_PROTOCOL))
    assert "_landmarks" in copy.__dict__  # loaded, not recomputed
    assert np.array_equal(copy.landmarks().to_lm, lm.to_lm)
    # the tables bound free-flow times: d(L, v) ≤ d(L, u) + base(u, v) on every edge
    f = lm.from_lm
    finite = (f[bike.tail] < 1e17).all(axis=1)
    step = f[bike.head[finite]] - f[bike.tail[finite]]
    assert np.all(step <= bike.base_time_s[finite, None] + 1e-6)


def test_between_snapped_points_matches_dijkstra(poa_base: CityBase) -> None:
    net = poa_base.streets["drive"]
    rng = np.random.default_rng(23)
    weight = net.base_time_s * (1 + rng.random(net.n_edges))
    lat_lo, lat_hi = np.percentile(net.node_lat, [20, 80])
    lon_lo, lon_hi = np.percentile(net.node_lon, [20, 80])
    found = 0
    for _ in range(40):
        a = net.snap(rng.uniform(lat_lo, lat_hi), rng.uniform(lon_lo, lon_hi), 500)
        b = net.snap(rng.uniform(lat_lo, lat_hi), rng.uniform(lon_lo, lon_hi), 500)
        cost, edges = net.between(a, b, weight)
        src = np.array([net.tail[a.edge], net.head[a.edge]])
        start = np.array([a.fraction, 1 - a.fraction]) * weight[a.edge]
        dist = plain(net, weight, src, start)
        expected = min(
            dist[net.tail[b.edge]] + b.fraction * weight[b.edge],
            dist[net.head[b.edge]] + (1 - b.fraction) * weight[b.edge],
        )
        if a.edge == b.edge and b.fraction >= a.fraction:
            expected = min(expected, (b.fraction - a.fraction) * weight[a.edge])
        if math.isinf(expected):
            assert math.isinf(cost)
            continue
        found += 1
        assert cost == pytest.approx(expected, rel=1e-9)
        for x, y in itertools.pairwise(edges):
            assert int(net.head[x]) == int(net.tail[y])
    assert found >= 30


def brute_snap(net: StreetNetwork, lat: float, lon: float, max_m: float) -> Snap:
    """Nearest segment by scanning every one (lowest index on ties), the old arithmetic."""
    lat0 = float(np.mean(net.node_lat))
    point = project_xy(np.array([lat]), np.array([lon]), lat0)[0]
    starts = np.arange(len(net.geom_lat) - 1)
    edge_of = np.repeat(np.arange(net.n_edges), np.diff(net.geom_offset))
    starts = starts[edge_of[starts] == edge_of[starts + 1]]
    a = project_xy(net.geom_lat[starts], net.geom_lon[starts], lat0)
    b = project_xy(net.geom_lat[starts + 1], net.geom_lon[starts + 1], lat0)
    ab = b - a
    seg_len2 = np.einsum("ij,ij->i", ab, ab)
    t = np.clip(np.einsum("ij,ij->i", point - a, ab) / np.where(seg_len2 > 0, seg_len2, 1.0), 0, 1)
    gap = np.hypot(*(a + t[:, None] * ab - point).T)
    best = int(np.argmin(gap))
    if gap[best] > max_m:
        raise NoStreetNearbyError("too far")
    start, edge = int(starts[best]), int(edge_of[starts[best]])
    lo, hi = int(net.geom_offset[edge]), int(net.geom_offset[edge + 1])
    xy = project_xy(net.geom_lat[lo:hi], net.geom_lon[lo:hi], lat0)
    seg = np.r_[0.0, np.cumsum(np.hypot(*np.diff(xy, axis=0).T))]
    along = seg[start - lo] + float(t[best]) * (seg[start - lo + 1] - seg[start - lo])
    fraction = float(along / seg[-1]) if seg[-1] > 0 else 0.0
    return Snap(lat=lat, lon=lon, edge=edge, fraction=fraction, distance_m=float(gap[best]))


@pytest.mark.parametrize("mode", ["walk", "drive"])
def test_grid_snap_equals_a_scan_of_every_segment(poa_base: CityBase, mode: str) -> None:
    net = poa_base.streets[mode]
    rng = np.random.default_rng(24)
    lat_lo, lat_hi = net.node_lat.min() - 0.01, net.node_lat.max() + 0.01
    lon_lo, lon_hi = net.node_lon.min() - 0.01, net.node_lon.max() + 0.01
    nodes = rng.integers(0, net.n_nodes, 40)
    points = [(float(net.node_lat[n]), float(net.node_lon[n])) for n in nodes]  # ties
    points += [(rng.uniform(lat_lo, lat_hi), rng.uniform(lon_lo, lon_hi)) for _ in range(80)]
    for (lat, lon), max_m in itertools.product(points, (30.0, 400.0)):
        try:
            expected = brute_snap(net, lat, lon, max_m)
        except NoStreetNearbyError:
            with pytest.raises(NoStreetNearbyError):
                net._snap(lat, lon, max_m)
            continue
        assert net._snap(lat, lon, max_m) == expected


@pytest.mark.parametrize("mode", ["car", "walk", "bicycle"])
def test_direct_street_options_cost_what_an_unaimed_search_finds(
    poa_base: CityBase, mode: str
) -> None:
    """The planner's direct options aim their search at the destination (ALT, early stop):
    the same costs as the bounded Dijkstra over the whole limit, under live congestion."""
    from routing.chains import launch, reach
    from routing.modes import ModeContext, direct

    drive = poa_base.streets["drive"]
    holder = OverlayHolder(drive)
    rng = np.random.default_rng(25)
    jam = rng.choice(drive.n_edges, 2000, replace=False)
    holder.set_multipliers(
        {
            int(e): (math.inf if i % 20 == 0 else float(1 + rng.random() * 3))
            for i, e in enumerate(jam)
        }
    )
    walk = poa_base.streets["walk"]
    compared = 0
    for _ in range(12):
        a, b = rng.integers(0, walk.n_nodes, 2)
        ctx = ModeContext(
            poa_base,
            holder.current,
            (float(walk.node_lat[a]), float(walk.node_lon[a])),
            (float(walk.node_lat[b]), float(walk.node_lon[b])),
            1.3,
            1800.0,
        )
        result = direct(ctx, mode)
        phase = result.phases[0]
        search = launch(
            phase.net,
            phase.weight,
            phase.source_att,
            np.zeros(1),
            phase.offset_speed_m_s,
            phase.limit_s,
        )
        expected, _ = reach(search, phase.target_att, phase.offset_speed_m_s)
        expected = expected + phase.exit_cost
        got = result.final_cost
        if math.isinf(expected[0]):
            assert math.isinf(got[0])
            continue
        compared += 1
        assert got[0] == pytest.approx(expected[0], rel=1e-9)
        segments = result.describe(0)
        assert segments[0].seconds == pytest.approx(expected[0], rel=1e-9)  # exit included
        edges = segments[0].edges
        for x, y in itertools.pairwise(edges):
            assert int(phase.net.head[x]) == int(phase.net.tail[y])
    assert compared >= 6
