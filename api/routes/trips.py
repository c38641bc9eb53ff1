"""Live trips: start, follow over a websocket, export, delete; the operators' aggregate feed.

The protocol is ``docs/protocol.md`` (JSON Schema: ``realtime/trips/protocol.schema.json``).
What happens beyond HTTP and websocket frames is the trip service's
(``realtime.trips.service``): these routes translate.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import re
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Request, Response, WebSocket
from fastapi.websockets import WebSocketDisconnect, WebSocketState
from pydantic import BaseModel, Field

from api.auth import get_operator_accounts
from api.deps import State, TripsDep, get_city_base, get_state, get_trip_service
from api.schemas import ErrorOut
from correspondance import bounds
from realtime.trips.hub import (
    BINARY_REFUSED,
    CLOSE_STORE_UNAVAILABLE,
    CLOSE_UNSUPPORTED,
    TripConnection,
    TripHub,
)
from realtime.trips.protocol import ProtocolError, error, parse_client_message
from realtime.trips.service import (
    CLOSE_NOT_FOUND,
    CLOSE_UNAUTHORIZED,
    REFUSALS,
    STORE_OUTAGES,
    BinaryFrameError,
    close_code_of,
)

log = logging.getLogger("correspondance.api")
router = APIRouter(tags=["trips"])
AUTH_TIMEOUT_S = 5.0
OPERATOR_PUSH_S = 2.0
TRIP_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")
AFTER_SEQ = re.compile(r"^[0-9]{1,15}$")  # ASCII digits only: int() also reads '²' and '٣'
STORE_DOWN = "the live-trip store is unavailable: reconnect in a few seconds"


def close_reason(text: str) -> str:
    """A close reason within the 123 bytes RFC 6455 allows (cut on a character)."""
    return text.encode()[:120].decode(errors="ignore")


TripId = Annotated[str, Path(pattern=TRIP_ID.pattern, description="Trip id")]


class TripStartIn(BaseModel):
    """Body of ``POST /api/v1/trips``."""

    itinerary: dict[str, Any] = Field(description="One itinerary exactly as /api/v1/plan gave it.")
    city: str | None = Field(default=None, max_length=64)
    modes: list[str] | None = Field(default=None, max_length=6)


class TripStartOut(BaseModel):
    """A started trip: keep the token, it is shown once."""

    trip_id: str
    token: str
    expires_at: dt.datetime
    websocket: str


def _trip_token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


@router.post(
    "/api/v1/trips",
    status_code=201,
    response_model=TripStartOut,
    responses={400: {"model": ErrorOut}, 404: {"model": ErrorOut}, 503: {"model": ErrorOut}},
)
async def start_trip(
    state: State, trips: TripsDep, body: Annotated[TripStartIn, Body()]
) -> TripStartOut:
    """Start following one itinerary live; answers the trip id and its (only) token."""
    base = get_city_base(state, body.city)
    overlay = state.overlay(base.city.id).current
    started = await trips.start(base, overlay, body.itinerary, body.modes)
    return TripStartOut(
        trip_id=started.trip_id,
        token=started.token,
        expires_at=started.expires_at,
        websocket=f"/ws/v1/trips/{started.trip_id}",
    )


@router.get(
    "/api/v1/trips/{trip_id}",
    responses={401: {"model": ErrorOut}, 404: {"model": ErrorOut}},
)
async def export_trip(trips: TripsDep, trip_id: TripId, request: Request) -> dict[str, Any]:
    """Everything the server holds about this trip (``Authorization: Bearer <trip token>``)."""
    return await trips.export(trip_id, _trip_token(request))


@router.delete(
    "/api/v1/trips/{trip_id}",
    status_code=204,
    responses={401: {"model": ErrorOut}, 404: {"model": ErrorOut}},
)
async def delete_trip(trips: TripsDep, trip_id: TripId, request: Request) -> Response:
    """Delete the trip and everything kept with it, at once; its sockets close (4404)."""
    await trips.delete(trip_id, _trip_token(request))
    return Response(status_code=204)


@router.get("/api/v1/demo", responses={404: {"model": ErrorOut}})
async def demo_trip(state: State, trips: TripsDep) -> dict[str, Any]:
    """The default city's scripted demo trip (only with ``CORRESPONDANCE_DEMO=true``)."""
    return trips.demo_trip(get_city_base(state, None))


