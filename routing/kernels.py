"""Compiled search kernels (numba). Pure functions over flat arrays; no Python objects.

They are the hot paths: networkx/osmnx build and analyse graphs, these search them.
"""

from __future__ import annotations

import heapq

import numpy as np
from numba import njit

INF = np.inf
INT_INF = np.int64(2**62)


@njit(cache=True)
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
    is_target = np.zeros(n, np.bool_)
    remaining = 0
    for t in targets:
        if not is_target[t]:
            is_target[t] = True
            remaining += 1
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
        done[u] = True
        if is_target[u]:
            remaining -= 1
            if remaining == 0:
                break
        for e in range(indptr[u], indptr[u + 1]):
            w = weight[e]
            if not np.isfinite(w):
                continue
            v = head[e]
            nd = d + w
            if nd < dist[v] and nd <= limit:
                dist[v] = nd
                pred[v] = e
                heapq.heappush(heap, (nd, np.int64(v)))
    return dist, pred


@njit(cache=True)
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


@njit(cache=True)
def raptor_rounds(
    n_stops,
    max_rounds,
    src_stops,
    src_time,
    pat_stop_off,
    pat_stops,
    pat_pick,
    pat_drop,
    pat_trip_off,
    pat_time_off,
    dep,
    arr,
    stop_pat_off,
    stop_pat,
    stop_pat_pos,
    fp_off,
    fp_to,
    fp_dur,
    min_transfer,
    tgt_stops,
    tgt_cost,
    trip_ok,
):
    """RAPTOR rounds; see :mod:`routing.raptor` for the meaning of every label array."""
    INF = np.int64(2**62)
    K = max_rounds + 1
    ride_arr = np.full((K, n_stops), INF, np.int64)
    walk_arr = np.full((K, n_stops), INF, np.int64)
    ride_pat = np.full((K, n_stops), -1, np.int64)
    ride_trip = np.full((K, n_stops), -1, np.int64)
    ride_bpos = np.full((K, n_stops), -1, np.int64)
    ride_apos = np.full((K, n_stops), -1, np.int64)
    ride_src = np.full((K, n_stops), -1, np.int64)  # 0: boarded after a walk label, 1: ride
    ride_src_round = np.full((K, n_stops), -1, np.int64)
    walk_from = np.full((K, n_stops), -1, np.int64)
    dest_arr = np.full(K, INF, np.int64)
    dest_stop = np.full(K, -1, np.int64)
    best_ride = np.full(n_stops, INF, np.int64)
    best_walk = np.full(n_stops, INF, np.int64)
    best_ride_round = np.full(n_stops, -1, np.int64)
    best_walk_round = np.full(n_stops, -1, np.int64)
    marked = np.zeros(n_stops, np.bool_)
    ready = np.full(n_stops, INF, np.int64)
    ready_src = np.zeros(n_stops, np.int64)
    ready_round = np.zeros(n_stops, np.int64)
    n_pat = pat_stop_off.shape[0] - 1
    queue = np.full(n_pat, -1, np.int64)
    is_tgt = np.full(n_stops, -1, np.int64)
    for i in range(tgt_stops.shape[0]):
        is_tgt[tgt_stops[i]] = i
    dest_best = INF

    for i in range(src_stops.shape[0]):
        s = src_stops[i]
        if src_time[i] < best_walk[s]:
            best_walk[s] = src_time[i]
            best_walk_round[s] = 0
            walk_arr[0, s] = src_time[i]
            marked[s] = True

    for k in range(1, K):
        any_marked = False
        for s in range(n_stops):
            r_ride = INF
            if best_ride[s] < INF and min_transfer[s] >= 0:
                r_ride = best_ride[s] + min_transfer[s]
            if best_walk[s] <= r_ride:
                ready[s] = best_walk[s]
                ready_src[s] = 0
                ready_round[s] = best_walk_round[s]
            else:
                ready[s] = r_ride
                ready_src[s] = 1
                ready_round[s] = best_ride_round[s]
            if marked[s]:
                any_marked = True
                for e in range(stop_pat_off[s], stop_pat_off[s + 1]):
                    p = stop_pat[e]
                    pos = stop_pat_pos[e]
                    if queue[p] < 0 or pos < queue[p]:
                        queue[p] = pos
                marked[s] = False
        if not any_marked:
            break
        improved = np.zeros(n_stops, np.bool_)
        for p in range(n_pat):
            start = queue[p]
            if start < 0:
                continue
            queue[p] = -1
            s_lo = pat_stop_off[p]
            n = pat_stop_off[p + 1] - s_lo
            t_lo = pat_trip_off[p]
            m = pat_trip_off[p + 1] - t_lo
            base = pat_time_off[p]
            j = -1
            bpos = -1
            bsrc = 0
            bround = 0
            for i in range(start, n):
                s = pat_stops[s_lo + i]
                if j >= 0 and pat_drop[s_lo + i]:
                    a = arr[base + j * n + i]
                    if a < best_ride[s] and a < dest_best:
                        best_ride[s] = a
                        best_ride_round[s] = k
                        ride_arr[k, s] = a
                        ride_pat[k, s] = p
                        ride_trip[k, s] = t_lo + j
                        ride_bpos[k, s] = bpos
                        ride_apos[k, s] = i
                        ride_src[k, s] = bsrc
                        ride_src_round[k, s] = bround
                        improved[s] = True
                if pat_pick[s_lo + i] and ready[s] < INF:
                    r = ready[s]
                    if j < 0 or r <= dep[base + j * n + i]:
                        lo = 0
                        hi = m if j < 0 else j + 1
                        while lo < hi:
                            mid = (lo + hi) // 2
                            if dep[base + mid * n + i] < r:
                                lo = mid + 1
                            else:
                                hi = mid
                        while lo < m and not trip_ok[t_lo + lo]:
                            lo += 1
                        if lo < m and (j < 0 or lo < j):
                            j = lo
                            bpos = i
                            bsrc = ready_src[s]
                            bround = ready_round[s]
        for s in range(n_stops):
            if improved[s] and is_tgt[s] >= 0:
                a = ride_arr[k, s] + tgt_cost[is_tgt[s]]
                if a < dest_best:
                    dest_best = a
                    dest_arr[k] = a
                    dest_stop[k] = s
        for s in range(n_stops):
            if not improved[s]:
                continue
            marked[s] = True
            a0 = ride_arr[k, s]
            for e in range(fp_off[s], fp_off[s + 1]):
                d = fp_dur[e]
                if d < 0:
                    continue
                u = fp_to[e]
                a = a0 + d
                if a < best_walk[u] and a < dest_best:
                    best_walk[u] = a
                    best_walk_round[u] = k
                    walk_arr[k, u] = a
                    walk_from[k, u] = s
                    marked[u] = True
    return (
        dest_arr,
        dest_stop,
        ride_arr,
        walk_arr,
        ride_pat,
        ride_trip,
        ride_bpos,
        ride_apos,
        ride_src,
        ride_src_round,
        walk_from,
    )


