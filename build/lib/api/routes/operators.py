"""``/api/v1/operators``: operator login, and operator decisions on live congestion.

Every endpoint but ``POST /token`` needs ``Authorization: Bearer <token>``. Decisions are
recorded by :class:`crowdsource.operators.OperatorDecisions`; fusing them into edge
multipliers is the fusion engine's job, not this module's.
"""

from __future__ import annotations

import math
import time
from typing import Annotated, Literal

import numpy as np
from fastapi import APIRouter, Body, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from api.auth import OperatorAccountsDep, OperatorDep, bearer_token
from api.deps import CityBaseDep, State
from api.schemas import ErrorOut
from crowdsource.decisions import load_decisions
from crowdsource.operators import (
    DEFAULT_DECISION_TTL_S,
    DEFAULT_INCIDENT_TTL_S,
    MAX_DECISION_TTL_S,
    MAX_NOTE_LENGTH,
    MAX_PASSWORD_LENGTH,
    MIN_DECISION_TTL_S,
    OperatorDecisions,
)
from crowdsource.repository import ReportRepository

FUSION_WINDOW_S = 900.0  # crowdsource.fuser.Fuser's default window
router = APIRouter(prefix="/api/v1/operators", tags=["operators"])

UNAUTHORIZED: dict[int | str, dict[str, object]] = {401: {"model": ErrorOut}}
ExpiresIn = Annotated[int, Field(ge=MIN_DECISION_TTL_S, le=MAX_DECISION_TTL_S)]
Level = Annotated[int, Field(ge=1, le=4)]


class TokenIn(BaseModel):
    """Operator credentials."""

    model_config = ConfigDict(extra="forbid")

    username: str = Field(max_length=64)
    password: str = Field(max_length=MAX_PASSWORD_LENGTH)


