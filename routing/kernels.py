"""Compiled street search kernels (numba). Pure functions over flat arrays; no Python objects.

The RAPTOR kernels live in :mod:`routing.raptor_kernels`.

They are the hot paths: networkx/osmnx build and analyse graphs, these search them.
"""

from __future__ import annotations

import heapq

import numpy as np
from numba import njit

from routing.heap_kernels import mark_targets, relax_edge, settle

INF = np.inf
INT_INF = np.int64(2**62)


@njit(cache=True, nogil=True)
def dijkstra(indptr, head, weight, src_nodes, src_cost, limit, targets):
    """Multi-source Dijkstra on a CSR graph, bounded by ``limit``.

    Stops early once every node in ``targets`` is settled (when ``targets`` is non-empty).
    Returns ``(dist, pred_edge)``; unreached nodes have ``inf`` and ``-1``. Edges with a
    non-finite weight are closed.
    """
    n = indptr.shape[0] - 1
    dist = np.full(n, np.inf)
    pred = np.full(n, -1, np.int64)
    done = np.zeros(n, np.bool_)
    is_target, left = mark_targets(n, targets)
    heap = [(0.0, np.int64(0))]
    heap.pop()
    for i in range(src_nodes.shape[0]):
        s = src_nodes[i]
        if src_cost[i] < dist[s]:
            dist[s] = src_cost[i]
            heapq.heappush(heap, (src_cost[i], np.int64(s)))
    while heap:
        d, u = heapq.heappop(heap)
        if done[u] or d > dist[u]:
            continue
        if d > limit:
            break
        if settle(u, done, is_target, left):
            break
        for e in range(indptr[u], indptr[u + 1]):
            v = relax_edge(e, d, head, weight, dist, pred, limit)
            if v >= 0:
                heapq.heappush(heap, (dist[v], np.int64(v)))
    return dist, pred


@njit(cache=True, nogil=True)
def bounded_many_to_many(indptr, head, weight, src_nodes, limit, node_target):
    """From each source node, every target reachable within ``limit``.

    ``node_target[v]`` is the target index at node v or -1. Returns three arrays
    ``(source_index, target_index, cost)``. Reuses one distance array across sources,
    resetting only what each search touched.
    """
    n = indptr.shape[0] - 1
    dist = np.full(n, np.inf)
    touched = np.empty(n, np.int64)
    out_s = []
    out_t = []
    out_c = []
    for si in range(src_nodes.shape[0]):
        s = src_nodes[si]
        n_touched = 0
        dist[s] = 0.0
        touched[n_touched] = s
        n_touched += 1
        heap = [(0.0, np.int64(s))]
        while heap:
            d, u = heapq.heappop(heap)
            if d > dist[u]:
                continue
            if node_target[u] >= 0:
                out_s.append(si)
                out_t.append(node_target[u])
                out_c.append(d)
            for e in range(indptr[u], indptr[u + 1]):
                v = head[e]
                nd = d + weight[e]
                if nd <= limit and nd < dist[v]:
                    if dist[v] == np.inf:
                        touched[n_touched] = v
                        n_touched += 1
                    dist[v] = nd
                    heapq.heappush(heap, (nd, np.int64(v)))
        for k in range(n_touched):
            dist[touched[k]] = np.inf
    return np.array(out_s, np.int64), np.array(out_t, np.int64), np.array(out_c, np.float64)
