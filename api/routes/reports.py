"""``/api/v1/reports`` and ``/api/v1/me/reports``: anonymous congestion reports.

The pipeline of every report (see ``crowdsource/README.md``)::

    X-Contributor-Token → contributor_key (keyed hash; the token itself is never kept)
    body → parse_report → prepare_report (city, time, nearest drive edge)
         → AbuseGuard.check (per network, per token, per area, implausible jumps)
         → ReportRepository.add → 202, only once the store has it

The client address comes from the ASGI scope (``request.client.host``); it is hashed with
the network (IPv4 address, IPv6 /64) by the abuse guard and never stored as such.

Everything beyond HTTP (secret, limits, repositories, take, export, delete) is the report
desk's (``crowdsource.desk``); these routes read the body, the token header and the client
address, and turn the desk's answers into status codes and JSON.
"""

from __future__ import annotations

import ipaddress
import logging
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
from crowdsource.desk import ReportDesk, Taken
from crowdsource.models import MAX_BODY_BYTES
from crowdsource.tokens import TOKEN_HEADER
from routing.base import CityBase

log = logging.getLogger("correspondance.api")
router = APIRouter(prefix="/api/v1", tags=["reports"])

NO_ADDRESS = "::"  # a request without a client address (Unix socket): one shared network

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


async def get_desk(state: State) -> ReportDesk:
    """The process's report desk (``crowdsource.desk``), opened by the lifespan or, if the
    store was down then, by the first request that needs it."""
    return await state.report_desk().desk()


DeskDep = Annotated[ReportDesk, Depends(get_desk)]


async def contributor_of(request: Request, desk: DeskDep) -> str:
    """Keyed hash of the request's ``X-Contributor-Token`` (400 ``invalid_report`` naming
    the header if it is missing or malformed)."""
    return desk.contributor(request.headers.get(TOKEN_HEADER, ""))


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


def ack_of(taken: Taken) -> ReportAck:
    """The HTTP answer for one report the desk took."""
    return ReportAck(report_id=taken.report_id, edge_ids=taken.edge_ids, status=taken.status)


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
    desk = await get_desk(state)
    contributor = await contributor_of(request, desk)
    raw = await read_body(request)
    taken = await desk.take(
        raw, contributor=contributor, address=client_address(request), base=base
    )
    # serialised here: returning the model would validate it again against response_model
    return Response(ack_of(taken).model_dump_json(), status_code=202, media_type="application/json")


@router.post("/reports/batch", response_model=BatchOut, responses=REPORT_ERRORS)
async def post_batch(
    request: Request, base: CityBaseDep, desk: DeskDep, contributor: ContributorDep
) -> Response:
    """Several reports at once (``{"reports": [...]}``, 1–100), e.g. from an offline client.

    Each report is taken on its own: the answer lists, in order, which were accepted,
    duplicates or rejected (with the code and message a single report would get). Once a
    rate limit is hit the remaining reports are not tried; if none was stored the answer
    is 429 (or 503 if the store is down)."""
    raw = await read_body(request)
    taken = await desk.take_batch(
        raw, contributor=contributor, address=client_address(request), base=base
    )
    out = BatchOut(
        accepted=taken.count("accepted"),
        duplicates=taken.count("duplicate"),
        rejected=taken.count("rejected"),
        results=[
            BatchItem(
                index=entry.index,
                status=entry.status,
                report_id=entry.report_id,
                edge_ids=entry.edge_ids,
                error=None
                if entry.error_code is None
                else ItemError(code=entry.error_code, message=entry.error_message or ""),
            )
            for entry in taken.entries
        ],
    )
    headers = None if taken.limited is None else error_headers(taken.limited, 429)
    return JSONResponse(out.model_dump(mode="json"), status_code=200, headers=headers)


# -- self data ---------------------------------------------------------------------------------


@router.get("/me/reports", response_model=ExportOut, responses={400: {"model": ErrorOut}, 503: {}})
async def export_my_reports(desk: DeskDep, contributor: ContributorDep) -> ExportOut:
    """Everything kept about the token of ``X-Contributor-Token``, as JSON."""
    return ExportOut.model_validate(await desk.export(contributor))


@router.delete(
    "/me/reports", response_model=DeletedOut, responses={400: {"model": ErrorOut}, 503: {}}
)
async def delete_my_reports(desk: DeskDep, contributor: ContributorDep) -> DeletedOut:
    """Delete everything linked to the token: reports, trust weight, last position and
    rate-limit counters. The live traffic map forgets the reports at its next fusion."""
    return DeletedOut(deleted=await desk.delete(contributor))


@router.delete(
    "/me/reports/{report_id}",
    response_model=DeletedOut,
    responses={400: {"model": ErrorOut}, 404: {"model": ErrorOut}, 503: {}},
)
async def delete_one_of_my_reports(
    desk: DeskDep,
    contributor: ContributorDep,
    report_id: Annotated[str, PathParam(max_length=64)],
) -> DeletedOut:
    """Delete one report of the token's (404 ``unknown_report`` if it has no such report);
    the live traffic map forgets it at its next fusion. Weight and counters stay."""
    await desk.delete_one(contributor, report_id)
    return DeletedOut(deleted=1)