@njit(cache=True)
def astar(indptr, head, weight, node_x, node_y, src_nodes, src_cost, target, s_per_m):
    """Point-to-point A* (multi-source) with a straight-line lower bound.

    ``s_per_m`` times the planar distance to ``target`` never exceeds the true remaining
    cost when it is at most 1 / (the fastest edge's speed); callers pass that. Returns
    ``(dist, pred)`` like :func:`dijkstra`; only nodes settled before the target are final.
    """
    n = indptr.shape[0] - 1
    dist = np.full(n, np.inf)
    pred = np.full(n, -1, np.int64)
    done = np.zeros(n, np.bool_)
    tx = node_x[target]
    ty = node_y[target]
    heap = [(0.0, 0.0, np.int64(0))]
    heap.pop()
    for i in range(src_nodes.shape[0]):
        s = src_nodes[i]
        if src_cost[i] < dist[s]:
            dist[s] = src_cost[i]
            h = np.hypot(node_x[s] - tx, node_y[s] - ty) * s_per_m
            heapq.heappush(heap, (src_cost[i] + h, src_cost[i], np.int64(s)))
    while heap:
        _f, d, u = heapq.heappop(heap)
        if done[u] or d > dist[u]:
            continue
        done[u] = True
        if u == target:
            break
        for e in range(indptr[u], indptr[u + 1]):
            w = weight[e]
            if not np.isfinite(w):
                continue
            v = head[e]
            nd = d + w
            if nd < dist[v]:
                dist[v] = nd
                pred[v] = e
                h = np.hypot(node_x[v] - tx, node_y[v] - ty) * s_per_m
                heapq.heappush(heap, (nd + h, nd, np.int64(v)))
    return dist, pred
