"""Operator decisions on live congestion: confirmations, dismissals, declared incidents.

No HTTP here: ``api/routes/operators.py`` is a thin adapter over this module (accounts and
sessions are :mod:`crowdsource.accounts`).

:class:`OperatorDecisions` records confirmations, dismissals and declared incidents (the
incident half is :class:`crowdsource.incidents.IncidentDesk`; the checks both share are
:mod:`crowdsource.drive_edges`) under the ``ops:<city>:...`` keys documented in
``crowdsource/README.md``, and publishes one event per decision. It does not fuse anything:
the fusion engine reads those keys (:mod:`crowdsource.decisions`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

from correspondance.store.events import utc_now
from crowdsource.audit import AuditLog
from crowdsource.drive_edges import (
    DEFAULT_DECISION_TTL_S,
    MAX_DECISION_TTL_S,
    MIN_DECISION_TTL_S,
    UnknownEdgeError,
    check_edge,
    check_level,
    check_ttl,
    encode_record,
    opposite_edges,
)
from crowdsource.incidents import (
    DEFAULT_INCIDENT_TTL_S,
    MAX_INCIDENT_EDGES,
    MAX_NOTE_LENGTH,
    Incident,
    IncidentDesk,
    UnknownIncidentError,
    incident_key,
)

if TYPE_CHECKING:  # the CLI manages accounts without loading the routing stack
    from routing.base import CityBase

# the API's adapters and error mapping import these from here
__all__ = [
    "CONGESTION_CONFIRMED",
    "CONGESTION_DISMISSED",
    "DEFAULT_DECISION_TTL_S",
    "DEFAULT_INCIDENT_TTL_S",
    "MAX_DECISION_TTL_S",
    "MAX_INCIDENT_EDGES",
    "MAX_NOTE_LENGTH",
    "MIN_DECISION_TTL_S",
    "EdgeDecision",
    "Incident",
    "OperatorDecisions",
    "UnknownEdgeError",
    "UnknownIncidentError",
    "confirm_key",
    "dismiss_key",
    "incident_key",
    "opposite_edges",
]

CONGESTION_CONFIRMED = "congestion.confirmed"
CONGESTION_DISMISSED = "congestion.dismissed"


def confirm_key(city: str, edge: int) -> str:
    """Store key of an operator's confirmation of congestion on a drive edge."""
    return f"ops:{city}:confirm:{edge}"


def dismiss_key(city: str, edge: int) -> str:
    """Store key of an operator's dismissal of congestion reports on a drive edge."""
    return f"ops:{city}:dismiss:{edge}"


@dataclass(frozen=True)
class EdgeDecision:
    """An operator's confirmation or dismissal of congestion on one drive edge.

    Attributes
    ----------
    city : str
        City id.
    edge : int
        Drive edge id.
    decision : {"confirm", "dismiss"}
        What the operator decided.
    level : int or None
        Congestion level 1–4 the operator confirms (``None``: as reported).
    decided_by : str
        The operator.
    decided_at, expires_at : str
        ISO 8601 UTC.
    """

    city: str
    edge: int
    decision: Literal["confirm", "dismiss"]
    level: int | None
    decided_by: str
    decided_at: str
    expires_at: str


class OperatorDecisions(IncidentDesk):
    """Records operator decisions in the store, announces each one on the event stream and
    appends it to the city's audit log (:class:`crowdsource.audit.AuditLog`).

    Parameters
    ----------
    store : StateStore
        Where decisions are kept (keys in ``crowdsource/README.md``) and published.
    """

    async def confirm_edge(
        self,
        base: CityBase,
        edge: int,
        *,
        operator: str,
        level: int | None = None,
        expires_in_s: int = DEFAULT_DECISION_TTL_S,
    ) -> EdgeDecision:
        """Confirm congestion on a drive edge (replacing any dismissal of it).

        Publishes ``congestion.confirmed`` with ``edges``, ``level`` and ``expires_at``.

        Parameters
        ----------
        base : CityBase
            The city.
        edge : int
            Drive edge id.
        operator : str
            Who confirms.
        level : int, optional
            Congestion level 1–4 (``None``: the level contributors report).
        expires_in_s : int, default 1 h
            Lifetime, 60 s to 7 days.

        Returns
        -------
        EdgeDecision
            What was stored.

        Raises
        ------
        UnknownEdgeError
            If the drive network has no such edge.
        InputError
            If ``level`` or ``expires_in_s`` is out of range.
        """
        return await self._decide(base, edge, "confirm", operator, level, expires_in_s)

    async def dismiss_edge(
        self,
        base: CityBase,
        edge: int,
        *,
        operator: str,
        expires_in_s: int = DEFAULT_DECISION_TTL_S,
    ) -> EdgeDecision:
        """Dismiss congestion reports on a drive edge (replacing any confirmation of it).

        Publishes ``congestion.dismissed`` with ``edges`` and ``expires_at``. Parameters,
        result and errors as :meth:`confirm_edge` (no ``level``).
        """
        return await self._decide(base, edge, "dismiss", operator, None, expires_in_s)

    async def _decide(
        self,
        base: CityBase,
        edge: int,
        decision: Literal["confirm", "dismiss"],
        operator: str,
        level: int | None,
        expires_in_s: int,
    ) -> EdgeDecision:
        check_edge(base.streets["drive"], edge)
        check_level(level)
        check_ttl(expires_in_s)
        city, now = base.city.id, utc_now()
        record = EdgeDecision(
            city=city,
            edge=edge,
            decision=decision,
            level=level,
            decided_by=operator,
            decided_at=now.isoformat(),
            expires_at=(now + timedelta(seconds=expires_in_s)).isoformat(),
        )
        keep, drop = (
            (confirm_key, dismiss_key) if decision == "confirm" else (dismiss_key, confirm_key)
        )
        await self.store.set(keep(city, edge), encode_record(asdict(record)), ttl_s=expires_in_s)
        await self.store.delete(drop(city, edge))
        payload: dict[str, Any] = {"edges": [edge], "expires_at": record.expires_at}
        if decision == "confirm":
            payload["level"] = level
        event = CONGESTION_CONFIRMED if decision == "confirm" else CONGESTION_DISMISSED
        await self.store.publish(event, city, payload)
        await AuditLog(self.store, city).append(
            operator,
            "edge.confirmed" if decision == "confirm" else "edge.dismissed",
            f"edge:{edge}",
            {"level": level, "expires_at": record.expires_at},
        )
        return record
