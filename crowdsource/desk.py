"""The report desk: everything ``/api/v1/reports`` and ``/api/v1/me/reports`` do beyond HTTP.

It owns the deployment's contributor secret (resolved once, shared by every API worker),
the abuse limits from the settings, and per served city the report repository, the abuse
guard and the atomic intake; with them it takes one report or a batch, and exports or
deletes what is kept about a contributor. The routes read the body, the token header and
the client address, call the desk and turn its answers into HTTP.

:class:`ReportDeskOpener` opens the desk at start-up, or, if the store was down then, at
the first request that needs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import secrets
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from correspondance.settings import Settings
from correspondance.store import StateStore, StoreUnavailableError
from crowdsource.abuse import AbuseGuard, AbuseLimits
from crowdsource.admission import ReportIntake
from crowdsource.errors import RateLimitedError, ReportRejectedError, UnknownReportError
from crowdsource.fusion import ContributorWeights
from crowdsource.intake import prepare_report
from crowdsource.models import MAX_BATCH, parse_batch, parse_report
from crowdsource.repository import ReportRepository
from crowdsource.selfdata import delete_contributor, export_contributor
from crowdsource.tokens import address_key, contributor_key
from routing.base import CityBase

SECRET_KEY = "cs:secret"
SECRET_LOCK = "cs-secret"
SECRET_BYTES = 32


# -- the contributor secret -----------------------------------------------------------------


async def _secret_in_store(store: StateStore) -> bytes:
    """The deployment's generated secret in the shared store, created once (under a lock,
    so concurrent API workers agree on one)."""
    owner = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
    deadline = time.monotonic() + 10.0
    while True:
        raw = await store.get(SECRET_KEY)
        if raw is not None:
            return bytes.fromhex(raw.decode())
        if await store.acquire_lock(SECRET_LOCK, owner, 10.0):
            try:
                raw = await store.get(SECRET_KEY)
                if raw is None:
                    raw = secrets.token_hex(SECRET_BYTES).encode()
                    await store.set(SECRET_KEY, raw)
                return bytes.fromhex(raw.decode())
            finally:
                await store.release_lock(SECRET_LOCK, owner)
        if time.monotonic() > deadline:
            raise StoreUnavailableError("could not agree on the contributor secret in time")
        await asyncio.sleep(0.05)


def _secret_in_file(path: Path) -> bytes:
    """The embedded deployment's generated secret, created once with mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(SECRET_BYTES) + "\n")
    text = path.read_text().strip()
    secret = bytes.fromhex(text)
    if len(secret) < 16:
        raise ValueError(f"{path} does not hold a contributor secret (64 hex digits)")
    return secret


async def resolve_contributor_secret(store: StateStore, settings: Settings) -> bytes:
    """The HMAC key of contributor tokens and client addresses.

    ``CORRESPONDANCE_CONTRIBUTOR_SECRET`` if set; otherwise generated at first start and
    persisted (Redis: ``cs:secret``; embedded: ``settings.secret_file``), so keyed hashes,
    and with them exports, deletions and rate limits, survive restarts.
    """
    given = settings.contributor_secret
    if given is not None:
        secret = given.get_secret_value().encode()
        if len(secret) < 16:
            raise ValueError("CORRESPONDANCE_CONTRIBUTOR_SECRET must have at least 16 bytes")
        return secret
    if store.backend == "redis":
        return await _secret_in_store(store)
    return await asyncio.to_thread(_secret_in_file, settings.secret_file)


def abuse_limits(overrides: dict[str, float]) -> AbuseLimits:
    """:class:`AbuseLimits` with the settings' overrides (unknown names are an error)."""
    defaults = AbuseLimits()
    known = {f.name: type(getattr(defaults, f.name)) for f in dataclasses.fields(AbuseLimits)}
    unknown = sorted(set(overrides) - set(known))
    if unknown:
        raise ValueError(f"report_limits: unknown abuse limits {unknown}; known: {sorted(known)}")
    return dataclasses.replace(defaults, **{k: known[k](v) for k, v in overrides.items()})


# -- answers ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Taken:
    """A report the store now holds (``accepted``) or an exact duplicate it ignored."""

    report_id: str | None
    edge_ids: list[int]
    status: Literal["accepted", "duplicate"]


BatchStop = ReportRejectedError | RateLimitedError | StoreUnavailableError


@dataclass(frozen=True, slots=True)
class BatchEntry:
    """The outcome of one report of a batch: taken, or rejected with a code and message."""

    index: int
    status: Literal["accepted", "duplicate", "rejected"]
    report_id: str | None = None
    edge_ids: list[int] = dataclasses.field(default_factory=list)
    error_code: str | None = None
    error_message: str | None = None

    @classmethod
    def rejected(cls, index: int, exc: BatchStop) -> BatchEntry:
        code = getattr(exc, "code", "store_unavailable")
        message = (
            exc.message if isinstance(exc, ReportRejectedError | RateLimitedError) else str(exc)
        )
        return cls(index=index, status="rejected", error_code=code, error_message=message)


@dataclass(frozen=True, slots=True)
class BatchTaken:
    """Per-report outcomes of a batch, in the order sent; ``limited`` is the rate limit
    that stopped it early, if one did (some reports were stored all the same)."""

    entries: list[BatchEntry]
    limited: RateLimitedError | None

    def count(self, status: str) -> int:
        return sum(entry.status == status for entry in self.entries)


# -- the desk ---------------------------------------------------------------------------------