class TokenOut(BaseModel):
    """A bearer token (OAuth 2 token response shape)."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="Seconds until the token expires.")


class OperatorOut(BaseModel):
    """Who the token belongs to."""

    username: str


class IncidentIn(BaseModel):
    """An incident or closure to apply at once at a point."""

    model_config = ConfigDict(extra="forbid")

    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    kind: Literal["closure", "incident"]
    level: Level | None = Field(default=None, description="Incident severity 1–4; not closures.")
    note: str | None = Field(default=None, max_length=MAX_NOTE_LENGTH)
    expires_in_s: ExpiresIn = DEFAULT_INCIDENT_TTL_S


class IncidentOut(BaseModel):
    """A declared incident, as stored."""

    incident_id: str
    city: str
    kind: Literal["closure", "incident"]
    level: int | None
    note: str | None
    lat: float
    lon: float
    edges: list[int]
    declared_by: str
    declared_at: str
    expires_at: str


class ConfirmIn(BaseModel):
    """Options of a confirmation."""

    model_config = ConfigDict(extra="forbid")

    level: Level | None = Field(default=None, description="Congestion level 1–4 to apply.")
    expires_in_s: ExpiresIn = DEFAULT_DECISION_TTL_S


class DismissIn(BaseModel):
    """Options of a dismissal."""

    model_config = ConfigDict(extra="forbid")

    expires_in_s: ExpiresIn = DEFAULT_DECISION_TTL_S


class EdgeDecisionOut(BaseModel):
    """A confirmation or dismissal, as stored."""

    city: str
    edge: int
    decision: Literal["confirm", "dismiss"]
    level: int | None
    decided_by: str
    decided_at: str
    expires_at: str


@router.post(
    "/token",
    response_model=TokenOut,
    responses={401: {"model": ErrorOut}, 429: {"model": ErrorOut}},
)
async def issue_token(
    credentials: TokenIn, request: Request, state: State, accounts: OperatorAccountsDep
) -> TokenOut:
    """Exchange a username and password for a short-lived bearer token.

    Five failed attempts for a username from one address within five minutes lock that
    pair out until the window ends (429 with ``Retry-After``)."""
    client = request.client.host if request.client else "unknown"
    issued = await accounts.login(
        credentials.username, credentials.password, client, state.settings.operator_token_ttl_s
    )
    return TokenOut(access_token=issued.token, expires_in=issued.expires_in_s)


@router.post("/logout", status_code=204, responses=UNAUTHORIZED)
async def logout(
    operator: OperatorDep, request: Request, accounts: OperatorAccountsDep
) -> Response:
    """End the session of the token presented."""
    await accounts.revoke(bearer_token(request))
    return Response(status_code=204)


@router.get("/me", response_model=OperatorOut, responses=UNAUTHORIZED)
async def who_am_i(operator: OperatorDep) -> OperatorOut:
    """The operator the token belongs to."""
    return OperatorOut(username=operator)


@router.post(
    "/incidents",
    status_code=201,
    response_model=IncidentOut,
    responses={**UNAUTHORIZED, 400: {"model": ErrorOut}, 422: {"model": ErrorOut}},
)
async def declare_incident(
    operator: OperatorDep, state: State, base: CityBaseDep, incident: IncidentIn
) -> IncidentOut:
    """Declare an incident or closure at a point of the city (``?city=``); it applies to the
    nearest drive street in both directions until it expires."""
    declared = await OperatorDecisions(state.store).declare_incident(
        base,
        operator=operator,
        lat=incident.lat,
        lon=incident.lon,
        kind=incident.kind,
        level=incident.level,
        note=incident.note,
        expires_in_s=incident.expires_in_s,
        max_snap_m=state.settings.max_snap_distance_m,
    )
    return IncidentOut.model_validate(declared, from_attributes=True)


@router.post(
    "/edges/{edge_id}/confirm",
    response_model=EdgeDecisionOut,
    responses={**UNAUTHORIZED, 404: {"model": ErrorOut}},
)
async def confirm_edge(
    operator: OperatorDep,
    state: State,
    base: CityBaseDep,
    edge_id: int,
    options: Annotated[ConfirmIn | None, Body()] = None,
) -> EdgeDecisionOut:
    """Confirm congestion on a drive edge: it applies without waiting for corroboration."""
    options = options or ConfirmIn()
    decision = await OperatorDecisions(state.store).confirm_edge(
        base, edge_id, operator=operator, level=options.level, expires_in_s=options.expires_in_s
    )
    return EdgeDecisionOut.model_validate(decision, from_attributes=True)


@router.post(
    "/edges/{edge_id}/dismiss",
    response_model=EdgeDecisionOut,
    responses={**UNAUTHORIZED, 404: {"model": ErrorOut}},
)
async def dismiss_edge(
    operator: OperatorDep,
    state: State,
    base: CityBaseDep,
    edge_id: int,
    options: Annotated[DismissIn | None, Body()] = None,
) -> EdgeDecisionOut:
    """Dismiss congestion reports on a drive edge: they stop counting until it expires."""
    options = options or DismissIn()
    decision = await OperatorDecisions(state.store).dismiss_edge(
        base, edge_id, operator=operator, expires_in_s=options.expires_in_s
    )
    return EdgeDecisionOut.model_validate(decision, from_attributes=True)


class CongestedEdgeOut(BaseModel):
    """One congested drive edge, as an aggregate (never a report, a token or a position)."""

    edge: int
    way_id: int
    multiplier: float | None = Field(description="Travel-time factor; null when closed.")
    closed: bool
    contributors: int | None = Field(
        description="Distinct contributors behind it in the fusion window (at least k); "
        "null where only an operator decision stands behind it."
    )
    operator_decision: Literal["confirmed", "declared"] | None


class CongestionOut(BaseModel):
    """The live congestion of a city as operators see it."""

    city: str
    k: int = Field(description="Distinct contributors needed before an edge is shown.")
    window_s: int
    edges: list[CongestedEdgeOut]


@router.get("/congestion", response_model=CongestionOut, responses=UNAUTHORIZED)
async def congestion(operator: OperatorDep, state: State, base: CityBaseDep) -> CongestionOut:
    """Edges whose live multiplier is not 1, with how many distinct contributors stand
    behind each. k-anonymity: an edge appears only if at least ``k`` distinct contributors
    reported it in the fusion window, or an operator confirmed or declared it (then without
    a contributor count). Report ids, tokens, hashes and positions are never shown."""
    city = base.city.id
    k = state.settings.fusion_k
    now = time.time()
    multipliers = state.overlay(city).current.drive_multiplier
    moved = np.flatnonzero(multipliers != 1.0)
    repository = ReportRepository(state.store, city, state.settings.report_ttl_s)
    behind: dict[int, set[str]] = {}
    for report in await repository.recent(FUSION_WINDOW_S, now):
        for edge in report.edge_ids:
            behind.setdefault(edge, set()).add(report.contributor)
    decisions = await load_decisions(state.store, city, now)
    way_ids = base.streets["drive"].way_id
    edges = []
    for edge in (int(e) for e in moved):
        n = len(behind.get(edge, ()))
        decision: Literal["confirmed", "declared"] | None = (
            "declared"
            if edge in decisions.declarations
            else "confirmed"
            if edge in decisions.confirmations
            else None
        )
        if n < k and decision is None:
            continue  # fewer than k voices: not shown, whatever moved it
        value = float(multipliers[edge])
        edges.append(
            CongestedEdgeOut(
                edge=edge,
                way_id=int(way_ids[edge]),
                multiplier=None if math.isinf(value) else round(value, 3),
                closed=math.isinf(value),
                contributors=n if n >= k else None,
                operator_decision=decision,
            )
        )
    return CongestionOut(city=city, k=k, window_s=int(FUSION_WINDOW_S), edges=edges)
