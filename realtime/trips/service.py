"""The trip service: what the live-trip endpoints do beyond HTTP and websocket framing.

Start a trip from an itinerary the planner gave, export or delete it (with its token),
the scripted demo, the operators' k-thresholded aggregates, and who may follow a trip over
a socket (with the documented close code of a refusal). It owns the trips' store keys
through :class:`~realtime.trips.sessions.TripBook`; ``api/routes/trips.py`` translates.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from correspondance.errors import CorrespondanceError, InputError, TripNotFoundError
from correspondance.store import StateStore, StoreUnavailableError
from crowdsource.dashboard import k_threshold
from realtime.trips.demo import DemoDisabledError, into_first_drive, jam_privately
from realtime.trips.hub import CLOSE_STORE_UNAVAILABLE, CLOSE_UNSUPPORTED
from realtime.trips.plan_view import parse_plan
from realtime.trips.protocol import ProtocolError
from realtime.trips.sessions import (
    TripBook,
    TripSession,
    TripTokenError,
    incident_trips_key,
)
from routing.base import CityBase
from routing.overlay import LiveOverlay
from routing.plan import ALL_MODES

STAT_NAMES = ("started", "suggested", "accepted", "declined", "ended")
CLOSE_BAD_REQUEST = 4400
CLOSE_UNAUTHORIZED = 4401
CLOSE_NOT_FOUND = 4404

STORE_OUTAGES: tuple[type[CorrespondanceError], ...] = (StoreUnavailableError,)
"""What a call raises when the store does not answer (a socket closes with 4503)."""
REFUSALS: tuple[type[CorrespondanceError], ...] = (
    TripNotFoundError,
    TripTokenError,
    ProtocolError,
    *STORE_OUTAGES,
)
"""Why a trip socket may be refused before it follows anything (see :func:`close_code_of`)."""


class BinaryFrameError(ProtocolError):
    """A binary websocket frame: the protocol is JSON text (closed with 1003)."""


def close_code_of(exc: Exception) -> int:
    """The documented close code of a refused trip connection (``docs/protocol.md``)."""
    if isinstance(exc, TripNotFoundError):
        return CLOSE_NOT_FOUND
    if isinstance(exc, TripTokenError):
        return CLOSE_UNAUTHORIZED
    if isinstance(exc, STORE_OUTAGES):
        return CLOSE_STORE_UNAVAILABLE
    if isinstance(exc, BinaryFrameError):
        return CLOSE_UNSUPPORTED
    return CLOSE_BAD_REQUEST


@dataclass(frozen=True, slots=True)
class StartedTrip:
    """A started trip: its id, its only token (shown once) and when it expires."""

    trip_id: str
    token: str
    expires_at: dt.datetime


class TripService:
    """Live trips over the store: start, export, delete, demo, aggregates, authorize."""

    def __init__(self, store: StateStore, *, k: int, demo: bool) -> None:
        self.store = store
        self.book = TripBook(store)
        self.k = k
        self.demo = demo

    async def start(
        self,
        base: CityBase,
        overlay: LiveOverlay,
        itinerary: dict[str, Any],
        modes: Iterable[str] | None,
    ) -> StartedTrip:
        """Follow one itinerary exactly as ``/api/v1/plan`` gave it (checked against the
        city and the live overlay); ``modes`` the traveller accepts (default: the plan's)."""
        plan = parse_plan(base, itinerary, overlay)
        wanted = set(modes) if modes is not None else set(plan.modes()) - {"transit"}
        unknown = wanted - ALL_MODES
        if unknown:
            raise InputError(f"'modes' accepts {', '.join(sorted(ALL_MODES))}", field="modes")
        session, token = await self.book.create(
            base.city.id,
            base.city.timezone,
            plan.json,
            sorted(wanted | {"walk", "transit"}),
            plan.departure,
        )
        return StartedTrip(
            trip_id=session.trip_id,
            token=token,
            expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=session.ttl_s()),
        )

    async def authorize(self, trip_id: str, token: str | None) -> TripSession:
        """The trip's session if ``token`` is its token (``TripNotFoundError``,
        ``TripTokenError`` otherwise)."""
        return await self.book.authorize(trip_id, token)

    async def export(self, trip_id: str, token: str | None) -> dict[str, Any]:
        """Everything the server holds about a trip: session, last position, messages."""
        session = await self.authorize(trip_id, token)
        document = {k: v for k, v in session.__dict__.items() if k != "token_hash"}
        position = await self.book.position(trip_id, max_age_s=float("inf"))
        return {
            "trip": document,
            "position": {"lat": position[0], "lon": position[1]} if position else None,
            "messages": await self.book.messages_after(trip_id, 0),
        }

    async def delete(self, trip_id: str, token: str | None) -> None:
        """Delete the trip and everything kept with it, at once (its sockets close)."""
        await self.book.delete(await self.authorize(trip_id, token))

    def check_demo(self) -> None:
        """``DemoDisabledError`` unless the scripted demo is on."""
        if not self.demo:
            raise DemoDisabledError("the demo is not enabled on this server")

    def demo_trip(self, base: CityBase) -> dict[str, Any]:
        """The city's scripted demo trip: from, to, departure and modes."""
        demo = base.city.demo
        if not self.demo or demo is None:
            raise DemoDisabledError("the demo is not enabled on this server")
        depart = dt.datetime.combine(base.city.default_date, demo.depart, tzinfo=base.city.tz)
        return {
            "city": base.city.id,
            "from": {"lat": demo.origin[0], "lon": demo.origin[1]},
            "to": {"lat": demo.destination[0], "lon": demo.destination[1]},
            "depart": depart.isoformat(),
            "modes": demo.modes,
            "simulated": True,
        }

    async def demo_jam(self, session: TripSession, base: CityBase) -> dict[str, Any]:
        """Demo only: the road ahead closes for this (authorized) trip alone, never for the
        city; the ``trip.updated`` event makes the trip engine re-read and evaluate it."""
        self.check_demo()
        plan = parse_plan(base, session.plan)
        closed = 0

        def at_the_wheel(s: TripSession) -> list[dict[str, Any]]:
            nonlocal closed
            if not into_first_drive(plan, s):
                raise InputError(
                    "this trip does not drive any further: nothing to jam", code="no_road_ahead"
                )
            closed = jam_privately(base, plan, s)
            return []

        await self.book.change(session.trip_id, at_the_wheel)
        scenario = "road closed ahead (simulated, for this trip only)"
        return {"scenario": scenario, "edges": closed, "simulated": True}

    async def incident_ids(self, city: str) -> list[str]:
        """Ids of the city's operator incidents that touched live trips, sorted."""
        prefix, suffix = incident_trips_key(city, "\0").split("\0")
        keys = await self.store.scan_keys(incident_trips_key(city, "*"))
        return [key[len(prefix) : -len(suffix)] for key in sorted(keys)]

    async def incident_counts(self, city: str, incident_id: str) -> dict[str, int | None]:
        """An operator incident's active trips touched, suggestions made and accepted
        (each null when fewer than k)."""
        stats = await self.book.incident_stats(city, incident_id)
        return {
            "trips_touched": k_threshold(stats["trips_touched"], self.k),
            "suggestions_made": k_threshold(stats["suggested"], self.k),
            "suggestions_accepted": k_threshold(stats["accepted"], self.k),
        }

    async def aggregates(self, city: str) -> dict[str, Any]:
        """What operators see of live trips: counts only, k-thresholded where small."""
        k = self.k
        counters = await self.book.counters(city, STAT_NAMES)
        incidents = []
        for incident_id in await self.incident_ids(city):
            incidents.append(
                {"incident_id": incident_id, **await self.incident_counts(city, incident_id)}
            )
        active = len(await self.book.active(city))
        return {
            "type": "aggregates",
            "v": 1,
            "city": city,
            "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "k": k,
            "active_trips": k_threshold(active, k),
            "suggestions_made": counters["suggested"],
            "suggestions_accepted": counters["accepted"],
            "suggestions_declined": counters["declined"],
            "trips_started": counters["started"],
            "trips_ended": counters["ended"],
            "incidents": incidents,
        }
