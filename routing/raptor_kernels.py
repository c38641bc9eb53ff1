"""Compiled RAPTOR kernels (numba): earliest-arrival rounds and McRAPTOR rounds over flat
timetable arrays, and the McRAPTOR label pool layout (``L_*`` columns).

Split from :mod:`routing.kernels` (the street kernels); :mod:`routing.raptor_forward` and
:mod:`routing.raptor_reverse` wrap them.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _queue_stop(s, stop_pat_off, stop_pat, stop_pat_pos, queue):
    """Queue every pattern through stop ``s`` from its earliest position marked so far."""
    for e in range(stop_pat_off[s], stop_pat_off[s + 1]):
        p = stop_pat[e]
        pos = stop_pat_pos[e]
        if queue[p] < 0 or pos < queue[p]:
            queue[p] = pos


@njit(cache=True, nogil=True)
def _pattern_span(p, pat_stop_off, pat_trip_off, pat_time_off):
    """``(first stop slot, stop count, first trip, trip count, time base)`` of pattern ``p``."""
    s_lo = pat_stop_off[p]
    t_lo = pat_trip_off[p]
    return s_lo, pat_stop_off[p + 1] - s_lo, t_lo, pat_trip_off[p + 1] - t_lo, pat_time_off[p]


@njit(cache=True, nogil=True)
def _first_trip(dep, base, n, i, hi, m, ready, trip_ok, t_lo):
    """First running trip among a pattern's first ``hi`` trips leaving position ``i`` at or
    after ``ready`` (trips are sorted by departure); ``m`` when there is none."""
    lo = 0
    while lo < hi:
        mid = (lo + hi) // 2
        if dep[base + mid * n + i] < ready:
            lo = mid + 1
        else:
            hi = mid
    while lo < m and not trip_ok[t_lo + lo]:
        lo += 1
    return lo


@njit(cache=True, nogil=True)
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
                _queue_stop(s, stop_pat_off, stop_pat, stop_pat_pos, queue)
                marked[s] = False
        if not any_marked:
            break
        improved = np.zeros(n_stops, np.bool_)
        for p in range(n_pat):
            start = queue[p]
            if start < 0:
                continue
            queue[p] = -1
            s_lo, n, t_lo, m, base = _pattern_span(p, pat_stop_off, pat_trip_off, pat_time_off)
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
                        hi = m if j < 0 else j + 1
                        lo = _first_trip(dep, base, n, i, hi, m, r, trip_ok, t_lo)
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


# McRAPTOR label pool columns (one row per label; labels are never deleted, only unlinked
# from the bags, so reconstruction can always follow parents).
L_ARR = 0
L_WALK = 1
L_KIND = 2  # 0: on foot (source or footpath), 1: ride
L_STOP = 3
L_PAT = 4
L_TRIP = 5
L_BPOS = 6
L_APOS = 7
L_PARENT = 8  # label boarded from (ride), ride label walked from (footpath), -1 (source)
L_ROUND = 9
L_FIELDS = 10


@njit(cache=True, nogil=True)
def _mc_new_label(pool, n_pool, a, w, kind, stop, pat, trip, bpos, apos, parent, rnd):
    if n_pool >= pool.shape[0]:
        grown = np.empty((pool.shape[0] * 2, L_FIELDS), np.int64)
        grown[:n_pool] = pool[:n_pool]
        pool = grown
    row = pool[n_pool]
    row[L_ARR] = a
    row[L_WALK] = w
    row[L_KIND] = kind
    row[L_STOP] = stop
    row[L_PAT] = pat
    row[L_TRIP] = trip
    row[L_BPOS] = bpos
    row[L_APOS] = apos
    row[L_PARENT] = parent
    row[L_ROUND] = rnd
    return pool, n_pool + 1


@njit(cache=True, nogil=True)
def _mc_bag_slot(bag_a, bag_w, bag_id, bag_n, s, a, w):
    """Where a new (a, w) label goes in stop s's bag, or -1 (dominated / overflow).

    Removes the labels it dominates. Returns ``(slot, overflowed)``; on overflow (the bag
    is full of non-dominated labels) the label with the latest arrival is the one dropped.
    """
    n = bag_n[s]
    cap = bag_a.shape[1]
    first = n  # the first label the new one dominates
    for i in range(n):
        ai = bag_a[s, i]
        wi = bag_w[s, i]
        if ai <= a and wi <= w:
            return -1, False
        if first == n and a <= ai and w <= wi:
            first = i
    if first == n and n < cap:
        bag_n[s] = n + 1
        return n, False
    m = first
    for i in range(first, n):
        if not (a <= bag_a[s, i] and w <= bag_w[s, i]):
            bag_a[s, m] = bag_a[s, i]
            bag_w[s, m] = bag_w[s, i]
            bag_id[s, m] = bag_id[s, i]
            m += 1
    if m < cap:
        bag_n[s] = m + 1
        return m, False
    bag_n[s] = m
    worst = 0
    for i in range(1, m):
        if bag_a[s, i] > bag_a[s, worst]:
            worst = i
    if bag_a[s, worst] > a:
        return worst, True
    return -1, True


@njit(cache=True, nogil=True)
def _mc_dest_prunes(front_a, front_w, n_front, a, w):
    """Whether the destination front (by arrival, walk strictly falling) dominates (a, w)."""
    if n_front == 0 or a < front_a[0]:
        return False
    lo = 0
    hi = n_front
    while hi - lo > 1:  # the last entry arriving no later than a walks the least of those
        mid = (lo + hi) // 2
        if front_a[mid] <= a:
            lo = mid
        else:
            hi = mid
    return front_w[lo] <= w


@njit(cache=True, nogil=True)
def _mc_front_add(front_a, front_w, n_front, a, w):
    """Add a non-dominated (a, w) to the front, dropping what it dominates."""
    if n_front + 1 > front_a.shape[0]:
        ga = np.empty(front_a.shape[0] * 2, np.int64)
        gw = np.empty(front_a.shape[0] * 2, np.int64)
        ga[:n_front] = front_a[:n_front]
        gw[:n_front] = front_w[:n_front]
        front_a = ga
        front_w = gw
    out_a = np.empty(n_front + 1, np.int64)
    out_w = np.empty(n_front + 1, np.int64)
    m = 0
    placed = False
    for i in range(n_front):
        if not placed and front_a[i] > a:
            out_a[m] = a
            out_w[m] = w
            m += 1
            placed = True
        if not (a <= front_a[i] and w <= front_w[i]):
            out_a[m] = front_a[i]
            out_w[m] = front_w[i]
            m += 1
    if not placed:
        out_a[m] = a
        out_w[m] = w
        m += 1
    front_a[:m] = out_a[:m]
    front_w[:m] = out_w[:m]
    return front_a, front_w, m


@njit(cache=True, nogil=True)
def mc_raptor_rounds(
    n_stops,
    max_rounds,
    src_stops,
    src_time,
    src_walk,
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
    tgt_walk,
    trip_ok,
    cap,
):
    """McRAPTOR rounds over (arrival, walking seconds); round k holds labels with k rides.

    Same rules as :func:`raptor_rounds` (ride vs on-foot labels, a stop's minimum transfer
    time only between two rides there, one footpath between rides), but each stop keeps a
    bag of up to ``cap`` Pareto labels per kind instead of one. The bags are cumulative
    over rounds (a label from an earlier round has fewer rides, so it dominates an equal
    later one); only labels created in round k-1 board in round k (snapshotted before the
    round, so a round-k label never hides them). A label is pruned when a destination
    label dominates it plus the cheapest egress (target pruning with a lower bound).

    Returns ``(pool, n_pool, dest, n_dest, overflows)``: the label pool (columns ``L_*``)
    and the destination labels ``(round, arrival, walk, ride label, egress stop)``;
    ``overflows`` counts labels lost to full bags (then the earliest arrivals are kept).
    """
    K = max_rounds + 1
    pool = np.empty((max(64, 4 * src_stops.shape[0]), L_FIELDS), np.int64)
    n_pool = 0
    dest = np.empty((16, 5), np.int64)
    n_dest = 0
    front_a = np.empty(16, np.int64)
    front_w = np.empty(16, np.int64)
    n_front = 0
    overflows = 0
    ride_a = np.empty((n_stops, cap), np.int64)
    ride_w = np.empty((n_stops, cap), np.int64)
    ride_id = np.empty((n_stops, cap), np.int64)
    ride_n = np.zeros(n_stops, np.int64)
    walk_a = np.empty((n_stops, cap), np.int64)
    walk_w = np.empty((n_stops, cap), np.int64)
    walk_id = np.empty((n_stops, cap), np.int64)
    walk_n = np.zeros(n_stops, np.int64)
    marked = np.zeros(n_stops, np.bool_)
    improved = np.zeros(n_stops, np.bool_)
    ready_lo = np.zeros(n_stops, np.int64)
    ready_hi = np.zeros(n_stops, np.int64)
    n_pat = pat_stop_off.shape[0] - 1
    queue = np.full(n_pat, -1, np.int64)
    is_tgt = np.full(n_stops, -1, np.int64)
    # every journey still ends with an egress: prune against the cheapest one (a bound)
    min_tc = np.int64(2**62)
    min_tw = np.int64(2**62)
    for i in range(tgt_stops.shape[0]):
        is_tgt[tgt_stops[i]] = i
        min_tc = min(min_tc, tgt_cost[i])
        min_tw = min(min_tw, tgt_walk[i])
    rb_j = np.empty(cap, np.int64)
    rb_w = np.empty(cap, np.int64)
    rb_bpos = np.empty(cap, np.int64)
    rb_parent = np.empty(cap, np.int64)

    for i in range(src_stops.shape[0]):
        s = src_stops[i]
        slot, over = _mc_bag_slot(walk_a, walk_w, walk_id, walk_n, s, src_time[i], src_walk[i])
        if over:
            overflows += 1
        if slot >= 0:
            pool, n_pool = _mc_new_label(
                pool, n_pool, src_time[i], src_walk[i], 0, s, -1, -1, -1, -1, -1, 0
            )
            walk_a[s, slot] = src_time[i]
            walk_w[s, slot] = src_walk[i]
            walk_id[s, slot] = n_pool - 1
            marked[s] = True

    for k in range(1, K):
        # the labels that board this round: those created last round, at marked stops
        n_ready = 0
        for s in range(n_stops):
            ready_lo[s] = n_ready
            ready_hi[s] = n_ready
            if marked[s]:
                n_ready += walk_n[s] + ride_n[s]
        if n_ready == 0:
            break
        r_time = np.empty(n_ready, np.int64)
        r_walk = np.empty(n_ready, np.int64)
        r_id = np.empty(n_ready, np.int64)
        for s in range(n_stops):
            if not marked[s]:
                continue
            marked[s] = False
            c = ready_lo[s]
            for i in range(walk_n[s]):
                lab = walk_id[s, i]
                if pool[lab, L_ROUND] == k - 1:
                    r_time[c] = walk_a[s, i]
                    r_walk[c] = walk_w[s, i]
                    r_id[c] = lab
                    c += 1
            if min_transfer[s] >= 0:
                for i in range(ride_n[s]):
                    lab = ride_id[s, i]
                    if pool[lab, L_ROUND] == k - 1:
                        r_time[c] = ride_a[s, i] + min_transfer[s]
                        r_walk[c] = ride_w[s, i]
                        r_id[c] = lab
                        c += 1
            ready_hi[s] = c
            if c > ready_lo[s]:
                _queue_stop(s, stop_pat_off, stop_pat, stop_pat_pos, queue)
        for s in range(n_stops):
            improved[s] = False
        for p in range(n_pat):
            start = queue[p]
            if start < 0:
                continue
            queue[p] = -1
            s_lo, n, t_lo, m, base = _pattern_span(p, pat_stop_off, pat_trip_off, pat_time_off)
            rb_n = 0
            for i in range(start, n):
                s = pat_stops[s_lo + i]
                if rb_n > 0 and pat_drop[s_lo + i]:
                    for r in range(rb_n):
                        j = rb_j[r]
                        a = arr[base + j * n + i]
                        w = rb_w[r]
                        if _mc_dest_prunes(front_a, front_w, n_front, a + min_tc, w + min_tw):
                            continue
                        slot, over = _mc_bag_slot(ride_a, ride_w, ride_id, ride_n, s, a, w)
                        if over:
                            overflows += 1
                        if slot < 0:
                            continue
                        pool, n_pool = _mc_new_label(
                            pool, n_pool, a, w, 1, s, p, t_lo + j, rb_bpos[r], i, rb_parent[r], k
                        )
                        ride_a[s, slot] = a
                        ride_w[s, slot] = w
                        ride_id[s, slot] = n_pool - 1
                        improved[s] = True
                if not pat_pick[s_lo + i]:
                    continue
                for c in range(ready_lo[s], ready_hi[s]):
                    rt = r_time[c]
                    w = r_walk[c]
                    lo = _first_trip(dep, base, n, i, m, m, rt, trip_ok, t_lo)
                    if lo >= m:
                        continue
                    # a route label on an earlier-or-same trip with no more walking wins
                    dominated = False
                    for r in range(rb_n):
                        if rb_j[r] <= lo and rb_w[r] <= w:
                            dominated = True
                            break
                    if dominated:
                        continue
                    # drop route labels the new one dominates, then insert (keep earliest trips)
                    q = 0
                    for r in range(rb_n):
                        if not (lo <= rb_j[r] and w <= rb_w[r]):
                            rb_j[q] = rb_j[r]
                            rb_w[q] = rb_w[r]
                            rb_bpos[q] = rb_bpos[r]
                            rb_parent[q] = rb_parent[r]
                            q += 1
                    rb_n = q
                    slot = rb_n
                    if rb_n == cap:
                        overflows += 1
                        slot = 0
                        for r in range(1, rb_n):
                            if rb_j[r] > rb_j[slot]:
                                slot = r
                        if rb_j[slot] <= lo:
                            continue
                    else:
                        rb_n += 1
                    rb_j[slot] = lo
                    rb_w[slot] = w
                    rb_bpos[slot] = i
                    rb_parent[slot] = r_id[c]
        # destination labels, then footpaths, from this round's surviving ride labels
        for s in range(n_stops):
            if not improved[s] or is_tgt[s] < 0:
                continue
            ti = is_tgt[s]
            for i in range(ride_n[s]):
                lab = ride_id[s, i]
                if pool[lab, L_ROUND] != k:
                    continue
                a = ride_a[s, i] + tgt_cost[ti]
                w = ride_w[s, i] + tgt_walk[ti]
                if _mc_dest_prunes(front_a, front_w, n_front, a, w):
                    continue
                if n_dest >= dest.shape[0]:
                    grown = np.empty((dest.shape[0] * 2, 5), np.int64)
                    grown[:n_dest] = dest[:n_dest]
                    dest = grown
                dest[n_dest, 0] = k
                dest[n_dest, 1] = a
                dest[n_dest, 2] = w
                dest[n_dest, 3] = lab
                dest[n_dest, 4] = s
                n_dest += 1
                front_a, front_w, n_front = _mc_front_add(front_a, front_w, n_front, a, w)
        for s in range(n_stops):
            if not improved[s]:
                continue
            marked[s] = True
            for i in range(ride_n[s]):
                lab = ride_id[s, i]
                if pool[lab, L_ROUND] != k:
                    continue
                a0 = ride_a[s, i]
                w0 = ride_w[s, i]
                for e in range(fp_off[s], fp_off[s + 1]):
                    d = fp_dur[e]
                    if d < 0:
                        continue
                    u = fp_to[e]
                    a = a0 + d
                    w = w0 + d
                    if _mc_dest_prunes(front_a, front_w, n_front, a + min_tc, w + min_tw):
                        continue
                    # on foot at u only boards there: a ride label at u, ready after u's
                    # minimum transfer time, that is no later and walked no more wins
                    if min_transfer[u] >= 0:
                        rides_win = False
                        for q in range(ride_n[u]):
                            if ride_a[u, q] + min_transfer[u] <= a and ride_w[u, q] <= w:
                                rides_win = True
                                break
                        if rides_win:
                            continue
                    slot, over = _mc_bag_slot(walk_a, walk_w, walk_id, walk_n, u, a, w)
                    if over:
                        overflows += 1
                    if slot < 0:
                        continue
                    pool, n_pool = _mc_new_label(pool, n_pool, a, w, 0, u, -1, -1, -1, -1, lab, k)
                    walk_a[u, slot] = a
                    walk_w[u, slot] = w
                    walk_id[u, slot] = n_pool - 1
                    marked[u] = True
    return pool, n_pool, dest, n_dest, overflows
