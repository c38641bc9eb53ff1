"""What a traveller (or the trip's own course) does to a trip: every change as a function.

Each function returns a ``mutate(session) -> messages`` for :meth:`TripBook.change`, so it
runs under the trip's lock on the freshest stored session, wherever it is called from.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from correspondance.errors import CorrespondanceError
from realtime.trips.protocol import message
from realtime.trips.sessions import TripSession

Mutation = Callable[[TripSession], list[dict[str, Any]]]


class CommandRefusedError(CorrespondanceError):
    """A traveller's command that does not apply to the trip as it is now."""

    code = "suggestion_closed"


def _open(session: TripSession, suggestion_id: str) -> dict[str, Any]:
    if session.status != "active":
        raise CommandRefusedError("the trip has ended", code="trip_ended")
    open_ = session.suggestion
    if open_ is None or open_["suggestion_id"] != suggestion_id:
        known = suggestion_id in {h.get("suggestion_id") for h in session.history}
        raise CommandRefusedError(
            f"suggestion {suggestion_id!r} is not open",
            code="suggestion_closed" if known or open_ is None else "unknown_suggestion",
        )
    return open_


def accept(suggestion_id: str, now: dt.datetime) -> Mutation:
    """The open suggestion becomes the plan (``plan_updated``)."""

    def mutate(session: TripSession) -> list[dict[str, Any]]:
        open_ = _open(session, suggestion_id)
        session.history.append(
            {"suggestion_id": suggestion_id, "outcome": "accepted", "at": now.isoformat()}
        )
        session.plan = open_["itinerary"]
        session.plan_version += 1
        session.suggestion = None
        session.closed_saving_s = None
        session.last_eta = None
        return [
            message(
                "plan_updated",
                session.trip_id,
                now,
                suggestion_id=suggestion_id,
                itinerary=session.plan,
            )
        ]

    return mutate


def close_suggestion(suggestion_id: str, outcome: str, now: dt.datetime) -> Mutation:
    """Close the open suggestion: ``declined`` by the traveller, ``withdrawn`` or ``expired``."""

    def mutate(session: TripSession) -> list[dict[str, Any]]:
        open_ = _open(session, suggestion_id)
        saving = open_.get("minutes_saved")
        session.closed_saving_s = float(saving) * 60 if saving is not None else None
        session.history.append(
            {"suggestion_id": suggestion_id, "outcome": outcome, "at": now.isoformat()}
        )
        session.suggestion = None
        return [
            message(
                "suggestion_closed",
                session.trip_id,
                now,
                suggestion_id=suggestion_id,
                outcome=outcome,
            )
        ]

    return mutate


def end(reason: str, now: dt.datetime) -> Mutation:
    """End the trip (``trip_ended``); its data then expires within minutes."""

    def mutate(session: TripSession) -> list[dict[str, Any]]:
        if session.status != "active":
            raise CommandRefusedError("the trip has already ended", code="trip_ended")
        session.status = "ended"
        session.ended_reason = reason
        session.suggestion = None
        session.private_closures = []
        return [message("trip_ended", session.trip_id, now, reason=reason)]

    return mutate