@router.post(
    "/api/v1/trips/{trip_id}/demo",
    status_code=202,
    responses={401: {"model": ErrorOut}, 404: {"model": ErrorOut}, 409: {"model": ErrorOut}},
)
async def demo_jam(
    state: State, trips: TripsDep, trip_id: TripId, request: Request
) -> dict[str, Any]:
    """Demo only: the road ahead closes for this trip alone (never for the city)."""
    trips.check_demo()
    session = await trips.authorize(trip_id, _trip_token(request))
    return await trips.demo_jam(session, get_city_base(state, session.city))


# -- websockets ---------------------------------------------------------------------------------


def hub_of(state: Any) -> TripHub:
    """This process's trip hub (started by the lifespan)."""
    hub: TripHub = state.trip_hub
    return hub


async def _receive_frame(ws: WebSocket) -> str | bytes | None:
    """The next frame, text or binary; None once the client has gone."""
    if ws.application_state != WebSocketState.CONNECTED:
        return None
    msg = await ws.receive()
    if msg["type"] == "websocket.disconnect":
        return None
    text = msg.get("text")
    if text is not None:
        return str(text)
    return bytes(msg.get("bytes") or b"")


async def _frames(ws: WebSocket) -> AsyncIterator[str | bytes]:
    while (frame := await _receive_frame(ws)) is not None:
        yield frame


async def _first_auth(ws: WebSocket) -> tuple[str | None, int]:
    try:
        frame = await asyncio.wait_for(_receive_frame(ws), AUTH_TIMEOUT_S)
    except TimeoutError:
        await ws.close(4408, "no auth message in time")
        raise
    if frame is None:
        raise WebSocketDisconnect(1000)
    if isinstance(frame, bytes):
        raise BinaryFrameError(BINARY_REFUSED)
    msg = parse_client_message(frame)
    if msg["type"] != "auth":
        raise ProtocolError("the first message must be 'auth' when the URL has no token")
    return str(msg["token"]), int(msg.get("after_seq", 0))


@router.websocket("/ws/v1/trips/{trip_id}")
async def trip_socket(ws: WebSocket, trip_id: str) -> None:
    """Follow a live trip (see docs/protocol.md)."""
    state = get_state(ws)  # type: ignore[arg-type]
    await ws.accept()
    now = dt.datetime.now(dt.UTC)
    try:
        token = ws.query_params.get("token")
        after = ws.query_params.get("after_seq", "0")
        if not AFTER_SEQ.match(after):
            raise ProtocolError("'after_seq' must be a whole number >= 0 (ASCII digits)")
        after_seq = int(after)
        if token is None:
            token, after_seq = await _first_auth(ws)
        session = await get_trip_service(state).authorize(trip_id, token)
    except TimeoutError:
        return
    except WebSocketDisconnect:
        return
    except REFUSALS as exc:
        text = exc.message
        if isinstance(exc, STORE_OUTAGES):
            log.warning("trip socket refused: %s", exc)
            text = STORE_DOWN
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            if TRIP_ID.match(trip_id):
                await ws.send_text(json.dumps(error(trip_id, now, exc.code, text)))
            await ws.close(close_code_of(exc), close_reason(text))
        return

    async def close(code: int, reason: str) -> None:
        if ws.application_state != WebSocketState.DISCONNECTED:
            await ws.close(code, reason)

    conn = TripConnection(hub_of(state), session, ws.send_text, close, after_seq)
    del session  # a connection keeps its clock and a compact shape, not the whole plan
    await conn.serve(_frames(ws))


