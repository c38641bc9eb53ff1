"""``GET /api/v1/congestion``: the live congestion layer every commuter may see; its change
socket ``WS /ws/v1/congestion``; ``GET /api/v1/streets/nearest`` (a street tapped on a map).

The same k-anonymous aggregate the operators see (``crowdsource.dashboard``): an edge is
shown only if at least ``k`` distinct contributors reported it in the fusion window, or an
operator confirmed or declared it. Commuters get street names, geometry and levels, never
contributor counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Annotated, Any

from fastapi import APIRouter, Query, WebSocket
from fastapi.websockets import WebSocketDisconnect

from api.deps import CityBaseDep, State, get_state
from api.schemas import ErrorOut
from api.state import AppState
from correspondance.store import EventsLostError
from crowdsource.dashboard import (
    CongestedEdge,
    congested_edges,
    congestion_geojson,
    contributors_by_edge,
    street_at,
)
from crowdsource.decisions import load_decisions
from crowdsource.operators import opposite_edges
from crowdsource.repository import ReportRepository
from routing.base import CityBase
from routing.errors import OutsideCityError

FUSION_WINDOW_S = 900.0  # crowdsource.fuser.Fuser's default window
REPORT_MATCH_M = 60.0  # crowdsource.intake.prepare_report's max_match_m
router = APIRouter(tags=["congestion"])


async def live_congestion(
    state: AppState, base: CityBase, now: float | None = None
) -> list[CongestedEdge]:
    """The city's k-anonymous congested edges now (see ``crowdsource.dashboard``)."""
    city = base.city.id
    now = time.time() if now is None else now
    repository = ReportRepository(state.store, city, state.settings.report_ttl_s)
    behind = contributors_by_edge(await repository.recent(FUSION_WINDOW_S, now))
    return congested_edges(
        base.streets["drive"],
        state.overlay(city).current.drive_multiplier,
        behind,
        await load_decisions(state.store, city, now),
        state.settings.fusion_k,
    )


@router.get("/api/v1/congestion", responses={404: {"model": ErrorOut}, 503: {"model": ErrorOut}})
async def congestion_layer(state: State, base: CityBaseDep) -> dict[str, Any]:
    """Live congestion and closures as GeoJSON lines with street names and levels (1–4,
    null when closed); only k-anonymous aggregates, never a report."""
    edges = await live_congestion(state, base)
    layer = congestion_geojson(base.streets["drive"], edges, operator=False)
    return {**layer, "city": base.city.id, "k": state.settings.fusion_k}


@router.get(
    "/api/v1/streets/nearest",
    responses={400: {"model": ErrorOut}, 404: {"model": ErrorOut}, 422: {"model": ErrorOut}},
)
async def nearest_street(
    state: State,
    base: CityBaseDep,
    lat: Annotated[float, Query(ge=-90, le=90)],
    lon: Annotated[float, Query(ge=-180, le=180)],
) -> dict[str, Any]:
    """The drive street nearest to a point (a tap on the map), as a GeoJSON feature with
    its name and each direction of travel (edge id, compass heading): what the reporting
    app and the dashboard use to report on, or declare an incident on, a chosen street."""
    city = base.city
    if not city.contains(lat, lon):
        raise OutsideCityError(f"{lat:.6f},{lon:.6f} is outside {city.name}")
    drive = base.streets["drive"]
    edge = drive.snap(lat, lon, min(REPORT_MATCH_M * 2, state.settings.max_snap_distance_m)).edge
    return street_at(drive, edge, opposite_edges(drive, edge))


MAP_EVENTS = frozenset(
    {
        "congestion.changed",
        "congestion.confirmed",
        "congestion.dismissed",
        "incident.declared",
        "incident.ended",
    }
)
"""Events after which the congestion map may look different."""
NUDGE_MIN_INTERVAL_S = 1.0


@router.websocket("/ws/v1/congestion")
async def congestion_socket(ws: WebSocket) -> None:
    """Tells a page when the city's congestion map changed (``?city=``), at most once a
    second: ``{"type": "congestion.changed", "v": 1, "city", "at"}``. It carries no data:
    the page then reads ``GET /api/v1/congestion`` (or the operators' layer)."""
    state = get_state(ws)  # type: ignore[arg-type]
    await ws.accept()
    city = ws.query_params.get("city") or state.default_city
    if city not in state.bases:
        await ws.send_json(
            {"type": "error", "v": 1, "code": "unknown_city", "message": f"unknown city {city!r}"}
        )
        await ws.close(4404)
        return
    receiver = asyncio.create_task(_drain(ws))
    try:
        while not receiver.done():
            try:
                async with state.store.subscribe(after_seq=None) as events:
                    last = 0.0
                    async for event in events:
                        if receiver.done():
                            break
                        if event.city != city or event.type not in MAP_EVENTS:
                            continue
                        wait = last + NUDGE_MIN_INTERVAL_S - time.monotonic()
                        if wait > 0:
                            await asyncio.sleep(wait)
                        last = time.monotonic()
                        await ws.send_json(
                            {"type": "congestion.changed", "v": 1, "city": city, "at": time.time()}
                        )
            except EventsLostError:
                continue  # the page refetches on the next nudge anyway
    except (WebSocketDisconnect, RuntimeError):
        pass  # the page left
    finally:
        receiver.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await receiver


async def _drain(ws: WebSocket) -> None:
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            await ws.receive_text()
