"""``/api/v1/reports`` and ``/api/v1/me/reports``: anonymous congestion reports.

The pipeline of every report (see ``crowdsource/README.md``)::

    X-Contributor-Token → contributor_key (keyed hash; the token itself is never kept)
    body → parse_report → prepare_report (city, time, nearest drive edge)
         → AbuseGuard.check (per network, per token, per area, implausible jumps)
         → ReportRepository.add → 202, only once the store has it

The client address comes from the ASGI scope (``request.client.host``); it is hashed with
the network (IPv4 address, IPv6 /64) by the abuse guard and never stored as such.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
import json
import logging
import os
import secrets
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from api.deps import get_city_base
from api.errors import ReportTooLargeError, error_headers
from api.schemas import ErrorOut
from api.state import AppState
from correspondance.store import StateStore, StoreUnavailableError
from crowdsource.abuse import AbuseGuard, AbuseLimits
from crowdsource.admission import ReportIntake
from crowdsource.errors import RateLimitedError, ReportRejectedError, UnknownReportError
from crowdsource.fusion import ContributorWeights
from crowdsource.intake import prepare_report
from crowdsource.models import MAX_BATCH, MAX_BODY_BYTES, parse_batch, parse_report
from crowdsource.repository import ReportRepository
from crowdsource.selfdata import delete_contributor, export_contributor
from crowdsource.tokens import TOKEN_HEADER, address_key, contributor_key
from routing.base import CityBase

log = logging.getLogger("correspondance.api")
router = APIRouter(prefix="/api/v1", tags=["reports"])

SECRET_KEY = "cs:secret"
SECRET_LOCK = "cs-secret"
SECRET_BYTES = 32
NO_ADDRESS = "::"  # a request without a client address (Unix socket): one shared network


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


async def resolve_contributor_secret(state: AppState) -> bytes:
    """The HMAC key of contributor tokens and client addresses.

    ``CORRESPONDANCE_CONTRIBUTOR_SECRET`` if set; otherwise generated at first start and
    persisted (Redis: ``cs:secret``; embedded: ``settings.secret_file``), so keyed hashes,
    and with them exports, deletions and rate limits, survive restarts.
    """
    given = state.settings.contributor_secret
    if given is not None:
        secret = given.get_secret_value().encode()
        if len(secret) < 16:
            raise ValueError("CORRESPONDANCE_CONTRIBUTOR_SECRET must have at least 16 bytes")
        return secret
    if state.store.backend == "redis":
        return await _secret_in_store(state.store)
    return await asyncio.to_thread(_secret_in_file, state.settings.secret_file)


def abuse_limits(overrides: dict[str, float]) -> AbuseLimits:
    """:class:`AbuseLimits` with the settings' overrides (unknown names are an error)."""
    defaults = AbuseLimits()
    known = {f.name: type(getattr(defaults, f.name)) for f in dataclasses.fields(AbuseLimits)}
    unknown = sorted(set(overrides) - set(known))
    if unknown:
        raise ValueError(f"report_limits: unknown abuse limits {unknown}; known: {sorted(known)}")
    return dataclasses.replace(defaults, **{k: known[k](v) for k, v in overrides.items()})


@dataclass
class Crowd:
    """What the report endpoints share in one process: secret, repositories, guards."""

    secret: bytes
    repositories: dict[str, ReportRepository]
    guards: dict[str, AbuseGuard]
    weights: ContributorWeights
    intakes: dict[str, ReportIntake]


async def open_crowd(state: AppState) -> Crowd:
    """Build the report endpoints' objects for every served city."""
    secret = await resolve_contributor_secret(state)
    limits = abuse_limits(state.settings.report_limits)
    ttl = state.settings.report_ttl_s
    repositories = {c: ReportRepository(state.store, c, ttl) for c in state.bases}
    guards = {c: AbuseGuard(state.store, limits, secret=secret, city=c) for c in state.bases}
    return Crowd(
        secret=secret,
        repositories=repositories,
        guards=guards,
        weights=ContributorWeights(state.store),
        intakes={c: ReportIntake(guards[c], repositories[c]) for c in state.bases},
    )


