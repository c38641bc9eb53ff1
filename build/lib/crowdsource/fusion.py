"""Fusion: corroborated reports → congestion multipliers per drive edge (pure), and the
contributor weights that fusion learns (store-backed).

The rules, precisely (:func:`fuse_reports`):

1. Only reports observed in ``(now - window_s, now + 60 s]`` count; per contributor and edge
   only the latest one (a contributor is one voice, however often they report). An edge an
   operator dismissed stays free while the dismissal lasts: its reports are ignored.
2. An edge is *corroborated* when at least ``k`` distinct contributors **and** at least ``k``
   distinct client networks (``Report.origin``; reports without one share a single
   "unknown" network) currently report it congested (``congestion``, ``incident``,
   ``closure``), or when an operator confirmed it (without a level) and at least one such
   report exists. Only corroborated edges get a multiplier ≠ 1. Fifty fresh tokens from
   one network are one network: they never corroborate anything alone. An operator
   confirmation *with* a level sets that level's multiplier outright.
3. Severity of a report: ``ln`` of :data:`LEVEL_MULTIPLIER` (``incident`` counts as level
   2, ``closure`` as level 4, ``clear`` as 0). Each contributor's voice weighs
   ``w × 0.5^(age / half_life_s)`` (``w`` from :class:`ContributorWeights`, new tokens
   :data:`NEW_WEIGHT`); the voices of one network on one edge together weigh at most
   :data:`MAX_WEIGHT` (many tokens from one place amplify nothing); an operator
   confirmation adds an undecaying voice of weight :data:`OPERATOR_WEIGHT` at the mean
   congested severity. The edge's multiplier is
   ``exp(Σ weight·severity / (PRIOR_WEIGHT + Σ weight))``: ``clear`` voices and the
   free-flow prior pull it toward 1, and as every voice decays the prior wins. An edge
   that ``k`` contributors and networks report ``clear``, with more clear than congested
   weight, is free.
4. A corroborated closure (≥ k contributors and networks reporting ``closure``, or an
   operator confirmation) closes the edge (``inf``) while closure voices hold at least half
   of the weight (prior included); after that it counts as level 4 and decays.
5. Multipliers are rounded to one decimal (no churn each second); below 1.1 the edge is
   free.
"""

from __future__ import annotations

import math
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from correspondance.store import StateStore
from crowdsource.models import Report

LEVEL_MULTIPLIER: dict[int, float] = {1: 1.3, 2: 1.8, 3: 2.5, 4: 4.0}
INCIDENT_LEVEL = 2
CLOSURE_LEVEL = 4
NEW_WEIGHT = 0.3
MIN_WEIGHT = 0.1
MAX_WEIGHT = 1.0
PRIOR_WEIGHT = 0.25
OPERATOR_WEIGHT = 1.0
CLOSED_SHARE = 0.5
FUTURE_SLACK_S = 60.0
AGREE_DELTA = 0.05
CONTRADICT_DELTA = -0.1
_UNKNOWN_ORIGIN = "\x00unknown"
_KIND_CODE = {"clear": 0, "congestion": 1, "incident": 2, "closure": 3}


@dataclass(frozen=True)
class Verdict:
    """How one report stands against a corroborated consensus on its edge."""

    report_id: str
    contributor: str
    agrees: bool


@dataclass(frozen=True)
class Fusion:
    """Result of :func:`fuse_reports`.

    Attributes
    ----------
    multipliers : dict of int to float
        Edge → multiplier (> 1, or inf when closed), corroborated edges only.
    corroborated : frozenset of int
        Edges whose congestion is corroborated (even if now decayed to 1).
    cleared : frozenset of int
        Edges that ``k`` contributors and networks report clear, outweighing congestion.
    verdicts : tuple of Verdict
        Each counted report on a corroborated or cleared edge: agrees or contradicts.
    """

    multipliers: dict[int, float]
    corroborated: frozenset[int]
    cleared: frozenset[int]
    verdicts: tuple[Verdict, ...]


def _isin(keys: NDArray[np.int64], table: Collection[int]) -> NDArray[np.bool_]:
    if not table:
        return np.zeros(len(keys), bool)
    return np.isin(keys, np.fromiter(table, np.int64, len(table)))


def _distinct_per_group(
    group: NDArray[np.int64], member: NDArray[np.int64], n: int
) -> NDArray[np.int64]:
    """How many distinct ``member`` values each group has."""
    if not len(group):
        return np.zeros(n, np.int64)
    pairs = np.unique(np.column_stack([group, member]), axis=0)
    return np.bincount(pairs[:, 0], minlength=n)


