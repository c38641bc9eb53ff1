"""``/api/v1/operators``: operator login, and operator decisions on live congestion.

Every endpoint but ``POST /token`` needs ``Authorization: Bearer <token>``. Decisions are
recorded by :class:`crowdsource.operators.OperatorDecisions`; fusing them into edge
multipliers is the fusion engine's job, not this module's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from api.auth import OperatorAccountsDep, OperatorDep, bearer_token
from api.deps import CityBaseDep, CongestionDep, OperatorDeskDep, State, TripsDep
from api.schemas import ErrorOut
from api.state import AppState
from correspondance.errors import InputError
from crowdsource.accounts import MAX_PASSWORD_LENGTH
from crowdsource.congestion import FUSION_WINDOW_S
from crowdsource.dashboard import METRICS_KEEP_S, congestion_geojson, congestion_index
from crowdsource.operators import (
    DEFAULT_DECISION_TTL_S,
    DEFAULT_INCIDENT_TTL_S,
    MAX_DECISION_TTL_S,
    MAX_INCIDENT_EDGES,
    MAX_NOTE_LENGTH,
    MIN_DECISION_TTL_S,
    EdgeDecision,
    Incident,
)
from realtime.trips.service import TripService

log = logging.getLogger("correspondance.api")


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
    """An incident or closure to apply at once at a point, or on chosen drive edges."""

    model_config = ConfigDict(extra="forbid")

    lat: float | None = Field(default=None, ge=-90, le=90)
    lon: float | None = Field(default=None, ge=-180, le=180)
    edges: list[int] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_INCIDENT_EDGES,
        description="Drive edge ids (e.g. streets selected on the map) instead of a point; "
        "each takes its opposite direction along.",
    )
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
    updated_by: str | None = None
    updated_at: str | None = None


class IncidentPatch(BaseModel):
    """Changes to an incident in force; what is left out stays as it is."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["closure", "incident"] | None = None
    level: Level | None = None
    note: str | None = Field(default=None, max_length=MAX_NOTE_LENGTH)
    expires_in_s: ExpiresIn | None = Field(default=None, description="New end, from now.")
    edges: list[int] | None = Field(default=None, min_length=1, max_length=MAX_INCIDENT_EDGES)


class IncidentStatusOut(IncidentOut):
    """An incident in force with what it does to live trips (counts below k are null)."""

    streets: list[str] = Field(description="Names of the streets it applies to.")
    trips_touched: int | None = Field(
        description="Active trips whose remaining route used its streets when it was last "
        "declared or edited; null when fewer than k."
    )
    suggestions_made: int | None = Field(
        description="Switch suggestions made in the city since it was declared (city-wide "
        "counter: suggestions are not attributed to one incident); null when fewer than k."
    )
    suggestions_accepted: int | None = Field(
        description="Of those, accepted (city-wide since it was declared); null when < k."
    )


class IncidentsOut(BaseModel):
    """The incidents in force of a city."""

    city: str
    k: int
    incidents: list[IncidentStatusOut]


class ConfirmIn(BaseModel):
    """Options of a confirmation."""

    model_config = ConfigDict(extra="forbid")

    level: Level | None = Field(default=None, description="Congestion level 1–4 to apply.")
    expires_in_s: ExpiresIn = DEFAULT_DECISION_TTL_S


class DismissIn(BaseModel):
    """Options of a dismissal."""

    model_config = ConfigDict(extra="forbid")

    expires_in_s: ExpiresIn = DEFAULT_DECISION_TTL_S


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
    operator: OperatorDep,
    state: State,
    base: CityBaseDep,
    desk: OperatorDeskDep,
    incident: IncidentIn,
) -> IncidentOut:
    """Declare an incident or closure at a point of the city (``?city=``: the nearest drive
    street) or on chosen drive ``edges``, in both directions, until it expires."""
    declared = await desk.decisions.declare_incident(
        base,
        operator=operator,
        lat=incident.lat,
        lon=incident.lon,
        edges=incident.edges,
        kind=incident.kind,
        level=incident.level,
        note=incident.note,
        expires_in_s=incident.expires_in_s,
        max_snap_m=state.settings.max_snap_distance_m,
    )
    return IncidentOut.model_validate(declared, from_attributes=True)


