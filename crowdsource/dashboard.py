"""What operators and commuters see of live congestion: k-anonymous aggregates only.

:func:`congested_edges` turns the live multipliers into a list of congested drive edges,
keeping an edge only if at least ``k`` distinct contributors reported it in the fusion
window, or an operator confirmed or declared it. :func:`congestion_geojson` draws them with
street names and geometry. :class:`DashboardMetrics` keeps one sample a minute (reports
received, congestion index, active trips, suggestion counters and the k-anonymous congested
edges) for the dashboard's charts and time slider, under ``opsmetrics:<city>`` (a hash,
field = minute, expiring :data:`METRICS_KEEP_S` after the latest sample).

No report, token, network hash or contributor position ever leaves this module: only edge
ids, street names and geometry, multipliers and counts.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from crowdsource.city_records import CityRecords
from crowdsource.decisions import Decisions
from crowdsource.fusion import LEVEL_MULTIPLIER
from crowdsource.models import Report
from routing.streets import StreetNetwork

METRICS_KEEP_S = 6 * 3600.0
SAMPLE_INTERVAL_S = 60.0
Decision = Literal["confirmed", "declared"]


def k_threshold(count: int | None, k: int) -> int | None:
    """A count, or ``None`` when ``0 < count < k`` (too few to show without singling out)."""
    if count is None:
        return None
    return count if count == 0 or count >= k else None


def level_of(multiplier: float) -> int | None:
    """The congestion level (1–4) a multiplier stands for; ``None`` for a closure (inf).

    The highest level whose multiplier (×1.3, ×1.8, ×2.5, ×4.0) it reaches, at least 1.
    """
    if math.isinf(multiplier):
        return None
    reached = [lvl for lvl, m in LEVEL_MULTIPLIER.items() if multiplier >= m - 1e-9]
    return max(reached, default=1)


@dataclass(frozen=True)
class CongestedEdge:
    """One congested drive edge as an aggregate (never a report, a token or a position).

    Attributes
    ----------
    edge : int
        Drive edge id.
    way_id : int
        OSM way id.
    name : str
        Street name ("" when the street has none).
    multiplier : float or None
        Travel-time factor; ``None`` when closed.
    closed : bool
        Whether the street is closed.
    level : int or None
        1–4 (see :func:`level_of`); ``None`` when closed.
    contributors : int or None
        Distinct contributors behind it in the fusion window (at least k), ``None`` where
        only an operator decision stands behind it.
    operator_decision : {"confirmed", "declared"} or None
        An operator's confirmation or declared incident, if any.
    """

    edge: int
    way_id: int
    name: str
    multiplier: float | None
    closed: bool
    level: int | None
    contributors: int | None
    operator_decision: Decision | None


def contributors_by_edge(reports: Iterable[Report]) -> dict[int, int]:
    """How many distinct contributors reported each edge."""
    behind: dict[int, set[str]] = {}
    for report in reports:
        for edge in report.edge_ids:
            behind.setdefault(edge, set()).add(report.contributor)
    return {edge: len(who) for edge, who in behind.items()}


def congested_edges(
    drive: StreetNetwork,
    multipliers: NDArray[np.float64],
    contributors: Mapping[int, int],
    decisions: Decisions,
    k: int,
) -> list[CongestedEdge]:
    """The k-anonymous congested edges: moved multipliers with ≥ k contributors behind
    them, or an operator's confirmation or declaration.

    Parameters
    ----------
    drive : StreetNetwork
        The city's drive network.
    multipliers : ndarray
        The live drive-edge multipliers (1 = free flow, inf = closed).
    contributors : mapping of int to int
        Distinct contributors per edge in the fusion window.
    decisions : Decisions
        Operator decisions in force.
    k : int
        Distinct contributors needed before an edge is shown.

    Returns
    -------
    list of CongestedEdge
        By edge id.
    """
    out = []
    for edge in (int(e) for e in np.flatnonzero(multipliers != 1.0)):
        n = contributors.get(edge, 0)
        decision: Decision | None = (
            "declared"
            if edge in decisions.declarations
            else "confirmed"
            if edge in decisions.confirmations
            else None
        )
        if n < k and decision is None:
            continue  # fewer than k voices: not shown, whatever moved it
        value = float(multipliers[edge])
        closed = math.isinf(value)
        out.append(
            CongestedEdge(
                edge=edge,
                way_id=int(drive.way_id[edge]),
                name=str(drive.names[int(drive.name_idx[edge])]),
                multiplier=None if closed else round(value, 3),
                closed=closed,
                level=level_of(value),
                contributors=n if n >= k else None,
                operator_decision=decision,
            )
        )
    return out


def edge_feature(drive: StreetNetwork, edge: int, properties: dict[str, Any]) -> dict[str, Any]:
    """A GeoJSON LineString feature of one drive edge (tail to head)."""
    coords = [[round(float(x), 6), round(float(y), 6)] for x, y in drive.edge_coords(edge)]
    return {
        "type": "Feature",
        "id": edge,
        "geometry": {"type": "LineString", "coordinates": coords},
        "properties": properties,
    }


def congestion_geojson(
    drive: StreetNetwork, edges: Iterable[CongestedEdge], *, operator: bool
) -> dict[str, Any]:
    """Congested edges as a GeoJSON FeatureCollection with street names.

    Parameters
    ----------
    drive : StreetNetwork
        The drive network (geometry, names).
    edges : iterable of CongestedEdge
        From :func:`congested_edges`.
    operator : bool
        Include the operator-only properties (``contributors``, ``operator_decision``).

    Returns
    -------
    dict
        ``{"type": "FeatureCollection", "features": [...]}``; each feature's properties:
        ``edge``, ``way_id``, ``name``, ``level`` (1–4 or null), ``closed``, ``multiplier``.
    """
    features = []
    for item in edges:
        props: dict[str, Any] = {
            "edge": item.edge,
            "way_id": item.way_id,
            "name": item.name,
            "level": item.level,
            "closed": item.closed,
            "multiplier": item.multiplier,
        }
        if operator:
            props["contributors"] = item.contributors
            props["operator_decision"] = item.operator_decision
        features.append(edge_feature(drive, item.edge, props))
    return {"type": "FeatureCollection", "features": features}


def bearing_deg(coords: NDArray[np.float64]) -> float:
    """Compass bearing (0 = north, clockwise) from the first to the last ``[lon, lat]``."""
    lon1, lat1 = np.radians(coords[0])
    lon2, lat2 = np.radians(coords[-1])
    y = np.sin(lon2 - lon1) * np.cos(lat2)
    x = np.cos(lat1) * np.sin(lat2) - np.sin(lat1) * np.cos(lat2) * np.cos(lon2 - lon1)
    return round(float(np.degrees(np.arctan2(y, x)) % 360.0), 1)


def street_at(drive: StreetNetwork, edge: int, opposite: Iterable[int]) -> dict[str, Any]:
    """A drive street picked on a map: its edge, name and geometry, and each direction a
    driver may travel it (edge id and compass bearing), for reports and incidents.

    Parameters
    ----------
    drive : StreetNetwork
        The drive network.
    edge : int
        The edge nearest to where the map was tapped.
    opposite : iterable of int
        Edges of the same way running the other way.

    Returns
    -------
    dict
        A GeoJSON Feature; ``properties``: ``edge``, ``name``, ``directions``
        (``[{"edge", "heading"}]``, the tapped edge first).
    """
    directions = [
        {"edge": e, "heading": bearing_deg(drive.edge_coords(e))} for e in (edge, *opposite)
    ]
    name = str(drive.names[int(drive.name_idx[edge])])
    return edge_feature(drive, edge, {"edge": edge, "name": name, "directions": directions})


def congestion_index(drive: StreetNetwork, edges: Iterable[CongestedEdge]) -> tuple[float, float]:
    """The share of the drive network that is congested or closed.

    Returns
    -------
    (float, float)
        Per cent of the drive network's length on shown (k-anonymous) congested or closed
        edges, and that length in km.
    """
    ids = np.array([e.edge for e in edges], dtype=np.int64)
    congested_m = float(drive.length_m[ids].sum()) if len(ids) else 0.0
    total_m = float(drive.length_m.sum()) or 1.0
    return round(100.0 * congested_m / total_m, 3), round(congested_m / 1000.0, 3)


@dataclass(frozen=True)
class DashboardSample:
    """One minute of a city, for the dashboard's charts and time slider.

    Attributes
    ----------
    t : int
        Start of the minute (unix seconds).
    reports : int
        Reports received in the minute before ``t``.
    congestion_index : float
        :func:`congestion_index` per cent.
    congested_km : float
        Length of shown congested or closed streets.
    active_trips : int
        Live trips in progress.
    suggestions_made, suggestions_accepted : int
        The city's cumulative counters at ``t``.
    edges : dict of str to float
        Shown congested edges → multiplier (0 for a closure), as the map showed them.
    """

    t: int
    reports: int
    congestion_index: float
    congested_km: float
    active_trips: int
    suggestions_made: int
    suggestions_accepted: int
    edges: dict[str, float] = field(default_factory=dict)


def reports_received(reports: Iterable[Report], start: float, end: float) -> int:
    """How many reports were received in ``[start, end)``."""
    return sum(start <= r.received_at < end for r in reports)


def edge_levels(edges: Iterable[CongestedEdge]) -> dict[str, float]:
    """Edge id → multiplier (0 for a closure) of shown congested edges."""
    return {str(e.edge): 0.0 if e.closed else float(e.multiplier or 1.0) for e in edges}


def metrics_key(city: str) -> str:
    """Store key of a city's dashboard samples (hash: minute → sample JSON)."""
    return f"opsmetrics:{city}"