def fuse_reports(
    reports: Sequence[Report],
    weights: Mapping[str, float],
    now: float,
    k: int = 2,
    window_s: float = 900.0,
    half_life_s: float = 900.0,
    confirmations: Mapping[int, int | None] | None = None,
    dismissals: Collection[int] | None = None,
) -> Fusion:
    """Fuse reports into edge multipliers, following the rules of this module's docstring.

    Parameters
    ----------
    reports : sequence of Report
        Recent reports (any order; older ones are ignored).
    weights : mapping of str to float
        Contributor hash → weight; missing contributors weigh :data:`NEW_WEIGHT`. Clipped
        to [0.1, 1].
    now : float
        Unix seconds.
    k : int, default 2
        Distinct contributors and distinct networks needed to corroborate.
    window_s : float, default 900
        How long a report counts.
    half_life_s : float, default 900
        Decay of a report's weight with age.
    confirmations : mapping of int to (int or None), optional
        Edges an operator confirmed (in force now) → the confirmed level 1-4, or ``None``
        for "as reported".
    dismissals : collection of int, optional
        Edges an operator dismissed (in force now): they stay free.

    Returns
    -------
    Fusion
        Multipliers, corroborated and cleared edges, verdicts for weight learning.

    Raises
    ------
    ValueError
        If ``k`` < 1 or a window or half-life is not positive.
    """
    if k < 1 or not window_s > 0 or not half_life_s > 0:
        raise ValueError("k must be >= 1 and window_s, half_life_s > 0")
    confirmations = confirmations or {}
    dismissals = frozenset(dismissals or ())
    # -- one row per (report, edge) --------------------------------------------------------
    contributors: dict[str, int] = {}
    origins: dict[str, int] = {}
    # columns built once per call with comprehensions (thousands of reports each second)
    n_reports = len(reports)
    observed = np.fromiter([r.observed_at for r in reports], np.float64, n_reports)
    n_edges_of = np.fromiter([len(r.edge_ids) for r in reports], np.int64, n_reports)
    every_edge = np.fromiter(
        [e for r in reports for e in r.edge_ids], np.int64, int(n_edges_of.sum())
    )
    in_window = (now - window_s < observed) & (observed <= now + FUTURE_SLACK_S)
    every_row_report = np.repeat(np.arange(n_reports, dtype=np.int64), n_edges_of)
    counted = in_window[every_row_report]
    edge = every_edge[counted]
    report_idx = every_row_report[counted]
    if not len(edge):
        return _with_operator_levels(
            Fusion({}, frozenset(), frozenset(), ()), confirmations, dismissals
        )
    used = np.unique(report_idx)
    used_reports = [reports[i] for i in used.tolist()]
    per_report_contrib = np.full(n_reports, -1, np.int64)
    per_report_origin = np.full(n_reports, -1, np.int64)
    per_report_t = observed
    per_report_kind = np.zeros(n_reports, np.int64)
    per_report_level = np.zeros(n_reports, np.int64)
    # numbered in order of first appearance, as the verdicts' order depends on it
    per_report_contrib[used] = [
        contributors.setdefault(r.contributor, len(contributors)) for r in used_reports
    ]
    per_report_origin[used] = [
        origins.setdefault(_UNKNOWN_ORIGIN if r.origin is None else r.origin, len(origins))
        for r in used_reports
    ]
    per_report_kind[used] = [_KIND_CODE[r.kind] for r in used_reports]
    per_report_level[used] = [r.level or 0 for r in used_reports]
    contrib = per_report_contrib[report_idx]
    t = per_report_t[report_idx]
    # -- discard reports an operator dismissed ------------------------------------------------
    keep = ~_isin(edge, dismissals)
    # -- latest report per (edge, contributor) ---------------------------------------------
    order = np.lexsort((t, contrib, edge))
    order = order[keep[order]]
    if not len(order):
        return _with_operator_levels(
            Fusion({}, frozenset(), frozenset(), ()), confirmations, dismissals
        )
    edge, contrib, report_idx = edge[order], contrib[order], report_idx[order]
    last = np.r_[(edge[1:] != edge[:-1]) | (contrib[1:] != contrib[:-1]), True]
    edge, contrib, report_idx = edge[last], contrib[last], report_idx[last]
    if not len(edge):
        return _with_operator_levels(
            Fusion({}, frozenset(), frozenset(), ()), confirmations, dismissals
        )
    t = per_report_t[report_idx]
    kind = per_report_kind[report_idx]
    origin = per_report_origin[report_idx]
    level = np.where(
        kind == 1, per_report_level[report_idx], np.where(kind == 2, INCIDENT_LEVEL, CLOSURE_LEVEL)
    )
    severity_table = np.log(np.array([1.0, *(LEVEL_MULTIPLIER[i] for i in range(1, 5))]))
    congested = kind > 0
    closure = kind == 3
    severity = np.where(congested, severity_table[level], 0.0)
    weight_of = np.array([weights.get(c, NEW_WEIGHT) for c in contributors], dtype=np.float64).clip(
        MIN_WEIGHT, MAX_WEIGHT
    )
    voice = weight_of[contrib] * np.power(0.5, np.maximum(now - t, 0.0) / half_life_s)
    edges, group = np.unique(edge, return_inverse=True)
    n = len(edges)
    # one network is at most one full voice per edge, however many tokens it sends
    _, network_of_row = np.unique(np.column_stack([group, origin]), axis=0, return_inverse=True)
    network_of_row = network_of_row.reshape(-1)
    network_voice = np.bincount(network_of_row, voice)
    voice = voice * np.minimum(1.0, MAX_WEIGHT / network_voice)[network_of_row]
    # -- per edge ------------------------------------------------------------------------
    n_congested = np.bincount(group, congested, n)
    n_congested_net = _distinct_per_group(group[congested], origin[congested], n)
    n_closure = np.bincount(group, closure, n)
    n_closure_net = _distinct_per_group(group[closure], origin[closure], n)
    n_clear = np.bincount(group, ~congested, n)
    n_clear_net = _distinct_per_group(group[~congested], origin[~congested], n)
    total = np.bincount(group, voice, n)
    congested_voice = np.bincount(group, voice * congested, n)
    closure_voice = np.bincount(group, voice * closure, n)
    severity_sum = np.bincount(group, voice * severity, n)
    confirmed = _isin(edges, confirmations) & (n_congested > 0)
    operator = np.where(confirmed, OPERATOR_WEIGHT, 0.0)
    corroborated = ((n_congested >= k) & (n_congested_net >= k)) | confirmed
    mean_severity = severity_sum / np.where(congested_voice > 0, congested_voice, 1.0)
    log_multiplier = (severity_sum + operator * mean_severity) / (PRIOR_WEIGHT + total + operator)
    multiplier = np.round(np.exp(log_multiplier), 1)
    closure_share = (closure_voice + operator * (n_closure > 0)) / (PRIOR_WEIGHT + total + operator)
    closed = (
        corroborated
        & (((n_closure >= k) & (n_closure_net >= k)) | (confirmed & (n_closure > 0)))
        & (closure_share >= CLOSED_SHARE)
    )
    multiplier = np.where(closed, np.inf, multiplier)
    cleared = (n_clear >= k) & (n_clear_net >= k) & (total - congested_voice > congested_voice)
    moved = corroborated & ~cleared & (multiplier >= 1.1)
    # -- verdicts on settled edges, for weight learning --------------------------------------
    consensus = np.where(corroborated & ~cleared, 1, np.where(cleared, -1, 0))
    row_consensus = consensus[group]
    judged = np.flatnonzero(row_consensus != 0)
    agrees = (row_consensus[judged] == 1) == congested[judged]
    names = list(contributors)
    verdicts = tuple(
        Verdict(reports[i].report_id, names[c], a)
        for i, c, a in zip(
            report_idx[judged].tolist(), contrib[judged].tolist(), agrees.tolist(), strict=True
        )
    )
    fusion = Fusion(
        multipliers={
            int(e): float(m) for e, m in zip(edges[moved], multiplier[moved], strict=True)
        },
        corroborated=frozenset(int(e) for e in edges[corroborated]),
        cleared=frozenset(int(e) for e in edges[cleared]),
        verdicts=verdicts,
    )
    return _with_operator_levels(fusion, confirmations, dismissals)


