"""Numba helpers shared by the heap-based street searches: Dijkstra
(:func:`routing.kernels.dijkstra`) and ALT A* (:mod:`routing.landmarks`).

They own the steps both searches take the same way: marking the distinct targets, settling
a node (counting the targets left), and relaxing one CSR edge into ``dist``/``pred``.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def mark_targets(n, targets):
    """``(is_target, left)``: a per-node flag for ``targets`` and a one-cell counter of the
    distinct targets still to settle (see :func:`settle`)."""
    is_target = np.zeros(n, np.bool_)
    left = np.zeros(1, np.int64)
    for t in targets:
        if not is_target[t]:
            is_target[t] = True
            left[0] += 1
    return is_target, left


@njit(cache=True, nogil=True)
def settle(u, done, is_target, left):
    """Settle node ``u``; True when it was the last target left (the search may stop)."""
    done[u] = True
    if is_target[u]:
        left[0] -= 1
        return left[0] == 0
    return False


@njit(cache=True, nogil=True)
def relax_edge(e, d, head, weight, dist, pred, limit):
    """Label edge ``e``'s head through ``e`` from a node settled at cost ``d``.

    A non-finite weight is a closed edge; a cost above ``limit`` is not labelled. Returns
    the head node when its label improved (``dist``/``pred`` updated), else -1.
    """
    w = weight[e]
    if not np.isfinite(w):
        return -1
    v = head[e]
    nd = d + w
    if nd < dist[v] and nd <= limit:
        dist[v] = nd
        pred[v] = e
        return v
    return -1
