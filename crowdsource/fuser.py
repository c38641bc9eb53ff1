"""The fusion loop's step: recent reports → multipliers → the single live writer.

Runs only in the process holding the city's writer lock (``realtime.service``), so fusion
is never done twice. It hands the whole fused map to the writer, which diffs it against
what it applied before, updates the routing overlay and publishes ``congestion.changed``.
"""

from __future__ import annotations

import time
from typing import Protocol

from crowdsource.decisions import Decisions, StoredDecisions
from crowdsource.fusion import ContributorWeights, fuse_reports
from crowdsource.repository import ReportRepository
from routing.overlay import OverlayHolder


class CongestionWriter(Protocol):
    """What the fuser needs of the writer (``realtime.writer.LiveWriter``)."""

    async def apply_congestion(self, multipliers: dict[int, float]) -> object:
        """Replace the fused congestion map (edge → multiplier; absent edges are free)."""


class Fuser:
    """Fuses a city's recent reports and hands the result to the single writer.

    Parameters
    ----------
    repository : ReportRepository
        The city's reports.
    weights : ContributorWeights
        Contributor weights (read, and updated from verdicts).
    holder : OverlayHolder
        The writer's overlay (edge ids outside its drive network are ignored).
    writer : CongestionWriter
        The single live writer.
    k : int, default 2
        Distinct contributors and networks needed to corroborate.
    window_s, half_life_s : float, default 900
        Fusion window and decay (see :func:`crowdsource.fusion.fuse_reports`).
    decisions : StoredDecisions, optional
        Operator confirmations, dismissals and declared incidents (none if omitted).
    """

    def __init__(
        self,
        repository: ReportRepository,
        weights: ContributorWeights,
        holder: OverlayHolder,
        writer: CongestionWriter,
        k: int = 2,
        *,
        window_s: float = 900.0,
        half_life_s: float = 900.0,
        decisions: StoredDecisions | None = None,
    ) -> None:
        self.repository = repository
        self.weights = weights
        self.holder = holder
        self.writer = writer
        self.k = k
        self.window_s = window_s
        self.half_life_s = half_life_s
        self.decisions = decisions
        self.multipliers: dict[int, float] = {}
        self._judged: dict[str, float] = {}  # report_id → observed_at, each judged once
        self._synced = False  # the first map is always handed over (a restarted writer)

    async def fuse_once(self, now: float | None = None) -> set[int]:
        """Fuse the window's reports once and hand the map to the writer.

        Parameters
        ----------
        now : float, optional
            Unix seconds (default: the clock).

        Returns
        -------
        set of int
            Edges whose fused multiplier changed since the previous call.
        """
        now = time.time() if now is None else now
        reports = await self.repository.recent(self.window_s, now)
        weights = await self.weights.get_many(r.contributor for r in reports)
        decisions = await self.decisions.load(now) if self.decisions else Decisions()
        result = fuse_reports(
            reports,
            weights,
            now,
            self.k,
            self.window_s,
            self.half_life_s,
            decisions.confirmations,
            decisions.dismissals,
        )
        fresh = [v for v in result.verdicts if v.report_id not in self._judged]
        if fresh:
            await self.weights.apply(fresh)
            observed = {r.report_id: r.observed_at for r in reports}
            self._judged.update((v.report_id, observed[v.report_id]) for v in fresh)
        self._judged = {r: t for r, t in self._judged.items() if now - t < self.window_s}
        n_edges = len(self.holder.current.drive_multiplier)
        fused = {e: m for e, m in result.multipliers.items() if 0 <= e < n_edges}
        # declared incidents and closures apply as declared (the worse of both if reported)
        for edge, declared in decisions.declarations.items():
            if 0 <= edge < n_edges:
                fused[edge] = max(declared, fused.get(edge, 1.0))
        changed = {
            e
            for e in fused.keys() | self.multipliers.keys()
            if fused.get(e) != self.multipliers.get(e)
        }
        # the fuser's map is what it hands over, set before the hand-over awaits the store
        # (readers see the overlay and this map agree); a failed hand-over is redone next time
        self.multipliers = fused
        if changed or not self._synced:
            self._synced = False
            await self.writer.apply_congestion(fused)
            self._synced = True
        return changed