def _with_operator_levels(
    fusion: Fusion, confirmations: Mapping[int, int | None], dismissals: frozenset[int]
) -> Fusion:
    """An operator's confirmed level is the edge's multiplier, reports or not."""
    levels = {
        e: LEVEL_MULTIPLIER[level]
        for e, level in confirmations.items()
        if level is not None and e not in dismissals
    }
    if not levels:
        return fusion
    return Fusion(
        {**fusion.multipliers, **levels},
        fusion.corroborated | levels.keys(),
        fusion.cleared - levels.keys(),
        fusion.verdicts,
    )


def fuse(
    reports: Sequence[Report],
    weights: Mapping[str, float],
    now: float,
    k: int = 2,
    window_s: float = 900.0,
    half_life_s: float = 900.0,
    confirmations: Mapping[int, int | None] | None = None,
    dismissals: Collection[int] | None = None,
) -> dict[int, float]:
    """Multiplier per drive edge from reports (only edges ≠ 1). See :func:`fuse_reports`.

    Parameters
    ----------
    reports, weights, now, k, window_s, half_life_s, confirmations, dismissals
        As for :func:`fuse_reports`.

    Returns
    -------
    dict of int to float
        Edge → multiplier (> 1, ``inf`` = closed).
    """
    return fuse_reports(
        reports, weights, now, k, window_s, half_life_s, confirmations, dismissals
    ).multipliers


