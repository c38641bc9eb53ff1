"""What the trip engine says, as codes and parameters.

The engine never builds a sentence that a client has to show: every text it sends is a
:class:`Phrase` (a stable ``code`` and its ``params``) that a client words in its own language
(the web app: ``frontend/locales/<lang>.json``, keys ``trip.<kind>.<code>``). Each phrase also
carries a plain-English rendering (:meth:`Phrase.text`) for clients and logs that want one; the
English templates are here, one per code, so the wire codes and their meaning sit side by side.

The codes are listed in ``docs/protocol.md`` and ``realtime/trips/protocol.schema.json``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Why the followed plan broke or lost time (``Projection.detail``; ``reason.detail`` of a
# suggestion, ``notice.detail`` of a no_better_option notice). {time}: ISO 8601 with offset.
DETAILS = {
    "trip_cancelled": "trip {trip_id} is cancelled",
    "stop_closed": "{stop} is closed",
    "connection_missed": "the {time} connection is missed",
    "no_vehicle": "no vehicle left at {station}",
    "no_dock": "no free dock at {station}",
    "road_closed": "the road ahead is closed",
}
# One leg's live note (``live_update.legs[].note_code``).
LEG_NOTES = {
    "cancelled": "cancelled",
    "stop_closed": "{stop} is closed",
    "connection_missed": "connection missed",
    "no_vehicle": "no vehicle left at {station}",
    "no_dock": "no free dock at {station}",
    "road_closed": "road closed ahead",
    "congestion_ahead": "congestion ahead",
}
# A suggestion's reason code (the event that led to it).
REASONS = {
    "congestion": "Traffic is jammed ahead",
    "vehicle_unavailable": "No vehicle is left at your pick-up station",
    "dock_unavailable": "No free space is left at your drop-off station",
    "trip_cancelled": "Your connection is cancelled",
    "delay": "Your connection is running late",
    "stop_closed": "A stop on your way is closed",
}
# What the suggested plan asks the traveller to do (``reason.action``).
ACTIONS = {
    "detour": "take another way around it",
    "board": "take {mode} {line} at {stop}",
    "walk": "walk",
    "bicycle": "cycle",
    "car": "drive",
    "bikeshare": "take a shared bike",
    "carshare": "take a shared car",
    "other": "go by {mode}",
}
# What the traveller leaves first (``reason.leave``); {vehicle}: "car" or "bike".
LEAVES = {
    "leave_vehicle": "leave the {vehicle} at {stop}",
    "get_off": "get off at {stop}",
}

Param = str | int | float | None

# How a mode reads in the English text (the app words the ``mode`` code itself).
MODE_WORDS = {"rail": "train", "subway": "metro", "cable_car": "cable car"}


def _clock(value: Param) -> str:
    """HH:MM of an ISO 8601 instant (the English text shows the wall clock it carries)."""
    try:
        return f"{dt.datetime.fromisoformat(str(value)):%H:%M}"
    except ValueError:
        return str(value)


@dataclass(frozen=True)
class Phrase:
    """A text as a code and its parameters; ``table`` names the English templates."""

    code: str
    params: dict[str, Param] = field(default_factory=dict)
    table: str = "details"

    def text(self) -> str:
        """The plain-English sentence fragment (lower case, no final stop)."""
        template = TABLES[self.table][self.code]
        values = {
            k: _clock(v) if k == "time" else MODE_WORDS.get(str(v), v) if k == "mode" else v
            for k, v in self.params.items()
        }
        return template.format(**values)

    def wire(self) -> dict[str, Any]:
        """``{"code", "params"}`` as it travels in a message."""
        return {"code": self.code, "params": dict(self.params)}


TABLES: dict[str, dict[str, str]] = {
    "details": DETAILS,
    "notes": LEG_NOTES,
    "actions": ACTIONS,
    "leaves": LEAVES,
}


def _phrase(
    code: str, params: dict[str, Param], table: Mapping[str, object], kind: str, label: str
) -> Phrase:
    """A phrase of catalogue ``kind`` whose ``code`` must be in ``table``."""
    if code not in table:
        raise KeyError(f"unknown {label} {code!r}")
    return Phrase(code, params, kind)


def detail(code: str, **params: Param) -> Phrase:
    """Why the plan broke, e.g. ``detail("no_vehicle", station="Station 3")``."""
    return _phrase(code, params, DETAILS, "details", "detail code")


def leg_note(code: str, **params: Param) -> Phrase:
    """One leg's live note, e.g. ``leg_note("congestion_ahead")``."""
    return _phrase(code, params, LEG_NOTES, "notes", "leg note code")


def action(code: str, **params: Param) -> Phrase:
    """What the suggested plan asks the traveller to do."""
    return _phrase(code, params, ACTIONS, "actions", "action code")


def leave(code: str, **params: Param) -> Phrase:
    """What the traveller leaves before switching."""
    return _phrase(code, params, LEAVES, "leaves", "leave code")


def sentence(text: str) -> str:
    """Upper-case the first letter."""
    return text[:1].upper() + text[1:]


def suggestion_message(
    reason: str,
    why: Phrase | None,
    leaving: Phrase | None,
    doing: Phrase,
    minutes_saved: float | None,
    new_arrival: dt.datetime,
) -> str:
    """The plain-English reason of a switch suggestion (the app words it from the codes)."""
    head = why.text() if why is not None else REASONS[reason]
    first = f"{leaving.text()}, " if leaving is not None else ""
    gain = (
        f", arrive {minutes_saved:.0f} min earlier"
        if minutes_saved is not None
        else f", arrive {new_arrival:%H:%M}"
    )
    return sentence(f"{head}: {first}{doing.text()}{gain}.")


def no_better_message(reason: str, why: Phrase | None, projected: dt.datetime | None) -> str:
    """The plain-English text of a ``no_better_option`` notice."""
    head = why.text() if why is not None else REASONS.get(reason, "your plan no longer works")
    head = head[:1].lower() + head[1:]
    when = (
        f"you arrive about {projected:%H:%M} going around it"
        if projected is not None
        else "your arrival time is unknown"
    )
    return sentence(f"No better way was found: {head}; {when}.")