_CROWD_LOCK = asyncio.Lock()

# The report routes' dependencies are coroutines: FastAPI runs a plain ``def`` dependency in
# a worker thread, and three thread hops per report cost more than the rest of the route.


async def get_state(request: Request) -> AppState:
    """The application state built by the lifespan (as ``api.deps.get_state``)."""
    state: AppState = request.app.state.correspondance
    return state


State = Annotated[AppState, Depends(get_state)]


CityQuery = Annotated[
    str | None, Query(description="City id; the default city if omitted.", max_length=64)
]


async def city_base(state: State, city: CityQuery = None) -> CityBase:
    """The loaded base of the requested (or default) city (``api.deps.get_city_base``)."""
    return get_city_base(state, city)


CityBaseDep = Annotated[CityBase, Depends(city_base)]


async def get_crowd(request: Request, state: State) -> Crowd:
    """The process's :class:`Crowd`, built at start-up or, if the store was down then,
    at the first request that needs it."""
    crowd: Crowd | None = getattr(request.app.state, "crowd", None)
    if crowd is None:
        async with _CROWD_LOCK:
            crowd = getattr(request.app.state, "crowd", None)
            if crowd is None:
                crowd = request.app.state.crowd = await open_crowd(state)
    return crowd


CrowdDep = Annotated[Crowd, Depends(get_crowd)]


async def start_reports(app: Any, state: AppState) -> None:
    """Resolve the secret at start-up (lifespan); a store outage only defers it."""
    with contextlib.suppress(StoreUnavailableError):
        app.state.crowd = await open_crowd(state)


async def contributor_of(request: Request, crowd: CrowdDep) -> str:
    """Keyed hash of the request's ``X-Contributor-Token`` (400 ``invalid_report`` naming
    the header if it is missing or malformed)."""
    return contributor_key(request.headers.get(TOKEN_HEADER, ""), crowd.secret)


ContributorDep = Annotated[str, Depends(contributor_of)]


# -- models -----------------------------------------------------------------------------------


class ReportAck(BaseModel):
    """A report the store now holds (``accepted``) or an exact duplicate it ignored."""

    report_id: str | None = Field(description="Random id of the stored report; null if duplicate.")
    edge_ids: list[int] = Field(description="Drive edges the report was matched to.")
    status: Literal["accepted", "duplicate"]


class ItemError(BaseModel):
    """Why one report of a batch was not stored."""

    code: str
    message: str


class BatchItem(BaseModel):
    """The outcome of one report of a batch, in the order sent."""

    index: int
    status: Literal["accepted", "duplicate", "rejected"]
    report_id: str | None = None
    edge_ids: list[int] = Field(default_factory=list)
    error: ItemError | None = None


class BatchOut(BaseModel):
    """Per-report outcomes of a batch (HTTP 200 even if some were rejected)."""

    accepted: int
    duplicates: int
    rejected: int
    results: list[BatchItem]


class ExportOut(BaseModel):
    """Everything kept about the token: its reports (every city) and its trust weight."""

    reports: list[dict[str, Any]]
    weight: float | None


class DeletedOut(BaseModel):
    """How many reports were deleted (with the weight, last position and counters)."""

    deleted: int


# -- intake -----------------------------------------------------------------------------------


