"""ALT: A* with landmark lower bounds, exact under live weights (numba kernels).

Preprocessing runs once per network on its free-flow times (``base_time_s``): from a few
far-apart *landmarks* L, the distances d(L, v) and d(v, L) to and from every node. By the
triangle inequality, ``max(d(L, t) − d(L, v), d(v, L) − d(t, L))`` never exceeds the
free-flow time from v to t. A live weight array ``w`` only needs one number to reuse those
tables: ``scale = min(w / base)`` over the edges (1 for congestion multipliers, which are
≥ 1 or infinite), since then ``scale × bound`` never exceeds the live time either. The
bound is consistent, so A* settles every node at its final cost and answers exactly as
Dijkstra does; a live update costs one pass over the weights (done at the first search
that uses the new array), never a new preprocessing.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np
from numba import njit
from numpy.typing import NDArray

from routing.heap_kernels import mark_targets, relax_edge, settle
from routing.kernels import dijkstra

N_LANDMARKS = 16
ACTIVE = N_LANDMARKS  # landmarks a search uses: the best at its first source
UNREACHED = 1e18  # stands for an infinite landmark distance (keeps the bounds finite)
SCALE_MARGIN = 1.0 - 1e-12  # keeps scale × base ≤ weight through rounding


@dataclass(frozen=True, eq=False)
class Landmarks:
    """Distance tables of one network's landmarks (node-major: one row per node)."""

    nodes: NDArray[np.int64]
    from_lm: NDArray[np.float64]  # (n_nodes, k): d(L, v)
    to_lm: NDArray[np.float64]  # (n_nodes, k): d(v, L)


def build_landmarks(
    indptr: NDArray[np.int64],
    tail: NDArray[np.int64],
    head: NDArray[np.int64],
    base: NDArray[np.float64],
    node_x: NDArray[np.float64],
    node_y: NDArray[np.float64],
    k: int = N_LANDMARKS,
) -> Landmarks:
    """Pick ``k`` landmarks by farthest selection and compute their distance tables.

    The first one is the node farthest from a well-connected central node; each next one
    is the node whose nearest landmark is farthest. Two full Dijkstra searches each.
    """
    n = len(indptr) - 1
    order = np.argsort(head, kind="stable")
    r_indptr = np.zeros(n + 1, np.int64)
    np.add.at(r_indptr, head + 1, 1)
    r_indptr = np.cumsum(r_indptr)
    r_head = tail[order]
    r_weight = base[order]
    no_targets = np.zeros(0, np.int64)
    zero = np.zeros(1)

    def forward(s: int) -> NDArray[np.float64]:
        d, _ = dijkstra(indptr, head, base, np.array([s], np.int64), zero, np.inf, no_targets)
        return np.asarray(d)

    def backward(s: int) -> NDArray[np.float64]:
        d, _ = dijkstra(
            r_indptr, r_head, r_weight, np.array([s], np.int64), zero, np.inf, no_targets
        )
        return np.asarray(d)

    k = min(k, n)
    from_lm = np.full((n, k), UNREACHED)
    to_lm = np.full((n, k), UNREACHED)
    nodes = np.zeros(k, np.int64)
    if k == 0:
        return Landmarks(nodes, from_lm, to_lm)
    # a seed that reaches much of the network: among nodes near the centre, the one that
    # reaches the most (a random node may sit in a tiny one-way island)
    centre = np.argsort(np.hypot(node_x - node_x.mean(), node_y - node_y.mean()))[:8]
    reach = [forward(int(c)) for c in centre]
    seed = max(range(len(centre)), key=lambda i: int(np.isfinite(reach[i]).sum()))
    nearest = reach[seed]
    for j in range(k):
        finite = np.isfinite(nearest)
        cand = np.where(finite, nearest, -1.0)
        cand[nodes[:j]] = -1.0
        lm = int(np.argmax(cand))
        nodes[j] = lm
        d_from = forward(lm)
        d_to = backward(lm)
        from_lm[:, j] = np.where(np.isfinite(d_from), d_from, UNREACHED)
        to_lm[:, j] = np.where(np.isfinite(d_to), d_to, UNREACHED)
        nearest = d_from if j == 0 else np.minimum(nearest, d_from)
    return Landmarks(nodes, from_lm, to_lm)


@njit(cache=True, nogil=True)
def lower_scale(weight, base):
    """The largest s (with a rounding margin) such that s × base ≤ weight on every edge."""
    s = np.inf
    for e in range(weight.shape[0]):
        b = base[e]
        if b > 0:
            r = weight[e] / b
            if r < s:
                s = r
    if not s < np.inf:  # no edge with a positive base time bounds anything
        return 0.0
    return max(s, 0.0) * SCALE_MARGIN


@njit(cache=True, nogil=True)
def _bound(from_lm, to_lm, active, v, targets, scale):
    """Lower bound on the cost from v to the nearest of ``targets`` (min over targets)."""
    best = np.inf
    for j in range(targets.shape[0]):
        t = targets[j]
        h = 0.0
        for a in range(active.shape[0]):
            k = active[a]
            f = from_lm[t, k] - from_lm[v, k]
            if f > h:
                h = f
            b = to_lm[v, k] - to_lm[t, k]
            if b > h:
                h = b
        if h < best:
            best = h
    return best * scale


@njit(cache=True, nogil=True)
def _active(from_lm, to_lm, sources, targets, n_active):
    """The landmarks giving the best bound from the first source to the targets."""
    k = from_lm.shape[1]
    gain = np.zeros(k)
    s = sources[0]
    for j in range(k):
        g = np.inf
        for i in range(targets.shape[0]):
            t = targets[i]
            h = max(from_lm[t, j] - from_lm[s, j], to_lm[s, j] - to_lm[t, j], 0.0)
            g = min(g, h)
        gain[j] = g
    order = np.argsort(-gain)
    return order[: min(n_active, k)].copy()


