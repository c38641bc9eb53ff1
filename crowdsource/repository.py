"""Where reports live: the store, with expiry doing the forgetting.

Keys (city ``c``; every id below is random or a keyed hash, never a token or an address):

``cs:c:report:<report_id>``
    The report as JSON (no network hash), expiring after ``raw_ttl_s`` (default 24 h).
``cs:c:by:<contributor>``
    Set of that contributor's report ids, for export and deletion; expires ``raw_ttl_s``
    after their latest report.
``cs:c:pending:<bucket_ms>:<n>``
    Hash report_id → report JSON *with* its network hash, one per time bucket of receipt,
    read by fusion. Each bucket expires ``keep_s`` after it opened (``keep_s`` = the
    smaller of ``pending_keep_s`` and ``raw_ttl_s``), so the network hash never outlives
    the pending window, nor any report its raw TTL.
``cs:c:dedup:<hash>``
    Last ``observed_at`` of (contributor, edges, kind, level), for 2 minutes: duplicates.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from typing import Any

from correspondance.store import StateStore
from crowdsource.models import Report

RAW_TTL_S = 86_400.0
PENDING_KEEP_S = 1_800.0
DUPLICATE_WINDOW_S = 60.0
REPORTS_DELETED = "reports.deleted"
MAX_IDS_IN_EVENT = 1000


class ReportRepository:
    """Reports of one city in the shared store.

    Parameters
    ----------
    store : StateStore
        Memory or Redis backend.
    city : str
        City id.
    raw_ttl_s : float, default 86400
        How long raw reports are kept (Redis expiry removes them).
    pending_keep_s : float, default 1800
        How long reports stay readable by fusion (and their network hash kept); capped at
        ``raw_ttl_s``. Must exceed the fusion window.
    """

    def __init__(
        self,
        store: StateStore,
        city: str,
        raw_ttl_s: float = RAW_TTL_S,
        pending_keep_s: float = PENDING_KEEP_S,
    ) -> None:
        if not raw_ttl_s > 0 or not pending_keep_s > 0:
            raise ValueError("raw_ttl_s and pending_keep_s must be > 0")
        self.store = store
        self.city = city
        self.raw_ttl_s = float(raw_ttl_s)
        self.keep_s = min(float(pending_keep_s), self.raw_ttl_s)
        # ten buckets per kept span, at most a minute each: few keys to read per fusion
        self.bucket_s = min(60.0, self.keep_s / 10)
        self._prefix = f"cs:{city}:"
        self._decoded: dict[bytes, Report] = {}  # pending value → its report, last read

    # -- keys ----------------------------------------------------------------------------

    def report_key(self, report_id: str) -> str:
        """Key of one stored report."""
        return f"{self._prefix}report:{report_id}"

    def contributor_key(self, contributor: str) -> str:
        """Key of a contributor's set of report ids."""
        return f"{self._prefix}by:{contributor}"

    def bucket_of(self, received_at: float) -> int:
        """Number of the pending bucket a report received at that time goes to."""
        return math.floor(received_at / self.bucket_s)

    def pending_key(self, bucket: int) -> str:
        """Key of one pending bucket (see :meth:`bucket_of`)."""
        return f"{self._prefix}pending:{round(self.bucket_s * 1000)}:{bucket}"

    def dedup_key(self, report: Report) -> str:
        """Key of the duplicate marker of (contributor, edges, kind, level)."""
        what = f"{report.contributor}|{report.edge_ids}|{report.kind}|{report.level}"
        return f"{self._prefix}dedup:{hashlib.sha256(what.encode()).hexdigest()[:32]}"

    _bucket = bucket_of
    _pending_key = pending_key
    _dedup_key = dedup_key

    # -- writing -------------------------------------------------------------------------

    async def add(self, report: Report) -> bool:
        """Store a report; return only once the store has it (the API acks after this).

        Parameters
        ----------
        report : Report
            A matched, checked report of this city.

        Returns
        -------
        bool
            ``False`` if it is an exact duplicate (same contributor, edges, kind and level,
            observed within 60 s of the previous one): nothing is stored then.

        Raises
        ------
        ValueError
            If the report belongs to another city.
        StoreUnavailableError
            If the store cannot be reached (the report must not be acknowledged).
        """
        if report.city != self.city:
            raise ValueError(f"report of {report.city} given to the {self.city} repository")
        dedup_key = self._dedup_key(report)
        previous = await self.store.get(dedup_key)
        if previous is not None and abs(float(previous) - report.observed_at) < DUPLICATE_WINDOW_S:
            return False
        by = self.contributor_key(report.contributor)
        bucket = self._bucket(report.received_at)
        pending = self._pending_key(bucket)
        # independent writes go out together (one round trip of latency, not five); all of
        # them have completed, or this raises, before the report is acknowledged
        await asyncio.gather(
            self.store.set(self.report_key(report.report_id), report.to_json(), self.raw_ttl_s),
            self.store.sadd(by, report.report_id),
            self.store.hset(pending, {report.report_id: report.to_json(with_origin=True)}),
        )
        # the bucket expires keep_s after it opened, whatever was added to it later
        expires_in = bucket * self.bucket_s + self.keep_s - time.time()
        await asyncio.gather(
            self.store.expire(by, self.raw_ttl_s),
            self.store.expire(pending, max(expires_in, 0.001)),
        )
        # written last: a report whose storing failed half-way is not "duplicate" on retry
        await self.store.set(dedup_key, repr(report.observed_at).encode(), 2 * DUPLICATE_WINDOW_S)
        return True

    # -- reading -------------------------------------------------------------------------

    async def recent(self, window_s: float, now: float | None = None) -> list[Report]:
        """Reports observed in the last ``window_s`` seconds, with their network hash.

        Parameters
        ----------
        window_s : float
            How far back; capped at what the pending index keeps (``keep_s`` less one bucket).
        now : float, optional
            Unix seconds (default: the clock).

        Returns
        -------
        list of Report
            In no particular order; ``origin`` set.
        """
        now = time.time() if now is None else now
        window_s = min(window_s, self.keep_s - self.bucket_s)
        first, last = self._bucket(now - window_s - self.bucket_s), self._bucket(now)
        raws: list[bytes] = []
        for bucket in range(first, last + 1):
            raws += (await self.store.hgetall(self._pending_key(bucket))).values()
        # pending values never change once written, and the fuser reads the same ones
        # every second: only those new since the last call are decoded
        known = self._decoded
        missing = [raw for raw in raws if raw not in known]
        if missing:
            known = {**known, **dict(zip(missing, Report.many_from_json(missing), strict=True))}
        reports = [known[raw] for raw in raws]
        self._decoded = dict(zip(raws, reports, strict=True))  # only what is still pending
        since = now - window_s
        return [r for r in reports if since <= r.observed_at]

    async def _reports_of(self, contributor: str) -> list[Report]:
        ids = sorted(await self.store.smembers(self.contributor_key(contributor)))
        reports = []
        for report_id in ids:
            raw = await self.store.get(self.report_key(report_id))
            if raw is not None:  # expired ones leave a stale id behind, nothing else
                reports.append(Report.from_json(raw))
        return reports

    async def export(self, contributor: str) -> list[dict[str, Any]]:
        """Everything kept about a contributor: their reports, oldest first.

        Parameters
        ----------
        contributor : str
            Keyed hash of their token.

        Returns
        -------
        list of dict
            JSON-compatible reports (``report_id``, position, kind, level, heading, mode,
            ``observed_at``, ``received_at``, ``edge_ids``, ``city``; ``contributor`` is
            left out: it is the caller's own hash).
        """
        reports = sorted(await self._reports_of(contributor), key=lambda r: r.observed_at)
        out = []
        for report in reports:
            data = report.to_dict()
            del data["contributor"]
            out.append(data)
        return out

    async def delete_all(self, contributor: str) -> int:
        """Delete a contributor's reports, their index, pending and duplicate entries.

        Publishes ``reports.deleted`` (payload: ``n_reports`` and the ``edge_ids`` concerned,
        no contributor) so the fuser re-fuses at once without them.

        Parameters
        ----------
        contributor : str
            Keyed hash of their token.

        Returns
        -------
        int
            Number of reports deleted.
        """
        reports = await self._reports_of(contributor)
        for report in reports:
            await self.store.hdel(
                self._pending_key(self._bucket(report.received_at)), report.report_id
            )
            await self.store.delete(self.report_key(report.report_id), self._dedup_key(report))
        await self.store.delete(self.contributor_key(contributor))
        if reports:
            edges = sorted({e for r in reports for e in r.edge_ids})
            await self.store.publish(
                REPORTS_DELETED,
                self.city,
                {"n_reports": len(reports), "edge_ids": edges[:MAX_IDS_IN_EVENT]},
            )
        return len(reports)

    async def delete_one(self, contributor: str, report_id: str) -> bool:
        """Delete one of a contributor's reports (and its pending and duplicate entries).

        Publishes ``reports.deleted`` (``n_reports`` 1 and its ``edge_ids``).

        Parameters
        ----------
        contributor : str
            Keyed hash of their token: only their own report can be deleted.
        report_id : str
            The report.

        Returns
        -------
        bool
            ``False`` if they have no such report (never had, expired or deleted).
        """
        if report_id not in await self.store.smembers(self.contributor_key(contributor)):
            return False
        raw = await self.store.get(self.report_key(report_id))
        await self.store.srem(self.contributor_key(contributor), report_id)
        if raw is None:
            return False
        report = Report.from_json(raw)
        await self.store.hdel(self._pending_key(self._bucket(report.received_at)), report_id)
        await self.store.delete(self.report_key(report_id), self._dedup_key(report))
        await self.store.publish(
            REPORTS_DELETED,
            self.city,
            {"n_reports": 1, "edge_ids": sorted(report.edge_ids)[:MAX_IDS_IN_EVENT]},
        )
        return True