async def read_body(request: Request) -> bytes:
    """The body, refused (413) as soon as it exceeds what any report or batch may weigh."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise ReportTooLargeError(
            f"invalid report: body: too large (at most {MAX_BODY_BYTES} bytes)", fields=("body",)
        )
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise ReportTooLargeError(
                f"invalid report: body: too large (at most {MAX_BODY_BYTES} bytes)",
                fields=("body",),
            )
        chunks.append(chunk)
    return b"".join(chunks)


def client_address(request: Request) -> str:
    """The client's IP address as the server sees it (hashed before any use); requests
    without one (a Unix socket) share one network."""
    host = request.client.host if request.client else ""
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return NO_ADDRESS


async def take_report(
    raw: bytes,
    *,
    contributor: str,
    address: str,
    base: CityBase,
    crowd: Crowd,
    state: AppState,
) -> ReportAck:
    """Validate, match, check and store one report body; return once the store has it."""
    body = parse_report(raw)
    now = time.time()
    city = base.city.id
    report = prepare_report(
        body,
        contributor=contributor,
        origin=address_key(address, crowd.secret),
        city=base.city,
        drive=base.streets["drive"],
        now=now,
        max_age_s=state.settings.report_max_age_s,
    )
    # the abuse rules and the storing, in one atomic store call: answered once stored
    stored = await crowd.intakes[city].admit(report, address, now)
    return ReportAck(
        report_id=report.report_id if stored else None,
        edge_ids=list(report.edge_ids),
        status="accepted" if stored else "duplicate",
    )


REPORT_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut},
    404: {"model": ErrorOut},
    413: {"model": ErrorOut},
    422: {"model": ErrorOut},
    429: {"model": ErrorOut},
    503: {"model": ErrorOut},
}


MAX_CITY_LENGTH = 64
# ``city`` of POST /reports, documented here and read by hand (same rules as CityQuery)
CITY_PARAMETER = {
    "name": "city",
    "in": "query",
    "required": False,
    "description": "City id; the default city if omitted.",
    "schema": {
        "anyOf": [{"type": "string", "maxLength": MAX_CITY_LENGTH}, {"type": "null"}],
        "description": "City id; the default city if omitted.",
        "title": "City",
    },
}


def city_query(request: Request) -> str | None:
    """The ``city`` query parameter, checked as :data:`CityQuery` would be (400
    ``invalid_parameter`` if too long), without FastAPI's parameter solving."""
    city = request.query_params.get("city")
    if city is not None and len(city) > MAX_CITY_LENGTH:
        raise RequestValidationError(
            [
                {
                    "type": "string_too_long",
                    "loc": ("query", "city"),
                    "msg": f"String should have at most {MAX_CITY_LENGTH} characters",
                    "input": city,
                    "ctx": {"max_length": MAX_CITY_LENGTH},
                }
            ]
        )
    return city


@router.post(
    "/reports",
    status_code=202,
    response_model=ReportAck,
    responses=REPORT_ERRORS,
    openapi_extra={"parameters": [CITY_PARAMETER]},
)
async def post_report(request: Request) -> Response:
    """Report congestion, a closure, an incident or all-clear at a point of the city.

    Body: ``lat``, ``lon``, ``kind`` (``congestion`` needs ``level`` 1–4), optional
    ``heading``, ``mode``, ``observed_at``; header ``X-Contributor-Token``. Answered 202 only
    once the store holds the report; an exact duplicate is ignored (``"duplicate"``)."""
    # the dependencies of the other routes, resolved in the same order by hand: FastAPI's
    # dependency solver is a large share of this route's time at thousands of reports/s
    state = await get_state(request)
    base = get_city_base(state, city_query(request))
    crowd = await get_crowd(request, state)
    contributor = await contributor_of(request, crowd)
    raw = await read_body(request)
    ack = await take_report(
        raw,
        contributor=contributor,
        address=client_address(request),
        base=base,
        crowd=crowd,
        state=state,
    )
    # serialised here: returning the model would validate it again against response_model
    return Response(ack.model_dump_json(), status_code=202, media_type="application/json")