def updated_weight(weight: float, agreements: int, contradictions: int) -> float:
    """A contributor's weight after some verdicts, bounded to [0.1, 1].

    Parameters
    ----------
    weight : float
        Current weight.
    agreements, contradictions : int
        Verdicts since.

    Returns
    -------
    float
        ``weight + 0.05·agreements − 0.1·contradictions``, clipped.
    """
    value = weight + AGREE_DELTA * agreements + CONTRADICT_DELTA * contradictions
    return min(MAX_WEIGHT, max(MIN_WEIGHT, value))


class ContributorWeights:
    """Contributor weights in the store, by contributor hash, expiring when unused.

    Key ``cs:weight:<contributor>`` holds the weight as text, for ``ttl_s`` (default 7
    days) after its last change; a contributor without one weighs :data:`NEW_WEIGHT`.
    Reads are cached in memory for ``cache_s`` (the fuser reads every contributor of the
    window each second).

    Parameters
    ----------
    store : StateStore
        The shared store.
    ttl_s : float, default 604800
        How long a weight is kept after its last change.
    cache_s : float, default 30
        How long a read weight is reused without asking the store.
    """

    def __init__(self, store: StateStore, ttl_s: float = 7 * 86_400.0, cache_s: float = 30.0):
        self.store = store
        self.ttl_s = ttl_s
        self.cache_s = cache_s
        self._cache: dict[str, tuple[float, float]] = {}  # contributor → (weight, read at)

    @staticmethod
    def key(contributor: str) -> str:
        """Store key of one contributor's weight."""
        return f"cs:weight:{contributor}"

    async def get(self, contributor: str) -> float:
        """One contributor's weight (:data:`NEW_WEIGHT` if unknown)."""
        return (await self.get_many([contributor]))[contributor]

    async def get_many(self, contributors: Iterable[str]) -> dict[str, float]:
        """Weights of several contributors.

        Parameters
        ----------
        contributors : iterable of str
            Contributor hashes.

        Returns
        -------
        dict of str to float
            Every one of them, unknown ones at :data:`NEW_WEIGHT`.
        """
        now = time.monotonic()
        out: dict[str, float] = {}
        for contributor in set(contributors):
            cached = self._cache.get(contributor)
            if cached is not None and now - cached[1] < self.cache_s:
                out[contributor] = cached[0]
                continue
            raw = await self.store.get(self.key(contributor))
            value = float(raw) if raw is not None else NEW_WEIGHT
            if not math.isfinite(value):
                value = NEW_WEIGHT
            self._cache[contributor] = (value, now)
            out[contributor] = value
        if len(self._cache) > 100_000:
            self._cache = {c: v for c, v in self._cache.items() if now - v[1] < self.cache_s}
        return out

    async def apply(self, verdicts: Iterable[Verdict]) -> dict[str, float]:
        """Raise the weight of contributors who agreed, lower those who contradicted.

        Parameters
        ----------
        verdicts : iterable of Verdict
            New verdicts (each report judged once: the caller remembers which).

        Returns
        -------
        dict of str to float
            New weight of each contributor concerned.
        """
        tally: dict[str, list[int]] = {}
        for verdict in verdicts:
            counts = tally.setdefault(verdict.contributor, [0, 0])
            counts[0 if verdict.agrees else 1] += 1
        current = await self.get_many(tally)
        now = time.monotonic()
        out = {}
        for contributor, (agreed, contradicted) in tally.items():
            value = updated_weight(current[contributor], agreed, contradicted)
            await self.store.set(self.key(contributor), repr(value).encode(), self.ttl_s)
            self._cache[contributor] = (value, now)
            out[contributor] = value
        return out

    async def forget(self, contributor: str) -> bool:
        """Delete a contributor's weight (self-data deletion); True if one was kept."""
        self._cache.pop(contributor, None)
        return bool(await self.store.delete(self.key(contributor)))