@router.post(
    "/edges/{edge_id}/confirm",
    response_model=EdgeDecision,
    responses={**UNAUTHORIZED, 404: {"model": ErrorOut}},
)
async def confirm_edge(
    operator: OperatorDep,
    state: State,
    base: CityBaseDep,
    desk: OperatorDeskDep,
    edge_id: int,
    options: Annotated[ConfirmIn | None, Body()] = None,
) -> EdgeDecision:
    """Confirm congestion on a drive edge: it applies without waiting for corroboration."""
    options = options or ConfirmIn()
    return await desk.decisions.confirm_edge(
        base, edge_id, operator=operator, level=options.level, expires_in_s=options.expires_in_s
    )


@router.post(
    "/edges/{edge_id}/dismiss",
    response_model=EdgeDecision,
    responses={**UNAUTHORIZED, 404: {"model": ErrorOut}},
)
async def dismiss_edge(
    operator: OperatorDep,
    state: State,
    base: CityBaseDep,
    desk: OperatorDeskDep,
    edge_id: int,
    options: Annotated[DismissIn | None, Body()] = None,
) -> EdgeDecision:
    """Dismiss congestion reports on a drive edge: they stop counting until it expires."""
    options = options or DismissIn()
    return await desk.decisions.dismiss_edge(
        base, edge_id, operator=operator, expires_in_s=options.expires_in_s
    )


# -- live congestion, as operators see it -------------------------------------------------------


class CongestedEdgeOut(BaseModel):
    """One congested drive edge, as an aggregate (never a report, a token or a position)."""

    edge: int
    way_id: int
    name: str = Field(description="Street name; empty when the street has none.")
    multiplier: float | None = Field(description="Travel-time factor; null when closed.")
    closed: bool
    level: int | None = Field(description="Congestion level 1–4; null when closed.")
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
async def congestion(
    operator: OperatorDep, state: State, base: CityBaseDep, live: CongestionDep
) -> CongestionOut:
    """Edges whose live multiplier is not 1, with street names and how many distinct
    contributors stand behind each. k-anonymity: an edge appears only if at least ``k``
    distinct contributors reported it in the fusion window, or an operator confirmed or
    declared it (then without a contributor count). Report ids, tokens, hashes and
    positions are never shown."""
    edges = await live.live(base, state.overlay(base.city.id).current.drive_multiplier)
    return CongestionOut(
        city=base.city.id,
        k=state.settings.fusion_k,
        window_s=int(FUSION_WINDOW_S),
        edges=[CongestedEdgeOut.model_validate(e, from_attributes=True) for e in edges],
    )


@router.get("/congestion/geojson", responses=UNAUTHORIZED)
async def congestion_map(
    operator: OperatorDep, state: State, base: CityBaseDep, live: CongestionDep
) -> dict[str, Any]:
    """The same edges as ``GET /congestion``, as GeoJSON lines with street names, levels,
    contributor counts and operator decisions; plus the congestion index (per cent of the
    drive network's length congested or closed)."""
    edges = await live.live(base, state.overlay(base.city.id).current.drive_multiplier)
    drive = base.streets["drive"]
    index, km = congestion_index(drive, edges)
    return {
        **congestion_geojson(drive, edges, operator=True),
        "city": base.city.id,
        "k": state.settings.fusion_k,
        "congestion_index": index,
        "congested_km": km,
    }


Hours = Annotated[float, Query(gt=0, le=METRICS_KEEP_S / 3600, description="How far back.")]


@router.get("/congestion/history", responses=UNAUTHORIZED)
async def congestion_history(
    operator: OperatorDep,
    state: State,
    base: CityBaseDep,
    desk: OperatorDeskDep,
    hours: Hours = 3.0,
) -> dict[str, Any]:
    """The map as it was, one frame a minute over the last ``hours`` (the dashboard's time
    slider): ``frames`` (``t``, edge id → multiplier, 0 = closed) and the streets that
    appear in any frame as GeoJSON (``features``)."""
    return await desk.history(base, hours)


@router.get("/metrics", responses=UNAUTHORIZED)
async def metrics(
    operator: OperatorDep,
    state: State,
    base: CityBaseDep,
    desk: OperatorDeskDep,
    hours: Hours = 3.0,
) -> dict[str, Any]:
    """Time series for the dashboard's charts, one point a minute: reports received per
    minute, congestion index (per cent of drive length), active trips, and suggestions
    made and accepted per minute. Counts between 1 and k − 1 are null."""
    return await desk.metrics(base, hours)


# -- incidents ------------------------------------------------------------------------------------


async def _incident_status(
    state: AppState, trips: TripService, incident: Incident
) -> IncidentStatusOut:
    city = incident.city
    drive = state.bases[city].streets["drive"]
    streets = sorted({str(drive.names[int(drive.name_idx[e])]) for e in incident.edges} - {""})
    return IncidentStatusOut(
        **IncidentOut.model_validate(incident, from_attributes=True).model_dump(),
        streets=streets,
        **await trips.incident_counts(city, incident.incident_id),
    )