@njit(cache=True, nogil=True)
def alt_search(indptr, head, weight, from_lm, to_lm, scale, src_nodes, src_cost, targets, limit):
    """Multi-source A* to every node of ``targets``, guided by landmark lower bounds.

    Stops once every target is settled. Returns ``(dist, pred)`` like
    :func:`routing.kernels.dijkstra`: targets (and every node settled before them) carry
    their final cost; no label is ever below the true cost. Non-finite weights are closed
    edges; costs above ``limit`` are not labelled.
    """
    n = indptr.shape[0] - 1
    dist = np.full(n, np.inf)
    pred = np.full(n, -1, np.int64)
    done = np.zeros(n, np.bool_)
    h_of = np.full(n, -1.0)
    is_target, left = mark_targets(n, targets)
    active = _active(from_lm, to_lm, src_nodes, targets, ACTIVE)
    heap = [(0.0, 0.0, np.int64(0))]
    heap.pop()
    for i in range(src_nodes.shape[0]):
        s = src_nodes[i]
        if src_cost[i] < dist[s] and src_cost[i] <= limit:
            dist[s] = src_cost[i]
            if h_of[s] < 0:
                h_of[s] = _bound(from_lm, to_lm, active, s, targets, scale)
            heapq.heappush(heap, (src_cost[i] + h_of[s], src_cost[i], np.int64(s)))
    while heap:
        _f, d, u = heapq.heappop(heap)
        if done[u] or d > dist[u]:
            continue
        if settle(u, done, is_target, left):
            break
        for e in range(indptr[u], indptr[u + 1]):
            v = relax_edge(e, d, head, weight, dist, pred, limit)
            if v >= 0:
                nd = dist[v]
                if h_of[v] < 0:
                    h_of[v] = _bound(from_lm, to_lm, active, v, targets, scale)
                heapq.heappush(heap, (nd + h_of[v], nd, np.int64(v)))
    return dist, pred


@njit(cache=True, nogil=True)
def alt_route(
    indptr,
    head,
    tail,
    weight,
    from_lm,
    to_lm,
    scale,
    src_nodes,
    src_cost,
    targets,
    target_cost,
    dist,
    pred,
    done,
    h_of,
    touched,
):
    """:func:`alt_search` on a reusable workspace, answering one route.

    ``dist`` (inf), ``pred`` (-1), ``done`` (False) and ``h_of`` (-1) are per-node buffers,
    clean on entry and left clean on return (only the nodes labelled are reset), so a
    query costs what it visits, not the size of the network. Ends at the target with the
    least ``dist + target_cost``. Returns ``(cost, target index, path edges)``; cost inf and
    index -1 when no target is reached.
    """
    n_touched = 0
    remaining = 0
    for j in range(targets.shape[0]):
        t = targets[j]
        if not done[t]:  # count distinct targets (``done`` marks them for a moment)
            done[t] = True
            remaining += 1
    for j in range(targets.shape[0]):
        done[targets[j]] = False
    active = _active(from_lm, to_lm, src_nodes, targets, ACTIVE)
    heap = [(0.0, 0.0, np.int64(0))]
    heap.pop()
    for i in range(src_nodes.shape[0]):
        s = src_nodes[i]
        if src_cost[i] < dist[s]:
            if dist[s] == np.inf:
                touched[n_touched] = s
                n_touched += 1
            dist[s] = src_cost[i]
            if h_of[s] < 0:
                h_of[s] = _bound(from_lm, to_lm, active, s, targets, scale)
            heapq.heappush(heap, (src_cost[i] + h_of[s], src_cost[i], np.int64(s)))
    # the best route found so far: a target's label plus its exit cost. The bound is a
    # lower bound to the nearest target and exit costs are ≥ 0, so once the smallest key
    # left reaches it, no other route can be cheaper (not every target need be settled)
    found = np.inf
    for j in range(targets.shape[0]):
        found = min(found, dist[targets[j]] + target_cost[j])
    while heap and remaining > 0:
        f, d, u = heapq.heappop(heap)
        if done[u] or d > dist[u]:
            continue
        if f >= found:
            break
        done[u] = True
        for j in range(targets.shape[0]):
            if targets[j] == u:
                remaining -= 1
                break
        if remaining == 0:
            break
        for e in range(indptr[u], indptr[u + 1]):
            fresh = dist[head[e]] == np.inf
            v = relax_edge(e, d, head, weight, dist, pred, np.inf)
            if v >= 0:
                nd = dist[v]
                if fresh:
                    touched[n_touched] = v
                    n_touched += 1
                if h_of[v] < 0:
                    h_of[v] = _bound(from_lm, to_lm, active, v, targets, scale)
                heapq.heappush(heap, (nd + h_of[v], nd, np.int64(v)))
                for j in range(targets.shape[0]):
                    if targets[j] == v:
                        found = min(found, nd + target_cost[j])
    best = np.inf
    best_j = -1
    for j in range(targets.shape[0]):
        c = dist[targets[j]] + target_cost[j]
        if c < best:
            best = c
            best_j = j
    n_path = 0
    if best_j >= 0:
        node = targets[best_j]
        while pred[node] >= 0:
            n_path += 1
            node = tail[pred[node]]
    path = np.empty(n_path, np.int64)
    if best_j >= 0:
        node = targets[best_j]
        k = n_path
        while pred[node] >= 0:
            k -= 1
            path[k] = pred[node]
            node = tail[pred[node]]
    for i in range(n_touched):
        v = touched[i]
        dist[v] = np.inf
        pred[v] = -1
        done[v] = False
        h_of[v] = -1.0
    return best, best_j, path
