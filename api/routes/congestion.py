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
from typing import Annotated, Any

from fastapi import APIRouter, Query, WebSocket
from fastapi.websockets import WebSocketDisconnect

from api.deps import CityBaseDep, CongestionDep, State, get_state
from api.schemas import ErrorOut
from crowdsource.congestion import CongestionService
from crowdsource.dashboard import congestion_geojson
from routing.errors import OutsideCityError

router = APIRouter(tags=["congestion"])


@router.get("/api/v1/congestion", responses={404: {"model": ErrorOut}, 503: {"model": ErrorOut}})
async def congestion_layer(
    state: State, base: CityBaseDep, congestion: CongestionDep
) -> dict[str, Any]:
    """Live congestion and closures as GeoJSON lines with street names and levels (1–4,
    null when closed); only k-anonymous aggregates, never a report."""
    multipliers = state.overlay(base.city.id).current.drive_multiplier
    edges = await congestion.live(base, multipliers)
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
    return CongestionService.nearest_street(base, lat, lon, state.settings.max_snap_distance_m)


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
    # the page leaving ends the socket at once, not at the next change of the map (which may
    # never come: an abandoned socket then held its subscription, and a server being
    # stopped waited for it)
    receiver = asyncio.create_task(_drain(ws))
    sender = asyncio.create_task(_nudge(ws, state.congestion(), city))
    try:
        await asyncio.wait({receiver, sender}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sender, receiver):
            task.cancel()
        await asyncio.gather(sender, receiver, return_exceptions=True)


async def _nudge(ws: WebSocket, congestion: CongestionService, city: str) -> None:
    """Send a ``congestion.changed`` nudge each time the city's map may have changed."""
    try:
        changes = congestion.map_changes(city)
        async with contextlib.aclosing(changes):
            async for at in changes:
                await ws.send_json({"type": "congestion.changed", "v": 1, "city": city, "at": at})
    except (WebSocketDisconnect, RuntimeError):
        pass  # the page left


async def _drain(ws: WebSocket) -> None:
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            await ws.receive_text()
