"""The operator desk: what the operators' endpoints read and record beyond HTTP.

Their decisions (:class:`~crowdsource.operators.OperatorDecisions`: incidents, confirmed
and dismissed edges), the audit log, and the dashboard's minute samples read back as the
time slider's frames and the charts' k-thresholded series. ``api/routes/operators.py``
translates; the trip counts of incidents come from ``realtime.trips.service``.
"""

from __future__ import annotations

import time
from typing import Any

from correspondance.store import StateStore
from crowdsource.audit import AuditEntry, AuditLog
from crowdsource.dashboard import (
    SAMPLE_INTERVAL_S,
    DashboardMetrics,
    DashboardSample,
    edge_feature,
    k_threshold,
)
from crowdsource.operators import OperatorDecisions
from routing.base import CityBase


class OperatorDesk:
    """Operator decisions, audit and dashboard history over the store."""

    def __init__(self, store: StateStore, *, k: int) -> None:
        self.store = store
        self.k = k
        self.decisions = OperatorDecisions(store)

    async def audit(self, city: str, limit: int) -> list[AuditEntry]:
        """The city's operator decisions, newest first."""
        return await AuditLog(self.store, city).entries(limit)

    async def samples(self, city: str, hours: float) -> list[DashboardSample]:
        """The city's minute samples of the last ``hours``."""
        return await DashboardMetrics(self.store, city).samples(time.time() - hours * 3600)

    async def history(self, base: CityBase, hours: float) -> dict[str, Any]:
        """The map as it was, one frame a minute (edge id → multiplier, 0 = closed), and
        the streets of any frame as GeoJSON."""
        samples = await self.samples(base.city.id, hours)
        drive = base.streets["drive"]
        seen = sorted({int(e) for s in samples for e in s.edges})
        features = [
            edge_feature(drive, e, {"edge": e, "name": str(drive.names[int(drive.name_idx[e])])})
            for e in seen
        ]
        return {
            "city": base.city.id,
            "interval_s": int(SAMPLE_INTERVAL_S),
            "frames": [{"t": s.t, "edges": s.edges} for s in samples],
            "features": {"type": "FeatureCollection", "features": features},
        }

    async def metrics(self, base: CityBase, hours: float) -> dict[str, Any]:
        """The charts' series, one point a minute; counts between 1 and k − 1 are null."""
        k = self.k
        samples = await self.samples(base.city.id, hours)
        made: list[int | None] = []
        accepted: list[int | None] = []
        for before, sample in zip([None, *samples], samples, strict=False):
            if before is None or sample.t - before.t > 2 * SAMPLE_INTERVAL_S:
                made.append(None)  # no previous minute: no per-minute difference
                accepted.append(None)
                continue
            made.append(k_threshold(max(0, sample.suggestions_made - before.suggestions_made), k))
            accepted.append(
                k_threshold(max(0, sample.suggestions_accepted - before.suggestions_accepted), k)
            )
        return {
            "city": base.city.id,
            "k": k,
            "interval_s": int(SAMPLE_INTERVAL_S),
            "t": [s.t for s in samples],
            "reports_per_minute": [k_threshold(s.reports, k) for s in samples],
            "congestion_index": [s.congestion_index for s in samples],
            "active_trips": [k_threshold(s.active_trips, k) for s in samples],
            "suggestions_made": made,
            "suggestions_accepted": accepted,
        }
