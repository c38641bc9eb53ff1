"""``GET /api/v1/congestion``: the live congestion layer every commuter may see.

The same k-anonymous aggregate the operators see (``crowdsource.dashboard``): an edge is
shown only if at least ``k`` distinct contributors reported it in the fusion window, or an
operator confirmed or declared it. Commuters get street names, geometry and levels, never
contributor counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from fastapi import APIRouter, WebSocket
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
)
from crowdsource.decisions import load_decisions
from crowdsource.repository import ReportRepository
from routing.base import CityBase

FUSION_WINDOW_S = 900.0  # crowdsource.fuser.Fuser's default window
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