@dataclass
class ReportDesk:
    """What the report endpoints share in one process: secret, repositories, guards."""

    secret: bytes
    repositories: dict[str, ReportRepository]
    guards: dict[str, AbuseGuard]
    weights: ContributorWeights
    intakes: dict[str, ReportIntake]
    max_age_s: float

    @classmethod
    async def open(cls, store: StateStore, settings: Settings, cities: Iterable[str]) -> ReportDesk:
        """Resolve the secret and build the objects of every served city."""
        secret = await resolve_contributor_secret(store, settings)
        limits = abuse_limits(settings.report_limits)
        ttl = settings.report_ttl_s
        cities = list(cities)
        repositories = {c: ReportRepository(store, c, ttl) for c in cities}
        guards = {c: AbuseGuard(store, limits, secret=secret, city=c) for c in cities}
        return cls(
            secret=secret,
            repositories=repositories,
            guards=guards,
            weights=ContributorWeights(store),
            intakes={c: ReportIntake(guards[c], repositories[c]) for c in cities},
            max_age_s=settings.report_max_age_s,
        )

    def contributor(self, token: str) -> str:
        """Keyed hash of a contributor token (``invalid_report`` naming the header if it is
        missing or malformed)."""
        return contributor_key(token, self.secret)

    async def take(self, raw: bytes, *, contributor: str, address: str, base: CityBase) -> Taken:
        """Validate, match, check and store one report body; return once the store has it."""
        body = parse_report(raw)
        now = time.time()
        report = prepare_report(
            body,
            contributor=contributor,
            origin=address_key(address, self.secret),
            city=base.city,
            drive=base.streets["drive"],
            now=now,
            max_age_s=self.max_age_s,
        )
        # the abuse rules and the storing, in one atomic store call: answered once stored
        stored = await self.intakes[base.city.id].admit(report, address, now)
        return Taken(
            report_id=report.report_id if stored else None,
            edge_ids=list(report.edge_ids),
            status="accepted" if stored else "duplicate",
        )

    async def take_batch(
        self, raw: bytes, *, contributor: str, address: str, base: CityBase
    ) -> BatchTaken:
        """Take each report of ``{"reports": [...]}`` (1–100) on its own, in order.

        Once a rate limit is hit (or the store is down) the remaining reports are not tried;
        if none was stored that error is raised instead of an answer.
        """
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError):  # parse_batch below names what is wrong
            data = None
        shape_ok = (
            isinstance(data, dict)
            and set(data) == {"reports"}
            and isinstance(data["reports"], list)
            and 1 <= len(data["reports"]) <= MAX_BATCH
        )
        if not shape_ok:
            parse_batch(raw)  # names what is wrong with the envelope
            raise ReportRejectedError("invalid report: body: expected {'reports': [...]}")
        assert isinstance(data, dict)
        entries: list[BatchEntry] = []
        stop: BatchStop | None = None
        for index, item in enumerate(data["reports"]):
            if stop is not None:
                entries.append(BatchEntry.rejected(index, stop))
                continue
            try:
                taken = await self.take(
                    json.dumps(item).encode(), contributor=contributor, address=address, base=base
                )
            except ReportRejectedError as exc:
                entries.append(BatchEntry.rejected(index, exc))
                continue
            except (RateLimitedError, StoreUnavailableError) as exc:
                stop = exc
                entries.append(BatchEntry.rejected(index, exc))
                continue
            entries.append(
                BatchEntry(
                    index=index,
                    status=taken.status,
                    report_id=taken.report_id,
                    edge_ids=taken.edge_ids,
                )
            )
        if stop is not None and all(entry.status == "rejected" for entry in entries):
            raise stop
        return BatchTaken(entries, stop if isinstance(stop, RateLimitedError) else None)

    async def export(self, contributor: str) -> dict[str, Any]:
        """Everything kept about a contributor (every city): reports and trust weight."""
        return await export_contributor(contributor, list(self.repositories.values()), self.weights)

    async def delete(self, contributor: str) -> int:
        """Delete everything linked to a contributor: reports, trust weight, last position
        and rate-limit counters; answers how many reports were deleted."""
        return await delete_contributor(
            contributor,
            list(self.repositories.values()),
            self.weights,
            list(self.guards.values()),
        )

    async def delete_one(self, contributor: str, report_id: str) -> None:
        """Delete one of a contributor's reports (``unknown_report`` if they have no such
        report); weight and counters stay."""
        for repository in self.repositories.values():
            if await repository.delete_one(contributor, report_id):
                return
        raise UnknownReportError(f"you have no report {report_id[:64]!r} (expired or deleted?)")


class ReportDeskOpener:
    """This process's :class:`ReportDesk`, opened at start-up or, if the store was down
    then, at the first request that needs it (once, under a lock)."""

    def __init__(self, store: StateStore, settings: Settings, cities: Iterable[str]) -> None:
        self.store = store
        self.settings = settings
        self.cities = list(cities)
        self._desk: ReportDesk | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        """Open the desk now; a store outage only defers it to the first request."""
        with contextlib.suppress(StoreUnavailableError):
            await self.desk()

    async def desk(self) -> ReportDesk:
        """The open desk (opening it if it is not yet)."""
        desk = self._desk
        if desk is None:
            async with self._lock:
                desk = self._desk
                if desk is None:
                    desk = self._desk = await ReportDesk.open(
                        self.store, self.settings, self.cities
                    )
        return desk
