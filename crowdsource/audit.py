"""The operators' audit log: who decided what, and when.

Every operator decision (:class:`crowdsource.operators.OperatorDecisions`) appends one entry
to its city's log, a store hash ``ops:<city>:audit`` (field ``<ms>:<random>`` → JSON entry).
Entries older than :data:`AUDIT_KEEP_S` are pruned on the next append, and the whole hash
expires that long after its latest entry. Entries name operators (accounts, not
contributors) and drive edges; they never hold a report, a token or a position of anyone
but the incident an operator declared.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

from crowdsource.city_records import CityRecords

AUDIT_KEEP_S = 30 * 86_400.0
MAX_AUDIT_ENTRIES = 10_000


def audit_key(city: str) -> str:
    """Store key of a city's audit log (a hash of entries)."""
    return f"ops:{city}:audit"


@dataclass(frozen=True)
class AuditEntry:
    """One operator decision.

    Attributes
    ----------
    at : str
        When (ISO 8601 UTC).
    operator : str
        Who (an operator's username).
    action : str
        What: ``incident.declared``, ``incident.updated``, ``incident.ended``,
        ``edge.confirmed``, ``edge.dismissed``.
    target : str
        What it was done to: ``incident:<id>`` or ``edge:<id>``.
    details : dict
        The decision's parameters (kind, level, note, edges, expiry, ...).
    """

    at: str
    operator: str
    action: str
    target: str
    details: dict[str, Any]


class AuditLog(CityRecords):
    """Append to and read a city's audit log; entries are kept 30 days unless ``keep_s``
    says otherwise (parameters: :class:`~crowdsource.city_records.CityRecords`)."""

    KEEP_S = AUDIT_KEEP_S

    async def append(
        self,
        operator: str,
        action: str,
        target: str,
        details: dict[str, Any],
        now: float | None = None,
    ) -> AuditEntry:
        """Record one decision (and prune what is older than ``keep_s``).

        Parameters
        ----------
        operator, action, target : str
            Who, what, on what.
        details : dict
            JSON-compatible parameters of the decision.
        now : float, optional
            Unix seconds (default: the clock).

        Returns
        -------
        AuditEntry
            What was stored.
        """
        now = time.time() if now is None else now
        entry = AuditEntry(
            at=datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds"),
            operator=operator,
            action=action,
            target=target,
            details=details,
        )
        key = audit_key(self.city)
        field = f"{int(now * 1000):015d}:{secrets.token_hex(4)}"
        await self.store.hset(key, {field: json.dumps(asdict(entry)).encode()})
        await self.store.expire(key, self.keep_s)
        await self._prune(now)
        return entry

    async def _prune(self, now: float) -> None:
        fields = sorted(await self.store.hgetall(audit_key(self.city)))
        cutoff = f"{int((now - self.keep_s) * 1000):015d}"
        old = [f for f in fields if f < cutoff]
        excess = len(fields) - len(old) - MAX_AUDIT_ENTRIES
        if excess > 0:
            old += fields[len(old) : len(old) + excess]
        if old:
            await self.store.hdel(audit_key(self.city), *old)

    async def entries(self, limit: int = 200) -> list[AuditEntry]:
        """The latest entries, newest first.

        Parameters
        ----------
        limit : int, default 200
            At most this many.

        Returns
        -------
        list of AuditEntry
            Newest first.
        """
        raw = await self.store.hgetall(audit_key(self.city))
        latest = sorted(raw, reverse=True)[:limit]
        return [AuditEntry(**json.loads(raw[f])) for f in latest]
