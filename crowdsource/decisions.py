"""Operator decisions as fusion reads them, from the keys :mod:`crowdsource.operators` writes.

``crowdsource.operators.OperatorDecisions`` records confirmations, dismissals and declared
incidents under ``ops:<city>:confirm:<edge>``, ``ops:<city>:dismiss:<edge>`` and
``ops:<city>:incident:<id>`` (JSON, expiring with the decision) and publishes
``congestion.confirmed``, ``congestion.dismissed`` or ``incident.declared``. This module
turns what is in force into the plain mappings :func:`crowdsource.fusion.fuse_reports`
takes. Reading walks those keys (``scan_keys``), so :class:`StoredDecisions` caches the
result: it rereads when told a decision event arrived (:meth:`StoredDecisions.invalidate`)
and at least every ``rescan_s`` seconds.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime

from correspondance.store import StateStore
from crowdsource.fusion import LEVEL_MULTIPLIER

DECISION_EVENTS = frozenset(
    {"congestion.confirmed", "congestion.dismissed", "incident.declared", "incident.ended"}
)
"""Event types after which decisions must be reread."""
INCIDENT_DEFAULT_LEVEL = 2


@dataclass(frozen=True)
class Decisions:
    """Operator decisions in force.

    Attributes
    ----------
    confirmations : dict of int to (int or None)
        Edge → confirmed level (``None``: as contributors report it).
    dismissals : frozenset of int
        Edges whose reports are dismissed: they stay free while the dismissal lasts.
    declarations : dict of int to float
        Edge → multiplier of a declared incident (its level, default 2) or closure (inf);
        applied as is, no corroboration needed.
    """

    confirmations: dict[int, int | None] = field(default_factory=dict)
    dismissals: frozenset[int] = frozenset()
    declarations: dict[int, float] = field(default_factory=dict)


def _in_force(record: dict[str, object], now: float) -> bool:
    expires_at = record.get("expires_at")
    if not isinstance(expires_at, str):
        return True  # the key's own expiry still bounds it
    return datetime.fromisoformat(expires_at).timestamp() > now


async def load_decisions(store: StateStore, city: str, now: float) -> Decisions:
    """Read every operator decision of a city that is in force at ``now``.

    Parameters
    ----------
    store : StateStore
        The shared store.
    city : str
        City id.
    now : float
        Unix seconds.

    Returns
    -------
    Decisions
        Confirmations, dismissals and declared incidents/closures in force.
    """
    confirmations: dict[int, int | None] = {}
    dismissals: set[int] = set()
    declarations: dict[int, float] = {}
    for key in await store.scan_keys(f"ops:{city}:*"):
        kind = key.split(":")[2] if key.count(":") >= 3 else ""
        if kind not in ("confirm", "dismiss", "incident"):
            continue
        raw = await store.get(key)
        if raw is None:
            continue
        record = json.loads(raw)
        if not _in_force(record, now):
            continue
        if kind == "confirm":
            level = record.get("level")
            confirmations[int(record["edge"])] = int(level) if level is not None else None
        elif kind == "dismiss":
            dismissals.add(int(record["edge"]))
        elif record.get("kind") == "closure":
            declarations.update({int(e): float("inf") for e in record["edges"]})
        else:
            level = record.get("level") or INCIDENT_DEFAULT_LEVEL
            for edge in record["edges"]:
                edge = int(edge)
                declarations[edge] = max(declarations.get(edge, 1.0), LEVEL_MULTIPLIER[int(level)])
    return Decisions(confirmations, frozenset(dismissals), declarations)


class StoredDecisions:
    """Cached :func:`load_decisions` for the fuser's once-a-second loop.

    Parameters
    ----------
    store : StateStore
        The shared store.
    city : str
        City id.
    rescan_s : float, default 30
        Reread at least this often (decisions expire; events may be missed).
    """

    def __init__(self, store: StateStore, city: str, rescan_s: float = 30.0) -> None:
        self.store = store
        self.city = city
        self.rescan_s = rescan_s
        self._cached: Decisions | None = None
        self._read_at = 0.0

    def invalidate(self) -> None:
        """Reread at the next :meth:`load` (call on a decision event)."""
        self._cached = None

    async def load(self, now: float) -> Decisions:
        """Decisions in force (from the cache when fresh).

        Parameters
        ----------
        now : float
            Unix seconds.

        Returns
        -------
        Decisions
            What is in force.
        """
        if self._cached is None or time.monotonic() - self._read_at >= self.rescan_s:
            self._cached = await load_decisions(self.store, self.city, now)
            self._read_at = time.monotonic()
        return self._cached