def _operator_error(code: str, text: str) -> dict[str, Any]:
    return {"type": "error", "v": 1, "code": code, "message": text}


async def _operator_token(ws: WebSocket) -> str | None:
    """The token of the URL, else of a first ``auth`` message (None if there is none)."""
    token = ws.query_params.get("token")
    if token is not None:
        return token
    frame = await asyncio.wait_for(_receive_frame(ws), AUTH_TIMEOUT_S)
    if isinstance(frame, bytes):
        raise BinaryFrameError(BINARY_REFUSED)
    if frame is None:
        raise WebSocketDisconnect(1000)
    try:
        msg = bounds.loads(frame, "message")
    except ValueError:
        return None
    token = msg.get("token") if isinstance(msg, dict) and msg.get("type") == "auth" else None
    return token if isinstance(token, str) else None


@router.websocket("/ws/v1/operator")
async def operator_socket(ws: WebSocket) -> None:
    """Operators only: live-trip aggregates every few seconds; never an individual trip.

    The token is checked again before every push (and at its expiry): after a logout or
    once it expires, the socket gets an ``error`` and is closed with 4401. A store outage
    closes it with 4503, a binary frame with 1003.
    """
    state = get_state(ws)  # type: ignore[arg-type]
    await ws.accept()
    city = ws.query_params.get("city") or state.default_city
    accounts = get_operator_accounts(state)
    trips = get_trip_service(state)
    try:
        try:
            token = await _operator_token(ws)
        except (TimeoutError, WebSocketDisconnect):
            token = None
        session = await accounts.find_session(token) if token else None
        if session is None:
            await _refuse(ws, CLOSE_UNAUTHORIZED, "unauthorized", OPERATORS_ONLY)
            return
        if city not in state.bases:
            await _refuse(ws, CLOSE_NOT_FOUND, "unknown_city", f"unknown city {city[:64]!r}")
            return
        assert token is not None
        receiver = asyncio.create_task(_drain(ws))
        try:
            while not receiver.done():
                await ws.send_json(await trips.aggregates(city))
                left = (session.expires_at - dt.datetime.now(dt.UTC)).total_seconds()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        asyncio.shield(receiver), max(0.0, min(OPERATOR_PUSH_S, left))
                    )
                if receiver.done():
                    break
                session = await accounts.find_session(token)
                if session is None:
                    await _refuse(ws, CLOSE_UNAUTHORIZED, "unauthorized", TOKEN_ENDED)
                    return
            ok = not receiver.cancelled() and receiver.exception() is None
            if ok and receiver.result() == "binary":
                await _refuse(ws, CLOSE_UNSUPPORTED, "invalid_message", BINARY_REFUSED)
        except WebSocketDisconnect:
            pass  # the operator left
        finally:
            receiver.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await receiver
    except BinaryFrameError:
        await _refuse(ws, CLOSE_UNSUPPORTED, "invalid_message", BINARY_REFUSED)
    except STORE_OUTAGES as exc:
        log.warning("operator socket closed: %s", exc)
        await _refuse(ws, CLOSE_STORE_UNAVAILABLE, "store_unavailable", STORE_DOWN)


OPERATORS_ONLY = "operators only: send a valid bearer token"
TOKEN_ENDED = "the operator token expired or was revoked (logout): log in again"


async def _refuse(ws: WebSocket, close_code: int, code: str, text: str) -> None:
    """Send one ``error`` and close with ``close_code`` (quietly if the client has gone)."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        if ws.application_state == WebSocketState.CONNECTED:
            await ws.send_json(_operator_error(code, text))
            await ws.close(close_code, close_reason(text))


async def _drain(ws: WebSocket) -> str:
    """Read (and ignore) what an operator sends; ``"binary"`` if a binary frame came."""
    while (frame := await _receive_frame(ws)) is not None:
        if isinstance(frame, bytes):
            return "binary"
    return "left"