@router.post("/reports/batch", response_model=BatchOut, responses=REPORT_ERRORS)
async def post_batch(
    request: Request, state: State, base: CityBaseDep, crowd: CrowdDep, contributor: ContributorDep
) -> Response:
    """Several reports at once (``{"reports": [...]}``, 1–100), e.g. from an offline client.

    Each report is taken on its own: the answer lists, in order, which were accepted,
    duplicates or rejected (with the code and message a single report would get). Once a
    rate limit is hit the remaining reports are not tried; if none was stored the answer
    is 429 (or 503 if the store is down)."""
    raw = await read_body(request)
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
    address = client_address(request)
    results: list[BatchItem] = []
    stop: ReportRejectedError | RateLimitedError | StoreUnavailableError | None = None
    for index, item in enumerate(data["reports"]):
        if stop is not None:
            results.append(_rejected(index, stop))
            continue
        try:
            ack = await take_report(
                json.dumps(item).encode(),
                contributor=contributor,
                address=address,
                base=base,
                crowd=crowd,
                state=state,
            )
        except ReportRejectedError as exc:
            results.append(_rejected(index, exc))
            continue
        except (RateLimitedError, StoreUnavailableError) as exc:
            stop = exc
            results.append(_rejected(index, exc))
            continue
        results.append(
            BatchItem(
                index=index, status=ack.status, report_id=ack.report_id, edge_ids=ack.edge_ids
            )
        )
    stored = sum(r.status != "rejected" for r in results)
    if stop is not None and stored == 0:
        raise stop
    out = BatchOut(
        accepted=sum(r.status == "accepted" for r in results),
        duplicates=sum(r.status == "duplicate" for r in results),
        rejected=sum(r.status == "rejected" for r in results),
        results=results,
    )
    headers = None
    if isinstance(stop, RateLimitedError):
        headers = error_headers(stop, 429)
    return JSONResponse(out.model_dump(mode="json"), status_code=200, headers=headers)


def _rejected(
    index: int, exc: ReportRejectedError | RateLimitedError | StoreUnavailableError
) -> BatchItem:
    code = getattr(exc, "code", "store_unavailable")
    message = exc.message if isinstance(exc, ReportRejectedError | RateLimitedError) else str(exc)
    return BatchItem(index=index, status="rejected", error=ItemError(code=code, message=message))


# -- self data ---------------------------------------------------------------------------------


@router.get("/me/reports", response_model=ExportOut, responses={400: {"model": ErrorOut}, 503: {}})
async def export_my_reports(crowd: CrowdDep, contributor: ContributorDep) -> ExportOut:
    """Everything kept about the token of ``X-Contributor-Token``, as JSON."""
    data = await export_contributor(contributor, list(crowd.repositories.values()), crowd.weights)
    return ExportOut.model_validate(data)


@router.delete(
    "/me/reports", response_model=DeletedOut, responses={400: {"model": ErrorOut}, 503: {}}
)
async def delete_my_reports(crowd: CrowdDep, contributor: ContributorDep) -> DeletedOut:
    """Delete everything linked to the token: reports, trust weight, last position and
    rate-limit counters. The live traffic map forgets the reports at its next fusion."""
    deleted = await delete_contributor(
        contributor,
        list(crowd.repositories.values()),
        crowd.weights,
        list(crowd.guards.values()),
    )
    return DeletedOut(deleted=deleted)


@router.delete(
    "/me/reports/{report_id}",
    response_model=DeletedOut,
    responses={400: {"model": ErrorOut}, 404: {"model": ErrorOut}, 503: {}},
)
async def delete_one_of_my_reports(
    crowd: CrowdDep,
    contributor: ContributorDep,
    report_id: Annotated[str, PathParam(max_length=64)],
) -> DeletedOut:
    """Delete one report of the token's (404 ``unknown_report`` if it has no such report);
    the live traffic map forgets it at its next fusion. Weight and counters stay."""
    for repository in crowd.repositories.values():
        if await repository.delete_one(contributor, report_id):
            return DeletedOut(deleted=1)
    raise UnknownReportError(f"you have no report {report_id[:64]!r} (expired or deleted?)")
