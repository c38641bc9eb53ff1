"""What the trip engine tells a traveller: the bodies of its messages, built without I/O.

:func:`suggestion_body` is a ``switch_suggestion`` (where the new plan leaves what the
traveller does now, what it asks, what it saves, until when it holds);
:func:`no_better_update` the ``live_update`` that says a broken plan has no better option;
:func:`leg_update` and :func:`leg_alerts` one entry of ``live_update.legs``. Texts are codes
with parameters (:mod:`realtime.trips.wording`); ``docs/protocol.md`` is the contract.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass
from typing import Any

from realtime.trips.commands import close_suggestion
from realtime.trips.plan_view import Projection, TripPlan, parse_plan, project
from realtime.trips.policy import SwitchPolicy
from realtime.trips.protocol import message, stamp
from realtime.trips.sessions import TripBook, TripSession
from realtime.trips.wording import (
    ACTIONS,
    LEG_NOTES,
    Phrase,
    action,
    leave,
    leg_note,
    no_better_message,
    suggestion_message,
)
from routing.base import CityBase
from routing.codec import ItineraryOut
from routing.overlay import LiveOverlay
from routing.plan import Itinerary

NO_BETTER_OPTION = "no_better_option"
MAX_VALID_S = 20 * 60.0
MIN_VALID_S = 3 * 60.0
ETA_NOTICE_S = 60.0  # a live_update when the projected arrival moves this much


@dataclass
class EngineStats:
    """Counters for benchmarks and the operator channel."""

    evaluated: int = 0
    repaired: int = 0  # cheap repairs tried (drive around what changed)
    replanned: int = 0  # full multimodal replans
    suggested: int = 0
    withdrawn: int = 0
    live_updates: int = 0
    no_better: int = 0  # broken plans told that no better way exists
    late: int = 0  # suggestions stored after their trip's decision deadline
    past_junction: int = 0  # affected trips already past their last switching point


class TripTeller:
    """What the engine says about a trip that gets no new suggestion: withdraws an open one
    that no longer holds, and sends ``live_update`` messages (the arrival moved, or the plan
    broke with no better option, said once per plan and again when the arrival moves)."""

    def __init__(
        self, base: CityBase, book: TripBook, policy: SwitchPolicy, stats: EngineStats
    ) -> None:
        self.base = base
        self.book = book
        self.policy = policy
        self.stats = stats
        self.noticed: dict[str, tuple[int, str]] = {}  # trip → (plan version, eta) told

    async def review_open(
        self, session: TripSession, overlay: LiveOverlay, now: dt.datetime, projection: Projection
    ) -> None:
        """Withdraw the open suggestion if it no longer holds (its own plan broke or its
        saving fell below half the threshold)."""
        assert session.suggestion is not None
        offered = parse_plan(self.base, session.suggestion["itinerary"])
        theirs = project(self.base, offered, now, overlay)
        if theirs.arrival is None:
            saving: float | None = -1.0
        elif projection.arrival is None:
            saving = None
        else:
            saving = (projection.arrival - theirs.arrival).total_seconds()
        if self.policy.still_worth_it(saving):
            return
        self.stats.withdrawn += 1
        await self.book.change(
            session.trip_id,
            close_suggestion(session.suggestion["suggestion_id"], "withdrawn", now),
            event=None,
        )

    async def maybe_live_update(
        self,
        session: TripSession,
        projection: Projection,
        now: dt.datetime,
        overlay: LiveOverlay,
    ) -> None:
        """A live_update when delays, alerts or congestion move the arrival noticeably."""
        if projection.arrival is None or not projection.legs:
            return
        last = (
            dt.datetime.fromisoformat(session.last_eta) if session.last_eta else session.arrival()
        )
        if abs((projection.arrival - last).total_seconds()) < ETA_NOTICE_S:
            return
        eta = stamp(projection.arrival)

        def mutate(s: TripSession) -> list[dict[str, Any]]:
            if s.status != "active" or s.plan_version != session.plan_version:
                return []
            s.last_eta = eta
            legs = [
                leg_update(i, delay, cancelled, leg_alerts(s.plan, i, overlay), note)
                for i, delay, cancelled, note in projection.legs
            ]
            return [message("live_update", s.trip_id, now, legs=legs, eta=eta)]

        _, sent = await self.book.change(session.trip_id, mutate, event=None)
        if sent:
            self.stats.live_updates += 1

    async def no_better_option(
        self,
        session: TripSession,
        plan: TripPlan,
        projection: Projection,
        projected: dt.datetime | None,
        now: dt.datetime,
        overlay: LiveOverlay,
    ) -> None:
        """The plan broke and nothing better exists: say so once per plan (and again when
        the projected arrival moves), with what is wrong and when the traveller now arrives."""
        eta_at = projected or plan.arrival
        eta = stamp(eta_at)
        told = self.noticed.get(session.trip_id)
        if told is not None and told[0] == session.plan_version:
            moved = abs((dt.datetime.fromisoformat(told[1]) - eta_at).total_seconds())
            if moved < ETA_NOTICE_S:
                return

        def mutate(s: TripSession) -> list[dict[str, Any]]:
            if s.status != "active" or s.plan_version != session.plan_version:
                return []
            s.last_eta = eta
            update = no_better_update(s.plan, plan, projection, projected, now, overlay)
            return [message("live_update", s.trip_id, now, **update)]

        _, sent = await self.book.change(session.trip_id, mutate, event=None)
        if sent:
            self.noticed[session.trip_id] = (session.plan_version, eta)
            self.stats.no_better += 1
            self.stats.live_updates += 1


def suggestion_body(
    plan: TripPlan,
    projection: Projection,
    best: Itinerary,
    overlay: LiveOverlay,
    now: dt.datetime,
    reason: str,
    detour: int | None = None,
) -> dict[str, Any]:
    """The ``switch_suggestion`` body offering ``best`` instead of ``plan`` (``detour``:
    the leg from which the same plan is driven around what changed)."""
    code = projection.broken or reason
    current_leg = plan.legs[plan.leg_index_at(now)]
    # where the new plan leaves what the traveller is doing now
    doing = current_leg.trip_id or current_leg.mode
    k = next(
        (i for i, leg in enumerate(best.legs) if (leg.trip_id or leg.mode) != doing),
        len(best.legs) - 1,
    )
    if detour is not None:
        k = detour  # the same plan, driven around what changed from this leg on
    switch = best.legs[k]
    after = best.legs[k:]
    ride = next((leg for leg in after if leg.trip_id), None)
    doing_now: Phrase
    if detour is not None or (k == 0 and (switch.trip_id or switch.mode) == doing):
        doing_now = action("detour")  # the same mode, by other streets
    elif ride is not None:
        line = ride.route_short_name or ride.route_long_name or ride.mode
        doing_now = action("board", mode=ride.mode, line=line, stop=ride.origin.name)
    elif switch.mode in ACTIONS:
        doing_now = action(switch.mode)
    else:
        doing_now = action("other", mode=switch.mode)
    leaving: Phrase | None = None
    if detour is None and k > 0 and current_leg.mode in ("carshare", "bikeshare"):
        vehicle = "car" if current_leg.mode == "carshare" else "bike"
        leaving = leave("leave_vehicle", vehicle=vehicle, stop=switch.origin.name)
    elif detour is None and k > 0 and current_leg.trip_id:
        leaving = leave("get_off", stop=switch.origin.name)
    saved = (
        round((projection.arrival - best.arrival).total_seconds() / 60.0, 1)
        if projection.arrival is not None
        else None
    )
    why = projection.detail if projection.broken else None
    text = suggestion_message(code, why, leaving, doing_now, saved, best.arrival)
    valid = min(
        max(switch.departure, now + dt.timedelta(seconds=MIN_VALID_S)),
        now + dt.timedelta(seconds=MAX_VALID_S),
    )
    return {
        "suggestion_id": secrets.token_urlsafe(9),
        "reason": {
            "code": code,
            "message": text,
            "detail": why.wire() if why is not None else None,
            "action": doing_now.wire(),
            "leave": leaving.wire() if leaving is not None else None,
        },
        "current_arrival": stamp(projection.arrival) if projection.arrival else None,
        "new_arrival": stamp(best.arrival),
        "minutes_saved": saved,
        "plan_broken": projection.broken is not None,
        "switch_at": {
            "name": switch.origin.name if k > 0 else "where you are",
            "here": k == 0,
            "lat": switch.origin.lat,
            "lon": switch.origin.lon,
            "leg_index": k,
        },
        "valid_until": stamp(valid),
        "itinerary": ItineraryOut.of(best, overlay).model_dump(mode="json", by_alias=True),
    }


def no_better_update(
    plan_json: dict[str, Any],
    plan: TripPlan,
    projection: Projection,
    projected: dt.datetime | None,
    now: dt.datetime,
    overlay: LiveOverlay,
) -> dict[str, Any]:
    """The ``live_update`` fields (``legs``, ``eta``, ``notice``) saying the plan broke and
    nothing better exists: what is wrong, and when the traveller now arrives
    (``projected``, None when unknown)."""
    eta_at = projected or plan.arrival
    code = projection.broken or "congestion"
    why = projection.detail
    text = no_better_message(code, why, projected)
    fallback = None  # the note of the current leg when no remaining leg carries one
    if why is not None:
        note_code = "cancelled" if why.code == "trip_cancelled" else why.code
        fallback = leg_note(note_code, **why.params) if note_code in LEG_NOTES else None
    delay = int((eta_at - plan.arrival).total_seconds()) if projected is not None else 0
    legs = [
        leg_update(
            i,
            max(delay_s, delay) if note else delay_s,
            cancelled,
            leg_alerts(plan_json, i, overlay),
            note,
        )
        for i, delay_s, cancelled, note in projection.legs
    ] or [leg_update(plan.leg_index_at(now), delay, False, [], fallback)]
    notice = {
        "code": NO_BETTER_OPTION,
        "reason": code,
        "detail": why.wire() if why is not None else None,
        "arrival": stamp(projected) if projected is not None else None,
        "message": text,
    }
    return {"legs": legs, "eta": stamp(eta_at), "notice": notice}


def leg_update(
    leg_index: int,
    delay_s: int,
    cancelled: bool,
    alerts: list[dict[str, Any]],
    note: Phrase | None,
) -> dict[str, Any]:
    """One entry of ``live_update.legs``: the note as plain English and as a code."""
    return {
        "leg_index": leg_index,
        "delay_s": delay_s,
        "cancelled": cancelled,
        "alerts": alerts,
        "note": note.text() if note is not None else None,
        "note_code": note.wire() if note is not None else None,
    }


def leg_alerts(
    plan_json: dict[str, Any], leg_index: int, overlay: LiveOverlay
) -> list[dict[str, Any]]:
    """The overlay's alerts on a transit leg of the followed plan (its route, trip or stops)."""
    legs = plan_json.get("legs", [])
    if not 0 <= leg_index < len(legs) or not overlay.alerts:
        return []
    leg = legs[leg_index]
    stops = {leg["from"].get("stop_id"), leg["to"].get("stop_id")} - {None}
    return [
        {
            "alert_id": a.alert_id,
            "effect": a.effect,
            "header": a.header,
            "description": a.description,
        }
        for a in overlay.alerts
        if leg.get("trip_id")
        and (
            leg.get("route_id") in a.route_ids
            or leg["trip_id"] in a.trip_ids
            or stops & set(a.stop_ids)
        )
    ]