@router.get("/incidents", response_model=IncidentsOut, responses=UNAUTHORIZED)
async def list_incidents(
    operator: OperatorDep, state: State, base: CityBaseDep, desk: OperatorDeskDep, trips: TripsDep
) -> IncidentsOut:
    """The incidents and closures in force, oldest first, each with the active trips it
    touches and the suggestions made and accepted since it was declared (null below k)."""
    incidents = await desk.decisions.list_incidents(base.city.id)
    return IncidentsOut(
        city=base.city.id,
        k=state.settings.fusion_k,
        incidents=[await _incident_status(state, trips, i) for i in incidents],
    )


IncidentId = Annotated[str, Path(max_length=64)]
NOT_FOUND: dict[int | str, dict[str, object]] = {**UNAUTHORIZED, 404: {"model": ErrorOut}}


@router.get("/incidents/{incident_id}", response_model=IncidentStatusOut, responses=NOT_FOUND)
async def get_incident(
    operator: OperatorDep,
    state: State,
    base: CityBaseDep,
    desk: OperatorDeskDep,
    trips: TripsDep,
    incident_id: IncidentId,
) -> IncidentStatusOut:
    """One incident in force (404 ``unknown_incident`` once ended or expired)."""
    incident = await desk.decisions.get_incident(base.city.id, incident_id)
    return await _incident_status(state, trips, incident)


@router.patch(
    "/incidents/{incident_id}",
    response_model=IncidentOut,
    responses={**NOT_FOUND, 400: {"model": ErrorOut}},
)
async def edit_incident(
    operator: OperatorDep,
    state: State,
    base: CityBaseDep,
    desk: OperatorDeskDep,
    incident_id: IncidentId,
    patch: IncidentPatch,
) -> IncidentOut:
    """Edit an incident in force: kind, level, note, end (``expires_in_s`` from now) or
    streets (``edges``). Only the fields sent change; the edit is audited."""
    changes = patch.model_dump(exclude_unset=True)
    if not changes:
        raise InputError("nothing to change: send kind, level, note, expires_in_s or edges")
    edited = await desk.decisions.update_incident(
        base,
        incident_id,
        operator=operator,
        changes=changes,
        max_snap_m=state.settings.max_snap_distance_m,
    )
    return IncidentOut.model_validate(edited, from_attributes=True)


@router.delete("/incidents/{incident_id}", response_model=IncidentOut, responses=NOT_FOUND)
async def end_incident(
    operator: OperatorDep,
    state: State,
    base: CityBaseDep,
    desk: OperatorDeskDep,
    incident_id: IncidentId,
) -> IncidentOut:
    """End an incident now, before it expires (audited); returns what it was."""
    ended = await desk.decisions.end_incident(base.city.id, incident_id, operator=operator)
    return IncidentOut.model_validate(ended, from_attributes=True)


# -- audit log ------------------------------------------------------------------------------------


class AuditEntryOut(BaseModel):
    """One operator decision: who, what, when."""

    at: str
    operator: str
    action: str
    target: str
    details: dict[str, Any]


class AuditOut(BaseModel):
    """A city's audit log, newest first."""

    city: str
    entries: list[AuditEntryOut]


@router.get("/audit", response_model=AuditOut, responses=UNAUTHORIZED)
async def audit_log(
    operator: OperatorDep,
    state: State,
    base: CityBaseDep,
    desk: OperatorDeskDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> AuditOut:
    """Every operator decision of the city (declare, edit, end, confirm, dismiss), newest
    first, kept 30 days."""
    entries = await desk.audit(base.city.id, limit)
    return AuditOut(
        city=base.city.id,
        entries=[AuditEntryOut.model_validate(e, from_attributes=True) for e in entries],
    )


# -- per-minute samples ---------------------------------------------------------------------------


@asynccontextmanager
async def sampling(app: Any) -> AsyncIterator[None]:
    """Lifespan of this router (merged after the app's own, whose state it reads): sample
    every minute for the dashboard's charts and time slider."""
    state: AppState | None = getattr(app.state, "correspondance", None)
    task = None
    if state is not None:
        live = state
        sampler = state.dashboard_sampler()
        task = asyncio.create_task(
            sampler.run(state.bases, lambda city: live.overlay(city).current.drive_multiplier)
        )
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


# FastAPI merges an included router's lifespan into the app's (entered after it).
router.lifespan_context = sampling