def claim_key(city: str, minute: int) -> str:
    """Store key one process increments to take the sample of a minute."""
    return f"opsmetrics:{city}:claim:{minute}"


class DashboardMetrics(CityRecords):
    """A city's per-minute dashboard samples in the shared store, kept 6 h unless ``keep_s``
    says otherwise (parameters: :class:`~crowdsource.city_records.CityRecords`).

    Several API processes may sample: the first to claim a minute records it, the others
    skip it, so a minute has one sample whatever the number of processes.
    """

    KEEP_S = METRICS_KEEP_S

    async def claim(self, now: float) -> int | None:
        """Claim the current minute; return it, or ``None`` if another process has it."""
        minute = int(now // SAMPLE_INTERVAL_S * SAMPLE_INTERVAL_S)
        taken = await self.store.incr(claim_key(self.city, minute), ttl_s=2 * SAMPLE_INTERVAL_S)
        return minute if taken == 1 else None

    async def record(self, sample: DashboardSample) -> None:
        """Store a sample (replacing one of the same minute) and drop expired ones."""
        key = metrics_key(self.city)
        await self.store.hset(key, {str(sample.t): json.dumps(asdict(sample)).encode()})
        await self.store.expire(key, self.keep_s)
        old = [f for f in await self.store.hgetall(key) if int(f) < sample.t - self.keep_s]
        if old:
            await self.store.hdel(key, *old)

    async def samples(self, since: float) -> list[DashboardSample]:
        """Samples from ``since`` (unix seconds) on, oldest first."""
        raw = await self.store.hgetall(metrics_key(self.city))
        found = [DashboardSample(**json.loads(v)) for f, v in raw.items() if int(f) >= since]
        return sorted(found, key=lambda s: s.t)
